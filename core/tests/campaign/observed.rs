//! One simulated process's journal: the real [`SqliteJournal`] (inline, on the shared file),
//! watched. Every decision the journal hands back (a begin, a verdict, locks lifted or
//! shared) is noted with the simulated time and the global order, so the checker can hold
//! the devices' truth against what the journal decided. When the process is killed, its
//! journal instance is dropped (its owner locks vanish with its open files) and every later
//! call of the dead process never returns.

use super::sim::Seq;
use fencegate_core::SqliteJournal;
use fencegate_core::journal::{
    Abandoned, Begin, Claim, DeviceMeta, IdentitySeen, Journal, JournalFuture, KnownIdentity,
    PowerLock, Trusted,
};
use fencegate_core::proof::{Door, Event, Proof, Verdict};
use fencegate_driver::IdentityFact;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// A begin the journal decided.
#[derive(Debug, Clone)]
pub struct BeginSeen {
    /// Global order (taken when the statement ran).
    pub seq: u64,
    /// Simulated time.
    pub at: Instant,
    /// The process that asked.
    pub process: usize,
    /// What it asked for.
    pub claim: Claim,
    /// What the journal decided.
    pub begin: Begin,
}

/// A verdict recorded.
#[derive(Debug, Clone)]
pub struct FinishSeen {
    /// Global order.
    pub seq: u64,
    /// Simulated time.
    pub at: Instant,
    /// The process that recorded it.
    pub process: usize,
    /// The operation.
    pub request_id: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Whether it counts as success.
    pub success: bool,
}

/// A change to the power-on locks other than a fence's begin.
#[derive(Debug, Clone)]
pub enum LockChange {
    /// `share_lock`: `door` on `host` now holds the lock of fence `request_id` too.
    Shared {
        /// The host.
        host: String,
        /// The door.
        door: Door,
        /// The fence.
        request_id: String,
    },
    /// `clear_power_locks` lifted these.
    Lifted(Vec<PowerLock>),
    /// `lock_identities`: fence `request_id` also locks boxes proving these.
    Identities {
        /// The fence.
        request_id: String,
        /// The identities.
        facts: Vec<IdentityFact>,
    },
}

/// A device's identity shown to the journal (`identity_seen`, which remembers it on first
/// use). The checker keeps its own model of what the journal then remembers.
#[derive(Debug, Clone)]
pub struct IdentityShown {
    /// Global order (taken when the statement ran).
    pub seq: u64,
    /// The endpoint key it was shown for.
    pub endpoint: String,
    /// The facts shown.
    pub facts: Vec<IdentityFact>,
}

/// Everything the journals of one schedule decided, in the global order.
#[derive(Debug, Default)]
pub struct Observed {
    /// Begins.
    pub begins: Vec<BeginSeen>,
    /// Verdicts.
    pub finishes: Vec<FinishSeen>,
    /// Lock changes, with their order.
    pub locks: Vec<(u64, LockChange)>,
    /// Identities shown to the journal, with their order.
    pub identities: Vec<IdentityShown>,
    /// Identity memory changes the checker does not model (a trusted move, a pin): no
    /// schedule makes them today; if one does, the `lock` check says so instead of guessing.
    pub unmodelled: Vec<&'static str>,
}

/// The journal of one simulated process.
pub struct ProcJournal {
    inner: Mutex<Option<Arc<SqliteJournal>>>,
    dead: Arc<AtomicBool>,
    process: usize,
    seq: Arc<Seq>,
    seen: Arc<Mutex<Observed>>,
}

fn never<T: Send + 'static>() -> JournalFuture<'static, T> {
    Box::pin(std::future::pending())
}

impl ProcJournal {
    /// Wrap `inner` for `process`.
    pub fn new(
        inner: SqliteJournal,
        process: usize,
        dead: Arc<AtomicBool>,
        seq: Arc<Seq>,
        seen: Arc<Mutex<Observed>>,
    ) -> Self {
        ProcJournal {
            inner: Mutex::new(Some(Arc::new(inner))),
            dead,
            process,
            seq,
            seen,
        }
    }

    /// The process died: drop the journal instance, and with it the open files that hold
    /// its operations' owner locks.
    pub fn kill(&self) {
        self.dead.store(true, Ordering::Relaxed);
        self.inner.lock().unwrap().take();
    }

    fn live(&self) -> Option<Arc<SqliteJournal>> {
        if self.dead.load(Ordering::Relaxed) {
            return None;
        }
        self.inner.lock().unwrap().clone()
    }
}

/// Forward a call to the live journal, or never answer once the process is dead.
macro_rules! forward {
    ($self:ident, $j:ident => $call:expr) => {
        match $self.live() {
            Some($j) => $call,
            None => never(),
        }
    };
}

impl Journal for ProcJournal {
    fn begin(&self, claim: Claim) -> JournalFuture<'static, Begin> {
        let Some(j) = self.live() else {
            return never();
        };
        let (seq, at, process) = (self.seq.next(), Instant::now(), self.process);
        let seen = Arc::clone(&self.seen);
        let fut = j.begin(claim.clone());
        Box::pin(async move {
            let r = fut.await;
            if let Ok(begin) = &r {
                seen.lock().unwrap().begins.push(BeginSeen {
                    seq,
                    at,
                    process,
                    claim,
                    begin: begin.clone(),
                });
            }
            r
        })
    }

    fn record(
        &self,
        request_id: &str,
        device: &DeviceMeta,
        event: &Event,
    ) -> JournalFuture<'static, ()> {
        forward!(self, j => j.record(request_id, device, event))
    }

    fn refused(&self, proof: &Proof) -> JournalFuture<'static, ()> {
        forward!(self, j => j.refused(proof))
    }

    fn finish(&self, proof: &Proof) -> JournalFuture<'static, ()> {
        let Some(j) = self.live() else {
            return never();
        };
        let (seq, at, process) = (self.seq.next(), Instant::now(), self.process);
        let seen = Arc::clone(&self.seen);
        let (request_id, verdict, success) =
            (proof.request_id.clone(), proof.verdict, proof.success);
        let fut = j.finish(proof);
        Box::pin(async move {
            let r = fut.await;
            if r.is_ok() {
                seen.lock().unwrap().finishes.push(FinishSeen {
                    seq,
                    at,
                    process,
                    request_id,
                    verdict,
                    success,
                });
            }
            r
        })
    }

    fn proof(&self, request_id: &str) -> JournalFuture<'static, Option<Proof>> {
        forward!(self, j => j.proof(request_id))
    }

    fn history(&self, host: Option<&str>, limit: usize) -> JournalFuture<'static, Vec<Proof>> {
        forward!(self, j => j.history(host, limit))
    }

    fn power_locks(&self, host: &str) -> JournalFuture<'static, Vec<PowerLock>> {
        forward!(self, j => j.power_locks(host))
    }

    fn clear_power_locks(
        &self,
        host: &str,
        only: Option<Door>,
    ) -> JournalFuture<'static, Vec<PowerLock>> {
        let Some(j) = self.live() else {
            return never();
        };
        let seq = self.seq.next();
        let seen = Arc::clone(&self.seen);
        let fut = j.clear_power_locks(host, only);
        Box::pin(async move {
            let r = fut.await;
            if let Ok(lifted) = &r {
                seen.lock()
                    .unwrap()
                    .locks
                    .push((seq, LockChange::Lifted(lifted.clone())));
            }
            r
        })
    }

    fn identity_seen(
        &self,
        endpoint: &str,
        facts: &[IdentityFact],
    ) -> JournalFuture<'static, IdentitySeen> {
        let Some(j) = self.live() else {
            return never();
        };
        let seq = self.seq.next();
        let seen = Arc::clone(&self.seen);
        let shown = IdentityShown {
            seq,
            endpoint: endpoint.to_owned(),
            facts: facts.to_vec(),
        };
        let fut = j.identity_seen(endpoint, facts);
        Box::pin(async move {
            let r = fut.await;
            if r.is_ok() {
                seen.lock().unwrap().identities.push(shown);
            }
            r
        })
    }

    fn trust_identity(
        &self,
        endpoint: &str,
        facts: &[IdentityFact],
        by: &str,
        moved: bool,
    ) -> JournalFuture<'static, Trusted> {
        if self.live().is_some() {
            self.seen.lock().unwrap().unmodelled.push("trust_identity");
        }
        forward!(self, j => j.trust_identity(endpoint, facts, by, moved))
    }

    fn pin_identity(&self, endpoint: &str, facts: &[IdentityFact]) -> JournalFuture<'static, ()> {
        if self.live().is_some() {
            self.seen.lock().unwrap().unmodelled.push("pin_identity");
        }
        forward!(self, j => j.pin_identity(endpoint, facts))
    }

    fn known_identities(&self) -> JournalFuture<'static, Vec<(String, KnownIdentity)>> {
        forward!(self, j => j.known_identities())
    }

    fn share_lock(
        &self,
        host: &str,
        door: Door,
        request_id: &str,
        requester: &str,
    ) -> JournalFuture<'static, ()> {
        let Some(j) = self.live() else {
            return never();
        };
        let seq = self.seq.next();
        let seen = Arc::clone(&self.seen);
        let change = LockChange::Shared {
            host: host.to_owned(),
            door,
            request_id: request_id.to_owned(),
        };
        let fut = j.share_lock(host, door, request_id, requester);
        Box::pin(async move {
            let r = fut.await;
            if r.is_ok() {
                seen.lock().unwrap().locks.push((seq, change));
            }
            r
        })
    }

    fn announce(&self, claim: &Claim) -> JournalFuture<'static, ()> {
        forward!(self, j => j.announce(claim))
    }

    fn lock_identities(
        &self,
        request_id: &str,
        facts: &[IdentityFact],
    ) -> JournalFuture<'static, ()> {
        let Some(j) = self.live() else {
            return never();
        };
        let seq = self.seq.next();
        let seen = Arc::clone(&self.seen);
        let change = LockChange::Identities {
            request_id: request_id.to_owned(),
            facts: facts.to_vec(),
        };
        let fut = j.lock_identities(request_id, facts);
        Box::pin(async move {
            let r = fut.await;
            if r.is_ok() {
                seen.lock().unwrap().locks.push((seq, change));
            }
            r
        })
    }

    fn identity_locked(&self, facts: &[IdentityFact]) -> JournalFuture<'static, Option<PowerLock>> {
        forward!(self, j => j.identity_locked(facts))
    }

    fn take_abandoned(&self) -> JournalFuture<'static, Vec<Abandoned>> {
        forward!(self, j => j.take_abandoned())
    }
}
