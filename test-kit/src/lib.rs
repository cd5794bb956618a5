//! Helpers shared by fencegate's tests, and only by them (a dev-dependency, never published).
//!
//! The tests used to carry their own copies of three chores, each slightly different and some
//! racy: finding an external tool, getting a free loopback port, and starting an emulator on
//! one. One copy here means one behaviour everywhere:
//!
//! * [`tools::require`] finds a tool or fails the test naming the tool and the package that
//!   provides it. A missing emulator is a failure, never a skip: an interop test that does not
//!   run proves nothing.
//! * [`ports`] hands over sockets already bound to port 0 instead of a port number that was
//!   free a moment ago, so no other test can take the port in between.
//! * [`daemon::Daemon`] starts a program that must bind a port itself, checks that *it* holds
//!   the port (not another test's server that took it first), and starts it again on another
//!   port when the one it was given was taken. [`ipmi_sim::IpmiSim`] (OpenIPMI's `ipmi_sim`)
//!   and [`snmpd::ApcPdu`] (net-snmp's `snmpd` as an APC PDU) start the repository's
//!   fixtures on top of it.
//!
//! Everything here talks only to 127.0.0.1 and panics with a message that says what to do,
//! because a helper's failure is the test's failure.

#![warn(missing_docs)]

pub mod daemon;
pub mod ipmi_sim;
pub mod ports;
pub mod snmpd;
pub mod tools;

use std::path::{Path, PathBuf};

/// The repository root, where `hw-fixtures/` lives: tests run from the source tree, so the
/// path this crate was built from is the one they need.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the test kit lives one level below the repository root")
        .to_path_buf()
}

/// A directory of `hw-fixtures/` (e.g. `"ipmi_sim"`, `"snmpd"`).
pub fn fixture_dir(name: &str) -> PathBuf {
    repo_root().join("hw-fixtures").join(name)
}
