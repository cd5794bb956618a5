//! Turning a [`DeviceSpec`] into a validated SSH fencing target, with errors naming the key.

use crate::known_hosts::{HostKeyPolicy, KnownHosts, parse_fingerprint};
use fencegate_driver::{DeviceSpec, ExposeSecret, SecretString, SpecError, split_host_port};
use russh::keys::PrivateKey;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

const OPTIONS: &[&str] = &[
    "known_hosts_file",
    "host_key",
    "password_auth",
    "command",
    "liveness_hold_ms",
    "extra_port",
    "connect_timeout_ms",
    "probe_interval_ms",
];

const SECRETS: &[&str] = &["key", "passphrase", "password"];

/// The command sent by default: a forced, immediate power-off without shutting services
/// down (a hung host would never finish a clean shutdown).
pub const DEFAULT_COMMAND: &str = "poweroff -f";

/// How long the host's ports must stay quiet before the command counts as delivered.
pub const DEFAULT_LIVENESS_HOLD: Duration = Duration::from_millis(3000);

/// Default limit on TCP connect plus SSH handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(5000);

/// Default pause between liveness probes.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// How the client authenticates. Key material is decoded once, at build time.
#[derive(Clone)]
pub struct Auth {
    /// The private key, if one was given.
    pub key: Option<Arc<PrivateKey>>,
    /// The password, only when `password_auth = true`.
    pub password: Option<SecretString>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("key", &self.key.as_ref().map(|k| k.algorithm().to_string()))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A validated SSH fencing target.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// Host name or address.
    pub host: String,
    /// SSH port (22 by default).
    pub port: u16,
    /// Login user.
    pub user: String,
    /// How the host key is checked (always).
    pub host_keys: HostKeyPolicy,
    /// Credentials.
    pub auth: Auth,
    /// The command to run.
    pub command: String,
    /// How long all watched ports must stay quiet.
    pub liveness_hold: Duration,
    /// Another TCP port that must go quiet too (e.g. a hypervisor's management port).
    pub extra_port: Option<u16>,
    /// Limit on TCP connect plus handshake plus authentication.
    pub connect_timeout: Duration,
    /// Pause between liveness probes.
    pub probe_interval: Duration,
}

impl SshConfig {
    /// Validate a spec. Reads the known_hosts file (local configuration, parsed once); no
    /// network I/O.
    pub fn from_spec(spec: &DeviceSpec) -> Result<SshConfig, SpecError> {
        spec.reject_unknown(OPTIONS, SECRETS)?;
        let (host, port) = split_host_port(&spec.address, 22)?;
        let user =
            spec.user.clone().filter(|u| !u.is_empty()).ok_or_else(|| {
                SpecError::for_key("user", "SSH fencing needs a login user (`user`)")
            })?;
        let host_keys =
            match (spec.option("known_hosts_file"), spec.option("host_key")) {
                (Some(_), Some(_)) => {
                    return Err(SpecError::for_key(
                        "host_key",
                        "give either `known_hosts_file` or `host_key`, not both",
                    ));
                }
                (Some(path), None) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        SpecError::for_key("known_hosts_file", format!("cannot read {path}: {e}"))
                    })?;
                    HostKeyPolicy::KnownHosts(KnownHosts::parse(&text).map_err(|e| {
                        SpecError::for_key("known_hosts_file", format!("{path}: {e}"))
                    })?)
                }
                (None, Some(fp)) => HostKeyPolicy::Fingerprint(
                    parse_fingerprint(fp).map_err(|e| SpecError::for_key("host_key", e))?,
                ),
                (None, None) => {
                    return Err(SpecError::for_key(
                        "host_key",
                        "the host key is always verified: give `known_hosts_file` (OpenSSH format) \
                     or `host_key` (the `SHA256:…` fingerprint `ssh-keygen -lf` prints)",
                    ));
                }
            };
        let auth = auth(spec)?;
        let command = spec.option("command").unwrap_or(DEFAULT_COMMAND).to_owned();
        if command.trim().is_empty() {
            return Err(SpecError::for_key("command", "must not be empty"));
        }
        let ms = |key: &str, default: Duration| -> Result<Duration, SpecError> {
            Ok(spec
                .parsed_option::<u64>(key)?
                .map(Duration::from_millis)
                .unwrap_or(default))
        };
        let liveness_hold = ms("liveness_hold_ms", DEFAULT_LIVENESS_HOLD)?;
        let connect_timeout = ms("connect_timeout_ms", DEFAULT_CONNECT_TIMEOUT)?;
        let probe_interval = ms("probe_interval_ms", DEFAULT_PROBE_INTERVAL)?;
        if connect_timeout.is_zero() || probe_interval.is_zero() {
            return Err(SpecError::new(
                "`connect_timeout_ms` and `probe_interval_ms` must be at least 1",
            ));
        }
        let extra_port = match spec.parsed_option::<u16>("extra_port")? {
            Some(0) => return Err(SpecError::for_key("extra_port", "must be 1 to 65535")),
            p => p,
        };
        Ok(SshConfig {
            host,
            port,
            user,
            host_keys,
            auth,
            command,
            liveness_hold,
            extra_port,
            connect_timeout,
            probe_interval,
        })
    }
}

/// Decode a private key, decrypting it with `passphrase` if it is encrypted.
///
/// OpenSSH-format keys (what `ssh-keygen` writes by default) are parsed by `ssh-key`
/// straight from the secret text: it decodes the base64 as it reads and decrypts into a
/// buffer it wipes. russh's generic decoder would first gather the base64 into a `String`
/// and decode it into a `Vec` (the whole unencrypted key, for an unencrypted one), neither
/// wiped, so it is used only for the PEM forms (PKCS#1, PKCS#8, encrypted PKCS#5), whose
/// intermediate copies stay in freed memory: prefer OpenSSH-format keys.
fn decode_key(text: &str, passphrase: Option<&str>) -> Option<PrivateKey> {
    let trimmed = text.trim();
    if trimmed.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let key = PrivateKey::from_openssh(trimmed).ok()?;
        return if key.is_encrypted() {
            key.decrypt(passphrase?).ok()
        } else {
            Some(key)
        };
    }
    russh::keys::decode_secret_key(text, passphrase).ok()
}

fn auth(spec: &DeviceSpec) -> Result<Auth, SpecError> {
    let key = match spec.secret("key") {
        None => {
            if spec.secret("passphrase").is_some() {
                return Err(SpecError::for_key(
                    "passphrase",
                    "a passphrase needs a `key`",
                ));
            }
            None
        }
        Some(text) => {
            // Borrowed from the secret, never copied: the passphrase stays in the one
            // `SecretString` that wipes it on drop.
            let passphrase = spec.secret("passphrase").map(|p| p.expose_secret());
            let key = decode_key(text.expose_secret(), passphrase).ok_or_else(|| {
                SpecError::for_key(
                    "key",
                    "cannot decode the private key (OpenSSH or PEM text expected; wrong or \
                     missing `passphrase`?)",
                )
            })?;
            Some(Arc::new(key))
        }
    };
    let password_auth = spec
        .parsed_option::<bool>("password_auth")?
        .unwrap_or(false);
    let password = match (password_auth, spec.secret("password")) {
        (true, Some(p)) => Some(p.clone()),
        (true, None) => {
            return Err(spec.required_secret("password").err().unwrap_or_else(|| {
                SpecError::for_key("password", "`password_auth = true` needs a `password`")
            }));
        }
        (false, Some(_)) => {
            return Err(SpecError::for_key(
                "password",
                "password authentication is off: set `password_auth = true` to use it (keys \
                 are preferred)",
            ));
        }
        (false, None) => None,
    };
    if key.is_none() && password.is_none() {
        return Err(SpecError::for_key(
            "key",
            format!(
                "device `{}` needs a private key: give `key_file` or `key_env` (or \
                 `password_auth = true` with a password)",
                spec.name
            ),
        ));
    }
    Ok(Auth { key, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Throwaway ed25519 keys made for these tests by `ssh-keygen` (the first encrypted with
    // `unit-pass`, two bcrypt rounds so the test stays fast); they open nothing.
    const ENCRYPTED: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABAHWbvwfz
qaysBZ+akAPHzxAAAAAgAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAILy9yh4TH8jm6BkU
CVlqRBJ3QfFmoLu9sl7mo5d8UVyIAAAAkCuANJPVuLNV94SgWjDCJspFGSni0dPV8cjqTQ
wVYo1rAT7Z67aQybayeUZqZwk0xd+vA1DNU7b/eg2u/boLYcnkZiB9ciP7/hdrm9Veckn3
eAWpwV7Lu5SbesiwvSHatdpXi89zxCOfNXM9nRb7i6hQ+mtccrnYE1R4leyRZuw8KxUWZy
lCHkxTSydV2SdgMA==
-----END OPENSSH PRIVATE KEY-----
";
    const PLAIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCWVLclHq7F9N9GiulRBLH8fIlM8B7pRwOBT7v42OseNQAAAIh7fEeoe3xH
qAAAAAtzc2gtZWQyNTUxOQAAACCWVLclHq7F9N9GiulRBLH8fIlM8B7pRwOBT7v42OseNQ
AAAEClU+l0MZvBnPHnklEaNUv4lJqkFNF8UBkmzON2SOQIaJZUtyUersX030aK6VEEsfx8
iUzwHulHA4FPu/jY6x41AAAAAAECAwQF
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn openssh_keys_decode_from_the_borrowed_passphrase() {
        let key = decode_key(ENCRYPTED, Some("unit-pass")).expect("right passphrase");
        assert!(!key.is_encrypted());
        assert!(decode_key(ENCRYPTED, None).is_none());
        assert!(decode_key(ENCRYPTED, Some("unit-pasS")).is_none());
        assert!(decode_key(ENCRYPTED, Some("")).is_none());

        // However the key text arrives: a file's newline, a variable's CRLF, padding.
        for text in [
            PLAIN.to_owned(),
            PLAIN.trim_end().to_owned(),
            PLAIN.replace('\n', "\r\n"),
            format!("\n  {PLAIN}\n\n"),
        ] {
            let key = decode_key(&text, None).expect("unencrypted key");
            assert!(!key.is_encrypted());
            // A passphrase for a key that needs none changes nothing.
            assert_eq!(
                decode_key(&text, Some("unused")).map(|k| k.public_key().clone()),
                Some(key.public_key().clone())
            );
        }
        assert!(decode_key("not a key", None).is_none());
        assert!(decode_key(&PLAIN.replace("AAAA", "BBBB"), None).is_none());
    }
}
