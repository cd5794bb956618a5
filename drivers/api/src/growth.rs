//! The contract's enums are `#[non_exhaustive]`: a later contract may add a power state, an
//! action, a channel kind, an error class or a restore policy without breaking every driver
//! and plugin built against this one. The price is that a match outside this crate needs a
//! wildcard arm, and that arm must do the safe thing: an unknown state is never `Off`, an
//! unknown action is never sent, an unknown channel is trusted no more than
//! `Channel::Other`, an unknown error class is never retried and never success, and an
//! unknown restore policy is never taken for `AlwaysOff`.
//!
//! Doctests compile as a crate of their own, as a driver would. Each pair below proves both
//! halves for one enum: with the wildcard arm the match compiles and falls back safely;
//! without it the very same match does not compile (so dropping `#[non_exhaustive]` fails a
//! test).
//!
//! ```
//! use fencegate_driver::PowerState;
//! fn proves_off(state: &PowerState) -> bool {
//!     match state {
//!         PowerState::Off => true,
//!         PowerState::On | PowerState::PoweringOn | PowerState::PoweringOff => false,
//!         PowerState::Unknown(_) => false,
//!         _ => false,
//!     }
//! }
//! assert!(proves_off(&PowerState::Off));
//! assert!(!proves_off(&PowerState::Unknown("Off".into())));
//! ```
//!
//! ```compile_fail
//! use fencegate_driver::PowerState;
//! fn proves_off(state: &PowerState) -> bool {
//!     match state {
//!         PowerState::Off => true,
//!         PowerState::On | PowerState::PoweringOn | PowerState::PoweringOff => false,
//!         PowerState::Unknown(_) => false,
//!     }
//! }
//! ```
//!
//! ```
//! use fencegate_driver::{Action, DriverError};
//! fn command(action: Action) -> Result<&'static str, DriverError> {
//!     match action {
//!         Action::Off => Ok("power down"),
//!         Action::On => Ok("power up"),
//!         Action::Cycle => Ok("power cycle"),
//!         Action::GracefulOff => Ok("soft shutdown"),
//!         other => Err(DriverError::unsupported(format!("no command for {other}"))),
//!     }
//! }
//! assert_eq!(command(Action::Off).unwrap(), "power down");
//! ```
//!
//! ```compile_fail
//! use fencegate_driver::{Action, DriverError};
//! fn command(action: Action) -> Result<&'static str, DriverError> {
//!     match action {
//!         Action::Off => Ok("power down"),
//!         Action::On => Ok("power up"),
//!         Action::Cycle => Ok("power cycle"),
//!         Action::GracefulOff => Ok("soft shutdown"),
//!     }
//! }
//! ```
//!
//! ```
//! use fencegate_driver::Channel;
//! fn switches_main_power(channel: Channel) -> bool {
//!     match channel {
//!         Channel::Bmc => true,
//!         Channel::Outlet | Channel::InBand | Channel::Isolation | Channel::Other => false,
//!         _ => false,
//!     }
//! }
//! assert!(switches_main_power(Channel::Bmc));
//! ```
//!
//! ```compile_fail
//! use fencegate_driver::Channel;
//! fn switches_main_power(channel: Channel) -> bool {
//!     match channel {
//!         Channel::Bmc => true,
//!         Channel::Outlet | Channel::InBand | Channel::Isolation | Channel::Other => false,
//!     }
//! }
//! ```
//!
//! ```
//! use fencegate_driver::ErrorKind;
//! fn worth_retrying(kind: ErrorKind) -> bool {
//!     match kind {
//!         ErrorKind::Unreachable | ErrorKind::Busy | ErrorKind::Timeout => true,
//!         ErrorKind::Auth
//!         | ErrorKind::Unsupported
//!         | ErrorKind::StateConflict
//!         | ErrorKind::Protocol
//!         | ErrorKind::VerificationFailed => false,
//!         _ => false,
//!     }
//! }
//! assert!(!worth_retrying(ErrorKind::Auth));
//! ```
//!
//! ```compile_fail
//! use fencegate_driver::ErrorKind;
//! fn worth_retrying(kind: ErrorKind) -> bool {
//!     match kind {
//!         ErrorKind::Unreachable | ErrorKind::Busy | ErrorKind::Timeout => true,
//!         ErrorKind::Auth
//!         | ErrorKind::Unsupported
//!         | ErrorKind::StateConflict
//!         | ErrorKind::Protocol
//!         | ErrorKind::VerificationFailed => false,
//!     }
//! }
//! ```
//!
//! ```
//! use fencegate_driver::RestorePolicy;
//! fn stays_off(policy: RestorePolicy) -> bool {
//!     match policy {
//!         RestorePolicy::AlwaysOff => true,
//!         RestorePolicy::AlwaysOn | RestorePolicy::LastState => false,
//!         _ => false,
//!     }
//! }
//! assert!(stays_off(RestorePolicy::AlwaysOff));
//! ```
//!
//! ```compile_fail
//! use fencegate_driver::RestorePolicy;
//! fn stays_off(policy: RestorePolicy) -> bool {
//!     match policy {
//!         RestorePolicy::AlwaysOff => true,
//!         RestorePolicy::AlwaysOn | RestorePolicy::LastState => false,
//!     }
//! }
//! ```
