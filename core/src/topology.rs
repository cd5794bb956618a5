//! Hosts and the ordered levels of devices that can fence them.

use crate::identity::{self, Pin};
use crate::policy::Policy;
use crate::registry::Registry;
use fencegate_driver::{Channel, DeviceSpec, PowerDriver, SpecError};
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
    /// The address as configured (a BMC's host:port, a program's path, an agent's name).
    pub address: String,
    /// What the device reaches, whatever it is called (see [`identity::device_key`]).
    pub key: String,
    /// What the device switches, whatever it is called (driver and each key of
    /// [`PowerDriver::switched`]): the keys of the power-on locks a fence through it sets.
    pub lock_keys: Vec<String>,
    /// Where the identity of the box behind this device is remembered (see
    /// [`identity::endpoint_key`]).
    pub endpoint_key: String,
    /// Identities the operator pinned; checked before any command.
    pub pins: Vec<Pin>,
    /// Whether the driver declared, when it was built, that it reads power state. A device
    /// declared a reader that turns out blind at first contact must not silently drop out
    /// of its level's proof.
    pub declared_reader: bool,
    /// What kind of channel the driver declared when it was built.
    pub channel: Channel,
}

impl Device {
    /// A device around an already built driver, keyed by its endpoint (tests, the demo).
    pub fn new(name: &str, driver_name: &str, driver: Arc<dyn PowerDriver>) -> Self {
        let caps = driver.capabilities();
        Device {
            lock_keys: driver
                .switched()
                .iter()
                .map(|k| format!("{driver_name}|{k}"))
                .collect(),
            address: driver.endpoint().to_owned(),
            key: format!("{driver_name}|{}", driver.endpoint()),
            endpoint_key: format!("{driver_name}|{}", driver.identity_scope()),
            name: name.to_owned(),
            driver_name: driver_name.to_owned(),
            driver,
            pins: Vec::new(),
            declared_reader: caps.reads_power_state,
            channel: caps.channel,
        }
    }

    /// Build a device from its specification: take the identity pins off the options (the
    /// engine checks them, the driver never sees them), build the driver and key it by what
    /// it reaches.
    ///
    /// The device option `reads_power_state = false` declares a device blind before first
    /// contact (an external program whose hello will say so): without it, a driver that
    /// declares itself a reader when built and turns out blind fails its level's proof.
    pub fn from_spec(mut spec: DeviceSpec, registry: &Registry) -> Result<Self, SpecError> {
        let pins = identity::take_pins(&mut spec)?;
        let declared_blind = match spec.options.remove("reads_power_state").as_deref() {
            None | Some("true") => false,
            Some("false") => true,
            Some(other) => {
                return Err(SpecError::for_key(
                    "reads_power_state",
                    format!("must be true or false, not {other:?}"),
                ));
            }
        };
        let driver = registry.build(&spec)?;
        let mut key = identity::device_key(&spec, &pins);
        // Declared blind proves less: another target than the same device declared a reader.
        if declared_blind {
            key.push_str("declared-blind;");
        }
        let device = Device::new(&spec.name, &spec.driver, driver);
        if !pins.is_empty() && (declared_blind || !device.declared_reader) {
            return Err(SpecError::for_key(
                &pins[0].option,
                "an identity pin needs a device that reads power state: the engine checks it after a reading, before any command (an in-band device verifies its host key instead)",
            ));
        }
        Ok(Device {
            key,
            address: spec.address.clone(),
            endpoint_key: format!("{}|{}", spec.driver, device.driver.identity_scope()),
            pins,
            declared_reader: device.declared_reader && !declared_blind,
            ..device
        })
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("driver", &self.driver_name)
            .field("endpoint", &self.driver.endpoint())
            .field("key", &self.key)
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
    /// The digest of the inventory text the host came from (`None` for ad-hoc devices):
    /// every proof records it, so an audit knows which configuration decided the boxes.
    pub inventory: Option<String>,
}

impl Host {
    /// Whether `name` is this host's name or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }

    /// What a proof of this host rests on: the devices of each level (by what they reach,
    /// not by name) and the policy that decides what counts as proof. Two requests share an
    /// operation's verdict only when their digests are equal; a fence run with other devices,
    /// another inventory or a weaker policy under the same host name is another target.
    pub fn target_digest(&self) -> String {
        let p = &self.policy;
        let mut key = identity::Key::default();
        key.part(&format!(
            "confirmations={} off_hold={:?} liveness={} isolation={} require_identity={}",
            p.confirmations,
            p.off_hold,
            p.accept_liveness_loss,
            p.accept_isolation,
            p.require_identity
        ));
        for level in &self.levels {
            key.part("level");
            let mut keys: Vec<&str> = level.iter().map(|d| d.key.as_str()).collect();
            keys.sort_unstable();
            for k in keys {
                key.part(k);
            }
        }
        identity::digest(&key.0)
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
