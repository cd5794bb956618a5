//! Helpers shared by the integration tests: specs, deadlines, process checks. (Required
//! tools are found by `fencegate_test_kit::tools`.)
#![allow(dead_code)]

use fencegate_driver::{DeviceSpec, DriverFactory, PowerDriver, SecretString};
use fencegate_external::ExternalFactory;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The example driver that doubles as a scriptable test device.
pub fn example_driver() -> PathBuf {
    repo_root().join("plugins-example/scripted-driver/scripted-driver")
}

/// A misbehaving driver script from `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A deadline `ms` milliseconds from now.
pub fn deadline(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

/// A spec for the `external` driver running `program`.
pub fn external_spec(program: &Path, options: &[(&str, &str)]) -> DeviceSpec {
    let mut spec = DeviceSpec {
        name: "dev-under-test".into(),
        driver: "external".into(),
        address: program.to_string_lossy().into_owned(),
        ..Default::default()
    };
    for (k, v) in options {
        spec.options.insert((*k).into(), (*v).into());
    }
    spec
}

/// Add a secret to a spec.
pub fn with_secret(mut spec: DeviceSpec, role: &str, value: &str) -> DeviceSpec {
    spec.secrets.insert(role.into(), SecretString::from(value));
    spec
}

/// Build an `external` driver.
pub fn external(spec: &DeviceSpec) -> Arc<dyn PowerDriver> {
    ExternalFactory.build(spec).expect("valid spec")
}

/// The example driver over a fresh state file holding `initial`.
pub fn scripted(
    dir: &Path,
    initial: &str,
    options: &[(&str, &str)],
) -> (Arc<dyn PowerDriver>, PathBuf) {
    fencegate_test_kit::tools::require("python3");
    let state = dir.join("power");
    std::fs::write(&state, format!("{initial}\n")).expect("write state file");
    let state_str = state.to_string_lossy().into_owned();
    let mut opts = vec![("state_file", state_str.as_str())];
    opts.extend_from_slice(options);
    (external(&external_spec(&example_driver(), &opts)), state)
}

/// The state file's content, trimmed.
pub fn read_state(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("read state file")
        .trim()
        .to_owned()
}

/// Whether `pid` is gone (or a zombie, waiting only for its parent to reap it).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
    }
}

/// Wait up to `within` for every pid to be gone.
pub fn wait_gone(pids: &[u32], within: Duration) -> bool {
    let until = Instant::now() + within;
    loop {
        if pids.iter().all(|p| process_gone(*p)) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids written one per line to `file` by a fixture.
pub fn read_pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}
