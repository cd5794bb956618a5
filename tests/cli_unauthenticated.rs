//! Unauthenticated channels said out loud: an SNMP v1/v2c outlet's readings travel with a
//! cleartext community and no MAC, so anyone on the path can answer `Off`. `check` says so
//! (with and without `--probe`) and the proof says which readings were not authenticated.

use fencegate_bmcsim::snmp::{PduConfig, PduLab, V3User};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One v2c PDU device and one v3 (authNoPriv) device on the same simulated PDU, each
/// feeding one host.
fn inventory(dir: &Path, addr: std::net::SocketAddr) -> std::path::PathBuf {
    for (name, value) in [("community", "private"), ("auth", "authpass256")] {
        let file = dir.join(name);
        std::fs::write(&file, value).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = dir.join("fencegate.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n\n[policy]\nattempt_timeout = \"5s\"\noverall_timeout = \"8s\"\noff_hold = \"300ms\"\n\n\
             [devices.pdu-v2c]\ndriver = \"snmp\"\naddress = \"{addr}\"\npath = \"/outlet/1\"\nversion = \"2c\"\ncommunity_file = \"community\"\ntimeout_ms = \"300\"\n\n\
             [devices.pdu-v3]\ndriver = \"snmp\"\naddress = \"{addr}\"\npath = \"/outlet/2\"\nversion = \"3\"\nuser = \"fenceuser\"\nauth_protocol = \"sha256\"\nsecurity_level = \"authNoPriv\"\nauth_password_file = \"auth\"\ntimeout_ms = \"300\"\n\n\
             [hosts.old]\nlevels = [[\"pdu-v2c\"]]\n\n[hosts.new]\nlevels = [[\"pdu-v3\"]]\n"
        ),
    )
    .unwrap();
    config
}

fn fencegate(config: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env_remove("FENCEGATE_STATE_DIR")
        .env_remove("FENCEGATE_PASSWORD")
        .env("FENCEGATE_CONFIG", config)
        .timeout(std::time::Duration::from_secs(60));
    c
}

/// The warning lines of a `check` run that name `device`.
fn warnings_for(stdout: &[u8], device: &str) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains(&format!("`{device}`")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_and_the_proof_say_which_readings_anyone_could_forge() {
    let mut cfg = PduConfig::new(4);
    cfg.v3_users = vec![V3User::read_write("fenceuser", "authpass256")];
    let lab = PduLab::start(vec![cfg]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = inventory(dir.path(), lab.addr(0));

    let run = |args: &'static [&'static str]| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || fencegate(&config).args(args).output().unwrap())
    };

    for args in [&["check"][..], &["check", "--probe"][..]] {
        let out = run(args).await.unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        let v2c = warnings_for(&out.stdout, "pdu-v2c");
        assert!(
            v2c.iter()
                .any(|w| w.contains("can be forged by anyone on the path")
                    && w.contains("use v3 with auth")),
            "{args:?} flags the v2c device: {v2c:?}"
        );
        let v3 = warnings_for(&out.stdout, "pdu-v3");
        assert!(
            !v3.iter().any(|w| w.contains("forged")),
            "{args:?} does not flag the v3 device: {v3:?}"
        );
        let json = run(if args.len() == 1 {
            &["--json", "check"]
        } else {
            &["--json", "check", "--probe"]
        })
        .await
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        let flagged: Vec<&str> = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w.as_str())
            .filter(|w| w.contains("forged"))
            .collect();
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        assert!(flagged[0].contains("`pdu-v2c`"), "{flagged:?}");
    }

    // The proof: the v2c outlet's `Off` is marked as unauthenticated wherever it is shown;
    // the v3 outlet's is not.
    for (host, marked) in [("old", true), ("new", false)] {
        let out = run(if host == "old" {
            &["off", "old"]
        } else {
            &["off", "new"]
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{host}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.contains("readings NOT authenticated"),
            marked,
            "{host}: {text}"
        );
    }
    let history = run(&["history"]).await.unwrap();
    let text = String::from_utf8_lossy(&history.stdout);
    // The device lines (`level 1 pdu-v2c  snmp …`), one per proof through the device.
    let device_line =
        |l: &&str, device: &str| l.trim_start().starts_with(&format!("level 1 {device} "));
    let old: Vec<&str> = text.lines().filter(|l| device_line(l, "pdu-v2c")).collect();
    assert!(
        old.iter().all(|l| l.contains("readings NOT authenticated")),
        "{text}"
    );
    assert!(!old.is_empty(), "{text}");
    let new: Vec<&str> = text.lines().filter(|l| device_line(l, "pdu-v3")).collect();
    assert!(!new.is_empty(), "{text}");
    assert!(
        new.iter().all(|l| !l.contains("NOT authenticated")),
        "{text}"
    );
}
