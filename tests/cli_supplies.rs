//! PDU outlets have no identity of their own: `check --probe` compares a host's outlet level
//! with the power supplies its BMC reports, and says when a supply would be left fed.

use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use fencegate_bmcsim::snmp::{PduConfig, PduLab};
use std::os::unix::fs::PermissionsExt;

#[tokio::test(flavor = "multi_thread")]
async fn an_outlet_level_short_of_the_bmcs_supplies_is_flagged() {
    let mut bmc = BmcConfig::new("admin", "sim-password");
    bmc.power_supplies = 2;
    let ipmi = IpmiLab::start(vec![bmc]).await.unwrap();
    let pdus = PduLab::start(vec![PduConfig::new(8)]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("bmc.pw");
    std::fs::write(&pw, "sim-password").unwrap();
    let community = dir.path().join("community");
    std::fs::write(&community, "private").unwrap();
    for f in [&pw, &community] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = dir.path().join("fencegate.toml");
    let write = |outlets: &str| {
        std::fs::write(
            &config,
            format!(
                "state_dir = \"state\"\n[policy]\noff_hold = \"300ms\"\n\
                 [devices.bmc]\ndriver = \"ipmi\"\naddress = \"{}\"\nuser = \"admin\"\npassword_file = \"{}\"\n\
                 [devices.pdu]\ndriver = \"snmp\"\naddress = \"{}\"\npath = \"/outlet/{outlets}\"\nversion = \"2c\"\ncommunity_file = \"{}\"\n\
                 [hosts.kvm01]\nlevels = [[\"bmc\"], [\"pdu\"]]\n",
                ipmi.addr(0),
                pw.display(),
                pdus.addr(0),
                community.display()
            ),
        )
        .unwrap();
    };
    let check = || {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            assert_cmd::Command::cargo_bin("fencegate")
                .unwrap()
                .env_remove("FENCEGATE_STATE_DIR")
                .env("FENCEGATE_CONFIG", &config)
                .args(["check", "--probe"])
                .timeout(std::time::Duration::from_secs(60))
                .output()
                .unwrap()
        })
    };
    // One outlet for a host whose BMC reports two supplies.
    write("4");
    let out = check().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("level 2 switches 1 outlet(s), but BMC `bmc` reports 2 power supplies"),
        "{text}"
    );
    // Both supplies switched: no such warning.
    write("4,5");
    let out = check().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("power supplies"), "{text}");
    assert!(out.status.success(), "{text}");
}
