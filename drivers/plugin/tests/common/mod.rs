//! Helpers shared by the plugin tests: compiling C plugins with `cc`, finding the example
//! Rust plugin's shared library, and building device specifications.

#![allow(dead_code)]

use fencegate_driver::{DeviceSpec, SecretString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The C header plugins compile against.
pub fn include_dir() -> PathBuf {
    crate_dir().join("../plugin-sdk/include")
}

/// A compiled C plugin and the temporary directory holding it.
pub struct CPlugin {
    pub path: PathBuf,
    _dir: TempDir,
}

/// Compile `source` with `cc -shared -fPIC` and the given `-D` defines into a fresh
/// temporary directory. A missing compiler fails the test, naming the package to install
/// (the test kit's rule).
pub fn compile_c(source: &Path, defines: &[&str]) -> CPlugin {
    let dir = tempfile::Builder::new()
        .prefix("fencegate-plugin-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary directory");
    let stem = source
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    let path = dir.path().join(format!(
        "lib{stem}{}.so",
        defines.concat().to_lowercase().replace('-', "_")
    ));
    let mut cmd = Command::new(fencegate_test_kit::tools::require("cc"));
    cmd.args(["-shared", "-fPIC", "-Wall", "-O0", "-I"])
        .arg(include_dir())
        .args(defines)
        .arg("-o")
        .arg(&path)
        .arg(source);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `cc`: {e}"));
    assert!(
        output.status.success(),
        "cc failed for {}: {}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    CPlugin { path, _dir: dir }
}

/// The misbehaving fixture with these compile-time faults.
pub fn misbehaving(defines: &[&str]) -> CPlugin {
    compile_c(&crate_dir().join("tests/fixtures/misbehaving.c"), defines)
}

/// The example C plugin (state file).
pub fn state_file_plugin() -> CPlugin {
    compile_c(
        &crate_dir().join("../../plugins-example/c-plugin/state_file_plugin.c"),
        &[],
    )
}

/// The example Rust plugin's shared library, built as a workspace member into the same
/// target directory as this test.
pub fn acme_plugin() -> PathBuf {
    fencegate_test_kit::built_library("fencegate_acme_plugin", "fencegate-acme-plugin")
}

/// A `plugin` device for the library at `path` with these options.
pub fn spec(path: &Path, options: &[(&str, &str)]) -> DeviceSpec {
    DeviceSpec {
        name: "node7".into(),
        driver: "plugin".into(),
        address: path.display().to_string(),
        options: options
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    }
}

/// `spec` plus a secret.
pub fn with_secret(mut spec: DeviceSpec, role: &str, value: &str) -> DeviceSpec {
    spec.secrets
        .insert(role.to_owned(), SecretString::from(value.to_owned()));
    spec
}

/// A deadline `ms` milliseconds from now.
pub fn in_ms(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}
