//! Secrets by reference: a device names a file or an environment variable, never the secret
//! itself, so that configuration files, URLs, argv and logs stay free of credentials.

use fencegate_driver::SecretString;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// A file holding the secret (one trailing newline is dropped).
    File(PathBuf),
    /// An environment variable holding the secret.
    Env(String),
}

/// Names of secrets. Written inline in a configuration file or URL they are refused; they
/// come by `ROLE_file` / `ROLE_env` reference instead. (`apikey`, `api_key`, `secret_key` and
/// `access_key` are the cloud credentials some fence agents take.)
pub fn is_secret_role(key: &str) -> bool {
    matches!(
        key,
        "password"
            | "passwd"
            | "kg"
            | "community"
            | "auth_password"
            | "priv_password"
            | "key"
            | "token"
            | "passphrase"
            | "secret"
            | "apikey"
            | "api_key"
            | "secret_key"
            | "access_key"
    )
}

/// The longest secret file read (SSH private keys fit easily).
const MAX_SECRET_FILE: u64 = 64 * 1024;

impl SecretRef {
    /// Parse a `ROLE_file` / `ROLE_env` key into its role and reference kind, where ROLE is
    /// a secret role (see [`is_secret_role`]). Other `*_file` keys (`ca_file`,
    /// `known_hosts_file`) are ordinary paths, not secrets.
    pub fn from_key(key: &str, value: &str) -> Option<(String, SecretRef)> {
        if let Some(role) = key.strip_suffix("_file").filter(|r| is_secret_role(r)) {
            Some((role.to_owned(), SecretRef::File(PathBuf::from(value))))
        } else {
            key.strip_suffix("_env")
                .filter(|r| is_secret_role(r))
                .map(|role| (role.to_owned(), SecretRef::Env(value.to_owned())))
        }
    }

    /// Read the secret. A relative file is taken relative to `base` (the configuration file's
    /// directory). The file must be a regular file of mode 0600 or stricter (no bit for its
    /// group or others), owned by the user running fencegate or by root: a leaked BMC
    /// password can power off the cloud, and a file another user can rewrite can send the
    /// wrong one. A FIFO, device or directory is refused without blocking. A symbolic link is
    /// followed, and the rules apply to the file it leads to (as opened), so that managed
    /// secret mounts made of links work. Errors name the file or variable, never its content.
    pub fn resolve(&self, base: Option<&Path>) -> Result<SecretString, String> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(_) => Err(format!("environment variable {name} is not set")),
            },
            SecretRef::File(path) => {
                let path = match base {
                    Some(base) if path.is_relative() => base.join(path),
                    _ => path.clone(),
                };
                read_secret_file(&path)
            }
        }
    }
}

/// Open `path` for reading without ever blocking: a FIFO opened for reading waits for a
/// writer, and a device may wait for its hardware, so the descriptor is opened non-blocking
/// and its type is checked on the descriptor itself (no check-then-open race).
fn open_without_blocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// What a non-regular file is, for the refusal.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// The secret file rules, on the opened file's own metadata: a regular file, no permission
/// bit for its group or others (0600, 0400), owned by the user running fencegate or root.
/// `euid` is the effective user running fencegate.
fn check_secret_file(shown: &str, meta: &std::fs::Metadata, euid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() {
        return Err(format!(
            "{shown} is {} (a secret must be a regular file)",
            file_kind(meta)
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown} is accessible by its group or other users (mode {mode:04o}); \
             run `chmod 600` on it"
        ));
    }
    let owner = meta.uid();
    if owner != euid && owner != 0 {
        return Err(format!(
            "{shown} is owned by uid {owner}, neither the user running fencegate \
             (uid {euid}) nor root: another user could rewrite it; run `chown` on it"
        ));
    }
    Ok(())
}

/// The effective user id of this process.
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn read_secret_file(path: &Path) -> Result<SecretString, String> {
    let shown = path.display().to_string();
    let file = open_without_blocking(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat {shown}: {e}"))?;
    check_secret_file(&shown, &meta, effective_uid())?;
    if meta.len() > MAX_SECRET_FILE {
        return Err(format!("{shown} is larger than {MAX_SECRET_FILE} bytes"));
    }
    let mut text = String::new();
    file.take(MAX_SECRET_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(SecretString::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencegate_driver::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    #[test]
    fn file_secrets_are_read_and_world_readable_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = SecretRef::File("pw".into())
            .resolve(Some(dir.path()))
            .unwrap();
        assert_eq!(s.expose_secret(), "s3cret");

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SecretRef::File(p.clone()).resolve(None).unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(!e.contains("s3cret"));
    }

    fn secret_file(dir: &Path, mode: u32) -> PathBuf {
        let p = dir.join(format!("pw-{mode:o}"));
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn any_group_or_other_bit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o400] {
            let p = secret_file(dir.path(), mode);
            let s = SecretRef::File(p).resolve(None).unwrap();
            assert_eq!(s.expose_secret(), "s3cret", "{mode:o}");
        }
        for mode in [0o640, 0o660, 0o620, 0o604, 0o610, 0o601] {
            let p = secret_file(dir.path(), mode);
            let e = SecretRef::File(p).resolve(None).unwrap_err();
            assert!(e.contains(&format!("mode {mode:04o}")), "{e}");
            assert!(!e.contains("s3cret"));
        }
    }

    #[test]
    fn non_regular_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let sub = dir.path().join("dir");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
        let cases = [
            (fifo, "a FIFO"),
            (sub, "a directory"),
            (PathBuf::from("/dev/null"), "a character device"),
        ];
        for (path, kind) in cases {
            // A FIFO with no writer would block a plain open forever: bound the test.
            let (tx, rx) = std::sync::mpsc::channel();
            let p = path.clone();
            std::thread::spawn(move || {
                let _ = tx.send(SecretRef::File(p).resolve(None));
            });
            let e = rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("reading {} blocked", path.display()))
                .unwrap_err();
            assert!(e.contains(kind), "{e}");
        }
    }

    #[test]
    fn the_owner_must_be_the_user_running_fencegate_or_root() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = secret_file(dir.path(), 0o600);
        let meta = std::fs::metadata(&p).unwrap();
        let owner = meta.uid();
        assert!(check_secret_file("f", &meta, owner).is_ok());
        let other = owner.wrapping_add(4242);
        let expected = if owner == 0 {
            // Root's files are trusted by every user.
            Ok(())
        } else {
            Err(format!(
                "f is owned by uid {owner}, neither the user running fencegate (uid {other}) \
                 nor root: another user could rewrite it; run `chown` on it"
            ))
        };
        assert_eq!(check_secret_file("f", &meta, other), expected);
        if effective_uid() == 0 {
            // As root, give the file away: another user's file is refused, through resolve.
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::chown(c.as_ptr(), 4242, 4242) }, 0);
            let e = SecretRef::File(p).resolve(None).unwrap_err();
            assert!(e.contains("owned by uid 4242"), "{e}");
        }
    }

    #[test]
    fn a_symbolic_link_is_judged_by_the_file_it_leads_to() {
        let dir = tempfile::tempdir().unwrap();
        let good = secret_file(dir.path(), 0o600);
        let bad = secret_file(dir.path(), 0o644);
        let to_good = dir.path().join("to-good");
        let to_bad = dir.path().join("to-bad");
        std::os::unix::fs::symlink(&good, &to_good).unwrap();
        std::os::unix::fs::symlink(&bad, &to_bad).unwrap();
        assert_eq!(
            SecretRef::File(to_good)
                .resolve(None)
                .unwrap()
                .expose_secret(),
            "s3cret"
        );
        let e = SecretRef::File(to_bad).resolve(None).unwrap_err();
        assert!(e.contains("mode 0644"), "{e}");
    }

    #[test]
    fn env_secrets_must_be_set() {
        let e = SecretRef::Env("FENCEGATE_TEST_SURELY_UNSET_VAR".into())
            .resolve(None)
            .unwrap_err();
        assert!(e.contains("not set"));
    }

    #[test]
    fn keys_map_to_roles() {
        assert_eq!(
            SecretRef::from_key("password_file", "/x"),
            Some(("password".into(), SecretRef::File("/x".into())))
        );
        assert_eq!(
            SecretRef::from_key("priv_password_env", "V"),
            Some(("priv_password".into(), SecretRef::Env("V".into())))
        );
        assert_eq!(SecretRef::from_key("cipher", "3"), None);
        assert_eq!(SecretRef::from_key("state_file", "/x"), None);
        assert_eq!(SecretRef::from_key("ca_file", "/x"), None);
    }
}
