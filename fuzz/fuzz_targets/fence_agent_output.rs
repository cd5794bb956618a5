//! Fence agents: what an agent run printed and how it ended, read as the driver reads it
//! (through the same bounded, masking tails as the real pipes).
//!
//! Input: two bytes of wait status (exit codes and signals), then stdout, a NUL, stderr.
//!
//! Invariants: `Off` only from exit status 2 with a `Status: OFF` line the agent really
//! printed, and `On` only from exit status 0 with `Status: ON`; the agent's secret never
//! appears in a reading error, a failure or a receipt, even when the agent prints it.

#![no_main]

use fencegate_driver::PowerState;
use libfuzzer_sys::fuzz_target;

/// The secret the agent was given, as it might print it back.
const SECRET: &str = "Qz7-agent-Secret";

/// Whether the agent printed a line `Status: WORD` (surrounding blanks and case aside).
fn printed_status(stdout: &[u8], word: &str) -> bool {
    stdout.split(|b| *b == b'\n').any(|line| {
        let line = String::from_utf8_lossy(line);
        line.trim()
            .strip_prefix("Status:")
            .is_some_and(|w| w.trim().eq_ignore_ascii_case(word))
    })
}

fn assert_hidden(text: &str) {
    assert!(!text.contains(SECRET), "secret shown: {text:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((status, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let wait_status = i32::from(u16::from_le_bytes(*status));
    let (stdout, stderr) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let exited = |code: i32| wait_status & 0x7f == 0 && (wait_status >> 8) & 0xff == code;

    let run = fencegate_external::fuzz_agent_run(wait_status, stdout, stderr, SECRET);
    match &run.reading {
        Ok(PowerState::Off) => {
            assert!(exited(2), "off from wait status {wait_status:#x}");
            assert!(
                printed_status(stdout, "OFF"),
                "off without a Status: OFF line"
            );
        }
        Ok(PowerState::On) => {
            assert!(exited(0), "on from wait status {wait_status:#x}");
            assert!(printed_status(stdout, "ON"), "on without a Status: ON line");
        }
        Ok(other) => panic!("a fence agent reading is only on or off, not {other:?}"),
        Err((_, detail)) => assert_hidden(detail),
    }
    assert_hidden(&run.failure.1);
    assert_hidden(&run.success);
});
