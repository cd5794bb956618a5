//! A hostile review of issue 13's power-on lock: a box a fence locked by identity, powered
//! on under another name through a channel whose own identity the fence never saw. Each test
//! counts the `On` commands the scripted "devices" accepted, not what the engine claims.

mod support;

use fencegate_core::{Policy, Request, Verdict};
use fencegate_driver::{Action, Channel, ErrorKind, IdentityFact, PowerState};
use std::sync::Arc;
use std::time::Duration;
use support::journal::{TestEngine, inline_engine};
use support::scripted::{KVM02, Scripted, Step, guid, now};

fn req() -> Request {
    support::request("review")
}

fn policy() -> Policy {
    support::lock_policy()
}

fn bmc(endpoint: &str, facts: Vec<IdentityFact>, reads: Vec<Step<PowerState>>) -> Arc<Scripted> {
    Scripted::bmc_reading(endpoint, facts, reads)
}

/// A Redfish channel to kvm02's box: its UUID is a kind of identity no fence below locks.
fn redfish() -> Arc<Scripted> {
    bmc(
        "redfish://10.0.0.22",
        vec![IdentityFact::authenticated(
            "redfish-uuid",
            "8d2c6a1e-5b7f-4c3d-9e0a-1f2b3c4d5e6f",
        )],
        vec![now(PowerState::Off)],
    )
}

/// kvm02's box fenced through a relay address: its GUID is locked under host relay02.
async fn fence_through_relay(engine: &TestEngine) {
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
}

/// Two whole-host channels to one box in one level (IPMI and Redfish of the same BMC).
/// Devices of a level are powered on together, and `locked_box` checks only the levels
/// powered on after the first: the IPMI device finds the locked GUID while its sibling has
/// already switched the box on.
#[tokio::test(start_paused = true)]
async fn a_sibling_channel_in_the_same_level_cannot_power_on_a_locked_box() {
    let engine = inline_engine();
    fence_through_relay(&engine).await;

    let ipmi = bmc(
        "ipmi://10.0.0.2:623",
        vec![guid(KVM02)],
        vec![now(PowerState::Off)],
    );
    let redfish = redfish();
    let kvm02 = support::host(
        "kvm02",
        vec![vec![
            ipmi.device("kvm02-ipmi"),
            redfish.device("kvm02-redfish"),
        ]],
        policy(),
    );
    let on = engine.on(kvm02, req()).await.unwrap();
    assert_eq!(
        redfish.accepted(Action::On) + ipmi.accepted(Action::On),
        0,
        "a channel of the level powered on a box its sibling found locked: {}",
        on.detail
    );
    assert!(!on.success, "{}", on.detail);
    assert!(on.detail.contains("power-on lock"), "{}", on.detail);
}

/// The first level's BMC answers its handshake (it presents the locked GUID) but its one
/// status read before the power-on is busy. `locked_box` then ignores what it presented and,
/// with nothing remembered for its address, lets the Redfish level switch the box on.
#[tokio::test(start_paused = true)]
async fn a_busy_reading_does_not_hide_the_identity_a_bmc_presented() {
    let engine = inline_engine();
    fence_through_relay(&engine).await;

    let ipmi = bmc(
        "ipmi://10.0.0.2:623",
        vec![guid(KVM02)],
        vec![
            Step::Fail(ErrorKind::Busy, Duration::ZERO),
            now(PowerState::Off),
        ],
    );
    let redfish = redfish();
    let kvm02 = support::host(
        "kvm02",
        vec![
            vec![ipmi.device("kvm02-ipmi")],
            vec![redfish.device("kvm02-redfish")],
        ],
        policy(),
    );
    let on = engine.on(kvm02, req()).await.unwrap();
    assert_eq!(
        redfish.accepted(Action::On) + ipmi.accepted(Action::On),
        0,
        "the Redfish level powered on a box its BMC presented as locked: {}",
        on.detail
    );
    assert!(!on.success, "{}", on.detail);
    assert!(on.detail.contains("power-on lock"), "{}", on.detail);
}

/// The first level's BMC is pinned to the locked GUID but does not answer before the
/// power-on (its address moved, or it has no standby power yet): it presents nothing and
/// nothing is remembered for its address. Its pin still says which box the host is, and
/// that box is locked: the Redfish level must not switch it on.
#[tokio::test(start_paused = true)]
async fn a_silent_bmc_is_judged_by_its_pins() {
    let engine = inline_engine();
    fence_through_relay(&engine).await;

    let ipmi = Scripted::new(
        "ipmi://10.0.0.2:623",
        vec![Step::Fail(ErrorKind::Unreachable, Duration::ZERO)],
        vec![now(())],
    );
    ipmi.set_channel(Channel::Bmc);
    let mut pinned = fencegate_core::Device::new(
        "kvm02-ipmi",
        "scripted",
        Arc::clone(&ipmi) as Arc<dyn fencegate_driver::PowerDriver>,
    );
    pinned.pins = vec![fencegate_core::identity::Pin {
        option: "guid".into(),
        value: KVM02.into(),
    }];
    let redfish = redfish();
    let kvm02 = support::host(
        "kvm02",
        vec![
            vec![Arc::new(pinned)],
            vec![redfish.device("kvm02-redfish")],
        ],
        policy(),
    );
    let on = engine.on(kvm02, req()).await.unwrap();
    assert_eq!(
        redfish.accepted(Action::On),
        0,
        "the Redfish level powered on the box the BMC's pin names, which is locked: {}",
        on.detail
    );
    assert!(!on.success, "{}", on.detail);
    assert!(on.detail.contains("power-on lock"), "{}", on.detail);
}

/// An isolation channel (SCSI reservations on a shared LUN, an SBD disk, a switch) presents
/// the identity of what it switches, which every host on it shares, like a PDU's. Fencing
/// one host must not lock that shared identity: another host on the same LUN must still
/// power on.
#[tokio::test(start_paused = true)]
async fn fencing_one_host_through_a_shared_isolation_channel_locks_no_other_host() {
    let engine = inline_engine();
    let lun = || {
        vec![IdentityFact::authenticated(
            "scsi-serial",
            "600a0b80002a4f7c0000e3d14ff1a2b3",
        )]
    };
    let isolation = |endpoint: &str| {
        let d = Scripted::blind(endpoint, vec![now(())]);
        d.set_identity(lun());
        d.set_channel(Channel::Isolation);
        d
    };
    let isolating = Policy {
        accept_isolation: true,
        ..policy()
    };
    let scsi01 = isolation("scsi://kvm01");
    let kvm01 = support::host(
        "kvm01",
        vec![vec![scsi01.device("kvm01-scsi")]],
        isolating.clone(),
    );
    let fenced = engine.fence(kvm01, req()).await.unwrap();
    assert_eq!(fenced.verdict, Verdict::Isolated, "{}", fenced.detail);

    let bmc03 = bmc(
        "ipmi://10.0.0.3:623",
        vec![guid(support::scripted::KVM03)],
        vec![now(PowerState::Off), now(PowerState::On)],
    );
    let scsi03 = isolation("scsi://kvm03");
    let kvm03 = support::host(
        "kvm03",
        vec![
            vec![bmc03.device("kvm03-bmc")],
            vec![scsi03.device("kvm03-scsi")],
        ],
        isolating,
    );
    let on = engine.on(kvm03, req()).await.unwrap();
    assert!(
        on.success,
        "kvm03 shares only a LUN with the fenced kvm01: {}",
        on.detail
    );
    assert_eq!(bmc03.accepted(Action::On), 1, "{}", on.detail);
}
