//! A fault-injecting BMC simulator for fencegate's tests and demo.
//!
//! One process serves many simulated BMCs. Each BMC has a [`power::PowerModel`] (the
//! emulator-side truth about the power, with a configurable off delay) and a
//! [`faults::FaultProfile`] (stuck relay, dropped packets, slow or dead endpoint, session
//! limit). Protocol front ends read and drive that shared model; [`ipmi`] is the IPMI 2.0
//! (RMCP+) one, built on `fencegate-ipmi-codec`, the codec the `fencegate-ipmi` driver
//! speaks. Its behaviour is checked from outside by ipmitool and FreeIPMI's ipmipower
//! (suites 3 and 17) in `tests/interop.rs`.
//!
//! In-process use (tests, `fencegate demo`): [`ipmi::IpmiLab::start`] with one
//! [`ipmi::BmcConfig`] per BMC, then `addr(i)`, `power_on(i)`, `set_power(i, on)`,
//! `set_faults(i, profile)`, `command_log(i)` and `open_sessions(i)`. Out of process: the
//! `fencegate-bmcsim` binary (`--ipmi N --password-file F …`) prints its endpoints as one
//! JSON line and takes JSON-lines control commands on stdin (see its `--help`).
//!
//! [`redfish`] is the Redfish front end: [`redfish::RedfishLab::start`] with one
//! [`redfish::RedfishConfig`] per HTTPS service (vendor behaviour as a
//! [`redfish::VendorProfile`]), then `addr(i)`, `fingerprint()` (the pin of the certificate
//! generated at start), `power_on(i)`, `set_power(i, on)`, `set_faults(i, profile)`,
//! `set_profile(i, …)`, `set_reported_power_state(i, raw)`, `command_log(i)`, `requests(i)`,
//! `handshakes(i)` and `open_sessions(i)`; out of process, `fencegate-bmcsim --redfish N
//! --redfish-profile NAME`.
//!
//! [`snmp`] simulates APC PDUs (PowerNet-MIB outlet table, SNMPv1/v2c, and SNMPv3 discovery
//! with no users): [`snmp::PduLab::start`] with one [`snmp::PduConfig`] per PDU, then
//! `addr(i)`, `outlet_on(i, outlet)`, `set_outlet(i, outlet, on)`, `set_faults(i, profile)`
//! and `command_log(i)`; the binary takes `--pdu N --outlets M`.

#![warn(missing_docs)]

pub mod faults;
pub mod ipmi;
mod lab;
pub mod power;
pub mod redfish;
mod rng;
pub mod snmp;

pub use faults::FaultProfile;
pub use power::{CommandOutcome, CommandRecord, PowerCommand, PowerModel};
