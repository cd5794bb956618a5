//! One error taxonomy for every driver, so the engine's policy (retry, read again, give up)
//! does not depend on which protocol failed.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The class of a driver failure. The engine decides what to do from the class alone.
///
/// Non-exhaustive: a later contract may split a class. Code outside this crate treats a
/// class it does not know as a failure that is not retried ([`ErrorKind::is_transient`] is
/// false) and never as success or as a state reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Credentials were refused. Retrying only locks accounts: never retried.
    Auth,
    /// The endpoint did not answer or refused the connection. Retried, bounded.
    Unreachable,
    /// The endpoint is alive but out of sessions or resources (IPMI 0x81, HTTP 503). Retried, bounded.
    Busy,
    /// The endpoint or driver cannot do what was asked (an action, a cipher suite, a protocol version).
    Unsupported,
    /// The device says it is already in that state (Redfish 409/400). Inconclusive: read again.
    StateConflict,
    /// The endpoint answered with something malformed or unexpected.
    Protocol,
    /// The call did not finish before its deadline.
    Timeout,
    /// A command was accepted but no fresh reading ever proved the requested state.
    VerificationFailed,
}

impl ErrorKind {
    /// Failures that may clear up by themselves and are worth a bounded retry.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Unreachable | ErrorKind::Busy | ErrorKind::Timeout
        )
    }

    /// The stable kebab-case name used in JSON, the journal and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Busy => "busy",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::StateConflict => "state-conflict",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Timeout => "timeout",
            ErrorKind::VerificationFailed => "verification-failed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A driver failure: its class and a human sentence naming what went wrong.
///
/// The detail must name the endpoint or object concerned and must never contain a secret
/// (password, community, key, token). Drivers build it from their own words, never from a
/// request they echo back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{kind}: {detail}")]
pub struct DriverError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// What happened, for humans and the evidence record.
    pub detail: String,
}

impl DriverError {
    /// A failure of the given class.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        DriverError {
            kind,
            detail: detail.into(),
        }
    }

    /// Credentials refused.
    pub fn auth(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, detail)
    }

    /// No answer or connection refused.
    pub fn unreachable(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unreachable, detail)
    }

    /// Out of sessions or resources.
    pub fn busy(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Busy, detail)
    }

    /// Not supported by the endpoint or the driver.
    pub fn unsupported(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, detail)
    }

    /// Already in the requested state, according to the device (inconclusive).
    pub fn state_conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::StateConflict, detail)
    }

    /// Malformed or unexpected answer.
    pub fn protocol(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, detail)
    }

    /// Deadline passed.
    pub fn timeout(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_kinds_are_exactly_the_retryable_ones() {
        let transient: Vec<_> = [
            ErrorKind::Auth,
            ErrorKind::Unreachable,
            ErrorKind::Busy,
            ErrorKind::Unsupported,
            ErrorKind::StateConflict,
            ErrorKind::Protocol,
            ErrorKind::Timeout,
            ErrorKind::VerificationFailed,
        ]
        .into_iter()
        .filter(|k| k.is_transient())
        .collect();
        assert_eq!(
            transient,
            [ErrorKind::Unreachable, ErrorKind::Busy, ErrorKind::Timeout]
        );
    }

    #[test]
    fn an_error_class_this_build_does_not_know_is_refused_not_guessed() {
        // A newer peer's class is not read as any known one (least of all a transient one
        // that would be retried): the reply carrying it is a protocol error.
        for wire in [r#""quota""#, r#""Busy""#, r#""timed-out""#, r#""""#] {
            let parsed = serde_json::from_str::<ErrorKind>(wire);
            assert!(parsed.is_err(), "{wire} read as {parsed:?}");
        }
    }

    #[test]
    fn display_names_kind_and_detail() {
        let e = DriverError::busy("127.0.0.1:623: insufficient resources for session");
        assert_eq!(
            e.to_string(),
            "busy: 127.0.0.1:623: insufficient resources for session"
        );
    }
}
