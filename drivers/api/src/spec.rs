//! A device specification: everything a driver factory needs, independent of where it came
//! from (a TOML inventory or a device URL on the command line).

use secrecy::SecretString;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A device as configured: which driver, which endpoint, which options and secrets.
///
/// Options are plain strings so that TOML tables and URL query strings map onto them alike;
/// each driver parses and validates its own. Secrets are held apart from options, already
/// resolved from their `*_file`/`*_env` references, and never printed (`Debug` redacts them).
#[derive(Debug, Clone, Default)]
pub struct DeviceSpec {
    /// The device's name in the inventory (or the URL it came from), for messages.
    pub name: String,
    /// The driver name (`ipmi`, `redfish`, `snmp`, `ssh`, `external`, …).
    pub driver: String,
    /// `host`, `host:port`, `[v6]:port`, or a driver-specific address such as a program path.
    pub address: String,
    /// The user name, if the protocol has one (may be empty: IPMI allows an anonymous user).
    pub user: Option<String>,
    /// The path part of a device URL (a Redfish system, an outlet list), if any.
    pub path: Option<String>,
    /// Driver options, by name.
    pub options: BTreeMap<String, String>,
    /// Resolved secrets by role: `password`, `kg`, `community`, `auth_password`,
    /// `priv_password`, `key`, `token`, …
    pub secrets: BTreeMap<String, SecretString>,
}

impl DeviceSpec {
    /// The raw value of an option.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// An option parsed as `T`, with an error naming the option when it does not parse.
    pub fn parsed_option<T>(&self, key: &str) -> Result<Option<T>, SpecError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.option(key) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|e| SpecError::for_key(key, format!("invalid value {raw:?}: {e}"))),
        }
    }

    /// A secret by role.
    pub fn secret(&self, role: &str) -> Option<&SecretString> {
        self.secrets.get(role)
    }

    /// A secret that must be present, with an error saying how to provide it.
    pub fn required_secret(&self, role: &str) -> Result<&SecretString, SpecError> {
        self.secret(role).ok_or_else(|| {
            SpecError::for_key(
                role,
                format!(
                    "device `{}` needs a {role}: give `{role}_file` or `{role}_env` \
                     (secrets are never taken from a URL or the command line)",
                    self.name
                ),
            )
        })
    }

    /// Refuse options and secrets the driver does not know, so that a typo cannot silently
    /// drop a setting (a misspelt `pin` must not mean "no pinning").
    pub fn reject_unknown(&self, options: &[&str], secrets: &[&str]) -> Result<(), SpecError> {
        if let Some(k) = self.options.keys().find(|k| !options.contains(&k.as_str())) {
            return Err(SpecError::for_key(
                k,
                format!(
                    "unknown option for driver `{}` (known: {})",
                    self.driver,
                    list_or_none(options)
                ),
            ));
        }
        if let Some(k) = self.secrets.keys().find(|k| !secrets.contains(&k.as_str())) {
            return Err(SpecError::for_key(
                k,
                format!(
                    "driver `{}` takes no secret named `{k}` (known: {})",
                    self.driver,
                    list_or_none(secrets)
                ),
            ));
        }
        Ok(())
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// A device specification a driver cannot accept. Names the offending key so the
/// configuration layer can point at the file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// The option or secret concerned, if the problem is about one key.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl SpecError {
    /// An error about the specification as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        SpecError {
            key: None,
            message: message.into(),
        }
    }

    /// An error about one key.
    pub fn for_key(key: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "`{key}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Split `host[:port]` or `[v6addr][:port]` into host and port, using `default_port` when
/// none is given. Every network driver needs this, so it lives with the contract.
pub fn split_host_port(address: &str, default_port: u16) -> Result<(String, u16), SpecError> {
    let bad = |why: &str| SpecError::for_key("address", format!("{address:?}: {why}"));
    if address.is_empty() {
        return Err(bad("empty address"));
    }
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("missing `]` after an IPv6 address"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("expected `:port` after `]`"))?,
                ),
            ),
        }
    } else if address.matches(':').count() > 1 {
        return Err(bad(
            "an IPv6 address must be written in brackets, e.g. [::1]:623",
        ));
    } else {
        match address.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("port must be a number from 1 to 65535"))?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("127.0.0.1", 623).unwrap(),
            ("127.0.0.1".into(), 623)
        );
        assert_eq!(
            split_host_port("127.0.0.1:9623", 623).unwrap(),
            ("127.0.0.1".into(), 9623)
        );
        assert_eq!(
            split_host_port("[::1]:8443", 443).unwrap(),
            ("::1".into(), 8443)
        );
        assert_eq!(split_host_port("[::1]", 443).unwrap(), ("::1".into(), 443));
        for bad in ["", ":1", "::1", "h:0", "h:x", "[::1", "[::1]x", "h:70000"] {
            assert!(split_host_port(bad, 1).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn unknown_option_is_named() {
        let mut spec = DeviceSpec {
            name: "bmc1".into(),
            driver: "ipmi".into(),
            ..Default::default()
        };
        spec.options.insert("ciper".into(), "3".into());
        let e = spec.reject_unknown(&["cipher"], &["password"]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("ciper"));
        assert!(e.to_string().contains("known: cipher"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut spec = DeviceSpec::default();
        spec.secrets
            .insert("password".into(), SecretString::from("hunter2-secret"));
        assert!(!format!("{spec:?}").contains("hunter2"));
    }

    #[test]
    fn parsed_option_names_the_key() {
        let mut spec = DeviceSpec::default();
        spec.options.insert("cipher".into(), "x".into());
        let e = spec.parsed_option::<u8>("cipher").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("cipher"));
    }
}
