//! Per-endpoint serialization: one call at a time to a management endpoint, and a minimum
//! pause between commands, shared by every operation of this process (many BMCs answer
//! parallel sessions with "busy", and some drop a command that follows another too closely).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use tokio::time::Instant;

/// The last command sent to an endpoint, guarded by the endpoint's turn.
#[derive(Debug, Default)]
pub(crate) struct EndpointTurn {
    last_command: Option<Instant>,
}

impl EndpointTurn {
    /// Wait (bounded by `deadline`) until `interval` has passed since the last command, then
    /// note that a command goes out now. Returns false if the deadline comes first.
    pub(crate) async fn pace_command(&mut self, interval: Duration, deadline: Instant) -> bool {
        if let Some(last) = self.last_command {
            let ready = last + interval;
            if ready > deadline {
                return false;
            }
            tokio::time::sleep_until(ready).await;
        }
        self.last_command = Some(Instant::now());
        true
    }
}

/// The turns of all endpoints this process has talked to.
#[derive(Debug, Default)]
pub(crate) struct EndpointGate {
    turns: Mutex<HashMap<String, Arc<AsyncMutex<EndpointTurn>>>>,
}

impl EndpointGate {
    /// Wait for `endpoint`'s turn, or give up at `deadline`.
    pub(crate) async fn turn(
        &self,
        endpoint: &str,
        deadline: Instant,
    ) -> Option<OwnedMutexGuard<EndpointTurn>> {
        let slot = {
            let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(turns.entry(endpoint.to_owned()).or_default())
        };
        tokio::time::timeout_at(deadline, slot.lock_owned())
            .await
            .ok()
    }
}
