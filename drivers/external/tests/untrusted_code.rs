//! Code fencegate runs as its own user (normally root): a driver program or a fence agent
//! that others could replace is refused when the device is built, before anything runs.

mod common;

use common::*;
use fencegate_driver::{DeviceSpec, DriverFactory, SpecError};
use fencegate_external::{ExternalFactory, FenceAgentFactory};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn refused(factory: &dyn DriverFactory, spec: &DeviceSpec) -> SpecError {
    match factory.build(spec) {
        Ok(_) => panic!("{} built from {}", factory.name(), spec.address),
        Err(e) => e,
    }
}

/// A copy of the example driver (or any script) in `dir`, with `mode`.
fn program(dir: &Path, name: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::copy(example_driver(), &path).unwrap();
    chmod(&path, mode);
    path
}

#[test]
fn a_driver_program_others_can_write_is_refused_at_build() {
    let dir = tempfile::tempdir().unwrap();
    let good = program(dir.path(), "driver", 0o755);
    assert!(ExternalFactory.build(&external_spec(&good, &[])).is_ok());
    for mode in [0o775, 0o757] {
        chmod(&good, mode);
        let e = refused(&ExternalFactory, &external_spec(&good, &[]));
        assert_eq!(e.key.as_deref(), Some("address"));
        assert!(
            e.message.contains(&good.display().to_string()) && e.message.contains("chmod go-w"),
            "{e}"
        );
    }
}

#[test]
fn a_driver_program_in_a_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("drop");
    std::fs::create_dir(&shared).unwrap();
    let prog = program(&shared, "driver", 0o755);
    chmod(&shared, 0o777);
    let e = refused(&ExternalFactory, &external_spec(&prog, &[]));
    assert!(
        e.message
            .contains(&format!("the directory {}", shared.display()))
            && e.message.contains("sticky"),
        "{e}"
    );
    chmod(&shared, 0o1777);
    assert!(ExternalFactory.build(&external_spec(&prog, &[])).is_ok());
}

#[test]
fn a_fence_agent_others_can_write_is_refused_at_build() {
    let dir = tempfile::tempdir().unwrap();
    let agent = program(dir.path(), "fence_ipmilan", 0o755);
    let spec = DeviceSpec {
        name: "agent1".into(),
        driver: "fence-agent".into(),
        address: agent.display().to_string(),
        ..DeviceSpec::default()
    };
    assert!(FenceAgentFactory::new().build(&spec).is_ok());
    chmod(&agent, 0o777);
    let e = refused(&FenceAgentFactory::new(), &spec);
    assert!(
        e.message
            .starts_with(&format!("fence agent {}", agent.display())),
        "{e}"
    );
}
