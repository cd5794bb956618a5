//! The driver trait and the factory that builds drivers from a device specification.

use crate::{
    Action, Capabilities, DeviceSpec, DriverError, IdentityFact, PowerState, RestorePolicy,
    SpecError,
};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// The future every driver call returns: boxed so that drivers can be used as trait objects
/// (`Arc<dyn PowerDriver>`) and loaded at run time, without a macro crate.
pub type DriverFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 'a>>;

/// What a device said when it accepted a command: evidence, not proof.
///
/// A command being accepted says nothing about the power; BMCs acknowledge power-off seconds
/// before the relay opens. The engine records the receipt and then reads the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandReceipt {
    /// The device's own words about accepting the command (a completion code, an HTTP status,
    /// a task URL, "connection dropped after command").
    pub detail: String,
}

impl CommandReceipt {
    /// A receipt with the given detail.
    pub fn new(detail: impl Into<String>) -> Self {
        CommandReceipt {
            detail: detail.into(),
        }
    }
}

/// One power channel to one device (a BMC, a set of PDU outlets, an SSH target, a plugin).
///
/// Every call carries a wall-clock `deadline`; a driver must return by then (with
/// [`crate::ErrorKind::Timeout`] if need be), bound all its retransmissions by it, and release
/// what it holds (sessions) on every path. The engine also enforces the deadline from outside,
/// so a driver that overruns is cut off, but one that honours it leaves cleaner evidence.
pub trait PowerDriver: Send + Sync {
    /// A stable name for the physical management endpoint, e.g. `ipmi://10.0.0.5:623`. Calls
    /// of drivers sharing an endpoint are serialized by the engine when the capabilities ask
    /// for it, so it must name the box, not the outlet.
    fn endpoint(&self) -> &str;

    /// What exactly this driver switches, one key per thing switched, stable whatever the
    /// device is called: the endpoint for a channel that powers the whole host (a BMC), one
    /// key per outlet for a PDU device. The engine keys power-on locks by them, so any name
    /// or URL reaching a locked box (or one outlet of it) meets the lock. Cheap and without
    /// I/O; after the first call a driver may name the address it really reached (resolved),
    /// which the engine checks again before a power-on.
    fn switched(&self) -> Vec<String> {
        vec![self.endpoint().to_owned()]
    }

    /// The scope of the identity this driver's endpoint proves: one record per scope is
    /// remembered. The endpoint (the box answering: a BMC, a PDU's SNMP agent) by default;
    /// a service fronting several systems (Redfish) names the system.
    fn identity_scope(&self) -> String {
        self.endpoint().to_owned()
    }

    /// What this driver can do. Cheap and without I/O; a driver that learns its
    /// capabilities on first contact (an external program's hello) may refine them after its
    /// first call, and the engine asks again after a call answered `Unsupported`.
    fn capabilities(&self) -> Capabilities;

    /// Read the current power state afresh from the device (never from a cache).
    fn status(&self, deadline: Instant) -> DriverFuture<'_, PowerState>;

    /// Ask the device to perform `action`. Success means the device accepted the command,
    /// nothing more. A device that says it is already in that state answers
    /// [`crate::ErrorKind::StateConflict`].
    fn set_power(&self, action: Action, deadline: Instant) -> DriverFuture<'_, CommandReceipt>;

    /// What the driver has learned about the endpoint's identity so far (cheap, no I/O).
    /// Facts the endpoint proved with the credentials are marked
    /// [`IdentityFact::authenticated`]; they must be known after the first successful call,
    /// because the engine compares them with the pinned or remembered identity before it
    /// sends any command.
    fn identity(&self) -> Vec<IdentityFact> {
        Vec::new()
    }

    /// Read what the host does when power returns. Drivers whose protocol has no such
    /// setting keep the default, which answers [`crate::ErrorKind::Unsupported`].
    fn restore_policy(&self, deadline: Instant) -> DriverFuture<'_, RestorePolicy> {
        let _ = deadline;
        Box::pin(async {
            Err(DriverError::unsupported(
                "this driver cannot read a power restore policy",
            ))
        })
    }

    /// Set what the host does when power returns (fencing sets [`RestorePolicy::AlwaysOff`]
    /// so a returning outlet or mains cannot undo the fence; `unfence` puts back the value
    /// read before). Success means the device accepted the setting.
    fn set_restore_policy(&self, policy: RestorePolicy, deadline: Instant) -> DriverFuture<'_, ()> {
        let _ = (policy, deadline);
        Box::pin(async {
            Err(DriverError::unsupported(
                "this driver cannot set a power restore policy",
            ))
        })
    }

    /// How many power supplies the management controller reports for the host (installed
    /// ones, present or not powered). `check --probe` compares it with the outlets of the
    /// host's PDU levels: a dual-PSU host fenced through one outlet keeps running. Drivers
    /// that cannot tell keep the default, which answers [`crate::ErrorKind::Unsupported`].
    fn power_supplies(&self, deadline: Instant) -> DriverFuture<'_, u32> {
        let _ = deadline;
        Box::pin(async {
            Err(DriverError::unsupported(
                "this driver cannot count power supplies",
            ))
        })
    }

    /// Release anything held between calls (a BMC session kept across an operation's
    /// pre-read, command and readings). The engine calls it, bounded, at the end of every
    /// operation and status read; the default holds nothing.
    fn release(&self, deadline: Instant) -> DriverFuture<'_, ()> {
        let _ = deadline;
        Box::pin(async { Ok(()) })
    }
}

/// Builds drivers of one kind from device specifications (configuration or a device URL).
pub trait DriverFactory: Send + Sync {
    /// The driver name used in configuration and as the URL scheme, e.g. `ipmi`.
    fn name(&self) -> &'static str;

    /// One line saying what the driver talks to, for `fencegate list --drivers` and errors.
    fn summary(&self) -> &'static str;

    /// Validate `spec` and build a driver. No I/O: a bad option is reported here, naming the
    /// option; an unreachable device is reported by the first call.
    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError>;

    /// The secret roles this driver uses (`password`, `kg`, `community`, …). A secret given
    /// to a device by its own `ROLE_file`/`ROLE_env` reference is passed whatever this says;
    /// this list decides where a *fallback* secret may go: the command line's
    /// `--password-file`/`--password-env` and `FENCEGATE_PASSWORD` reach an ad-hoc device
    /// only if its driver lists `password`. A fallback meant for BMCs must never reach a
    /// program or library that did not ask for it (an `external` driver, a plugin), so the
    /// default is none: a driver that takes a password says so.
    fn secret_roles(&self) -> &'static [&'static str] {
        &[]
    }
}
