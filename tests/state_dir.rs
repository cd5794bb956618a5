//! The state directory's owner and group decide who shares the journal: root running a
//! command must not lock the OpenNebula hook (running as another user) out of it.
//! These tests change file ownership and run fencegate as another user, so they need root
//! (CI and scripts/test-all run as root); elsewhere they fail saying so.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

/// The unprivileged user the hook stands for (nobody/nogroup on Debian).
const HOOK_UID: u32 = 65534;
const HOOK_GID: u32 = 65534;

fn require_root() {
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        me, 0,
        "these tests change ownership: run them as root (scripts/test-all does)"
    );
}

fn fencegate(state: &Path, args: &[&str], as_hook: bool) -> std::process::Output {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("fencegate"));
    c.env_remove("FENCEGATE_CONFIG")
        .env_remove("FENCEGATE_STATE_DIR")
        .arg("--state-dir")
        .arg(state)
        .args(args);
    if as_hook {
        // As root, std drops the supplementary groups when it sets the uid.
        c.uid(HOOK_UID).gid(HOOK_GID);
    }
    c.output().unwrap()
}

/// A state directory owned by the hook's user, group-shared, under a directory everyone
/// may traverse.
fn hook_owned_state() -> (tempfile::TempDir, std::path::PathBuf) {
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = top.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(HOOK_UID), Some(HOOK_GID)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o770)).unwrap();
    (top, state)
}

#[test]
fn root_running_a_command_leaves_a_journal_the_hook_can_use() {
    require_root();
    let (_top, state) = hook_owned_state();
    let out = fencegate(&state, &["unfence", "kvm01"], false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let journal = state.join("journal.sqlite");
    let m = std::fs::metadata(&journal).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (HOOK_UID, HOOK_GID),
        "owned like its directory"
    );
    assert_eq!(
        m.mode() & 0o777,
        0o660,
        "group read-write, as the directory is shared"
    );
    assert_eq!(
        std::fs::metadata(&state).unwrap().mode() & 0o777,
        0o770,
        "a directory fencegate did not create is never chmodded"
    );
    // The hook, as its own user, can now use the journal root created.
    let out = fencegate(&state, &["history"], true);
    assert!(
        out.status.success(),
        "the hook is locked out: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_journal_the_user_cannot_write_is_refused_with_the_fix() {
    require_root();
    let (_top, state) = hook_owned_state();
    // A journal left root-owned and private by an older fencegate run as root.
    let journal = state.join("journal.sqlite");
    std::fs::write(&journal, b"").unwrap();
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = fencegate(&state, &["history"], true);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be written by this user"), "{err}");
    assert!(
        err.contains(&format!("chown {HOOK_UID}:{HOOK_GID}")),
        "{err}"
    );
}
