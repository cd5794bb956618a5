//! IPMI 2.0 "lanplus" (RMCP+) power driver for fencegate.
//!
//! The crate has two layers:
//!
//! * a **sans-IO codec** ([`rmcp`], [`message`], [`rakp`], [`commands`], [`crypto`],
//!   [`session`]) that encodes and decodes both directions of every packet a fencing
//!   conversation needs. It never panics on input and is shared by the BMC simulator
//!   (`fencegate-bmcsim`) and the fuzz target;
//! * a **tokio driver** ([`IpmiFactory`], [`IpmiDriver`]) that runs one short RMCP+ session
//!   per call over a connected UDP socket, always under the call's deadline.
//!
//! Only cipher suites 17 (SHA-256) and 3 (SHA-1) are spoken, both with AES-CBC-128
//! encryption and HMAC integrity; suite 0 and IPMI 1.5 sessions are refused.

#![warn(missing_docs)]

pub mod commands;
pub mod crypto;
mod driver;
pub mod error;
pub mod message;
pub mod rakp;
pub mod rmcp;
pub mod session;
mod transport;
mod wire;

pub use crypto::CipherSuite;
pub use driver::{IpmiDriver, IpmiFactory};
pub use error::DecodeError;

/// The well-known RMCP port.
pub const DEFAULT_PORT: u16 = 623;
