//! Refusing code that someone else could replace. fencegate runs driver programs, fence
//! agents and plugin libraries as its own user, normally root: a program that a group, every
//! local user or another account can rewrite, or that sits in a directory where they can
//! swap it, is a way to run code as root. So before a device is built, the whole path to
//! the file is walked, links followed, and each directory and the file itself is judged.

use crate::SpecError;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// More links than this on one path is a loop (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Write permission for the group and for others.
const GROUP_OR_OTHER_WRITE: u32 = 0o022;

/// The sticky bit: in a shared directory only a file's owner may rename or remove it.
const STICKY: u32 = 0o1000;

/// Check the program or library at `path` (`what` names it in messages, e.g. "driver
/// program") and return it as an absolute path to run or load, so that no search path
/// (`PATH`, the dynamic loader's) can later pick another file than the one checked. A
/// relative path is taken from the working directory; the inventory resolves relative
/// addresses against its own directory before a driver sees them.
///
/// Refused, with a [`SpecError`] on `address` naming the path and the fix: a file or a
/// directory on the way to it (every one up to `/`, through every link) that is owned by
/// a user other than root or fencegate's own; a file that is group- or world-writable; a
/// directory that is group- or world-writable without the sticky bit; anything that is
/// not a regular file at the end.
pub fn trusted_file(path: &Path, what: &str) -> Result<PathBuf, SpecError> {
    trusted(path).map_err(|problem| {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        SpecError::for_key("address", format!("{what} {}: {problem}", shown.display()))
    })
}

/// The check behind [`trusted_file`], for callers with their own error type (the plugin
/// loader): the absolute path, or what is wrong as a clause to put after the path ("it is
/// group- or world-writable …; `chmod go-w …`").
pub fn trusted(path: &Path) -> Result<PathBuf, String> {
    let absolute = std::path::absolute(path).map_err(|e| e.to_string())?;
    // The effective uid owns this process's /proc entry (std only, no libc binding).
    let euid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("cannot tell which user runs fencegate: {e}"))?;
    walk(&absolute, euid).map(|()| absolute)
}

/// Walk `path` the way the kernel resolves it, judging every directory entered, every
/// directory holding a link, and the file reached.
fn walk(path: &Path, euid: u32) -> Result<(), String> {
    let mut current = PathBuf::from("/");
    judge_at(&current, Kind::Directory, euid)?;
    let mut pending: VecDeque<OsString> = names(path);
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            // `current` holds no links, so its parent is the real one (already judged).
            current.pop();
            continue;
        }
        let next = current.join(&name);
        let meta =
            std::fs::symlink_metadata(&next).map_err(|e| format!("{}: {e}", next.display()))?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err("too many links".to_owned());
            }
            // The link sits in `current`, judged already; where it points is walked next.
            let target =
                std::fs::read_link(&next).map_err(|e| format!("{}: {e}", next.display()))?;
            if target.is_absolute() {
                current = PathBuf::from("/");
            }
            let mut resolved = names(&target);
            resolved.extend(pending.drain(..));
            pending = resolved;
            continue;
        }
        if meta.is_dir() {
            judge(&next, &meta, Kind::Directory, euid)?;
        } else if !pending.is_empty() {
            return Err(format!("{} is not a directory", next.display()));
        }
        current = next;
    }
    judge_at(&current, Kind::File, euid)
}

/// The names of `path`'s components, `..` kept, `.` and `/` dropped.
fn names(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
}

fn judge_at(path: &Path, kind: Kind, euid: u32) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    judge(path, &meta, kind, euid)
}

fn judge(path: &Path, meta: &std::fs::Metadata, kind: Kind, euid: u32) -> Result<(), String> {
    if kind == Kind::File && !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    let subject = match kind {
        Kind::File => "it".to_owned(),
        Kind::Directory => format!("the directory {} on its way", path.display()),
    };
    match verdict(kind, meta.mode(), meta.uid(), euid) {
        None => Ok(()),
        Some(Unsafe::Owner) => Err(format!(
            "{subject} is owned by uid {}, neither root nor fencegate's user (uid {euid}), \
             who could replace what fencegate runs as its own user; `chown root {}` (or move \
             it to a root-owned place)",
            meta.uid(),
            path.display()
        )),
        Some(Unsafe::Writable) => Err(format!(
            "{subject} is group- or world-writable (mode {:04o}){}, so others could replace \
             what fencegate runs as its own user; `chmod go-w {}`",
            meta.mode() & 0o7777,
            if kind == Kind::Directory {
                " without the sticky bit"
            } else {
                ""
            },
            path.display()
        )),
    }
}

/// Why a file or directory could be replaced by someone other than root or fencegate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unsafe {
    /// Owned by another non-root user.
    Owner,
    /// Writable by a group or by everyone (a directory: without the sticky bit).
    Writable,
}

/// The rule itself, on a file's mode and owner and fencegate's effective uid.
fn verdict(kind: Kind, mode: u32, uid: u32, euid: u32) -> Option<Unsafe> {
    if uid != 0 && uid != euid {
        return Some(Unsafe::Owner);
    }
    let writable = mode & GROUP_OR_OTHER_WRITE != 0;
    let shared_safely = kind == Kind::Directory && mode & STICKY != 0;
    (writable && !shared_safely).then_some(Unsafe::Writable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::Permissions;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    /// A temp directory (private to this user) holding an executable `prog`.
    fn lab() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let prog = dir.path().join("prog");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        chmod(&prog, 0o755);
        (dir, prog)
    }

    fn refused(path: &Path) -> String {
        let e = trusted_file(path, "driver program").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("address"));
        e.message
    }

    #[test]
    fn a_private_program_is_accepted_as_an_absolute_path() {
        let (dir, prog) = lab();
        assert_eq!(trusted_file(&prog, "driver program").unwrap(), prog);
        let dotted = dir.path().join("sub/../prog");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(trusted_file(&dotted, "x").unwrap(), dotted);
    }

    #[test]
    fn a_group_or_world_writable_program_is_refused_naming_it_and_the_fix() {
        let (_dir, prog) = lab();
        for mode in [0o775, 0o757, 0o777] {
            chmod(&prog, mode);
            let m = refused(&prog);
            assert!(
                m.starts_with(&format!(
                    "driver program {}: it is group- or world-writable",
                    prog.display()
                )),
                "{m}"
            );
            assert!(m.contains(&format!("chmod go-w {}", prog.display())), "{m}");
        }
    }

    #[test]
    fn a_writable_directory_on_the_way_is_refused_unless_sticky() {
        let (dir, _) = lab();
        let shared = dir.path().join("shared");
        let inner = shared.join("bin");
        std::fs::create_dir_all(&inner).unwrap();
        let prog = inner.join("prog");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        chmod(&prog, 0o755);
        chmod(&shared, 0o777);
        let m = refused(&prog);
        assert!(
            m.contains(&format!("the directory {} on its way", shared.display())),
            "{m}"
        );
        assert!(m.contains("without the sticky bit"), "{m}");
        chmod(&shared, 0o770);
        assert!(refused(&prog).contains("group- or world-writable"));
        chmod(&shared, 0o1777);
        assert!(
            trusted_file(&prog, "x").is_ok(),
            "a sticky directory is shared safely"
        );
        chmod(&shared, 0o755);
        chmod(&inner, 0o777);
        assert!(refused(&prog).contains(&format!("the directory {} on", inner.display())));
    }

    #[test]
    fn links_are_followed_and_where_they_sit_is_judged() {
        let (dir, prog) = lab();
        // A link in a writable directory: whoever can write there can repoint it.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        symlink(&prog, open.join("link")).unwrap();
        chmod(&open, 0o777);
        assert!(
            refused(&open.join("link")).contains(&format!("the directory {} on", open.display()))
        );
        chmod(&open, 0o755);
        assert!(trusted_file(&open.join("link"), "x").is_ok());
        // A good link to a file in a writable directory: the target's directory counts.
        let bad = dir.path().join("bad");
        std::fs::create_dir(&bad).unwrap();
        std::fs::write(bad.join("prog"), "#!/bin/sh\n").unwrap();
        chmod(&bad.join("prog"), 0o755);
        symlink("../bad/prog", open.join("rel")).unwrap();
        assert!(trusted_file(&open.join("rel"), "x").is_ok());
        chmod(&bad, 0o777);
        assert!(
            refused(&open.join("rel")).contains(&format!("the directory {} on", bad.display()))
        );
        // A linked directory on the way is followed the same way.
        chmod(&bad, 0o755);
        symlink(&bad, open.join("dirlink")).unwrap();
        assert!(trusted_file(&open.join("dirlink/prog"), "x").is_ok());
        chmod(&bad, 0o757);
        assert!(
            refused(&open.join("dirlink/prog"))
                .contains(&format!("the directory {} on", bad.display()))
        );
        // A loop ends.
        symlink(open.join("loop"), open.join("loop")).unwrap();
        assert!(refused(&open.join("loop")).contains("too many links"));
    }

    #[test]
    fn only_a_regular_file_that_exists_passes() {
        let (dir, _) = lab();
        assert!(refused(dir.path()).contains("not a regular file"));
        assert!(refused(&dir.path().join("missing")).contains("missing"));
        let m = refused(&dir.path().join("prog/x"));
        assert!(m.contains("prog is not a directory"), "{m}");
    }

    #[test]
    fn another_users_file_or_directory_is_refused() {
        // The rule on owners, without needing root to chown in a test.
        for kind in [Kind::File, Kind::Directory] {
            assert_eq!(verdict(kind, 0o755, 0, 1000), None, "root's");
            assert_eq!(verdict(kind, 0o755, 1000, 1000), None, "fencegate's own");
            assert_eq!(verdict(kind, 0o755, 1001, 1000), Some(Unsafe::Owner));
            assert_eq!(verdict(kind, 0o755, 1001, 0), Some(Unsafe::Owner));
            assert_eq!(verdict(kind, 0o775, 0, 0), Some(Unsafe::Writable));
        }
        assert_eq!(verdict(Kind::Directory, 0o1777, 0, 0), None);
        assert_eq!(
            verdict(Kind::File, 0o1777, 0, 0),
            Some(Unsafe::Writable),
            "the sticky bit protects nothing on a file"
        );
    }
}
