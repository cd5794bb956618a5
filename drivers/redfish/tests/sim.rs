//! The driver against the in-process Redfish simulator: every vendor profile and fault.

use fencegate_bmcsim::FaultProfile;
use fencegate_bmcsim::redfish::{AuthSeen, Profile, RedfishConfig, RedfishLab};
use fencegate_driver::{
    Action, Channel, DeviceSpec, ErrorKind, IdentityFact, PowerDriver, PowerState, RestorePolicy,
    SecretString,
};
use fencegate_redfish::RedfishDriver;
use serde_json::json;
use std::time::{Duration, Instant};

const PASSWORD: &str = "sim-password-1";

fn deadline(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

fn spec(lab: &RedfishLab, i: usize, options: &[(&str, &str)]) -> DeviceSpec {
    let mut s = DeviceSpec {
        name: format!("sim{i}"),
        driver: "redfish".into(),
        address: lab.addr(i).to_string(),
        user: Some("admin".into()),
        ..Default::default()
    };
    s.secrets
        .insert("password".into(), SecretString::from(PASSWORD));
    let mut has_trust = false;
    for (k, v) in options {
        has_trust |= ["pin", "ca_file", "insecure"].contains(k);
        s.options.insert((*k).into(), (*v).into());
    }
    if !has_trust {
        s.options.insert("pin".into(), lab.fingerprint());
    }
    s
}

fn driver(lab: &RedfishLab, i: usize, options: &[(&str, &str)]) -> RedfishDriver {
    RedfishDriver::from_spec(&spec(lab, i, options)).unwrap()
}

async fn start(cfgs: Vec<RedfishConfig>) -> RedfishLab {
    RedfishLab::start(cfgs).await.unwrap()
}

fn cfg(profile: Profile) -> RedfishConfig {
    RedfishConfig::new("admin", PASSWORD).with_profile(profile)
}

async fn release(d: &RedfishDriver) {
    d.release(deadline(2000)).await.unwrap();
}

#[tokio::test]
async fn off_then_reads_with_session_and_identity() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
    let receipt = d.set_power(Action::Off, deadline(3000)).await.unwrap();
    assert!(receipt.detail.contains("ResetType=ForceOff"), "{receipt:?}");
    assert!(receipt.detail.contains("204"), "{receipt:?}");
    assert!(!lab.power_on(0));
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::Off);

    let fp = lab.fingerprint();
    let ids = d.identity();
    assert!(ids.contains(&IdentityFact::new(
        "tls-sha256",
        fp.trim_start_matches("sha256:")
    )));
    // Read over TLS verified by the pin: the BMC proved them.
    assert!(ids.contains(&IdentityFact::authenticated(
        "redfish-uuid",
        "f3ac0000-0000-4000-8000-000000000000"
    )));
    assert!(ids.contains(&IdentityFact::authenticated("redfish-serial", "SIM000000")));

    // One session for all three calls, then logged out on release.
    let reqs = lab.requests(0);
    let logins = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Sessions"))
        .count();
    assert_eq!(logins, 1, "{reqs:?}");
    // The command reuses the reset action read by the status before it: two GETs in all.
    let system_reads = reqs
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/redfish/v1/Systems/1")
        .count();
    assert_eq!(system_reads, 2, "{reqs:?}");
    assert!(
        reqs.iter()
            .all(|r| r.auth != AuthSeen::Basic && r.auth != AuthSeen::Refused)
    );
    assert_eq!(lab.open_sessions(0), 1);
    release(&d).await;
    assert_eq!(lab.open_sessions(0), 0);
    let log = lab.command_log(0);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].protocol, "redfish");
}

#[tokio::test]
async fn on_and_cycle_pick_their_reset_types() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    lab.set_power(0, false);
    let d = driver(&lab, 0, &[]);
    let r = d.set_power(Action::On, deadline(3000)).await.unwrap();
    assert!(r.detail.contains("ResetType=On"), "{r:?}");
    let r = d.set_power(Action::Cycle, deadline(3000)).await.unwrap();
    assert!(r.detail.contains("ResetType=PowerCycle"), "{r:?}");
    release(&d).await;
}

#[tokio::test]
async fn already_off_is_a_state_conflict_for_idrac_and_ilo() {
    let lab = start(vec![
        cfg(Profile::IdracLike),
        cfg(Profile::IloLike),
        cfg(Profile::Generic),
    ])
    .await;
    for i in 0..3 {
        lab.set_power(i, false);
    }
    for (i, status) in [(0, "409"), (1, "400")] {
        let d = driver(&lab, i, &[]);
        let e = d.set_power(Action::Off, deadline(3000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::StateConflict, "{e}");
        assert!(e.detail.contains(status), "{e}");
        assert!(e.detail.contains(&lab.addr(i).to_string()), "{e}");
        // Every failed call gives its session back.
        assert_eq!(lab.open_sessions(i), 0);
        assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::Off);
        release(&d).await;
    }
    let d = driver(&lab, 2, &[]);
    d.set_power(Action::Off, deadline(3000)).await.unwrap();
    release(&d).await;
}

#[tokio::test]
async fn action_info_only_is_followed_and_graceful_only_is_refused() {
    let lab = start(vec![
        cfg(Profile::ActionInfoOnly),
        cfg(Profile::ActionInfoOnly),
    ])
    .await;
    let d = driver(&lab, 0, &[]);
    d.set_power(Action::Off, deadline(3000)).await.unwrap();
    assert!(
        lab.requests(0)
            .iter()
            .any(|r| r.path.ends_with("/ResetActionInfo"))
    );
    assert!(!lab.power_on(0));
    release(&d).await;

    let mut graceful_only = Profile::ActionInfoOnly.profile();
    graceful_only.reset_types = vec!["On".into(), "GracefulShutdown".into()];
    lab.set_profile(1, graceful_only);
    let d = driver(&lab, 1, &[]);
    let e = d.set_power(Action::Off, deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("GracefulShutdown"), "{e}");
    assert!(lab.command_log(1).is_empty(), "nothing may be sent");
    assert!(lab.power_on(1));
}

#[tokio::test]
async fn task_202_is_a_receipt_with_the_task_and_the_power_is_read_separately() {
    let lab = start(vec![cfg(Profile::Task202)]).await;
    let d = driver(&lab, 0, &[]);
    let r = d.set_power(Action::Off, deadline(5000)).await.unwrap();
    assert!(r.detail.contains("HTTP 202"), "{r:?}");
    assert!(
        r.detail.contains("/redfish/v1/TaskService/TaskMonitors/1"),
        "{r:?}"
    );
    assert!(
        r.detail.contains("Completed") || r.detail.contains("Running"),
        "{r:?}"
    );
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::Off);
    release(&d).await;
}

#[tokio::test]
async fn task_following_stops_at_the_deadline() {
    let lab = start(vec![cfg(Profile::Task202)]).await;
    lab.set_faults(
        0,
        FaultProfile {
            off_delay_ms: 10_000,
            ..Default::default()
        },
    );
    let d = driver(&lab, 0, &[]);
    let t0 = Instant::now();
    let r = d.set_power(Action::Off, deadline(1200)).await.unwrap();
    // The task runs for 10 s: following it stopped at the 1.2 s deadline, with room for a
    // loaded machine.
    assert!(
        t0.elapsed() < Duration::from_millis(1200 + 2000),
        "{:?}",
        t0.elapsed()
    );
    assert!(r.detail.contains("still running"), "{r:?}");
    assert_eq!(
        d.status(deadline(3000)).await.unwrap(),
        PowerState::PoweringOff
    );
    release(&d).await;
}

#[tokio::test]
async fn no_session_service_falls_back_to_basic() {
    let lab = start(vec![cfg(Profile::NoSessionService)]).await;
    let d = driver(&lab, 0, &[]);
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
    d.set_power(Action::Off, deadline(3000)).await.unwrap();
    let reqs = lab.requests(0);
    assert!(reqs.iter().all(|r| !r.path.contains("Session")), "{reqs:?}");
    assert!(reqs.iter().any(|r| r.auth == AuthSeen::Basic));
    release(&d).await;

    // auth=basic never tries a session, even where there is a SessionService; with the system
    // given as a path it needs no service root either: one GET per reading.
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(
        &lab,
        0,
        &[("auth", "basic"), ("system", "/redfish/v1/Systems/1")],
    );
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
    assert_eq!(lab.open_sessions(0), 0);
    let reqs = lab.requests(0);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].auth, AuthSeen::Basic);
}

#[tokio::test]
async fn session_limit_is_busy() {
    let mut generic = cfg(Profile::Generic);
    generic.faults.max_sessions = Some(0);
    let mut idrac = cfg(Profile::IdracLike);
    idrac.faults.max_sessions = Some(0);
    let lab = start(vec![generic, idrac]).await;
    for (i, status) in [(0, "503"), (1, "400")] {
        let d = driver(&lab, i, &[]);
        let e = d.status(deadline(3000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Busy, "{e}");
        assert!(e.detail.contains(status), "{e}");
    }
}

#[tokio::test]
async fn wrong_password_is_auth_with_a_single_attempt() {
    let lab = start(vec![cfg(Profile::Generic), cfg(Profile::NoSessionService)]).await;
    for i in 0..2 {
        let mut s = spec(&lab, i, &[]);
        s.secrets
            .insert("password".into(), SecretString::from("wrong-secret-xyz"));
        let d = RedfishDriver::from_spec(&s).unwrap();
        let e = d.status(deadline(3000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "{e}");
        assert!(!e.detail.contains("wrong-secret"), "{e}");
        assert!(!e.detail.contains(PASSWORD), "{e}");
        let refused = lab.requests(i).iter().filter(|r| r.status == 401).count();
        assert_eq!(refused, 1, "no retry storm: {:?}", lab.requests(i));
        assert!(lab.command_log(i).is_empty());
    }
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_and_no_more() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
    lab.expire_sessions(0);
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
    let logins = |lab: &RedfishLab| {
        lab.requests(0)
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Sessions"))
            .count()
    };
    assert_eq!(logins(&lab), 2);
    assert_eq!(lab.open_sessions(0), 1);

    // Expired again, and now the service is out of sessions: one renewal attempt, Busy, and
    // no loop of refused requests.
    lab.expire_sessions(0);
    lab.set_faults(
        0,
        FaultProfile {
            max_sessions: Some(0),
            ..Default::default()
        },
    );
    let e = d.status(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Busy, "{e}");
    assert_eq!(logins(&lab), 3, "{:?}", lab.requests(0));
    let refused = lab.requests(0).iter().filter(|r| r.status == 401).count();
    assert_eq!(refused, 2, "one 401 per expiry: {:?}", lab.requests(0));
    release(&d).await;
}

#[tokio::test]
async fn stuck_power_state_never_changes() {
    let mut c = cfg(Profile::Generic);
    c.faults.stuck = true;
    let lab = start(vec![c]).await;
    let d = driver(&lab, 0, &[]);
    d.set_power(Action::Off, deadline(3000)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    release(&d).await;
}

#[tokio::test]
async fn powering_off_is_reported_until_off() {
    let mut c = cfg(Profile::Generic);
    c.faults.off_delay_ms = 600;
    let lab = start(vec![c]).await;
    let d = driver(&lab, 0, &[]);
    d.set_power(Action::Off, deadline(3000)).await.unwrap();
    assert_eq!(
        d.status(deadline(3000)).await.unwrap(),
        PowerState::PoweringOff
    );
    let t0 = Instant::now();
    let mut last = PowerState::PoweringOff;
    while t0.elapsed() < Duration::from_secs(3) && last != PowerState::Off {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = d.status(deadline(3000)).await.unwrap();
        assert!(
            matches!(last, PowerState::PoweringOff | PowerState::Off),
            "{last}"
        );
    }
    assert_eq!(last, PowerState::Off);
    release(&d).await;
}

#[tokio::test]
async fn odd_power_states_are_unknown_never_off() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    for (raw, want) in [
        (json!(null), PowerState::Unknown("PowerState null".into())),
        (json!("Reset"), PowerState::Unknown("Reset".into())),
        (json!("Paused"), PowerState::Unknown("Paused".into())),
    ] {
        lab.set_reported_power_state(0, Some(raw));
        assert_eq!(d.status(deadline(3000)).await.unwrap(), want);
    }
    release(&d).await;
}

#[tokio::test]
async fn slow_service_times_out_by_the_deadline_and_the_session_is_given_back() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
    assert_eq!(lab.open_sessions(0), 1);
    lab.set_faults(
        0,
        FaultProfile {
            reply_delay_ms: 5000,
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    let e = d.status(deadline(500)).await.unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    // The answer comes after 5 s: the call ended at its 500 ms deadline, with room for a
    // loaded machine.
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(500 + 2000),
        "{took:?}"
    );
    // The logout runs in the background after the deadline, bounded.
    let t0 = Instant::now();
    while lab.open_sessions(0) != 0 && t0.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lab.open_sessions(0), 0);
}

#[tokio::test]
async fn dead_endpoint_times_out_by_the_deadline() {
    let mut c = cfg(Profile::Generic);
    c.faults.dead = true;
    let lab = start(vec![c]).await;
    let d = driver(&lab, 0, &[]);
    let t0 = Instant::now();
    let e = d.status(deadline(400)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );

    // A service that dies while the driver holds a kept-alive connection: also a timeout.
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
    lab.set_faults(
        0,
        FaultProfile {
            dead: true,
            ..Default::default()
        },
    );
    let e = d.status(deadline(400)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
}

#[tokio::test]
async fn wrong_pin_fails_before_any_credential_is_sent() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let wrong = format!("sha256:{}", "00".repeat(32));
    let d = driver(&lab, 0, &[("pin", &wrong)]);
    let e = d.status(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        e.detail.contains("does not match the configured pin"),
        "{e}"
    );
    assert!(
        e.detail
            .contains(lab.fingerprint().trim_start_matches("sha256:")),
        "{e}"
    );
    assert!(lab.requests(0).is_empty(), "{:?}", lab.requests(0));
    assert_eq!(lab.handshakes(0), 0);
    let e = d.set_power(Action::Off, deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(lab.requests(0).is_empty());
    assert!(lab.power_on(0));
}

#[tokio::test]
async fn trust_sources_unconfigured_ca_file_and_insecure() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let mut s = spec(&lab, 0, &[]);
    s.options.remove("pin");
    let d = RedfishDriver::from_spec(&s).unwrap();
    let e = d.status(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        e.detail.contains("pin=sha256:") && e.detail.contains("ca_file"),
        "{e}"
    );
    assert!(lab.requests(0).is_empty());

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("bmc.pem");
    std::fs::write(&ca, lab.certificate_pem()).unwrap();
    let d = driver(&lab, 0, &[("ca_file", ca.to_str().unwrap())]);
    assert!(d.capabilities().authenticated_identity);
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
    assert!(
        d.identity()
            .contains(&IdentityFact::authenticated("redfish-serial", "SIM000000"))
    );
    release(&d).await;

    let d = driver(&lab, 0, &[("insecure", "true")]);
    assert!(!d.capabilities().authenticated_identity);
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
    let ids = d.identity();
    assert!(ids.contains(&IdentityFact::new("tls", "insecure")));
    // Anyone on the path could have said these: evidence, never compared.
    assert!(
        ids.contains(&IdentityFact::new("redfish-serial", "SIM000000")),
        "{ids:?}"
    );
    assert!(ids.iter().all(|f| !f.authenticated), "{ids:?}");
    release(&d).await;
}

#[tokio::test]
async fn identity_is_known_after_the_first_status_and_the_channel_is_a_bmc() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    let caps = d.capabilities();
    assert_eq!(caps.channel, Channel::Bmc);
    assert!(caps.authenticated_identity);
    assert!(d.identity().iter().all(|f| !f.authenticated), "no call yet");
    d.status(deadline(3000)).await.unwrap();
    let kinds: Vec<String> = d
        .identity()
        .into_iter()
        .filter(|f| f.authenticated)
        .map(|f| f.kind)
        .collect();
    assert_eq!(kinds, ["redfish-uuid", "redfish-serial"]);
    release(&d).await;
}

#[tokio::test]
async fn silence_in_the_system_resource_is_never_off() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    lab.set_power(0, false);
    let d = driver(&lab, 0, &[]);
    // The harness can say Off, so what follows means something.
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::Off);
    for (raw, want) in [
        (json!(null), "PowerState null"),
        (json!(""), ""),
        (json!(0), "0"),
        (json!(2), "2"),
        (json!(false), "false"),
        (json!("Standby"), "Standby"),
        (json!("off"), "off"),
        (json!(["Off"]), "[\"Off\"]"),
    ] {
        lab.set_reported_power_state(0, Some(raw.clone()));
        let got = d.status(deadline(3000)).await.unwrap();
        assert_eq!(got, PowerState::Unknown(want.into()), "{raw}");
    }
    lab.set_reported_power_state(0, None);
    let missing = r#"{"@odata.id": "/redfish/v1/Systems/1", "Id": "1", "Name": "x"}"#;
    lab.set_raw_system(0, Some(missing));
    assert_eq!(
        d.status(deadline(3000)).await.unwrap(),
        PowerState::Unknown("PowerState missing".into())
    );
    for raw in [
        "",
        "<html><body>Off</body></html>",
        "\"Off\"",
        "[\"Off\"]",
        "{\"PowerState\": \"Off\"",
    ] {
        lab.set_raw_system(0, Some(raw));
        let e = d.status(deadline(3000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol, "{raw:?}: {e}");
        assert!(e.detail.contains("/redfish/v1/Systems/1"), "{raw:?}: {e}");
    }
    lab.set_raw_system(0, None);
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::Off);
    release(&d).await;
}

#[tokio::test]
async fn restore_policy_is_read_and_set_with_the_etag() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    assert_eq!(
        d.restore_policy(deadline(3000)).await.unwrap(),
        RestorePolicy::LastState
    );
    d.set_restore_policy(RestorePolicy::AlwaysOff, deadline(3000))
        .await
        .unwrap();
    assert_eq!(lab.restore_policy(0).as_deref(), Some("AlwaysOff"));
    assert_eq!(
        d.restore_policy(deadline(3000)).await.unwrap(),
        RestorePolicy::AlwaysOff
    );
    // Changed behind the driver's back (the ETag moves): still read and set afresh.
    lab.set_restore_policy(0, Some("AlwaysOn"));
    assert_eq!(
        d.restore_policy(deadline(3000)).await.unwrap(),
        RestorePolicy::AlwaysOn
    );
    lab.set_restore_policy(0, Some("LastState"));
    d.set_restore_policy(RestorePolicy::AlwaysOn, deadline(3000))
        .await
        .unwrap();
    assert_eq!(lab.restore_policy(0).as_deref(), Some("AlwaysOn"));
    let patches = lab
        .requests(0)
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(patches, [204, 204]);
    // A service without ETags takes the PATCH without If-Match.
    lab.set_etags(0, false);
    d.set_restore_policy(RestorePolicy::AlwaysOff, deadline(3000))
        .await
        .unwrap();
    assert_eq!(lab.restore_policy(0).as_deref(), Some("AlwaysOff"));
    release(&d).await;
}

#[tokio::test]
async fn restore_policy_refusals_name_what_the_bmc_said() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    lab.set_restore_policy(0, Some("Sometimes"));
    let e = d.restore_policy(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.detail.contains("Sometimes"), "{e}");

    lab.set_restore_policy(0, None);
    let e = d.restore_policy(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("PowerRestorePolicy"), "{e}");
    let e = d
        .set_restore_policy(RestorePolicy::AlwaysOff, deadline(3000))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(
        lab.requests(0).iter().all(|r| r.method != "PATCH"),
        "nothing to PATCH"
    );

    release(&d).await;
}

#[tokio::test]
async fn a_refused_restore_policy_patch_names_what_the_bmc_said() {
    let mut c = cfg(Profile::Generic);
    c.extra_systems = 1;
    let lab = start(vec![c]).await;
    // The simulator's second system shows a policy but refuses to change it.
    let d = driver(&lab, 0, &[("system", "2")]);
    assert_eq!(
        d.restore_policy(deadline(3000)).await.unwrap(),
        RestorePolicy::AlwaysOn
    );
    let e = d
        .set_restore_policy(RestorePolicy::AlwaysOff, deadline(3000))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.detail.contains("HTTP 400"), "{e}");
    assert!(e.detail.contains("PropertyNotWritable"), "{e}");
    assert!(e.detail.contains("PATCH /redfish/v1/Systems/2"), "{e}");
    release(&d).await;
}

#[tokio::test]
async fn several_systems_need_a_choice() {
    let mut c = cfg(Profile::Generic);
    c.extra_systems = 2;
    let lab = start(vec![c]).await;
    let d = driver(&lab, 0, &[]);
    let e = d.status(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(
        e.detail.contains("(1, 2, 3)") && e.detail.contains("`system`"),
        "{e}"
    );
    assert_eq!(lab.open_sessions(0), 0, "the failed call logged out");

    lab.set_power(0, false);
    let d = driver(&lab, 0, &[("system", "1")]);
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::Off);
    release(&d).await;
    let mut s = spec(&lab, 0, &[]);
    s.path = Some("/redfish/v1/Systems/3".into());
    let d = RedfishDriver::from_spec(&s).unwrap();
    assert_eq!(d.status(deadline(3000)).await.unwrap(), PowerState::On);
    release(&d).await;
    let d = driver(&lab, 0, &[("system", "9")]);
    let e = d.status(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("no such system"), "{e}");
}

const CHASSIS: &str = "/redfish/v1/Chassis/1";
const SUPPLIES: &str = "/redfish/v1/Chassis/1/PowerSubsystem/PowerSupplies";
const LEGACY_POWER: &str = "/redfish/v1/Chassis/1/Power";

/// The paths service `i` was asked for with GET, in order.
fn gets(lab: &RedfishLab, i: usize) -> Vec<String> {
    lab.requests(i)
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path)
        .collect()
}

#[tokio::test]
async fn power_supplies_are_counted_from_the_power_subsystem_in_the_session() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 2);
    let paths = gets(&lab, 0);
    for want in [
        "/redfish/v1/Systems/1",
        CHASSIS,
        "/redfish/v1/Chassis/1/PowerSubsystem",
        SUPPLIES,
        &format!("{SUPPLIES}/1"),
        &format!("{SUPPLIES}/2"),
    ] {
        assert!(
            paths.iter().any(|p| p == want),
            "{want} not read: {paths:?}"
        );
    }
    // The newer form answered: the legacy resource is not read.
    assert!(!paths.iter().any(|p| p == LEGACY_POWER), "{paths:?}");
    // One login, and every request after it carried the session token.
    let reqs = lab.requests(0);
    let logins = reqs.iter().filter(|r| r.method == "POST").count();
    assert_eq!(logins, 1, "{reqs:?}");
    assert!(
        reqs.iter()
            .filter(|r| r.path != "/redfish/v1/" && r.method == "GET")
            .all(|r| r.auth == AuthSeen::Token),
        "{reqs:?}"
    );
    // The system was read afresh, so the identity is known as after a status.
    assert!(
        d.identity()
            .contains(&IdentityFact::authenticated("redfish-serial", "SIM000000"))
    );
    assert_eq!(lab.command_log(0).len(), 0);
    release(&d).await;
    assert_eq!(lab.open_sessions(0), 0);
}

#[tokio::test]
async fn only_installed_supplies_count_in_both_forms() {
    let mut three = cfg(Profile::Generic);
    three.power_supplies = 3;
    let mut legacy = cfg(Profile::LegacyPower);
    legacy.power_supplies = 3;
    let lab = start(vec![three, legacy]).await;
    for i in 0..2 {
        let d = driver(&lab, i, &[]);
        assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 3, "{i}");
        lab.set_supply_state(i, 1, Some("Absent"));
        assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 2, "{i}");
        // Unplugged or standby supplies are installed: an outlet still feeds them when
        // power returns. So is one that states no Status at all.
        lab.set_supply_state(i, 0, Some("UnavailableOffline"));
        lab.set_supply_state(i, 2, None);
        assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 2, "{i}");
        lab.set_supply_state(i, 0, Some("StandbyOffline"));
        lab.set_supply_state(i, 2, Some("Disabled"));
        assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 2, "{i}");
        release(&d).await;
    }
}

#[tokio::test]
async fn the_legacy_power_resource_is_the_fallback() {
    let lab = start(vec![cfg(Profile::LegacyPower)]).await;
    let d = driver(&lab, 0, &[]);
    assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 2);
    let paths = gets(&lab, 0);
    assert!(paths.iter().any(|p| p == LEGACY_POWER), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.contains("PowerSubsystem")),
        "{paths:?}"
    );
    release(&d).await;

    // A chassis that links a PowerSubsystem the service does not have (404) falls back too.
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    lab.set_profile(0, Profile::LegacyPower.profile());
    let chassis = json!({"@odata.id": CHASSIS, "Id": "1",
        "PowerSubsystem": {"@odata.id": format!("{CHASSIS}/PowerSubsystem")},
        "Power": {"@odata.id": LEGACY_POWER}});
    lab.set_raw_resource(0, CHASSIS, Some(&chassis.to_string()));
    assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 2);
    release(&d).await;
}

#[tokio::test]
async fn missing_chassis_or_power_resources_are_unsupported_and_named() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    lab.set_chassis_link(0, false);
    let e = d.power_supplies(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("Links.Chassis"), "{e}");
    assert!(e.detail.contains("/redfish/v1/Systems/1"), "{e}");
    assert!(e.detail.contains(&lab.addr(0).to_string()), "{e}");
    assert!(!gets(&lab, 0).iter().any(|p| p.contains("Chassis")));
    lab.set_chassis_link(0, true);

    // A chassis with neither power resource.
    let bare = json!({"@odata.id": CHASSIS, "Id": "1", "Name": "bare"});
    lab.set_raw_resource(0, CHASSIS, Some(&bare.to_string()));
    let e = d.power_supplies(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(
        e.detail.contains(CHASSIS) && e.detail.contains("PowerSubsystem"),
        "{e}"
    );
    assert!(e.detail.contains("Power"), "{e}");
    lab.set_raw_resource(0, CHASSIS, None);

    // A linked chassis that is not there.
    lab.set_raw_resource(
        0,
        "/redfish/v1/Systems/1",
        Some(
            &json!({"Id": "1", "PowerState": "On",
            "Links": {"Chassis": [{"@odata.id": "/redfish/v1/Chassis/9"}]}})
            .to_string(),
        ),
    );
    let e = d.power_supplies(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("/redfish/v1/Chassis/9"), "{e}");
    lab.set_raw_resource(0, "/redfish/v1/Systems/1", None);

    // Every slot empty: the BMC cannot count the supplies feeding the host (a blade's are
    // in the enclosure), and zero would read as "no outlet needed".
    lab.set_power_supplies(0, 1);
    lab.set_supply_state(0, 0, Some("Absent"));
    let e = d.power_supplies(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("no installed power supply"), "{e}");
    lab.set_power_supplies(0, 0);
    let e = d.power_supplies(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    lab.set_power_supplies(0, 2);
    assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 2);
    release(&d).await;
}

#[tokio::test]
async fn malformed_power_resources_are_protocol_errors() {
    let lab = start(vec![cfg(Profile::Generic), cfg(Profile::LegacyPower)]).await;
    let member = |n: u32| json!({"@odata.id": format!("{SUPPLIES}/{n}")});
    let second = format!("{SUPPLIES}/2");
    let cases: Vec<(usize, &str, String)> = vec![
        (0, SUPPLIES, "{\"Members\": [".into()),
        (0, SUPPLIES, "<html>2</html>".into()),
        (0, SUPPLIES, "[]".into()),
        (0, SUPPLIES, json!({"Members": 2}).to_string()),
        (0, SUPPLIES, json!({"Members@odata.count": 2}).to_string()),
        // The count and the list disagree: the number cannot be believed either way.
        (
            0,
            SUPPLIES,
            json!({"Members@odata.count": 3, "Members": [member(1), member(2)]}).to_string(),
        ),
        (0, SUPPLIES, json!({"Members": [{"Id": "1"}]}).to_string()),
        (0, &second, "".into()),
        (0, &second, "\"Enabled\"".into()),
        (0, "/redfish/v1/Chassis/1/PowerSubsystem", "{".into()),
        (0, CHASSIS, "null".into()),
        (1, LEGACY_POWER, "{\"PowerSupplies\": [{}".into()),
        (1, LEGACY_POWER, json!({"PowerSupplies": 2}).to_string()),
        (
            1,
            LEGACY_POWER,
            json!({"PowerSupplies": [{}, "PSU2"]}).to_string(),
        ),
        (
            1,
            LEGACY_POWER,
            json!({"PowerSupplies@odata.count": 1, "PowerSupplies": [{}, {}]}).to_string(),
        ),
    ];
    for (i, path, raw) in &cases {
        let d = driver(&lab, *i, &[]);
        lab.set_raw_resource(*i, path, Some(raw));
        let e = d.power_supplies(deadline(3000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol, "{path} {raw:?}: {e}");
        assert!(e.detail.contains(path), "{path} {raw:?}: {e}");
        lab.set_raw_resource(*i, path, None);
        assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 2);
        release(&d).await;
        assert_eq!(lab.open_sessions(*i), 0);
    }
    // A legacy resource without a PowerSupplies array lists no supplies: nothing to count.
    lab.set_raw_resource(1, LEGACY_POWER, Some("{\"Id\": \"Power\"}"));
    let d = driver(&lab, 1, &[]);
    let e = d.power_supplies(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("PowerSupplies"), "{e}");
    release(&d).await;
}

#[tokio::test]
async fn power_supply_links_to_another_origin_are_refused() {
    let lab = start(vec![cfg(Profile::Generic), cfg(Profile::Generic)]).await;
    // The other service of the lab: a real HTTPS origin with the same pin, so only the
    // origin rule stops the credentials from going there.
    let elsewhere = format!("https://{}", lab.addr(1));
    let system = json!({"Id": "1", "PowerState": "On",
        "Links": {"Chassis": [{"@odata.id": format!("{elsewhere}{CHASSIS}")}]}});
    let collection = json!({"Members@odata.count": 2, "Members": [
        {"@odata.id": format!("{SUPPLIES}/1")},
        {"@odata.id": format!("{elsewhere}{SUPPLIES}/2")}]});
    let chassis = json!({"Id": "1",
        "PowerSubsystem": {"@odata.id": format!("{elsewhere}{CHASSIS}/PowerSubsystem")}});
    for (path, raw) in [
        ("/redfish/v1/Systems/1", system),
        (SUPPLIES, collection),
        (CHASSIS, chassis),
    ] {
        let d = driver(&lab, 0, &[]);
        lab.set_raw_resource(0, path, Some(&raw.to_string()));
        let e = d.power_supplies(deadline(3000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol, "{path}: {e}");
        assert!(e.detail.contains("another origin"), "{path}: {e}");
        lab.set_raw_resource(0, path, None);
        release(&d).await;
    }
    assert!(lab.requests(1).is_empty(), "{:?}", lab.requests(1));
}

#[tokio::test]
async fn counting_supplies_is_bounded_by_the_deadline() {
    let mut many = cfg(Profile::Generic);
    many.power_supplies = 8;
    let lab = start(vec![many]).await;
    let d = driver(&lab, 0, &[]);
    assert_eq!(d.power_supplies(deadline(5000)).await.unwrap(), 8);
    lab.set_faults(
        0,
        FaultProfile {
            reply_delay_ms: 500,
            ..Default::default()
        },
    );
    // A dozen requests of 500 ms each take 6 s: the call ends at the 700 ms deadline, with
    // room for a loaded machine.
    let t0 = Instant::now();
    let e = d.power_supplies(deadline(700)).await.unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_millis(700 + 2000),
        "{took:?}"
    );
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_while_counting() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    let d = driver(&lab, 0, &[]);
    assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 2);
    lab.expire_sessions(0);
    assert_eq!(d.power_supplies(deadline(3000)).await.unwrap(), 2);
    let logins = lab
        .requests(0)
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(logins, 2);
    release(&d).await;
    assert_eq!(lab.open_sessions(0), 0);
}

#[tokio::test]
async fn a_dead_proxy_is_unreachable_and_named() {
    let lab = start(vec![cfg(Profile::Generic)]).await;
    // Held closed for the whole test, so no other test's server can appear there.
    let closed = fencegate_test_kit::ports::ClosedTcpPort::new();
    let proxy = format!("http://{}", closed.addr());
    let d = driver(&lab, 0, &[("proxy", &proxy)]);
    let e = d.status(deadline(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(e.detail.contains(&format!("through proxy {proxy}")), "{e}");
    // Never around the proxy: the BMC saw nothing.
    assert_eq!(lab.handshakes(0), 0);
    assert!(lab.requests(0).is_empty());
}
