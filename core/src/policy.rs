//! Fencing policy: deadlines, confirmations, retries and guards.
//!
//! Defaults are chosen for an operator who has been burned by split brain: a host is fenced
//! only after two consecutive fresh `Off` readings, within a minute, and more than three fences
//! in ten minutes are refused (a front-end network outage must not power off the cloud).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the engine fences a host. Each host may override any field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Wall-clock budget for one device's attempt (pre-read, command, verification).
    #[serde(with = "duration_str")]
    pub attempt_timeout: Duration,
    /// Wall-clock budget for the whole operation, across all levels.
    #[serde(with = "duration_str")]
    pub overall_timeout: Duration,
    /// Consecutive fresh `Off` readings that prove a device off (K).
    pub confirmations: u32,
    /// Pause between two confirming reads once `Off` has been seen (0: back to back).
    #[serde(with = "duration_str")]
    pub confirm_interval: Duration,
    /// How long the confirming `Off` readings must span (monotonic clock) before they count:
    /// an outlet whose "off" is really its reboot action, or a BMC doing a cycle or reset,
    /// reads `Off` for a few seconds and then powers the host on again. APC's default reboot
    /// duration is 5 s; the default outlasts it.
    #[serde(with = "duration_str")]
    pub off_hold: Duration,
    /// First pause between polls while the device is not yet off.
    #[serde(with = "duration_str")]
    pub poll_initial: Duration,
    /// Longest pause between polls (the pause doubles up to this).
    #[serde(with = "duration_str")]
    pub poll_max: Duration,
    /// Retries of one call on `busy`, `unreachable` or `timeout` before the device is given up.
    pub retries: u32,
    /// First pause before such a retry (doubles each time).
    #[serde(with = "duration_str")]
    pub retry_backoff: Duration,
    /// Minimum pause between two commands to the same endpoint.
    #[serde(with = "duration_str")]
    pub min_command_interval: Duration,
    /// A host verified off this recently is re-confirmed by fresh reads, not fenced anew,
    /// and does not count against the storm guard.
    #[serde(with = "duration_str")]
    pub tolerance: Duration,
    /// The storm guard: at most this many fences in `storm_window` (0 disables the guard).
    pub storm_limit: u32,
    /// The storm guard's window.
    #[serde(with = "duration_str")]
    pub storm_window: Duration,
    /// How long a storm-guarded fence waits, announced, before it begins, so that fences
    /// asked for at the same time (every hook firing after a front-end partition heals) are
    /// judged together: more than `storm_limit` of them are all refused. 0 judges each on
    /// arrival.
    #[serde(with = "duration_str")]
    pub storm_settle: Duration,
    /// Whether liveness loss (an in-band `poweroff -f` delivered and the host gone quiet) may
    /// count as success for this host. Off by default: it proves nothing about power.
    pub accept_liveness_loss: bool,
    /// Whether isolation (a fence agent that cut the host off storage or network, such as
    /// fence_scsi or fence_sbd, while it keeps running) may count as success for this host.
    /// Off by default: the host is not powered off.
    pub accept_isolation: bool,
    /// Whether every device must have its identity pinned in the configuration (`guid`,
    /// `engine_id`, `uuid`, `serial`). Off by default: without a pin, the identity first
    /// seen is remembered in the journal and a later change refuses the device.
    pub require_identity: bool,
    /// Whether the fence-agents door (a cluster manager such as Pacemaker) may lift power-on
    /// locks set through other doors (an OpenNebula fence). Off by default: each door lifts
    /// only the locks it set, and an operator's `fencegate unfence` lifts any.
    pub cluster_manager_may_unfence: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            attempt_timeout: Duration::from_secs(20),
            overall_timeout: Duration::from_secs(60),
            confirmations: 2,
            confirm_interval: Duration::ZERO,
            off_hold: Duration::from_secs(6),
            poll_initial: Duration::from_millis(20),
            poll_max: Duration::from_secs(1),
            retries: 3,
            retry_backoff: Duration::from_millis(100),
            min_command_interval: Duration::ZERO,
            tolerance: Duration::from_secs(300),
            storm_limit: 3,
            storm_window: Duration::from_secs(600),
            storm_settle: Duration::from_secs(3),
            accept_liveness_loss: false,
            accept_isolation: false,
            require_identity: false,
            cluster_manager_may_unfence: false,
        }
    }
}

impl Policy {
    /// Refuse settings that would make the promise meaningless or an operation endless.
    pub fn validate(&self) -> Result<(), String> {
        if self.confirmations == 0 {
            return Err(
                "confirmations must be at least 1: a fence needs a fresh Off reading".into(),
            );
        }
        if self.confirmations > 20 {
            return Err("confirmations above 20 only delay failover".into());
        }
        if self.attempt_timeout.is_zero() || self.overall_timeout.is_zero() {
            return Err("attempt_timeout and overall_timeout must be above zero".into());
        }
        if self.attempt_timeout > self.overall_timeout {
            return Err("attempt_timeout must not exceed overall_timeout".into());
        }
        if self.poll_initial.is_zero() || self.poll_max < self.poll_initial {
            return Err("poll_initial must be above zero and at most poll_max".into());
        }
        if self.off_hold >= self.attempt_timeout {
            return Err(
                "off_hold must be shorter than attempt_timeout: Off must be seen to hold within one attempt".into(),
            );
        }
        // Durations built in code skip the configuration's parser: bound them here too, so
        // no deadline arithmetic can overflow.
        const WEEK: Duration = Duration::from_secs(7 * 86_400);
        for (name, d) in [
            ("attempt_timeout", self.attempt_timeout),
            ("overall_timeout", self.overall_timeout),
            ("off_hold", self.off_hold),
            ("confirm_interval", self.confirm_interval),
            ("poll_initial", self.poll_initial),
            ("poll_max", self.poll_max),
            ("retry_backoff", self.retry_backoff),
            ("min_command_interval", self.min_command_interval),
            ("tolerance", self.tolerance),
            ("storm_window", self.storm_window),
            ("storm_settle", self.storm_settle),
        ] {
            if d > WEEK {
                return Err(format!("{name} must be at most 7 days"));
            }
        }
        if self.retries > 20 {
            return Err("retries must be at most 20".into());
        }
        Ok(())
    }
}

/// Serde helper: durations as `500ms`/`20s`/`5m` strings (or bare seconds).
pub(crate) mod duration_str {
    use crate::time::{format_duration, parse_duration};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Secs(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
            // Bare seconds obey the same bound as written durations.
            Raw::Secs(n) => parse_duration(&n.to_string()).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Policy::default().validate().unwrap();
    }

    #[test]
    fn a_hold_longer_than_an_attempt_is_refused() {
        let p = Policy {
            off_hold: Duration::from_secs(20),
            ..Policy::default()
        };
        assert!(p.validate().unwrap_err().contains("off_hold"));
    }

    #[test]
    fn zero_confirmations_refused() {
        let p = Policy {
            confirmations: 0,
            ..Policy::default()
        };
        assert!(p.validate().unwrap_err().contains("fresh Off"));
    }
}
