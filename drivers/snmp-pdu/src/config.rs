//! Turning a [`DeviceSpec`] into a validated PDU configuration, with errors naming the key.

use crate::profile::Profile;
use fencegate_driver::{DeviceSpec, ExposeSecret, SecretString, SpecError, split_host_port};
use std::fmt;
use std::time::Duration;

/// Options the driver knows (besides the `generic` profile's, listed in [`crate::profile`]).
const OPTIONS: &[&str] = &[
    "outlet",
    "version",
    "profile",
    "auth_protocol",
    "priv_protocol",
    "security_level",
    "context",
    "timeout_ms",
    "retries",
];

/// Secret roles the driver knows.
const SECRETS: &[&str] = &["community", "auth_password", "priv_password"];

/// Default time to wait for one answer before sending again on a fresh session.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Default number of extra attempts per request after the first went unanswered.
pub const DEFAULT_RETRIES: u32 = 2;

/// The USM authentication protocols offered, by option value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    /// HMAC-MD5-96 (legacy; only for old PDUs).
    Md5,
    /// HMAC-SHA-96, the common denominator and the default.
    Sha,
    /// HMAC-SHA-256 (RFC 7860).
    Sha256,
    /// HMAC-SHA-512 (RFC 7860).
    Sha512,
}

/// The USM privacy protocols offered, by option value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProtocol {
    /// AES-128 CFB (RFC 3826), the default.
    Aes128,
    /// AES-256 CFB, keyed from the first 32 bytes of the localized key: needs
    /// `auth_protocol` `sha256` or `sha512`, as no key extension is done.
    Aes256,
}

/// How SNMP requests are authenticated.
pub enum Credentials {
    /// SNMPv1 or v2c with a community string.
    Community {
        /// `true` for v1, `false` for v2c.
        v1: bool,
        /// The community (a shared password sent in clear: never logged).
        community: SecretString,
    },
    /// SNMPv3 USM.
    V3 {
        /// The USM user name.
        user: String,
        /// Authentication protocol.
        auth_protocol: AuthProtocol,
        /// Authentication password.
        auth_password: SecretString,
        /// Privacy protocol and password, or `None` for authNoPriv.
        privacy: Option<(PrivProtocol, SecretString)>,
        /// Context name (empty by default).
        context: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Community { v1, .. } => f
                .debug_struct("Community")
                .field("version", &if *v1 { "1" } else { "2c" })
                .field("community", &"<redacted>")
                .finish(),
            Credentials::V3 {
                user,
                auth_protocol,
                privacy,
                context,
                ..
            } => f
                .debug_struct("V3")
                .field("user", user)
                .field("auth_protocol", auth_protocol)
                .field("auth_password", &"<redacted>")
                .field("privacy", &privacy.as_ref().map(|(p, _)| p))
                .field("context", context)
                .finish(),
        }
    }
}

impl Credentials {
    /// The SNMP version, as written in options and messages.
    pub fn version(&self) -> &'static str {
        match self {
            Credentials::Community { v1: true, .. } => "1",
            Credentials::Community { v1: false, .. } => "2c",
            Credentials::V3 { .. } => "3",
        }
    }
}

/// A validated PDU device: where, which outlets, how to authenticate, how to talk.
#[derive(Debug)]
pub struct PduConfig {
    /// Host name or address of the PDU's agent.
    pub host: String,
    /// UDP port of the agent.
    pub port: u16,
    /// The outlets this device switches, in configuration order, without duplicates.
    pub outlets: Vec<u32>,
    /// Credentials and version.
    pub credentials: Credentials,
    /// The vendor profile.
    pub profile: Profile,
    /// Time to wait for one answer.
    pub timeout: Duration,
    /// Extra attempts per request.
    pub retries: u32,
}

impl PduConfig {
    /// Validate a spec (no I/O).
    pub fn from_spec(spec: &DeviceSpec) -> Result<PduConfig, SpecError> {
        let mut known: Vec<&str> = OPTIONS.to_vec();
        known.extend_from_slice(crate::profile::GENERIC_OPTIONS);
        spec.reject_unknown(&known, SECRETS)?;
        let (host, port) = split_host_port(&spec.address, 161)?;
        let outlets = outlets(spec)?;
        let profile = Profile::from_spec(spec)?;
        let credentials = credentials(spec)?;
        let timeout = match spec.parsed_option::<u64>("timeout_ms")? {
            None => DEFAULT_TIMEOUT,
            Some(0) => return Err(SpecError::for_key("timeout_ms", "must be at least 1")),
            Some(ms) => Duration::from_millis(ms),
        };
        let retries = spec
            .parsed_option::<u32>("retries")?
            .unwrap_or(DEFAULT_RETRIES);
        if retries > 10 {
            return Err(SpecError::for_key(
                "retries",
                "at most 10 (the deadline bounds the total anyway)",
            ));
        }
        Ok(PduConfig {
            host,
            port,
            outlets,
            credentials,
            profile,
            timeout,
            retries,
        })
    }
}

/// Outlets from the URL path (`/outlet/4` or `/outlet/4,5`) or the `outlet` option.
fn outlets(spec: &DeviceSpec) -> Result<Vec<u32>, SpecError> {
    let from_path = match spec.path.as_deref().map(|p| p.trim_matches('/')) {
        None | Some("") => None,
        Some(p) => Some(p.strip_prefix("outlet/").ok_or_else(|| {
            SpecError::for_key("path", format!("{p:?}: expected /outlet/N or /outlet/N,M"))
        })?),
    };
    let (key, raw) = match (from_path, spec.option("outlet")) {
        (Some(_), Some(_)) => {
            return Err(SpecError::for_key(
                "outlet",
                "outlets are given both in the URL path and as an option: give one",
            ));
        }
        (Some(p), None) => ("path", p),
        (None, Some(o)) => ("outlet", o),
        (None, None) => {
            return Err(SpecError::for_key(
                "outlet",
                "which outlet? give `outlet = \"4\"` (or \"4,5\" for a dual-PSU host) or a URL \
                 path /outlet/4",
            ));
        }
    };
    let mut out = Vec::new();
    for part in raw.split(',') {
        let n = part
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                SpecError::for_key(key, format!("{part:?} is not an outlet number (1 or more)"))
            })?;
        if out.contains(&n) {
            return Err(SpecError::for_key(
                key,
                format!("outlet {n} is listed twice"),
            ));
        }
        out.push(n);
    }
    Ok(out)
}

fn credentials(spec: &DeviceSpec) -> Result<Credentials, SpecError> {
    let version = spec.option("version").unwrap_or("2c");
    let v3_only = [
        "auth_protocol",
        "priv_protocol",
        "security_level",
        "context",
    ];
    match version {
        "1" | "2c" | "2" => {
            if let Some(k) = v3_only.iter().find(|k| spec.option(k).is_some()) {
                return Err(SpecError::for_key(
                    *k,
                    format!("`{k}` is an SNMPv3 option but `version` is {version}"),
                ));
            }
            if spec.user.as_deref().is_some_and(|u| !u.is_empty()) {
                return Err(SpecError::for_key(
                    "user",
                    format!("a user name is only for SNMPv3 but `version` is {version}"),
                ));
            }
            if let Some(k) = ["auth_password", "priv_password"]
                .iter()
                .find(|k| spec.secret(k).is_some())
            {
                return Err(SpecError::for_key(
                    *k,
                    format!("`{k}` is an SNMPv3 secret but `version` is {version}"),
                ));
            }
            Ok(Credentials::Community {
                v1: version == "1",
                community: spec.required_secret("community")?.clone(),
            })
        }
        "3" => {
            if spec.secret("community").is_some() {
                return Err(SpecError::for_key(
                    "community",
                    "SNMPv3 uses `user`, `auth_password` and `priv_password`, not a community",
                ));
            }
            let user = spec.user.clone().filter(|u| !u.is_empty()).ok_or_else(|| {
                SpecError::for_key("user", "SNMPv3 needs a USM user name (`user`)")
            })?;
            let auth_protocol = match spec.option("auth_protocol").unwrap_or("sha") {
                "sha" | "sha1" => AuthProtocol::Sha,
                "sha256" => AuthProtocol::Sha256,
                "sha512" => AuthProtocol::Sha512,
                "md5" => AuthProtocol::Md5,
                other => {
                    return Err(SpecError::for_key(
                        "auth_protocol",
                        format!("unknown {other:?} (known: sha, sha256, sha512, md5)"),
                    ));
                }
            };
            let auth_password = password(spec, "auth_password")?;
            let level = spec.option("security_level").unwrap_or("authPriv");
            let privacy = match level {
                "authPriv" => {
                    let protocol = match spec.option("priv_protocol").unwrap_or("aes") {
                        "aes" | "aes128" => PrivProtocol::Aes128,
                        "aes256" => PrivProtocol::Aes256,
                        other => {
                            return Err(SpecError::for_key(
                                "priv_protocol",
                                format!("unknown {other:?} (known: aes, aes256)"),
                            ));
                        }
                    };
                    Some((protocol, password(spec, "priv_password")?))
                }
                "authNoPriv" => {
                    for k in ["priv_protocol", "priv_password"] {
                        if spec.option(k).is_some() || spec.secret(k).is_some() {
                            return Err(SpecError::for_key(
                                k,
                                format!("`{k}` is unused with security_level authNoPriv"),
                            ));
                        }
                    }
                    None
                }
                other => {
                    return Err(SpecError::for_key(
                        "security_level",
                        format!(
                            "unknown {other:?} (known: authPriv, authNoPriv; noAuthNoPriv is \
                             refused because anyone could switch the outlet)"
                        ),
                    ));
                }
            };
            Ok(Credentials::V3 {
                user,
                auth_protocol,
                auth_password,
                privacy,
                context: spec.option("context").unwrap_or("").to_owned(),
            })
        }
        other => Err(SpecError::for_key(
            "version",
            format!("unknown SNMP version {other:?} (known: 1, 2c, 3)"),
        )),
    }
}

/// A USM password: present and at least 8 characters (RFC 3414 §11.2; agents refuse
/// shorter ones, and the failure would otherwise look like a wrong password).
fn password(spec: &DeviceSpec, role: &str) -> Result<SecretString, SpecError> {
    let secret = spec.required_secret(role)?;
    if secret.expose_secret().chars().count() < 8 {
        return Err(SpecError::for_key(
            role,
            "an SNMPv3 password must be at least 8 characters",
        ));
    }
    Ok(secret.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DeviceSpec {
        let mut s = DeviceSpec {
            name: "pdu1".into(),
            driver: "snmp".into(),
            address: "127.0.0.1:1163".into(),
            path: Some("/outlet/4,5".into()),
            ..Default::default()
        };
        s.secrets
            .insert("community".into(), SecretString::from("private-sekrit"));
        s
    }

    #[test]
    fn defaults() {
        let c = PduConfig::from_spec(&spec()).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 1163));
        assert_eq!(c.outlets, [4, 5]);
        assert_eq!(c.credentials.version(), "2c");
        assert_eq!(c.profile.name, "apc");
        assert!(!format!("{c:?}").contains("sekrit"));
    }

    #[test]
    fn outlet_forms() {
        let mut s = spec();
        s.options.insert("outlet".into(), "4".into());
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("outlet")
        );
        s.path = None;
        assert_eq!(PduConfig::from_spec(&s).unwrap().outlets, [4]);
        s.options.insert("outlet".into(), "4,4".into());
        assert!(PduConfig::from_spec(&s).is_err());
        s.options.insert("outlet".into(), "0".into());
        assert!(PduConfig::from_spec(&s).is_err());
        s.options.remove("outlet");
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("outlet")
        );
        s.path = Some("/plug/3".into());
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("path")
        );
    }

    #[test]
    fn community_is_required_and_explained() {
        let mut s = spec();
        s.secrets.clear();
        let e = PduConfig::from_spec(&s).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("community"));
        assert!(e.message.contains("community_file"), "{e}");
    }

    #[test]
    fn v3_needs_user_and_passwords() {
        let mut s = spec();
        s.secrets.clear();
        s.options.insert("version".into(), "3".into());
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("user")
        );
        s.user = Some("fenceuser".into());
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("auth_password")
        );
        s.secrets
            .insert("auth_password".into(), SecretString::from("short"));
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("auth_password")
        );
        s.secrets
            .insert("auth_password".into(), SecretString::from("authpass123"));
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("priv_password")
        );
        s.options
            .insert("security_level".into(), "authNoPriv".into());
        assert!(PduConfig::from_spec(&s).is_ok());
        s.options
            .insert("security_level".into(), "noAuthNoPriv".into());
        assert!(PduConfig::from_spec(&s).is_err());
    }

    #[test]
    fn typos_and_mixed_versions_are_refused() {
        let mut s = spec();
        s.options.insert("retires".into(), "3".into());
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("retires")
        );
        let mut s = spec();
        s.options.insert("auth_protocol".into(), "sha".into());
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("auth_protocol")
        );
        let mut s = spec();
        s.user = Some("admin".into());
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("user")
        );
        let mut s = spec();
        s.options.insert("version".into(), "4".into());
        assert_eq!(
            PduConfig::from_spec(&s).unwrap_err().key.as_deref(),
            Some("version")
        );
    }
}
