//! Interop with net-snmp's snmpd serving the APC PowerNet-MIB outlet table through the
//! `hw-fixtures/snmpd` pass_persist handler, whose `apc_state.json` is the truth.
//!
//! Needs the Debian packages `snmpd` (the agent) and `python3`; a missing one fails the
//! test with the package name instead of skipping it.

use fencegate_driver::{
    Action, Channel, DeviceSpec, DriverFactory, ErrorKind, IdentityFact, PowerDriver, PowerState,
    SecretString,
};
use fencegate_snmp_pdu::SnmpPduFactory;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const V3_USER: &str = "fenceuser";
const V3_AUTH: &str = "authpass123";
const V3_PRIV: &str = "privpass123";
/// The engine ID snmpd is given (`exactEngineID`): enterprise 8072 (net-snmp), text format,
/// "pdu-test".
const ENGINE_ID: &str = "80001f88047064752d74657374";

fn find_program(name: &str, package: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` not found: install the Debian package `{package}` (apt-get install -y {package})"
    );
}

fn spawn(snmpd: &Path, dir: &Path) -> Child {
    Command::new(snmpd)
        .args(["-f", "-Lo", "-C", "-c", "./snmpd.conf", "-p", "./snmpd.pid"])
        .current_dir(dir)
        .env("SNMP_PERSISTENT_DIR", dir.join("persist"))
        .env("MIBS", "")
        .env("MIBDIRS", "/nonexistent")
        .env("APC_STATE", dir.join("apc_state.json"))
        .env("APC_REBOOT_SECS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start snmpd")
}

fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    s.local_addr().expect("local addr").port()
}

/// A private snmpd on a free port in a temporary directory; killed on drop.
struct Snmpd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Snmpd {
    fn start() -> Snmpd {
        let snmpd = find_program("snmpd", "snmpd");
        find_program("python3", "python3");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hw-fixtures/snmpd");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_udp_port();
        let conf = std::fs::read_to_string(fixtures.join("snmpd.conf")).expect("snmpd.conf");
        let conf: String = conf
            .lines()
            .map(|l| {
                if l.starts_with("agentAddress") {
                    format!("agentAddress udp:127.0.0.1:{port}\nexactEngineID 0x{ENGINE_ID}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(dir.path().join("snmpd.conf"), conf).expect("write conf");
        std::fs::copy(
            fixtures.join("apc_pdu_pass.py"),
            dir.path().join("apc_pdu_pass.py"),
        )
        .expect("copy handler");
        let outlets: serde_json::Map<String, serde_json::Value> = (1..=8)
            .map(|i| {
                (
                    i.to_string(),
                    serde_json::json!({"name": format!("node{i}"), "state": 1, "stuck": false}),
                )
            })
            .collect();
        std::fs::write(
            dir.path().join("apc_state.json"),
            serde_json::json!({ "outlets": outlets }).to_string(),
        )
        .expect("write state");
        let child = spawn(&snmpd, dir.path());
        Snmpd { child, dir, port }
    }

    /// Stop snmpd and start it again on the same port and persistent directory (same
    /// engine ID, engine boots + 1), as a PDU's management card reboot would.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&find_program("snmpd", "snmpd"), self.dir.path());
    }

    fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.path().join("apc_state.json")).expect("state");
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
        let path = self.dir.path().join("apc_state.json");
        let tmp = self.dir.path().join("apc_state.json.edit");
        std::fs::write(&tmp, st.to_string()).expect("write state");
        std::fs::rename(tmp, path).expect("replace state");
    }

    fn spec(&self, path: &str, opts: &[(&str, &str)], secrets: &[(&str, &str)]) -> DeviceSpec {
        let mut s = DeviceSpec {
            name: "pdu-test".into(),
            driver: "snmp".into(),
            address: format!("127.0.0.1:{}", self.port),
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
            .or_insert_with(|| "300".into());
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

    /// Wait until the agent answers (snmpd and its handler take a moment to start).
    async fn ready(self) -> Snmpd {
        let d = self.v2c("/outlet/1", "public");
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            match d.status(Instant::now() + Duration::from_secs(1)).await {
                Ok(_) => return self,
                Err(e) if Instant::now() > until => panic!("snmpd never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
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
    s.options.insert("timeout_ms".into(), "200".into());
    let d = SnmpPduFactory.build(&s).unwrap();
    let t0 = Instant::now();
    let e = d.status(soon()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.detail.contains("community is wrong"), "{e}");
    assert!(!e.detail.contains("sekrit"), "{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "retries must be bounded"
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
    s.options.insert("timeout_ms".into(), "200".into());
    let d = SnmpPduFactory.build(&s).unwrap();
    let e = d.status(soon()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.detail.contains("priv_password"), "{e}");
    assert!(!e.detail.contains("sekrit"), "{e}");
}

#[tokio::test]
async fn nothing_listening_is_unreachable_not_auth() {
    let mut s = DeviceSpec {
        name: "pdu-test".into(),
        driver: "snmp".into(),
        address: format!("127.0.0.1:{}", free_udp_port()),
        path: Some("/outlet/1".into()),
        ..Default::default()
    };
    s.options.insert("timeout_ms".into(), "200".into());
    s.secrets
        .insert("community".into(), SecretString::from("private"));
    let e = SnmpPduFactory
        .build(&s)
        .unwrap()
        .status(soon())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
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
