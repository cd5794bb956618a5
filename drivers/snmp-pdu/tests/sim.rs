//! The driver against fencegate-bmcsim's simulated APC PDUs: fault handling and scale.

use fencegate_bmcsim::FaultProfile;
use fencegate_bmcsim::snmp::{PduConfig, PduLab, V3User};
use fencegate_bmcsim::{CommandOutcome, PowerCommand};
use fencegate_driver::{
    Action, DeviceSpec, DriverFactory, ErrorKind, IdentityFact, PowerDriver, PowerState,
    SecretString,
};
use fencegate_snmp_pdu::SnmpPduFactory;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn driver(addr: SocketAddr, outlets: &str, opts: &[(&str, &str)]) -> Arc<dyn PowerDriver> {
    SnmpPduFactory
        .build(&spec(addr, outlets, opts))
        .expect("spec")
}

/// A v2c device with the simulator's read-write community.
fn spec(addr: SocketAddr, outlets: &str, opts: &[(&str, &str)]) -> DeviceSpec {
    let mut s = DeviceSpec {
        name: "sim-pdu".into(),
        driver: "snmp".into(),
        address: addr.to_string(),
        path: Some(format!("/outlet/{outlets}")),
        ..Default::default()
    };
    s.secrets
        .insert("community".into(), SecretString::from("private"));
    s.options.insert("timeout_ms".into(), "200".into());
    for (k, v) in opts {
        s.options.insert((*k).into(), (*v).into());
    }
    s
}

fn in_secs(s: u64) -> Instant {
    Instant::now() + Duration::from_secs(s)
}

#[tokio::test]
async fn many_pdus_many_outlets() {
    let lab = PduLab::start(vec![PduConfig::new(48); 4]).await.unwrap();
    let all: Vec<String> = (1..=24).map(|n| n.to_string()).collect();
    let mut tasks = Vec::new();
    for p in 0..lab.len() {
        // Two devices per PDU: outlets 1-24 as one device, 25 and 26 as a dual-PSU host.
        for outlets in [all.join(","), "25,26".to_owned()] {
            let d = driver(lab.addr(p), &outlets, &[]);
            tasks.push(tokio::spawn(async move {
                d.set_power(Action::Off, in_secs(5)).await?;
                d.status(in_secs(5)).await
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), PowerState::Off);
    }
    for p in 0..lab.len() {
        for n in 1..=26 {
            assert!(!lab.outlet_on(p, n), "PDU {p} outlet {n} must be off");
        }
        for n in 27..=48 {
            assert!(lab.outlet_on(p, n), "PDU {p} outlet {n} must be untouched");
        }
        assert_eq!(lab.command_log(p).len(), 26);
    }
    // One outlet of the dual-PSU host is on again: the host is not off.
    lab.set_outlet(2, 26, true);
    let d = driver(lab.addr(2), "25,26", &[]);
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn stuck_relay_is_accepted_and_reads_on() {
    let lab = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    lab.set_faults(
        0,
        FaultProfile {
            stuck: true,
            ..Default::default()
        },
    );
    let d = driver(lab.addr(0), "3", &[]);
    d.set_power(Action::Off, in_secs(5)).await.unwrap();
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::On);
    let log = lab.command_log(0);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].record.command, PowerCommand::Off);
    assert_eq!(log[0].record.outcome, CommandOutcome::Ignored);
}

#[tokio::test]
async fn slow_agent_hits_the_deadline_not_later() {
    let lab = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    lab.set_faults(
        0,
        FaultProfile {
            reply_delay_ms: 10_000,
            ..Default::default()
        },
    );
    // One attempt's wait alone (5 s) is far past the deadline: only the deadline can end
    // the call before it.
    let d = driver(
        lab.addr(0),
        "1",
        &[("timeout_ms", "5000"), ("retries", "5")],
    );
    let t0 = Instant::now();
    let e = d.status(t0 + Duration::from_millis(700)).await.unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(
        took >= Duration::from_millis(650),
        "gave up early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(700 + 2000),
        "overran the deadline: {took:?}"
    );
}

#[tokio::test]
async fn lossy_link_is_survived_by_retries() {
    let lab = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    lab.set_faults(
        0,
        FaultProfile {
            drop_rate: 0.3,
            drop_seed: 7,
            ..Default::default()
        },
    );
    let d = driver(
        lab.addr(0),
        "1,2,3,4",
        &[("timeout_ms", "100"), ("retries", "10")],
    );
    d.set_power(Action::Off, in_secs(10)).await.unwrap();
    assert_eq!(d.status(in_secs(10)).await.unwrap(), PowerState::Off);
    for n in 1..=4 {
        assert!(!lab.outlet_on(0, n));
    }
}

#[tokio::test]
async fn dead_agent_is_unreachable_after_bounded_retries() {
    let lab = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    lab.set_faults(
        0,
        FaultProfile {
            dead: true,
            ..Default::default()
        },
    );
    let d = driver(lab.addr(0), "1", &[("timeout_ms", "100"), ("retries", "2")]);
    let t0 = Instant::now();
    let deadline = Duration::from_secs(10);
    let e = d.set_power(Action::Off, t0 + deadline).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(e.detail.contains("3 attempt(s)"), "{e}");
    // Three 100 ms attempts and the diagnosis: given up long before the deadline.
    assert!(
        t0.elapsed() < deadline / 2,
        "retries must end before the deadline: {:?}",
        t0.elapsed()
    );
    assert!(lab.outlet_on(0, 1));
}

#[tokio::test]
async fn wrong_community_is_auth_because_the_simulator_answers_discovery() {
    let lab = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    let mut s = spec(lab.addr(0), "1", &[("timeout_ms", "100"), ("retries", "1")]);
    s.secrets
        .insert("community".into(), SecretString::from("not-the-community"));
    let d = SnmpPduFactory.build(&s).unwrap();
    let e = d.set_power(Action::Off, in_secs(5)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.detail.contains("community is wrong"), "{e}");
    assert!(lab.outlet_on(0, 1));
}

#[tokio::test]
async fn an_unknown_v3_user_is_auth() {
    let lab = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    let mut s = spec(lab.addr(0), "1", &[("version", "3")]);
    s.secrets.clear();
    s.user = Some("nobody".into());
    s.secrets
        .insert("auth_password".into(), SecretString::from("authpass123"));
    s.secrets
        .insert("priv_password".into(), SecretString::from("privpass123"));
    let d = SnmpPduFactory.build(&s).unwrap();
    let e = d.status(in_secs(5)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.detail.contains("unknown user"), "{e}");
}

/// A v3 (authNoPriv, SHA-256) device for the simulator's user.
fn v3_spec(addr: SocketAddr, outlets: &str, password: &str) -> DeviceSpec {
    let mut s = spec(
        addr,
        outlets,
        &[
            ("version", "3"),
            ("auth_protocol", "sha256"),
            ("security_level", "authNoPriv"),
        ],
    );
    s.secrets.clear();
    s.user = Some("fenceuser".into());
    s.secrets
        .insert("auth_password".into(), SecretString::from(password));
    s
}

#[tokio::test]
async fn v3_identity_is_the_engine_id_the_simulator_proved() {
    let mut cfg = PduConfig::new(8);
    cfg.engine_id = Some(b"\x80\x00\x01\x3e\x04pdu-rack7".to_vec());
    cfg.v3_users = vec![V3User::read_write("fenceuser", "authpass256")];
    let lab = PduLab::start(vec![cfg]).await.unwrap();
    let d = SnmpPduFactory
        .build(&v3_spec(lab.addr(0), "2", "authpass256"))
        .unwrap();
    assert!(d.capabilities().authenticated_identity);
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::On);
    let ids = d.identity();
    assert!(
        ids.contains(&IdentityFact::authenticated(
            "snmp-engine-id",
            "8000013e047064752d7261636b37"
        )),
        "{ids:?}"
    );
    assert!(
        ids.contains(&IdentityFact::authenticated("snmp-sysname", "pdu0")),
        "{ids:?}"
    );
    d.set_power(Action::Off, in_secs(5)).await.unwrap();
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::Off);
    assert!(!lab.outlet_on(0, 2));

    // A wrong password: the agent answers only with an unauthenticated report, which
    // proves nothing about the engine.
    let d = SnmpPduFactory
        .build(&v3_spec(lab.addr(0), "2", "wrongpass256"))
        .unwrap();
    let e = d.status(in_secs(5)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        d.identity().iter().all(|f| !f.authenticated),
        "{:?}",
        d.identity()
    );
}

#[tokio::test]
async fn off_delay_reads_on_until_the_relay_opens() {
    let lab = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    lab.set_faults(
        0,
        FaultProfile {
            off_delay_ms: 400,
            ..Default::default()
        },
    );
    let d = driver(lab.addr(0), "5", &[]);
    d.set_power(Action::Off, in_secs(5)).await.unwrap();
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::On);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::Off);
}

#[tokio::test]
async fn v1_read_only_and_missing_outlet_against_the_simulator() {
    let lab = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    let mut s = DeviceSpec {
        name: "sim-pdu".into(),
        driver: "snmp".into(),
        address: lab.addr(0).to_string(),
        path: Some("/outlet/2".into()),
        ..Default::default()
    };
    s.options.insert("version".into(), "1".into());
    s.secrets
        .insert("community".into(), SecretString::from("public"));
    let d = SnmpPduFactory.build(&s).unwrap();
    let e = d.set_power(Action::Off, in_secs(5)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.detail.contains("read-only"), "{e}");
    let d = driver(lab.addr(0), "9", &[]);
    let e = d.status(in_secs(5)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("outlet 9"), "{e}");
    assert!(lab.outlet_on(0, 2));
}

#[tokio::test]
async fn graceful_off_is_unsupported_and_cycle_comes_back() {
    let lab = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    let d = driver(lab.addr(0), "6", &[]);
    let e = d
        .set_power(Action::GracefulOff, in_secs(5))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    d.set_power(Action::Cycle, in_secs(5)).await.unwrap();
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::Off);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::On);
    assert_eq!(d.endpoint(), format!("snmp://{}", lab.addr(0)));
}

#[tokio::test]
async fn a_kept_session_survives_an_outage_of_the_agent() {
    let lab = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    let d = driver(lab.addr(0), "2", &[("timeout_ms", "100"), ("retries", "1")]);
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::On);
    lab.set_faults(
        0,
        FaultProfile {
            dead: true,
            ..Default::default()
        },
    );
    assert_eq!(
        d.status(in_secs(5)).await.unwrap_err().kind,
        ErrorKind::Unreachable
    );
    lab.set_faults(0, FaultProfile::default());
    d.set_power(Action::Off, in_secs(5)).await.unwrap();
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::Off);
    d.release(in_secs(1)).await.unwrap();
    assert_eq!(d.status(in_secs(5)).await.unwrap(), PowerState::Off);
}
