//! Hosts and the ordered levels of devices that can fence them.

use crate::policy::Policy;
use fencegate_driver::PowerDriver;
use std::fmt;
use std::sync::Arc;

/// A configured device: a name and the driver instance that reaches it.
pub struct Device {
    /// The device's name in the inventory (or the URL it came from).
    pub name: String,
    /// The driver name (`ipmi`, `redfish`, …), for records and messages.
    pub driver_name: String,
    /// The driver instance.
    pub driver: Arc<dyn PowerDriver>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("driver", &self.driver_name)
            .field("endpoint", &self.driver.endpoint())
            .finish()
    }
}

/// A host and how to fence it: levels tried in order; every device of a level must verify
/// (both PDU outlets of a dual-PSU host), and a failed level falls through to the next
/// (typically BMC first, then PDU).
#[derive(Debug)]
pub struct Host {
    /// The host's name (as the cloud knows it).
    pub name: String,
    /// Other names the host may be called by (OpenNebula NAME, FQDN).
    pub aliases: Vec<String>,
    /// OpenNebula host ID, when the inventory maps one.
    pub opennebula_id: Option<u64>,
    /// The levels, in order.
    pub levels: Vec<Vec<Arc<Device>>>,
    /// The effective policy (defaults with this host's overrides).
    pub policy: Policy,
}

impl Host {
    /// Whether `name` is this host's name or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }

    /// Every device of every level, each once, in order.
    pub fn devices(&self) -> Vec<Arc<Device>> {
        let mut out: Vec<Arc<Device>> = Vec::new();
        for d in self.levels.iter().flatten() {
            if !out.iter().any(|o| o.name == d.name) {
                out.push(d.clone());
            }
        }
        out
    }
}
