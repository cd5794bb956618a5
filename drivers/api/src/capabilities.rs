//! What a driver can do, declared up front so the engine can plan without trial and error.

use crate::Action;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a driver instance can do and how gently its endpoint must be treated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Whether the driver can read power state at all. SSH `poweroff -f` cannot, and so can
    /// never produce proof of power-off: the engine caps its outcome at liveness lost.
    pub reads_power_state: bool,
    /// The actions the driver may be asked for.
    pub actions: Vec<Action>,
    /// Whether commands to one endpoint must be strictly one at a time (most BMCs answer
    /// parallel sessions with "busy"). The engine then serializes all callers per endpoint.
    pub serialize_per_endpoint: bool,
    /// The minimum pause between two commands to the same endpoint (some BMCs drop a command
    /// that arrives right after another).
    pub min_command_interval: Duration,
}

impl Capabilities {
    /// A driver that reads state and supports the given actions, one command at a time.
    pub fn readable(actions: &[Action]) -> Self {
        Capabilities {
            reads_power_state: true,
            actions: actions.to_vec(),
            serialize_per_endpoint: true,
            min_command_interval: Duration::ZERO,
        }
    }

    /// Whether `action` is among the supported actions.
    pub fn supports(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }
}

/// One fact identifying the physical endpoint that answered (an IPMI device GUID, a TLS
/// certificate fingerprint, a Redfish system UUID). Recorded in the proof so that an audit can
/// tell *which* box said `Off`, not just which address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentityFact {
    /// What kind of fact this is, e.g. `ipmi-guid`, `tls-sha256`, `redfish-uuid`, `ssh-host-key`.
    pub kind: String,
    /// The value as the endpoint presented it.
    pub value: String,
}

impl IdentityFact {
    /// A fact of the given kind.
    pub fn new(kind: impl Into<String>, value: impl Into<String>) -> Self {
        IdentityFact {
            kind: kind.into(),
            value: value.into(),
        }
    }
}
