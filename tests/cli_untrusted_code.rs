//! Code fencegate runs as root: a relative driver path means the same file wherever
//! fencegate is started from (the inventory's directory, as for secret files), and a program
//! others could replace disables the hosts that use it, with the path and the fix in
//! `check`.

mod common;

use common::scripted_driver;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn fencegate(config: &Path, cwd: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env_remove("FENCEGATE_STATE_DIR")
        .env_remove("FENCEGATE_PASSWORD")
        .env("FENCEGATE_CONFIG", config)
        .current_dir(cwd)
        .timeout(std::time::Duration::from_secs(60));
    c
}

#[test]
fn a_relative_driver_path_is_the_inventorys_and_a_replaceable_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let drivers = dir.path().join("drivers");
    std::fs::create_dir(&drivers).unwrap();
    let program = drivers.join("scripted-driver");
    std::fs::copy(scripted_driver(), &program).unwrap();
    chmod(&program, 0o755);
    let config = dir.path().join("fencegate.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n\n[devices.n1-bmc]\ndriver = \"external\"\naddress = \"drivers/scripted-driver\"\nstate_file = {:?}\n\n[hosts.n1]\nlevels = [[\"n1-bmc\"]]\n",
            dir.path().join("n1.power").display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("n1.power"), "off\n").unwrap();

    // Started from elsewhere (a service starts in /, a hook in its own directory), the
    // relative address still names the file next to the inventory.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(elsewhere.path().join("drivers")).unwrap();
    let out = fencegate(&config, elsewhere.path())
        .args(["status", "n1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("off"),
        "{out:?}"
    );
    fencegate(&config, Path::new("/"))
        .arg("check")
        .assert()
        .code(0);

    // The drivers directory becomes writable by everyone: anyone could swap the program.
    chmod(&drivers, 0o777);
    let out = fencegate(&config, Path::new("/"))
        .arg("check")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("the directory {}", drivers.display()))
            && text.contains(&format!("chmod go-w {}", drivers.display()))
            && text.contains("devices.n1-bmc"),
        "{text}"
    );
    let out = fencegate(&config, Path::new("/"))
        .args(["off", "n1"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "nothing runs: {out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("power_verified_off"),
        "{out:?}"
    );
}
