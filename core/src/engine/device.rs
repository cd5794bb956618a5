//! Working one device: reading, commanding and verifying, with every step recorded.

use super::gate::EndpointGate;
use crate::journal::{DeviceMeta, Journal, JournalFuture};
use crate::policy::Policy;
use crate::proof::{DeviceOutcome, DeviceRecord, Event, LevelRecord};
use crate::time::Timestamp;
use crate::topology::Device;
use fencegate_driver::{Action, CommandReceipt, DriverError, ErrorKind, PowerState};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What every device run of one operation shares.
pub(crate) struct OpContext {
    pub(crate) journal: Arc<dyn Journal>,
    pub(crate) gate: Arc<EndpointGate>,
    pub(crate) request_id: String,
    pub(crate) policy: Policy,
    /// The levels as tried so far; kept outside the running futures so that an interrupted
    /// operation still has its evidence.
    pub(crate) log: Arc<Mutex<Vec<LevelRecord>>>,
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
        }
        DeviceRun {
            ctx,
            device,
            meta,
            slot: (level, index),
            started: Instant::now(),
        }
    }

    fn with_record<R>(&self, f: impl FnOnce(&mut DeviceRecord) -> R) -> R {
        let mut log = self.ctx.log.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut log[self.slot.0].devices[self.slot.1])
    }

    /// Record an event in the log and the journal. The returned future resolves once it is
    /// durable; the write is queued whether or not it is awaited.
    fn push(&self, event: Event) -> JournalFuture<'static, ()> {
        tracing::debug!(device = %self.meta.device, endpoint = %self.meta.endpoint, ?event, "event");
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
        let elapsed = self.started.elapsed().as_millis() as u64;
        let detail = detail.into();
        self.with_record(|r| {
            r.identity = identity;
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
        let mut delay = policy.poll_initial;
        let mut run = 0;
        let mut last = String::from("no reading");
        loop {
            if Instant::now() >= deadline {
                return Err((
                    ErrorKind::VerificationFailed,
                    format!(
                        "{run} of {needed} consecutive {want} readings before the deadline; last: {last}"
                    ),
                ));
            }
            match self.read(deadline).await {
                Ok(state) if &state == want => {
                    run += 1;
                    if run >= needed {
                        return Ok(());
                    }
                    last = state.to_string();
                    if !policy.confirm_interval.is_zero() {
                        pause(policy.confirm_interval, deadline).await;
                    }
                    continue;
                }
                Ok(state) => {
                    run = 0;
                    last = state.to_string();
                }
                Err(e) if e.kind.is_transient() => {
                    run = 0;
                    last = format!("{}: {}", e.kind, e.detail);
                }
                Err(e) => return Err((e.kind, e.detail)),
            }
            pause(delay, deadline).await;
            delay = (delay * 2).min(policy.poll_max);
        }
    }

    /// Read `more` times; true only if every one of them says `Off`, with no error or other
    /// reading in between (a failed read ends the run: it is not a confirmation).
    async fn confirm_consecutive_off(&self, more: u32, deadline: Instant) -> bool {
        for _ in 0..more {
            if !self.ctx.policy.confirm_interval.is_zero() {
                pause(self.ctx.policy.confirm_interval, deadline).await;
            }
            if !matches!(self.read(deadline).await, Ok(PowerState::Off)) {
                return false;
            }
        }
        true
    }

    /// The fencing procedure for one device: fresh read (already off K times: done); hard
    /// off; poll until K consecutive fresh `Off` readings. A device that cannot read power
    /// state can at best report liveness lost.
    pub(crate) async fn verify_off(&self, deadline: Instant) -> DeviceOutcome {
        let caps = self.device.driver.capabilities();
        let k = self.ctx.policy.confirmations;
        if !caps.supports(Action::Off) {
            return self.fail((ErrorKind::Unsupported, "the driver cannot power off".into()));
        }
        if !caps.reads_power_state {
            return self.deliver_blind(deadline).await;
        }
        // A fresh read first: a host already off needs no command, only confirmation.
        match self.read_retrying(deadline).await {
            // Some drivers learn what they can do only on first contact (an external
            // program's hello): one that turns out unable to read is delivered to blind.
            Err((ErrorKind::Unsupported, _)) if self.learned_it_cannot_read() => {
                return self.deliver_blind(deadline).await;
            }
            Ok(PowerState::Off) => {
                if self
                    .confirm_consecutive_off(k.saturating_sub(1), deadline)
                    .await
                {
                    return self.finish(
                        DeviceOutcome::VerifiedOff,
                        format!(
                            "already off: {k} consecutive fresh off readings, no command needed"
                        ),
                    );
                }
                self.note("not consistently off; sending the power-off command");
            }
            Ok(_) => {}
            Err(f) => return self.fail(f),
        }
        if let Err(f) = self.command_retrying(Action::Off, deadline).await {
            return self.fail(f);
        }
        match self.poll_until(&PowerState::Off, k, deadline).await {
            Ok(()) => self.finish(
                DeviceOutcome::VerifiedOff,
                format!("{k} consecutive fresh off readings after the power-off command"),
            ),
            Err(f) => self.fail(f),
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

    /// The command-only path of a driver that cannot read power state: liveness lost at best.
    async fn deliver_blind(&self, deadline: Instant) -> DeviceOutcome {
        match self.command_retrying(Action::Off, deadline).await {
            Ok(receipt) => self.finish(
                DeviceOutcome::LivenessLost,
                format!(
                    "power-off delivered ({}); this driver cannot read power state, so nothing is proven",
                    receipt
                        .map(|r| r.detail)
                        .unwrap_or_else(|| "already off, by its own account".into())
                ),
            ),
            Err(f) => self.fail(f),
        }
    }

    /// Power on and read it back once (skipped for devices that cannot power on).
    pub(crate) async fn power_on(&self, deadline: Instant) -> DeviceOutcome {
        let caps = self.device.driver.capabilities();
        if !caps.supports(Action::On) {
            return self.finish(DeviceOutcome::Done, "this driver cannot power on; skipped");
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
        let k = self.ctx.policy.confirmations;
        for i in 0..k {
            match self.read_retrying(deadline).await {
                Ok(PowerState::Off) if i + 1 == k => {
                    return self.finish(
                        DeviceOutcome::VerifiedOff,
                        format!("{k} fresh off readings"),
                    );
                }
                Ok(PowerState::Off) => continue,
                Ok(other) => return self.finish(DeviceOutcome::Failed, format!("reads {other}")),
                Err(f) => return self.fail(f),
            }
        }
        self.finish(DeviceOutcome::Failed, "no reading")
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
        events: Vec::new(),
        outcome: DeviceOutcome::Failed,
        detail: "interrupted before this device finished".into(),
        duration_ms: 0,
    }
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
