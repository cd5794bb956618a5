//! A fault-injecting BMC simulator for fencegate's tests and demo.
//!
//! One process serves many simulated BMCs. Each BMC has a [`power::PowerModel`] (the
//! emulator-side truth about the power, with a configurable off delay) and a
//! [`faults::FaultProfile`] (stuck relay, dropped packets, slow or dead endpoint, session
//! limit). Protocol front ends read and drive that shared model; [`ipmi`] is the IPMI 2.0
//! (RMCP+) one, built on the same codec as the `fencegate-ipmi` driver.

#![warn(missing_docs)]

pub mod faults;
pub mod ipmi;
pub mod power;
mod rng;

pub use faults::FaultProfile;
pub use power::{CommandOutcome, CommandRecord, PowerCommand, PowerModel};
