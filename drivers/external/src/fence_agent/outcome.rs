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

/// Read a `status` run: exit 0 is on and 2 is off, and a `Status:` line, when printed, must
/// agree. Anything else is an error (kind and message).
pub(crate) fn status_reading(output: &Output) -> Result<PowerState, (ErrorKind, String)> {
    let said = output.stdout.iter().rev().find_map(|line| {
        line.trim()
            .strip_prefix("Status:")
            .map(|s| s.trim().to_ascii_uppercase())
    });
    match (output.status.code(), said.as_deref()) {
        (Some(0), None | Some("ON")) => Ok(PowerState::On),
        (Some(2), None | Some("OFF")) => Ok(PowerState::Off),
        (Some(code @ (0 | 2)), Some(other)) => Err((
            ErrorKind::Protocol,
            format!("the agent exited {code} but printed \"Status: {other}\"; not trusting either"),
        )),
        _ => Err(failure(output)),
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
    picked.join(" | ")
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
        assert_eq!(status_reading(&out(2, &[], &[])), Ok(PowerState::Off));
        for contradiction in [out(2, &["Status: ON"], &[]), out(0, &["Status: OFF"], &[])] {
            let (kind, _) = status_reading(&contradiction).unwrap_err();
            assert_eq!(kind, ErrorKind::Protocol);
        }
        let (kind, _) = status_reading(&out(1, &["Status: OFF"], &[])).unwrap_err();
        assert_eq!(kind, ErrorKind::Protocol, "exit 1 is never a reading");
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
