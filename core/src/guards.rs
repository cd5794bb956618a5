//! The guards, as one pure decision over facts a journal returns.
//!
//! Whether a new operation joins one in flight, is refused by a power-on lock or the storm
//! guard, or re-confirms an earlier proof is decided here and only here. A journal backend
//! (SQLite now, a replicated store later, any test double) only stores records and answers
//! the narrow queries of [`Facts`], then carries out the [`Decision`] atomically with the
//! queries. So two backends cannot drift apart on a rule: there is one copy of each rule.
//!
//! Time enters only as [`Moment`]s compared by [`Moment::within`], so a wall-clock step can
//! make a guard stricter but never blind it.

use crate::journal::{Claim, PowerLock};
use crate::proof::{Operation, Verdict};
use crate::time::{Moment, format_duration};

/// An operation on record without a verdict, on this host or on one of its boxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOperation {
    /// Its id.
    pub request_id: String,
    /// What it does.
    pub operation: Operation,
    /// What its proof rests on ([`crate::Host::target_digest`]).
    pub target: String,
    /// Whether the process that runs it still holds its owner's lock. A record whose owner
    /// is gone waits for reconciliation and blocks nothing.
    pub owner_alive: bool,
}

/// A verified-off proof of this host that may be re-confirmed instead of fenced again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffProof {
    /// The proof's operation id.
    pub request_id: String,
    /// Its place in the journal's order of records (later records have larger ones).
    pub seq: i64,
    /// The operation (only fences and offs prove a host off for later requests).
    pub operation: Operation,
    /// Its verdict.
    pub verdict: Verdict,
    /// What it proved off.
    pub target: String,
    /// When its verdict was recorded.
    pub finished: Moment,
}

/// A fence of another host, as the storm guard counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherFence {
    /// The other host.
    pub host: String,
    /// When it began.
    pub started: Moment,
    /// Its verdict so far (`None`: still running, or abandoned).
    pub verdict: Option<Verdict>,
    /// Whether it was refused by the storm guard: a storm in progress keeps counting.
    pub storm_refused: bool,
    /// Whether it only re-confirmed an earlier proof: no new power-off, no new count.
    pub reconfirmation: bool,
}

/// What a journal knows that the guards need, read in the same atomic step that will carry
/// out the decision. A backend may return more than the guards use (older proofs, fences
/// outside the window): every rule is applied here, not in the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Open operations on the host by its name or on any of the claim's lock keys.
    pub open: Vec<OpenOperation>,
    /// A power-on lock covering the host by its name or any of its boxes.
    pub lock: Option<PowerLock>,
    /// The host's verified-off proofs finished within the tolerance window (more is fine).
    pub proofs: Vec<OffProof>,
    /// The order (`seq`) of the host's newest `on`, `reboot` or `unfence` that a guard did
    /// not refuse: anything that may have powered the host on since a proof.
    pub last_power_on: Option<i64>,
    /// Other hosts' fences begun within the storm window (more is fine).
    pub fences: Vec<OtherFence>,
    /// Other hosts whose fences are announced by a live process and not yet begun.
    pub pending: Vec<String>,
}

/// What the journal does with a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Another live process works this host or one of its boxes: wait for its verdict.
    Join {
        /// The operation to wait for.
        request_id: String,
        /// What it does.
        operation: Operation,
        /// Its target digest.
        target: String,
    },
    /// The operation would power on a host a fence locked.
    Locked(PowerLock),
    /// The storm guard refuses: record the refusal, send nothing.
    Refuse {
        /// Why, in words for the operator.
        reason: String,
    },
    /// Record the start and go ahead.
    Start {
        /// An earlier proof of the same target this operation re-confirms.
        confirms: Option<String>,
        /// Set when the operation may read but not command, and why.
        read_only: Option<String>,
    },
}

/// Decide a claim at `now`, given the journal's facts. Pure: the same inputs always give
/// the same decision, on every backend.
pub fn decide(claim: &Claim, facts: &Facts, now: &Moment) -> Decision {
    // A live process already working this host, under this name or any other that reaches
    // one of its boxes: join it rather than race it.
    if let Some(open) = facts.open.iter().find(|o| o.owner_alive) {
        return Decision::Join {
            request_id: open.request_id.clone(),
            operation: open.operation,
            target: open.target.clone(),
        };
    }
    if claim.blocked_by_lock
        && let Some(lock) = &facts.lock
    {
        return Decision::Locked(lock.clone());
    }
    let confirms = reconfirmable(claim, facts, now);
    let Some((limit, window)) = claim.storm.filter(|(limit, _)| *limit > 0) else {
        return Decision::Start {
            confirms,
            read_only: None,
        };
    };
    let others = storm_count(claim, facts, now, window);
    if others < limit as usize {
        return Decision::Start {
            confirms,
            read_only: None,
        };
    }
    let window = format_duration(window);
    match confirms {
        // Re-confirming an earlier proof sends nothing unless the host is found on; under a
        // storm it may still read, never power off.
        Some(confirms) => Decision::Start {
            confirms: Some(confirms),
            read_only: Some(format!(
                "storm guard: {others} other hosts were fenced in the last {window}; this re-confirmation may only read, not power off (use --force if the cloud really lost that many hosts)"
            )),
        },
        None => Decision::Refuse {
            reason: format!(
                "storm guard: {others} other hosts were fenced, refused as a storm or asked at the same time in the last {window}; refusing more than {limit}: nothing was powered off. If the cloud really lost those hosts, fence them by hand: fencegate fence --force HOST…"
            ),
        },
    }
}

/// The newest proof of the claim's target within the tolerance window that nothing may
/// have powered on since (ordered by record, not by clock).
fn reconfirmable(claim: &Claim, facts: &Facts, now: &Moment) -> Option<String> {
    facts
        .proofs
        .iter()
        .filter(|p| {
            p.verdict == Verdict::PowerVerifiedOff
                && matches!(p.operation, Operation::Fence | Operation::Off)
                && p.target == claim.target
                && p.finished.within(now, claim.tolerance)
                && facts.last_power_on.is_none_or(|on| on < p.seq)
        })
        .max_by_key(|p| p.seq)
        .map(|p| p.request_id.clone())
}

/// How many other hosts count against the storm limit: fenced (not merely re-confirmed) or
/// refused as a storm within the window, or announced and not yet begun.
fn storm_count(claim: &Claim, facts: &Facts, now: &Moment, window: std::time::Duration) -> usize {
    let mut hosts: Vec<&str> = facts
        .fences
        .iter()
        .filter(|f| {
            f.host != claim.host
                && !f.reconfirmation
                && f.started.within(now, window)
                && (f.verdict != Some(Verdict::Refused) || f.storm_refused)
        })
        .map(|f| f.host.as_str())
        .chain(
            facts
                .pending
                .iter()
                .map(String::as_str)
                .filter(|h| *h != claim.host),
        )
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::Door;
    use crate::time::Timestamp;
    use std::time::Duration;

    fn at(up_ms: i64) -> Moment {
        Moment {
            wall: Timestamp(1_800_000_000_000 + up_ms),
            boot: "boot-1".into(),
            up_ms,
        }
    }

    fn claim(host: &str, op: Operation) -> Claim {
        Claim {
            request_id: "new".into(),
            host: host.into(),
            operation: op,
            requester: "test".into(),
            reason: "test".into(),
            target: "t1".into(),
            door: Door::Cli,
            lock_keys: vec!["k1".into()],
            identity_endpoints: Vec::new(),
            storm: (op == Operation::Fence).then_some((2, Duration::from_secs(600))),
            tolerance: Duration::from_secs(60),
            lease: Duration::from_secs(120),
            sets_lock: op == Operation::Fence,
            blocked_by_lock: op == Operation::On,
        }
    }

    fn proof(id: &str, seq: i64, finished: Moment) -> OffProof {
        OffProof {
            request_id: id.into(),
            seq,
            operation: Operation::Fence,
            verdict: Verdict::PowerVerifiedOff,
            target: "t1".into(),
            finished,
        }
    }

    fn fence_of(host: &str, started: Moment) -> OtherFence {
        OtherFence {
            host: host.into(),
            started,
            verdict: Some(Verdict::PowerVerifiedOff),
            storm_refused: false,
            reconfirmation: false,
        }
    }

    fn lock() -> PowerLock {
        PowerLock {
            request_id: "f1".into(),
            locked_at: Timestamp(0),
            door: Some(Door::Opennebula),
            requester: "one".into(),
            host: "kvm01".into(),
        }
    }

    const START: Decision = Decision::Start {
        confirms: None,
        read_only: None,
    };

    #[test]
    fn a_live_operation_is_joined_a_dead_one_blocks_nothing() {
        let mut facts = Facts {
            open: vec![OpenOperation {
                request_id: "old".into(),
                operation: Operation::Fence,
                target: "t1".into(),
                owner_alive: false,
            }],
            ..Facts::default()
        };
        let c = claim("kvm01", Operation::Fence);
        assert_eq!(decide(&c, &facts, &at(1000)), START);
        facts.open[0].owner_alive = true;
        assert!(matches!(
            decide(&c, &facts, &at(1000)),
            Decision::Join { request_id, .. } if request_id == "old"
        ));
    }

    #[test]
    fn a_lock_refuses_power_on_only() {
        let facts = Facts {
            lock: Some(lock()),
            ..Facts::default()
        };
        assert_eq!(
            decide(&claim("kvm01", Operation::On), &facts, &at(0)),
            Decision::Locked(lock())
        );
        assert_eq!(
            decide(&claim("kvm01", Operation::Off), &facts, &at(0)),
            START
        );
    }

    #[test]
    fn a_proof_is_reconfirmed_only_within_tolerance_same_target_and_not_after_power_on() {
        let c = claim("kvm01", Operation::Off);
        let mut facts = Facts {
            proofs: vec![proof("p1", 5, at(10_000))],
            ..Facts::default()
        };
        let confirms = |facts: &Facts, now| match decide(&c, facts, &now) {
            Decision::Start { confirms, .. } => confirms,
            other => panic!("{other:?}"),
        };
        assert_eq!(confirms(&facts, at(69_999)).as_deref(), Some("p1"));
        assert_eq!(confirms(&facts, at(70_001)), None, "outside the window");
        facts.last_power_on = Some(4);
        assert_eq!(confirms(&facts, at(20_000)).as_deref(), Some("p1"));
        facts.last_power_on = Some(6);
        assert_eq!(confirms(&facts, at(20_000)), None, "powered on since");
        facts.last_power_on = None;
        facts.proofs[0].target = "t2".into();
        assert_eq!(confirms(&facts, at(20_000)), None, "another target");
        facts.proofs[0].target = "t1".into();
        facts.proofs[0].verdict = Verdict::LivenessLost;
        assert_eq!(confirms(&facts, at(20_000)), None, "not a power proof");
        facts.proofs[0].verdict = Verdict::PowerVerifiedOff;
        facts.proofs[0].operation = Operation::Reboot;
        assert_eq!(confirms(&facts, at(20_000)), None, "a reboot ends on");
    }

    #[test]
    fn the_newest_reconfirmable_proof_is_named() {
        let facts = Facts {
            proofs: vec![proof("old", 3, at(1000)), proof("new", 9, at(2000))],
            ..Facts::default()
        };
        assert!(matches!(
            decide(&claim("kvm01", Operation::Fence), &facts, &at(3000)),
            Decision::Start { confirms: Some(c), .. } if c == "new"
        ));
    }

    #[test]
    fn the_storm_guard_counts_distinct_other_hosts_within_the_window() {
        let c = claim("kvm01", Operation::Fence);
        let mut facts = Facts {
            fences: vec![
                fence_of("kvm02", at(0)),
                fence_of("kvm02", at(10)),
                fence_of("kvm01", at(10)),
            ],
            ..Facts::default()
        };
        assert_eq!(decide(&c, &facts, &at(1000)), START, "one other host");
        facts.pending.push("kvm03".into());
        assert!(matches!(
            decide(&c, &facts, &at(1000)),
            Decision::Refuse { .. }
        ));
        // Outside the window by the boot clock, even though the wall clock was stepped back
        // (same boot: the boot clock decides).
        let later = Moment {
            wall: Timestamp(0),
            ..at(700_000)
        };
        assert_eq!(decide(&c, &facts, &later), START);
    }

    #[test]
    fn refusals_and_reconfirmations_count_only_as_the_storm_rules_say() {
        let c = claim("kvm01", Operation::Fence);
        let mut refused = fence_of("kvm02", at(0));
        refused.verdict = Some(Verdict::Refused);
        let mut confirmation = fence_of("kvm03", at(0));
        confirmation.reconfirmation = true;
        let mut facts = Facts {
            fences: vec![refused, confirmation, fence_of("kvm04", at(0))],
            ..Facts::default()
        };
        assert_eq!(decide(&c, &facts, &at(1)), START);
        facts.fences[0].storm_refused = true;
        assert!(matches!(
            decide(&c, &facts, &at(1)),
            Decision::Refuse { .. }
        ));
    }

    #[test]
    fn under_a_storm_a_reconfirmation_may_only_read() {
        let c = claim("kvm01", Operation::Fence);
        let facts = Facts {
            proofs: vec![proof("p1", 1, at(0))],
            fences: vec![fence_of("kvm02", at(0)), fence_of("kvm03", at(0))],
            ..Facts::default()
        };
        match decide(&c, &facts, &at(1)) {
            Decision::Start {
                confirms: Some(p),
                read_only: Some(why),
            } => {
                assert_eq!(p, "p1");
                assert!(why.contains("only read"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wall_clock_step_back_on_another_boot_keeps_records_recent() {
        // A record from another boot is judged by the wall clock; one dated in the future
        // (the clock was stepped back since) counts as recent, never as old.
        let then = Moment {
            wall: Timestamp(5_000_000),
            boot: "boot-0".into(),
            up_ms: 1,
        };
        let now = Moment {
            wall: Timestamp(1_000_000),
            boot: "boot-1".into(),
            up_ms: 2,
        };
        assert!(then.within(&now, Duration::from_secs(1)));
        let long_ago = Moment {
            wall: Timestamp(0),
            ..then
        };
        assert!(!long_ago.within(&now, Duration::from_secs(1)));
    }
}
