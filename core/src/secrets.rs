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
/// come by `ROLE_file` / `ROLE_env` reference instead.
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
    /// directory). A file that others can read is refused: a leaked BMC password can power off
    /// the cloud. Errors name the file or variable, never its content.
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

fn read_secret_file(path: &Path) -> Result<SecretString, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(format!(
                "{shown} is accessible by other users (mode {mode:04o}); run `chmod 600` on it"
            ));
        }
    }
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
