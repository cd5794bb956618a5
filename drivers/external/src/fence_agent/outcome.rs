//! What an agent's exit status and messages mean, in the contract's terms.
//!
//! fence-agents signal only 0 (success, or "on" for `status`), 2 ("off" for `status`) and 1
//! (any failure); the reason is text on stderr. This module reads that text.

use super::invocation::Output;
use fencegate_driver::{ErrorKind, PowerState};

/// Lines fence-agents print that say nothing about the failure.
const NOISE: &[&str] = &[
    "Please use '-h' for usage",
    "DeprecationWarning",
    "from pipes import",
];

/// Message fragments (lower case) and the error class they imply, most specific first.
const CLASSES: &[(&str, ErrorKind)] = &[
    ("timed out waiting to power", ErrorKind::VerificationFailed),
    ("authentication failure", ErrorKind::Auth),
    ("incorrect password", ErrorKind::Auth),
    ("login denied", ErrorKind::Auth),
    ("invalid user", ErrorKind::Auth),
    ("unauthorized", ErrorKind::Auth),
    ("does not have the correct privileges", ErrorKind::Auth),
    ("you have to set login password", ErrorKind::Auth),
    ("connection timed out", ErrorKind::Timeout),
    ("unable to connect/login", ErrorKind::Unreachable),
    ("connection lost", ErrorKind::Unreachable),
    ("no response from", ErrorKind::Unreachable),
    ("connection refused", ErrorKind::Unreachable),
    ("no route to host", ErrorKind::Unreachable),
    ("network is unreachable", ErrorKind::Unreachable),
    ("name or service not known", ErrorKind::Unreachable),
    (
        "temporary failure in name resolution",
        ErrorKind::Unreachable,
    ),
    ("insufficient resources", ErrorKind::Busy),
    ("busy", ErrorKind::Busy),
];

/// Read a `status` run. Only an explicit `Status: OFF` line with exit status 2 is `Off`, and
/// only an explicit `Status: ON` line with exit status 0 is `On`: the exit status alone is
/// never a reading, because anything that dies with status 2 (an argument parser's usage
/// error, a wrapper whose module went missing, a crashing interpreter) would otherwise be
/// read as a switched-off host. No `Status:` line, lines that disagree with each other or
/// with the exit status, or a word other than ON/OFF are `Protocol` errors quoting what the
/// agent printed; other exit statuses are failures classified from the agent's messages.
pub(crate) fn status_reading(output: &Output) -> Result<PowerState, (ErrorKind, String)> {
    let code = output.status.code();
    if !matches!(code, Some(0 | 2)) {
        return Err(failure(output));
    }
    let said: Vec<String> = output
        .stdout
        .iter()
        .filter_map(|line| {
            line.trim()
                .strip_prefix("Status:")
                .map(|s| s.trim().to_ascii_uppercase())
        })
        .collect();
    let code = code.unwrap_or_default();
    let quote = || {
        let printed = message(output);
        if printed.is_empty() {
            "and printed nothing".to_owned()
        } else {
            format!("and printed: {printed}")
        }
    };
    let Some(first) = said.first() else {
        return Err((
            ErrorKind::Protocol,
            format!(
                "the agent exited {code} without a \"Status:\" line {}; an exit status alone \
                 is not a reading",
                quote()
            ),
        ));
    };
    if said.iter().any(|s| s != first) {
        return Err((
            ErrorKind::Protocol,
            format!(
                "the agent printed disagreeing \"Status:\" lines ({}); not trusting any",
                said.join(", ")
            ),
        ));
    }
    match (code, first.as_str()) {
        (0, "ON") => Ok(PowerState::On),
        (2, "OFF") => Ok(PowerState::Off),
        (_, other) => Err((
            ErrorKind::Protocol,
            format!(
                "the agent exited {code} but printed \"Status: {}\"; not trusting either",
                output.redactor.clip(other, 40)
            ),
        )),
    }
}

/// Classify a failed run from its messages; unknown messages are `Protocol`.
pub(crate) fn failure(output: &Output) -> (ErrorKind, String) {
    let how = match (output.status.code(), exit_signal(output)) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended abnormally".to_owned(),
    };
    let said = message(output);
    let lower = said.to_ascii_lowercase();
    let kind = CLASSES
        .iter()
        .find(|(fragment, _)| lower.contains(fragment))
        .map(|(_, kind)| *kind)
        .unwrap_or(ErrorKind::Protocol);
    let detail = if said.is_empty() {
        format!("the agent failed ({how}) without a message")
    } else {
        format!("the agent failed ({how}): {said}")
    };
    (kind, detail)
}

/// What an accepted command's run said, for the receipt ("Success: Powered OFF").
pub(crate) fn success_detail(output: &Output) -> String {
    output
        .stdout
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap_or("the agent exited 0")
        .to_owned()
}

fn exit_signal(output: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    output.status.signal()
}

/// The agent's own error lines (the part after `ERROR:`), else its last meaningful lines.
fn message(output: &Output) -> String {
    let meaningful = |line: &&String| {
        let t = line.trim();
        !t.is_empty() && !NOISE.iter().any(|n| t.contains(n))
    };
    let errors: Vec<&str> = output
        .stderr
        .iter()
        .filter(meaningful)
        .filter_map(|l| l.split_once("ERROR:").map(|(_, m)| m.trim()))
        .filter(|m| !m.is_empty())
        .collect();
    let picked: Vec<&str> = if errors.is_empty() {
        let lines: Vec<&str> = output
            .stderr
            .iter()
            .chain(output.stdout.iter())
            .filter(meaningful)
            .map(|l| l.trim())
            .collect();
        lines[lines.len().saturating_sub(3)..].to_vec()
    } else {
        errors[errors.len().saturating_sub(3)..].to_vec()
    };
    let picked: Vec<String> = picked
        .into_iter()
        .map(|l| output.redactor.clip(l, 200))
        .collect();
    picked.join(" | ")
}

/// Everything the driver would make of one agent run.
#[doc(hidden)]
#[derive(Debug)]
pub struct FuzzedRun {
    /// The run read as `status`.
    pub reading: Result<PowerState, (ErrorKind, String)>,
    /// The run read as a failed power command.
    pub failure: (ErrorKind, String),
    /// The run read as an accepted power command.
    pub success: String,
}

/// Read one agent run as the driver does: `stdout` and `stderr` go through the same bounded,
/// masking tails as a real agent's pipes (with `secret` as the agent's only secret), and the
/// result through every reading of an outcome. The readers are private, since an agent's
/// words reach the engine only through the driver; this is their one outside door, for the
/// fuzz targets (`fuzz/` at the repository's root). Not part of the driver's API.
#[doc(hidden)]
pub fn fuzz_agent_run(wait_status: i32, stdout: &[u8], stderr: &[u8], secret: &str) -> FuzzedRun {
    use super::invocation::{Keep, STDERR_LINE_MAX, STDOUT_LINE_MAX};
    use crate::tail::Tail;
    use std::os::unix::process::ExitStatusExt;

    let redactor = fencegate_driver::Redactor::new([&fencegate_driver::SecretString::from(secret)]);
    let lines = |bytes: &[u8], keep: usize, max: usize| {
        let mut tail = Tail::new(keep, max, redactor.clone());
        tail.push(bytes);
        tail.lines()
    };
    let output = Output {
        status: std::process::ExitStatus::from_raw(wait_status),
        stdout: lines(stdout, Keep::ACTION.stdout_lines, STDOUT_LINE_MAX),
        stderr: lines(stderr, Keep::ACTION.stderr_lines, STDERR_LINE_MAX),
        redactor: redactor.clone(),
    };
    FuzzedRun {
        reading: status_reading(&output),
        failure: failure(&output),
        success: success_detail(&output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    fn out(code: i32, stdout: &[&str], stderr: &[&str]) -> Output {
        Output {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.iter().map(|s| s.to_string()).collect(),
            stderr: stderr.iter().map(|s| s.to_string()).collect(),
            redactor: fencegate_driver::Redactor::default(),
        }
    }

    #[test]
    fn status_needs_exit_code_and_line_to_agree() {
        assert_eq!(
            status_reading(&out(0, &["Status: ON"], &[])),
            Ok(PowerState::On)
        );
        assert_eq!(
            status_reading(&out(2, &["Status: OFF"], &[])),
            Ok(PowerState::Off)
        );
        assert_eq!(
            status_reading(&out(
                2,
                &["noise", "Status: OFF", ""],
                &["DeprecationWarning"]
            )),
            Ok(PowerState::Off)
        );
        for contradiction in [out(2, &["Status: ON"], &[]), out(0, &["Status: OFF"], &[])] {
            let (kind, _) = status_reading(&contradiction).unwrap_err();
            assert_eq!(kind, ErrorKind::Protocol);
        }
        let (kind, _) = status_reading(&out(1, &["Status: OFF"], &[])).unwrap_err();
        assert_eq!(kind, ErrorKind::Protocol, "exit 1 is never a reading");
    }

    #[test]
    fn an_exit_status_without_a_status_line_is_never_a_reading() {
        for (code, stdout, stderr, quoted) in [
            (2, &[][..], &[][..], "printed nothing"),
            (0, &[], &[], "printed nothing"),
            (
                2,
                &[],
                &[
                    "Traceback (most recent call last):",
                    "  File \"/usr/sbin/fence_x\", line 9, in <module>",
                    "ModuleNotFoundError: No module named 'fencing'",
                ],
                "ModuleNotFoundError",
            ),
            (2, &["usage: fence_x [-h]"], &[], "usage: fence_x"),
            (0, &["Success: Powered OFF"], &[], "Success: Powered OFF"),
        ] {
            let (kind, detail) = status_reading(&out(code, stdout, stderr)).unwrap_err();
            assert_eq!(kind, ErrorKind::Protocol, "{detail}");
            assert!(
                detail.contains(&format!("exited {code} without a \"Status:\" line")),
                "{detail}"
            );
            assert!(detail.contains(quoted), "{detail}");
        }
    }

    #[test]
    fn disagreeing_or_unknown_status_lines_are_not_readings() {
        for output in [
            out(2, &["Status: OFF", "Status: ON"], &[]),
            out(0, &["Status: ON", "Status: OFF"], &[]),
            out(2, &["Status: UNKNOWN"], &[]),
            out(2, &["Status:"], &[]),
            out(0, &["Status: ONLINE"], &[]),
        ] {
            let (kind, detail) = status_reading(&output).unwrap_err();
            assert_eq!(kind, ErrorKind::Protocol, "{detail}");
        }
    }

    #[test]
    fn common_messages_map_to_classes() {
        let cases = [
            (
                "2026-01-01 ERROR: Failed: Timed out waiting to power OFF",
                ErrorKind::VerificationFailed,
            ),
            (
                "ERROR: Returned 1: snmpwalk: Authentication failure (incorrect password, community or key)",
                ErrorKind::Auth,
            ),
            (
                "ERROR: Returned 1: Timeout: No Response from 127.0.0.1:1161",
                ErrorKind::Unreachable,
            ),
            (
                "ERROR: Unable to connect/login to fencing device",
                ErrorKind::Unreachable,
            ),
            ("ERROR: Connection timed out", ErrorKind::Timeout),
            (
                "ERROR: Failed: Unable to obtain correct plug status or plug is not available",
                ErrorKind::Protocol,
            ),
        ];
        for (line, want) in cases {
            let (kind, detail) = failure(&out(
                1,
                &[],
                &["noise", line, "", "ERROR: Please use '-h' for usage"],
            ));
            assert_eq!(kind, want, "{line}");
            assert!(
                detail.starts_with("the agent failed (exit status 1): "),
                "{detail}"
            );
            assert!(!detail.contains("Please use"), "{detail}");
        }
    }

    #[test]
    fn without_error_lines_the_last_lines_are_used() {
        let (kind, detail) = failure(&out(3, &["partial"], &["Traceback", "KeyError: 'x'"]));
        assert_eq!(kind, ErrorKind::Protocol);
        assert!(
            detail.contains("exit status 3") && detail.contains("KeyError"),
            "{detail}"
        );
        assert_eq!(
            success_detail(&out(0, &["Success: Powered OFF", ""], &[])),
            "Success: Powered OFF"
        );
    }
}
