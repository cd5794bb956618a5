//! The journal: the durable memory of every operation.
//!
//! The engine talks to it through the small [`Journal`] trait so that a later, replicated
//! store (several gateways coordinating) can take its place without touching the engine.
//! The default is [`SqliteJournal`]: one file, WAL, `synchronous=FULL`, one writer thread.
//!
//! Ordering guarantees the engine relies on:
//! - [`Journal::begin`] is durable before it resolves, so the intent is on disk before any
//!   command is sent;
//! - events are written in the order [`Journal::record`] was *called* (it enqueues at once);
//! - [`Journal::finish`] resolves only after the proof and every earlier event are durable.

mod owner;
mod sqlite;

pub use sqlite::SqliteJournal;

use crate::proof::{Door, Event, Operation, Proof};
use crate::time::Timestamp;
use fencegate_driver::IdentityFact;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The future journal calls return.
pub type JournalFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, JournalError>> + Send + 'a>>;

/// The journal could not do its job. The engine refuses to act without a journal: an
/// operation that cannot be recorded is not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The storage failed.
    #[error("journal storage error: {0}")]
    Storage(String),
    /// A stored record could not be read back.
    #[error("journal record {0} is unreadable: {1}")]
    Corrupt(String, String),
    /// The journal was shut down.
    #[error("the journal is closed")]
    Closed,
}

/// What the engine asks for when it begins an operation.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The new operation's id.
    pub request_id: String,
    /// The host.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// Who asked.
    pub requester: String,
    /// Why.
    pub reason: String,
    /// What the operation's proof rests on ([`crate::Host::target_digest`]): a running
    /// operation's verdict is shared only with requests for the same target, and only a proof
    /// of the same target is re-confirmed within the tolerance window.
    pub target: String,
    /// The front door the request came through (a lock this sets records it).
    pub door: Door,
    /// What the host's devices switch ([`crate::Device::lock_key`]): a lock set through any
    /// name covers them all, and an operation on any of them is the one in flight.
    pub lock_keys: Vec<String>,
    /// Where the identities of the host's whole-host devices (BMCs) are remembered
    /// ([`crate::Device::endpoint_key`]). A fence locks the identities remembered there as it
    /// begins, so a relay or another address reaching one of those boxes meets the lock while
    /// the fence still runs, not only after its verdict.
    pub identity_endpoints: Vec<String>,
    /// Storm guard to apply: refuse when this many *other* hosts were fenced within the
    /// window. `None` skips the guard (forced, or not a fence).
    pub storm: Option<(u32, Duration)>,
    /// Window within which an earlier verified-off proof of this host is re-confirmed.
    pub tolerance: Duration,
    /// How long the operation may take at most; after that an open record is abandoned.
    pub lease: Duration,
    /// Whether a successful begin sets the host's power-on lock.
    pub sets_lock: bool,
    /// Whether the operation powers the host on, and so must not begin while a power-on
    /// lock is set. Checked inside `begin`, so no fence of another process can slip in
    /// between the check and the start.
    pub blocked_by_lock: bool,
}

/// How a begin went.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// Recorded; go ahead. `confirms` names an earlier verified-off proof of this host
    /// (same target) within the tolerance window that nothing has powered on since.
    Started {
        /// The earlier proof being re-confirmed.
        confirms: Option<String>,
        /// Set when a guard lets the operation read but not command: a re-confirmation
        /// that the storm guard would refuse as a new fence. Says why.
        read_only: Option<String>,
    },
    /// Another live process is already working this host; wait for its record.
    InFlight {
        /// The operation to wait for.
        request_id: String,
        /// What kind of operation it is.
        operation: Operation,
        /// Its target digest (empty for records written before targets were recorded).
        target: String,
    },
    /// A guard refused; the refusal itself was recorded.
    Refused {
        /// Why.
        reason: String,
    },
    /// The operation would power on a host a fence locked; nothing was recorded (the
    /// engine records the refusal with its own wording).
    Locked(PowerLock),
}

/// The device an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMeta {
    /// 1-based level.
    pub level: usize,
    /// Device name.
    pub device: String,
    /// Driver name.
    pub driver: String,
    /// Endpoint.
    pub endpoint: String,
}

/// An operation left open by a process that died.
#[derive(Debug, Clone)]
pub struct Abandoned {
    /// Its id.
    pub request_id: String,
    /// The host.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// Who asked.
    pub requester: String,
    /// Why.
    pub reason: String,
    /// When it began.
    pub started_at: Timestamp,
    /// What was recorded before the process died.
    pub events: Vec<(DeviceMeta, Event)>,
}

/// A host's power-on lock. A host holds at most one per front door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerLock {
    /// The fence that set it.
    pub request_id: String,
    /// When.
    pub locked_at: Timestamp,
    /// The door the fence came through (`None`: recorded before doors were).
    pub door: Option<Door>,
    /// Who asked for the fence.
    pub requester: String,
    /// The host name the fence was asked for (what `fencegate unfence` takes).
    pub host: String,
}

/// The identity the journal remembers for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownIdentity {
    /// The authenticated facts, normalized (see [`crate::identity::usable`]).
    pub facts: Vec<IdentityFact>,
    /// When they were first seen or accepted.
    pub since: Timestamp,
    /// Who accepted them with `fencegate trust` (`None`: remembered at first use).
    pub accepted_by: Option<String>,
}

/// How an endpoint's presented identity compares with what the journal remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySeen {
    /// Nothing was remembered for this endpoint: the facts are now (trust on first use).
    FirstUse,
    /// The facts match what is remembered.
    Matches(KnownIdentity),
    /// The endpoint presents another identity than the one remembered.
    Changed(KnownIdentity),
    /// Nothing was remembered for this endpoint, but one of the facts is already remembered
    /// for another endpoint: two addresses claim one box (a relay, a copied configuration).
    /// Nothing was remembered.
    ClaimedElsewhere {
        /// The other endpoint.
        endpoint: String,
        /// The fact both claim.
        fact: IdentityFact,
    },
}

/// How an operator's `trust` went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trusted {
    /// Accepted; what was remembered before, if anything.
    Accepted(Option<KnownIdentity>),
    /// The endpoint presented no authenticated identity: nothing to trust, nothing changed.
    Nothing,
    /// A fact is remembered for another endpoint: one box cannot be two addresses'.
    HeldElsewhere {
        /// The other endpoint.
        endpoint: String,
        /// The fact both claim.
        fact: IdentityFact,
    },
}

/// The durable store of operations, events, proofs and power-on locks.
pub trait Journal: Send + Sync {
    /// Apply the guards and record the start of an operation, atomically across processes.
    fn begin(&self, claim: Claim) -> JournalFuture<'static, Begin>;

    /// Append an event. Enqueued when called; the future resolves when it is durable
    /// (awaiting it is optional, except for command intents).
    fn record(
        &self,
        request_id: &str,
        device: &DeviceMeta,
        event: &Event,
    ) -> JournalFuture<'static, ()>;

    /// Record an operation refused before it began (a power-on lock, another operation in
    /// progress), so that every refusal is on record like the storm guard's.
    fn refused(&self, proof: &Proof) -> JournalFuture<'static, ()>;

    /// Close an operation with its proof (durable, with every earlier event, on return).
    fn finish(&self, proof: &Proof) -> JournalFuture<'static, ()>;

    /// The finished record of one operation, if it is finished.
    fn proof(&self, request_id: &str) -> JournalFuture<'static, Option<Proof>>;

    /// Finished records, newest first, optionally for one host.
    fn history(&self, host: Option<&str>, limit: usize) -> JournalFuture<'static, Vec<Proof>>;

    /// The host's power-on locks, oldest first (one per door at most).
    fn power_locks(&self, host: &str) -> JournalFuture<'static, Vec<PowerLock>>;

    /// Lift a host's power-on locks, only those set through `only` when given; returns the
    /// locks lifted.
    fn clear_power_locks(
        &self,
        host: &str,
        only: Option<Door>,
    ) -> JournalFuture<'static, Vec<PowerLock>>;

    /// Compare the authenticated identity an endpoint presented with the one remembered for
    /// it, remembering it when there is none yet (atomically across processes). `facts` are
    /// already normalized and free of placeholders; an empty list is compared too (an
    /// endpoint that stopped presenting its identity has changed).
    fn identity_seen(
        &self,
        endpoint: &str,
        facts: &[IdentityFact],
    ) -> JournalFuture<'static, IdentitySeen>;

    /// Accept `facts` as the identity of `endpoint` (an operator's `fencegate trust`),
    /// returning what was remembered before. Refused (and nothing changed) when `facts` is
    /// empty (trusting nothing would switch the check off) or when one of them is
    /// remembered for another endpoint (that box is already someone else's), unless `moved`
    /// says the box really moved here, when the old endpoint forgets it.
    fn trust_identity(
        &self,
        endpoint: &str,
        facts: &[IdentityFact],
        by: &str,
        moved: bool,
    ) -> JournalFuture<'static, Trusted>;

    /// Record `facts`, which matched the device's pins, as the identity of `endpoint`: the
    /// pin in the configuration is the authority, and from then on no other address may
    /// present that box (its next contact is refused as claimed elsewhere).
    fn pin_identity(&self, endpoint: &str, facts: &[IdentityFact]) -> JournalFuture<'static, ()>;

    /// Every remembered identity by endpoint (for `check`).
    fn known_identities(&self) -> JournalFuture<'static, Vec<(String, KnownIdentity)>>;

    /// Record that a fence through `door` took the verdict of fence `request_id` (running in
    /// another process) as its own: the lock that fence set now counts as `door`'s too, so a
    /// door that joined is not left without the lock it would have set.
    fn share_lock(
        &self,
        host: &str,
        door: Door,
        request_id: &str,
        requester: &str,
    ) -> JournalFuture<'static, ()>;

    /// Announce a storm-guarded fence before it begins, for as long as its process lives:
    /// fences announced at the same time are judged together by the storm guard (a healed
    /// partition fires every hook at once), instead of the first few powering off healthy
    /// hosts before it trips. [`Journal::begin`] ends the announcement.
    fn announce(&self, claim: &Claim) -> JournalFuture<'static, ()>;

    /// Lock the boxes a fence's devices proved to be (their authenticated identities), so a
    /// re-addressed BMC or another URL reaching the same box meets the lock after contact.
    fn lock_identities(
        &self,
        request_id: &str,
        facts: &[IdentityFact],
    ) -> JournalFuture<'static, ()>;

    /// The power-on lock covering a box with one of these identities, if any.
    fn identity_locked(&self, facts: &[IdentityFact]) -> JournalFuture<'static, Option<PowerLock>>;

    /// Take over operations whose owning process is gone, for reconciliation. Each is
    /// handed to exactly one caller, which must [`Journal::finish`] it.
    fn take_abandoned(&self) -> JournalFuture<'static, Vec<Abandoned>>;
}
