//! The simulated world: a clock the journal reads, boxes with a *truth* (their real power
//! over simulated time) and a log of every call they answered, and drivers implementing the
//! driver contract on them, with the faults a schedule arms.
//!
//! The invariants are checked against the boxes' truth and logs, never against what the
//! engine claims, so every fault here is one the engine must survive without lying.

use fencegate_core::time::{Clock, Moment, Timestamp};
use fencegate_driver::{
    Action, Capabilities, Channel, CommandReceipt, DriverError, DriverFuture, ErrorKind,
    IdentityFact, PowerDriver, PowerState, RestorePolicy,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The wall clock's value at the start of every schedule (2027-01-15).
pub const EPOCH_MS: i64 = 1_800_000_000_000;

/// One order for everything observed (box calls, journal decisions), so the checker can
/// say what happened before what even within one simulated instant.
#[derive(Debug)]
pub struct Seq(AtomicU64);

impl Seq {
    /// A fresh counter.
    pub fn new() -> Arc<Self> {
        Arc::new(Seq(AtomicU64::new(0)))
    }

    /// The next number.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// The journal's clock: wall time that schedules step, and a boot id and boot clock that a
/// simulated reboot changes. Remembers its history so the checker knows which window
/// comparisons the guards could make soundly.
#[derive(Debug)]
pub struct SimClock {
    t0: Instant,
    state: Mutex<ClockState>,
}

#[derive(Debug, Clone)]
struct ClockState {
    offset_ms: i64,
    boot: u32,
    boot_at: Instant,
}

/// What the clock was at one moment of true (simulated) time.
#[derive(Debug, Clone, Copy)]
pub struct ClockReading {
    /// Wall clock minus true time.
    pub offset_ms: i64,
    /// Which boot.
    pub boot: u32,
}

impl SimClock {
    /// A clock starting now, on boot 1, with the wall clock right.
    pub fn new(t0: Instant) -> Arc<Self> {
        Arc::new(SimClock {
            t0,
            state: Mutex::new(ClockState {
                offset_ms: 0,
                boot: 1,
                boot_at: t0,
            }),
        })
    }

    /// Step the wall clock by `delta_ms` (NTP or an operator).
    pub fn step(&self, delta_ms: i64) {
        self.state.lock().unwrap().offset_ms += delta_ms;
    }

    /// A new boot: new boot id, boot clock from zero; the wall clock runs on.
    pub fn reboot(&self) {
        let mut st = self.state.lock().unwrap();
        st.boot += 1;
        st.boot_at = Instant::now();
    }

    /// The clock as it reads now.
    pub fn reading(&self) -> ClockReading {
        let st = self.state.lock().unwrap();
        ClockReading {
            offset_ms: st.offset_ms,
            boot: st.boot,
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> Moment {
        let now = Instant::now();
        let st = self.state.lock().unwrap();
        Moment {
            wall: Timestamp(EPOCH_MS + (now - self.t0).as_millis() as i64 + st.offset_ms),
            boot: format!("sim-boot-{}", st.boot),
            // Like CLOCK_BOOTTIME read a little after boot.
            up_ms: 60_000 + (now - st.boot_at).as_millis() as i64,
        }
    }
}

/// The real power of a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// Powered.
    On,
    /// Powering off: still powered.
    PoweringOff,
    /// Off.
    Off,
}

/// A fault for one call (the next calls of a box, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFault {
    /// The request is lost: no effect, `unreachable`.
    Drop,
    /// `busy`, no effect.
    Busy,
    /// Credentials refused, no effect.
    Auth,
    /// No answer until the deadline, no effect.
    Timeout,
    /// The BMC crashes while handling the call: a command takes effect, no answer ever comes.
    CrashMidCall,
    /// A reading answers neither on nor off.
    Unknown,
    /// The answer comes this much later.
    Delay(u64),
}

/// A fault a schedule arms on a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next `n` calls fail or misbehave this way.
    Calls(CallFault, u8),
    /// For this long, commands are accepted and ignored.
    Stuck(u64),
    /// For this long (shorter than any hold), readings say Off while the power is on and
    /// commands are ignored: a broken BMC.
    LyingOff(u64),
    /// For `.1` ms, readings report the power as it was `.0` ms earlier (a stale cache).
    Stale(u64, u64),
    /// The next power-off comes back on after this long (an outlet's reboot action, a BMC
    /// cycle): the hold must catch it.
    FlapAfterOff(u64),
    /// The next power-off passes through `PoweringOff` for this long.
    SlowOff(u64),
    /// Someone presses the power button: on now.
    PowerButton,
}

/// What a box answered one driver call.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A reading.
    Read(PowerState),
    /// A command, and whether it changed anything in the box's truth (false when stuck).
    Command(Action, bool),
    /// The restore policy was set.
    Restore(RestorePolicy),
    /// A failed call.
    Failed(&'static str, ErrorKind),
    /// The call never answers; a command took effect (`Some`) or was lost (`None`).
    Vanished(&'static str, Option<bool>),
}

/// One entry of a box's log.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Global order (when the box answered or acted).
    pub seq: u64,
    /// Global order when the call was made: a command is decided when it is sent, and
    /// anything that happens while it travels cannot change that decision.
    pub asked: u64,
    /// Simulated time.
    pub at: Instant,
    /// The process whose driver called.
    pub process: usize,
    /// The address the call came through.
    pub endpoint: String,
    /// What happened.
    pub answer: Answer,
    /// The box's real power when it answered or acted (after the command, for one): what
    /// a reading is held to, in the order of events even within one instant.
    pub truth: Truth,
}

/// A box: its truth over time, its faults, its log.
#[derive(Debug)]
pub struct SimBox {
    /// Its index in the world.
    pub index: usize,
    seq: Arc<Seq>,
    st: Mutex<BoxState>,
}

#[derive(Debug)]
struct BoxState {
    timeline: Vec<(Instant, Truth)>,
    scheduled: Vec<(Instant, Truth)>,
    call_faults: VecDeque<CallFault>,
    stuck_until: Option<Instant>,
    lying_until: Option<Instant>,
    stale: Option<(Duration, Instant)>,
    flap: Option<Duration>,
    slow_off: Duration,
    conflict_if_already: bool,
    latency: Duration,
    restore: RestorePolicy,
    log: Vec<Entry>,
}

impl BoxState {
    fn settle(&mut self, now: Instant) {
        while let Some(&(t, s)) = self.scheduled.first() {
            if t > now {
                break;
            }
            self.scheduled.remove(0);
            self.push(t, s);
        }
    }

    fn push(&mut self, t: Instant, s: Truth) {
        if self.timeline.last().map(|&(_, c)| c) != Some(s) {
            self.timeline.push((t, s));
        }
    }

    fn current(&self) -> Truth {
        self.timeline.last().map(|&(_, s)| s).unwrap_or(Truth::On)
    }

    fn at(&self, t: Instant) -> Truth {
        let mut s = self.timeline.first().map(|&(_, s)| s).unwrap_or(Truth::On);
        for &(when, state) in &self.timeline {
            if when > t {
                break;
            }
            s = state;
        }
        s
    }

    fn frozen(&self, now: Instant) -> bool {
        self.stuck_until.is_some_and(|u| now < u) || self.lying_until.is_some_and(|u| now < u)
    }

    /// Carry out a command; false when the box ignored it.
    fn apply(&mut self, action: Action, now: Instant) -> bool {
        self.settle(now);
        if self.frozen(now) {
            return false;
        }
        match action {
            Action::Off => {
                if self.current() == Truth::Off {
                    return true;
                }
                self.scheduled.clear();
                let off_at = if self.slow_off.is_zero() {
                    self.push(now, Truth::Off);
                    now
                } else {
                    self.push(now, Truth::PoweringOff);
                    let at = now + std::mem::take(&mut self.slow_off);
                    self.scheduled.push((at, Truth::Off));
                    at
                };
                if let Some(f) = self.flap.take() {
                    self.scheduled.push((off_at + f, Truth::On));
                }
            }
            _ => {
                self.scheduled.clear();
                self.push(now, Truth::On);
            }
        }
        true
    }

    fn reading(&mut self, now: Instant) -> PowerState {
        self.settle(now);
        if self.lying_until.is_some_and(|u| now < u) {
            return PowerState::Off;
        }
        let t = match self.stale {
            Some((lag, until)) if now < until => now.checked_sub(lag).unwrap_or(now),
            _ => now,
        };
        match self.at(t) {
            Truth::On => PowerState::On,
            Truth::PoweringOff => PowerState::PoweringOff,
            Truth::Off => PowerState::Off,
        }
    }
}

impl SimBox {
    /// A box, on or off from the start.
    pub fn new(
        index: usize,
        seq: Arc<Seq>,
        on: bool,
        conflict_if_already: bool,
        latency_ms: u64,
    ) -> Arc<Self> {
        Arc::new(SimBox {
            index,
            seq,
            st: Mutex::new(BoxState {
                timeline: vec![(Instant::now(), if on { Truth::On } else { Truth::Off })],
                scheduled: Vec::new(),
                call_faults: VecDeque::new(),
                stuck_until: None,
                lying_until: None,
                stale: None,
                flap: None,
                slow_off: Duration::ZERO,
                conflict_if_already,
                latency: Duration::from_millis(latency_ms),
                restore: RestorePolicy::AlwaysOn,
                log: Vec::new(),
            }),
        })
    }

    /// A box whose truth went through `changes` (true time, truth; the first is its state
    /// from the start), for the checker's own tests: histories no fault stages, such as a
    /// box switched on and back off by hand.
    pub fn with_history(index: usize, seq: Arc<Seq>, changes: &[(Instant, Truth)]) -> Arc<Self> {
        let b = SimBox::new(index, seq, true, false, 0);
        b.st.lock().unwrap().timeline = changes.to_vec();
        b
    }

    /// Arm a fault now.
    pub fn arm(&self, fault: Fault) {
        let now = Instant::now();
        let mut st = self.st.lock().unwrap();
        st.settle(now);
        let ms = Duration::from_millis;
        match fault {
            Fault::Calls(f, n) => st.call_faults.extend(std::iter::repeat_n(f, n as usize)),
            Fault::Stuck(d) => st.stuck_until = Some(now + ms(d)),
            // A lie needs a steady power to lie about: armed only while the box is on and
            // nothing is about to change, so it can never hide a real transition.
            Fault::LyingOff(d) => {
                if st.current() == Truth::On && st.scheduled.is_empty() {
                    st.lying_until = Some(now + ms(d));
                }
            }
            Fault::Stale(lag, d) => st.stale = Some((ms(lag), now + ms(d))),
            Fault::FlapAfterOff(d) => st.flap = Some(ms(d)),
            Fault::SlowOff(d) => st.slow_off = ms(d),
            Fault::PowerButton => {
                st.scheduled.clear();
                st.push(now, Truth::On);
            }
        }
    }

    /// Whether the truth was `Off` throughout `from..=to` (both not in the future).
    pub fn off_throughout(&self, from: Instant, to: Instant) -> bool {
        let mut st = self.st.lock().unwrap();
        st.settle(Instant::now());
        st.at(from) == Truth::Off
            && st
                .timeline
                .iter()
                .all(|&(t, s)| t <= from || t > to || s == Truth::Off)
    }

    /// The truth's changes, in order.
    pub fn timeline(&self) -> Vec<(Instant, Truth)> {
        let mut st = self.st.lock().unwrap();
        st.settle(Instant::now());
        st.timeline.clone()
    }

    /// Every call the box answered, in order.
    pub fn log(&self) -> Vec<Entry> {
        self.st.lock().unwrap().log.clone()
    }

    fn note(&self, process: usize, endpoint: &str, answer: Answer) {
        self.noted(process, endpoint, answer, None);
    }

    fn note_asked(&self, process: usize, endpoint: &str, answer: Answer, asked: u64) {
        self.noted(process, endpoint, answer, Some(asked));
    }

    fn noted(&self, process: usize, endpoint: &str, answer: Answer, asked: Option<u64>) {
        let seq = self.seq.next();
        let now = Instant::now();
        let mut st = self.st.lock().unwrap();
        st.settle(now);
        let truth = st.current();
        st.log.push(Entry {
            seq,
            asked: asked.unwrap_or(seq),
            at: now,
            process,
            endpoint: endpoint.to_owned(),
            answer,
            truth,
        });
    }

    fn take_fault(&self) -> Option<CallFault> {
        self.st.lock().unwrap().call_faults.pop_front()
    }

    fn latency(&self) -> Duration {
        self.st.lock().unwrap().latency
    }
}

/// A driver reaching one box through one address, owned by one simulated process. When the
/// process dies, its calls never answer and never act.
pub struct SimDriver {
    /// The address.
    pub endpoint: String,
    /// The box behind it.
    pub target: Arc<SimBox>,
    /// The process it belongs to.
    pub process: usize,
    /// Set when that process is killed.
    pub dead: Arc<AtomicBool>,
    /// The authenticated identity the box proves through this address.
    pub fact: IdentityFact,
}

fn dead_call<T>() -> std::future::Pending<Result<T, DriverError>> {
    std::future::pending()
}

impl SimDriver {
    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// Wait `d`, but not past `deadline` (then: timeout, like a real driver).
    async fn wait(&self, d: Duration, deadline: Instant) -> Result<(), DriverError> {
        let until = Instant::now() + d;
        if until > deadline {
            tokio::time::sleep_until(deadline).await;
            return Err(DriverError::timeout(format!(
                "{}: no answer before the deadline",
                self.endpoint
            )));
        }
        tokio::time::sleep_until(until).await;
        Ok(())
    }

    fn failed(&self, call: &'static str, kind: ErrorKind) -> DriverError {
        self.target
            .note(self.process, &self.endpoint, Answer::Failed(call, kind));
        DriverError::new(kind, format!("{}: simulated {kind}", self.endpoint))
    }
}

impl PowerDriver for SimDriver {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::readable(&[Action::Off, Action::On]);
        caps.channel = Channel::Bmc;
        caps.authenticated_identity = true;
        caps
    }

    fn identity(&self) -> Vec<IdentityFact> {
        vec![self.fact.clone()]
    }

    fn status(&self, deadline: std::time::Instant) -> DriverFuture<'_, PowerState> {
        Box::pin(async move {
            if self.is_dead() {
                return dead_call().await;
            }
            let deadline = Instant::from_std(deadline);
            let mut latency = self.target.latency();
            match self.target.take_fault() {
                Some(CallFault::Drop) => {
                    self.wait(latency, deadline).await?;
                    return Err(self.failed("status", ErrorKind::Unreachable));
                }
                Some(CallFault::Busy) => return Err(self.failed("status", ErrorKind::Busy)),
                Some(CallFault::Auth) => return Err(self.failed("status", ErrorKind::Auth)),
                Some(CallFault::Timeout) => {
                    tokio::time::sleep_until(deadline).await;
                    if self.is_dead() {
                        return dead_call().await;
                    }
                    return Err(self.failed("status", ErrorKind::Timeout));
                }
                Some(CallFault::CrashMidCall) => {
                    self.target.note(
                        self.process,
                        &self.endpoint,
                        Answer::Vanished("status", None),
                    );
                    return dead_call().await;
                }
                Some(CallFault::Unknown) => {
                    self.wait(latency, deadline).await?;
                    let state = PowerState::Unknown("Reset".into());
                    self.target
                        .note(self.process, &self.endpoint, Answer::Read(state.clone()));
                    return Ok(state);
                }
                Some(CallFault::Delay(ms)) => latency += Duration::from_millis(ms),
                None => {}
            }
            self.wait(latency, deadline).await?;
            if self.is_dead() {
                return dead_call().await;
            }
            let state = self.target.st.lock().unwrap().reading(Instant::now());
            self.target
                .note(self.process, &self.endpoint, Answer::Read(state.clone()));
            Ok(state)
        })
    }

    fn set_power(
        &self,
        action: Action,
        deadline: std::time::Instant,
    ) -> DriverFuture<'_, CommandReceipt> {
        Box::pin(async move {
            if self.is_dead() {
                return dead_call().await;
            }
            if !matches!(action, Action::Off | Action::On) {
                return Err(DriverError::unsupported("simulated: only off and on"));
            }
            let asked = self.target.seq.next();
            let deadline = Instant::from_std(deadline);
            let mut latency = self.target.latency();
            match self.target.take_fault() {
                Some(CallFault::Drop) => {
                    self.wait(latency, deadline).await?;
                    return Err(self.failed(action.as_str(), ErrorKind::Unreachable));
                }
                Some(CallFault::Busy) => return Err(self.failed(action.as_str(), ErrorKind::Busy)),
                Some(CallFault::Auth) => return Err(self.failed(action.as_str(), ErrorKind::Auth)),
                Some(CallFault::Timeout) => {
                    tokio::time::sleep_until(deadline).await;
                    if self.is_dead() {
                        return dead_call().await;
                    }
                    return Err(self.failed(action.as_str(), ErrorKind::Timeout));
                }
                Some(CallFault::CrashMidCall) => {
                    let applied = self.target.st.lock().unwrap().apply(action, Instant::now());
                    self.target.note_asked(
                        self.process,
                        &self.endpoint,
                        Answer::Vanished(action.as_str(), Some(applied)),
                        asked,
                    );
                    return dead_call().await;
                }
                Some(CallFault::Unknown) => {}
                Some(CallFault::Delay(ms)) => latency += Duration::from_millis(ms),
                None => {}
            }
            self.wait(latency, deadline).await?;
            if self.is_dead() {
                return dead_call().await;
            }
            let now = Instant::now();
            let conflict = {
                let mut st = self.target.st.lock().unwrap();
                st.settle(now);
                let already = match action {
                    Action::Off => st.current() == Truth::Off,
                    _ => st.current() == Truth::On,
                };
                st.conflict_if_already && already
            };
            if conflict {
                return Err(self.failed(action.as_str(), ErrorKind::StateConflict));
            }
            let applied = self.target.st.lock().unwrap().apply(action, now);
            self.target.note_asked(
                self.process,
                &self.endpoint,
                Answer::Command(action, applied),
                asked,
            );
            Ok(CommandReceipt::new("simulated: accepted"))
        })
    }

    fn restore_policy(&self, _deadline: std::time::Instant) -> DriverFuture<'_, RestorePolicy> {
        Box::pin(async move {
            if self.is_dead() {
                return dead_call().await;
            }
            Ok(self.target.st.lock().unwrap().restore)
        })
    }

    fn set_restore_policy(
        &self,
        policy: RestorePolicy,
        _deadline: std::time::Instant,
    ) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            if self.is_dead() {
                return dead_call().await;
            }
            self.target.st.lock().unwrap().restore = policy;
            self.target
                .note(self.process, &self.endpoint, Answer::Restore(policy));
            Ok(())
        })
    }
}
