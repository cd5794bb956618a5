//! A man in the middle on 127.0.0.1, between the driver and a simulated BMC, forges or
//! corrupts single unauthenticated datagrams. Everything before RAKP 2 verifies (and every
//! status code of the handshake) is unauthenticated: whoever sits on the path can write it.
//! Failing safe means never acting on such data, but a single forged datagram must not end a
//! fence either: the driver confirms every unauthenticated refusal with a fresh handshake
//! (or a fresh request) before it counts, and never remembers a cipher-suite downgrade
//! beyond one operation.

use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use fencegate_driver::{
    Action, DeviceSpec, DriverFactory, ErrorKind, IdentityFact, PowerDriver, PowerState,
    SecretString,
};
use fencegate_ipmi::IpmiFactory;
use fencegate_ipmi_codec::commands::{
    self, AuthCapabilities, CMD_GET_CHANNEL_AUTH_CAPS, CMD_GET_CHANNEL_CIPHER_SUITES, NETFN_APP,
};
use fencegate_ipmi_codec::rakp::{
    self, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3,
};
use fencegate_ipmi_codec::rakp::{Algorithms, Rakp4};
use fencegate_ipmi_codec::rmcp::{self, Packet, PayloadType};
use fencegate_ipmi_codec::{CipherSuite, message};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

const PASSWORD: &str = "fleet-wide-pw";
/// The GUID the simulated BMC proves in RAKP 2, and the one a forger would like to show.
const REAL_GUID: [u8; 16] = *b"kvm01-bmc-guid!!";
const FORGED_GUID: [u8; 16] = *b"forged-guid-0000";

fn hex(guid: &[u8; 16]) -> String {
    guid.iter().map(|b| format!("{b:02x}")).collect()
}

fn real_identity() -> Vec<IdentityFact> {
    vec![IdentityFact::authenticated("ipmi-guid", hex(&REAL_GUID))]
}

fn driver(addr: SocketAddr, password: &str, opts: &[(&str, &str)]) -> Arc<dyn PowerDriver> {
    let mut spec = DeviceSpec {
        name: "kvm01".into(),
        driver: "ipmi".into(),
        address: addr.to_string(),
        user: Some("admin".into()),
        ..Default::default()
    };
    spec.secrets
        .insert("password".into(), SecretString::from(password));
    for (k, v) in opts {
        spec.options.insert((*k).into(), (*v).into());
    }
    IpmiFactory.build(&spec).expect("valid spec")
}

fn soon(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

async fn lab() -> IpmiLab {
    let mut cfg = BmcConfig::new("admin", PASSWORD);
    cfg.guid = Some(REAL_GUID);
    IpmiLab::start(vec![cfg]).await.expect("lab starts")
}

/// Which way a datagram travels through the man in the middle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToBmc,
    ToDriver,
}

/// What the man in the middle does with one datagram: the datagrams it sends in its place,
/// in order, each with its direction. Passing it on is `vec![(dir, pkt.to_vec())]`.
type Rule = Box<dyn FnMut(Dir, &[u8]) -> Vec<(Dir, Vec<u8>)> + Send>;

/// A UDP man in the middle written for these tests: the driver talks to `addr`, the
/// man in the middle talks to the BMC, and `rule` decides what passes.
struct Mitm {
    addr: SocketAddr,
    rule: Arc<Mutex<Rule>>,
    task: JoinHandle<()>,
}

impl Mitm {
    async fn start(bmc: SocketAddr, rule: Rule) -> Mitm {
        let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        back.connect(bmc).await.unwrap();
        let addr = front.local_addr().unwrap();
        let rule = Arc::new(Mutex::new(rule));
        let shared = Arc::clone(&rule);
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            let mut up = [0u8; 2048];
            let mut down = [0u8; 2048];
            loop {
                let out = tokio::select! {
                    Ok((n, from)) = front.recv_from(&mut up) => {
                        client = Some(from);
                        (shared.lock().unwrap())(Dir::ToBmc, &up[..n])
                    }
                    Ok(n) = back.recv(&mut down) => {
                        (shared.lock().unwrap())(Dir::ToDriver, &down[..n])
                    }
                };
                for (dir, pkt) in out {
                    match (dir, client) {
                        (Dir::ToBmc, _) => {
                            let _ = back.send(&pkt).await;
                        }
                        (Dir::ToDriver, Some(c)) => {
                            let _ = front.send_to(&pkt, c).await;
                        }
                        (Dir::ToDriver, None) => {}
                    }
                }
            }
        });
        Mitm { addr, rule, task }
    }

    fn set_rule(&self, rule: Rule) {
        *self.rule.lock().unwrap() = rule;
    }
}

impl Drop for Mitm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pass(dir: Dir, pkt: &[u8]) -> Vec<(Dir, Vec<u8>)> {
    vec![(dir, pkt.to_vec())]
}

/// The payload of an unauthenticated RMCP+ message of the given type.
fn plain_payload(pkt: &[u8], want: PayloadType) -> Option<&[u8]> {
    match rmcp::decode(pkt) {
        Ok(Packet::Rmcpp(p)) if p.payload_type == want && !p.encrypted && p.session_id == 0 => {
            Some(p.payload)
        }
        _ => None,
    }
}

fn plain(kind: PayloadType, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    rmcp::encode_plain(&mut out, kind, 0, 0, payload).unwrap();
    out
}

/// The Open Session Request in `pkt`, if it is one.
fn open_session_request(pkt: &[u8]) -> Option<OpenSessionRequest> {
    OpenSessionRequest::decode(plain_payload(pkt, PayloadType::OpenSessionRequest)?).ok()
}

/// The sessionless request in `pkt` (header and data), if it is one of `cmd`.
fn sessionless_request(pkt: &[u8], cmd: u8) -> Option<message::RequestHeader> {
    match rmcp::decode(pkt) {
        Ok(Packet::Sessionless(m)) => match message::decode_request(m) {
            Ok((h, _)) if h.netfn == NETFN_APP && h.cmd == cmd => Some(h),
            _ => None,
        },
        _ => None,
    }
}

fn sessionless_reply(h: &message::RequestHeader, cc: u8, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    message::encode_response(&mut m, h, cc, data);
    let mut out = Vec::new();
    rmcp::encode_sessionless(&mut out, &m).unwrap();
    out
}

/// Rewrites one kind of datagram; `None` for the others.
type Corrupt = fn(&[u8]) -> Option<Vec<u8>>;

/// Replaces the GUID in a RAKP 2 (which breaks its HMAC); `None` for other datagrams.
fn corrupt_rakp2(pkt: &[u8]) -> Option<Vec<u8>> {
    let msg = Rakp2::decode(plain_payload(pkt, PayloadType::Rakp2)?).ok()?;
    let mut payload = Vec::new();
    Rakp2 {
        bmc_guid: FORGED_GUID,
        ..msg
    }
    .encode(&mut payload);
    Some(plain(PayloadType::Rakp2, &payload))
}

/// Flips a bit of RAKP 4's check value; `None` for other datagrams.
fn corrupt_rakp4(pkt: &[u8]) -> Option<Vec<u8>> {
    let msg = Rakp4::decode(plain_payload(pkt, PayloadType::Rakp4)?).ok()?;
    let mut icv = msg.icv.to_vec();
    *icv.first_mut()? ^= 0x01;
    let mut payload = Vec::new();
    Rakp4 { icv: &icv, ..msg }.encode(&mut payload);
    Some(plain(PayloadType::Rakp4, &payload))
}

/// A rule that replaces the first datagram `corrupt` changes (towards the driver) and
/// counts how many it changed.
fn corrupt_once(corrupt: fn(&[u8]) -> Option<Vec<u8>>, done: Arc<Mutex<u32>>) -> Rule {
    Box::new(move |dir, pkt| {
        let mut done = done.lock().unwrap();
        if dir == Dir::ToDriver
            && *done == 0
            && let Some(forged) = corrupt(pkt)
        {
            *done += 1;
            return vec![(dir, forged)];
        }
        pass(dir, pkt)
    })
}

/// A rule that records the cipher suite of every Open Session Request and passes all.
fn recording(suites: Arc<Mutex<Vec<Option<CipherSuite>>>>) -> Rule {
    Box::new(move |dir, pkt| {
        if let Some(req) = open_session_request(pkt) {
            suites.lock().unwrap().push(req.algorithms.suite());
        }
        pass(dir, pkt)
    })
}

/// The attack of the issue: one corrupted RAKP 2 (its HMAC no longer verifies) on the path.
/// It must be taken for noise: a fresh handshake gets through, and the identity is the one
/// the real BMC proved, never the forged GUID. The same for a corrupted RAKP 4.
#[tokio::test]
async fn one_corrupted_handshake_reply_does_not_end_the_call() {
    let cases: [(&str, Corrupt); 2] = [("RAKP 2", corrupt_rakp2), ("RAKP 4", corrupt_rakp4)];
    for (what, corrupt) in cases {
        for suite in ["3", "17"] {
            let lab = lab().await;
            let done = Arc::new(Mutex::new(0));
            let mitm = Mitm::start(lab.addr(0), corrupt_once(corrupt, Arc::clone(&done))).await;
            let d = driver(mitm.addr, PASSWORD, &[("cipher", suite)]);
            let case = format!("{what}, suite {suite}");
            let state = d.status(soon(3000)).await;
            assert_eq!(*done.lock().unwrap(), 1, "{case}: one reply was corrupted");
            assert_eq!(state, Ok(PowerState::On), "{case}");
            assert_eq!(d.identity(), real_identity(), "{case}");
            d.set_power(Action::Off, soon(3000)).await.unwrap();
            assert!(!lab.power_on(0), "{case}: the fence went through");
            d.release(soon(2000)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(
                lab.open_sessions(0),
                0,
                "{case}: the abandoned handshake was closed at the BMC"
            );
        }
    }
}

/// How a forger answers one request of the driver before the BMC does.
#[derive(Debug, Clone, Copy)]
enum Forgery {
    /// An Open Session Response with this RMCP+ status and console session id 0.
    OpenSession(u8),
    /// A RAKP 2 with this status and console session id 0.
    Rakp2(u8),
    /// A RAKP 4 with this status and console session id 0.
    Rakp4(u8),
    /// A Get Channel Authentication Capabilities reply with this completion code.
    AuthCapsCompletion(u8),
    /// A Get Channel Authentication Capabilities reply without IPMI 2.0.
    AuthCapsNoIpmi20,
    /// A Get Channel Cipher Suites reply listing suite 3 only.
    CipherSuitesOnly3,
}

impl Forgery {
    /// The forged reply to `pkt` (a request of the driver), if `pkt` is the request this
    /// forgery answers.
    fn answer(self, pkt: &[u8]) -> Option<Vec<u8>> {
        let mut payload = Vec::new();
        match self {
            Forgery::OpenSession(status) => {
                let req = open_session_request(pkt)?;
                OpenSessionResponse {
                    tag: req.tag,
                    status,
                    max_privilege: 0,
                    console_sid: 0,
                    bmc_sid: 0,
                    algorithms: None,
                }
                .encode(&mut payload);
                Some(plain(PayloadType::OpenSessionResponse, &payload))
            }
            Forgery::Rakp2(status) => {
                let req = Rakp1::decode(plain_payload(pkt, PayloadType::Rakp1)?).ok()?;
                Rakp2 {
                    tag: req.tag,
                    status,
                    console_sid: 0,
                    bmc_random: [0; 16],
                    bmc_guid: FORGED_GUID,
                    auth_code: &[],
                }
                .encode(&mut payload);
                Some(plain(PayloadType::Rakp2, &payload))
            }
            Forgery::Rakp4(status) => {
                let req = Rakp3::decode(plain_payload(pkt, PayloadType::Rakp3)?).ok()?;
                Rakp4 {
                    tag: req.tag,
                    status,
                    console_sid: 0,
                    icv: &[],
                }
                .encode(&mut payload);
                Some(plain(PayloadType::Rakp4, &payload))
            }
            Forgery::AuthCapsCompletion(cc) => {
                let h = sessionless_request(pkt, CMD_GET_CHANNEL_AUTH_CAPS)?;
                Some(sessionless_reply(&h, cc, &[]))
            }
            Forgery::AuthCapsNoIpmi20 => {
                let h = sessionless_request(pkt, CMD_GET_CHANNEL_AUTH_CAPS)?;
                let caps = AuthCapabilities {
                    channel: 1,
                    ipmi20: false,
                    kg_set: false,
                    non_null_users: true,
                    null_user: false,
                    anonymous: false,
                };
                Some(sessionless_reply(&h, 0, &caps.encode()))
            }
            Forgery::CipherSuitesOnly3 => {
                let h = sessionless_request(pkt, CMD_GET_CHANNEL_CIPHER_SUITES)?;
                Some(sessionless_reply(
                    &h,
                    0,
                    &commands::cipher_suites_page(1, &[3], 0),
                ))
            }
        }
    }
}

/// A rule that answers the first request `forgery` applies to with the forged reply, ahead
/// of the BMC (the request still reaches the BMC, whose real answer comes second), and
/// records the suite of every Open Session Request.
fn forge_once(forgery: Forgery, suites: Arc<Mutex<Vec<Option<CipherSuite>>>>) -> Rule {
    let mut forged = false;
    Box::new(move |dir, pkt| {
        if dir == Dir::ToBmc {
            if let Some(req) = open_session_request(pkt) {
                suites.lock().unwrap().push(req.algorithms.suite());
            }
            if !forged && let Some(reply) = forgery.answer(pkt) {
                forged = true;
                return vec![(Dir::ToDriver, reply), (Dir::ToBmc, pkt.to_vec())];
            }
        }
        pass(dir, pkt)
    })
}

/// One forged negative answer, in any message no MAC covers, does not decide the call: an
/// error reply with session id 0 ("unknown user", "no resources", "no cipher match", "bad
/// check value"), a completion code outside a session, a capabilities reply without IPMI
/// 2.0, or a cipher suite list that would push the driver down to suite 3.
#[tokio::test]
async fn one_forged_refusal_does_not_end_the_call() {
    let forgeries = [
        Forgery::OpenSession(rakp::STATUS_UNAUTHORIZED_ROLE),
        Forgery::OpenSession(rakp::STATUS_NO_RESOURCES),
        Forgery::OpenSession(rakp::STATUS_NO_CIPHER_MATCH),
        Forgery::OpenSession(0x12),
        Forgery::Rakp2(rakp::STATUS_UNAUTHORIZED_NAME),
        Forgery::Rakp2(rakp::STATUS_INVALID_ICV),
        Forgery::Rakp4(rakp::STATUS_INVALID_ICV),
        Forgery::Rakp4(rakp::STATUS_INVALID_SESSION),
        Forgery::AuthCapsCompletion(commands::CC_INVALID_DATA),
        Forgery::AuthCapsCompletion(0xD4),
        Forgery::AuthCapsNoIpmi20,
        Forgery::CipherSuitesOnly3,
    ];
    for forgery in forgeries {
        let lab = lab().await;
        let suites = Arc::new(Mutex::new(Vec::new()));
        let mitm = Mitm::start(lab.addr(0), forge_once(forgery, Arc::clone(&suites))).await;
        // The default suite list, 17 then 3.
        let d = driver(mitm.addr, PASSWORD, &[]);
        let state = d.status(soon(3000)).await;
        assert_eq!(state, Ok(PowerState::On), "{forgery:?}");
        assert_eq!(d.identity(), real_identity(), "{forgery:?}");
        d.set_power(Action::Off, soon(3000)).await.unwrap();
        assert!(!lab.power_on(0), "{forgery:?}: the fence went through");
        let suites = suites.lock().unwrap().clone();
        assert!(
            !suites.is_empty() && suites.iter().all(|s| *s == Some(CipherSuite::Suite17)),
            "{forgery:?}: one forged datagram must not downgrade the session: {suites:?}"
        );
        d.release(soon(2000)).await.unwrap();
    }
}

/// Counts the handshakes (Open Session Requests) passing by.
fn counting(count: Arc<Mutex<u32>>) -> Rule {
    Box::new(move |dir, pkt| {
        if open_session_request(pkt).is_some() {
            *count.lock().unwrap() += 1;
        }
        pass(dir, pkt)
    })
}

/// A password that is really wrong is `auth`, once a second, fresh handshake confirmed it,
/// and still quickly and within the deadline; an unknown user likewise.
#[tokio::test]
async fn a_wrong_password_is_auth_after_a_confirming_handshake() {
    for suite in ["3", "17"] {
        let lab = lab().await;
        let count = Arc::new(Mutex::new(0));
        let mitm = Mitm::start(lab.addr(0), counting(Arc::clone(&count))).await;
        let d = driver(mitm.addr, "not-the-pw", &[("cipher", suite)]);
        let t0 = Instant::now();
        let e = d.status(soon(5000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "suite {suite}: {e}");
        assert!(
            t0.elapsed() < Duration::from_millis(1000),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(*count.lock().unwrap(), 2, "suite {suite}: two handshakes");
        assert!(e.detail.contains("confirmed"), "{e}");
        assert!(!e.detail.contains("not-the-pw"), "{e}");
        assert!(d.identity().is_empty());

        *count.lock().unwrap() = 0;
        let mut spec = DeviceSpec {
            name: "kvm01".into(),
            driver: "ipmi".into(),
            address: mitm.addr.to_string(),
            user: Some("nobody".into()),
            ..Default::default()
        };
        spec.secrets
            .insert("password".into(), SecretString::from(PASSWORD));
        spec.options.insert("cipher".into(), suite.into());
        let u = IpmiFactory.build(&spec).unwrap();
        let e = u.status(soon(5000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "{e}");
        assert!(e.detail.contains("unknown user"), "{e}");
        assert_eq!(*count.lock().unwrap(), 2, "suite {suite}: two handshakes");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(lab.open_sessions(0), 0, "refused handshakes leave nothing");
        assert!(lab.command_log(0).is_empty());
    }
}

/// The confirming handshake never outlasts the call's deadline: with a slow BMC and a
/// deadline too short for two handshakes, the call returns by its deadline, and an
/// unconfirmed refusal is not reported as `auth`.
#[tokio::test]
async fn the_confirmation_stays_within_the_deadline() {
    let mut cfg = BmcConfig::new("admin", PASSWORD);
    cfg.faults.reply_delay_ms = 60;
    let lab = IpmiLab::start(vec![cfg]).await.unwrap();
    let d = driver(lab.addr(0), "not-the-pw", &[("cipher", "17")]);
    // Capabilities, Open Session and RAKP 1 take about 180 ms; the second handshake's two
    // round trips would end at about 300 ms.
    let t0 = Instant::now();
    let e = d.status(soon(250)).await.unwrap_err();
    // A confirmation run to its end would answer `auth` at about 300 ms: the kind tells it
    // apart. The clock only guards against running far past the deadline, with room for a
    // loaded machine.
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(
        t0.elapsed() < Duration::from_millis(250 + 1000),
        "{:?}",
        t0.elapsed()
    );
    // With time enough, the same refusal is confirmed.
    let e = d.status(soon(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
}

/// A path that corrupts every RAKP 2 never yields a reading or a command: the call fails as
/// `auth` (two handshakes agreed) or `protocol`, within the deadline and a bounded number
/// of handshakes.
#[tokio::test]
async fn every_corrupted_rakp2_never_yields_a_reading() {
    for suite in ["3", "17"] {
        let lab = lab().await;
        let count = Arc::new(Mutex::new(0u32));
        let counted = Arc::clone(&count);
        let mitm = Mitm::start(
            lab.addr(0),
            Box::new(move |dir, pkt| {
                if open_session_request(pkt).is_some() {
                    *counted.lock().unwrap() += 1;
                }
                match corrupt_rakp2(pkt) {
                    Some(forged) if dir == Dir::ToDriver => vec![(dir, forged)],
                    _ => pass(dir, pkt),
                }
            }),
        )
        .await;
        let d = driver(mitm.addr, PASSWORD, &[("cipher", suite)]);
        let t0 = Instant::now();
        let e = d.status(soon(3000)).await.unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::Auth | ErrorKind::Protocol),
            "suite {suite}: {e}"
        );
        let e = d.set_power(Action::Off, soon(3000)).await.unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::Auth | ErrorKind::Protocol),
            "suite {suite}: {e}"
        );
        assert!(
            t0.elapsed() < Duration::from_millis(2000),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(
            *count.lock().unwrap(),
            4,
            "two handshakes per call, no more"
        );
        assert!(d.identity().is_empty(), "{:?}", d.identity());
        assert!(lab.command_log(0).is_empty());
        assert!(lab.power_on(0));
    }
}

/// A downgrade to suite 3, forced in one operation by refusing suite 17 (for every one of
/// its handshakes), is not remembered: the next operation starts at 17 again.
#[tokio::test]
async fn a_downgrade_is_not_remembered_beyond_one_operation() {
    let lab = lab().await;
    let suites = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&suites);
    let mitm = Mitm::start(
        lab.addr(0),
        Box::new(move |dir, pkt| {
            let Some(req) = open_session_request(pkt) else {
                return pass(dir, pkt);
            };
            seen.lock().unwrap().push(req.algorithms.suite());
            if req.algorithms == Algorithms::of(CipherSuite::Suite17) {
                let mut payload = Vec::new();
                OpenSessionResponse {
                    tag: req.tag,
                    status: rakp::STATUS_NO_CIPHER_MATCH,
                    max_privilege: 0,
                    console_sid: req.console_sid,
                    bmc_sid: 0,
                    algorithms: None,
                }
                .encode(&mut payload);
                return vec![(
                    Dir::ToDriver,
                    plain(PayloadType::OpenSessionResponse, &payload),
                )];
            }
            pass(dir, pkt)
        }),
    )
    .await;
    let d = driver(mitm.addr, PASSWORD, &[]);
    assert_eq!(d.status(soon(3000)).await.unwrap(), PowerState::On);
    assert_eq!(
        suites.lock().unwrap().clone(),
        [
            Some(CipherSuite::Suite17),
            Some(CipherSuite::Suite17),
            Some(CipherSuite::Suite3)
        ],
        "the refusal of 17 was confirmed before falling back to 3"
    );
    d.release(soon(2000)).await.unwrap();

    suites.lock().unwrap().clear();
    mitm.set_rule(recording(Arc::clone(&suites)));
    assert_eq!(d.status(soon(3000)).await.unwrap(), PowerState::On);
    assert_eq!(
        suites.lock().unwrap().clone(),
        [Some(CipherSuite::Suite17)],
        "the next operation starts at 17 again"
    );
    assert_eq!(d.identity(), real_identity());
    d.release(soon(2000)).await.unwrap();
}
