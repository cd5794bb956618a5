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

/// The shared library `lib<name>.so` that the workspace member `package` builds as a
/// `cdylib`, from the target directory the running test was built into (a test runs from
/// `target/<profile>/deps/`; cargo leaves the library there and in `target/<profile>/`). A
/// library built by another profile or checkout is never picked up. Fails the test, saying
/// how to build it, when it is not there.
pub fn built_library(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let file = format!("lib{name}.so");
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&file))
        .collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{file} was not found (looked at {candidates:?}): build it first (`cargo build \
                 -p {package}`, or `cargo test --workspace`, which builds it as a cdylib)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_not_built_fails_naming_how_to_build_it() {
        let err = std::panic::catch_unwind(|| built_library("no_such_plugin", "no-such-crate"))
            .expect_err("nothing builds it");
        let msg = err.downcast_ref::<String>().expect("message");
        assert!(msg.contains("libno_such_plugin.so"), "{msg}");
        assert!(msg.contains("cargo build -p no-such-crate"), "{msg}");
    }

    #[test]
    fn the_fixtures_are_found_from_the_repository_root() {
        assert!(fixture_dir("snmpd").join("snmpd.conf").is_file());
        assert!(repo_root().join("Cargo.toml").is_file());
    }
}
