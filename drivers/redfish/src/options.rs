//! The device specification of a Redfish device, validated without I/O.

use crate::tls::{Fingerprint, Trust};
use fencegate_driver::{DeviceSpec, SecretString, SpecError, split_host_port};
use reqwest::Url;
use std::path::Path;
use std::time::Duration;

/// The port of a Redfish service unless the address says otherwise.
pub const DEFAULT_PORT: u16 = 443;
/// Connect timeout unless `connect_timeout_ms` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-request timeout unless `request_timeout_ms` says otherwise (BMCs can be slow).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Option names this driver accepts.
pub const OPTIONS: &[&str] = &[
    "system",
    "pin",
    "ca_file",
    "insecure",
    "auth",
    "connect_timeout_ms",
    "request_timeout_ms",
    "proxy",
];
/// Secret names this driver accepts.
pub const SECRETS: &[&str] = &["password"];

/// How the driver authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A Redfish session (X-Auth-Token), reused per driver; basic auth when the service has
    /// no SessionService.
    Session,
    /// HTTP basic authentication on every request (costs no session slot).
    Basic,
    /// No credentials at all (mockups; the password is then not required).
    None,
}

/// Which system of the service to control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemRef {
    /// The only member of the systems collection.
    Only,
    /// A member by id (the last segment of its link), e.g. `1` or a UUID.
    Id(String),
    /// A resource path on the service, e.g. `/redfish/v1/Systems/1`.
    Path(String),
}

/// A validated Redfish device specification.
#[derive(Debug, Clone)]
pub struct Config {
    /// `redfish://host:port`, the endpoint name.
    pub endpoint: String,
    /// `https://host:port/`.
    pub origin: Url,
    /// The system to control.
    pub system: SystemRef,
    /// The user name (empty if none was given).
    pub user: String,
    /// The password, unless `auth=none`.
    pub password: Option<SecretString>,
    /// The authentication mode.
    pub auth: AuthMode,
    /// Where trust in the certificate comes from.
    pub trust: Trust,
    /// Connect timeout per connection.
    pub connect_timeout: Duration,
    /// Timeout per request (the call's deadline still bounds it further).
    pub request_timeout: Duration,
    /// The HTTP proxy the `proxy` option names, if any: the only proxy ever used. The
    /// environment's (`HTTPS_PROXY`, `ALL_PROXY`, …) is never read, because a stray setting
    /// on the fencing host would put a third party between fencegate and every BMC.
    pub proxy: Option<Url>,
}

impl Config {
    /// Validate `spec` (reads `ca_file`, nothing else touches the outside world).
    pub fn from_spec(spec: &DeviceSpec) -> Result<Config, SpecError> {
        spec.reject_unknown(OPTIONS, SECRETS)?;
        let (host, port) = split_host_port(&spec.address, DEFAULT_PORT)?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let origin = Url::parse(&format!("https://{authority}/"))
            .map_err(|e| SpecError::for_key("address", format!("{:?}: {e}", spec.address)))?;
        let endpoint = format!("redfish://{authority}");

        let auth = match spec.option("auth").unwrap_or("session") {
            "session" => AuthMode::Session,
            "basic" => AuthMode::Basic,
            "none" => AuthMode::None,
            other => {
                return Err(SpecError::for_key(
                    "auth",
                    format!("{other:?}: expected `session`, `basic` or `none`"),
                ));
            }
        };
        let password = match auth {
            AuthMode::None => {
                if spec.secret("password").is_some() {
                    return Err(SpecError::for_key(
                        "password",
                        "a password is given but `auth=none` would never send it",
                    ));
                }
                None
            }
            _ => Some(spec.required_secret("password")?.clone()),
        };
        let user = spec.user.clone().unwrap_or_default();
        if auth != AuthMode::None && user.is_empty() {
            return Err(SpecError::for_key(
                "user",
                format!("device `{}` needs a user name for Redfish", spec.name),
            ));
        }

        let system = system_ref(spec, &origin)?;
        let trust = trust(spec)?;
        let proxy = spec.option("proxy").map(parse_proxy).transpose()?;
        if proxy.is_some() && matches!(trust, Trust::Insecure) {
            return Err(SpecError::for_key(
                "proxy",
                "`proxy` together with `insecure=true` is refused: with the certificate \
                 unchecked, the proxy (or anyone past it) could answer for the BMC and read the \
                 credentials; give `pin` or `ca_file` to use a proxy",
            ));
        }
        let ms = |key: &str, default: Duration| -> Result<Duration, SpecError> {
            match spec.parsed_option::<u64>(key)? {
                None => Ok(default),
                Some(v) if (1..=600_000).contains(&v) => Ok(Duration::from_millis(v)),
                Some(_) => Err(SpecError::for_key(key, "must be 1..=600000 ms")),
            }
        };
        Ok(Config {
            endpoint,
            origin,
            system,
            user,
            password,
            auth,
            trust,
            connect_timeout: ms("connect_timeout_ms", DEFAULT_CONNECT_TIMEOUT)?,
            request_timeout: ms("request_timeout_ms", DEFAULT_REQUEST_TIMEOUT)?,
            proxy,
        })
    }
}

/// The system from the URL path or the `system` option (not both, unless they agree).
fn system_ref(spec: &DeviceSpec, origin: &Url) -> Result<SystemRef, SpecError> {
    let from_path = match spec.path.as_deref().map(|p| p.trim_end_matches('/')) {
        None | Some("") => None,
        Some(p) => Some(parse_system("path", p, origin)?),
    };
    let from_option = spec
        .option("system")
        .map(|s| parse_system("system", s.trim_end_matches('/'), origin))
        .transpose()?;
    match (from_path, from_option) {
        (Some(a), Some(b)) if a != b => Err(SpecError::for_key(
            "system",
            "the device URL's path and the `system` option name different systems",
        )),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Ok(SystemRef::Only),
    }
}

fn parse_system(key: &str, raw: &str, origin: &Url) -> Result<SystemRef, SpecError> {
    if raw.is_empty() {
        return Err(SpecError::for_key(key, "empty system"));
    }
    if raw.starts_with('/') {
        if !raw.starts_with("/redfish/") {
            return Err(SpecError::for_key(
                key,
                format!("{raw:?}: a system path starts with /redfish/v1/Systems/"),
            ));
        }
        return Ok(SystemRef::Path(raw.to_owned()));
    }
    if raw.contains("://") {
        let url = Url::parse(raw).map_err(|e| SpecError::for_key(key, format!("{raw:?}: {e}")))?;
        if url.origin() != origin.origin() {
            return Err(SpecError::for_key(
                key,
                format!("{raw:?} is not on the device's address ({origin})"),
            ));
        }
        return Ok(SystemRef::Path(url.path().trim_end_matches('/').to_owned()));
    }
    if raw.contains('/') || raw.contains('?') || raw.contains('#') {
        return Err(SpecError::for_key(
            key,
            format!("{raw:?}: give a system id, a /redfish/v1/Systems/… path or a URL"),
        ));
    }
    Ok(SystemRef::Id(raw.to_owned()))
}

/// The `proxy` option: `http://host:port` and nothing more. The BMC's TLS runs end to end
/// inside the proxy's CONNECT tunnel, so the proxy sees where, not what. Errors never echo
/// the value: a mistyped one may hold a password (`http://user:secret@…`).
fn parse_proxy(raw: &str) -> Result<Url, SpecError> {
    let refuse = |why: &str| {
        Err(SpecError::for_key(
            "proxy",
            format!("{why}; expected `http://host:port`"),
        ))
    };
    let Some(rest) = raw.strip_prefix("http://") else {
        return refuse(
            "only an `http://` proxy is supported (the BMC's TLS runs inside its tunnel)",
        );
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return refuse(
            "the proxy URL must not carry credentials (an authenticating proxy is not supported)",
        );
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
    });
    if !has_port {
        return refuse("the proxy URL needs a host and a port");
    }
    if rest.len() > authority.len() && &rest[authority.len()..] != "/" {
        return refuse("the proxy URL must have no path, query or fragment");
    }
    let Ok(url) = Url::parse(raw) else {
        return refuse("not a valid URL");
    };
    if url.host_str().is_none_or(str::is_empty)
        || matches!(url.port_or_known_default(), None | Some(0))
    {
        return refuse("the proxy URL needs a host and a port (1 to 65535)");
    }
    Ok(url)
}

/// Exactly one trust source at most; none means "refuse and say what to set".
fn trust(spec: &DeviceSpec) -> Result<Trust, SpecError> {
    let pin = spec.option("pin");
    let ca_file = spec.option("ca_file");
    let insecure = spec.parsed_option::<bool>("insecure")?.unwrap_or(false);
    let given = [pin.is_some(), ca_file.is_some(), insecure]
        .iter()
        .filter(|g| **g)
        .count();
    if given > 1 {
        return Err(SpecError::for_key(
            if insecure { "insecure" } else { "ca_file" },
            "give only one of `pin`, `ca_file` and `insecure`",
        ));
    }
    if let Some(pin) = pin {
        return Fingerprint::parse_pin(pin)
            .map(Trust::Pin)
            .map_err(|why| SpecError::for_key("pin", why));
    }
    if let Some(path) = ca_file {
        return Trust::ca_file(Path::new(path)).map_err(|why| SpecError::for_key("ca_file", why));
    }
    Ok(if insecure {
        Trust::Insecure
    } else {
        Trust::Unconfigured
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> DeviceSpec {
        let mut s = DeviceSpec {
            name: "bmc1".into(),
            driver: "redfish".into(),
            address: "127.0.0.1:8443".into(),
            user: Some("admin".into()),
            ..Default::default()
        };
        s.secrets
            .insert("password".into(), SecretString::from("hunter2-pw"));
        s
    }

    #[test]
    fn defaults() {
        let c = Config::from_spec(&spec()).unwrap();
        assert_eq!(c.endpoint, "redfish://127.0.0.1:8443");
        assert_eq!(c.origin.as_str(), "https://127.0.0.1:8443/");
        assert_eq!(c.system, SystemRef::Only);
        assert_eq!(c.auth, AuthMode::Session);
        assert!(matches!(c.trust, Trust::Unconfigured));
        assert_eq!(c.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        let mut s = spec();
        s.address = "[::1]".into();
        assert_eq!(
            Config::from_spec(&s).unwrap().endpoint,
            "redfish://[::1]:443"
        );
    }

    #[test]
    fn system_forms() {
        let sys = |path: Option<&str>, opt: Option<&str>| {
            let mut s = spec();
            s.path = path.map(str::to_owned);
            if let Some(o) = opt {
                s.options.insert("system".into(), o.into());
            }
            Config::from_spec(&s).map(|c| c.system)
        };
        assert_eq!(
            sys(Some("/redfish/v1/Systems/1"), None),
            Ok(SystemRef::Path("/redfish/v1/Systems/1".into()))
        );
        assert_eq!(sys(Some("/"), None), Ok(SystemRef::Only));
        assert_eq!(sys(None, Some("node1")), Ok(SystemRef::Id("node1".into())));
        assert_eq!(
            sys(None, Some("https://127.0.0.1:8443/redfish/v1/Systems/2/")),
            Ok(SystemRef::Path("/redfish/v1/Systems/2".into()))
        );
        assert!(sys(None, Some("https://10.0.0.1/redfish/v1/Systems/2")).is_err());
        assert!(sys(Some("/redfish/v1/Systems/1"), Some("2")).is_err());
        assert!(sys(Some("/etc/passwd"), None).is_err());
        assert!(sys(None, Some("a/b")).is_err());
    }

    #[test]
    fn trust_and_auth_choices() {
        let with = |pairs: &[(&str, &str)]| {
            let mut s = spec();
            for (k, v) in pairs {
                s.options.insert((*k).into(), (*v).into());
            }
            Config::from_spec(&s)
        };
        let pin = format!("sha256:{}", "0a".repeat(32));
        assert!(matches!(
            with(&[("pin", &pin)]).unwrap().trust,
            Trust::Pin(_)
        ));
        assert!(matches!(
            with(&[("insecure", "true")]).unwrap().trust,
            Trust::Insecure
        ));
        let e = with(&[("pin", &pin), ("insecure", "true")]).unwrap_err();
        assert!(e.message.contains("only one"), "{e}");
        assert_eq!(
            with(&[("pin", "sha256:12")]).unwrap_err().key.as_deref(),
            Some("pin")
        );
        assert_eq!(
            with(&[("ca_file", "/nonexistent/ca.pem")])
                .unwrap_err()
                .key
                .as_deref(),
            Some("ca_file")
        );
        assert_eq!(
            with(&[("pinn", &pin)]).unwrap_err().key.as_deref(),
            Some("pinn")
        );
        assert_eq!(with(&[("auth", "basic")]).unwrap().auth, AuthMode::Basic);
        assert_eq!(
            with(&[("auth", "digest")]).unwrap_err().key.as_deref(),
            Some("auth")
        );
        assert_eq!(
            with(&[("request_timeout_ms", "0")])
                .unwrap_err()
                .key
                .as_deref(),
            Some("request_timeout_ms")
        );
        let mut s = spec();
        s.secrets.clear();
        assert_eq!(
            Config::from_spec(&s).unwrap_err().key.as_deref(),
            Some("password")
        );
        s.options.insert("auth".into(), "none".into());
        assert!(Config::from_spec(&s).unwrap().password.is_none());
    }

    #[test]
    fn proxy_is_an_http_host_and_port_and_never_with_insecure() {
        let with = |pairs: &[(&str, &str)]| {
            let mut s = spec();
            for (k, v) in pairs {
                s.options.insert((*k).into(), (*v).into());
            }
            Config::from_spec(&s)
        };
        let pin = format!("sha256:{}", "0a".repeat(32));
        assert_eq!(with(&[("pin", &pin)]).unwrap().proxy, None);
        for good in [
            "http://127.0.0.1:3128",
            "http://proxy.example:8080/",
            "http://[::1]:3128",
        ] {
            let c = with(&[("pin", &pin), ("proxy", good)]).unwrap();
            let url = c.proxy.expect(good);
            assert_eq!(url.scheme(), "http");
            assert!(url.port_or_known_default().is_some_and(|p| p != 0));
        }
        for bad in [
            "https://127.0.0.1:3128",
            "socks5://127.0.0.1:1080",
            "127.0.0.1:3128",
            "http://127.0.0.1",
            "http://[::1]",
            "http://:3128",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:3128/path",
            "http://127.0.0.1:3128?x=1",
            "http://127.0.0.1:3128#f",
            "http://proxyuser:Pr0xy-S3cret@127.0.0.1:3128",
            "http://Pr0xy-S3cret@127.0.0.1:3128",
            "http://@127.0.0.1:3128",
        ] {
            let e = with(&[("pin", &pin), ("proxy", bad)]).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("proxy"), "{bad}: {e}");
            assert!(e.message.contains("http://host:port"), "{bad}: {e}");
            // The value is never echoed: a mistyped one may hold a password.
            assert!(!e.to_string().contains("Pr0xy-S3cret"), "{bad}: {e}");
            assert!(!e.to_string().contains("127.0.0.1"), "{bad}: {e}");
        }
        // An unverified certificate behind a proxy: refused, whatever the order.
        let e = with(&[("insecure", "true"), ("proxy", "http://127.0.0.1:3128")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("proxy"), "{e}");
        assert!(e.message.contains("insecure"), "{e}");
        // Without a proxy, insecure stays possible (and loud).
        assert!(with(&[("insecure", "true")]).is_ok());
    }

    #[test]
    fn ca_file_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "no certificate here\n").unwrap();
        let mut s = spec();
        s.options
            .insert("ca_file".into(), path.to_string_lossy().into_owned());
        let e = Config::from_spec(&s).unwrap_err();
        assert!(e.message.contains("no PEM certificate"), "{e}");
    }
}
