//! A driver whose every answer is scripted, and which logs what it answered, so tests can
//! check the engine's claims against what the "device" really said.

use fencegate_core::Device;
use fencegate_driver::{
    Action, Capabilities, Channel, CommandReceipt, DriverError, DriverFuture, ErrorKind,
    IdentityFact, PowerDriver, PowerState, RestorePolicy,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<T> {
    /// Answer with a value after a delay.
    Answer(T, Duration),
    /// Fail with an error class after a delay.
    Fail(ErrorKind, Duration),
    /// Never answer.
    Hang,
}

/// What the driver really did, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Logged {
    /// A status call answered with this state.
    Read(PowerState),
    /// A status call failed (or hung and was cut off: not logged then).
    ReadFailed(ErrorKind),
    /// A command was accepted.
    Command(Action),
    /// A command failed.
    CommandFailed(Action, ErrorKind),
    /// The power restore policy was set.
    Restore(RestorePolicy),
}

#[derive(Debug, Default)]
struct State {
    reads: Vec<Step<PowerState>>,
    commands: Vec<Step<()>>,
    read_i: usize,
    command_i: usize,
    log: Vec<Logged>,
    /// When each reading was answered (paused-clock time), with what it said.
    reads_at: Vec<(Instant, PowerState)>,
    identity: Vec<IdentityFact>,
    channel: Option<Channel>,
    restore: Option<RestorePolicy>,
}

/// The scriptable driver.
#[derive(Debug)]
pub struct Scripted {
    releases: std::sync::atomic::AtomicUsize,
    /// Claims it can read until its first status call, which it answers `Unsupported`
    /// (like an external program whose hello is only heard on first contact).
    late_blind: std::sync::atomic::AtomicBool,
    endpoint: String,
    reads_power_state: bool,
    state: Mutex<State>,
}

fn next<T: Clone>(steps: &[Step<T>], i: &mut usize) -> Option<Step<T>> {
    let step = steps.get(*i).or_else(|| steps.last()).cloned();
    *i += 1;
    step
}

impl Scripted {
    /// A driver answering reads and commands from the scripts (the last step repeats).
    pub fn new(endpoint: &str, reads: Vec<Step<PowerState>>, commands: Vec<Step<()>>) -> Arc<Self> {
        Arc::new(Scripted {
            late_blind: Default::default(),
            releases: Default::default(),
            endpoint: endpoint.into(),
            reads_power_state: true,
            state: Mutex::new(State {
                reads,
                commands,
                ..State::default()
            }),
        })
    }

    /// A driver that cannot read power state (like SSH).
    pub fn blind(endpoint: &str, commands: Vec<Step<()>>) -> Arc<Self> {
        Arc::new(Scripted {
            late_blind: Default::default(),
            releases: Default::default(),
            endpoint: endpoint.into(),
            reads_power_state: false,
            state: Mutex::new(State {
                commands,
                ..State::default()
            }),
        })
    }

    /// What the driver answered, in order.
    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// Every reading with the time it was answered, in order.
    pub fn reads_at(&self) -> Vec<(Instant, PowerState)> {
        self.state.lock().unwrap().reads_at.clone()
    }

    /// Present these identity facts from now on (as a driver does after its first call).
    pub fn set_identity(&self, facts: Vec<IdentityFact>) {
        self.state.lock().unwrap().identity = facts;
    }

    /// Declare this channel kind.
    pub fn set_channel(&self, channel: Channel) {
        self.state.lock().unwrap().channel = Some(channel);
    }

    /// Support a power restore policy, currently `policy`.
    pub fn set_restore(&self, policy: RestorePolicy) {
        self.state.lock().unwrap().restore = Some(policy);
    }

    /// The power restore policy now (None: unsupported).
    pub fn restore(&self) -> Option<RestorePolicy> {
        self.state.lock().unwrap().restore
    }

    /// A driver that learns only on its first status call that it cannot read power state.
    pub fn late_blind(endpoint: &str, commands: Vec<Step<()>>) -> Arc<Self> {
        let d = Self::blind(endpoint, commands);
        d.late_blind
            .store(true, std::sync::atomic::Ordering::SeqCst);
        d
    }

    /// How many times the engine released the driver.
    pub fn releases(&self) -> usize {
        self.releases.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Number of commands the driver accepted.
    pub fn commands_accepted(&self) -> usize {
        self.log()
            .iter()
            .filter(|l| matches!(l, Logged::Command(_)))
            .count()
    }

    /// Wrap as an inventory device.
    pub fn device(self: &Arc<Self>, name: &str) -> Arc<Device> {
        Arc::new(Device::new(
            name,
            "scripted",
            Arc::clone(self) as Arc<dyn PowerDriver>,
        ))
    }
}

/// Sleep for `d`, but fail with a timeout at the driver's own deadline, like a real driver.
async fn wait(d: Duration, deadline: std::time::Instant) -> Result<(), DriverError> {
    let deadline = Instant::from_std(deadline);
    let until = Instant::now() + d;
    if until > deadline {
        tokio::time::sleep_until(deadline).await;
        return Err(DriverError::timeout("scripted delay ran past the deadline"));
    }
    tokio::time::sleep_until(until).await;
    Ok(())
}

impl PowerDriver for Scripted {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::readable(&[Action::Off, Action::On, Action::Cycle]);
        caps.reads_power_state =
            self.reads_power_state || self.late_blind.load(std::sync::atomic::Ordering::SeqCst);
        let st = self.state.lock().unwrap();
        caps.channel = st.channel.unwrap_or(Channel::Other);
        caps.authenticated_identity = st.identity.iter().any(|f| f.authenticated);
        caps
    }

    fn identity(&self) -> Vec<IdentityFact> {
        self.state.lock().unwrap().identity.clone()
    }

    fn restore_policy(&self, _deadline: std::time::Instant) -> DriverFuture<'_, RestorePolicy> {
        let r = self.restore();
        Box::pin(
            async move { r.ok_or_else(|| DriverError::unsupported("scripted: no restore policy")) },
        )
    }

    fn set_restore_policy(
        &self,
        policy: RestorePolicy,
        _deadline: std::time::Instant,
    ) -> DriverFuture<'_, ()> {
        let mut st = self.state.lock().unwrap();
        let r = match st.restore {
            Some(_) => {
                st.restore = Some(policy);
                st.log.push(Logged::Restore(policy));
                Ok(())
            }
            None => Err(DriverError::unsupported("scripted: no restore policy")),
        };
        Box::pin(async move { r })
    }

    fn status(&self, deadline: std::time::Instant) -> DriverFuture<'_, PowerState> {
        Box::pin(async move {
            if self
                .late_blind
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                return Err(DriverError::unsupported(
                    "scripted: cannot read power state",
                ));
            }
            let step = {
                let mut st = self.state.lock().unwrap();
                let State { reads, read_i, .. } = &mut *st;
                next(reads, read_i)
            };
            match step {
                None | Some(Step::Hang) => std::future::pending().await,
                Some(Step::Answer(state, d)) => {
                    wait(d, deadline).await?;
                    let mut st = self.state.lock().unwrap();
                    st.log.push(Logged::Read(state.clone()));
                    st.reads_at.push((Instant::now(), state.clone()));
                    Ok(state)
                }
                Some(Step::Fail(kind, d)) => {
                    wait(d, deadline).await?;
                    self.state
                        .lock()
                        .unwrap()
                        .log
                        .push(Logged::ReadFailed(kind));
                    Err(DriverError::new(
                        kind,
                        format!("{}: scripted {kind}", self.endpoint),
                    ))
                }
            }
        })
    }

    fn release(&self, _deadline: std::time::Instant) -> DriverFuture<'_, ()> {
        self.releases
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }

    fn set_power(
        &self,
        action: Action,
        deadline: std::time::Instant,
    ) -> DriverFuture<'_, CommandReceipt> {
        Box::pin(async move {
            let step = {
                let mut st = self.state.lock().unwrap();
                let State {
                    commands,
                    command_i,
                    ..
                } = &mut *st;
                next(commands, command_i)
            };
            match step {
                None | Some(Step::Hang) => std::future::pending().await,
                Some(Step::Answer((), d)) => {
                    wait(d, deadline).await?;
                    self.state.lock().unwrap().log.push(Logged::Command(action));
                    Ok(CommandReceipt::new("scripted: accepted"))
                }
                Some(Step::Fail(kind, d)) => {
                    wait(d, deadline).await?;
                    self.state
                        .lock()
                        .unwrap()
                        .log
                        .push(Logged::CommandFailed(action, kind));
                    Err(DriverError::new(
                        kind,
                        format!("{}: scripted {kind}", self.endpoint),
                    ))
                }
            }
        })
    }
}

/// Shorthand: an immediate answer.
pub fn now<T>(v: T) -> Step<T> {
    Step::Answer(v, Duration::ZERO)
}

impl Scripted {
    /// How many `action` commands the driver accepted.
    pub fn accepted(&self, action: Action) -> usize {
        self.log()
            .iter()
            .filter(|l| **l == Logged::Command(action))
            .count()
    }

    /// A BMC that reads On, then Off after the command, and presents `facts`.
    pub fn bmc_presenting(endpoint: &str, facts: Vec<fencegate_driver::IdentityFact>) -> Arc<Self> {
        let d = Self::new(
            endpoint,
            vec![now(PowerState::On), now(PowerState::Off)],
            vec![now(())],
        );
        d.set_identity(facts);
        d.set_channel(Channel::Bmc);
        d
    }

    /// A whole-host channel (a BMC) at `endpoint` proving `facts`, whose reads follow `reads`.
    pub fn bmc_reading(
        endpoint: &str,
        facts: Vec<fencegate_driver::IdentityFact>,
        reads: Vec<Step<PowerState>>,
    ) -> Arc<Self> {
        let d = Self::new(endpoint, reads, vec![now(())]);
        d.set_identity(facts);
        d.set_channel(Channel::Bmc);
        d
    }

    /// A PDU outlet that reads On, then Off after the command.
    pub fn outlet(endpoint: &str) -> Arc<Self> {
        let d = Self::new(
            endpoint,
            vec![now(PowerState::On), now(PowerState::Off)],
            vec![now(())],
        );
        d.set_channel(Channel::Outlet);
        d
    }
}

/// An authenticated IPMI GUID fact.
pub fn guid(v: &str) -> fencegate_driver::IdentityFact {
    fencegate_driver::IdentityFact::authenticated("ipmi-guid", v)
}

/// Three boxes' GUIDs.
pub const KVM01: &str = "4c4c4544004235108052b4c04f4e3201";
/// See [`KVM01`].
pub const KVM02: &str = "4c4c4544004235108052b4c04f4e3202";
/// See [`KVM01`].
pub const KVM03: &str = "4c4c4544004235108052b4c04f4e3203";
