//! Secrets through the front door: whatever a driver or agent prints, however a URL is
//! mistyped, and whichever fallback password is set, no part of a secret reaches an error,
//! `--json`, or the journal (`history --details`), and a fallback password reaches only the
//! drivers that take one.

use assert_cmd::Command;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SECRET: &str = "Qz7-Straddle-Pw-91";

fn fencegate() -> Command {
    let mut c = Command::cargo_bin("fencegate").unwrap();
    c.env_remove("FENCEGATE_STATE_DIR")
        .env_remove("FENCEGATE_PASSWORD")
        .env_remove("FENCEGATE_CONFIG")
        .timeout(Duration::from_secs(60));
    c
}

/// A file only its owner can read.
fn private_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A program copied from the external driver's test fixtures into `dir`, mode 0755.
fn program(dir: &Path, fixture: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("drivers/external/tests/fixtures")
        .join(fixture);
    let to = dir.join(fixture);
    std::fs::copy(from, &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    to
}

/// No prefix of four or more characters of the secret is in `text`.
fn assert_no_part_of_secret(what: &str, text: &str) {
    for n in 4..=SECRET.len() {
        assert!(
            !text.contains(&SECRET[..n]),
            "{what}: {n} characters of the secret leaked:\n{text}"
        );
    }
}

struct Run {
    code: Option<i32>,
    text: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code(),
        text: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Fence an ad-hoc host through `url`, in text and in `--json`, then read its journal back;
/// the secret must not show anywhere, and the quoted words must (the cut is really made).
fn fence_and_read_back(url: &str, name: &str, quoted: &str) {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    for json in [false, true] {
        let mut cmd = fencegate();
        cmd.args([
            "fence",
            "--device",
            url,
            "--name",
            name,
            "--state-dir",
            state_dir,
            "--off-hold",
            "300ms",
            "--storm-settle",
            "0s",
        ]);
        if json {
            cmd.arg("--json");
        }
        let r = run(&mut cmd);
        assert_eq!(r.code, Some(1), "the fence fails: {}", r.text);
        assert!(r.text.contains(quoted), "json={json}: {}", r.text);
        assert_no_part_of_secret(&format!("fence json={json}"), &r.text);
    }
    for json in [false, true] {
        let mut cmd = fencegate();
        cmd.args(["history", name, "--details", "--state-dir", state_dir]);
        if json {
            cmd.arg("--json");
        }
        let r = run(&mut cmd);
        assert_eq!(r.code, Some(0), "{}", r.text);
        assert!(r.text.contains(quoted), "history json={json}: {}", r.text);
        assert_no_part_of_secret(&format!("history json={json}"), &r.text);
    }
}

#[test]
fn a_secret_straddling_a_cut_never_reaches_errors_json_or_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", &format!("{SECRET}\n"));
    let driver = program(dir.path(), "secret-at-cut.sh");
    // The driver refuses its configuration quoting the password across the 200-byte cut.
    fence_and_read_back(
        &format!(
            "external://{}?args=refuse&password_file={}",
            driver.display(),
            pw.display()
        ),
        "kvm-refuse",
        "refused its configuration: xxxx",
    );
    // Its stderr line carries the password across the 300-byte line cut.
    fence_and_read_back(
        &format!(
            "external://{}?args=stderr&password_file={}",
            driver.display(),
            pw.display()
        ),
        "kvm-stderr",
        "stderr: xxxx",
    );
    // A fence agent's ERROR message carries it across the 200-byte quote.
    let agent = program(dir.path(), "fake-agent-secret-at-cut.sh");
    fence_and_read_back(
        &format!(
            "fence-agent://{}?how=error&pad=194&switches_power=true&password_file={}",
            agent.display(),
            pw.display()
        ),
        "kvm-agent",
        "xxxx",
    );
}

#[test]
fn a_refused_url_never_echoes_its_secret() {
    for url in [
        format!("ipmi://admin@127.0.0.1:623?password={SECRET}"),
        format!("ipmi://admin@127.0.0.1:623?PASSWORD={SECRET}"),
        format!("ipmi://admin@127.0.0.1:623?Password={SECRET}"),
        format!("ipmi://admin@127.0.0.1:623?Kg={SECRET}"),
        format!("snmp://127.0.0.1/outlet/1?Community={SECRET}"),
        format!("snmp://127.0.0.1/outlet/1?priv_password={SECRET}"),
        format!("redfish://admin@127.0.0.1/?TOKEN={SECRET}"),
        format!("ipmi://admin:{SECRET}@127.0.0.1:623"),
        "ipmi://admin:Qz7-Str/addle-Pw-91@127.0.0.1".to_owned(),
        "ipmi://admin:Qz7-Str?addle-Pw-91@127.0.0.1".to_owned(),
        "ipmi://admin:Qz7-Str@addle-Pw-91@127.0.0.1".to_owned(),
    ] {
        for json in [false, true] {
            let mut cmd = fencegate();
            cmd.args(["status", "--device", &url]);
            if json {
                cmd.arg("--json");
            }
            let r = run(&mut cmd);
            assert_eq!(r.code, Some(2), "{url}: {}", r.text);
            assert!(r.text.contains("device URL"), "{url}: {}", r.text);
            assert_no_part_of_secret(&url, &r.text);
            for part in ["addle-Pw-91", "Qz7-Str"] {
                assert!(!r.text.contains(part), "{url}: {}", r.text);
            }
        }
    }
}

/// A driver program that answers `status` with `On` if its configuration carries no secret
/// at all, and fails naming the roles it was given otherwise.
fn probe(dir: &Path) -> PathBuf {
    let p = dir.join("probe.sh");
    std::fs::write(
        &p,
        r#"#!/bin/sh
read -r HELLO
echo '{"type":"hello","protocol":"fencegate-driver","version":"1.0","name":"probe","actions":["off","on"],"reads_power_state":true}'
read -r CONFIGURE
echo '{"type":"response","id":0,"ok":true}'
read -r REQUEST
case "$CONFIGURE" in
  *'"secrets":{}'*|*'"secrets"'*'{ }'*) echo '{"type":"response","id":1,"ok":true,"state":"On"}' ;;
  *'"secrets"'*) echo '{"type":"response","id":1,"ok":false,"error":{"kind":"protocol","detail":"was handed a secret"}}' ;;
  *) echo '{"type":"response","id":1,"ok":true,"state":"On"}' ;;
esac
read -r REQUEST
"#,
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn the_fallback_password_never_reaches_an_external_program() {
    let dir = tempfile::tempdir().unwrap();
    let program = probe(dir.path());
    let url = format!("external://{}", program.display());
    let pw = private_file(dir.path(), "pw", "bmc-fallback-pw\n");
    let runs: [(&str, Vec<String>); 3] = [
        ("FENCEGATE_PASSWORD", vec![]),
        ("", vec!["--password-file".into(), pw.display().to_string()]),
        ("", vec!["--password-env".into(), "FG_TEST_BMC_PW".into()]),
    ];
    for (env, extra) in runs {
        let mut cmd = fencegate();
        cmd.args(["status", "--device", &url])
            .args(&extra)
            .env("FG_TEST_BMC_PW", "bmc-fallback-pw");
        if !env.is_empty() {
            cmd.env(env, "bmc-fallback-pw");
        }
        let r = run(&mut cmd);
        assert_eq!(r.code, Some(0), "{env} {extra:?}: {}", r.text);
        assert!(!r.text.contains("handed a secret"), "{}", r.text);
    }
    // The same program given a password by its own reference does get it.
    let r = run(fencegate().args([
        "status",
        "--device",
        &format!("{url}?password_file={}", pw.display()),
    ]));
    assert_eq!(r.code, Some(1), "{}", r.text);
    assert!(r.text.contains("handed a secret"), "{}", r.text);
}

#[test]
fn secret_files_must_be_private_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let loose = private_file(dir.path(), "loose", "pw\n");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = run(fencegate().args([
        "status",
        "--device",
        "ipmi://admin@127.0.0.1:9",
        "--password-file",
        loose.to_str().unwrap(),
    ]));
    assert_eq!(r.code, Some(2), "{}", r.text);
    assert!(r.text.contains("mode 0640"), "{}", r.text);

    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let started = Instant::now();
    let r = run(fencegate()
        .args([
            "status",
            "--device",
            &format!("ipmi://admin@127.0.0.1:9?password_file={}", fifo.display()),
        ])
        .timeout(Duration::from_secs(20)));
    assert_eq!(r.code, Some(2), "{}", r.text);
    assert!(r.text.contains("a FIFO"), "{}", r.text);
    assert!(started.elapsed() < Duration::from_secs(10));
}
