//! Exit codes. Scripts (fence_host.sh, cron, Pacemaker through `agent`) act on these, so
//! they are part of the interface and documented in the README.

use fencegate_core::{Proof, Verdict};
use std::process::ExitCode;

/// The operation succeeded: for fencing, power was verified off (or liveness loss was
/// explicitly accepted by the host's policy).
pub const OK: u8 = 0;
/// The operation ran and did not prove its result (fence failed, interrupted, power-on failed).
pub const FAILED: u8 = 1;
/// Bad command line, configuration or input (nothing was attempted).
pub const USAGE: u8 = 2;
/// A guard refused (storm guard, power-on lock, another operation in progress).
pub const REFUSED: u8 = 3;
/// The journal or fencegate itself failed (nothing is reported fenced).
pub const INTERNAL: u8 = 4;

/// The exit code for one proof.
pub fn for_proof(p: &Proof) -> u8 {
    match p.verdict {
        _ if p.success => OK,
        Verdict::Refused => REFUSED,
        _ => FAILED,
    }
}

/// The worst of several codes (any failure beats success; internal beats the rest).
pub fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    codes.into_iter().fold(OK, |acc, c| {
        let rank = |c: u8| match c {
            OK => 0,
            REFUSED => 1,
            FAILED => 2,
            USAGE => 3,
            _ => 4,
        };
        if rank(c) > rank(acc) { c } else { acc }
    })
}

/// Convert to the process exit code.
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
