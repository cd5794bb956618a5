//! The example plugins end to end through `PluginFactory`: the Rust ACME plugin against its
//! simulator, fenced the way the engine does it (pre-read, off, poll until consecutive
//! `Off`), and the C state-file plugin; plus `check` reports.

mod common;

use common::{acme_plugin, in_ms, misbehaving, spec, state_file_plugin, with_secret};
use fencegate_acme_plugin::sim::{SERIAL, Simulator};
use fencegate_driver::{
    Action, Channel, DeviceSpec, DriverFactory, ErrorKind, IdentityFact, PowerDriver, PowerState,
};
use fencegate_plugin::{Outcome, PluginFactory, check};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "acme-test-token";

fn acme_spec(sim: &Simulator, token: &str) -> DeviceSpec {
    let target = sim.addr().to_string();
    with_secret(spec(&acme_plugin(), &[("target", &target)]), "token", token)
}

/// Poll `status` until `k` consecutive readings equal `want`, as the engine verifies.
async fn poll_until(d: &Arc<dyn PowerDriver>, want: PowerState, k: usize) -> Vec<PowerState> {
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut run = 0;
    while run < k {
        assert!(
            Instant::now() < give_up,
            "never read {want} {k} times in a row: {seen:?}"
        );
        let state = d.status(in_ms(2000)).await.expect("a reading");
        run = if state == want { run + 1 } else { 0 };
        seen.push(state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test]
async fn the_acme_plugin_fences_a_host_against_its_simulator() {
    let sim = Simulator::start(TOKEN, Duration::from_millis(300)).unwrap();
    let d = PluginFactory.build(&acme_spec(&sim, TOKEN)).unwrap();
    assert_eq!(d.endpoint(), format!("plugin:{}", sim.addr()));
    assert!(d.capabilities().reads_power_state);
    assert_eq!(
        d.capabilities().actions,
        [Action::Off, Action::On, Action::Cycle]
    );
    assert_eq!(d.capabilities().channel, Channel::Bmc);
    assert!(d.capabilities().authenticated_identity);

    assert_eq!(d.status(in_ms(2000)).await.unwrap(), PowerState::On);
    assert_eq!(
        d.identity(),
        [IdentityFact::authenticated("acme-serial", SERIAL)],
        "known after the first status, before any command"
    );
    assert!(sim.commands().is_empty());
    let receipt = d.set_power(Action::Off, in_ms(2000)).await.unwrap();
    assert!(receipt.detail.contains("202"), "{receipt:?}");
    let seen = poll_until(&d, PowerState::Off, 3).await;
    assert_eq!(seen.first(), Some(&PowerState::PoweringOff), "{seen:?}");
    assert_eq!(sim.state(), "off");
    assert_eq!(sim.commands(), ["off"]);
    assert_eq!(
        d.identity(),
        [IdentityFact::authenticated("acme-serial", SERIAL)]
    );

    let e = d.set_power(Action::Off, in_ms(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::StateConflict, "{e}");

    d.set_power(Action::On, in_ms(2000)).await.unwrap();
    poll_until(&d, PowerState::On, 2).await;
    assert_eq!(sim.commands(), ["off", "on"]);
}

#[tokio::test]
async fn the_acme_plugin_reports_auth_and_unreachable_honestly() {
    let sim = Simulator::start(TOKEN, Duration::ZERO).unwrap();
    let d = PluginFactory
        .build(&acme_spec(&sim, "wrong-token"))
        .unwrap();
    let e = d.status(in_ms(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(!e.detail.contains("wrong-token"), "{e}");
    assert!(
        d.identity().is_empty(),
        "a serial sent with a refusal proves nothing: {:?}",
        d.identity()
    );

    let gone = acme_spec(&sim, TOKEN);
    drop(sim);
    let d = PluginFactory.build(&gone).unwrap();
    let e = d.status(in_ms(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(d.set_power(Action::Off, in_ms(2000)).await.is_err());
}

#[tokio::test]
async fn the_c_plugin_reads_and_switches_its_state_file() {
    let plugin = state_file_plugin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node7.power");
    std::fs::write(&file, "on\n").unwrap();
    let file_text = file.display().to_string();
    let d = PluginFactory
        .build(&spec(&plugin.path, &[("state_file", &file_text)]))
        .unwrap();
    assert_eq!(d.capabilities().actions, [Action::Off, Action::On]);
    assert_eq!(d.capabilities().channel, Channel::Other);
    assert!(!d.capabilities().authenticated_identity);
    assert_eq!(d.status(in_ms(2000)).await.unwrap(), PowerState::On);
    let receipt = d.set_power(Action::Off, in_ms(2000)).await.unwrap();
    assert_eq!(receipt.detail, "wrote off");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "off\n");
    poll_until(&d, PowerState::Off, 3).await;
    d.set_power(Action::On, in_ms(2000)).await.unwrap();
    assert_eq!(d.status(in_ms(2000)).await.unwrap(), PowerState::On);
    let e = d.set_power(Action::Cycle, in_ms(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);

    let e = PluginFactory.build(&spec(&plugin.path, &[])).err().unwrap();
    assert!(e.to_string().contains("refused its configuration"), "{e}");
    assert!(e.to_string().contains("state_file"), "{e}");
}

#[tokio::test]
async fn check_reports_metadata_and_a_reading_without_any_command() {
    let sim = Simulator::start(TOKEN, Duration::ZERO).unwrap();
    let device = acme_spec(&sim, TOKEN);
    let report = check(acme_plugin(), &device, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.name, "acme-powerctl");
    assert_eq!((report.abi.major, report.abi.host_major), (1, 1));
    let text = report.to_string();
    for line in [
        "plugin acme-powerctl 0.1.0",
        "abi:     1.0",
        "channel: bmc",
        "authenticated identity: yes",
        "ok   status: reads on",
        &format!("identity: acme-serial = {SERIAL} (authenticated)"),
        "ok   identity: 1 authenticated fact(s), can be pinned",
        "passed",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["steps"][2]["step"], "status");
    assert_eq!(json["steps"][2]["outcome"], "ok");
    assert_eq!(json["identity"][0]["value"], SERIAL);
    assert_eq!(json["identity"][0]["authenticated"], true);
    assert_eq!(json["channel"], "bmc");
    assert_eq!(json["authenticated_identity"], true);
    assert_eq!(json["steps"][3]["step"], "identity");
    assert!(
        sim.commands().is_empty(),
        "check must never send a power command"
    );
    assert!(!text.contains(TOKEN) && !json.to_string().contains(TOKEN));
}

#[tokio::test]
async fn check_reports_a_refused_configuration_and_refuses_a_bad_library() {
    let plugin = state_file_plugin();
    let report = check(&plugin.path, &DeviceSpec::default(), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!report.passed(), "{report}");
    assert_eq!(report.steps[0].outcome, Outcome::Failed);
    assert!(report.to_string().contains("FAIL configure"), "{report}");

    let wrong = misbehaving(&["-DWRONG_MAJOR"]);
    let e = check(&wrong.path, &DeviceSpec::default(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ABI major version 2"), "{e}");
}

#[tokio::test]
async fn check_says_when_a_plugin_has_no_authenticated_identity() {
    let plugin = state_file_plugin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node7.power");
    std::fs::write(&file, "off\n").unwrap();
    let device = spec(&plugin.path, &[("state_file", &file.display().to_string())]);
    let report = check(&plugin.path, &device, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(report.passed(), "a warning passes: {report}");
    assert!(!report.authenticated_identity);
    let text = report.to_string();
    for line in [
        "authenticated identity: no (the endpoint cannot be pinned)",
        "warn identity: no authenticated identity",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}
