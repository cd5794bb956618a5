//! Attacks on the power-on lock found by the fault campaign (docs/RELIABILITY.md): a box
//! fenced under one name, powered on under another. Each test failed before its fix and
//! counts the commands the "devices" accepted, not what the engine claims.

mod support;

use fencegate_core::{Policy, Request, Verdict};
use fencegate_driver::{Action, Channel, IdentityFact, PowerState};
use std::sync::Arc;
use std::time::Duration;
use support::journal::inline_engine;
use support::scripted::{KVM01, KVM02, Scripted, Step, guid, now};

fn req() -> Request {
    support::request("campaign")
}

fn policy() -> Policy {
    support::lock_policy()
}

fn bmc(endpoint: &str, facts: Vec<IdentityFact>, reads: Vec<Step<PowerState>>) -> Arc<Scripted> {
    Scripted::bmc_reading(endpoint, facts, reads)
}

/// Campaign seed 1, schedule 1908: a relay address to kvm01's BMC is seen first (its `off`
/// remembers the box there); kvm01's fence then reaches the box through its own address (the
/// box is "claimed elsewhere", so that device fails) and goes on to its slow second level.
/// While the fence still runs, `on relay01` must not power the box on: the fence met that box
/// and locked it by identity, not only once its verdict was in.
#[tokio::test(start_paused = true)]
async fn a_relay_cannot_power_on_a_box_whose_fence_is_running() {
    let engine = inline_engine();
    let kvm01_bmc = bmc(
        "ipmi://10.0.0.1:623",
        vec![guid(KVM01)],
        vec![Step::Answer(PowerState::On, Duration::from_secs(2))],
    );
    // The second level answers only after 10 s: the fence is still running at 3 s.
    let outlet = Scripted::new(
        "apc://10.0.0.100/1",
        vec![
            Step::Answer(PowerState::On, Duration::from_secs(10)),
            now(PowerState::Off),
        ],
        vec![now(())],
    );
    outlet.set_channel(Channel::Outlet);
    let relay = bmc(
        "ipmi://10.0.0.9:623",
        vec![guid(KVM01)],
        vec![now(PowerState::Off)],
    );
    let kvm01 = support::host(
        "kvm01",
        vec![
            vec![kvm01_bmc.device("kvm01-bmc")],
            vec![outlet.device("kvm01-pdu")],
        ],
        policy(),
    );
    let relay01 = support::host("relay01", vec![vec![relay.device("relay01-bmc")]], policy());

    let fence = tokio::spawn({
        let engine = engine.clone();
        let kvm01 = Arc::clone(&kvm01);
        async move { engine.fence(kvm01, req()).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let off = engine.off(Arc::clone(&relay01), req()).await.unwrap();
    assert_eq!(off.verdict, Verdict::PowerVerifiedOff, "{}", off.detail);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!fence.is_finished(), "the fence must still be running");

    let on = engine.on(relay01, req()).await.unwrap();
    assert_eq!(
        relay.accepted(Action::On),
        0,
        "the relay powered on the box a running fence had reached: {}",
        on.detail
    );
    assert!(!on.success, "{}", on.detail);
    assert!(on.detail.contains("power-on lock"), "{}", on.detail);
    fence.await.unwrap().unwrap();
}

/// Campaign seed 1, schedule 496: kvm02's box was fenced through a relay address (its GUID is
/// locked). `on kvm02` powers on last level first: its Redfish channel presents another kind
/// of identity (a UUID, not locked) and was switched on before the BMC of the first level
/// was read and found to be the locked box. Every level is checked before the first `On`.
#[tokio::test(start_paused = true)]
async fn power_on_checks_every_level_before_the_first_on() {
    let engine = inline_engine();
    let relay = bmc(
        "ipmi://10.0.0.9:623",
        vec![guid(KVM02)],
        vec![now(PowerState::On), now(PowerState::Off)],
    );
    let relay02 = support::host("relay02", vec![vec![relay.device("relay02-bmc")]], policy());
    let fenced = engine.fence(relay02, req()).await.unwrap();
    assert_eq!(
        fenced.verdict,
        Verdict::PowerVerifiedOff,
        "{}",
        fenced.detail
    );

    let kvm02_bmc = bmc(
        "ipmi://10.0.0.2:623",
        vec![guid(KVM02)],
        vec![now(PowerState::Off)],
    );
    let redfish = bmc(
        "redfish://10.0.0.22",
        vec![IdentityFact::authenticated(
            "redfish-uuid",
            "8d2c6a1e-5b7f-4c3d-9e0a-1f2b3c4d5e6f",
        )],
        vec![now(PowerState::Off)],
    );
    let kvm02 = support::host(
        "kvm02",
        vec![
            vec![kvm02_bmc.device("kvm02-bmc")],
            vec![redfish.device("kvm02-redfish")],
        ],
        policy(),
    );
    let on = engine.on(kvm02, req()).await.unwrap();
    assert_eq!(
        redfish.accepted(Action::On) + kvm02_bmc.accepted(Action::On),
        0,
        "a level was powered on before the locked box was found: {}",
        on.detail
    );
    assert!(!on.success);
    assert!(on.detail.contains("power-on lock"), "{}", on.detail);
    assert!(
        on.detail.contains("relay02"),
        "names the fenced host: {}",
        on.detail
    );
}

/// Campaign seed 42, schedule 253: `on kvm00` checked every level's box before its first
/// `On` (not locked yet); then a forced fence through a relay to the same BMC began and
/// locked the box; then the power-on's slow Redfish level switched it on. Each device checks
/// the host's identities again right before its own `On`.
#[tokio::test(start_paused = true)]
async fn a_fence_that_begins_during_a_power_on_still_stops_its_on() {
    let engine = inline_engine();
    let kvm00_bmc = bmc(
        "ipmi://10.0.0.10:623",
        vec![guid(KVM01)],
        vec![now(PowerState::Off)],
    );
    // The Redfish level answers the first check at once, and its own pre-read only after
    // 3 s: the window the fence uses.
    let redfish = bmc(
        "redfish://10.0.0.20",
        vec![IdentityFact::authenticated(
            "redfish-uuid",
            "1b0e2c4d-6f8a-4b1c-9d2e-3f4a5b6c7d8e",
        )],
        vec![
            now(PowerState::Off),
            Step::Answer(PowerState::Off, Duration::from_secs(3)),
        ],
    );
    let kvm00 = support::host(
        "kvm00",
        vec![
            vec![kvm00_bmc.device("kvm00-bmc")],
            vec![redfish.device("kvm00-redfish")],
        ],
        policy(),
    );
    let relay = bmc(
        "ipmi://10.0.0.9:623",
        vec![guid(KVM01)],
        vec![now(PowerState::On), now(PowerState::Off)],
    );
    let relay00 = support::host("relay00", vec![vec![relay.device("relay00-bmc")]], policy());

    let on = tokio::spawn({
        let engine = engine.clone();
        async move { engine.on(kvm00, req()).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let forced = Request {
        force: true,
        ..req()
    };
    let fenced = engine.fence(relay00, forced).await.unwrap();
    assert_eq!(
        fenced.verdict,
        Verdict::PowerVerifiedOff,
        "{}",
        fenced.detail
    );
    let on = on.await.unwrap().unwrap();
    assert_eq!(
        redfish.accepted(Action::On) + kvm00_bmc.accepted(Action::On),
        0,
        "powered on a box a fence locked after the first check: {}",
        on.detail
    );
    assert!(on.detail.contains("power-on lock"), "{}", on.detail);
}

/// Campaign seed 7, schedule 872: before the first `On` every whole-host device is read, and
/// that reading was bounded by one attempt timeout, not by the operation's overall deadline:
/// a BMC that never answers kept `on` running past it.
#[tokio::test(start_paused = true)]
async fn the_check_before_the_first_on_ends_by_the_overall_deadline() {
    let engine = inline_engine();
    let silent = Scripted::new("ipmi://10.0.0.30:623", vec![Step::Hang], vec![now(())]);
    silent.set_channel(Channel::Bmc);
    let redfish = bmc(
        "redfish://10.0.0.31",
        Vec::new(),
        vec![now(PowerState::Off)],
    );
    let short = Policy {
        attempt_timeout: Duration::from_secs(20),
        overall_timeout: Duration::from_secs(5),
        ..policy()
    };
    let host = support::host(
        "kvm30",
        vec![
            vec![silent.device("kvm30-bmc")],
            vec![redfish.device("kvm30-redfish")],
        ],
        short,
    );
    let t0 = tokio::time::Instant::now();
    let on = engine.on(host, req()).await.unwrap();
    assert!(
        t0.elapsed() <= Duration::from_secs(5),
        "on ran {:?} against a 5 s overall deadline: {}",
        t0.elapsed(),
        on.detail
    );
}
