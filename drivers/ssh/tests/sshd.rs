//! Interop with OpenSSH's sshd running the `hw-fixtures/sshd` forced command that simulates
//! `poweroff -f` (modes drop, exit0, hang, refuse).
//!
//! Needs the Debian packages `openssh-server` (sshd) and `openssh-client` (ssh-keygen); a
//! missing one fails the test with the package name instead of skipping it. As root the
//! harness creates the unprivileged user `fencehost` (shell /bin/sh) if missing and runs
//! sshd as that user; otherwise sshd runs as, and admits only, the current user.

use fencegate_driver::{Action, DeviceSpec, DriverFactory, ErrorKind, PowerDriver, SecretString};
use fencegate_ssh::SshFactory;
use fencegate_test_kit::daemon::{Daemon, Proto};
use fencegate_test_kit::ports::ClosedTcpPort;
use fencegate_test_kit::tools;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a helper program");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The account sshd runs as and admits: (name, uid, gid, whether we had to switch to it).
fn account() -> (String, u32, u32, bool) {
    static CREATED: Mutex<()> = Mutex::new(());
    let uid: u32 = run(Command::new("id").arg("-u")).parse().expect("uid");
    if uid != 0 {
        let name = run(Command::new("id").arg("-un"));
        let gid: u32 = run(Command::new("id").arg("-g")).parse().expect("gid");
        return (name, uid, gid, false);
    }
    let _guard = CREATED.lock().unwrap_or_else(|p| p.into_inner());
    let exists = |user: &str| {
        Command::new("id")
            .arg(user)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !exists("fencehost") {
        let useradd = tools::require("useradd");
        let _ = Command::new(useradd)
            .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
            .args(["--shell", "/bin/sh", "fencehost"])
            .status();
        assert!(exists("fencehost"), "could not create the user fencehost");
    }
    let uid = run(Command::new("id").args(["-u", "fencehost"]))
        .parse()
        .expect("uid");
    let gid = run(Command::new("id").args(["-g", "fencehost"]))
        .parse()
        .expect("gid");
    ("fencehost".to_owned(), uid, gid, true)
}

fn keygen(path: &Path) {
    let keygen = tools::require("ssh-keygen");
    run(Command::new(keygen)
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "fencegate-test",
            "-f",
        ])
        .arg(path));
}

fn pub_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A private sshd on a loopback port with its own keys (started by the test kit, which
/// checks sshd itself listens there); killed on drop.
struct Sshd {
    daemon: Daemon,
    user: String,
}

impl Sshd {
    fn start(mode: &str) -> Sshd {
        let sshd = tools::require("sshd");
        let (user, uid, gid, switch) = account();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hw-fixtures/sshd");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::copy(
            fixtures.join("fake_poweroff.sh"),
            d.join("fake_poweroff.sh"),
        )
        .expect("copy");
        keygen(&d.join("ssh_host_ed25519_key"));
        keygen(&d.join("id_fence"));
        keygen(&d.join("id_other"));
        keygen(&d.join("other_host_key"));
        let keygen_rsa = tools::require("ssh-keygen");
        run(Command::new(keygen_rsa)
            .args([
                "-q",
                "-t",
                "rsa",
                "-b",
                "2048",
                "-N",
                "",
                "-C",
                "fencegate-test",
                "-f",
            ])
            .arg(d.join("id_rsa")));
        let forced = format!(
            "command=\"{}\",restrict",
            d.join("fake_poweroff.sh").display()
        );
        std::fs::write(
            d.join("authorized_keys"),
            format!(
                "{forced} {}\n{forced} {}\n",
                pub_key(&d.join("id_fence")),
                pub_key(&d.join("id_rsa"))
            ),
        )
        .expect("authorized_keys");
        std::fs::write(d.join("poweroff.mode"), mode).expect("mode");
        std::fs::write(d.join("poweroff.hang_secs"), "5").expect("hang time");
        let template = std::fs::read_to_string(fixtures.join("sshd_config.in")).expect("template");
        let daemon = Daemon::start("sshd", Proto::Tcp, dir, |d, port| {
            let conf = template
                .replace("@DIR@", &d.display().to_string())
                .replace("@PORT@", &port.to_string())
                .replace("@USER@", &user);
            std::fs::write(d.join("sshd_config"), conf).expect("sshd_config");
            if switch {
                run(Command::new("chown")
                    .arg("-R")
                    .arg(format!("{uid}:{gid}"))
                    .arg(d));
            }
            let mut cmd = Command::new(&sshd);
            cmd.arg("-D").arg("-e").arg("-f").arg(d.join("sshd_config"));
            if switch {
                cmd.uid(uid).gid(gid);
            }
            cmd
        });
        Sshd { daemon, user }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.daemon.dir().join(name)
    }

    fn known_hosts(&self, host_key: &str) -> PathBuf {
        let p = self.path(&format!("known_hosts.{host_key}"));
        std::fs::write(
            &p,
            format!(
                "[127.0.0.1]:{} {}\n",
                self.daemon.port(),
                pub_key(&self.path(host_key))
            ),
        )
        .expect("known_hosts");
        p
    }

    fn marker(&self) -> String {
        std::fs::read_to_string(self.path("poweroff.marker")).unwrap_or_default()
    }

    fn spec(&self, client_key: &str, host_key: &str, opts: &[(&str, &str)]) -> DeviceSpec {
        let mut s = DeviceSpec {
            name: "host-under-test".into(),
            driver: "ssh".into(),
            address: format!("127.0.0.1:{}", self.daemon.port()),
            user: Some(self.user.clone()),
            ..Default::default()
        };
        s.options.insert(
            "known_hosts_file".into(),
            self.known_hosts(host_key).display().to_string(),
        );
        s.options.insert("liveness_hold_ms".into(), "500".into());
        s.options.insert("probe_interval_ms".into(), "50".into());
        for (k, v) in opts {
            s.options.insert((*k).into(), (*v).into());
        }
        let key = std::fs::read_to_string(self.path(client_key)).expect("client key");
        s.secrets.insert("key".into(), SecretString::from(key));
        s
    }

    fn driver(&self, client_key: &str, host_key: &str) -> Arc<dyn PowerDriver> {
        SshFactory
            .build(&self.spec(client_key, host_key, &[]))
            .expect("spec")
    }
}

fn in_secs(s: u64) -> Instant {
    Instant::now() + Duration::from_secs(s)
}

#[tokio::test]
async fn drop_mode_is_delivered_and_liveness_lost() {
    let sshd = Sshd::start("drop");
    // Pin the fingerprint this time, as `ssh-keygen -lf` prints it.
    let keygen = tools::require("ssh-keygen");
    let lf = run(Command::new(keygen)
        .arg("-lf")
        .arg(sshd.path("ssh_host_ed25519_key.pub")));
    let fp = lf
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_owned();
    let mut spec = sshd.spec("id_fence", "ssh_host_ed25519_key", &[]);
    spec.options.remove("known_hosts_file");
    spec.options.insert("host_key".into(), fp.clone());
    let d = SshFactory.build(&spec).unwrap();
    let caps = d.capabilities();
    assert!(!caps.reads_power_state);
    assert_eq!(caps.actions, [Action::Off]);
    let t0 = Instant::now();
    let receipt = d.set_power(Action::Off, in_secs(10)).await.unwrap();
    assert!(receipt.detail.contains("delivered"), "{receipt:?}");
    assert!(receipt.detail.contains("quiet for"), "{receipt:?}");
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "the hold must be waited out"
    );
    let marker = sshd.marker();
    assert_eq!(marker.lines().count(), 1, "{marker}");
    assert!(marker.contains("mode=drop cmd=poweroff -f"), "{marker}");
    assert!(
        d.identity()
            .iter()
            .any(|f| f.kind == "ssh-host-key" && f.value == fp)
    );
    let e = d.status(in_secs(1)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.detail.contains("cannot read power state"));
}

#[tokio::test]
async fn exit0_with_the_listener_up_is_not_quiet() {
    let sshd = Sshd::start("exit0");
    let d = sshd.driver("id_fence", "ssh_host_ed25519_key");
    let t0 = Instant::now();
    let e = d
        .set_power(Action::Off, t0 + Duration::from_millis(2500))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::VerificationFailed, "{e}");
    assert!(e.detail.contains("still answers on port"), "{e}");
    // Given up at the deadline (2.5 s), with room for a loaded machine.
    assert!(
        t0.elapsed() < Duration::from_millis(4500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(sshd.marker().lines().count(), 1);
}

#[tokio::test]
async fn hang_ends_at_the_deadline() {
    let sshd = Sshd::start("hang");
    let d = sshd.driver("id_fence", "ssh_host_ed25519_key");
    let t0 = Instant::now();
    let e = d
        .set_power(Action::Off, t0 + Duration::from_millis(2000))
        .await
        .unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    // The command never returns: ended by the deadline, with room for a loaded machine.
    assert!(took < Duration::from_millis(4000), "{took:?}");
    assert_eq!(sshd.marker().lines().count(), 1);
}

#[tokio::test]
async fn refuse_reports_the_remote_stderr() {
    let sshd = Sshd::start("refuse");
    let d = sshd.driver("id_fence", "ssh_host_ed25519_key");
    let e = d.set_power(Action::Off, in_secs(10)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.detail.contains("exit status 1"), "{e}");
    assert!(e.detail.contains("poweroff: simulated failure"), "{e}");
}

#[tokio::test]
async fn wrong_host_key_is_refused_before_anything_is_sent() {
    let sshd = Sshd::start("drop");
    let d = sshd.driver("id_fence", "other_host_key");
    let e = d.set_power(Action::Off, in_secs(10)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.detail.contains("host key mismatch"), "{e}");
    assert_eq!(sshd.marker(), "", "the command must not have run");
    assert!(d.identity().is_empty());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", sshd.daemon.port())).is_ok(),
        "host untouched"
    );
}

#[tokio::test]
async fn wrong_user_key_is_auth() {
    let sshd = Sshd::start("drop");
    let d = sshd.driver("id_other", "ssh_host_ed25519_key");
    let e = d.set_power(Action::Off, in_secs(10)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.detail.contains("refused authentication"), "{e}");
    assert_eq!(sshd.marker(), "");
}

#[tokio::test]
async fn refused_connection_is_unreachable_and_nothing_sent() {
    let sshd = Sshd::start("drop");
    let mut spec = sshd.spec("id_fence", "ssh_host_ed25519_key", &[]);
    let closed = ClosedTcpPort::new();
    spec.address = closed.addr().to_string();
    let d = SshFactory.build(&spec).unwrap();
    let t0 = Instant::now();
    let deadline = Duration::from_secs(10);
    let e = d.set_power(Action::Off, t0 + deadline).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(e.detail.contains("nothing was sent"), "{e}");
    // A refusal is final at once, not retried until the deadline.
    assert!(
        t0.elapsed() < deadline / 2,
        "refused, yet returned only after {:?}",
        t0.elapsed()
    );
}

#[test]
fn configuration_errors_name_the_key() {
    let base = || {
        let mut s = DeviceSpec {
            name: "h".into(),
            driver: "ssh".into(),
            address: "127.0.0.1".into(),
            user: Some("root".into()),
            ..Default::default()
        };
        s.secrets.insert(
            "key".into(),
            SecretString::from("not a key, but secret-ish"),
        );
        s
    };
    let e = SshFactory.build(&base()).err().expect("no host key policy");
    assert_eq!(e.key.as_deref(), Some("host_key"));
    let mut s = base();
    s.options.insert(
        "host_key".into(),
        "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s".into(),
    );
    let e = SshFactory.build(&s).err().expect("bad key");
    assert_eq!(e.key.as_deref(), Some("key"));
    assert!(!e.to_string().contains("secret-ish"), "{e}");
    s.secrets.clear();
    s.secrets
        .insert("password".into(), SecretString::from("hunter22"));
    let e = SshFactory
        .build(&s)
        .err()
        .expect("password without password_auth");
    assert_eq!(e.key.as_deref(), Some("password"));
    s.options.insert("password_auth".into(), "true".into());
    let d = SshFactory.build(&s).expect("password auth allowed");
    assert_eq!(d.endpoint(), "ssh://127.0.0.1:22");
    assert!(!format!("{:?}", s).contains("hunter22"));
}

#[tokio::test]
async fn exit0_is_not_quiet_even_without_a_hold() {
    // The end of the watch must not pass for silence: with no hold at all, a host that is
    // up must still fail verification at the deadline.
    let sshd = Sshd::start("exit0");
    let d = SshFactory
        .build(&sshd.spec(
            "id_fence",
            "ssh_host_ed25519_key",
            &[("liveness_hold_ms", "0")],
        ))
        .unwrap();
    for deadline_ms in [600, 1000] {
        let e = d
            .set_power(
                Action::Off,
                Instant::now() + Duration::from_millis(deadline_ms),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::VerificationFailed | ErrorKind::Timeout),
            "{deadline_ms} ms: {e}"
        );
    }
}

#[tokio::test]
async fn rsa_key_and_hashed_known_hosts_from_openssh() {
    let sshd = Sshd::start("drop");
    let mut spec = sshd.spec("id_rsa", "ssh_host_ed25519_key", &[]);
    // A copy of the known_hosts entry that OpenSSH hashes, as `HashKnownHosts yes` does.
    let kh = sshd.path("known_hosts.hashed");
    std::fs::copy(sshd.known_hosts("ssh_host_ed25519_key"), &kh).unwrap();
    let keygen = tools::require("ssh-keygen");
    run(Command::new(keygen).arg("-H").arg("-f").arg(&kh));
    let hashed = std::fs::read_to_string(&kh).unwrap();
    assert!(
        hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );
    spec.options
        .insert("known_hosts_file".into(), kh.display().to_string());
    let d = SshFactory.build(&spec).unwrap();
    let receipt = d.set_power(Action::Off, in_secs(10)).await.unwrap();
    assert!(receipt.detail.contains("quiet for"), "{receipt:?}");
    assert_eq!(sshd.marker().lines().count(), 1);
}

/// A copy of `from` in the sshd's directory, re-encrypted by `ssh-keygen -p` with
/// `passphrase` (and converted to `-m FORMAT` when given); the public key is unchanged.
fn encrypted_copy(sshd: &Sshd, from: &str, to: &str, passphrase: &str, format: Option<&str>) {
    std::fs::copy(sshd.path(from), sshd.path(to)).expect("copy key");
    let keygen = tools::require("ssh-keygen");
    let mut cmd = Command::new(keygen);
    cmd.args(["-q", "-p", "-P", "", "-N", passphrase]);
    if let Some(format) = format {
        cmd.args(["-m", format]);
    }
    run(cmd.arg("-f").arg(sshd.path(to)));
}

#[tokio::test]
async fn encrypted_keys_open_with_their_passphrase_only_and_never_show_it() {
    const PASSPHRASE: &str = "corr3ct-h0rse-passphrase";
    let sshd = Sshd::start("drop");
    encrypted_copy(&sshd, "id_fence", "id_locked", PASSPHRASE, None);
    encrypted_copy(&sshd, "id_rsa", "id_rsa_pem", PASSPHRASE, Some("PEM"));
    let locked = std::fs::read_to_string(sshd.path("id_locked")).unwrap();
    assert!(locked.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let pem = std::fs::read_to_string(sshd.path("id_rsa_pem")).unwrap();
    assert!(pem.contains("ENCRYPTED"), "{pem}");

    for key in ["id_locked", "id_rsa_pem"] {
        let with = |passphrase: Option<&str>| {
            let mut s = sshd.spec(key, "ssh_host_ed25519_key", &[]);
            if let Some(p) = passphrase {
                s.secrets.insert("passphrase".into(), SecretString::from(p));
            }
            s
        };
        for wrong in [None, Some("wrong-passphrase")] {
            let e = SshFactory.build(&with(wrong)).err().expect("refused");
            assert_eq!(e.key.as_deref(), Some("key"), "{key} {wrong:?}: {e}");
            assert!(e.message.contains("passphrase"), "{key}: {e}");
            assert!(!e.to_string().contains("wrong-passphrase"), "{key}: {e}");
        }
        let spec = with(Some(PASSPHRASE));
        let config = fencegate_ssh::SshConfig::from_spec(&spec).expect(key);
        let d = fencegate_ssh::SshDriver::new(config.clone());
        let shown = format!("{d:?} {config:?} {spec:?}");
        assert!(!shown.contains(PASSPHRASE), "{key}: {shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{key}: {shown}");
    }

    // The decrypted key is the authorized one: the command is delivered.
    let mut spec = sshd.spec("id_locked", "ssh_host_ed25519_key", &[]);
    spec.secrets
        .insert("passphrase".into(), SecretString::from(PASSPHRASE));
    let d = SshFactory.build(&spec).unwrap();
    let receipt = d.set_power(Action::Off, in_secs(10)).await.unwrap();
    assert!(receipt.detail.contains("quiet for"), "{receipt:?}");
    assert_eq!(sshd.marker().lines().count(), 1);
}
