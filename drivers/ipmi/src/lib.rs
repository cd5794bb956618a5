//! IPMI 2.0 "lanplus" (RMCP+) power driver for fencegate.
//!
//! The public API is only the [`IpmiFactory`] (what the binary registers) and the
//! [`IpmiDriver`] it builds: a tokio driver that runs one short RMCP+ session per call over a
//! connected UDP socket, always under the call's deadline. The wire format lives in the
//! sans-IO crate `fencegate-ipmi-codec`, which the BMC simulator shares, so that nothing
//! outside this crate depends on how the driver talks.
//!
//! Only cipher suites 17 (SHA-256) and 3 (SHA-1) are spoken, both with AES-CBC-128
//! encryption and HMAC integrity; suite 0 and IPMI 1.5 sessions are refused.

#![warn(missing_docs)]

mod driver;
mod transport;

pub use driver::{IpmiDriver, IpmiFactory};

/// The well-known RMCP port, used when a device address names none.
const DEFAULT_PORT: u16 = 623;
