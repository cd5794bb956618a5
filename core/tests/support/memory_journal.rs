//! An in-memory journal for engine tests under paused time (the SQLite journal's writer
//! thread would let tokio's paused clock jump while a commit is pending).

use fencegate_core::journal::{
    Abandoned, Begin, Claim, DeviceMeta, IdentitySeen, Journal, JournalError, JournalFuture,
    KnownIdentity, PowerLock, Trusted,
};
use fencegate_core::proof::Door;
use fencegate_core::time::Timestamp;
use fencegate_core::{Event, Operation, Proof, Verdict};
use fencegate_driver::IdentityFact;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone)]
struct Op {
    host: String,
    target: String,
    operation: Operation,
    started: Timestamp,
    proof: Option<Proof>,
}

#[derive(Debug, Default)]
pub struct MemoryJournal {
    ops: Mutex<Vec<(String, Op)>>,
    events: Mutex<Vec<(String, DeviceMeta, Event)>>,
    locks: Mutex<HashMap<(String, Door), PowerLock>>,
    identities: Mutex<HashMap<String, KnownIdentity>>,
}

fn ready<T: Send + 'static>(v: Result<T, JournalError>) -> JournalFuture<'static, T> {
    Box::pin(async move { v })
}

impl MemoryJournal {
    /// Every event recorded for an operation, in order.
    pub fn events_of(&self, request_id: &str) -> Vec<Event> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, ..)| id == request_id)
            .map(|(_, _, e)| e.clone())
            .collect()
    }

    /// Finished records for `host`, newest first, without a runtime.
    pub fn history_sync(&self, host: &str) -> Vec<Proof> {
        let ops = self.ops.lock().unwrap();
        ops.iter()
            .rev()
            .filter_map(|(_, o)| o.proof.clone())
            .filter(|p| p.host == host)
            .collect()
    }

    /// Number of operations started (not refused) for `host`.
    pub fn operations_for(&self, host: &str) -> usize {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, o)| o.host == host)
            .count()
    }
}

impl Journal for MemoryJournal {
    fn begin(&self, claim: Claim) -> JournalFuture<'static, Begin> {
        let mut ops = self.ops.lock().unwrap();
        let now = Timestamp::now();
        if let Some((id, o)) = ops
            .iter()
            .find(|(_, o)| o.host == claim.host && o.proof.is_none())
        {
            return ready(Ok(Begin::InFlight {
                request_id: id.clone(),
                operation: o.operation,
                target: o.target.clone(),
            }));
        }
        if claim.blocked_by_lock
            && let Some(lock) = self
                .locks
                .lock()
                .unwrap()
                .iter()
                .find(|((h, _), _)| *h == claim.host)
                .map(|(_, l)| l.clone())
        {
            return ready(Ok(Begin::Locked(lock)));
        }
        // The latest proof of this target, unless something that may power on came after.
        let confirms = ops
            .iter()
            .enumerate()
            .rev()
            .find(|(_, (_, o))| {
                o.host == claim.host
                    && o.target == claim.target
                    && o.operation != Operation::Unfence
                    && o.proof.as_ref().is_some_and(|p| {
                        p.verdict == Verdict::PowerVerifiedOff
                            && p.finished_at >= now.minus(claim.tolerance)
                    })
            })
            .filter(|(i, _)| {
                !ops[i + 1..].iter().any(|(_, later)| {
                    later.host == claim.host
                        && matches!(
                            later.operation,
                            Operation::On | Operation::Reboot | Operation::Unfence
                        )
                        && later
                            .proof
                            .as_ref()
                            .is_none_or(|p| p.verdict != Verdict::Refused)
                })
            })
            .map(|(_, (id, _))| id.clone());
        let mut read_only = None;
        if let Some((limit, window)) = claim.storm
            && limit > 0
        {
            let mut others: Vec<&str> = ops
                .iter()
                .filter(|(_, o)| {
                    o.operation == Operation::Fence
                        && o.host != claim.host
                        && o.started >= now.minus(window)
                        && o.proof
                            .as_ref()
                            .is_none_or(|p| p.verdict != Verdict::Refused)
                })
                .map(|(_, o)| o.host.as_str())
                .collect();
            others.sort_unstable();
            others.dedup();
            if others.len() >= limit as usize && confirms.is_some() {
                read_only = Some(format!(
                    "storm guard: {} other hosts fenced; read only",
                    others.len()
                ));
            } else if others.len() >= limit as usize {
                return ready(Ok(Begin::Refused {
                    reason: format!("storm guard: {} other hosts fenced", others.len()),
                }));
            }
        }
        ops.push((
            claim.request_id.clone(),
            Op {
                host: claim.host.clone(),
                target: claim.target.clone(),
                operation: claim.operation,
                started: now,
                proof: None,
            },
        ));
        if claim.sets_lock {
            self.locks.lock().unwrap().insert(
                (claim.host.clone(), claim.door),
                PowerLock {
                    request_id: claim.request_id.clone(),
                    locked_at: now,
                    door: Some(claim.door),
                    requester: claim.requester.clone(),
                    host: claim.host.clone(),
                },
            );
        }
        ready(Ok(Begin::Started {
            confirms,
            read_only,
        }))
    }

    fn record(
        &self,
        request_id: &str,
        device: &DeviceMeta,
        event: &Event,
    ) -> JournalFuture<'static, ()> {
        self.events
            .lock()
            .unwrap()
            .push((request_id.to_owned(), device.clone(), event.clone()));
        ready(Ok(()))
    }

    fn refused(&self, proof: &Proof) -> JournalFuture<'static, ()> {
        self.ops.lock().unwrap().push((
            proof.request_id.clone(),
            Op {
                host: proof.host.clone(),
                target: proof.target.clone().unwrap_or_default(),
                operation: proof.operation,
                started: proof.started_at,
                proof: Some(proof.clone()),
            },
        ));
        ready(Ok(()))
    }

    fn finish(&self, proof: &Proof) -> JournalFuture<'static, ()> {
        let mut ops = self.ops.lock().unwrap();
        let r = match ops.iter_mut().find(|(id, _)| *id == proof.request_id) {
            Some((_, op)) => {
                op.proof = Some(proof.clone());
                Ok(())
            }
            None => Err(JournalError::Storage(format!(
                "no operation {}",
                proof.request_id
            ))),
        };
        ready(r)
    }

    fn proof(&self, request_id: &str) -> JournalFuture<'static, Option<Proof>> {
        let ops = self.ops.lock().unwrap();
        ready(Ok(ops
            .iter()
            .find(|(id, _)| id == request_id)
            .and_then(|(_, o)| o.proof.clone())))
    }

    fn history(&self, host: Option<&str>, limit: usize) -> JournalFuture<'static, Vec<Proof>> {
        let ops = self.ops.lock().unwrap();
        ready(Ok(ops
            .iter()
            .rev()
            .filter_map(|(_, o)| o.proof.clone())
            .filter(|p| host.is_none_or(|h| p.host == h))
            .take(limit)
            .collect()))
    }

    fn power_locks(&self, host: &str) -> JournalFuture<'static, Vec<PowerLock>> {
        let locks = self.locks.lock().unwrap();
        ready(Ok(locks
            .iter()
            .filter(|((h, _), _)| h == host)
            .map(|(_, l)| l.clone())
            .collect()))
    }

    fn clear_power_locks(
        &self,
        host: &str,
        only: Option<Door>,
    ) -> JournalFuture<'static, Vec<PowerLock>> {
        let mut locks = self.locks.lock().unwrap();
        let lifted: Vec<PowerLock> = locks
            .iter()
            .filter(|((h, _), l)| h == host && (only.is_none() || l.door == only))
            .map(|(_, l)| l.clone())
            .collect();
        locks.retain(|(h, _), l| !(h == host && (only.is_none() || l.door == only)));
        ready(Ok(lifted))
    }

    fn identity_seen(
        &self,
        endpoint: &str,
        facts: &[IdentityFact],
    ) -> JournalFuture<'static, IdentitySeen> {
        let mut ids = self.identities.lock().unwrap();
        if let Some(known) = ids.get(endpoint) {
            let same = fencegate_core::identity::same_box(&known.facts, facts);
            return ready(Ok(if same {
                IdentitySeen::Matches(known.clone())
            } else {
                IdentitySeen::Changed(known.clone())
            }));
        }
        if facts.is_empty() {
            return ready(Ok(IdentitySeen::FirstUse));
        }
        for (other, known) in ids.iter() {
            if let Some(fact) = facts.iter().find(|f| known.facts.contains(f)) {
                return ready(Ok(IdentitySeen::ClaimedElsewhere {
                    endpoint: other.clone(),
                    fact: fact.clone(),
                }));
            }
        }
        ids.insert(
            endpoint.to_owned(),
            KnownIdentity {
                facts: facts.to_vec(),
                since: Timestamp::now(),
                accepted_by: None,
            },
        );
        ready(Ok(IdentitySeen::FirstUse))
    }

    fn trust_identity(
        &self,
        endpoint: &str,
        facts: &[IdentityFact],
        by: &str,
        moved: bool,
    ) -> JournalFuture<'static, Trusted> {
        if facts.is_empty() {
            return ready(Ok(Trusted::Nothing));
        }
        let mut ids = self.identities.lock().unwrap();
        if moved {
            ids.retain(|other, known| {
                other == endpoint || !facts.iter().any(|f| known.facts.contains(f))
            });
        }
        for (other, known) in ids.iter() {
            if other != endpoint
                && let Some(fact) = facts.iter().find(|f| known.facts.contains(f))
            {
                return ready(Ok(Trusted::HeldElsewhere {
                    endpoint: other.clone(),
                    fact: fact.clone(),
                }));
            }
        }
        let before = ids.insert(
            endpoint.to_owned(),
            KnownIdentity {
                facts: facts.to_vec(),
                since: Timestamp::now(),
                accepted_by: Some(by.to_owned()),
            },
        );
        ready(Ok(Trusted::Accepted(before)))
    }

    fn pin_identity(&self, endpoint: &str, facts: &[IdentityFact]) -> JournalFuture<'static, ()> {
        if facts.is_empty() {
            return ready(Ok(()));
        }
        let mut ids = self.identities.lock().unwrap();
        ids.retain(|other, known| {
            other == endpoint || !facts.iter().any(|f| known.facts.contains(f))
        });
        ids.insert(
            endpoint.to_owned(),
            KnownIdentity {
                facts: facts.to_vec(),
                since: Timestamp::now(),
                accepted_by: Some("pin in the configuration".into()),
            },
        );
        ready(Ok(()))
    }

    fn known_identities(&self) -> JournalFuture<'static, Vec<(String, KnownIdentity)>> {
        let ids = self.identities.lock().unwrap();
        let mut out: Vec<_> = ids.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        ready(Ok(out))
    }

    fn share_lock(
        &self,
        _host: &str,
        _door: Door,
        _request_id: &str,
        _requester: &str,
    ) -> JournalFuture<'static, ()> {
        ready(Ok(()))
    }

    fn announce(&self, _claim: &Claim) -> JournalFuture<'static, ()> {
        ready(Ok(()))
    }

    fn lock_identities(
        &self,
        _request_id: &str,
        _facts: &[IdentityFact],
    ) -> JournalFuture<'static, ()> {
        ready(Ok(()))
    }

    fn identity_locked(
        &self,
        _facts: &[IdentityFact],
    ) -> JournalFuture<'static, Option<PowerLock>> {
        ready(Ok(None))
    }

    fn take_abandoned(&self) -> JournalFuture<'static, Vec<Abandoned>> {
        ready(Ok(Vec::new()))
    }
}
