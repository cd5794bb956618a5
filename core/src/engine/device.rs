//! Working one device: reading, commanding and verifying, with every step recorded.

use super::gate::EndpointGate;
use crate::evidence::{Observation, ReadingRun, RunStep};
use crate::identity::{self, PinCheck};
use crate::journal::{DeviceMeta, IdentitySeen, Journal, JournalFuture};
use crate::policy::Policy;
use crate::proof::{DeviceOutcome, DeviceRecord, Event, LevelRecord, Operation};
use crate::time::Timestamp;
use crate::topology::Device;
use fencegate_driver::{
    Action, Channel, CommandReceipt, DriverError, ErrorKind, IdentityFact, PowerState,
    RestorePolicy,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What every device run of one operation shares.
pub(crate) struct OpContext {
    pub(crate) journal: Arc<dyn Journal>,
    pub(crate) gate: Arc<EndpointGate>,
    pub(crate) request_id: String,
    pub(crate) operation: Operation,
    pub(crate) policy: Policy,
    /// The levels as tried so far; kept outside the running futures so that an interrupted
    /// operation still has its evidence.
    pub(crate) log: Arc<Mutex<Vec<LevelRecord>>>,
    /// Why this operation may read but send nothing (a re-confirmation the storm guard
    /// would refuse as a new fence), if so.
    pub(crate) read_only: Option<String>,
}

impl OpContext {
    pub(crate) fn snapshot(&self) -> Vec<LevelRecord> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The result of a device run that ended without proof.
pub(crate) type Failure = (ErrorKind, String);

/// One device within one operation: its place in the log and its journal identity.
pub(crate) struct DeviceRun {
    ctx: Arc<OpContext>,
    device: Arc<Device>,
    meta: DeviceMeta,
    slot: (usize, usize),
    started: Instant,
    /// The identity checked before the first command; every later command and reading must
    /// come from the same box.
    checked: Mutex<Option<Vec<IdentityFact>>>,
}

impl DeviceRun {
    /// Register a run of `device` as device `index` of `level` (0-based) in the log.
    pub(crate) fn start(
        ctx: Arc<OpContext>,
        device: Arc<Device>,
        level: usize,
        index: usize,
    ) -> Self {
        Self::register(ctx, device, level, index, false)
    }

    /// Like [`DeviceRun::start`], but keep the events already in the slot (reconciliation
    /// appends to what a dead process recorded).
    pub(crate) fn start_keeping(
        ctx: Arc<OpContext>,
        device: Arc<Device>,
        level: usize,
        index: usize,
    ) -> Self {
        Self::register(ctx, device, level, index, true)
    }

    fn register(
        ctx: Arc<OpContext>,
        device: Arc<Device>,
        level: usize,
        index: usize,
        keep: bool,
    ) -> Self {
        let meta = DeviceMeta {
            level: level + 1,
            device: device.name.clone(),
            driver: device.driver_name.clone(),
            endpoint: device.driver.endpoint().to_owned(),
        };
        {
            let mut log = ctx.log.lock().unwrap_or_else(|p| p.into_inner());
            while log.len() <= level {
                let n = log.len() + 1;
                log.push(LevelRecord {
                    level: n,
                    devices: Vec::new(),
                });
            }
            let devices = &mut log[level].devices;
            while devices.len() <= index {
                devices.push(placeholder(&meta));
            }
            if !keep {
                devices[index] = placeholder(&meta);
            }
            devices[index].reads_power_state = device.driver.capabilities().reads_power_state;
            devices[index].declared_reader = device.declared_reader;
            devices[index].channel = device.channel;
        }
        DeviceRun {
            ctx,
            device,
            meta,
            slot: (level, index),
            started: Instant::now(),
            checked: Mutex::new(None),
        }
    }

    fn with_record<R>(&self, f: impl FnOnce(&mut DeviceRecord) -> R) -> R {
        let mut log = self.ctx.log.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut log[self.slot.0].devices[self.slot.1])
    }

    /// Record an event in the log and the journal. The returned future resolves once it is
    /// durable; the write is queued whether or not it is awaited.
    fn push(&self, event: Event) -> JournalFuture<'static, ()> {
        tracing::debug!(
            device = %crate::proof::printable(&self.meta.device),
            endpoint = %crate::proof::printable(&self.meta.endpoint),
            ?event,
            "event"
        );
        self.with_record(|r| r.events.push(event.clone()));
        self.ctx
            .journal
            .record(&self.ctx.request_id, &self.meta, &event)
    }

    /// Record an event without waiting for its commit. The write is queued by `push` itself,
    /// in call order; only the wait is skipped (readings need not hold up polling).
    fn log(&self, event: Event) {
        drop(self.push(event));
    }

    /// The device's name.
    pub(crate) fn device_name(&self) -> &str {
        &self.device.name
    }

    pub(crate) fn note(&self, text: impl Into<String>) {
        self.log(Event::Note {
            at: Timestamp::now(),
            text: text.into(),
        });
    }

    /// Close the record with an outcome.
    pub(crate) fn finish(
        &self,
        outcome: DeviceOutcome,
        detail: impl Into<String>,
    ) -> DeviceOutcome {
        let identity = self.device.driver.identity();
        // What the driver says it is after contact (an external program names its channel
        // in its hello).
        let channel = self.device.driver.capabilities().channel;
        let elapsed = self.started.elapsed().as_millis() as u64;
        let detail = detail.into();
        self.with_record(|r| {
            r.identity = identity;
            r.channel = channel;
            r.outcome = outcome;
            r.detail = detail;
            r.duration_ms = elapsed;
        });
        outcome
    }

    fn fail(&self, (kind, detail): Failure) -> DeviceOutcome {
        self.finish(DeviceOutcome::Failed, format!("{kind}: {detail}"))
    }

    /// One fresh reading, in the endpoint's turn, bounded by `deadline`.
    pub(crate) async fn read(&self, deadline: Instant) -> Result<PowerState, DriverError> {
        let driver = &self.device.driver;
        let result = match self.turn(deadline).await {
            None => Err(DriverError::timeout(
                "waited for the endpoint's turn until the deadline",
            )),
            Some(_turn) => bounded(deadline, driver.status(deadline.into_std())).await,
        };
        let at = Timestamp::now();
        match &result {
            Ok(state) => {
                self.log(Event::Reading {
                    at,
                    state: state.clone(),
                });
            }
            Err(e) => {
                self.log(Event::Error {
                    at,
                    call: "status".into(),
                    kind: e.kind,
                    detail: e.detail.clone(),
                });
            }
        }
        result
    }

    /// Send one command, journaling the intent durably first.
    pub(crate) async fn command(
        &self,
        action: Action,
        deadline: Instant,
    ) -> Result<CommandReceipt, DriverError> {
        if Instant::now() >= deadline {
            return Err(DriverError::timeout("not sent: the deadline had passed"));
        }
        if let Some((_, why)) = self.identity_drift() {
            return Err(DriverError::auth(format!("not sent: {why}")));
        }
        if let Some(why) = &self.ctx.read_only {
            self.note(format!("{action} not sent: {why}"));
            return Err(DriverError::new(
                ErrorKind::VerificationFailed,
                format!("{action} not sent: {why}"),
            ));
        }
        let intent = self.push(Event::CommandIntent {
            at: Timestamp::now(),
            action,
        });
        match tokio::time::timeout_at(deadline, intent).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(DriverError::new(
                    ErrorKind::Protocol,
                    format!("not sent: the journal could not record the intent ({e})"),
                ));
            }
            Err(_) => {
                return Err(DriverError::timeout(
                    "not sent: journaling the intent took until the deadline",
                ));
            }
        }
        let result = match self.turn(deadline).await {
            None => Err(DriverError::timeout(
                "waited for the endpoint's turn until the deadline",
            )),
            Some(mut turn) => {
                let paced = match turn.as_mut() {
                    Some(t) => {
                        t.pace_command(self.ctx.policy.min_command_interval, deadline)
                            .await
                    }
                    None => true,
                };
                if paced {
                    bounded(
                        deadline,
                        self.device.driver.set_power(action, deadline.into_std()),
                    )
                    .await
                } else {
                    Err(DriverError::timeout(
                        "the minimum interval between commands would end after the deadline",
                    ))
                }
            }
        };
        let at = Timestamp::now();
        match &result {
            Ok(receipt) => {
                self.log(Event::CommandAccepted {
                    at,
                    action,
                    detail: receipt.detail.clone(),
                });
            }
            Err(e) => {
                self.log(Event::Error {
                    at,
                    call: action.as_str().into(),
                    kind: e.kind,
                    detail: e.detail.clone(),
                });
            }
        }
        result
    }

    async fn turn(
        &self,
        deadline: Instant,
    ) -> Option<Option<tokio::sync::OwnedMutexGuard<super::gate::EndpointTurn>>> {
        if self.device.driver.capabilities().serialize_per_endpoint {
            self.ctx
                .gate
                .turn(&self.meta.endpoint, deadline)
                .await
                .map(Some)
        } else {
            Some(None)
        }
    }

    /// Read with bounded retries of transient failures.
    async fn read_retrying(&self, deadline: Instant) -> Result<PowerState, Failure> {
        let mut backoff = self.ctx.policy.retry_backoff;
        let mut attempt = 0;
        loop {
            match self.read(deadline).await {
                Ok(s) => return Ok(s),
                Err(e) if e.kind.is_transient() && attempt < self.ctx.policy.retries => {
                    attempt += 1;
                    if !pause(backoff, deadline).await {
                        return Err((e.kind, e.detail));
                    }
                    backoff = backoff.saturating_mul(2);
                }
                Err(e) => return Err((e.kind, e.detail)),
            }
        }
    }

    /// Send `action` with bounded retries of transient failures. A state conflict ("already
    /// in that state") is passed back as such: inconclusive, to be settled by reading.
    async fn command_retrying(
        &self,
        action: Action,
        deadline: Instant,
    ) -> Result<Option<CommandReceipt>, Failure> {
        let mut backoff = self.ctx.policy.retry_backoff;
        let mut attempt = 0;
        loop {
            match self.command(action, deadline).await {
                Ok(r) => return Ok(Some(r)),
                Err(e) if e.kind == ErrorKind::StateConflict => {
                    self.note(
                        "the device says it is already in that state; reading again (not proof)",
                    );
                    return Ok(None);
                }
                Err(e) if e.kind.is_transient() && attempt < self.ctx.policy.retries => {
                    attempt += 1;
                    self.note(format!(
                        "retry {attempt} of {} after {}",
                        self.ctx.policy.retries, e.kind
                    ));
                    if !pause(backoff, deadline).await {
                        return Err((e.kind, e.detail));
                    }
                    backoff = backoff.saturating_mul(2);
                }
                Err(e) => return Err((e.kind, e.detail)),
            }
        }
    }

    /// Poll until `want` is read `needed` times in a row, with rising pauses while it is not.
    /// Transient errors break the run of readings and are tolerated until the deadline.
    async fn poll_until(
        &self,
        want: &PowerState,
        needed: u32,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let policy = &self.ctx.policy;
        let mut run = ReadingRun::new(want.clone(), needed, Duration::ZERO);
        let mut delay = policy.poll_initial;
        let mut last = String::from("no reading");
        loop {
            if Instant::now() >= deadline {
                return Err((
                    ErrorKind::VerificationFailed,
                    format!(
                        "{} of {} consecutive {want} readings before the deadline; last: {last}",
                        run.readings(),
                        run.needed()
                    ),
                ));
            }
            let asked = Instant::now();
            let seen = match self.read(deadline).await {
                Ok(state) => {
                    last = state.to_string();
                    Observation::Reading(state)
                }
                Err(e) if e.kind.is_transient() => {
                    last = format!("{}: {}", e.kind, e.detail);
                    Observation::NoReading
                }
                Err(e) => return Err((e.kind, e.detail)),
            };
            let wanted = seen == Observation::Reading(want.clone());
            if let RunStep::Proven { .. } = run.observe(seen, asked, Instant::now()) {
                return Ok(());
            }
            if wanted {
                if !policy.confirm_interval.is_zero() {
                    pause(policy.confirm_interval, deadline).await;
                }
                continue;
            }
            pause(delay, deadline).await;
            delay = (delay * 2).min(policy.poll_max);
        }
    }

    /// Read until `Off` has been read K times in a row *and* those readings span the policy's
    /// `off_hold` (monotonic clock): an outlet rebooting or a BMC cycling reads `Off` for a
    /// few seconds and then turns the host on again. The span runs from when the first `Off`
    /// of the run was answered to when the last one was *asked*, so a slow answer cannot
    /// stretch it. `first_off` is an `Off` already read (the pre-read), which starts the run.
    /// An `On` inside a run means power came back; anything else that is not `Off` (a
    /// transient error, `Unknown`, `PoweringOff`) breaks the run, which starts again at the
    /// next `Off`. A reading from another box than the one checked ends it.
    async fn hold_off(&self, first_off: Option<Instant>, deadline: Instant) -> Hold {
        let policy = &self.ctx.policy;
        let mut run = ReadingRun::new(PowerState::Off, policy.confirmations, policy.off_hold);
        if let Some(at) = first_off {
            run = run.started_at(at);
        }
        let mut delay = policy.poll_initial;
        let mut last = String::from("no reading");
        // The first read after the command goes out at once; later ones are paced.
        let mut first_read = first_off.is_none();
        loop {
            if let RunStep::Proven { readings, span } = run.proven() {
                return Hold::Held { readings, span };
            }
            let now = Instant::now();
            if now >= deadline {
                let held = run
                    .span()
                    .map(|h| {
                        format!(
                            "; off held {} of the {} required",
                            crate::time::format_duration(h),
                            crate::time::format_duration(run.hold())
                        )
                    })
                    .unwrap_or_default();
                return Hold::Failed((
                    ErrorKind::VerificationFailed,
                    format!(
                        "{} of {} consecutive fresh off readings before the deadline{held}; last: {last}",
                        run.readings(),
                        run.needed()
                    ),
                ));
            }
            // Pace the next read: confirming reads come at `confirm_interval` until K are in,
            // then as often as polling allows until the hold is over, the last one asked no
            // earlier than the hold's end.
            let wait = match run.since() {
                Some(_) if run.readings() < run.needed() => policy.confirm_interval,
                Some(t0) => policy
                    .poll_max
                    .min((t0 + run.hold()).saturating_duration_since(now)),
                None if std::mem::take(&mut first_read) => Duration::ZERO,
                None => {
                    let d = delay;
                    delay = (delay * 2).min(policy.poll_max);
                    d
                }
            };
            if !wait.is_zero() && !pause(wait, deadline).await {
                continue;
            }
            let asked = Instant::now();
            let reading = self.read(deadline).await;
            if let Some(drift) = self.identity_drift() {
                return Hold::Failed(drift);
            }
            let seen = match reading {
                Ok(state) => {
                    last = state.to_string();
                    Observation::Reading(state)
                }
                Err(e) if e.kind.is_transient() => {
                    last = format!("{}: {}", e.kind, e.detail);
                    Observation::NoReading
                }
                Err(e) => return Hold::Failed((e.kind, e.detail)),
            };
            if let RunStep::Reversed { state, after } = run.observe(seen, asked, Instant::now()) {
                return Hold::PowerBack(format!(
                    "power came back: read off for {} and then {state}; an outlet's reboot action, a BMC cycle or reset, or someone powering it on: not a fence",
                    crate::time::format_duration(after)
                ));
            }
        }
    }

    /// Finish a device whose `Off` held, saying how it was proven.
    fn held(&self, readings: u32, span: Duration, how: &str) -> DeviceOutcome {
        self.with_record(|r| r.off_held_ms = Some(span.as_millis() as u64));
        self.finish(
            DeviceOutcome::VerifiedOff,
            format!(
                "{how}: {readings} consecutive fresh off readings spanning {} (hold {})",
                crate::time::format_duration(span),
                crate::time::format_duration(self.ctx.policy.off_hold)
            ),
        )
    }

    /// The fencing procedure for one device: fresh read; check which box answered; set the
    /// restore policy to stay off (a fence); already off and holding: done; otherwise hard
    /// off, then read until K consecutive fresh `Off` readings span the hold. A device that
    /// cannot read power state, or an isolation channel, can at best report liveness lost
    /// (or isolation): never proof.
    pub(crate) async fn verify_off(&self, deadline: Instant) -> DeviceOutcome {
        let caps = self.device.driver.capabilities();
        if !caps.supports(Action::Off) {
            return self.fail((ErrorKind::Unsupported, "the driver cannot power off".into()));
        }
        // A device the operator declared in-band only is never asked for proof, and what an
        // isolation channel "reads" is never a power state.
        if !caps.reads_power_state
            || !self.device.declared_reader
            || caps.channel == Channel::Isolation
        {
            return self.deliver_blind(deadline).await;
        }
        // A fresh read first: a host already off needs no command, only confirmation.
        let first = match self.read_retrying(deadline).await {
            // Some drivers learn what they can do only on first contact (an external
            // program's hello): one that turns out unable to read is delivered to blind.
            Err((ErrorKind::Unsupported, _)) if self.learned_it_cannot_read() => {
                return self.deliver_blind(deadline).await;
            }
            Ok(state) => state,
            Err(f) => return self.fail(f),
        };
        if self.device.driver.capabilities().channel == Channel::Isolation {
            self.note("the driver says at first contact that it isolates, not powers off: its readings prove nothing");
            self.with_record(|r| r.reads_power_state = false);
            return self.deliver_blind(deadline).await;
        }
        if let Err(f) = self.check_identity().await {
            return self.fail(f);
        }
        if self.ctx.operation == Operation::Fence {
            self.keep_off_when_power_returns(deadline).await;
        }
        if first == PowerState::Off {
            match self.hold_off(Some(Instant::now()), deadline).await {
                Hold::Held { readings, span } => {
                    return self.held(readings, span, "already off, no command needed");
                }
                Hold::PowerBack(why) => self.note(format!("{why}; sending the power-off command")),
                Hold::Failed((kind, detail))
                    if kind.is_transient() || kind == ErrorKind::VerificationFailed =>
                {
                    if Instant::now() >= deadline {
                        return self.fail((kind, detail));
                    }
                    self.note(format!(
                        "not consistently off ({detail}); sending the power-off command"
                    ));
                }
                Hold::Failed(f) => return self.fail(f),
            }
        }
        if let Err(f) = self.command_retrying(Action::Off, deadline).await {
            return self.fail(f);
        }
        match self.hold_off(None, deadline).await {
            Hold::Held { readings, span } => {
                self.held(readings, span, "after the power-off command")
            }
            Hold::PowerBack(why) => self.fail((ErrorKind::VerificationFailed, why)),
            Hold::Failed(f) => self.fail(f),
        }
    }

    /// Check which box answered, before any command: the authenticated identity the driver
    /// learned on first contact against the device's pins, else against what the journal
    /// remembers for its endpoint (remembering it on first use). A pinned identity is also
    /// claimed in the journal, so no other address can present that box as its own. The
    /// facts checked are kept: every later command and reading must come from that box.
    async fn check_identity(&self) -> Result<(), Failure> {
        let presented = self.device.driver.identity();
        for (fact, why) in identity::placeholders(&presented) {
            self.note(format!(
                "identity {}={} is a placeholder ({why}): not trusted to tell boxes apart",
                fact.kind, fact.value
            ));
        }
        let facts = identity::usable(&presented);
        self.lock_while_fencing(&facts).await;
        let refuse = |detail: String| (ErrorKind::Auth, format!("identity: {detail}"));
        let journal_failed = |e: crate::journal::JournalError| {
            (
                ErrorKind::Protocol,
                format!("identity: the journal could not compare it ({e}); nothing was sent"),
            )
        };
        if !self.device.pins.is_empty() {
            if let PinCheck::Mismatch(why) = identity::check_pins(&self.device.pins, &presented) {
                return Err(refuse(format!("{why}; nothing was sent to it")));
            }
            self.ctx
                .journal
                .pin_identity(&self.device.endpoint_key, &facts)
                .await
                .map_err(journal_failed)?;
            self.note(format!(
                "identity matches the pins ({})",
                identity::describe(&facts)
            ));
            self.keep_checked(facts);
            return Ok(());
        }
        if self.ctx.policy.require_identity {
            return Err(refuse(format!(
                "require_identity is set and device `{}` pins none (presented: {}); pin one with guid/engine_id/uuid/serial",
                self.device.name,
                identity::describe(&facts)
            )));
        }
        let seen = self
            .ctx
            .journal
            .identity_seen(&self.device.endpoint_key, &facts)
            .await
            .map_err(journal_failed)?;
        match seen {
            IdentitySeen::FirstUse if facts.is_empty() => {
                self.note("the endpoint presents no authenticated identity: a relay or a re-addressed box could not be told apart");
            }
            IdentitySeen::FirstUse => {
                self.note(format!(
                    "identity remembered on first use: {}",
                    identity::describe(&facts)
                ));
            }
            IdentitySeen::Matches(_) => {}
            IdentitySeen::Changed(known) => {
                return Err(refuse(format!(
                    "the endpoint now proves {} but {} was remembered for it since {}; another box answers at this address (a relay, a swapped board or a re-used address); nothing was sent to it; if the change is known, accept it with `fencegate trust HOST`",
                    identity::describe(&facts),
                    identity::describe(&known.facts),
                    known.since
                )));
            }
            IdentitySeen::ClaimedElsewhere { endpoint, fact } => {
                return Err(refuse(format!(
                    "{}={} is already remembered for {endpoint}: two addresses claim one box (a relay, or a copied configuration); nothing was sent to it",
                    fact.kind, fact.value
                )));
            }
        }
        self.keep_checked(facts);
        Ok(())
    }

    /// A fence locks every box its whole-host devices reach, by identity, at first contact:
    /// whatever the checks below decide, no other name or address may power that box on
    /// while the fence runs (the fence's begin locked only the identities remembered before).
    /// Locking a box too many only blocks a power-on until `unfence`; too few powers one on.
    async fn lock_while_fencing(&self, facts: &[IdentityFact]) {
        if self.ctx.operation != Operation::Fence
            || super::shared_channel(self.device.channel)
            || super::shared_channel(self.device.driver.capabilities().channel)
            || facts.is_empty()
        {
            return;
        }
        if let Err(e) = self
            .ctx
            .journal
            .lock_identities(&self.ctx.request_id, facts)
            .await
        {
            tracing::warn!("the fenced box's identity could not be locked: {e}");
        }
    }

    fn keep_checked(&self, facts: Vec<IdentityFact>) {
        *self.checked.lock().unwrap_or_else(|p| p.into_inner()) = Some(facts);
    }

    /// `Some(failure)` when the endpoint now presents another identity than the one checked
    /// before the first command (a relay that switched boxes between sessions): nothing more
    /// may be sent, and no reading counts. Cheap, no I/O.
    fn identity_drift(&self) -> Option<Failure> {
        let checked = self
            .checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let now = identity::usable(&self.device.driver.identity());
        if identity::same_box(&checked, &now) {
            return None;
        }
        Some((
            ErrorKind::Auth,
            format!(
                "identity: the endpoint proved {} when checked and {} by the end; readings and commands may reach another box",
                identity::describe(&checked),
                identity::describe(&now)
            ),
        ))
    }

    /// Set the host's power restore policy to stay off, so a returning outlet or mains
    /// cannot undo the fence; the previous value is recorded for `unfence`. Best effort: a
    /// driver or BMC without the setting is noted, never a failure of the fence.
    async fn keep_off_when_power_returns(&self, deadline: Instant) {
        let driver = &self.device.driver;
        let previous = match self.turn(deadline).await {
            Some(_turn) => bounded(deadline, driver.restore_policy(deadline.into_std())).await,
            None => return,
        };
        let previous = match previous {
            Ok(p) => p,
            Err(e) if e.kind == ErrorKind::Unsupported => return,
            Err(e) => {
                self.note(format!(
                    "could not read the power restore policy ({e}); not changing it"
                ));
                return;
            }
        };
        if previous == RestorePolicy::AlwaysOff {
            self.log(Event::RestorePolicy {
                at: Timestamp::now(),
                previous: Some(previous),
                set: RestorePolicy::AlwaysOff,
                accepted: true,
                detail: "already set to stay off".into(),
            });
            return;
        }
        let result = match self.turn(deadline).await {
            Some(_turn) => {
                bounded(
                    deadline,
                    driver.set_restore_policy(RestorePolicy::AlwaysOff, deadline.into_std()),
                )
                .await
            }
            None => Err(DriverError::timeout("waited for the endpoint's turn")),
        };
        self.log(Event::RestorePolicy {
            at: Timestamp::now(),
            previous: Some(previous),
            set: RestorePolicy::AlwaysOff,
            accepted: result.is_ok(),
            detail: match &result {
                Ok(()) => format!("was {previous}; set to stay off until unfence"),
                Err(e) => format!("was {previous}; could not set it to stay off: {e}"),
            },
        });
    }

    /// Put back a restore policy a fence changed (for `unfence`).
    pub(crate) async fn restore_policy(
        &self,
        policy: RestorePolicy,
        deadline: Instant,
    ) -> DeviceOutcome {
        // The box at the address now must be the one the fence changed: a read teaches the
        // driver its identity, which is checked before anything is written.
        if let Err(f) = self.read_retrying(deadline).await {
            return self.fail((f.0, format!("power restore policy not put back: {}", f.1)));
        }
        if let Err(f) = self.check_identity().await {
            return self.fail((f.0, format!("power restore policy not put back: {}", f.1)));
        }
        let driver = &self.device.driver;
        let result = match self.turn(deadline).await {
            Some(_turn) => {
                bounded(
                    deadline,
                    driver.set_restore_policy(policy, deadline.into_std()),
                )
                .await
            }
            None => Err(DriverError::timeout("waited for the endpoint's turn")),
        };
        self.log(Event::RestorePolicy {
            at: Timestamp::now(),
            previous: None,
            set: policy,
            accepted: result.is_ok(),
            detail: match &result {
                Ok(()) => format!("put back to {policy}, as before the fence"),
                Err(e) => format!("could not put it back to {policy}: {e}"),
            },
        });
        match result {
            Ok(()) => self.finish(
                DeviceOutcome::Done,
                format!("power restore policy put back to {policy}"),
            ),
            Err(e) => self.fail((
                e.kind,
                format!(
                    "power restore policy not put back to {policy}: {}",
                    e.detail
                ),
            )),
        }
    }

    /// Whether the endpoint answers at all (any reading, or an answer that is an error of
    /// the device rather than silence): used to tell whether a host's BMC still has standby
    /// power after its outlets read off.
    pub(crate) async fn answers(&self, deadline: Instant) -> Option<String> {
        match self.read(deadline).await {
            Ok(state) => Some(format!("reads {state}")),
            Err(e) if matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Timeout) => None,
            Err(e) => Some(format!("answers ({e})")),
        }
    }

    /// Whether the driver, asked again after a call, says it cannot read power state; the
    /// record is corrected so that this device is never counted as a reader.
    fn learned_it_cannot_read(&self) -> bool {
        let cannot = !self.device.driver.capabilities().reads_power_state;
        if cannot {
            self.with_record(|r| r.reads_power_state = false);
            self.note("the driver reports it cannot read power state; delivering the command only");
        }
        cannot
    }

    /// The command-only path of a driver that cannot read power state: liveness lost at
    /// best, or isolation for a channel that cuts storage or network.
    async fn deliver_blind(&self, deadline: Instant) -> DeviceOutcome {
        let delivered = self.command_retrying(Action::Off, deadline).await;
        // A blind device learns its identity only by delivering; one that proves another
        // box than its pin gets no credit.
        if delivered.is_ok()
            && !self.device.pins.is_empty()
            && let PinCheck::Mismatch(why) =
                identity::check_pins(&self.device.pins, &self.device.driver.identity())
        {
            return self.fail((
                ErrorKind::Auth,
                format!("identity: {why}; no credit for this device"),
            ));
        }
        match delivered {
            Ok(receipt) => {
                // Asked after the command: an external program says what it is in its hello.
                let isolation = self.device.driver.capabilities().channel == Channel::Isolation;
                let said = receipt
                    .map(|r| r.detail)
                    .unwrap_or_else(|| "already done, by its own account".into());
                if isolation {
                    self.finish(
                        DeviceOutcome::Isolated,
                        format!(
                            "isolation delivered ({said}); this agent cuts storage or network, not power: the host may still run"
                        ),
                    )
                } else {
                    self.finish(
                        DeviceOutcome::LivenessLost,
                        format!(
                            "power-off delivered ({said}); this driver cannot read power state, so nothing is proven"
                        ),
                    )
                }
            }
            Err(f) => self.fail(f),
        }
    }

    /// Power on and read it back once (skipped for devices that cannot power on).
    /// `host_facts` are the identities of the host's other whole-host devices (see
    /// `locked_box`): checked against the locks again right before this device's `On`, so a
    /// fence that began since the first check (under another name) is still met.
    pub(crate) async fn power_on(
        &self,
        deadline: Instant,
        host_facts: Arc<Vec<IdentityFact>>,
    ) -> DeviceOutcome {
        let caps = self.device.driver.capabilities();
        if !caps.supports(Action::On) {
            return self.finish(DeviceOutcome::Done, "this driver cannot power on; skipped");
        }
        // Which box would be powered on: checked before the command, as for a fence.
        let mut facts = Vec::new();
        if caps.reads_power_state {
            if let Err(f) = self.read_retrying(deadline).await {
                return self.fail(f);
            }
            if let Err(f) = self.check_identity().await {
                return self.fail(f);
            }
            // The same box fenced under another name or address is locked too (a whole-host
            // channel; an outlet's identity is its PDU's, shared with other hosts).
            if !super::shared_channel(self.device.driver.capabilities().channel) {
                facts = identity::usable(&self.device.driver.identity());
            }
        }
        // Checked last, with nothing awaited between it and the command but the journal.
        facts.extend(host_facts.iter().cloned());
        match self.ctx.journal.identity_locked(&facts).await {
            Ok(None) => {}
            Ok(Some(lock)) => {
                return self.fail((
                    ErrorKind::StateConflict,
                    format!(
                        "power-on lock: this box ({}) was fenced by {} at {} as host {}; nothing was sent; run `fencegate unfence {}` once its VMs run elsewhere",
                        identity::describe(&facts),
                        lock.request_id,
                        lock.locked_at,
                        crate::proof::printable(&lock.host),
                        crate::proof::printable(&lock.host),
                    ),
                ));
            }
            Err(e) => {
                return self.fail((
                    ErrorKind::Protocol,
                    format!(
                        "the journal could not check the power-on locks ({e}); nothing was sent"
                    ),
                ));
            }
        }
        if let Err(f) = self.command_retrying(Action::On, deadline).await {
            return self.fail(f);
        }
        if !caps.reads_power_state {
            return self.finish(
                DeviceOutcome::Done,
                "power-on delivered (cannot be read back)",
            );
        }
        match self.poll_until(&PowerState::On, 1, deadline).await {
            Ok(()) => self.finish(DeviceOutcome::Done, "power reads on"),
            Err(f) => self.fail(f),
        }
    }

    /// Read once (for reconciliation and status): up to K readings while they say off.
    pub(crate) async fn reread(&self, deadline: Instant) -> DeviceOutcome {
        if !self.device.driver.capabilities().reads_power_state {
            return self.finish(DeviceOutcome::Failed, "this driver cannot read power state");
        }
        // The reconcile read: K fresh readings, stopping at the first that is not off. No
        // hold: it settles what a dead process left open, and never becomes a fence's proof.
        let k = self.ctx.policy.confirmations;
        let mut run = ReadingRun::new(PowerState::Off, k, Duration::ZERO);
        loop {
            let asked = Instant::now();
            match self.read_retrying(deadline).await {
                Ok(state) if state == PowerState::Off => {
                    let step = run.observe(Observation::Reading(state), asked, Instant::now());
                    if let RunStep::Proven { readings, .. } = step {
                        return self.finish(
                            DeviceOutcome::VerifiedOff,
                            format!("{readings} fresh off readings"),
                        );
                    }
                }
                Ok(other) => return self.finish(DeviceOutcome::Failed, format!("reads {other}")),
                Err(f) => return self.fail(f),
            }
        }
    }
}

/// The record of a device that has not finished (yet): failed unless it says otherwise.
pub(crate) fn placeholder(meta: &DeviceMeta) -> DeviceRecord {
    DeviceRecord {
        device: meta.device.clone(),
        driver: meta.driver.clone(),
        endpoint: meta.endpoint.clone(),
        identity: Vec::new(),
        reads_power_state: false,
        declared_reader: false,
        channel: Channel::Other,
        off_held_ms: None,
        events: Vec::new(),
        outcome: DeviceOutcome::Failed,
        detail: "interrupted before this device finished".into(),
        duration_ms: 0,
    }
}

/// How reading for a held `Off` ended.
enum Hold {
    /// K consecutive `Off` readings spanning the hold.
    Held {
        /// How many.
        readings: u32,
        /// From the first to the last of them.
        span: Duration,
    },
    /// `Off` was read and then `On`: power came back.
    PowerBack(String),
    /// No held `Off` before the deadline, or a non-transient error.
    Failed(Failure),
}

/// A driver call, cut off at the deadline whatever the driver does.
async fn bounded<T>(
    deadline: Instant,
    call: fencegate_driver::DriverFuture<'_, T>,
) -> Result<T, DriverError> {
    match tokio::time::timeout_at(deadline, call).await {
        Ok(r) => r,
        Err(_) => Err(DriverError::timeout("no answer before the deadline")),
    }
}

/// Sleep for `d` but not past `deadline`; false if the deadline was reached.
async fn pause(d: Duration, deadline: Instant) -> bool {
    let until = (Instant::now() + d).min(deadline);
    tokio::time::sleep_until(until).await;
    until < deadline
}
