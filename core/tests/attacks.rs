//! Attacks on the engine's promises from a hostile review: held proofs, which box answered,
//! whose proof is shared, what a level needs, and deadlines. Each test performs one attack and
//! checks what the "devices" really did, not only what the engine claims; each failed against
//! the engine as first written and guards its fix.

mod support;

use fencegate_core::identity::{self, Pin};
use fencegate_core::{
    Device, DeviceOutcome, Engine, Inventory, Journal, Policy, Registry, Request, SqliteJournal,
    Verdict,
};
use fencegate_driver::{
    Action, Capabilities, Channel, CommandReceipt, DeviceSpec, DriverError, DriverFactory,
    DriverFuture, ErrorKind, IdentityFact, PowerDriver, PowerState, RestorePolicy, SpecError,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::journal::inline_engine;
use support::scripted::{KVM01, KVM02, KVM03, Logged, Scripted, Step, guid, now};
use tokio::time::Instant;

fn req() -> Request {
    Request {
        requester: "review".into(),
        reason: "attack".into(),
        force: false,
        door: Default::default(),
    }
}

fn policy() -> Policy {
    Policy {
        attempt_timeout: Duration::from_secs(20),
        overall_timeout: Duration::from_secs(60),
        storm_limit: 0,
        ..Policy::default()
    }
}

fn no_hold() -> Policy {
    Policy {
        off_hold: Duration::ZERO,
        ..policy()
    }
}

fn pinned(device: Arc<Device>, pin: &str) -> Arc<Device> {
    let mut d = Arc::try_unwrap(device).unwrap();
    d.pins = vec![Pin {
        option: "guid".into(),
        value: pin.into(),
    }];
    Arc::new(d)
}

/// A BMC that reads but refuses the power command (an account without power rights), so
/// the next level is tried while the BMC keeps answering.
fn answering_bmc(endpoint: &str) -> Arc<Scripted> {
    let bmc = Scripted::new(
        endpoint,
        vec![now(PowerState::On)],
        vec![Step::Fail(ErrorKind::Auth, Duration::ZERO)],
    );
    bmc.set_channel(Channel::Bmc);
    bmc
}

/// Sleep `d`, or fail with a timeout at the driver's own deadline, like a real driver.
async fn within(d: Duration, deadline: std::time::Instant) -> Result<(), DriverError> {
    let deadline = Instant::from_std(deadline);
    let until = Instant::now() + d;
    if until > deadline {
        tokio::time::sleep_until(deadline).await;
        return Err(DriverError::timeout("delay ran past the deadline"));
    }
    tokio::time::sleep_until(until).await;
    Ok(())
}

// --- 1. A held Off: when is a reading? --------------------------------------------------

/// An outlet whose "off" is its reboot action (power back after 5 s). Each status call
/// samples the power when it is asked and answers after the call's scripted delay, like a
/// busy BMC, a PDU queueing SNMP requests, or a path that holds answers back.
struct SlowOutlet {
    truth: Mutex<SlowTruth>,
}

struct SlowTruth {
    on: bool,
    back_at: Option<Instant>,
    /// Delay of each status call in order (the last repeats).
    delays: Vec<Duration>,
    calls: usize,
    /// (asked at, answered-with) for every status call.
    samples: Vec<(Instant, PowerState)>,
}

impl SlowOutlet {
    fn power_now(t: &mut SlowTruth) -> bool {
        if let Some(back) = t.back_at
            && Instant::now() >= back
        {
            t.on = true;
            t.back_at = None;
        }
        t.on
    }
}

impl PowerDriver for SlowOutlet {
    fn endpoint(&self) -> &str {
        "slow://outlet"
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::readable(&[Action::Off, Action::On]);
        c.channel = Channel::Other;
        c
    }

    fn status(&self, deadline: std::time::Instant) -> DriverFuture<'_, PowerState> {
        let (state, delay) = {
            let mut t = self.truth.lock().unwrap();
            let state = if Self::power_now(&mut t) {
                PowerState::On
            } else {
                PowerState::Off
            };
            let delay = *t
                .delays
                .get(t.calls)
                .or(t.delays.last())
                .unwrap_or(&Duration::ZERO);
            t.calls += 1;
            t.samples.push((Instant::now(), state.clone()));
            (state, delay)
        };
        Box::pin(async move {
            within(delay, deadline).await?;
            Ok(state)
        })
    }

    fn set_power(
        &self,
        action: Action,
        _deadline: std::time::Instant,
    ) -> DriverFuture<'_, CommandReceipt> {
        let mut t = self.truth.lock().unwrap();
        Self::power_now(&mut t);
        if action == Action::Off && t.on {
            // The reboot action: off now, on again by itself 5 s later.
            t.on = false;
            t.back_at = Some(Instant::now() + Duration::from_secs(5));
        }
        Box::pin(async { Ok(CommandReceipt::new("slow: accepted")) })
    }
}

/// Promise 1. The hold is measured from when the first Off reading *came back* to when the
/// last one *came back*. A reading that was sampled early and answered late stretches the
/// span: here both confirming Off readings were sampled at the same instant, right after
/// the command, and the second one answered 6 s later, after power had come back at 5 s.
#[tokio::test(start_paused = true)]
async fn a_late_answer_does_not_stretch_the_hold() {
    let outlet = Arc::new(SlowOutlet {
        truth: Mutex::new(SlowTruth {
            on: true,
            back_at: None,
            delays: vec![Duration::ZERO, Duration::ZERO, Duration::from_secs(6)],
            calls: 0,
            samples: Vec::new(),
        }),
    });
    let device = Arc::new(Device::new(
        "pdu-7",
        "slow",
        Arc::clone(&outlet) as Arc<dyn PowerDriver>,
    ));
    let host = support::host("n1", vec![vec![device]], policy());
    let p = inline_engine().fence(host, req()).await.unwrap();
    let samples = outlet.truth.lock().unwrap().samples.clone();
    let on_at_the_end = SlowOutlet::power_now(&mut outlet.truth.lock().unwrap());
    let t0 = samples[0].0;
    assert_ne!(
        p.verdict,
        Verdict::PowerVerifiedOff,
        "verified off {:?} after the first reading, yet power on now: {on_at_the_end}; readings sampled at {:?}: {}",
        t0.elapsed(),
        samples
            .iter()
            .map(|(t, s)| format!("{s}@{:?}", *t - t0))
            .collect::<Vec<_>>(),
        p.detail
    );
}

// --- 2. Which box answered --------------------------------------------------------------

/// One address, two boxes behind it: a relay that forwards the first `switch_after` status
/// calls to box 0 and everything after to box 1. Every call goes to the box routed now, and
/// the identity the driver presents is that of the box it last talked to.
struct Relay {
    state: Mutex<RelayState>,
}

struct RelayState {
    calls: usize,
    switch_after: usize,
    current: usize,
    boxes: Vec<Boxed>,
}

struct Boxed {
    identity: IdentityFact,
    on: bool,
    commands: Vec<Action>,
}

impl Relay {
    fn new(switch_after: usize, boxes: Vec<Boxed>) -> Arc<Self> {
        Arc::new(Relay {
            state: Mutex::new(RelayState {
                calls: 0,
                switch_after,
                current: 0,
                boxes,
            }),
        })
    }

    fn commands_to(&self, i: usize) -> Vec<Action> {
        self.state.lock().unwrap().boxes[i].commands.clone()
    }
}

impl PowerDriver for Relay {
    fn endpoint(&self) -> &str {
        "ipmi://10.0.0.1:623"
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::readable(&[Action::Off, Action::On]);
        c.channel = Channel::Bmc;
        c.authenticated_identity = true;
        c
    }

    fn status(&self, _deadline: std::time::Instant) -> DriverFuture<'_, PowerState> {
        let mut st = self.state.lock().unwrap();
        if st.calls >= st.switch_after {
            st.current = 1;
        }
        st.calls += 1;
        let state = if st.boxes[st.current].on {
            PowerState::On
        } else {
            PowerState::Off
        };
        Box::pin(async move { Ok(state) })
    }

    fn set_power(
        &self,
        action: Action,
        _deadline: std::time::Instant,
    ) -> DriverFuture<'_, CommandReceipt> {
        let mut st = self.state.lock().unwrap();
        let i = st.current;
        let b = &mut st.boxes[i];
        b.commands.push(action);
        match action {
            Action::Off => b.on = false,
            Action::On => b.on = true,
            _ => {}
        }
        Box::pin(async { Ok(CommandReceipt::new("relay: accepted")) })
    }

    fn identity(&self) -> Vec<IdentityFact> {
        let st = self.state.lock().unwrap();
        vec![st.boxes[st.current].identity.clone()]
    }
}

/// Promise 2. The identity is checked once, before the hold; when the hold reads `On`
/// ("power came back") the command goes out without looking again. A relay that switches
/// boxes after the pre-read gets the power-off command delivered to the *other* box
/// (kvm02, running), although it proves another identity than kvm01's pin.
#[tokio::test(start_paused = true)]
async fn no_command_after_the_identity_changed_during_the_hold() {
    let relay = Relay::new(
        1,
        vec![
            Boxed {
                identity: guid(KVM01),
                on: false,
                commands: Vec::new(),
            },
            Boxed {
                identity: guid(KVM02),
                on: true,
                commands: Vec::new(),
            },
        ],
    );
    let device = pinned(
        Arc::new(Device::new(
            "kvm01-bmc",
            "ipmi",
            Arc::clone(&relay) as Arc<dyn PowerDriver>,
        )),
        KVM01,
    );
    let host = support::host("kvm01", vec![vec![device]], policy());
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(
        relay.commands_to(1),
        Vec::<Action>::new(),
        "kvm02 (another identity than the pin) was sent a command; verdict {}: {}",
        p.verdict,
        p.detail
    );
}

/// Promise 2. A pinned device's identity is compared with its pin but never remembered, so
/// "one identity at two addresses" is not detected when the first address is pinned: an
/// unpinned device whose address is a relay to kvm01's BMC passes as a first use and kvm01
/// is powered off through another host's device.
#[tokio::test]
async fn a_pinned_identity_is_not_claimable_by_a_second_address() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let real = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM01)]);
    let host = support::host(
        "kvm01",
        vec![vec![pinned(real.device("kvm01-bmc"), KVM01)]],
        no_hold(),
    );
    let p = engine.off(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);

    // kvm09's BMC address is a relay to kvm01's BMC: it proves kvm01's GUID.
    let relay = Scripted::bmc_presenting("ipmi://10.0.0.9:623", vec![guid(KVM01)]);
    let host = support::host("kvm09", vec![vec![relay.device("kvm09-bmc")]], no_hold());
    let p = engine.off(host, req()).await.unwrap();
    assert_eq!(
        relay.commands_accepted(),
        0,
        "kvm01's box was commanded through kvm09's address; verdict {}: {}",
        p.verdict,
        p.detail
    );
}

/// Promise 2 (`trust`). Accepting an endpoint that presents no authenticated identity
/// stores an empty identity; an empty remembered identity then matches every box forever
/// (`same_box(&[], _)` is true) and nothing is remembered again: trust on first use is off
/// for that address.
#[tokio::test]
async fn trusting_nothing_does_not_switch_off_the_identity_check() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let ep = "ipmi://10.0.0.1:623";
    let run = |facts: Vec<IdentityFact>| {
        let engine = engine.clone();
        async move {
            let d = Scripted::bmc_presenting(ep, facts);
            let host = support::host("kvm01", vec![vec![d.device("kvm01-bmc")]], no_hold());
            let p = engine.off(host, req()).await.unwrap();
            (d, p)
        }
    };
    let (_, p) = run(vec![guid(KVM01)]).await;
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
    // Something answers that cannot authenticate (it only claims kvm01's GUID): refused.
    let (forger, p) = run(vec![IdentityFact::new("ipmi-guid", KVM01)]).await;
    assert_eq!(forger.commands_accepted(), 0, "{}", p.detail);
    // The operator, told to, runs `trust` while the forger answers.
    let d = Scripted::bmc_presenting(ep, vec![IdentityFact::new("ipmi-guid", KVM01)]);
    let host = support::host("kvm01", vec![vec![d.device("kvm01-bmc")]], no_hold());
    let t = engine.trust(host, req(), false).await.unwrap();
    // Whatever trust did, two different boxes must not both be accepted afterwards.
    let (_, p2) = run(vec![guid(KVM02)]).await;
    let (third, p3) = run(vec![guid(KVM03)]).await;
    assert_eq!(
        third.commands_accepted(),
        0,
        "after trust ({}: {}), kvm02 ({}) and then kvm03 ({}) were both accepted at one address",
        t.verdict,
        t.detail,
        p2.detail,
        p3.detail
    );
}

/// Promise 2 (`trust`). `trust` accepts, for one address, an identity the journal
/// remembers for another address: after it, one box is reachable at two addresses, which
/// the first-use check refuses.
#[tokio::test]
async fn trust_does_not_accept_a_box_remembered_at_another_address() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let a = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM01)]);
    let h1 = support::host("kvm01", vec![vec![a.device("kvm01-bmc")]], no_hold());
    assert_eq!(
        engine.off(h1, req()).await.unwrap().verdict,
        Verdict::PowerVerifiedOff
    );
    let b = Scripted::bmc_presenting("ipmi://10.0.0.2:623", vec![guid(KVM02)]);
    let h2 = support::host("kvm02", vec![vec![b.device("kvm02-bmc")]], no_hold());
    assert_eq!(
        engine.off(h2, req()).await.unwrap().verdict,
        Verdict::PowerVerifiedOff
    );
    // kvm02's address now relays to kvm01's BMC; the operator runs `trust kvm02`.
    // It reads On twice (once for `trust`, once before the command), then Off.
    let relay = Scripted::new(
        "ipmi://10.0.0.2:623",
        vec![
            now(PowerState::On),
            now(PowerState::On),
            now(PowerState::Off),
        ],
        vec![now(())],
    );
    relay.set_identity(vec![guid(KVM01)]);
    let h2 = support::host("kvm02", vec![vec![relay.device("kvm02-bmc")]], no_hold());
    let t = engine.trust(Arc::clone(&h2), req(), false).await.unwrap();
    let p = engine.off(h2, req()).await.unwrap();
    assert_eq!(
        relay.commands_accepted(),
        0,
        "trust ({}) made kvm01's box reachable at kvm02's address too; off: {} {}",
        t.detail,
        p.verdict,
        p.detail
    );
}

/// Promise 2 (`unfence`). Putting the restore policy back is a write to the box, sent
/// without reading it or checking which box answers now. If the address now reaches
/// another box, that box is set to power on when power returns.
#[tokio::test(start_paused = true)]
async fn unfence_checks_the_box_before_putting_the_restore_policy_back() {
    let bmc = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM01)]);
    bmc.set_restore(RestorePolicy::AlwaysOn);
    let host = support::host(
        "kvm01",
        vec![vec![pinned(bmc.device("kvm01-bmc"), KVM01)]],
        no_hold(),
    );
    let engine = inline_engine();
    let p = engine.fence(Arc::clone(&host), req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
    assert_eq!(bmc.restore(), Some(RestorePolicy::AlwaysOff));
    // Another box answers at the address now.
    bmc.set_identity(vec![guid(KVM02)]);
    let u = engine.unfence(host, req()).await.unwrap();
    let writes_after: Vec<Logged> = bmc
        .log()
        .into_iter()
        .filter(|l| *l == Logged::Restore(RestorePolicy::AlwaysOn))
        .collect();
    assert!(
        writes_after.is_empty(),
        "the box proving {KVM02} (pinned {KVM01}) was set to power on after a power loss: {}",
        u.detail
    );
}

/// Promise 2. A device that cannot read (SSH, a blind external program or plugin) is
/// delivered to without ever comparing its pins: the box the command reached proves
/// another identity than the pin, and the fence still counts as liveness lost (a success
/// under `accept_liveness_loss`).
#[tokio::test(start_paused = true)]
async fn a_blind_device_that_proves_another_box_earns_no_credit() {
    let ssh = Scripted::blind("ssh://10.0.1.1", vec![now(())]);
    ssh.set_channel(Channel::InBand);
    ssh.set_identity(vec![IdentityFact::authenticated("acme-guid", KVM02)]);
    let host = support::host(
        "kvm01",
        vec![vec![pinned(ssh.device("kvm01-ssh"), KVM01)]],
        Policy {
            accept_liveness_loss: true,
            ..no_hold()
        },
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert!(
        !p.success,
        "the command reached a box proving {KVM02}, pinned {KVM01}, and the fence counts: {} {}",
        p.verdict, p.detail
    );
}

/// Promise 2. An empty (or blank) authenticated value is no identity, like the vendor
/// defaults: it is remembered today, so the second white box with a blank serial is
/// refused as "two addresses claim one box" and its host cannot be fenced.
#[tokio::test]
async fn a_blank_identity_is_a_placeholder() {
    for blank in ["", "   "] {
        assert!(
            identity::usable(&[IdentityFact::authenticated("redfish-serial", blank)]).is_empty(),
            "{blank:?} is usable as an identity"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(SqliteJournal::open(dir.path()).unwrap());
    let engine = Engine::new(journal.clone());
    let blank = || vec![IdentityFact::authenticated("redfish-serial", " ")];
    let a = Scripted::bmc_presenting("redfish://10.0.0.1", blank());
    let host = support::host("a", vec![vec![a.device("a-bmc")]], no_hold());
    assert_eq!(
        engine.off(host, req()).await.unwrap().verdict,
        Verdict::PowerVerifiedOff
    );
    let b = Scripted::bmc_presenting("redfish://10.0.0.2", blank());
    let host = support::host("b", vec![vec![b.device("b-bmc")]], no_hold());
    let p = engine.off(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
    assert!(journal.known_identities().await.unwrap().is_empty());
}

// --- 3. Whose proof is shared -----------------------------------------------------------

/// Builds drivers made beforehand, by address (so two inventories reach the same driver).
struct Fixed {
    drivers: HashMap<String, Arc<dyn PowerDriver>>,
}

impl DriverFactory for Fixed {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn summary(&self) -> &'static str {
        "drivers made by the test"
    }

    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
        self.drivers
            .get(&spec.address)
            .cloned()
            .ok_or_else(|| SpecError::for_key("address", "no such test driver"))
    }
}

fn registry(drivers: &[(&str, Arc<dyn PowerDriver>)]) -> Registry {
    let mut r = Registry::new();
    r.register(Arc::new(Fixed {
        drivers: drivers
            .iter()
            .map(|(a, d)| (a.to_string(), Arc::clone(d)))
            .collect(),
    }));
    r
}

fn inventory(text: &str, registry: &Registry) -> Inventory {
    Inventory::parse(text, Path::new("inventory.toml"), registry).unwrap()
}

/// Promises 3 and 4. `reads_power_state = false` is taken off the options before the
/// device key is made, so an inventory that declares pdu-b blind has the same target as
/// one where both outlets must read off. The second joins the first and takes its proof:
/// verified off by pdu-a alone, while its own declared reader pdu-b reads On.
#[tokio::test(start_paused = true)]
async fn a_device_declared_blind_makes_another_target() {
    let a = Scripted::new(
        "snmp://pdu-a",
        vec![
            now(PowerState::On),
            Step::Answer(PowerState::Off, Duration::from_secs(1)),
        ],
        vec![now(())],
    );
    // pdu-b accepts the command but its outlet stays on.
    let b = Scripted::new("snmp://pdu-b", vec![now(PowerState::On)], vec![now(())]);
    let reg = registry(&[
        ("pdu-a", Arc::clone(&a) as Arc<dyn PowerDriver>),
        ("pdu-b", Arc::clone(&b) as Arc<dyn PowerDriver>),
    ]);
    let text = |b_blind: bool| {
        format!(
            "[policy]\nstorm_limit = 0\noff_hold = \"0ms\"\n\
             [devices.pdu-a]\ndriver = \"fixed\"\naddress = \"pdu-a\"\n\
             [devices.pdu-b]\ndriver = \"fixed\"\naddress = \"pdu-b\"\n{}\
             [hosts.kvm01]\nlevels = [[\"pdu-a\", \"pdu-b\"]]\n",
            if b_blind {
                "reads_power_state = false\n"
            } else {
                ""
            }
        )
    };
    let relaxed = inventory(&text(true), &reg).host("kvm01").unwrap();
    let strict = inventory(&text(false), &reg).host("kvm01").unwrap();
    let engine = inline_engine();
    let e2 = engine.clone();
    let first = tokio::spawn(async move { e2.fence(relaxed, req()).await });
    tokio::task::yield_now().await;
    let p = engine.fence(Arc::clone(&strict), req()).await.unwrap();
    let q = first.await.unwrap().unwrap();
    assert!(
        p.verdict != Verdict::PowerVerifiedOff,
        "the strict inventory took proof {} ({}), own: {}; pdu-b read {:?}; targets {:?} / {:?}",
        q.request_id,
        q.detail,
        p.request_id,
        b.log(),
        p.target,
        q.target
    );
}

/// Promise 3. The device key joins its parts with `|` without escaping, so option values
/// (free text for external programs) can make two devices reaching different things share
/// a key, and so a target.
#[test]
fn device_keys_cannot_be_forged_by_separators_in_values() {
    let spec = |options: &[(&str, &str)]| DeviceSpec {
        name: "d".into(),
        driver: "external".into(),
        address: "127.0.0.1".into(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..DeviceSpec::default()
    };
    let one = spec(&[("args", "--outlet 4|env=B")]);
    let two = spec(&[("args", "--outlet 4"), ("env", "B")]);
    assert_ne!(
        identity::device_key(&one, &[]),
        identity::device_key(&two, &[]),
        "two different devices, one key"
    );
}

// --- 4. What a level needs --------------------------------------------------------------

/// Promise 4. An isolation channel is trusted as a power reader when its driver says it
/// reads: its "Off" (storage or network cut) proves power off without `accept_isolation`.
/// Drivers refuse that combination at load today; the engine does not.
#[tokio::test(start_paused = true)]
async fn an_isolation_channel_never_proves_power_off() {
    let agent = Scripted::new(
        "fence_scsi",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    agent.set_channel(Channel::Isolation);
    let host = support::host("n1", vec![vec![agent.device("scsi")]], no_hold());
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert!(
        p.verdict != Verdict::PowerVerifiedOff && !p.success,
        "{} {}",
        p.verdict,
        p.detail
    );
}

/// Promise 4. The standby check runs only when *every* device of the level is an outlet;
/// an in-band companion in the PDU level (an SSH `poweroff -f` delivered along) switches it
/// off, and the outlets' Off is proof although the host's BMC still answers.
#[tokio::test(start_paused = true)]
async fn an_in_band_companion_does_not_skip_the_standby_check() {
    let bmc = answering_bmc("ipmi://kvm01");
    let (a, b) = (
        Scripted::outlet("snmp://pdu-a"),
        Scripted::outlet("snmp://pdu-b"),
    );
    let ssh = Scripted::blind("ssh://kvm01", vec![now(())]);
    ssh.set_channel(Channel::InBand);
    let host = support::host(
        "kvm01",
        vec![
            vec![bmc.device("kvm01-bmc")],
            vec![a.device("pdu-a-7"), b.device("pdu-b-7"), ssh.device("ssh")],
        ],
        no_hold(),
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed, "{}", p.detail);
}

/// A driver that knows its channel only after its first call (an external program's
/// hello): `Other` until then.
struct LateChannel {
    inner: Arc<Scripted>,
    channel: Channel,
    contacted: AtomicBool,
}

impl PowerDriver for LateChannel {
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = self.inner.capabilities();
        c.channel = if self.contacted.load(Ordering::SeqCst) {
            self.channel
        } else {
            Channel::Other
        };
        c
    }

    fn status(&self, deadline: std::time::Instant) -> DriverFuture<'_, PowerState> {
        self.contacted.store(true, Ordering::SeqCst);
        self.inner.status(deadline)
    }

    fn set_power(
        &self,
        action: Action,
        deadline: std::time::Instant,
    ) -> DriverFuture<'_, CommandReceipt> {
        self.contacted.store(true, Ordering::SeqCst);
        self.inner.set_power(action, deadline)
    }

    fn identity(&self) -> Vec<IdentityFact> {
        self.inner.identity()
    }
}

fn late(inner: Arc<Scripted>, channel: Channel, name: &str) -> Arc<Device> {
    let driver = Arc::new(LateChannel {
        inner,
        channel,
        contacted: AtomicBool::new(false),
    });
    Arc::new(Device::new(
        name,
        "external",
        driver as Arc<dyn PowerDriver>,
    ))
}

/// Promise 4. The standby check decides "outlets only" from the channels declared when the
/// drivers were built; outlets that say what they are only in their hello (external PDU
/// programs) are never checked, and their Off is proof while the host's BMC answers.
#[tokio::test(start_paused = true)]
async fn outlets_that_name_their_channel_late_still_get_the_standby_check() {
    let bmc = answering_bmc("ipmi://kvm01");
    let a = late(Scripted::outlet("ext://pdu-a"), Channel::Outlet, "pdu-a-7");
    let b = late(Scripted::outlet("ext://pdu-b"), Channel::Outlet, "pdu-b-7");
    let host = support::host(
        "kvm01",
        vec![vec![bmc.device("kvm01-bmc")], vec![a, b]],
        no_hold(),
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed, "{}", p.detail);
}

/// Promise 4, the other side: a BMC that names its channel late (an external Redfish
/// program) is not probed for standby power.
#[tokio::test(start_paused = true)]
async fn a_bmc_that_names_its_channel_late_is_still_probed() {
    let bmc = late(answering_bmc("ext://kvm01-bmc"), Channel::Bmc, "kvm01-bmc");
    let (a, b) = (
        Scripted::outlet("snmp://pdu-a"),
        Scripted::outlet("snmp://pdu-b"),
    );
    let host = support::host(
        "kvm01",
        vec![vec![bmc], vec![a.device("pdu-a-7"), b.device("pdu-b-7")]],
        no_hold(),
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed, "{}", p.detail);
}

// --- 5. Deadlines and panics ------------------------------------------------------------

/// Promise 5. The standby probe is given at least 500 ms even when the level's deadline
/// (here the overall one) has passed, so an operation whose outlets verify just before the
/// deadline ends after it, with a verified-off verdict reached past its deadline.
#[tokio::test(start_paused = true)]
async fn the_standby_probe_ends_by_the_overall_deadline() {
    let overall = Duration::from_secs(10);
    let bmc = Scripted::new(
        "ipmi://kvm01",
        vec![now(PowerState::On), Step::Hang],
        vec![Step::Fail(ErrorKind::Auth, Duration::ZERO)],
    );
    bmc.set_channel(Channel::Bmc);
    let pdu = Scripted::new(
        "snmp://pdu-a",
        vec![
            now(PowerState::On),
            Step::Answer(PowerState::Off, Duration::from_millis(9_900)),
        ],
        vec![now(())],
    );
    pdu.set_channel(Channel::Outlet);
    let host = support::host(
        "kvm01",
        vec![vec![bmc.device("kvm01-bmc")], vec![pdu.device("pdu-a-7")]],
        Policy {
            attempt_timeout: overall,
            overall_timeout: overall,
            confirmations: 1,
            retries: 0,
            ..no_hold()
        },
    );
    let t0 = Instant::now();
    let p = inline_engine().fence(host, req()).await.unwrap();
    let took = t0.elapsed();
    assert!(
        took <= overall + Duration::from_millis(1),
        "took {took:?} with an overall deadline of {overall:?}: {} {}",
        p.verdict,
        p.detail
    );
}

/// Promise 5. The overall deadline is not part of the target, so a request with a short
/// deadline joins a running operation of the same target with a long one, and waits for
/// it without bound (in process) or for its own overall deadline plus 10 s (across
/// processes), far past its own deadline.
#[tokio::test(start_paused = true)]
async fn a_joiner_ends_by_its_own_deadline() {
    let bmc = Scripted::new(
        "ipmi://kvm01",
        vec![
            now(PowerState::On),
            Step::Answer(PowerState::Off, Duration::from_secs(25)),
            now(PowerState::Off),
        ],
        vec![now(())],
    );
    let long = support::host(
        "kvm01",
        vec![vec![bmc.device("kvm01-bmc")]],
        Policy {
            attempt_timeout: Duration::from_secs(40),
            overall_timeout: Duration::from_secs(60),
            ..no_hold()
        },
    );
    let short = support::host(
        "kvm01",
        vec![vec![bmc.device("kvm01-bmc")]],
        Policy {
            attempt_timeout: Duration::from_secs(2),
            overall_timeout: Duration::from_secs(2),
            ..no_hold()
        },
    );
    let engine = inline_engine();
    let e2 = engine.clone();
    let first = tokio::spawn(async move { e2.fence(long, req()).await });
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    let p = engine.fence(short, req()).await.unwrap();
    let took = t0.elapsed();
    first.await.unwrap().unwrap();
    assert!(
        took <= Duration::from_secs(2) + Duration::from_millis(1),
        "a request with a 2 s deadline answered after {took:?}: {} {}",
        p.verdict,
        p.detail
    );
}

/// Promise 5. `Policy::validate` bounds no duration and the inventory reads plain integers
/// as seconds without the 7-day bound of duration strings, so a valid inventory makes the
/// engine panic on `Instant + Duration` overflow when the host is fenced.
#[tokio::test(start_paused = true)]
async fn a_huge_timeout_in_the_inventory_does_not_panic_the_engine() {
    // The inventory refuses such a timeout, naming the key, instead of panicking later.
    let bmc = Scripted::bmc_presenting("ipmi://kvm01", vec![]);
    let reg = registry(&[("kvm01", Arc::clone(&bmc) as Arc<dyn PowerDriver>)]);
    let err = Inventory::parse(
        "[policy]\nstorm_limit = 0\noff_hold = \"0ms\"\noverall_timeout = 9223372036854775807\n\
         [devices.kvm01-bmc]\ndriver = \"fixed\"\naddress = \"kvm01\"\n\
         [hosts.kvm01]\nlevels = [[\"kvm01-bmc\"]]\n",
        Path::new("inventory.toml"),
        &reg,
    )
    .expect_err("an overall_timeout of 292 billion years is refused");
    assert!(err.to_string().contains("overall_timeout"), "{err}");
    // A policy built in code is bounded as well.
    let huge = Policy {
        overall_timeout: Duration::from_secs(u64::MAX / 4),
        ..no_hold()
    };
    assert!(huge.validate().unwrap_err().contains("overall_timeout"));
}

// --- Attacks that held (kept as regression tests) ---------------------------------------

/// A 409 "already off" after the pre-read said On is read again and must hold.
#[tokio::test(start_paused = true)]
async fn held_a_409_is_read_again_with_the_hold() {
    let bmc = Scripted::new(
        "ipmi://kvm01",
        vec![
            now(PowerState::On),
            now(PowerState::Off),
            now(PowerState::On),
        ],
        vec![
            Step::Fail(ErrorKind::StateConflict, Duration::ZERO),
            now(()),
        ],
    );
    let host = support::host("kvm01", vec![vec![bmc.device("kvm01-bmc")]], policy());
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_ne!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
}

/// A transient error inside the hold restarts it: Off, timeout, Off spanning the hold only
/// across the error is no proof at the first Off's start.
#[tokio::test(start_paused = true)]
async fn held_a_transient_error_restarts_the_hold() {
    let bmc = Scripted::new(
        "ipmi://kvm01",
        vec![
            now(PowerState::On),
            now(PowerState::Off),
            Step::Fail(ErrorKind::Timeout, Duration::from_secs(3)),
            Step::Answer(PowerState::Off, Duration::from_secs(4)),
            Step::Answer(PowerState::On, Duration::ZERO),
        ],
        vec![now(())],
    );
    let host = support::host("kvm01", vec![vec![bmc.device("kvm01-bmc")]], policy());
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_ne!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
}

/// Two readers in one level: one that never reads Off fails the level.
#[tokio::test(start_paused = true)]
async fn held_every_declared_reader_of_a_level_must_verify() {
    let a = Scripted::outlet("snmp://pdu-a");
    let b = Scripted::new("snmp://pdu-b", vec![now(PowerState::On)], vec![now(())]);
    b.set_channel(Channel::Outlet);
    let host = support::host(
        "kvm01",
        vec![vec![a.device("pdu-a-7"), b.device("pdu-b-7")]],
        no_hold(),
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed, "{}", p.detail);
    assert_eq!(p.levels[0].devices[1].outcome, DeviceOutcome::Failed);
}

/// A forged (unauthenticated) fact is never remembered and never claims an address.
#[tokio::test]
async fn held_a_forged_fact_is_never_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(SqliteJournal::open(dir.path()).unwrap());
    let engine = Engine::new(journal.clone());
    let forged = Scripted::bmc_presenting(
        "ipmi://10.0.0.1:623",
        vec![IdentityFact::new("ipmi-guid", KVM01)],
    );
    let host = support::host("a", vec![vec![forged.device("a-bmc")]], no_hold());
    engine.off(host, req()).await.unwrap();
    assert!(journal.known_identities().await.unwrap().is_empty());
    let real = Scripted::bmc_presenting("ipmi://10.0.0.2:623", vec![guid(KVM01)]);
    let host = support::host("b", vec![vec![real.device("b-bmc")]], no_hold());
    let p = engine.off(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
}
