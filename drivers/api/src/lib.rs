//! The power driver contract of fencegate.
//!
//! Every way of reaching a power channel (IPMI, Redfish, SNMP PDU outlets, SSH, plugins) is a
//! [`PowerDriver`]. The contract is deliberately small and capability-shaped: a driver reads
//! power state and sends power commands, nothing more. Deciding whether a host is *fenced* is
//! the engine's job, never a driver's: a driver reports readings, and only a fresh
//! [`PowerState::Off`] reading can ever become proof.
//!
//! This crate depends on nothing heavy (serde, thiserror, secrecy) so that driver crates,
//! plugin SDKs and the engine can all share it without dragging each other in.

// The contract is read by people writing drivers in other crates and other processes: every
// public item says what it promises and why.
#![deny(missing_docs)]

mod capabilities;
mod driver;
mod error;
#[cfg(doctest)]
mod growth;
mod redact;
mod spec;
mod state;
mod trust;

pub use capabilities::{Capabilities, Channel, IdentityFact, RestorePolicy};
pub use driver::{CommandReceipt, DriverFactory, DriverFuture, PowerDriver};
pub use error::{DriverError, ErrorKind};
pub use redact::{MASK, MIN_PARTIAL, Redactor, secret_like};
pub use secrecy::{ExposeSecret, SecretString};
pub use spec::{DeviceSpec, SpecError, split_host_port};
pub use state::{Action, PowerState};
pub use trust::{trusted, trusted_file};
