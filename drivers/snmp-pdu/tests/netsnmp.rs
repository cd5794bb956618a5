//! Interop with net-snmp's snmpd serving the APC PowerNet-MIB outlet table through the
//! `hw-fixtures/snmpd` pass_persist handler, whose `apc_state.json` is the truth.
//!
//! Needs the Debian packages `snmpd` (the agent) and `python3`; a missing one fails the
//! test with the package name instead of skipping it (the test kit's rule).
//!
//! The drivers here wait generously for each answer ([`ATTEMPT_MS`]): the agent's outlet
//! handler is a Python process, slow to answer on a loaded machine. (The SNMPv3 password
//! keys, a megabyte of hashing each, are derived once per driver before its first attempt,
//! so no attempt's wait includes them.) A test whose subject is silence (a secret the agent
//! ignores) sets its own, shorter wait.

use fencegate_driver::{
    Action, Channel, DeviceSpec, DriverFactory, ErrorKind, IdentityFact, PowerDriver, PowerState,
    SecretString,
};
use fencegate_snmp_pdu::SnmpPduFactory;
use fencegate_test_kit::snmpd::{ApcPdu, Options};
use std::sync::Arc;
use std::time::{Duration, Instant};

const V3_USER: &str = "fenceuser";
const V3_AUTH: &str = "authpass123";
const V3_PRIV: &str = "privpass123";
/// The engine ID snmpd is given (`exactEngineID`): enterprise 8072 (net-snmp), text format,
/// "pdu-test".
const ENGINE_ID: &str = "80001f88047064752d74657374";
/// The driver's wait per attempt, unless a test is about the wait: long enough for the
/// Python outlet handler on a loaded machine, and only ever waited out in full when
/// something is broken.
const ATTEMPT_MS: &str = "5000";
/// The wait per attempt of the tests whose agent stays silent on purpose (a wrong secret):
/// every attempt is waited out, so it is shorter, yet still several times what a v1/v2c
/// answer or a v3 session's discovery and answer take on a loaded machine.
const SILENCE_MS: &str = "1000";

/// How long the agent keeps an outlet off for a cycle: long enough that the read right after
/// the cycle command sees it off even on a loaded machine.
const REBOOT_SECS: u32 = 2;

/// A private snmpd (the test kit's APC PDU, with our engine ID and short reboots).
struct Snmpd {
    pdu: ApcPdu,
}

impl Snmpd {
    fn start() -> Snmpd {
        let pdu = ApcPdu::start_with(Options {
            engine_id: Some(ENGINE_ID.into()),
            reboot_secs: Some(REBOOT_SECS),
        });
        Snmpd { pdu }
    }

    /// Stop snmpd and start it again on the same port and persistent directory (same
    /// engine ID, engine boots + 1), as a PDU's management card reboot would.
    fn restart(&mut self) {
        self.pdu.restart();
    }

    fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.pdu.state_file()).expect("state");
        serde_json::from_str(&text).expect("state json")
    }

    /// The emulator-side truth: 1 on, 2 off.
    fn outlet(&self, n: u32) -> i64 {
        self.state()["outlets"][n.to_string()]["state"]
            .as_i64()
            .expect("state is an integer")
    }

    fn edit_outlet(&self, n: u32, key: &str, value: serde_json::Value) {
        let mut st = self.state();
        st["outlets"][n.to_string()][key] = value;
        let tmp = self.pdu.dir().join("apc_state.json.edit");
        std::fs::write(&tmp, st.to_string()).expect("write state");
        std::fs::rename(tmp, self.pdu.state_file()).expect("replace state");
    }

    fn spec(&self, path: &str, opts: &[(&str, &str)], secrets: &[(&str, &str)]) -> DeviceSpec {
        let mut s = DeviceSpec {
            name: "pdu-test".into(),
            driver: "snmp".into(),
            address: format!("127.0.0.1:{}", self.pdu.port()),
            path: Some(path.into()),
            ..Default::default()
        };
        for (k, v) in opts {
            s.options.insert((*k).into(), (*v).into());
        }
        for (k, v) in secrets {
            s.secrets.insert((*k).into(), SecretString::from(*v));
        }
        s.options
            .entry("timeout_ms".into())
            .or_insert_with(|| ATTEMPT_MS.into());
        s
    }

    fn v3(&self, path: &str, auth: &str) -> Arc<dyn PowerDriver> {
        let mut s = self.spec(
            path,
            &[("version", "3")],
            &[("auth_password", auth), ("priv_password", V3_PRIV)],
        );
        s.user = Some(V3_USER.into());
        SnmpPduFactory.build(&s).expect("v3 spec")
    }

    fn v2c(&self, path: &str, community: &str) -> Arc<dyn PowerDriver> {
        SnmpPduFactory
            .build(&self.spec(path, &[], &[("community", community)]))
            .expect("v2c spec")
    }

    /// Wait until the agent answers for an outlet: snmpd holds its port already, but starts
    /// the outlet handler only at the first request for it.
    async fn ready(self) -> Snmpd {
        let d = self.v2c("/outlet/1", "public");
        if let Err(e) = d.status(Instant::now() + Duration::from_secs(30)).await {
            panic!(
                "snmpd never answered for an outlet: {e}\n{}",
                self.pdu.log()
            );
        }
        self
    }
}

/// The deadline of a call that is expected to succeed: generous, as it is only reached when
/// something is broken.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

async fn fence_and_read(d: &Arc<dyn PowerDriver>) -> PowerState {
    d.set_power(Action::Off, soon())
        .await
        .expect("off accepted");
    d.status(soon()).await.expect("status")
}

#[tokio::test]
async fn v2c_off_reads_off_and_on_reads_on() {
    let agent = Snmpd::start().ready().await;
    let d = agent.v2c("/outlet/4", "private");
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::On);
    assert_eq!(fence_and_read(&d).await, PowerState::Off);
    assert_eq!(agent.outlet(4), 2, "the PDU's truth must agree");
    assert_eq!(agent.outlet(3), 1, "a neighbour outlet must be untouched");
    d.set_power(Action::On, soon()).await.unwrap();
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::On);
    assert_eq!(agent.outlet(4), 1);
    let ids = d.identity();
    assert!(
        ids.iter()
            .any(|f| f.kind == "snmp-sysname" && f.value == "fake-pdu"),
        "{ids:?}"
    );
    assert!(
        ids.iter()
            .any(|f| f.kind == "snmp-sysobjectid" && f.value == "1.3.6.1.4.1.318.1.3.4.2"),
        "{ids:?}"
    );
}

#[tokio::test]
async fn v3_identity_is_the_engine_id_net_snmp_proved() {
    let agent = Snmpd::start().ready().await;
    let d = agent.v3("/outlet/1", V3_AUTH);
    let caps = d.capabilities();
    assert!(caps.authenticated_identity);
    assert_eq!(caps.channel, Channel::Outlet);
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::On);
    let ids = d.identity();
    assert!(
        ids.contains(&IdentityFact::authenticated("snmp-engine-id", ENGINE_ID)),
        "{ids:?}"
    );
    assert!(
        ids.contains(&IdentityFact::authenticated("snmp-sysname", "fake-pdu")),
        "read over authenticated v3: {ids:?}"
    );
    // The same agent over v2c: a community proves nothing.
    let d = agent.v2c("/outlet/1", "public");
    assert!(!d.capabilities().authenticated_identity);
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::On);
    let ids = d.identity();
    assert!(ids.iter().all(|f| !f.authenticated), "{ids:?}");
    assert!(ids.iter().any(|f| f.kind == "snmp-sysname"), "{ids:?}");
}

#[tokio::test]
async fn v1_off_reads_off() {
    let agent = Snmpd::start().ready().await;
    let d = SnmpPduFactory
        .build(&agent.spec(
            "/outlet/2",
            &[("version", "1")],
            &[("community", "private")],
        ))
        .unwrap();
    assert_eq!(fence_and_read(&d).await, PowerState::Off);
    assert_eq!(agent.outlet(2), 2);
}

#[tokio::test]
async fn v3_auth_priv_sha_aes_off_reads_off() {
    let agent = Snmpd::start().ready().await;
    let d = agent.v3("/outlet/6", V3_AUTH);
    assert_eq!(fence_and_read(&d).await, PowerState::Off);
    assert_eq!(agent.outlet(6), 2);
}

/// A v3 device for one of the fixture's users: (user, auth protocol, auth password,
/// privacy protocol and password or `None` for authNoPriv).
fn v3_user(
    agent: &Snmpd,
    path: &str,
    user: &str,
    auth: (&str, &str),
    privacy: Option<(&str, &str)>,
) -> Arc<dyn PowerDriver> {
    let mut opts = vec![("version", "3"), ("auth_protocol", auth.0)];
    let mut secrets = vec![("auth_password", auth.1)];
    match privacy {
        Some((protocol, password)) => {
            opts.push(("priv_protocol", protocol));
            secrets.push(("priv_password", password));
        }
        None => opts.push(("security_level", "authNoPriv")),
    }
    let mut s = agent.spec(path, &opts, &secrets);
    s.user = Some(user.into());
    SnmpPduFactory.build(&s).expect("v3 spec")
}

#[tokio::test]
async fn every_usm_combination_interoperates_with_net_snmp() {
    let agent = Snmpd::start().ready().await;
    let cases = [
        (
            "fence256",
            ("sha256", "authpass256"),
            Some(("aes256", "privpass256")),
            2,
        ),
        (
            "fence512",
            ("sha512", "authpass512"),
            Some(("aes", "privpass512")),
            3,
        ),
        (
            "fencemd5",
            ("md5", "authpassmd5"),
            Some(("aes", "privpassmd5")),
            4,
        ),
        ("fencenopriv", ("sha", "authpassnp1"), None, 5),
    ];
    for (user, auth, privacy, outlet) in cases {
        let d = v3_user(&agent, &format!("/outlet/{outlet}"), user, auth, privacy);
        assert_eq!(fence_and_read(&d).await, PowerState::Off, "{user}");
        assert_eq!(agent.outlet(outlet), 2, "{user}: the emulator-side truth");
    }
}

#[tokio::test]
async fn aes256_without_a_long_enough_key_is_unsupported_not_garbled() {
    let agent = Snmpd::start().ready().await;
    // SHA-1 localizes 20 bytes; AES-256 needs 32 and no key extension is done.
    let d = v3_user(
        &agent,
        "/outlet/1",
        V3_USER,
        ("sha", V3_AUTH),
        Some(("aes256", V3_PRIV)),
    );
    let e = d.status(soon()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("sha256"), "{e}");
}

#[tokio::test]
async fn v3_wrong_auth_password_is_auth() {
    let agent = Snmpd::start().ready().await;
    let d = agent.v3("/outlet/6", "wrongpass1");
    let e = d.set_power(Action::Off, soon()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(!e.detail.contains("wrongpass1"), "a secret leaked: {e}");
    assert_eq!(agent.outlet(6), 1, "nothing may be switched");
}

#[tokio::test]
async fn stuck_outlet_is_accepted_but_still_reads_on() {
    let agent = Snmpd::start().ready().await;
    agent.edit_outlet(3, "stuck", serde_json::Value::Bool(true));
    let d = agent.v2c("/outlet/3", "private");
    assert_eq!(fence_and_read(&d).await, PowerState::On);
    assert_eq!(agent.outlet(3), 1);
}

#[tokio::test]
async fn read_only_community_is_a_clear_auth_error() {
    let agent = Snmpd::start().ready().await;
    for version in ["2c", "1"] {
        let d = SnmpPduFactory
            .build(&agent.spec(
                "/outlet/5",
                &[("version", version)],
                &[("community", "public")],
            ))
            .unwrap();
        let e = d.set_power(Action::Off, soon()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "v{version}: {e}");
        assert!(e.detail.contains("read-only"), "v{version}: {e}");
        assert!(!e.detail.contains("public"), "the community leaked: {e}");
        // Reading with it is fine.
        assert_eq!(d.status(soon()).await.unwrap(), PowerState::On);
    }
    assert_eq!(agent.outlet(5), 1);
}

#[tokio::test]
async fn cycle_goes_off_then_comes_back() {
    let agent = Snmpd::start().ready().await;
    let d = agent.v2c("/outlet/7", "private");
    d.set_power(Action::Cycle, soon()).await.unwrap();
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::Off);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if d.status(soon()).await.unwrap() == PowerState::On {
            break;
        }
        assert!(Instant::now() < until, "the outlet never came back on");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The handler finishes a reboot lazily and does not write that back; its log shows
    // that the PDU received a reboot (3), not an off (2).
    let log = agent.state()["outlets"]["7"]["log"].to_string();
    assert!(log.contains("set 3"), "{log}");
}

#[tokio::test]
async fn two_outlet_device_is_off_only_when_both_are() {
    let agent = Snmpd::start().ready().await;
    let d = agent.v2c("/outlet/4,5", "private");
    assert_eq!(fence_and_read(&d).await, PowerState::Off);
    assert_eq!((agent.outlet(4), agent.outlet(5)), (2, 2));
    // The second PSU's outlet comes back (someone switched it on): the host has power.
    agent.edit_outlet(5, "state", serde_json::json!(1));
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn missing_outlet_names_outlet_and_oid() {
    let agent = Snmpd::start().ready().await;
    let d = agent.v2c("/outlet/42", "private");
    let e = d.status(soon()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("outlet 42"), "{e}");
    assert!(e.detail.contains("1.3.6.1.4.1.318.1.1.4.4.2.1.3.42"), "{e}");
}

#[tokio::test]
async fn wrong_community_is_auth_because_the_agent_answers_discovery() {
    let agent = Snmpd::start().ready().await;
    let mut s = agent.spec(
        "/outlet/1",
        &[("retries", "1")],
        &[("community", "nope-sekrit")],
    );
    s.options.insert("timeout_ms".into(), SILENCE_MS.into());
    let d = SnmpPduFactory.build(&s).unwrap();
    let t0 = Instant::now();
    let deadline = Duration::from_secs(30);
    let e = d.status(t0 + deadline).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.detail.contains("community is wrong"), "{e}");
    assert!(!e.detail.contains("sekrit"), "{e}");
    // Two silent attempts and the diagnosis take about 2 s; retrying until the deadline
    // would take all 30.
    assert!(
        t0.elapsed() < deadline / 2,
        "retries must be bounded, not repeated until the deadline: {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn v3_wrong_priv_password_is_auth_not_a_dead_agent() {
    let agent = Snmpd::start().ready().await;
    let mut s = agent.spec(
        "/outlet/1",
        &[("version", "3"), ("retries", "1")],
        &[
            ("auth_password", V3_AUTH),
            ("priv_password", "wrongpriv-sekrit"),
        ],
    );
    s.user = Some(V3_USER.into());
    s.options.insert("timeout_ms".into(), SILENCE_MS.into());
    let d = SnmpPduFactory.build(&s).unwrap();
    let e = d.status(soon()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.detail.contains("priv_password"), "{e}");
    assert!(!e.detail.contains("sekrit"), "{e}");
}

#[tokio::test]
async fn nothing_listening_is_unreachable_not_auth() {
    let port = fencegate_test_kit::ports::unused_udp_port();
    let mut s = DeviceSpec {
        name: "pdu-test".into(),
        driver: "snmp".into(),
        address: format!("127.0.0.1:{port}"),
        path: Some("/outlet/1".into()),
        ..Default::default()
    };
    s.options.insert("timeout_ms".into(), SILENCE_MS.into());
    s.secrets
        .insert("community".into(), SecretString::from("private"));
    let e = SnmpPduFactory
        .build(&s)
        .unwrap()
        .status(soon())
        .await
        .unwrap_err();
    // The port was free a moment ago; it cannot be held without a socket swallowing the
    // datagrams, so an answer means another test's server picked it meanwhile.
    assert_eq!(
        e.kind,
        ErrorKind::Unreachable,
        "{e} (unless something else came to listen on port {port})"
    );
    assert!(e.detail.contains("dead or unreachable"), "{e}");
}

#[tokio::test]
async fn v3_kept_session_recovers_after_the_agent_restarts() {
    let mut agent = Snmpd::start().ready().await;
    let d = agent.v3("/outlet/8", V3_AUTH);
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::On);
    agent.restart();
    let mut agent = agent.ready().await;
    // The driver still holds a session with the old engine boots/time: the agent's report
    // must lead to a fresh session, not to an error.
    assert_eq!(fence_and_read(&d).await, PowerState::Off);
    assert_eq!(agent.outlet(8), 2);
    agent.restart();
    let _agent = agent.ready().await;
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::Off);
}
