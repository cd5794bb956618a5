//! Proxies: the environment's are never used, a `proxy=` option's is.
//!
//! Proxy variables are process-wide, so this file holds one test, and that test does the
//! driver work in a child process (this very test binary, run again for this one test) whose
//! environment names a recording proxy in every variable an HTTP client might read. Nothing
//! here changes the environment of a running process.
//!
//! The attack: a stray `HTTPS_PROXY` on the fencing host (a login profile, a systemd
//! drop-in) would send every BMC connection through a third party. With a pin that breaks
//! fencing; with `insecure=true` that party reads the password. The driver must connect
//! directly whatever the environment says, and go through a proxy only when its device
//! says `proxy=`.

use fencegate_bmcsim::redfish::{Profile, RedfishConfig, RedfishLab};
use fencegate_driver::{Action, DeviceSpec, PowerDriver, PowerState, SecretString};
use fencegate_redfish::RedfishDriver;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "proxy-test-password-7";
/// Set in the child's environment: run the driver part, not the parent part.
const CHILD_MARKER: &str = "FENCEGATE_REDFISH_PROXY_TEST_CHILD";
const TEST_NAME: &str = "environment_proxies_are_ignored_and_the_proxy_option_is_used";
/// Every variable reqwest (through hyper-util) reads for a proxy, in both cases.
const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What a recording proxy saw: the request line of each connection, and every byte the
/// client sent after it.
#[derive(Default)]
struct Seen {
    request_lines: Vec<String>,
    heads: Vec<String>,
    tunnelled: Vec<u8>,
}

/// A tiny HTTP CONNECT proxy on 127.0.0.1 that records what it is asked and forwards the
/// tunnel, to loopback targets only.
struct RecordingProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl RecordingProxy {
    async fn start() -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(tunnel(client, Arc::clone(&shared)));
            }
        });
        RecordingProxy { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn request_lines(&self) -> Vec<String> {
        self.seen.lock().unwrap().request_lines.clone()
    }
}

async fn tunnel(mut client: TcpStream, seen: Arc<Mutex<Seen>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte).await {
            Ok(1) if head.len() < 8192 => head.push(byte[0]),
            _ => {
                let mut s = seen.lock().unwrap();
                s.request_lines.push(
                    String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .into(),
                );
                return;
            }
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let line = head.lines().next().unwrap_or("").to_owned();
    {
        let mut s = seen.lock().unwrap();
        s.request_lines.push(line.clone());
        s.heads.push(head);
    }
    let target = line
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|t| t.parse::<SocketAddr>().ok())
        .filter(|a| a.ip().is_loopback());
    let Some(target) = target else {
        let _ = client
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let Ok(mut server) = TcpStream::connect(target).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.split();
    let upstream = async {
        let mut buf = [0u8; 4096];
        loop {
            match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.lock().unwrap().tunnelled.extend_from_slice(&buf[..n]);
                    if server_wr.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = server_wr.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_rd, &mut client_wr).await;
        let _ = client_wr.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

fn deadline(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

fn spec(lab: &RedfishLab, options: &[(&str, &str)]) -> DeviceSpec {
    let mut s = DeviceSpec {
        name: "bmc".into(),
        driver: "redfish".into(),
        address: lab.addr(0).to_string(),
        user: Some("admin".into()),
        ..Default::default()
    };
    s.secrets
        .insert("password".into(), SecretString::from(PASSWORD));
    for (k, v) in options {
        s.options.insert((*k).into(), (*v).into());
    }
    s
}

/// The child: the environment names a proxy everywhere; the driver must not use it.
async fn child() {
    let env_proxy = std::env::var("HTTPS_PROXY").expect("the parent sets HTTPS_PROXY");
    for var in PROXY_VARS {
        assert_eq!(
            std::env::var(var).as_deref(),
            Ok(env_proxy.as_str()),
            "{var}"
        );
    }
    let lab = RedfishLab::start(vec![
        RedfishConfig::new("admin", PASSWORD).with_profile(Profile::Generic),
    ])
    .await
    .unwrap();
    let pin = lab.fingerprint();

    // Pinned and insecure alike: straight to the BMC, a session login included.
    for trust in [("pin", pin.as_str()), ("insecure", "true")] {
        let d = RedfishDriver::from_spec(&spec(&lab, &[trust])).unwrap();
        let before = lab.handshakes(0);
        assert_eq!(
            d.status(deadline(5000)).await.unwrap(),
            PowerState::On,
            "{trust:?}"
        );
        assert!(
            lab.handshakes(0) > before,
            "{trust:?}: the BMC saw no handshake"
        );
        d.release(deadline(2000)).await.unwrap();
    }

    // `proxy=`: the one way through a proxy, a CONNECT tunnel to the BMC's address.
    let proxy = RecordingProxy::start().await;
    let d =
        RedfishDriver::from_spec(&spec(&lab, &[("pin", &pin), ("proxy", &proxy.url())])).unwrap();
    assert_eq!(d.status(deadline(5000)).await.unwrap(), PowerState::On);
    d.set_power(Action::Off, deadline(5000)).await.unwrap();
    assert!(!lab.power_on(0));
    d.release(deadline(2000)).await.unwrap();
    let lines = proxy.request_lines();
    assert!(!lines.is_empty(), "the configured proxy saw nothing");
    let connect = format!("CONNECT {} HTTP/1.1", lab.addr(0));
    assert!(lines.iter().all(|l| *l == connect), "{lines:?}");
    let seen = proxy.seen.lock().unwrap();
    for head in &seen.heads {
        assert!(
            !head.to_ascii_lowercase().contains("proxy-authorization"),
            "{head}"
        );
    }
    // The tunnel carries TLS: the proxy never reads the password.
    let tunnelled = &seen.tunnelled;
    assert!(!tunnelled.is_empty());
    assert!(
        !tunnelled
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes()),
        "the password crossed the proxy in the clear"
    );
}

/// The parent: a recording proxy named by every proxy variable of the child, which must see
/// nothing at all.
#[test]
fn environment_proxies_are_ignored_and_the_proxy_option_is_used() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::var_os(CHILD_MARKER).is_some() {
        rt.block_on(child());
        return;
    }
    let env_proxy = rt.block_on(RecordingProxy::start());
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_MARKER, "1")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("REQUEST_METHOD");
    for var in PROXY_VARS {
        cmd.env(var, env_proxy.url());
    }
    let out = rt.block_on(async {
        let child = tokio::process::Command::from(cmd).output();
        tokio::time::timeout(Duration::from_secs(60), child)
            .await
            .expect("the child test did not finish within 60 s")
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The child must really have run the one test, not filtered it away.
    assert!(
        stdout.contains("1 passed") || !out.status.success(),
        "the child ran no test:\n{stdout}\n{stderr}"
    );
    let lines = env_proxy.request_lines();
    assert!(
        lines.is_empty(),
        "the environment's proxy was used: {lines:?}\n{stdout}\n{stderr}"
    );
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
}
