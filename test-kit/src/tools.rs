//! Finding the external programs the interop tests drive.
//!
//! One search order for every test: `PATH` first (so a venv or a locally built tool can
//! take precedence), then the system directories, which a non-root `PATH` often lacks
//! (`sshd`, `snmpd`, `ipmipower` and the fence agents live in `sbin`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Directories searched after `PATH`.
const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Which package provides each tool the tests use, for the failure message. A tool missing
/// from this table is a mistake in a test, and [`require`] says so.
const PACKAGES: &[(&str, &str)] = &[
    ("ipmi_sim", "Debian package `openipmi`"),
    ("ipmitool", "Debian package `ipmitool`"),
    ("ipmipower", "Debian package `freeipmi-tools`"),
    ("snmpd", "Debian package `snmpd`"),
    ("snmpget", "Debian package `snmp`"),
    ("snmpset", "Debian package `snmp`"),
    ("snmpwalk", "Debian package `snmp`"),
    ("sshd", "Debian package `openssh-server`"),
    ("ssh-keygen", "Debian package `openssh-client`"),
    ("useradd", "Debian package `passwd`"),
    ("python3", "Debian package `python3`"),
    ("openssl", "Debian package `openssl`"),
    ("gcc", "Debian package `gcc`"),
    ("cc", "Debian package `gcc`"),
    (
        "sushy-emulator",
        "Python package `sushy-tools==2.2.0` (`python3 -m venv VENV && VENV/bin/pip install \
         sushy-tools==2.2.0`, then VENV/bin first on PATH)",
    ),
];

/// What provides `tool`: the table above, and the Debian package `fence-agents` for every
/// `fence_*` agent.
pub fn package_for(tool: &str) -> Option<&'static str> {
    if tool.starts_with("fence_") {
        return Some("Debian package `fence-agents`");
    }
    PACKAGES
        .iter()
        .find(|(name, _)| *name == tool)
        .map(|(_, package)| *package)
}

/// The executable `tool` in `PATH` or the system directories, if there is one.
pub fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

/// The executable `tool`, or a test failure that names the tool and what to install. Never
/// a skip: a test whose emulator is missing has not shown anything.
pub fn require(tool: &str) -> PathBuf {
    let Some(package) = package_for(tool) else {
        panic!("the test kit knows no package for `{tool}`: add it to test-kit's tool table");
    };
    find(tool).unwrap_or_else(|| {
        panic!(
            "`{tool}` is required by this test and is not in PATH or {}: install the {package}",
            SYSTEM_DIRS.join(", ")
        )
    })
}

/// The Python interpreter that runs `tool`, a console script installed by pip (its `#!`
/// line), checked to import each of `modules`: the one a test must use for the tool's own
/// modules (a fixture that wraps the tool, a helper that needs one of its dependencies).
/// Fails the test like [`require`], naming what provides the tool, if the tool is missing,
/// is not a Python script, or its Python lacks a module.
pub fn require_python_of(tool: &str, modules: &[&str]) -> PathBuf {
    let script = require(tool);
    let package = package_for(tool).unwrap_or("package that provides it");
    python_of(&script, package, modules)
}

/// [`require_python_of`] for the script at `script`, provided by `package`.
fn python_of(script: &Path, package: &str, modules: &[&str]) -> PathBuf {
    let text =
        std::fs::read(script).unwrap_or_else(|e| panic!("cannot read `{}`: {e}", script.display()));
    let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let first_line = String::from_utf8_lossy(first_line);
    let Some(shebang) = first_line.strip_prefix("#!") else {
        panic!(
            "`{}` is not a script with a `#!` line: reinstall the {package}",
            script.display()
        );
    };
    let mut words = shebang.split_whitespace();
    let mut python = PathBuf::from(words.next().unwrap_or_default());
    // `#!/usr/bin/env python3`: the interpreter is the word after `env`, found like a tool.
    if python.file_name().is_some_and(|name| name == "env") {
        let name = words.next().unwrap_or_default();
        python = find(name).unwrap_or_else(|| {
            panic!(
                "`{name}`, the interpreter of `{}`, is not in PATH",
                script.display()
            )
        });
    }
    // `sys` first: with no modules asked for, the interpreter is still shown to run.
    let imports = format!("import {}", [&["sys"], modules].concat().join(", "));
    let output = std::process::Command::new(&python)
        .args(["-c", &imports])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", python.display()));
    assert!(
        output.status.success(),
        "`{}`, the Python of `{}`, cannot `{imports}`: install the {package}\n{}",
        python.display(),
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    python
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_every_system_has_is_found() {
        let sh = require_test_tool("sh");
        assert!(sh.is_absolute(), "{}", sh.display());
        assert!(is_executable(&sh));
    }

    #[test]
    fn a_missing_tool_is_a_failure_naming_its_package() {
        let err = std::panic::catch_unwind(|| require("fence_no_such_agent_here"))
            .expect_err("a missing tool must fail the test");
        let msg = err
            .downcast_ref::<String>()
            .expect("the failure is a formatted message");
        assert!(msg.contains("`fence_no_such_agent_here`"), "{msg}");
        assert!(msg.contains("fence-agents"), "{msg}");
    }

    #[test]
    fn an_unknown_tool_is_a_mistake_in_the_test() {
        let err = std::panic::catch_unwind(|| require("sh")).expect_err("`sh` is not in the table");
        let msg = err.downcast_ref::<String>().expect("message");
        assert!(msg.contains("knows no package"), "{msg}");
    }

    #[test]
    fn every_fence_agent_comes_from_fence_agents() {
        assert_eq!(
            package_for("fence_ipmilan"),
            Some("Debian package `fence-agents`")
        );
        assert_eq!(package_for("snmpget"), Some("Debian package `snmp`"));
        assert_eq!(package_for("no-such-tool"), None);
    }

    #[test]
    fn the_python_of_a_script_is_read_from_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let python = find("python3").expect("python3 is on this system");
        for (name, shebang) in [
            ("direct", format!("#!{}", python.display())),
            ("env", "#!/usr/bin/env python3".to_owned()),
        ] {
            let script = dir.path().join(name);
            std::fs::write(&script, format!("{shebang}\nprint('hi')\n")).unwrap();
            assert_eq!(python_of(&script, "P", &["json"]), python, "{name}");
            // A module its Python lacks is a failure that names the import and the package.
            let err = std::panic::catch_unwind(|| {
                python_of(&script, "package P", &["json", "no_such_module_here"])
            })
            .expect_err("a missing module must fail the test");
            let msg = err.downcast_ref::<String>().expect("message");
            assert!(msg.contains("no_such_module_here"), "{msg}");
            assert!(msg.contains("install the package P"), "{msg}");
        }
        let binary = dir.path().join("binary");
        std::fs::write(&binary, b"\x7fELF\x02").unwrap();
        let err = std::panic::catch_unwind(|| python_of(&binary, "package P", &[]))
            .expect_err("not a script");
        let msg = err.downcast_ref::<String>().expect("message");
        assert!(msg.contains("not a script"), "{msg}");
    }

    /// `find` for a tool outside the table (the table is for failure messages only).
    fn require_test_tool(tool: &str) -> PathBuf {
        find(tool).unwrap_or_else(|| panic!("`{tool}` is missing from this system"))
    }
}
