//! The driver against the in-process simulator (`fencegate-bmcsim`), suites 3 and 17.

use fencegate_bmcsim::FaultProfile;
use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use fencegate_bmcsim::{CommandOutcome, PowerCommand};
use fencegate_driver::{
    Action, Channel, DeviceSpec, DriverFactory, ErrorKind, IdentityFact, PowerDriver, PowerState,
    RestorePolicy, SecretString,
};
use fencegate_ipmi::IpmiFactory;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn driver(
    addr: std::net::SocketAddr,
    user: &str,
    password: &str,
    opts: &[(&str, &str)],
) -> Arc<dyn PowerDriver> {
    let mut spec = DeviceSpec {
        name: "sim".into(),
        driver: "ipmi".into(),
        address: addr.to_string(),
        user: Some(user.into()),
        ..Default::default()
    };
    spec.secrets
        .insert("password".into(), SecretString::from(password));
    for (k, v) in opts {
        if *k == "kg" {
            spec.secrets.insert("kg".into(), SecretString::from(*v));
        } else {
            spec.options.insert((*k).into(), (*v).into());
        }
    }
    IpmiFactory.build(&spec).expect("valid spec")
}

fn soon(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

async fn lab(cfg: BmcConfig) -> IpmiLab {
    IpmiLab::start(vec![cfg]).await.expect("lab starts")
}

async fn power_cycle_through(suite: &str) {
    let lab = lab(BmcConfig::new("admin", "password")).await;
    let d = driver(lab.addr(0), "admin", "password", &[("cipher", suite)]);
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
    let receipt = d.set_power(Action::Off, soon(2000)).await.unwrap();
    assert!(receipt.detail.contains("PowerDown"), "{receipt:?}");
    assert!(!lab.power_on(0), "emulator must be off");
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::Off);
    d.set_power(Action::On, soon(2000)).await.unwrap();
    assert!(lab.power_on(0));
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
    d.set_power(Action::Cycle, soon(2000)).await.unwrap();
    assert!(!lab.power_on(0), "a cycle starts with the power off");
    let log: Vec<PowerCommand> = lab.command_log(0).iter().map(|r| r.command).collect();
    assert_eq!(
        log,
        [PowerCommand::Off, PowerCommand::On, PowerCommand::Cycle]
    );
    // One session served all these calls and stays for the next one, until released.
    assert_eq!(lab.open_sessions(0), 1);
    d.release(soon(2000)).await.unwrap();
    assert_eq!(lab.open_sessions(0), 0, "release closes the kept session");
    // The simulator's default GUID for BMC 0: "fencegate-bm" then the index (0), proved in
    // RAKP 2.
    assert_eq!(
        d.identity(),
        [IdentityFact::authenticated(
            "ipmi-guid",
            "66656e6365676174652d626d00000000"
        )]
    );
}

/// A kept session must never serve a stale answer: every reading through it reflects the
/// BMC's state at that moment.
#[tokio::test]
async fn readings_through_a_kept_session_are_fresh() {
    let lab = lab(BmcConfig::new("admin", "password")).await;
    let d = driver(lab.addr(0), "admin", "password", &[("cipher", "17")]);
    for on in [true, false, false, true, false] {
        lab.set_power(0, on);
        let expected = if on { PowerState::On } else { PowerState::Off };
        assert_eq!(d.status(soon(2000)).await.unwrap(), expected);
        assert_eq!(lab.open_sessions(0), 1, "one session, reused");
    }
    drop(d);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        lab.open_sessions(0),
        0,
        "dropping the driver closes its session"
    );
}

#[tokio::test]
async fn suite17_status_off_on_cycle() {
    power_cycle_through("17").await;
}

#[tokio::test]
async fn suite3_status_off_on_cycle() {
    power_cycle_through("3").await;
}

#[tokio::test]
async fn default_order_uses_17_and_falls_back_to_3() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.cipher_suites = vec![3];
    let lab = lab(cfg).await;
    let d = driver(lab.addr(0), "admin", "password", &[]);
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
    // Suite 17 only configured: the BMC lists only 3, so nothing matches.
    let d17 = driver(lab.addr(0), "admin", "password", &[("cipher", "17")]);
    let e = d17.status(soon(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
}

#[tokio::test]
async fn wrong_password_is_auth_at_once() {
    for suite in ["3", "17"] {
        let lab = lab(BmcConfig::new("admin", "password")).await;
        let d = driver(lab.addr(0), "admin", "pa55word", &[("cipher", suite)]);
        let t0 = Instant::now();
        let e = d.status(soon(5000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "{e}");
        // Two handshakes (the refusal is confirmed), far below the 5 s deadline; the bound
        // leaves room for a loaded CI machine.
        assert!(
            t0.elapsed() < Duration::from_millis(2500),
            "{:?}",
            t0.elapsed()
        );
        assert!(e.detail.contains(&lab.addr(0).to_string()), "{e}");
        assert!(!e.detail.contains("pa55word"));
        let u = driver(lab.addr(0), "nobody", "password", &[("cipher", suite)]);
        let e = u.status(soon(5000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "{e}");
        assert!(e.detail.contains("unknown user"), "{e}");
        assert_eq!(
            lab.open_sessions(0),
            0,
            "aborted handshakes leave nothing behind"
        );
    }
}

#[tokio::test]
async fn empty_user_name() {
    let lab = lab(BmcConfig::new("", "anon-pw")).await;
    let d = driver(lab.addr(0), "", "anon-pw", &[]);
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn kg_must_match() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.kg = Some(b"0123456789abcdefghij".to_vec());
    let lab = lab(cfg).await;
    for suite in ["3", "17"] {
        let good = driver(
            lab.addr(0),
            "admin",
            "password",
            &[("cipher", suite), ("kg", "0123456789abcdefghij")],
        );
        good.set_power(Action::Off, soon(2000)).await.unwrap();
        assert_eq!(good.status(soon(2000)).await.unwrap(), PowerState::Off);
        let hex = driver(
            lab.addr(0),
            "admin",
            "password",
            &[
                ("cipher", suite),
                (
                    "kg",
                    "0x30313233343536373839616263646566676869 6a"
                        .replace(' ', "")
                        .as_str(),
                ),
            ],
        );
        assert_eq!(hex.status(soon(2000)).await.unwrap(), PowerState::Off);
        let missing = driver(lab.addr(0), "admin", "password", &[("cipher", suite)]);
        let e = missing.status(soon(2000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "{e}");
        assert!(e.detail.contains("Kg"), "{e}");
        lab.set_power(0, true);
    }
}

#[tokio::test]
async fn stuck_relay_keeps_power_on() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.faults.stuck = true;
    let lab = lab(cfg).await;
    let d = driver(lab.addr(0), "admin", "password", &[]);
    d.set_power(Action::Off, soon(2000)).await.unwrap();
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
    assert!(lab.power_on(0));
    assert_eq!(lab.command_log(0)[0].outcome, CommandOutcome::Ignored);
}

#[tokio::test]
async fn off_delay_is_visible_only_after_the_delay() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.faults.off_delay_ms = 300;
    let lab = lab(cfg).await;
    let d = driver(lab.addr(0), "admin", "password", &[]);
    d.set_power(Action::Off, soon(2000)).await.unwrap();
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::Off);
}

#[tokio::test]
async fn thirty_percent_loss_still_succeeds() {
    for (suite, seed) in [("3", 7u64), ("17", 11)] {
        let mut cfg = BmcConfig::new("admin", "password");
        cfg.faults.drop_rate = 0.3;
        cfg.faults.drop_seed = seed;
        let lab = lab(cfg).await;
        let d = driver(
            lab.addr(0),
            "admin",
            "password",
            &[
                ("cipher", suite),
                ("retransmit_ms", "15"),
                ("retries", "20"),
            ],
        );
        for _ in 0..2 {
            d.set_power(Action::Off, soon(8000)).await.unwrap();
            assert_eq!(d.status(soon(8000)).await.unwrap(), PowerState::Off);
            assert!(!lab.power_on(0));
            d.set_power(Action::On, soon(8000)).await.unwrap();
            assert!(lab.power_on(0));
        }
    }
}

#[tokio::test]
async fn session_limit_is_busy() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.faults.max_sessions = Some(0);
    let lab = lab(cfg).await;
    let d = driver(lab.addr(0), "admin", "password", &[]);
    let e = d.status(soon(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Busy, "{e}");
    assert!(e.detail.contains("insufficient resources"), "{e}");
}

#[tokio::test]
async fn dead_bmc_is_unreachable_within_the_deadline() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.faults.dead = true;
    let lab = lab(cfg).await;
    let d = driver(lab.addr(0), "admin", "password", &[("retransmit_ms", "50")]);
    let t0 = Instant::now();
    let e = d.status(soon(700)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    // By the 700 ms deadline, with room for a loaded machine (undeadlined retries would run
    // for many seconds).
    assert!(
        t0.elapsed() < Duration::from_millis(1700),
        "{:?}",
        t0.elapsed()
    );
    // A deadline shorter than the retries: returns by the deadline.
    let slow = driver(lab.addr(0), "admin", "password", &[]);
    let t0 = Instant::now();
    let e = slow.set_power(Action::Off, soon(300)).await.unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Timeout),
        "{e}"
    );
    assert!(
        t0.elapsed() < Duration::from_millis(1300),
        "{:?}",
        t0.elapsed()
    );
    assert!(lab.power_on(0));
}

#[tokio::test]
async fn goes_dead_mid_conversation_is_timeout() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.faults.reply_delay_ms = 150;
    let lab = Arc::new(lab(cfg).await);
    let d = driver(
        lab.addr(0),
        "admin",
        "password",
        &[("retransmit_ms", "400")],
    );
    let lab2 = Arc::clone(&lab);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        lab2.set_faults(
            0,
            FaultProfile {
                dead: true,
                ..Default::default()
            },
        );
    });
    let e = d.status(soon(1500)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
}

#[tokio::test]
async fn slow_replies_still_work() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.faults.reply_delay_ms = 30;
    let lab = lab(cfg).await;
    let d = driver(lab.addr(0), "admin", "password", &[]);
    assert_eq!(d.status(soon(3000)).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn operator_privilege_is_enough_and_user_is_not() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.max_privilege = fencegate_ipmi_codec::commands::Privilege::Operator;
    let lab = lab(cfg).await;
    let op = driver(lab.addr(0), "admin", "password", &[]);
    op.set_power(Action::Off, soon(2000)).await.unwrap();
    let admin = driver(
        lab.addr(0),
        "admin",
        "password",
        &[("privilege", "administrator")],
    );
    let e = admin.status(soon(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
}

#[tokio::test]
async fn many_bmcs_in_parallel() {
    let n = 200;
    let lab = IpmiLab::start(vec![BmcConfig::new("admin", "password"); n])
        .await
        .unwrap();
    let drivers: Vec<_> = (0..n)
        .map(|i| driver(lab.addr(i), "admin", "password", &[]))
        .collect();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for d in &drivers {
        let d = Arc::clone(d);
        tasks.push(tokio::spawn(async move {
            d.set_power(Action::Off, soon(10_000)).await?;
            d.status(soon(10_000)).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), PowerState::Off);
    }
    eprintln!("{n} BMCs off+verify in {:?}", t0.elapsed());
    assert!((0..n).all(|i| !lab.power_on(i)));
}

#[tokio::test]
async fn closed_port_is_unreachable_at_once() {
    let port: std::net::SocketAddr = (
        std::net::Ipv4Addr::LOCALHOST,
        fencegate_test_kit::ports::unused_udp_port(),
    )
        .into();
    let d = driver(port, "admin", "password", &[]);
    let t0 = Instant::now();
    let e = d.status(soon(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    // "At once": well before the 3 s deadline, with room for a loaded machine.
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn past_deadline_is_timeout_without_traffic() {
    let lab = lab(BmcConfig::new("admin", "password")).await;
    let d = driver(lab.addr(0), "admin", "password", &[]);
    let e = d
        .set_power(Action::Off, Instant::now() - Duration::from_millis(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(lab.command_log(0).is_empty());
}

/// A UDP relay between the driver and a simulated BMC that corrupts one byte of every
/// authenticated reply: the driver must drop them all and never report a state.
#[tokio::test]
async fn tampered_replies_are_never_trusted() {
    use tokio::net::UdpSocket;
    let lab = lab(BmcConfig::new("admin", "password")).await;
    let bmc = lab.addr(0);
    let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    back.connect(bmc).await.unwrap();
    let front_addr = front.local_addr().unwrap();
    let relay = tokio::spawn(async move {
        let mut client = None;
        let mut buf = [0u8; 2048];
        let mut buf2 = [0u8; 2048];
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut buf) => {
                    client = Some(from);
                    let _ = back.send(&buf[..n]).await;
                }
                Ok(n) = back.recv(&mut buf2) => {
                    let pkt = &mut buf2[..n];
                    // RMCP+ packet with the authenticated flag: flip a ciphertext byte.
                    if pkt.len() > 20 && pkt[4] == 0x06 && pkt[5] & 0x40 != 0 {
                        pkt[20] ^= 0x01;
                    }
                    if let Some(c) = client {
                        let _ = front.send_to(pkt, c).await;
                    }
                }
            }
        }
    });
    let d = driver(
        front_addr,
        "admin",
        "password",
        &[("retransmit_ms", "30"), ("retries", "2")],
    );
    let e = d.status(soon(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.detail.contains("integrity"), "{e}");
    // The handshake itself passed untouched, so the GUID proved in RAKP 2 is known; the
    // forged in-session replies added nothing.
    assert_eq!(
        d.identity(),
        [IdentityFact::authenticated(
            "ipmi-guid",
            "66656e6365676174652d626d00000000"
        )]
    );
    relay.abort();
}

/// A call cancelled from outside (the engine enforcing its deadline) after the session is
/// up still releases the BMC's session slot.
#[tokio::test]
async fn cancelled_call_still_closes_its_session() {
    let mut cfg = BmcConfig::new("admin", "password");
    // Four round trips of 200 ms bring the session up at ~800 ms; its first request is
    // answered at ~1000 ms. Cancel in between.
    cfg.faults.reply_delay_ms = 200;
    let lab = lab(cfg).await;
    let d = driver(
        lab.addr(0),
        "admin",
        "password",
        &[("cipher", "17"), ("retransmit_ms", "2000")],
    );
    let call = tokio::time::timeout(Duration::from_millis(900), d.status(soon(5000))).await;
    assert!(call.is_err(), "the call was cancelled");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(lab.open_sessions(0), 0, "Close Session was sent on drop");
}

/// kvm01's BMC GUID and its sibling's, in wire order, as the tests below configure them.
const KVM01_GUID: [u8; 16] = *b"kvm01-bmc-guid!!";
const SIBLING_GUID: [u8; 16] = *b"kvm02-bmc-guid!!";

fn hex(guid: &[u8; 16]) -> String {
    guid.iter().map(|b| format!("{b:02x}")).collect()
}

fn with_guid(guid: [u8; 16]) -> BmcConfig {
    let mut cfg = BmcConfig::new("admin", "fleet-wide-pw");
    cfg.guid = Some(guid);
    cfg
}

/// A UDP forwarder on 127.0.0.1, written for these tests: it passes every datagram from its
/// client to whatever address `backend` holds at that moment (so a test can switch boxes
/// mid-operation) and every reply back, after `tamper` had its way with it.
async fn relay(
    backend: Arc<std::sync::Mutex<std::net::SocketAddr>>,
    tamper: fn(&mut [u8]),
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::net::UdpSocket;
    let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = front.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut client = None;
        let mut up = [0u8; 2048];
        let mut down = [0u8; 2048];
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut up) => {
                    client = Some(from);
                    let to = *backend.lock().unwrap();
                    let _ = back.send_to(&up[..n], to).await;
                }
                Ok((n, _)) = back.recv_from(&mut down) => {
                    let pkt = &mut down[..n];
                    tamper(pkt);
                    if let Some(c) = client {
                        let _ = front.send_to(pkt, c).await;
                    }
                }
            }
        }
    });
    (addr, task)
}

fn untouched(_: &mut [u8]) {}

/// The offset of GUIDc in an RMCP+ RAKP 2 datagram: RMCP header (4), session header (12),
/// then tag, status, reserved (4), console session id (4) and Rc (16).
const RAKP2_GUID_AT: usize = 4 + 12 + 4 + 4 + 16;
const PAYLOAD_RAKP2: u8 = 0x13;

fn is_rakp2(pkt: &[u8]) -> bool {
    pkt.len() >= RAKP2_GUID_AT + 16 && pkt[4] == 0x06 && pkt[5] & 0x3F == PAYLOAD_RAKP2
}

/// Puts kvm01's GUID into every RAKP 2 passing by, as a relay posing as kvm01 would.
fn forge_kvm01_guid(pkt: &mut [u8]) {
    if is_rakp2(pkt) {
        pkt[RAKP2_GUID_AT..RAKP2_GUID_AT + 16].copy_from_slice(&KVM01_GUID);
    }
}

/// The GUID a BMC proves in RAKP 2 is known, as an authenticated fact, after the first
/// status call and before any command.
#[tokio::test]
async fn the_rakp2_guid_is_an_authenticated_fact_after_the_first_status() {
    let lab = lab(with_guid(KVM01_GUID)).await;
    for suite in ["3", "17"] {
        let d = driver(lab.addr(0), "admin", "fleet-wide-pw", &[("cipher", suite)]);
        let caps = d.capabilities();
        assert_eq!(caps.channel, Channel::Bmc);
        assert!(caps.authenticated_identity);
        assert!(d.identity().is_empty(), "nothing known before any call");
        assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
        assert_eq!(
            d.identity(),
            [IdentityFact::authenticated("ipmi-guid", hex(&KVM01_GUID))],
            "suite {suite}"
        );
        assert!(lab.command_log(0).is_empty());
        d.release(soon(2000)).await.unwrap();
    }
}

/// The attack: a relay at kvm01's BMC address forwards to a sibling BMC with the same
/// fleet-wide password. The handshake succeeds, so the driver must report the GUID of the
/// box that really answered, for the engine to tell it from kvm01's.
#[tokio::test]
async fn a_relay_to_a_sibling_bmc_shows_the_siblings_guid() {
    let lab = IpmiLab::start(vec![with_guid(KVM01_GUID), with_guid(SIBLING_GUID)])
        .await
        .unwrap();
    let backend = Arc::new(std::sync::Mutex::new(lab.addr(1)));
    let (front, task) = relay(backend, untouched).await;
    let d = driver(front, "admin", "fleet-wide-pw", &[]);
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
    let facts = d.identity();
    assert_eq!(
        facts,
        [IdentityFact::authenticated("ipmi-guid", hex(&SIBLING_GUID))]
    );
    assert!(!facts.iter().any(|f| f.value == hex(&KVM01_GUID)));
    // The real kvm01, asked directly, proves its own GUID.
    let direct = driver(lab.addr(0), "admin", "fleet-wide-pw", &[]);
    direct.status(soon(2000)).await.unwrap();
    assert_eq!(
        direct.identity(),
        [IdentityFact::authenticated("ipmi-guid", hex(&KVM01_GUID))]
    );
    task.abort();
}

/// A relay that writes kvm01's GUID into the sibling's RAKP 2 breaks the HMAC over it: the
/// handshake fails as `Auth`, no identity is learned and no command reaches either box.
#[tokio::test]
async fn a_forged_guid_in_rakp2_never_becomes_the_identity() {
    let lab = IpmiLab::start(vec![with_guid(KVM01_GUID), with_guid(SIBLING_GUID)])
        .await
        .unwrap();
    let backend = Arc::new(std::sync::Mutex::new(lab.addr(1)));
    let (front, task) = relay(backend, forge_kvm01_guid).await;
    for suite in ["3", "17"] {
        let d = driver(front, "admin", "fleet-wide-pw", &[("cipher", suite)]);
        let e = d.set_power(Action::Off, soon(2000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "{e}");
        assert!(d.identity().is_empty(), "suite {suite}: {:?}", d.identity());
    }
    assert!(lab.command_log(0).is_empty() && lab.command_log(1).is_empty());
    assert!(lab.power_on(0) && lab.power_on(1));
    task.abort();
}

/// The engine compares the identity after the first call and before the command. A relay
/// that switches to another box in between (killing the kept session, so the driver opens
/// a new one) must not get the command through: within one operation the driver refuses a
/// session whose GUID differs from the one the operation started with.
#[tokio::test]
async fn a_box_switched_in_mid_operation_gets_no_command() {
    let lab = IpmiLab::start(vec![with_guid(KVM01_GUID), with_guid(SIBLING_GUID)])
        .await
        .unwrap();
    let backend = Arc::new(std::sync::Mutex::new(lab.addr(0)));
    let (front, task) = relay(Arc::clone(&backend), untouched).await;
    let d = driver(
        front,
        "admin",
        "fleet-wide-pw",
        &[("retransmit_ms", "30"), ("retries", "2")],
    );
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
    assert_eq!(
        d.identity(),
        [IdentityFact::authenticated("ipmi-guid", hex(&KVM01_GUID))]
    );
    *backend.lock().unwrap() = lab.addr(1);
    let e = d.set_power(Action::Off, soon(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.detail.contains(&hex(&SIBLING_GUID)), "{e}");
    assert!(
        lab.command_log(1).is_empty(),
        "no command reached the sibling"
    );
    assert!(lab.power_on(1));
    // Both boxes seen in this operation are reported, so the proof shows the switch.
    let facts = d.identity();
    assert!(facts.contains(&IdentityFact::authenticated("ipmi-guid", hex(&KVM01_GUID))));
    assert!(facts.contains(&IdentityFact::authenticated(
        "ipmi-guid",
        hex(&SIBLING_GUID)
    )));
    // A new operation starts from the box that answers now.
    d.release(soon(2000)).await.unwrap();
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
    assert_eq!(
        d.identity(),
        [IdentityFact::authenticated("ipmi-guid", hex(&SIBLING_GUID))]
    );
    task.abort();
}

/// The restore policy is read from Get Chassis Status and set with Set Power Restore Policy,
/// in the session the operation already holds (no handshake of its own).
#[tokio::test]
async fn restore_policy_read_and_set_in_the_operations_session() {
    let lab = lab(BmcConfig::new("admin", "password")).await;
    for suite in ["3", "17"] {
        lab.set_restore_policy(0, Some(RestorePolicy::AlwaysOn));
        let d = driver(lab.addr(0), "admin", "password", &[("cipher", suite)]);
        assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
        assert_eq!(
            d.restore_policy(soon(2000)).await.unwrap(),
            RestorePolicy::AlwaysOn
        );
        for policy in [
            RestorePolicy::AlwaysOff,
            RestorePolicy::LastState,
            RestorePolicy::AlwaysOn,
            RestorePolicy::AlwaysOff,
        ] {
            d.set_restore_policy(policy, soon(2000)).await.unwrap();
            assert_eq!(lab.restore_policy(0), Some(policy), "the BMC stored it");
            assert_eq!(d.restore_policy(soon(2000)).await.unwrap(), policy);
        }
        assert_eq!(lab.open_sessions(0), 1, "one session served every call");
        assert!(lab.command_log(0).is_empty(), "no power command was sent");
        assert!(lab.power_on(0));
        d.release(soon(2000)).await.unwrap();
        assert_eq!(lab.open_sessions(0), 0);
    }
}

/// A BMC that reports the policy as "unknown" (11b) gets no guess: a protocol error that
/// says so.
#[tokio::test]
async fn an_unknown_restore_policy_is_a_protocol_error() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.restore_policy = None;
    let lab = lab(cfg).await;
    let d = driver(lab.addr(0), "admin", "password", &[]);
    let e = d.restore_policy(soon(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(
        e.detail.contains("unknown") && e.detail.contains("11b"),
        "{e}"
    );
    assert!(e.detail.contains(&lab.addr(0).to_string()), "{e}");
    // Setting it is still possible, and then it reads back.
    d.set_restore_policy(RestorePolicy::AlwaysOff, soon(2000))
        .await
        .unwrap();
    assert_eq!(
        d.restore_policy(soon(2000)).await.unwrap(),
        RestorePolicy::AlwaysOff
    );
}

/// A host whose power comes back after the off (a BMC that cycles, a PDU "reboot"): the
/// driver reports `Off` while it is off and `On` once it is back, never a remembered `Off`.
#[tokio::test]
async fn power_that_comes_back_reads_on_again() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.faults.power_returns_after_ms = Some(400);
    let lab = lab(cfg).await;
    let d = driver(lab.addr(0), "admin", "password", &[]);
    d.set_power(Action::Off, soon(2000)).await.unwrap();
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::Off);
    assert!(!lab.power_on(0));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(d.status(soon(2000)).await.unwrap(), PowerState::On);
    assert!(lab.power_on(0));
    let log: Vec<PowerCommand> = lab.command_log(0).iter().map(|r| r.command).collect();
    assert_eq!(log, [PowerCommand::Off], "nobody asked for the power back");
}

#[tokio::test]
async fn power_supplies_are_the_supply_sensors_of_the_sdr() {
    for suite in ["17", "3"] {
        let lab = lab(BmcConfig::new("admin", "password")).await;
        let d = driver(lab.addr(0), "admin", "password", &[("cipher", suite)]);
        // Two status sensors; the redundancy sensor describes the pair and is not counted.
        assert_eq!(d.power_supplies(soon(3000)).await.unwrap(), 2, "{suite}");
        lab.set_power_supplies(0, 4);
        assert_eq!(d.power_supplies(soon(3000)).await.unwrap(), 4, "{suite}");
        lab.set_power_supplies(0, 1);
        assert_eq!(d.power_supplies(soon(3000)).await.unwrap(), 1, "{suite}");
        // The count is read in the session a status would use, and proves the GUID too.
        assert_eq!(lab.open_sessions(0), 1);
        assert_eq!(d.identity().len(), 1);
        assert!(lab.command_log(0).is_empty());
        d.release(soon(2000)).await.unwrap();
        assert_eq!(lab.open_sessions(0), 0);
    }
}

#[tokio::test]
async fn an_sdr_without_supply_sensors_is_unsupported() {
    let lab = lab(BmcConfig::new("admin", "password")).await;
    let d = driver(lab.addr(0), "admin", "password", &[]);
    // Only the locator, a temperature and the redundancy sensor: nothing to count.
    lab.set_power_supplies(0, 0);
    let e = d.power_supplies(soon(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("power supply sensor"), "{e}");
    assert!(e.detail.contains(&lab.addr(0).to_string()), "{e}");
    lab.set_sdr(0, Vec::new());
    let e = d.power_supplies(soon(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("SDR repository is empty"), "{e}");
    d.release(soon(2000)).await.unwrap();
    assert_eq!(lab.open_sessions(0), 0);
}

#[tokio::test]
async fn a_malformed_sdr_is_a_protocol_error() {
    use fencegate_ipmi_codec::commands::{
        ENTITY_POWER_SUPPLY, READING_TYPE_SENSOR_SPECIFIC, SENSOR_TYPE_POWER_SUPPLY,
        mc_locator_record, sensor_record,
    };
    let psu = |id: u16, n: u8| {
        sensor_record(
            id,
            true,
            0x30 + n,
            (ENTITY_POWER_SUPPLY, n),
            SENSOR_TYPE_POWER_SUPPLY,
            READING_TYPE_SENSOR_SPECIFIC,
            "PS Status",
        )
    };
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        // A sensor record too short to hold its sensor type.
        (
            "short sensor",
            vec![vec![1, 0, 0x51, 0x01, 3, 0x20, 0, 0x31]],
        ),
        // A record shorter than its own header.
        ("short header", vec![psu(1, 1), vec![2, 0, 0x51]]),
        // Two records with one id: the walk would go round for ever.
        (
            "loop",
            vec![psu(1, 1), psu(1, 2), mc_locator_record(3, "BMC")],
        ),
    ];
    let lab = lab(BmcConfig::new("admin", "password")).await;
    for (what, records) in cases {
        let d = driver(lab.addr(0), "admin", "password", &[]);
        lab.set_sdr(0, records);
        let e = d.power_supplies(soon(3000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol, "{what}: {e}");
        assert!(e.detail.contains("SDR"), "{what}: {e}");
        d.release(soon(2000)).await.unwrap();
    }
    lab.set_power_supplies(0, 2);
    let d = driver(lab.addr(0), "admin", "password", &[]);
    assert_eq!(d.power_supplies(soon(3000)).await.unwrap(), 2);
}

#[tokio::test]
async fn counting_supplies_survives_loss_and_ends_by_the_deadline() {
    let mut cfg = BmcConfig::new("admin", "password");
    cfg.faults.drop_rate = 0.3;
    cfg.faults.drop_seed = 7;
    cfg.power_supplies = 3;
    let lab = lab(cfg).await;
    let d = driver(lab.addr(0), "admin", "password", &[("retransmit_ms", "50")]);
    assert_eq!(d.power_supplies(soon(10_000)).await.unwrap(), 3);
    d.release(soon(2000)).await.unwrap();

    // Forty supplies behind 100 ms replies need seconds: the call ends at its deadline.
    lab.set_faults(
        0,
        FaultProfile {
            reply_delay_ms: 100,
            ..Default::default()
        },
    );
    // Every request is retransmitted before its answer comes: the walk still completes
    // (a reservation would be cancelled by its own retransmitted Reserve).
    assert_eq!(d.power_supplies(soon(10_000)).await.unwrap(), 3);
    lab.set_power_supplies(0, 40);
    let t0 = Instant::now();
    let e = d.power_supplies(soon(1500)).await.unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}
