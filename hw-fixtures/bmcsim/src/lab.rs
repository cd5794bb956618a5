//! The running endpoints of one simulated lab, whatever its protocol: each endpoint's address,
//! its shared state (power model, faults, log) and the task serving it. Dropping the set stops
//! every endpoint, so a lab that goes out of scope leaves nothing listening.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// One running endpoint.
pub(crate) struct Endpoint<S> {
    pub(crate) addr: SocketAddr,
    pub(crate) shared: Arc<S>,
    task: JoinHandle<()>,
}

/// The endpoints of a lab, in the order they were configured.
pub(crate) struct Endpoints<S> {
    /// Names for messages, e.g. `("IpmiLab", "BMC")`.
    names: (&'static str, &'static str),
    items: Vec<Endpoint<S>>,
}

impl<S> Endpoints<S> {
    /// An empty set for a lab named `lab` whose endpoints are called `unit`.
    pub(crate) fn new(lab: &'static str, unit: &'static str, capacity: usize) -> Self {
        Endpoints {
            names: (lab, unit),
            items: Vec::with_capacity(capacity),
        }
    }

    /// Add a running endpoint.
    pub(crate) fn push(&mut self, addr: SocketAddr, shared: Arc<S>, task: JoinHandle<()>) {
        self.items.push(Endpoint { addr, shared, task });
    }

    /// Endpoint `i`. An index out of range is a bug in the test using the lab: panic, naming it.
    pub(crate) fn get(&self, i: usize) -> &Endpoint<S> {
        let (lab, unit) = self.names;
        match self.items.get(i) {
            Some(e) => e,
            None => panic!("{lab} has {} {unit}s, no {unit} {i}", self.items.len()),
        }
    }

    /// Number of endpoints.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every address, in order.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.items.iter().map(|e| e.addr).collect()
    }
}

impl<S> Drop for Endpoints<S> {
    fn drop(&mut self) {
        for e in &self.items {
            e.task.abort();
        }
    }
}
