//! Who owns an open operation: a lock the operating system holds for as long as the owning
//! process lives.
//!
//! Wall-clock leases and PIDs both lie across processes: a process whose clock runs ahead
//! declares a live fence abandoned, and one in another PID namespace cannot see its owner's
//! PID. So each open operation has a lock file next to the journal, locked (`flock`) by the
//! process that runs it. The kernel drops the lock the instant that process dies, however it
//! dies, in whatever namespace: "is the owner alive?" is "is the lock still held?", decided at
//! once and without any clock.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The lock files of a state directory, and the ones this process holds.
#[derive(Debug)]
pub(crate) struct Owners {
    dir: PathBuf,
    /// Mode and owner for new lock files: those of the journal, so every process sharing it
    /// can open them to test the lock.
    mode: u32,
    owner: (u32, u32),
    held: Mutex<HashMap<String, File>>,
}

/// Whether an operation's owner still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Its lock is held (by this process or another).
    Alive,
    /// Nobody holds its lock: the owner is gone.
    Gone,
}

impl Owners {
    /// The lock files of the journal in `state_dir`, created with `mode` and given `owner`
    /// (uid, gid) where this process may.
    pub(crate) fn new(state_dir: &Path, mode: u32, owner: (u32, u32)) -> Self {
        Owners {
            dir: state_dir.to_owned(),
            mode,
            owner,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, request_id: &str) -> PathBuf {
        // Request ids are digits and dashes; anything else is replaced, never trusted.
        let safe: String = request_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("op-{safe}.lock"))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, File>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lock a new operation's file before its record becomes visible, so no other process can
    /// ever see the record without a live owner.
    pub(crate) fn claim(&self, request_id: &str) -> io::Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        // Already ours (announced to the storm guard before it began).
        if self.held().contains_key(request_id) {
            return Ok(());
        }
        let path = self.path(request_id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(self.mode)
            .open(&path)?;
        // Like the journal: the directory's owner and group, so others can test the lock.
        let _ = std::os::unix::fs::fchown(&file, Some(self.owner.0), Some(self.owner.1))
            .or_else(|_| std::os::unix::fs::fchown(&file, None, Some(self.owner.1)));
        let _ = file.set_permissions(std::fs::Permissions::from_mode(self.mode));
        match file.try_lock() {
            Ok(()) => {
                self.held().insert(request_id.to_owned(), file);
                Ok(())
            }
            Err(TryLockError::WouldBlock) => Err(io::Error::other(format!(
                "{} is locked by another process",
                path.display()
            ))),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Take over the operation of a dead owner (for reconciliation); false when its lock is
    /// held after all (the owner lives, or another process reconciles it).
    pub(crate) fn take_over(&self, request_id: &str) -> bool {
        if self.held().contains_key(request_id) {
            return false;
        }
        self.claim(request_id).is_ok()
    }

    /// Whether the owner of an open operation still runs. `young` says the record is still
    /// within its lease: a lock file missing then (someone deleted it while the owner ran)
    /// proves nothing, so the owner counts as alive until the lease ends.
    pub(crate) fn status(&self, request_id: &str, young: bool) -> Owner {
        if self.held().contains_key(request_id) {
            return Owner::Alive;
        }
        match File::open(self.path(request_id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && young => Owner::Alive,
            // No lock file and past its lease: its owner is long gone (or predates owners).
            Err(e) if e.kind() == io::ErrorKind::NotFound => Owner::Gone,
            // A file we cannot open cannot be tested: never declare its owner dead.
            Err(_) => Owner::Alive,
            Ok(file) => match file.try_lock() {
                Ok(()) => Owner::Gone,
                Err(_) => Owner::Alive,
            },
        }
    }

    /// Remove the lock file of an announcement or operation whose owner is gone (nobody
    /// holds its lock): nothing will ever release it otherwise.
    pub(crate) fn forget(&self, request_id: &str) {
        if self.held().contains_key(request_id) {
            return;
        }
        let path = self.path(request_id);
        if let Ok(file) = File::open(&path)
            && file.try_lock().is_ok()
        {
            let _ = std::fs::remove_file(&path);
        }
    }

    /// The operation ended (its record is closed): delete its lock file, then let go of it.
    pub(crate) fn release(&self, request_id: &str) {
        if let Some(file) = self.held().remove(request_id) {
            let _ = std::fs::remove_file(self.path(request_id));
            drop(file);
        }
    }
}

/// The filesystem type of the mount holding `path`, from `/proc/self/mountinfo`.
pub(crate) fn filesystem_of(path: &Path) -> Option<String> {
    let canonical = std::fs::canonicalize(path).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mount_type(&mountinfo, &canonical)
}

/// The filesystem type of the longest mount point containing `path` in a mountinfo text.
pub(crate) fn mount_type(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mount_point), Some(fstype)) = (fields.get(4), fields.get(dash + 1)) else {
            continue;
        };
        // Mount points escape spaces and such as octal (`\040`).
        let mount_point = unescape(mount_point);
        if path.starts_with(&mount_point) {
            let len = mount_point.len();
            if best.as_ref().is_none_or(|(l, _)| len >= *l) {
                best = Some((len, (*fstype).to_owned()));
            }
        }
    }
    best.map(|(_, t)| t)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v as char);
            i += 4;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Filesystems whose locking SQLite's WAL mode and `flock` cannot rely on.
pub(crate) const NETWORK_FILESYSTEMS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "afs",
    "fuse.sshfs",
    "ncpfs",
];

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:40 / /var/lib/fencegate rw,relatime shared:5 - nfs4 srv:/export rw,vers=4.2
31 22 0:41 / /mnt/with\\040space rw,relatime - tmpfs tmpfs rw
";

    #[test]
    fn the_longest_mount_point_decides() {
        assert_eq!(
            mount_type(MOUNTINFO, Path::new("/var/lib/fencegate/journal.sqlite")).as_deref(),
            Some("nfs4")
        );
        assert_eq!(
            mount_type(MOUNTINFO, Path::new("/var/lib/other")).as_deref(),
            Some("ext4")
        );
        assert_eq!(
            mount_type(MOUNTINFO, Path::new("/mnt/with space/x")).as_deref(),
            Some("tmpfs")
        );
    }

    #[test]
    fn a_lock_is_held_while_its_file_is_open_and_gone_after() {
        let dir = tempfile::tempdir().unwrap();
        let mine = Owners::new(dir.path(), 0o600, (0, 0));
        let other = Owners::new(dir.path(), 0o600, (0, 0));
        mine.claim("1-2-3").unwrap();
        assert_eq!(other.status("1-2-3", false), Owner::Alive);
        assert!(
            !other.take_over("1-2-3"),
            "a live owner's operation is not taken over"
        );
        mine.release("1-2-3");
        assert_eq!(other.status("1-2-3", false), Owner::Gone);
        assert_eq!(other.status("never-claimed", false), Owner::Gone);
        assert_eq!(
            other.status("never-claimed", true),
            Owner::Alive,
            "young: cannot tell"
        );
    }
}
