//! The fencing engine.
//!
//! `fence(host)` looks up the host's levels, works every device of a level concurrently
//! (each must verify), falls through to the next level on failure, and returns a [`Proof`]
//! whose verdict is `PowerVerifiedOff` only when a device that reads power state gave K
//! consecutive fresh `Off` readings within the deadlines. Concurrent requests for one host
//! share one operation (single-flight, across processes through the journal); a storm guard
//! refuses mass fencing; a fenced host keeps a power-on lock until `unfence`.

mod device;
mod gate;

use crate::evidence::{Judged, LevelVerdict, judge_level};
use crate::journal::{Begin, Claim, DeviceMeta, Journal, JournalError, PowerLock, Trusted};
use crate::proof::{
    DeviceOutcome, DeviceRecord, Door, Event, LevelRecord, Operation, Proof, Verdict, printable,
};
use crate::time::Timestamp;
use crate::topology::{Device, Host};
use device::{DeviceRun, OpContext};
use fencegate_driver::{Channel, DriverError, PowerState, RestorePolicy};
use gate::EndpointGate;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{SetOnce, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

/// Who asks and why; recorded in the proof.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Who asks (user and front door, e.g. `oneadmin via opennebula`).
    pub requester: String,
    /// Why (free text).
    pub reason: String,
    /// Bypass the storm guard (an operator who knows the cloud really lost many hosts).
    pub force: bool,
    /// The front door it came through (recorded with the power-on lock it sets).
    pub door: Door,
}

/// The engine failed in a way that produced no record. Nothing was reported fenced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The journal failed: the engine refuses to act (or to report) without a record.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The operation's task ended without a result (a bug; reported, never hidden).
    #[error("internal error: {0}")]
    Internal(String),
}

/// A fresh reading of one device, for `status`.
#[derive(Debug, Clone)]
pub struct DeviceStatus {
    /// The device.
    pub device: String,
    /// 1-based level.
    pub level: usize,
    /// The driver.
    pub driver: String,
    /// The endpoint.
    pub endpoint: String,
    /// Whether the driver can read power state at all (SSH cannot). A device that cannot is
    /// not asked, and its missing reading is no failure.
    pub reads_power_state: bool,
    /// The reading, or why there is none.
    pub reading: Result<PowerState, DriverError>,
    /// What the endpoint presented about its identity after the reading.
    pub identity: Vec<fencegate_driver::IdentityFact>,
    /// Whether the driver declared itself a reader when built (a declared reader that
    /// reads nothing at first contact is reported by `check --probe`).
    pub declared_reader: bool,
    /// The driver's channel kind.
    pub channel: Channel,
    /// Whether the driver can present an authenticated identity at all.
    pub authenticated_identity: bool,
    /// The key under which its identity is remembered.
    pub endpoint_key: String,
    /// The identity pins configured for it.
    pub pins: Vec<crate::identity::Pin>,
}

impl DeviceStatus {
    /// Whether a reading was expected and could not be had.
    pub fn failed(&self) -> bool {
        self.reads_power_state && self.reading.is_err()
    }
}

type Outcome = Result<Proof, EngineError>;

/// Stops operations cleanly (SIGTERM): they record an interrupted verdict and return.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    fn new() -> Self {
        Shutdown {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Ask every running operation to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// The fencing engine. Cheap to clone; clones share journal, endpoint turns and in-flight
/// operations.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    journal: Arc<dyn Journal>,
    gate: Arc<EndpointGate>,
    inflight: Mutex<HashMap<String, Flight>>,
    shutdown: Shutdown,
}

/// An operation running in this process, which later callers for the host may join.
struct Flight {
    operation: Operation,
    target: String,
    /// Set when it ended: its outcome, or `None` if its task ended without one (a panic).
    /// A `SetOnce` wakes its waiters in the order they began to wait (a `watch` channel
    /// wakes them in a random order), so which of several callers waiting for the host goes
    /// next depends only on what happened before: the same schedule runs the same way
    /// every time (the fault campaign replays it).
    done: Arc<SetOnce<Option<Outcome>>>,
}

/// Takes a host's [`Flight`] off the in-flight table when its operation ends, however it
/// ends, before joiners learn the outcome (so they never find the finished flight again),
/// then publishes the outcome (`None` if its task ended without one).
struct Landed {
    engine: Engine,
    host: String,
    done: Arc<SetOnce<Option<Outcome>>>,
    outcome: Option<Outcome>,
}

impl Drop for Landed {
    fn drop(&mut self) {
        self.engine
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.host);
        // Only this guard sets it: it is empty.
        let _ = self.done.set(self.outcome.take());
    }
}

/// Whether a caller asking for `wanted` may take the verdict of a running `running`
/// operation as its own. A fence is a verified off plus a power-on lock, so an `off` may
/// share a fence's verdict; a fence may not share an `off`'s (it would leave no lock), and
/// nothing shares an operation of another kind: it waits for it to end and runs its own.
///
/// And only for the same target: a proof rests on the devices it read and the policy that
/// judged it, so an operation on other devices (an ad-hoc `--device … --name h1`), from
/// another inventory or under a weaker policy proves nothing for this request.
fn shares(running: (Operation, &str), wanted: (Operation, &str)) -> bool {
    let kinds =
        running.0 == wanted.0 || (running.0 == Operation::Fence && wanted.0 == Operation::Off);
    kinds && running.1 == wanted.1
}

/// The restore policies a fence changed, by device name and endpoint, with the value read
/// before the change (only accepted changes away from stay-off count).
fn changed_restore_policies(fence: &Proof) -> Vec<(String, String, RestorePolicy)> {
    let mut out = Vec::new();
    for d in fence.levels.iter().flat_map(|l| &l.devices) {
        for e in &d.events {
            if let Event::RestorePolicy {
                previous: Some(previous),
                accepted: true,
                ..
            } = e
                && *previous != RestorePolicy::AlwaysOff
                && !out
                    .iter()
                    .any(|(n, ep, _): &(String, String, RestorePolicy)| {
                        *n == d.device && *ep == d.endpoint
                    })
            {
                out.push((d.device.clone(), d.endpoint.clone(), *previous));
            }
        }
    }
    out
}

/// Extra time allowed past the overall deadline for recording the verdict.
const RECORD_GRACE: Duration = Duration::from_secs(5);
/// How often a joiner looks for another process's verdict.
const JOIN_POLL: Duration = Duration::from_millis(50);

fn new_request_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        Timestamp::now().millis(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Engine {
    /// An engine writing to `journal`.
    pub fn new(journal: Arc<dyn Journal>) -> Self {
        Engine {
            inner: Arc::new(Inner {
                journal,
                gate: Arc::new(EndpointGate::default()),
                inflight: Mutex::new(HashMap::new()),
                shutdown: Shutdown::new(),
            }),
        }
    }

    /// The handle that stops running operations cleanly.
    pub fn shutdown(&self) -> Shutdown {
        self.inner.shutdown.clone()
    }

    /// The journal this engine writes to.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.inner.journal
    }

    /// Fence `host`: verified power-off with the storm guard, ending in a power-on lock.
    pub async fn fence(&self, host: Arc<Host>, request: Request) -> Outcome {
        self.single_flight(host, Operation::Fence, request).await
    }

    /// Verified power-off asked by an operator: no storm guard, no power-on lock.
    pub async fn off(&self, host: Arc<Host>, request: Request) -> Outcome {
        self.single_flight(host, Operation::Off, request).await
    }

    /// Power on (refused while the host is locked by a fence).
    pub async fn on(&self, host: Arc<Host>, request: Request) -> Outcome {
        self.single_flight(host, Operation::On, request).await
    }

    /// Verified power-off, then power on (refused while locked).
    pub async fn reboot(&self, host: Arc<Host>, request: Request) -> Outcome {
        self.single_flight(host, Operation::Reboot, request).await
    }

    /// Lift the power-on locks fences left on `host`, recording who did it, and put back
    /// the power restore policies those fences changed. Through the fence-agents door (a
    /// cluster manager) only the locks that door set are lifted, unless the host's policy
    /// says `cluster_manager_may_unfence`: an OpenNebula fence's lock is not Pacemaker's to
    /// lift.
    pub async fn unfence(&self, host: Arc<Host>, request: Request) -> Outcome {
        let journal = Arc::clone(&self.inner.journal);
        let only = (request.door == Door::Agent && !host.policy.cluster_manager_may_unfence)
            .then_some(Door::Agent);
        let locks = journal.power_locks(&host.name).await?;
        if let Some(door) = only
            && !locks.is_empty()
            && locks.iter().all(|l| l.door != Some(door))
        {
            let l = &locks[0];
            return self
                .refuse(
                    &host,
                    Operation::Unfence,
                    &request,
                    format!(
                        "power-on lock set through the {} door by {} (fence {}): the fence-agents door lifts only locks it set; run `fencegate unfence {}` once the host's VMs run elsewhere (or set cluster_manager_may_unfence in this host's policy)",
                        l.door.map(Door::as_str).unwrap_or("unrecorded"),
                        l.requester,
                        l.request_id,
                        host.name
                    ),
                )
                .await;
        }
        let (request_id, started) = match self
            .begin_unguarded(&host, Operation::Unfence, &request)
            .await?
        {
            Ok(begun) => begun,
            Err(refusal) => return Ok(refusal),
        };
        let t0 = Instant::now();
        let lifted = journal.clear_power_locks(&host.name, only).await?;
        let mut detail = if lifted.is_empty() {
            "the host had no power-on lock".to_owned()
        } else {
            format!(
                "power-on lock of fence {} lifted",
                lifted
                    .iter()
                    .map(|l| l.request_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let kept: Vec<&PowerLock> = locks
            .iter()
            .filter(|l| !lifted.iter().any(|x| x.request_id == l.request_id))
            .collect();
        if !kept.is_empty() {
            detail.push_str(&format!(
                "; still locked by fence {} through the {} door",
                kept[0].request_id,
                kept[0].door.map(Door::as_str).unwrap_or("unrecorded")
            ));
        }
        let ctx = self.context(&request_id, Operation::Unfence, &host);
        let mut changed = Vec::new();
        for l in &lifted {
            if let Some(fence) = journal.proof(&l.request_id).await? {
                changed.extend(changed_restore_policies(&fence));
            }
        }
        // The restore policy is put back only when no lock is left: a host still locked by
        // another door stays set to stay off.
        if kept.is_empty() && !changed.is_empty() {
            let mut success = true;
            let deadline = Instant::now() + host.policy.attempt_timeout;
            let mut set = JoinSet::new();
            for (i, (device, previous)) in host
                .devices()
                .into_iter()
                .filter_map(|d| {
                    changed
                        .iter()
                        .find(|(name, endpoint, _)| {
                            *name == d.name && *endpoint == d.driver.endpoint()
                        })
                        .map(|(_, _, p)| (d, *p))
                })
                .enumerate()
            {
                let run = DeviceRun::start(Arc::clone(&ctx), device, 0, i);
                set.spawn(
                    async move { run.restore_policy(previous, deadline).await }.in_current_span(),
                );
            }
            let mut restored = 0;
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(DeviceOutcome::Done) => restored += 1,
                    _ => success = false,
                }
            }
            if restored > 0 {
                detail.push_str(&format!(
                    "; power restore policy put back on {restored} device(s)"
                ));
            }
            if !success {
                detail.push_str("; some power restore policy could not be put back (see the record): set it by hand before relying on the host coming back after a power loss");
            }
            release_all(&host).await;
        }
        let proof = Proof {
            request_id,
            host: host.name.clone(),
            operation: Operation::Unfence,
            requester: request.requester,
            reason: request.reason,
            started_at: started,
            finished_at: Timestamp::now(),
            // The lock is lifted either way; a policy not put back is said in the detail.
            verdict: Verdict::Done,
            success: true,
            detail,
            levels: ctx.snapshot(),
            duration_ms: t0.elapsed().as_millis() as u64,
            confirms: None,
            target: Some(host.target_digest()),
            inventory: host.inventory.clone(),
        };
        journal.finish(&proof).await?;
        Ok(proof)
    }

    /// Accept the identities `host`'s endpoints present now as theirs (after a known board
    /// swap or re-addressing), replacing what was remembered at first use. Each device is
    /// read once (that is how its driver learns the identity); nothing is sent. Pinned
    /// devices are left alone: their pin in the configuration is the authority.
    ///
    /// An identity remembered for another address is refused unless `moved` says the box
    /// really moved here (a re-addressed BMC); then the old address forgets it.
    pub async fn trust(&self, host: Arc<Host>, request: Request, moved: bool) -> Outcome {
        let journal = Arc::clone(&self.inner.journal);
        let (request_id, started) = match self
            .begin_unguarded(&host, Operation::Trust, &request)
            .await?
        {
            Ok(begun) => begun,
            Err(refusal) => return Ok(refusal),
        };
        let t0 = Instant::now();
        let ctx = self.context(&request_id, Operation::Trust, &host);
        let deadline = Instant::now() + host.policy.attempt_timeout;
        let mut accepted = Vec::new();
        let mut failed = Vec::new();
        for (i, device) in host.devices().into_iter().enumerate() {
            let run = DeviceRun::start(Arc::clone(&ctx), Arc::clone(&device), 0, i);
            if !device.pins.is_empty() {
                run.finish(
                    DeviceOutcome::Done,
                    "pinned in the configuration: change the pin there to accept another identity",
                );
                continue;
            }
            if !device.driver.capabilities().reads_power_state {
                run.finish(
                    DeviceOutcome::Done,
                    "cannot be read, so it presents no identity",
                );
                continue;
            }
            if let Err(e) = run.read(deadline).await {
                failed.push(format!("{}: {e}", device.name));
                run.finish(
                    DeviceOutcome::Failed,
                    format!("could not be read ({e}); what it is remembered as is unchanged"),
                );
                continue;
            }
            let facts = crate::identity::usable(&device.driver.identity());
            match journal
                .trust_identity(&device.endpoint_key, &facts, &request.requester, moved)
                .await
            {
                Ok(Trusted::Accepted(before)) => {
                    let was = before
                        .map(|k| crate::identity::describe(&k.facts))
                        .unwrap_or_else(|| "nothing".into());
                    let now = crate::identity::describe(&facts);
                    accepted.push(format!("{} ({now}; was {was})", device.name));
                    run.finish(
                        DeviceOutcome::Done,
                        format!("identity {now} accepted (was {was})"),
                    );
                }
                Ok(Trusted::Nothing) => {
                    // Trusting nothing would switch the check off: what it is remembered as
                    // stays (an outlet on SNMPv2c, or something that cannot authenticate).
                    run.finish(
                        DeviceOutcome::Done,
                        "presents no authenticated identity: nothing to trust, nothing changed",
                    );
                }
                Ok(Trusted::HeldElsewhere { endpoint, fact }) => {
                    let why = format!(
                        "presents {}={}, which is remembered for {endpoint}: one box cannot be two addresses' (a relay?); nothing changed (if the box really moved here, trust it with --moved)",
                        fact.kind, fact.value
                    );
                    failed.push(format!("{}: {why}", device.name));
                    run.finish(DeviceOutcome::Failed, why);
                }
                Err(e) => {
                    failed.push(format!("{}: {e}", device.name));
                    run.finish(
                        DeviceOutcome::Failed,
                        format!("the journal could not record it: {e}"),
                    );
                }
            }
        }
        release_all(&host).await;
        let success = failed.is_empty();
        let mut detail = if accepted.is_empty() {
            "no identity accepted".to_owned()
        } else {
            format!("accepted the identity of {}", accepted.join(", "))
        };
        if !success {
            detail.push_str(&format!("; not accepted: {}", failed.join("; ")));
        }
        let proof = Proof {
            request_id,
            host: host.name.clone(),
            operation: Operation::Trust,
            requester: request.requester,
            reason: request.reason,
            started_at: started,
            finished_at: Timestamp::now(),
            verdict: if success {
                Verdict::Done
            } else {
                Verdict::Failed
            },
            success,
            detail,
            levels: ctx.snapshot(),
            duration_ms: t0.elapsed().as_millis() as u64,
            confirms: None,
            target: Some(host.target_digest()),
            inventory: host.inventory.clone(),
        };
        journal.finish(&proof).await?;
        Ok(proof)
    }

    /// Begin an operation that no guard but "one at a time per host" applies to: its id and
    /// start, or the recorded refusal when another operation is in progress on the host.
    async fn begin_unguarded(
        &self,
        host: &Host,
        op: Operation,
        request: &Request,
    ) -> Result<Result<(String, Timestamp), Proof>, EngineError> {
        let request_id = new_request_id();
        let started = Timestamp::now();
        let claim = self.claim(host, op, request, &request_id);
        match self.inner.journal.begin(claim).await? {
            Begin::InFlight { .. } => {
                let why = format!(
                    "another operation is in progress on this host; {} after it ends",
                    op.as_str()
                );
                Ok(Err(self.refuse(host, op, request, why).await?))
            }
            _ => Ok(Ok((request_id, started))),
        }
    }

    fn context(&self, request_id: &str, op: Operation, host: &Host) -> Arc<OpContext> {
        Arc::new(OpContext {
            journal: Arc::clone(&self.inner.journal),
            gate: Arc::clone(&self.inner.gate),
            request_id: request_id.to_owned(),
            operation: op,
            policy: host.policy.clone(),
            log: Arc::new(Mutex::new(Vec::new())),
            read_only: None,
        })
    }

    /// Read every device of `host` once, without acting and without a journal record, in
    /// the endpoints' turns shared with running operations.
    pub async fn status(&self, host: &Host) -> Vec<DeviceStatus> {
        let rows = read_with_gate(&self.inner.gate, host).await;
        release_all(host).await;
        rows
    }

    /// Finished records, newest first.
    pub async fn history(
        &self,
        host: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Proof>, EngineError> {
        Ok(self.inner.journal.history(host, limit).await?)
    }

    /// Close every operation a dead process left open: read the host's devices afresh and
    /// record what they say. Never assumes the interrupted operation succeeded.
    pub async fn reconcile(
        &self,
        lookup: impl Fn(&str) -> Option<Arc<Host>>,
    ) -> Result<Vec<Proof>, EngineError> {
        let abandoned = self.inner.journal.take_abandoned().await?;
        // Every abandoned operation is re-read at once, each within its host's attempt
        // timeout, so a crash in a rack-wide fence costs the next command one attempt, not
        // one per host.
        let mut set = JoinSet::new();
        for op in abandoned {
            let host = lookup(&op.host);
            let engine = self.clone();
            set.spawn(async move { engine.reconcile_one(op, host).await }.in_current_span());
        }
        let mut out = Vec::new();
        while let Some(done) = set.join_next().await {
            match done {
                Ok(proof) => out.push(proof?),
                Err(e) => return Err(EngineError::Internal(format!("reconciliation task: {e}"))),
            }
        }
        Ok(out)
    }

    /// Re-read one abandoned operation's devices and close it as failed.
    async fn reconcile_one(
        &self,
        op: crate::journal::Abandoned,
        host: Option<Arc<Host>>,
    ) -> Result<Proof, EngineError> {
        {
            // Rebuild what the dead process recorded.
            let mut levels: Vec<LevelRecord> = Vec::new();
            for (meta, event) in &op.events {
                record_for(&mut levels, meta).events.push(event.clone());
            }
            let reread_at = Timestamp::now();
            let (detail, levels) = match host {
                Some(host) => {
                    let ctx = Arc::new(OpContext {
                        journal: Arc::clone(&self.inner.journal),
                        gate: Arc::clone(&self.inner.gate),
                        request_id: op.request_id.clone(),
                        operation: op.operation,
                        policy: host.policy.clone(),
                        log: Arc::new(Mutex::new(levels)),
                        read_only: None,
                    });
                    let deadline = Instant::now() + host.policy.attempt_timeout;
                    let mut summary = Vec::new();
                    for (li, devices) in host.levels.iter().enumerate() {
                        for device in devices {
                            let index = position_of(&ctx, li, &device.name);
                            let run = DeviceRun::start_keeping(Arc::clone(&ctx), Arc::clone(device), li, index);
                            run.note(format!(
                                "reconciliation at {reread_at}: the operation was interrupted before a verdict; reading again"
                            ));
                            let outcome = run.reread(deadline).await;
                            summary.push(format!("{} {}", device.name, match outcome {
                                DeviceOutcome::VerifiedOff => "reads off",
                                _ => "does not read off",
                            }));
                        }
                    }
                    release_all(&host).await;
                    (
                        format!(
                            "interrupted before a verdict (the process ended); re-read at {reread_at}: {}",
                            summary.join(", ")
                        ),
                        ctx.snapshot(),
                    )
                }
                None => (
                    "interrupted before a verdict (the process ended); the host is no longer in the inventory, so it was not re-read".to_owned(),
                    levels,
                ),
            };
            let finished = Timestamp::now();
            let proof = Proof {
                request_id: op.request_id,
                host: op.host,
                operation: op.operation,
                requester: op.requester,
                reason: op.reason,
                started_at: op.started_at,
                finished_at: finished,
                verdict: Verdict::Failed,
                success: false,
                detail,
                levels,
                duration_ms: (finished.millis() - op.started_at.millis()).max(0) as u64,
                confirms: None,
                target: None,
                inventory: None,
            };
            self.inner.journal.finish(&proof).await?;
            Ok(proof)
        }
    }

    fn claim(&self, host: &Host, op: Operation, request: &Request, request_id: &str) -> Claim {
        let p = &host.policy;
        Claim {
            request_id: request_id.to_owned(),
            host: host.name.clone(),
            operation: op,
            requester: request.requester.clone(),
            reason: request.reason.clone(),
            target: host.target_digest(),
            door: request.door,
            lock_keys: {
                let mut keys: Vec<String> = host
                    .devices()
                    .iter()
                    .flat_map(|d| d.lock_keys.clone())
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                keys
            },
            identity_endpoints: {
                let mut endpoints: Vec<String> = host
                    .devices()
                    .iter()
                    .filter(|d| !shared_channel(d.channel))
                    .map(|d| d.endpoint_key.clone())
                    .collect();
                endpoints.sort_unstable();
                endpoints.dedup();
                endpoints
            },
            storm: (op == Operation::Fence && !request.force)
                .then_some((p.storm_limit, p.storm_window)),
            tolerance: if matches!(op, Operation::Fence | Operation::Off) {
                p.tolerance
            } else {
                Duration::ZERO
            },
            lease: p.overall_timeout + RECORD_GRACE * 2,
            sets_lock: op == Operation::Fence,
            blocked_by_lock: matches!(op, Operation::On | Operation::Reboot),
        }
    }

    /// Refuse an operation before it began, and put the refusal on record.
    async fn refuse(
        &self,
        host: &Host,
        op: Operation,
        request: &Request,
        detail: String,
    ) -> Outcome {
        let proof = self.refusal(host, op, request, detail);
        self.inner.journal.refused(&proof).await?;
        Ok(proof)
    }

    fn refusal(&self, host: &Host, op: Operation, request: &Request, detail: String) -> Proof {
        let now = Timestamp::now();
        Proof {
            request_id: new_request_id(),
            host: host.name.clone(),
            operation: op,
            requester: request.requester.clone(),
            reason: request.reason.clone(),
            started_at: now,
            finished_at: now,
            verdict: Verdict::Refused,
            success: false,
            detail,
            levels: Vec::new(),
            duration_ms: 0,
            confirms: None,
            target: Some(host.target_digest()),
            inventory: host.inventory.clone(),
        }
    }

    /// Join an operation already running in this process for the host when it [`shares`]
    /// its verdict, or wait for it to end and start our own. The wait counts against this
    /// request's overall deadline.
    async fn single_flight(&self, host: Arc<Host>, op: Operation, request: Request) -> Outcome {
        // A storm-guarded fence settles first; its overall budget starts after that.
        let settle = if op == Operation::Fence && !request.force && host.policy.storm_limit > 0 {
            host.policy.storm_settle
        } else {
            Duration::ZERO
        };
        let overall = Instant::now() + settle + host.policy.overall_timeout;
        let target = host.target_digest();
        loop {
            let (running, running_target, done, leading) = {
                let mut inflight = self
                    .inner
                    .inflight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                match inflight.get(&host.name) {
                    Some(flight) => (
                        flight.operation,
                        flight.target.clone(),
                        Arc::clone(&flight.done),
                        false,
                    ),
                    None => {
                        let done = Arc::new(SetOnce::new());
                        inflight.insert(
                            host.name.clone(),
                            Flight {
                                operation: op,
                                target: target.clone(),
                                done: Arc::clone(&done),
                            },
                        );
                        self.lead(
                            Arc::clone(&host),
                            op,
                            request.clone(),
                            overall,
                            Arc::clone(&done),
                        );
                        (op, target.clone(), done, true)
                    }
                }
            };
            if shares((running, &running_target), (op, &target)) {
                // The operation this caller leads is bounded by its own deadline; a joiner
                // waits for another caller's no longer than its own deadline.
                let until = if leading {
                    overall + RECORD_GRACE * 4
                } else {
                    overall
                };
                let waited = tokio::time::timeout_at(until, done.wait()).await;
                return match waited {
                    Ok(Some(v)) => v.clone(),
                    Ok(None) => Err(EngineError::Internal(
                        "the operation task ended without a result".into(),
                    )),
                    Err(_) => {
                        self.refuse(
                            &host,
                            op,
                            &request,
                            format!(
                                "the {} already running on this host did not end within this request's deadline; nothing was done for this request (the running one's verdict will be in history)",
                                running.as_str()
                            ),
                        )
                        .await
                    }
                };
            }
            // Another kind of operation holds the host: let it end, then look again.
            tokio::select! {
                r = tokio::time::timeout_at(overall, done.wait()) => match r {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(EngineError::Internal(
                            "the operation task ended without a result".into(),
                        ));
                    }
                    Err(_) => {
                        return self.refuse(&host, op, &request, format!(
                            "a {} operation on this host did not end before this request's deadline; nothing was done",
                            running.as_str()
                        )).await;
                    }
                },
                _ = self.inner.shutdown.wait() => {
                    return self.refuse(&host, op, &request, "interrupted while waiting for another operation on this host".into()).await;
                }
            }
        }
    }

    /// Run `op` in its own task, so that callers going away do not cancel it, and publish
    /// its outcome to everyone who joined.
    fn lead(
        &self,
        host: Arc<Host>,
        op: Operation,
        request: Request,
        overall: Instant,
        done: Arc<SetOnce<Option<Outcome>>>,
    ) {
        let engine = self.clone();
        tokio::spawn(async move {
            // Even if the operation panics, the host must not stay "in flight" forever.
            let mut landed = Landed {
                engine: engine.clone(),
                host: host.name.clone(),
                done,
                outcome: None,
            };
            landed.outcome = Some(engine.run_new(host, op, request, overall).await);
            drop(landed);
        });
    }

    /// Record the start of an operation (guards, cross-process join) and carry it out.
    async fn run_new(
        &self,
        host: Arc<Host>,
        op: Operation,
        request: Request,
        overall: Instant,
    ) -> Outcome {
        // Names and details come from configuration and devices: logged escaped, so none
        // can forge a log line.
        let span =
            tracing::info_span!("operation", op = op.as_str(), host = %printable(&host.name));
        let outcome = self
            .run_new_inner(host, op, request, overall)
            .instrument(span.clone())
            .await;
        let _enter = span.enter();
        match &outcome {
            Ok(p) if p.success => {
                tracing::info!(request = %printable(&p.request_id), verdict = %p.verdict, ms = p.duration_ms, "{}", printable(&p.detail))
            }
            Ok(p) => {
                tracing::warn!(request = %printable(&p.request_id), verdict = %p.verdict, ms = p.duration_ms, "{}", printable(&p.detail))
            }
            Err(e) => tracing::error!("no verdict recorded: {}", printable(&e.to_string())),
        }
        outcome
    }

    async fn run_new_inner(
        &self,
        host: Arc<Host>,
        op: Operation,
        request: Request,
        overall: Instant,
    ) -> Outcome {
        let journal = Arc::clone(&self.inner.journal);
        let request_id = new_request_id();
        let claim = self.claim(&host, op, &request, &request_id);
        // Each turn of this loop waits for another process's operation to end (bounded by
        // `overall`), so it ends.
        // A storm-guarded fence is announced and waits the settle time first, so a burst of
        // fences is judged together by the storm guard.
        if claim.storm.is_some_and(|(limit, _)| limit > 0) && !host.policy.storm_settle.is_zero() {
            journal.announce(&claim).await?;
            let until = (Instant::now() + host.policy.storm_settle).min(overall);
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = self.inner.shutdown.wait() => {
                    return self.refuse(&host, op, &request, "interrupted (SIGTERM) while the storm guard settled; nothing was powered off".into()).await;
                }
            }
        }
        let (started, confirms, read_only) = loop {
            let started = Timestamp::now();
            match journal.begin(claim.clone()).await? {
                Begin::Started {
                    confirms,
                    read_only,
                } => break (started, confirms, read_only),
                Begin::Refused { reason } => {
                    let mut proof = self.refusal(&host, op, &request, reason);
                    proof.request_id = request_id;
                    proof.started_at = started;
                    proof.finished_at = started;
                    return Ok(proof);
                }
                Begin::Locked(lock) => {
                    return self.refuse(&host, op, &request, format!(
                        "power-on lock: fenced as {} by {} at {}; run `fencegate unfence {}` once its VMs run elsewhere",
                        printable(&lock.host), lock.request_id, lock.locked_at, printable(&lock.host)
                    )).await;
                }
                Begin::InFlight {
                    request_id: other,
                    operation: running,
                    target: running_target,
                } => {
                    let running = Running {
                        request_id: &other,
                        operation: running,
                        sharing: shares((running, &running_target), (op, &claim.target)),
                    };
                    match self
                        .join_other(&host, op, &request, running, overall)
                        .await?
                    {
                        Joined::Verdict(proof) => {
                            // A fence that takes another process's fence verdict keeps its
                            // own door's lock.
                            if op == Operation::Fence
                                && proof.operation == Operation::Fence
                                && proof.request_id == other
                            {
                                journal
                                    .share_lock(
                                        &host.name,
                                        request.door,
                                        &other,
                                        &request.requester,
                                    )
                                    .await?;
                            }
                            return Ok(*proof);
                        }
                        Joined::Ended => continue,
                    }
                }
            }
        };
        let ctx = Arc::new(OpContext {
            journal: Arc::clone(&journal),
            gate: Arc::clone(&self.inner.gate),
            request_id: request_id.clone(),
            operation: op,
            policy: host.policy.clone(),
            log: Arc::new(Mutex::new(Vec::new())),
            read_only,
        });
        let t0 = Instant::now();
        let shutdown = self.inner.shutdown.clone();
        let work = carry_out(Arc::clone(&ctx), Arc::clone(&host), op, overall);
        let (verdict, detail) = tokio::select! {
            r = tokio::time::timeout_at(overall + RECORD_GRACE, work) => match r {
                Ok(v) => v,
                Err(_) => (Verdict::Failed, "the overall deadline passed".to_owned()),
            },
            _ = shutdown.wait() => (Verdict::Failed, "interrupted: fencegate was asked to stop (SIGTERM) before a verdict".to_owned()),
        };
        let success = match verdict {
            Verdict::PowerVerifiedOff | Verdict::Done => true,
            Verdict::LivenessLost => host.policy.accept_liveness_loss,
            Verdict::Isolated => host.policy.accept_isolation,
            Verdict::Failed | Verdict::Refused => false,
        };
        let detail = if verdict == Verdict::LivenessLost {
            if success {
                format!(
                    "{detail}; this host's policy accepts liveness loss, so it counts as fenced although power was not proven off"
                )
            } else {
                format!(
                    "{detail}; power was not proven off and this host's policy does not accept liveness loss"
                )
            }
        } else if verdict == Verdict::Isolated {
            if success {
                format!(
                    "{detail}; this host's policy accepts isolation, so it counts as fenced although the host may still run"
                )
            } else {
                format!(
                    "{detail}; the host was isolated, not powered off, and this host's policy does not accept isolation"
                )
            }
        } else {
            detail
        };
        let proof = Proof {
            request_id,
            host: host.name.clone(),
            operation: op,
            requester: request.requester,
            reason: request.reason,
            started_at: started,
            finished_at: Timestamp::now(),
            verdict,
            success,
            detail,
            levels: ctx.snapshot(),
            duration_ms: t0.elapsed().as_millis() as u64,
            confirms,
            target: Some(claim.target.clone()),
            inventory: host.inventory.clone(),
        };
        // The boxes this fence's devices proved to be stay locked under their identity, so a
        // re-addressed BMC or another URL reaching one meets the lock after first contact.
        if op == Operation::Fence {
            // An outlet's identity is its PDU's, which feeds other hosts too (an isolation
            // channel's is its shared LUN's or switch's): those are locked by their keys,
            // whole-host channels (BMCs) by identity as well.
            let facts: Vec<fencegate_driver::IdentityFact> = proof
                .levels
                .iter()
                .flat_map(|l| &l.devices)
                .filter(|d| !shared_channel(d.channel))
                .flat_map(|d| crate::identity::usable(&d.identity))
                .collect();
            if !facts.is_empty()
                && let Err(e) = journal.lock_identities(&proof.request_id, &facts).await
            {
                tracing::warn!("the fenced boxes' identities could not be locked: {e}");
            }
        }
        // No verdict counts until it is durable.
        let recorded = tokio::time::timeout(RECORD_GRACE, journal.finish(&proof)).await;
        release_all(&host).await;
        match recorded {
            Ok(r) => r?,
            Err(_) => {
                return Err(JournalError::Storage("recording the verdict timed out".into()).into());
            }
        }
        Ok(proof)
    }

    /// Wait for another process's operation on this host: share its verdict when it
    /// [`shares`], otherwise report that it ended so that ours can begin. Waiting for an
    /// operation of another kind counts against this request's `overall` deadline.
    async fn join_other(
        &self,
        host: &Host,
        op: Operation,
        request: &Request,
        running: Running<'_>,
        overall: Instant,
    ) -> Result<Joined, EngineError> {
        let Running {
            request_id: other,
            operation: running,
            sharing,
        } = running;
        let journal = &self.inner.journal;
        // Another process's operation, shared or not, is waited for until this request's
        // own deadline.
        let until = overall;
        loop {
            if let Some(proof) = journal.proof(other).await? {
                return Ok(if sharing {
                    Joined::Verdict(Box::new(proof))
                } else {
                    Joined::Ended
                });
            }
            if Instant::now() >= until {
                let proof = self
                    .refuse(
                        host,
                        op,
                        request,
                        format!(
                            "{} operation {other} on this host did not finish in time; nothing was done",
                            running.as_str()
                        ),
                    )
                    .await?;
                return Ok(Joined::Verdict(Box::new(proof)));
            }
            tokio::select! {
                _ = tokio::time::sleep(JOIN_POLL) => {}
                _ = self.inner.shutdown.wait() => {
                    let proof = self.refuse(host, op, request, "interrupted while waiting for another operation on this host".into()).await?;
                    return Ok(Joined::Verdict(Box::new(proof)));
                }
            }
        }
    }
}

/// Another process's operation found running on the host.
struct Running<'a> {
    request_id: &'a str,
    operation: Operation,
    /// Whether its verdict answers this request (see [`shares`]).
    sharing: bool,
}

/// How waiting for another process's operation ended.
enum Joined {
    /// A verdict for the caller: the other operation's, or a refusal.
    Verdict(Box<Proof>),
    /// The other operation ended and was of another kind: try to begin ours.
    Ended,
}

/// The body of an operation: the levels in order, each device of a level concurrently.
async fn carry_out(
    ctx: Arc<OpContext>,
    host: Arc<Host>,
    op: Operation,
    overall: Instant,
) -> (Verdict, String) {
    match op {
        Operation::Fence | Operation::Off => verify_off_levels(&ctx, &host, overall).await,
        Operation::Reboot => {
            let (v, d) = verify_off_levels(&ctx, &host, overall).await;
            if v != Verdict::PowerVerifiedOff {
                // A reboot is off *then* on: liveness lost or isolation is no reboot.
                return (Verdict::Failed, format!("{d}; not powered on again"));
            }
            let (on, on_detail) = power_on_levels(&ctx, &host, overall).await;
            (on, format!("{d}; then {on_detail}"))
        }
        Operation::On => power_on_levels(&ctx, &host, overall).await,
        Operation::Unfence | Operation::Trust => (
            Verdict::Failed,
            format!("{} is not a power operation", op.as_str()),
        ),
    }
}

async fn verify_off_levels(
    ctx: &Arc<OpContext>,
    host: &Arc<Host>,
    overall: Instant,
) -> (Verdict, String) {
    let mut weaker: Option<(Verdict, String)> = None;
    let mut failures = Vec::new();
    for (li, devices) in host.levels.iter().enumerate() {
        if Instant::now() >= overall {
            failures.push(format!(
                "level {} not tried: the overall deadline passed",
                li + 1
            ));
            break;
        }
        let deadline = (Instant::now() + ctx.policy.attempt_timeout).min(overall);
        let mut set = JoinSet::new();
        for (di, device) in devices.iter().enumerate() {
            let run = DeviceRun::start(Arc::clone(ctx), Arc::clone(device), li, di);
            set.spawn(async move { run.verify_off(deadline).await }.in_current_span());
        }
        while set.join_next().await.is_some() {}
        let level = ctx.snapshot().into_iter().nth(li);
        let records = level.map(|l| l.devices).unwrap_or_default();
        let judged: Vec<Judged<'_>> = records.iter().map(Judged::from).collect();
        let verdict = match judge_level(&judged) {
            LevelVerdict::VerifiedOff(by) => {
                match standby_still_answers(ctx, host, li, &records, overall).await {
                    Some(why) => LevelVerdict::Failed(why),
                    None => LevelVerdict::VerifiedOff(by),
                }
            }
            other => other,
        };
        match verdict {
            LevelVerdict::VerifiedOff(by) => {
                return (
                    Verdict::PowerVerifiedOff,
                    format!("level {}: power verified off by {by}", li + 1),
                );
            }
            LevelVerdict::LivenessLost(by) => {
                let msg = format!("level {}: liveness lost via {by}", li + 1);
                if ctx.policy.accept_liveness_loss {
                    return (Verdict::LivenessLost, msg);
                }
                weaker.get_or_insert((Verdict::LivenessLost, msg));
            }
            LevelVerdict::Isolated(by) => {
                let msg = format!("level {}: isolated via {by}", li + 1);
                if ctx.policy.accept_isolation {
                    return (Verdict::Isolated, msg);
                }
                weaker.get_or_insert((Verdict::Isolated, msg));
            }
            LevelVerdict::Failed(why) => failures.push(format!("level {}: {why}", li + 1)),
        }
    }
    match weaker {
        Some((verdict, msg)) => (verdict, format!("{msg}; {}", failures.join("; "))),
        None => (Verdict::Failed, failures.join("; ")),
    }
}

/// How long a host's BMC is given to show it still has standby power after its outlets read
/// off (a dead BMC is silent, so this is what a PDU-only fence waits at most).
const STANDBY_PROBE: Duration = Duration::from_secs(3);

/// After a level of outlets proved off: if the host has a BMC device elsewhere and that BMC
/// still answers, standby power is present, so some supply of the host is still fed and the
/// outlets' `Off` is no proof that every supply is cut. Returns why the level fails. Decided
/// from the devices that proved the level (an in-band companion does not make it "not an
/// outlet level") and from the channels the drivers report after contact (an external
/// program names its channel in its hello). Bounded by the overall deadline.
async fn standby_still_answers(
    ctx: &Arc<OpContext>,
    host: &Arc<Host>,
    level: usize,
    records: &[DeviceRecord],
    overall: Instant,
) -> Option<String> {
    let proving: Vec<&DeviceRecord> = records
        .iter()
        .filter(|r| r.outcome == DeviceOutcome::VerifiedOff)
        .collect();
    if proving.is_empty() || !proving.iter().all(|r| r.channel == Channel::Outlet) {
        return None;
    }
    let in_level: Vec<&str> = records.iter().map(|r| r.device.as_str()).collect();
    let bmcs: Vec<Arc<Device>> = host
        .devices()
        .into_iter()
        .filter(|d| !in_level.contains(&d.name.as_str()))
        .filter(|d| {
            let caps = d.driver.capabilities();
            (caps.channel == Channel::Bmc || d.channel == Channel::Bmc) && caps.reads_power_state
        })
        .collect();
    if bmcs.is_empty() {
        return None;
    }
    let now = Instant::now();
    if now >= overall {
        return Some(
            "the outlets read off, but no time was left to check that the host's BMC lost its standby power".into(),
        );
    }
    let probe_deadline = (now + STANDBY_PROBE).min(overall);
    let mut set = JoinSet::new();
    for (i, bmc) in bmcs.into_iter().enumerate() {
        let run = DeviceRun::start(Arc::clone(ctx), bmc, level, records.len() + i);
        set.spawn(
            async move {
                run.note("standby check: the outlets read off; does this BMC still answer?");
                let answer = run.answers(probe_deadline).await;
                let name = run.device_name().to_owned();
                match &answer {
                    Some(how) => run.finish(
                        DeviceOutcome::Failed,
                        format!("standby check: still answers after the outlets read off ({how}): some supply is still powered"),
                    ),
                    None => run.finish(
                        DeviceOutcome::Done,
                        "standby check: silent after the outlets read off (standby power gone)",
                    ),
                };
                answer.map(|how| format!("{name} {how}"))
            }
            .in_current_span(),
        );
    }
    let mut answering = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Some(a)) = r {
            answering.push(a);
        }
    }
    if answering.is_empty() {
        None
    } else {
        Some(format!(
            "the outlets read off, but the host's BMC still answers ({}): standby power is present, so not every supply of the host is cut",
            answering.join("; ")
        ))
    }
}

/// Power on, last level first (a PDU outlet must be on before the BMC can start the host).
async fn power_on_levels(
    ctx: &Arc<OpContext>,
    host: &Arc<Host>,
    overall: Instant,
) -> (Verdict, String) {
    let deadline = (Instant::now() + ctx.policy.attempt_timeout).min(overall);
    let host_facts = match locked_box(ctx, host, deadline).await {
        Ok(facts) => Arc::new(facts),
        Err(why) => return (Verdict::Failed, why),
    };
    let base = ctx.snapshot().len();
    let mut failed = false;
    for (step, devices) in host.levels.iter().rev().enumerate() {
        let li = base + step;
        let deadline = (Instant::now() + ctx.policy.attempt_timeout).min(overall);
        let mut set = JoinSet::new();
        for (di, device) in devices.iter().enumerate() {
            let run = DeviceRun::start(Arc::clone(ctx), Arc::clone(device), li, di);
            let host_facts = Arc::clone(&host_facts);
            set.spawn(async move { run.power_on(deadline, host_facts).await }.in_current_span());
        }
        while let Some(r) = set.join_next().await {
            failed |= !matches!(r, Ok(DeviceOutcome::Done));
        }
    }
    if !failed {
        (Verdict::Done, "powered on".into())
    } else {
        let snap = ctx.snapshot();
        let why: Vec<String> = snap[base..]
            .iter()
            .flat_map(|l| &l.devices)
            .filter(|d| d.outcome == DeviceOutcome::Failed)
            .map(|d| format!("{}: {}", d.device, d.detail))
            .collect();
        (
            Verdict::Failed,
            format!("power-on failed: {}", why.join("; ")),
        )
    }
}

/// Why no level may be powered on, if a box behind a whole-host device of any level is
/// locked by a fence under another name. Power-on goes last level first and a level's devices
/// together, so without this the per-device check of the first level (a BMC) would come only
/// after the last level, or a sibling in its own level (another channel to the same box), had
/// switched it on. Only a host of one device checks itself, before its own `On`. A device is
/// judged by every identity it presents, even when its one reading here failed (a busy BMC
/// has still proved which box it is), by the identity the journal remembers for it (a BMC
/// without power behind its outlets presents none), and by its pins.
///
/// The identities gathered are given back, so that each device checks them again right
/// before its own `On`.
async fn locked_box(
    ctx: &OpContext,
    host: &Host,
    deadline: Instant,
) -> Result<Vec<fencegate_driver::IdentityFact>, String> {
    if host.devices().len() < 2 {
        return Ok(Vec::new());
    }
    let unchecked = |e: JournalError| {
        Err(format!(
            "the journal could not check the power-on locks ({e}); nothing was sent"
        ))
    };
    let known = match ctx.journal.known_identities().await {
        Ok(known) => known,
        Err(e) => return unchecked(e),
    };
    let rows = read_with_gate_until(&ctx.gate, host, deadline).await;
    let mut host_facts = Vec::new();
    for row in rows.iter().filter(|r| !shared_channel(r.channel)) {
        let mut facts = crate::identity::usable(&row.identity);
        facts.extend(
            known
                .iter()
                .filter(|(endpoint, _)| *endpoint == row.endpoint_key)
                .flat_map(|(_, k)| k.facts.iter().cloned()),
        );
        // A pinned device names its box even when silent: the facts remembered anywhere
        // that its pins match (the box reached before under another address or name).
        facts.extend(
            known
                .iter()
                .flat_map(|(_, k)| &k.facts)
                .filter(|f| row.pins.iter().any(|p| p.covers(f) && p.value == f.value))
                .cloned(),
        );
        match ctx.journal.identity_locked(&facts).await {
            Ok(None) => host_facts.extend(facts),
            Ok(Some(lock)) => {
                return Err(format!(
                    "power-on lock: {} reaches a box ({}) that {} fenced at {} as host {}; nothing was sent; run `fencegate unfence {}` once its VMs run elsewhere",
                    crate::proof::printable(&row.device),
                    crate::identity::describe(&facts),
                    lock.request_id,
                    lock.locked_at,
                    crate::proof::printable(&lock.host),
                    crate::proof::printable(&lock.host),
                ));
            }
            Err(e) => return unchecked(e),
        }
    }
    host_facts.sort();
    host_facts.dedup();
    Ok(host_facts)
}

/// Whether a channel's identity is that of something other hosts share (an outlet's PDU, an
/// isolation channel's LUN, SBD disk or switch) rather than of one box: such identities are
/// never locked or checked against locks, or fencing one host would lock every host on the
/// same PDU or storage. Those channels are locked by what they switch (their keys).
pub(crate) fn shared_channel(channel: Channel) -> bool {
    matches!(channel, Channel::Outlet | Channel::Isolation)
}

/// How long releasing a host's drivers (logging out of sessions) may take.
const RELEASE_BUDGET: Duration = Duration::from_secs(2);

/// Let every driver of `host` release what it holds between calls (BMC sessions), bounded:
/// a BMC that does not answer a logout must not hold up the verdict.
async fn release_all(host: &Host) {
    let deadline = Instant::now() + RELEASE_BUDGET;
    let mut set = JoinSet::new();
    for device in host.devices() {
        set.spawn(async move {
            let _ =
                tokio::time::timeout_at(deadline, device.driver.release(deadline.into_std())).await;
        });
    }
    while set.join_next().await.is_some() {}
}

/// Read every device of `host` once, without an engine or journal (for `status` and
/// `check --probe`, which must work without a writable state directory).
pub async fn read_devices(host: &Host) -> Vec<DeviceStatus> {
    let rows = read_with_gate(&Arc::new(EndpointGate::default()), host).await;
    release_all(host).await;
    rows
}

async fn read_with_gate(gate: &Arc<EndpointGate>, host: &Host) -> Vec<DeviceStatus> {
    read_with_gate_until(gate, host, Instant::now() + host.policy.attempt_timeout).await
}

/// [`read_with_gate`], every reading bounded by `deadline`.
async fn read_with_gate_until(
    gate: &Arc<EndpointGate>,
    host: &Host,
    deadline: Instant,
) -> Vec<DeviceStatus> {
    let mut set = JoinSet::new();
    let mut index = 0;
    for (level, devices) in host.levels.iter().enumerate() {
        for device in devices {
            let device = Arc::clone(device);
            let gate = Arc::clone(gate);
            let i = index;
            index += 1;
            set.spawn(async move {
                let mut reads_power_state = device.driver.capabilities().reads_power_state;
                let reading = if reads_power_state {
                    let mut r = read_once(&gate, &device, deadline).await;
                    // A reading from another box than the pinned one is not this host's.
                    if r.is_ok()
                        && !device.pins.is_empty()
                        && let crate::identity::PinCheck::Mismatch(why) =
                            crate::identity::check_pins(&device.pins, &device.driver.identity())
                    {
                        r = Err(DriverError::auth(format!(
                            "identity: {why}; this reading is not the host's"
                        )));
                    }
                    // Capabilities learned on first contact (an external program's hello)
                    // may say the driver cannot read after all.
                    reads_power_state = device.driver.capabilities().reads_power_state;
                    r
                } else {
                    Err(DriverError::unsupported(
                        "this driver cannot read power state (in-band only)",
                    ))
                };
                let caps = device.driver.capabilities();
                (
                    i,
                    DeviceStatus {
                        device: device.name.clone(),
                        level: level + 1,
                        driver: device.driver_name.clone(),
                        endpoint: device.driver.endpoint().to_owned(),
                        reads_power_state,
                        reading,
                        identity: device.driver.identity(),
                        declared_reader: device.declared_reader,
                        channel: caps.channel,
                        authenticated_identity: caps.authenticated_identity,
                        endpoint_key: device.endpoint_key.clone(),
                        pins: device.pins.clone(),
                    },
                )
            });
        }
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(s) = r {
            out.push(s);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
}

async fn read_once(
    gate: &EndpointGate,
    device: &Device,
    deadline: Instant,
) -> Result<PowerState, DriverError> {
    let serialize = device.driver.capabilities().serialize_per_endpoint;
    let _turn = if serialize {
        match gate.turn(device.driver.endpoint(), deadline).await {
            Some(t) => Some(t),
            None => {
                return Err(DriverError::timeout(
                    "waited for the endpoint's turn until the deadline",
                ));
            }
        }
    } else {
        None
    };
    match tokio::time::timeout_at(deadline, device.driver.status(deadline.into_std())).await {
        Ok(r) => r,
        Err(_) => Err(DriverError::timeout("no answer before the deadline")),
    }
}

fn record_for<'a>(levels: &'a mut Vec<LevelRecord>, meta: &DeviceMeta) -> &'a mut DeviceRecord {
    while levels.len() < meta.level {
        let n = levels.len() + 1;
        levels.push(LevelRecord {
            level: n,
            devices: Vec::new(),
        });
    }
    let devices = &mut levels[meta.level - 1].devices;
    let i = match devices.iter().position(|d| d.device == meta.device) {
        Some(i) => i,
        None => {
            devices.push(device::placeholder(meta));
            devices.len() - 1
        }
    };
    &mut devices[i]
}

fn position_of(ctx: &OpContext, level: usize, device: &str) -> usize {
    let log = ctx.log.lock().unwrap_or_else(|p| p.into_inner());
    match log.get(level) {
        Some(l) => l
            .devices
            .iter()
            .position(|d| d.device == device)
            .unwrap_or(l.devices.len()),
        None => 0,
    }
}
