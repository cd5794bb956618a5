//! The promise at the edges of the engine: an Off that does not last, which box answered,
//! whose proof is shared, isolation agents, restore policies and standby power. Each test
//! performs the attack and checks the device's own record, not only the engine's claim.

mod support;

use fencegate_core::identity::Pin;
use fencegate_core::{
    Device, DeviceOutcome, Engine, Event, Policy, Request, SqliteJournal, Verdict,
};
use fencegate_driver::{
    Action, Capabilities, Channel, CommandReceipt, DriverFuture, ErrorKind, IdentityFact,
    PowerDriver, PowerState, RestorePolicy,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::journal::inline_engine;
use support::scripted::{KVM01, KVM02, Logged, Scripted, Step, guid, now};
use tokio::time::Instant;

fn req() -> Request {
    Request {
        requester: "test".into(),
        reason: "edge".into(),
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

/// A device whose power follows time, like real hardware: commands change the truth, and
/// an outlet's "off" that is really its reboot action turns power back on after a delay.
struct Timed {
    endpoint: String,
    truth: Mutex<Truth>,
}

struct Truth {
    on: bool,
    /// When power returns by itself, once, after going off (None: it stays off).
    back_after: Option<Duration>,
    off_since: Option<Instant>,
    commands: usize,
    /// Every reading with its time and what it said.
    reads: Vec<(Instant, PowerState)>,
}

impl Timed {
    fn new(on: bool, back_after: Option<Duration>) -> Arc<Self> {
        Arc::new(Timed {
            endpoint: "timed://outlet".into(),
            truth: Mutex::new(Truth {
                on,
                back_after,
                off_since: (!on).then(Instant::now),
                commands: 0,
                reads: Vec::new(),
            }),
        })
    }

    fn state(t: &mut Truth) -> bool {
        if let (false, Some(since), Some(back)) = (t.on, t.off_since, t.back_after)
            && since.elapsed() >= back
        {
            // One cycle, like a reboot action or a BMC reset: then power stays as set.
            t.on = true;
            t.off_since = None;
            t.back_after = None;
        }
        t.on
    }

    fn commands(&self) -> usize {
        self.truth.lock().unwrap().commands
    }

    fn device(self: &Arc<Self>, name: &str) -> Arc<Device> {
        Arc::new(Device::new(
            name,
            "timed",
            Arc::clone(self) as Arc<dyn PowerDriver>,
        ))
    }
}

impl PowerDriver for Timed {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::readable(&[Action::Off, Action::On])
    }

    fn status(&self, _deadline: std::time::Instant) -> DriverFuture<'_, PowerState> {
        let mut t = self.truth.lock().unwrap();
        let state = if Self::state(&mut t) {
            PowerState::On
        } else {
            PowerState::Off
        };
        t.reads.push((Instant::now(), state.clone()));
        Box::pin(async move { Ok(state) })
    }

    fn set_power(
        &self,
        action: Action,
        _deadline: std::time::Instant,
    ) -> DriverFuture<'_, CommandReceipt> {
        let mut t = self.truth.lock().unwrap();
        t.commands += 1;
        Self::state(&mut t);
        match action {
            Action::Off if t.on => {
                t.on = false;
                t.off_since = Some(Instant::now());
            }
            Action::On => {
                t.on = true;
                t.off_since = None;
            }
            _ => {}
        }
        Box::pin(async { Ok(CommandReceipt::new("timed: accepted")) })
    }
}

// --- An Off that does not last ---------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_off_that_turns_back_on_within_the_hold_is_no_proof() {
    // An outlet whose "off" value is really its reboot action: off for 3 s, then on again.
    // Back-to-back confirmations read Off twice within milliseconds and called it fenced.
    let outlet = Timed::new(true, Some(Duration::from_secs(3)));
    let host = support::host("n1", vec![vec![outlet.device("pdu-7")]], policy());
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed, "{}", p.detail);
    assert!(p.detail.contains("power came back"), "{}", p.detail);
    // The device's own log: it really read off and then on.
    let reads = outlet.truth.lock().unwrap().reads.clone();
    assert!(reads.iter().any(|(_, s)| *s == PowerState::Off));
    assert_eq!(reads.last().unwrap().1, PowerState::On);
}

#[tokio::test(start_paused = true)]
async fn an_off_that_holds_is_proven_and_the_proof_says_how_long() {
    let outlet = Timed::new(true, None);
    let host = support::host("n1", vec![vec![outlet.device("pdu-7")]], policy());
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
    let rec = &p.levels[0].devices[0];
    let held = rec.off_held_ms.expect("the proof states the hold");
    assert!(held >= 6_000, "{held}");
    assert!(p.one_line().contains("off held 6."), "{}", p.one_line());
    // The device's truth: every reading from the first confirming Off on was Off, and they
    // span the hold.
    let reads = outlet.truth.lock().unwrap().reads.clone();
    let first_off = reads
        .iter()
        .position(|(_, s)| *s == PowerState::Off)
        .unwrap();
    assert!(
        reads[first_off..]
            .iter()
            .all(|(_, s)| *s == PowerState::Off)
    );
    assert!(reads.last().unwrap().0 - reads[first_off].0 >= Duration::from_secs(6));
}

#[tokio::test(start_paused = true)]
async fn already_off_must_hold_too_and_a_cycling_host_gets_the_command() {
    // Reads Off at first (a BMC in the middle of a cycle), then comes back on: the "already
    // off, no command needed" shortcut must not take it.
    let bmc = Timed::new(false, Some(Duration::from_secs(2)));
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
    assert_eq!(
        bmc.commands(),
        1,
        "the host came back on, so it must be commanded off"
    );
    let notes: Vec<String> = p.levels[0].devices[0]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Note { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("power came back")),
        "{notes:?}"
    );
}

// --- Which box answered ----------------------------------------------------------------

fn pinned(driver: &Arc<Scripted>, name: &str, pin: &str) -> Arc<Device> {
    let mut d = Arc::try_unwrap(driver.device(name)).unwrap();
    d.pins = vec![Pin {
        option: "guid".into(),
        value: pin.into(),
    }];
    Arc::new(d)
}

#[tokio::test(start_paused = true)]
async fn a_pinned_device_answered_by_another_box_gets_no_command() {
    // A relay at kvm01's BMC address forwards to kvm02's BMC (same fleet password).
    let relayed = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM02)]);
    let host = support::host(
        "kvm01",
        vec![vec![pinned(&relayed, "kvm01-bmc", KVM01)]],
        no_hold(),
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed);
    assert!(p.detail.contains("another box"), "{}", p.detail);
    assert_eq!(
        relayed.commands_accepted(),
        0,
        "nothing may be sent to the wrong box"
    );

    // A forged (unauthenticated) fact with the right value satisfies no pin.
    let forged = Scripted::bmc_presenting(
        "ipmi://10.0.0.1:623",
        vec![IdentityFact::new("ipmi-guid", KVM01)],
    );
    let host = support::host(
        "kvm01",
        vec![vec![pinned(&forged, "kvm01-bmc", KVM01)]],
        no_hold(),
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed);
    assert_eq!(forged.commands_accepted(), 0);

    // The right box passes, and the proof records what it proved.
    let real = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM01)]);
    let host = support::host(
        "kvm01",
        vec![vec![pinned(&real, "kvm01-bmc", KVM01)]],
        no_hold(),
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
    assert!(p.levels[0].devices[0].identity.contains(&guid(KVM01)));
}

#[tokio::test(start_paused = true)]
async fn require_identity_refuses_an_unpinned_device() {
    let bmc = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM01)]);
    let host = support::host(
        "kvm01",
        vec![vec![bmc.device("kvm01-bmc")]],
        Policy {
            require_identity: true,
            ..no_hold()
        },
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed);
    assert!(p.detail.contains("require_identity"), "{}", p.detail);
    assert_eq!(bmc.commands_accepted(), 0);
}

/// Trust on first use, on the real SQLite journal: remembered, a change refuses the device
/// (its level fails over), `trust` accepts it, and two addresses cannot claim one box.
#[tokio::test]
async fn an_identity_seen_first_is_remembered_and_a_change_refuses_until_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));

    let first = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM01)]);
    let host = support::host("kvm01", vec![vec![first.device("kvm01-bmc")]], no_hold());
    let p = engine.off(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);

    // Now kvm02's BMC answers at kvm01's address (a relay): refused before any command,
    // and the PDU level behind it is tried instead.
    let relayed = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM02)]);
    let pdu = Scripted::new("snmp://pdu", vec![now(PowerState::Off)], vec![now(())]);
    let host = support::host(
        "kvm01",
        vec![vec![relayed.device("kvm01-bmc")], vec![pdu.device("pdu-7")]],
        no_hold(),
    );
    let p = engine.off(Arc::clone(&host), req()).await.unwrap();
    assert_eq!(
        relayed.commands_accepted(),
        0,
        "nothing sent to the other box"
    );
    assert_eq!(
        p.verdict,
        Verdict::PowerVerifiedOff,
        "the next level decides: {}",
        p.detail
    );
    let bmc = &p.levels[0].devices[0];
    assert_eq!(bmc.outcome, DeviceOutcome::Failed);
    assert!(bmc.detail.contains("fencegate trust"), "{}", bmc.detail);

    // The operator accepts the new board; then it is used again.
    let t = engine.trust(Arc::clone(&host), req(), false).await.unwrap();
    assert!(t.success, "{}", t.detail);
    assert!(t.detail.contains(KVM02), "{}", t.detail);
    let again = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM02)]);
    let host = support::host("kvm01", vec![vec![again.device("kvm01-bmc")]], no_hold());
    let p = engine.off(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
    assert_eq!(again.commands_accepted(), 1);

    // A second address presenting the box already remembered elsewhere is refused.
    let twin = Scripted::bmc_presenting("ipmi://10.0.0.9:623", vec![guid(KVM02)]);
    let host = support::host("kvm09", vec![vec![twin.device("kvm09-bmc")]], no_hold());
    let p = engine.off(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed);
    assert!(
        p.detail.contains("two addresses claim one box"),
        "{}",
        p.detail
    );
    assert_eq!(twin.commands_accepted(), 0);
}

#[tokio::test]
async fn placeholder_identities_are_flagged_and_never_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(SqliteJournal::open(dir.path()).unwrap());
    let engine = Engine::new(journal.clone());
    let zero = "00000000000000000000000000000000";
    let a = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(zero)]);
    let host = support::host("a", vec![vec![a.device("a-bmc")]], no_hold());
    let p = engine.off(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff);
    let notes = format!("{:?}", p.levels[0].devices[0].events);
    assert!(notes.contains("placeholder"), "{notes}");
    // A second box with the same placeholder is no "claimed elsewhere" conflict.
    let b = Scripted::bmc_presenting("ipmi://10.0.0.2:623", vec![guid(zero)]);
    let host = support::host("b", vec![vec![b.device("b-bmc")]], no_hold());
    assert_eq!(
        engine.off(host, req()).await.unwrap().verdict,
        Verdict::PowerVerifiedOff
    );
    use fencegate_core::Journal;
    assert!(journal.known_identities().await.unwrap().is_empty());
}

/// A relay that switches boxes between sessions: one identity at the pre-read, another by
/// the time the confirming readings are in.
#[tokio::test(start_paused = true)]
async fn an_identity_that_changes_during_the_operation_is_no_proof() {
    let bmc = Scripted::new(
        "ipmi://10.0.0.1:623",
        vec![
            now(PowerState::On),
            Step::Answer(PowerState::Off, Duration::from_secs(1)),
        ],
        vec![now(())],
    );
    bmc.set_identity(vec![guid(KVM01)]);
    let switcher = Arc::clone(&bmc);
    let host = support::host(
        "kvm01",
        vec![vec![pinned(&bmc, "kvm01-bmc", KVM01)]],
        no_hold(),
    );
    let engine = inline_engine();
    let fence = tokio::spawn(async move { engine.fence(host, req()).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    switcher.set_identity(vec![guid(KVM02)]);
    let p = fence.await.unwrap().unwrap();
    assert_eq!(p.verdict, Verdict::Failed, "{}", p.detail);
    assert!(p.detail.contains("by the end"), "{}", p.detail);
}

// --- Whose proof is shared -------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_fence_on_other_devices_under_the_same_name_is_not_joined() {
    // An ad-hoc `fence --device … --name kvm01` is running on some other box; the
    // inventory's fence of kvm01 must not take its proof.
    let other = Scripted::new(
        "ipmi://elsewhere",
        vec![
            now(PowerState::On),
            Step::Answer(PowerState::Off, Duration::from_secs(1)),
        ],
        vec![now(())],
    );
    let real = Scripted::new(
        "ipmi://kvm01",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let adhoc = support::host("kvm01", vec![vec![other.device("adhoc")]], no_hold());
    let inventory = support::host("kvm01", vec![vec![real.device("kvm01-bmc")]], no_hold());
    let engine = inline_engine();
    let e2 = engine.clone();
    let first = tokio::spawn(async move { e2.fence(adhoc, req()).await });
    tokio::task::yield_now().await;
    let p = engine.fence(inventory, req()).await.unwrap();
    let q = first.await.unwrap().unwrap();
    assert_ne!(
        p.request_id, q.request_id,
        "a proof of other devices was shared"
    );
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff);
    assert_eq!(
        real.commands_accepted(),
        1,
        "the real box must be fenced itself"
    );
    assert_ne!(p.target, q.target);

    // A weaker policy is another target too.
    let a = support::host("h", vec![vec![real.device("kvm01-bmc")]], no_hold());
    let b = support::host(
        "h",
        vec![vec![real.device("kvm01-bmc")]],
        Policy {
            accept_liveness_loss: true,
            ..no_hold()
        },
    );
    assert_ne!(a.target_digest(), b.target_digest());
    // The same devices under other names are the same target.
    let c = support::host("h", vec![vec![real.device("renamed")]], no_hold());
    assert_eq!(a.target_digest(), c.target_digest());
}

#[tokio::test]
async fn across_processes_a_fence_of_another_target_waits_and_runs_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let one = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let two = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let other = Scripted::new(
        "ipmi://elsewhere",
        vec![
            now(PowerState::On),
            Step::Answer(PowerState::Off, Duration::from_millis(400)),
        ],
        vec![now(())],
    );
    let real = Scripted::new(
        "ipmi://kvm01",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let adhoc = support::host("kvm01", vec![vec![other.device("adhoc")]], no_hold());
    let inventory = support::host("kvm01", vec![vec![real.device("kvm01-bmc")]], no_hold());
    let first = tokio::spawn(async move { one.fence(adhoc, req()).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let p = two.fence(inventory, req()).await.unwrap();
    let q = first.await.unwrap().unwrap();
    assert_ne!(p.request_id, q.request_id);
    assert_eq!(real.commands_accepted(), 1);
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
}

// --- Isolation agents ------------------------------------------------------------------

fn isolation(endpoint: &str) -> Arc<Scripted> {
    let d = Scripted::blind(endpoint, vec![now(())]);
    d.set_channel(Channel::Isolation);
    d
}

#[tokio::test(start_paused = true)]
async fn isolation_is_its_own_verdict_and_counts_only_where_accepted() {
    let scsi = isolation("fence_scsi");
    let host = support::host("n1", vec![vec![scsi.device("scsi")]], no_hold());
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Isolated);
    assert!(
        !p.success,
        "isolation is no power-off unless the policy says so"
    );
    assert_eq!(p.levels[0].devices[0].outcome, DeviceOutcome::Isolated);

    let scsi = isolation("fence_scsi");
    let host = support::host(
        "n2",
        vec![vec![scsi.device("scsi")]],
        Policy {
            accept_isolation: true,
            ..no_hold()
        },
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Isolated);
    assert!(p.success);
    assert!(p.detail.contains("isolat"), "{}", p.detail);
    // Accepting liveness loss does not accept isolation.
    let scsi = isolation("fence_scsi");
    let host = support::host(
        "n3",
        vec![vec![scsi.device("scsi")]],
        Policy {
            accept_liveness_loss: true,
            ..no_hold()
        },
    );
    assert!(!inline_engine().fence(host, req()).await.unwrap().success);
}

// --- Power that comes back later -------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_fence_sets_the_restore_policy_to_stay_off_and_unfence_puts_it_back() {
    let bmc = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM01)]);
    bmc.set_restore(RestorePolicy::LastState);
    let host = support::host("kvm01", vec![vec![bmc.device("kvm01-bmc")]], no_hold());
    let engine = inline_engine();
    let p = engine.fence(Arc::clone(&host), req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff);
    assert_eq!(bmc.restore(), Some(RestorePolicy::AlwaysOff));
    let recorded = p.levels[0].devices[0].events.iter().any(|e| {
        matches!(
            e,
            Event::RestorePolicy {
                previous: Some(RestorePolicy::LastState),
                set: RestorePolicy::AlwaysOff,
                accepted: true,
                ..
            }
        )
    });
    assert!(recorded, "the proof records both values");
    // The policy is set before the power-off command goes out.
    let log = bmc.log();
    let set_at = log
        .iter()
        .position(|l| *l == Logged::Restore(RestorePolicy::AlwaysOff));
    let off_at = log.iter().position(|l| *l == Logged::Command(Action::Off));
    assert!(set_at < off_at, "{log:?}");

    let u = engine.unfence(host, req()).await.unwrap();
    assert!(u.success, "{}", u.detail);
    assert_eq!(
        bmc.restore(),
        Some(RestorePolicy::LastState),
        "{}",
        u.detail
    );
    assert!(u.detail.contains("put back"), "{}", u.detail);
}

#[tokio::test(start_paused = true)]
async fn a_maintenance_off_leaves_the_restore_policy_alone() {
    let bmc = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![]);
    bmc.set_restore(RestorePolicy::AlwaysOn);
    let host = support::host("kvm01", vec![vec![bmc.device("kvm01-bmc")]], no_hold());
    inline_engine().off(host, req()).await.unwrap();
    assert_eq!(bmc.restore(), Some(RestorePolicy::AlwaysOn));
}

#[tokio::test(start_paused = true)]
async fn outlets_off_while_the_bmc_still_answers_is_no_proof() {
    // The BMC reads but refuses the command (an operator account without power rights), so
    // the PDU level is tried; both outlets read off, yet the BMC still answers: a third
    // supply is fed, the host may run.
    let bmc = Scripted::new(
        "ipmi://kvm01",
        vec![now(PowerState::On)],
        vec![Step::Fail(ErrorKind::Auth, Duration::ZERO)],
    );
    bmc.set_channel(Channel::Bmc);
    let (a, b) = (
        Scripted::outlet("snmp://pdu-a"),
        Scripted::outlet("snmp://pdu-b"),
    );
    let host = support::host(
        "kvm01",
        vec![
            vec![bmc.device("kvm01-bmc")],
            vec![a.device("pdu-a-7"), b.device("pdu-b-7")],
        ],
        no_hold(),
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed, "{}", p.detail);
    assert!(
        p.detail.contains("standby power is present"),
        "{}",
        p.detail
    );
}

#[tokio::test(start_paused = true)]
async fn outlets_off_and_a_silent_bmc_is_proof() {
    let bmc = Scripted::new(
        "ipmi://kvm01",
        vec![Step::Fail(ErrorKind::Unreachable, Duration::ZERO)],
        vec![now(())],
    );
    bmc.set_channel(Channel::Bmc);
    let (a, b) = (
        Scripted::outlet("snmp://pdu-a"),
        Scripted::outlet("snmp://pdu-b"),
    );
    let host = support::host(
        "kvm01",
        vec![
            vec![bmc.device("kvm01-bmc")],
            vec![a.device("pdu-a-7"), b.device("pdu-b-7")],
        ],
        no_hold(),
    );
    let p = inline_engine().fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
    assert!(p.detail.contains("pdu-a-7 + pdu-b-7"), "{}", p.detail);
}

/// A BMC re-addressed for real: its new address is refused as "two addresses claim one box"
/// until the operator says it moved; then the old address forgets it.
#[tokio::test]
async fn a_box_that_moved_is_trusted_only_when_the_operator_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let old = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM01)]);
    let host = support::host("kvm01", vec![vec![old.device("kvm01-bmc")]], no_hold());
    assert!(engine.off(host, req()).await.unwrap().success);

    let new = Scripted::bmc_presenting("ipmi://10.0.0.99:623", vec![guid(KVM01)]);
    let host = support::host("kvm01", vec![vec![new.device("kvm01-bmc")]], no_hold());
    let p = engine.off(Arc::clone(&host), req()).await.unwrap();
    assert!(
        p.detail.contains("two addresses claim one box"),
        "{}",
        p.detail
    );
    let t = engine.trust(Arc::clone(&host), req(), false).await.unwrap();
    assert!(!t.success, "{}", t.detail);
    assert!(t.detail.contains("--moved"), "{}", t.detail);
    let t = engine.trust(Arc::clone(&host), req(), true).await.unwrap();
    assert!(t.success, "{}", t.detail);
    let p = engine.off(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);

    // The old address no longer holds the box: something answering there now is another
    // claim on it.
    let back = Scripted::bmc_presenting("ipmi://10.0.0.1:623", vec![guid(KVM01)]);
    let host = support::host("kvm01", vec![vec![back.device("kvm01-bmc")]], no_hold());
    let p = engine.off(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed, "{}", p.detail);
    assert_eq!(back.commands_accepted(), 0);
}
