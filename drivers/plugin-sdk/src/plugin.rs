//! The trait a Rust plugin implements: blocking, one device per value, no async runtime.

use crate::wire::Device;
use fencegate_driver::{Action, Channel, CommandReceipt, DriverError, IdentityFact, PowerState};
use std::ffi::CStr;
use std::time::Instant;

/// One kind of power channel, as a plugin provides it.
///
/// A value is one configured device. fencegate calls one method at a time per value (it
/// serializes calls on each instance), from a thread of its blocking pool, so methods may
/// block on I/O; they take `&mut self` for that reason. Different values may be used from
/// different threads at once, so shared statics need their own synchronization.
///
/// Every method must return by its `deadline` (answer [`fencegate_driver::ErrorKind::Timeout`]
/// if need be): fencegate stops waiting then, and a thread still inside the plugin is
/// simply abandoned. Panics are caught by [`crate::export_plugin!`] and reported as a
/// `protocol` error; they never unwind into fencegate.
pub trait Plugin: Send + Sized + 'static {
    /// The plugin's name, in messages and `fencegate plugin check` (UTF-8, e.g. `c"acme-powerctl"`).
    const NAME: &'static CStr;
    /// The plugin's own version, recorded as evidence (UTF-8).
    const VERSION: &'static CStr;

    /// The actions this plugin supports (for the engine's planning).
    fn actions() -> Vec<Action>;

    /// Whether [`Plugin::status`] works. A plugin that cannot read power state can never
    /// produce proof of power-off.
    fn reads_power_state() -> bool {
        true
    }

    /// What kind of channel the plugin switches, so the engine knows what its `Off` means:
    /// a management controller ([`Channel::Bmc`]), one PDU outlet ([`Channel::Outlet`]), or
    /// storage or network isolation while the host keeps running ([`Channel::Isolation`],
    /// which must not read power state). The default, [`Channel::Other`], says nothing more
    /// than "some power switch".
    fn channel() -> Channel {
        Channel::Other
    }

    /// Whether [`Plugin::identity`] includes facts the endpoint proved with the credentials
    /// (marked with [`IdentityFact::authenticated`]); they must be known after the first
    /// successful `status`. Without such facts a device cannot be pinned: a relay or a
    /// re-addressed box would go unnoticed, and `fencegate plugin check` says so.
    fn authenticated_identity() -> bool {
        false
    }

    /// Validate the device and build an instance. No device I/O here (an unreachable device is
    /// reported by the first call); refuse a bad or unknown option naming it.
    fn configure(device: Device) -> Result<Self, DriverError>;

    /// Read the power state afresh from the device, never from a cache. Report transitions
    /// as such (`PoweringOff` is not `Off`) and anything else as `Unknown` with the device's
    /// words: only a fresh `Off` can ever become proof, and that is the engine's call.
    fn status(&mut self, deadline: Instant) -> Result<PowerState, DriverError>;

    /// Ask the device to perform `action`. Success means the device accepted the command,
    /// nothing more; the engine then reads the state itself.
    fn set_power(
        &mut self,
        action: Action,
        deadline: Instant,
    ) -> Result<CommandReceipt, DriverError>;

    /// What the plugin has learned about the endpoint's identity (a serial number, a
    /// certificate fingerprint), attached to every answer as evidence. Mark a fact
    /// [`IdentityFact::authenticated`] only if the endpoint had to prove it with the
    /// credentials, and only if [`Plugin::authenticated_identity`] says so (the host keeps
    /// the mark only then); anything an on-path box could forge is plain evidence.
    fn identity(&self) -> Vec<IdentityFact> {
        Vec::new()
    }
}
