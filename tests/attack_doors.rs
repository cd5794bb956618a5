//! Attacks through the real binary on the power-on lock by box and the fence-agents door's
//! exit codes, against simulated PDUs and BMCs listening on 127.0.0.1 (free ports).

use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use fencegate_bmcsim::snmp::{PduConfig, PduLab, V3User};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn fencegate(config: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env_remove("FENCEGATE_STATE_DIR")
        .env_remove("FENCEGATE_PASSWORD")
        .env("FENCEGATE_CONFIG", config)
        .timeout(std::time::Duration::from_secs(60));
    c
}

fn secret(dir: &Path, name: &str, value: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, value).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

const POLICY: &str = "[policy]\nattempt_timeout = \"5s\"\noverall_timeout = \"8s\"\noff_hold = \"300ms\"\nstorm_limit = 0\n";

/// A dual-PSU host fed by outlets 1 and 2 of one v2c PDU, configured as one device
/// (`/outlet/1,2`, as the SNMP README allows). Its lock key is `…/outlets/1,2`; an ad-hoc
/// URL for outlet 1 alone has the key `…/outlets/1`, meets no lock, and powers outlet 1 on:
/// one PSU is enough to run the fenced host. A lock on outlets must cover each outlet.
#[tokio::test(flavor = "multi_thread")]
async fn one_outlet_of_a_fenced_dual_psu_host_cannot_be_powered_on_alone() {
    let lab = PduLab::start(vec![PduConfig::new(4)]).await.unwrap();
    let addr = lab.addr(0);
    let dir = tempfile::tempdir().unwrap();
    let community = secret(dir.path(), "community", "private");
    let config = dir.path().join("fencegate.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n{POLICY}\n[devices.pdu]\ndriver = \"snmp\"\naddress = \"{addr}\"\npath = \"/outlet/1,2\"\nversion = \"2c\"\ncommunity_file = \"community\"\ntimeout_ms = \"300\"\n\n[hosts.dual]\nlevels = [[\"pdu\"]]\n"
        ),
    )
    .unwrap();
    let c = config.clone();
    let fence = tokio::task::spawn_blocking(move || {
        fencegate(&c).args(["fence", "dual"]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(fence.status.success(), "{fence:?}");
    assert!(!lab.outlet_on(0, 1) && !lab.outlet_on(0, 2));

    let url = format!(
        "snmp://{addr}/outlet/1?version=2c&community_file={}",
        community.display()
    );
    let c = config.clone();
    let on = tokio::task::spawn_blocking(move || {
        fencegate(&c)
            .args(["on", "--device", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        !lab.outlet_on(0, 1),
        "outlet 1 of the fenced host was powered on through an ad-hoc URL: exit {:?}\n{}",
        on.status.code(),
        String::from_utf8_lossy(&on.stdout)
    );
}

/// The same PDU outlets spelled with another address for the PDU (`localhost` for the
/// inventory's `127.0.0.1`): the lock key is the address as written, an SNMPv2c PDU has no
/// authenticated identity to catch it after contact, so the fenced host is powered on.
#[tokio::test(flavor = "multi_thread")]
async fn another_spelling_of_the_pdu_address_meets_the_lock() {
    let lab = PduLab::start(vec![PduConfig::new(4)]).await.unwrap();
    let addr = lab.addr(0);
    let dir = tempfile::tempdir().unwrap();
    let community = secret(dir.path(), "community", "private");
    let config = dir.path().join("fencegate.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n{POLICY}\n[devices.pdu]\ndriver = \"snmp\"\naddress = \"{addr}\"\npath = \"/outlet/3\"\nversion = \"2c\"\ncommunity_file = \"community\"\ntimeout_ms = \"300\"\n\n[hosts.h]\nlevels = [[\"pdu\"]]\n"
        ),
    )
    .unwrap();
    let c = config.clone();
    let fence =
        tokio::task::spawn_blocking(move || fencegate(&c).args(["fence", "h"]).output().unwrap())
            .await
            .unwrap();
    assert!(fence.status.success(), "{fence:?}");
    assert!(!lab.outlet_on(0, 3));

    let url = format!(
        "snmp://localhost:{}/outlet/3?version=2c&community_file={}",
        addr.port(),
        community.display()
    );
    let c = config.clone();
    let on = tokio::task::spawn_blocking(move || {
        fencegate(&c)
            .args(["on", "--device", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        !lab.outlet_on(0, 3),
        "the fenced host's outlet was powered on through another spelling of the PDU: exit {:?}\n{}",
        on.status.code(),
        String::from_utf8_lossy(&on.stdout)
    );
}

/// Two hosts on one SNMPv3 PDU, their outlets given in the documented URL-path form
/// (`path = "/outlet/N"`). The identity of the box behind a device is remembered under
/// driver + address + *path*, so each outlet is a different "endpoint"; the PDU's engine ID
/// (the same for all its outlets) is remembered for the first outlet contacted, and every
/// other outlet is then refused as "two addresses claim one box". Host b can no longer be
/// fenced once host a was.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_host_on_an_snmpv3_pdu_can_still_be_fenced() {
    let mut cfg = PduConfig::new(4);
    cfg.v3_users = vec![V3User::read_write("fenceuser", "authpass256")];
    let lab = PduLab::start(vec![cfg]).await.unwrap();
    let config = v3_inventory(&lab, false);
    let (dir, config) = config;
    for host in ["a", "b"] {
        let c = config.clone();
        let fence = tokio::task::spawn_blocking(move || {
            fencegate(&c).args(["fence", host]).output().unwrap()
        })
        .await
        .unwrap();
        assert!(
            fence.status.success(),
            "fence {host}: exit {:?}\n{}",
            fence.status.code(),
            String::from_utf8_lossy(&fence.stdout)
        );
    }
    drop(dir);
}

/// Two different SNMPv3 PDUs of the same model. The driver reports sysName and sysObjectID
/// as authenticated identity facts besides the engine ID, and the journal treats any one
/// shared fact as "the same box": sysObjectID names the PDU *model* (the same on every APC
/// PDU of that model), so once one PDU is remembered, every other PDU of that model is
/// refused as "two addresses claim one box" and its hosts cannot be fenced. (The same fact
/// makes the identity lock of one fenced host cover every outlet of every such PDU.)
#[tokio::test(flavor = "multi_thread")]
async fn a_second_pdu_of_the_same_model_is_another_box() {
    let mut cfg = PduConfig::new(4);
    cfg.v3_users = vec![V3User::read_write("fenceuser", "authpass256")];
    let lab = PduLab::start(vec![cfg.clone(), cfg]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    secret(dir.path(), "auth", "authpass256");
    let config = dir.path().join("fencegate.toml");
    let device = |name: &str, pdu: usize| {
        format!(
            "[devices.{name}]\ndriver = \"snmp\"\naddress = \"{}\"\noutlet = \"1\"\nversion = \"3\"\nuser = \"fenceuser\"\nauth_protocol = \"sha256\"\nsecurity_level = \"authNoPriv\"\nauth_password_file = \"auth\"\ntimeout_ms = \"300\"\n\n",
            lab.addr(pdu)
        )
    };
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n{POLICY}\n{}{}[hosts.a]\nlevels = [[\"pdu0-1\"]]\n\n[hosts.b]\nlevels = [[\"pdu1-1\"]]\n",
            device("pdu0-1", 0),
            device("pdu1-1", 1)
        ),
    )
    .unwrap();
    for host in ["a", "b"] {
        let c = config.clone();
        let fence = tokio::task::spawn_blocking(move || {
            fencegate(&c).args(["fence", host]).output().unwrap()
        })
        .await
        .unwrap();
        assert!(
            fence.status.success(),
            "fence {host}: exit {:?}\n{}",
            fence.status.code(),
            String::from_utf8_lossy(&fence.stdout)
        );
    }
}

/// Hosts a (outlet 1) and b (outlet 2) on one SNMPv3 PDU.
fn v3_inventory(lab: &PduLab, by_option: bool) -> (tempfile::TempDir, PathBuf) {
    let addr = lab.addr(0);
    let dir = tempfile::tempdir().unwrap();
    secret(dir.path(), "auth", "authpass256");
    let config = dir.path().join("fencegate.toml");
    let device = |name: &str, outlet: u32| {
        let where_ = if by_option {
            format!("outlet = \"{outlet}\"")
        } else {
            format!("path = \"/outlet/{outlet}\"")
        };
        format!(
            "[devices.{name}]\ndriver = \"snmp\"\naddress = \"{addr}\"\n{where_}\nversion = \"3\"\nuser = \"fenceuser\"\nauth_protocol = \"sha256\"\nsecurity_level = \"authNoPriv\"\nauth_password_file = \"auth\"\ntimeout_ms = \"300\"\n\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n{POLICY}\n{}{}[hosts.a]\nlevels = [[\"pdu-a\"]]\n\n[hosts.b]\nlevels = [[\"pdu-b\"]]\n",
            device("pdu-a", 1),
            device("pdu-b", 2)
        ),
    )
    .unwrap();
    (dir, config)
}

/// (Outlets given as `outlet = "N"` options.) The identity lock is keyed by the PDU's SNMPv3 engine ID, which names the whole PDU, not
/// an outlet: fencing host a (outlet 1) locks every outlet of that PDU, so `on b` (outlet 2,
/// never fenced) is refused as "this box was fenced". After one fence no other host on that
/// PDU can be powered on through fencegate (and Pacemaker's reboot of b never powers it on).
#[tokio::test(flavor = "multi_thread")]
async fn fencing_one_outlet_does_not_lock_the_other_hosts_of_the_pdu() {
    let mut cfg = PduConfig::new(4);
    cfg.v3_users = vec![V3User::read_write("fenceuser", "authpass256")];
    let lab = PduLab::start(vec![cfg]).await.unwrap();
    lab.set_outlet(0, 2, false);
    // Outlets as options: both devices share the PDU's identity record (no refusal as
    // "two addresses claim one box"), so what is left is the identity lock itself.
    let (_dir, config) = v3_inventory(&lab, true);
    let c = config.clone();
    let fence =
        tokio::task::spawn_blocking(move || fencegate(&c).args(["fence", "a"]).output().unwrap())
            .await
            .unwrap();
    assert!(fence.status.success(), "{fence:?}");
    let c = config.clone();
    let on = tokio::task::spawn_blocking(move || fencegate(&c).args(["on", "b"]).output().unwrap())
        .await
        .unwrap();
    assert!(
        lab.outlet_on(0, 2),
        "host b (outlet 2, never fenced) could not be powered on: exit {:?}\n{}",
        on.status.code(),
        String::from_utf8_lossy(&on.stdout)
    );
}

/// The agent door's `status` exits 2 ("off") from a reading of a BMC that is not the box
/// the inventory pins for the host: it reads without checking pins (or the remembered
/// identity), while `fence` refuses the same device ("pinned guid"). Only the host's own
/// box reading off may exit 2.
#[test]
fn agent_status_off_comes_only_from_the_pinned_box() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let lab = rt
        .block_on(IpmiLab::start(vec![
            BmcConfig::new("admin", "sim-password");
            2
        ]))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pw = secret(dir.path(), "bmc.pw", "sim-password\n");
    let config = dir.path().join("fencegate.toml");
    let write = |pin: &str| {
        let mut toml = format!("state_dir = \"state\"\n{POLICY}\n");
        for i in 0..2 {
            toml.push_str(&format!(
                "[devices.bmc{i}]\ndriver = \"ipmi\"\naddress = \"{}\"\nuser = \"admin\"\npassword_file = \"{}\"\n{}\n",
                lab.addr(i),
                pw.display(),
                if i == 0 { pin } else { "" }
            ));
        }
        toml.push_str("[hosts.n0]\nlevels = [[\"bmc0\"]]\n[hosts.n1]\nlevels = [[\"bmc1\"]]\n");
        std::fs::write(&config, toml).unwrap();
    };
    write("");
    let out = fencegate(&config)
        .args(["check", "--probe"])
        .output()
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let guid1 = out
        .lines()
        .find(|l| l.starts_with("[devices.bmc1]  guid = "))
        .and_then(|l| l.split('"').nth(1))
        .unwrap_or_else(|| panic!("no pin line for bmc1 in: {out}"))
        .to_owned();
    // n0's device is pinned to bmc1's box; the box that answers at bmc0's address is
    // another one, and it reads off.
    write(&format!("guid = \"{guid1}\"\n"));
    lab.set_power(0, false);
    let status = fencegate(&config)
        .arg("agent")
        .write_stdin("action=status\nplug=n0\n")
        .output()
        .unwrap();
    assert_ne!(
        status.status.code(),
        Some(2),
        "status: off from a box that is not n0's pinned one\n{}\n{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    drop(lab);
}
