//! Test support for the engine: a scriptable in-memory driver, clocks a test controls, and
//! the real SQLite journal opened inline. Lives only in tests; production code never sees
//! any of it.

#![allow(dead_code)]

pub mod clock;
pub mod journal;
pub mod scripted;

use fencegate_core::{Device, Host, Policy};
use std::sync::Arc;

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
