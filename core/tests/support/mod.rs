//! Test support for the engine: a scriptable in-memory driver, clocks a test controls, and
//! the real SQLite journal opened inline. Lives only in tests; production code never sees
//! any of it.

#![allow(dead_code)]

pub mod clock;
pub mod journal;
pub mod scripted;

use fencegate_core::{Device, Host, Policy, Request};
use std::sync::Arc;
use std::time::Duration;

/// A host with the given levels of devices.
pub fn host(name: &str, levels: Vec<Vec<Arc<Device>>>, policy: Policy) -> Arc<Host> {
    Arc::new(Host {
        name: name.into(),
        aliases: Vec::new(),
        opennebula_id: None,
        levels,
        policy,
        inventory: None,
    })
}

/// A request from `requester`, through the default door, not forced.
pub fn request(requester: &str) -> Request {
    Request {
        requester: requester.into(),
        reason: "attack".into(),
        force: false,
        door: Default::default(),
    }
}

/// A policy for power-on lock attacks: generous deadlines, no hold, no storm guard, so only
/// the locks decide.
pub fn lock_policy() -> Policy {
    Policy {
        attempt_timeout: Duration::from_secs(20),
        overall_timeout: Duration::from_secs(60),
        off_hold: Duration::ZERO,
        storm_limit: 0,
        ..Policy::default()
    }
}
