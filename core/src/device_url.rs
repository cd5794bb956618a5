//! Device URLs for ad-hoc use without an inventory:
//! `ipmi://admin@127.0.0.1:9623?cipher=3`,
//! `redfish://admin@127.0.0.1:8443/redfish/v1/Systems/1?pin=sha256:…`,
//! `snmp://127.0.0.1:1163/outlet/4?version=2c`, `ssh://fencehost@127.0.0.1:2222`.
//!
//! A URL never carries a secret: `user:password@` and secret options (`?password=`,
//! `?PASSWORD=`, `?community=`, `?token=`, … in any case or percent-encoding) are refused,
//! because URLs end up in shell history, argv and logs, and a refusal never echoes the value:
//! messages show the URL with its user part's password and every secret-like option's value
//! replaced by `***`. Secrets come from `?ROLE_file=`/`?ROLE_env=` references
//! (`password_file`, `community_file`, `key_file`, …); a device that names none, and whose
//! driver takes a `password` ([`fencegate_driver::DriverFactory::secret_roles`]), gets its
//! password from the command line's `--password-file`/`--password-env`, else from the
//! `FENCEGATE_PASSWORD` environment variable. Other drivers (`external` programs, plugins,
//! SNMP, …) never get that fallback.

use crate::registry::Registry;
use crate::secrets::{SecretRef, is_secret_role};
use fencegate_driver::{DeviceSpec, secret_like};

/// The environment variable consulted when a device has no password reference of its own.
pub const PASSWORD_ENV: &str = "FENCEGATE_PASSWORD";

/// What replaces a secret in a URL shown in a message.
const HIDDEN: &str = "***";

/// Parse `url` into a device specification, resolving its secret references.
///
/// `default_password` is the command line's `--password-file`/`--password-env`, applied to
/// devices that name no secret of their own and whose driver in `registry` takes a
/// `password`.
pub fn parse_device_url(
    url: &str,
    default_password: Option<&SecretRef>,
    registry: &Registry,
) -> Result<DeviceSpec, String> {
    let bad = |why: String| format!("device URL {}: {why}", shown(url));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected SCHEME://[USER@]HOST[:PORT][/PATH][?OPTIONS]".into()))?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(bad("invalid scheme".into()));
    }
    if rest.contains('#') {
        return Err(bad(
            "a URL here has no `#` fragment (percent-encode it as %23)".into(),
        ));
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let password_refused = || {
        bad("a URL must not carry a password; use --password-file, --password-env or ?password_file=".into())
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            if userinfo.contains([':', '@']) {
                return Err(password_refused());
            }
            (Some(percent_decode(userinfo).map_err(bad)?), host)
        }
        None => (None, authority),
    };
    // An `@` past the user part means a password with `/` or `?` in it was cut there.
    if path.is_some_and(|p| p.contains('@')) {
        return Err(password_refused());
    }
    // A second `?` would start options inside an option's value (`?a=1?password=…`).
    if query.is_some_and(|q| q.contains('?')) {
        return Err(bad(
            "a `?` inside the options is percent-encoded (%3F); options are joined by `&`".into(),
        ));
    }
    // Options after a forgotten `?` (`…/outlet/1&password=…`) must not become the path.
    if path.is_some_and(|p| p.contains(['&', '='])) {
        return Err(bad(
            "`&` and `=` in a path are percent-encoded (%26, %3D); options follow a `?`".into(),
        ));
    }
    check_host(host).map_err(|why| bad(why.into()))?;
    let mut spec = DeviceSpec {
        driver: scheme.to_owned(),
        user,
        ..DeviceSpec::default()
    };
    match (host.is_empty(), path) {
        // `external:///usr/lib/fencegate/driver`: the path is the address.
        (true, Some(p)) => spec.address = percent_decode(p).map_err(bad)?,
        (true, None) => return Err(bad("missing host".into())),
        (false, p) => {
            spec.address = host.to_owned();
            spec.path = p
                .filter(|p| *p != "/")
                .map(percent_decode)
                .transpose()
                .map_err(bad)?;
        }
    }
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        let k = percent_decode(k).map_err(bad)?;
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            // Also what is left of a password holding `?`: `admin:12?34@host`.
            return Err(bad(
                "an option name has only letters, digits, `_`, `-` and `.`".into(),
            ));
        }
        let v = percent_decode(v).map_err(bad)?;
        if let Some((role, reference)) = SecretRef::from_key(&k, &v) {
            let secret = reference
                .resolve(None)
                .map_err(|e| bad(format!("{k}: {e}")))?;
            if spec.secrets.insert(role.clone(), secret).is_some() {
                return Err(bad(format!("the {role} is given twice")));
            }
        } else if is_secret_role(&k) || secret_like(&k) {
            let role = k.to_ascii_lowercase();
            let hint = if is_secret_role(&role) {
                format!("use `{role}_file=` or `{role}_env=` instead of `{k}=`")
            } else {
                format!("`{k}` names a secret; give it by a `ROLE_file=` or `ROLE_env=` reference")
            };
            return Err(bad(format!("secrets never go in a URL: {hint}")));
        } else if spec.options.insert(k.clone(), v).is_some() {
            return Err(bad(format!("option `{k}` is given twice")));
        }
    }
    // Whatever could hide a secret was refused above: the URL is now fit to show as is.
    spec.name = url.to_owned();
    // The fallback password fills in only for a device that names no secret of its own (an
    // SNMP community or SSH key given by reference is the device's whole credential), and
    // only if its driver takes a password: a BMC password must not reach an external
    // program, a plugin, or a driver that would send it somewhere else.
    if spec.secrets.is_empty() && registry.secret_roles(&spec.driver).contains(&"password") {
        let fallback = match default_password {
            Some(r) => Some(r.clone()),
            None => std::env::var_os(PASSWORD_ENV).map(|_| SecretRef::Env(PASSWORD_ENV.into())),
        };
        if let Some(reference) = fallback {
            let secret = reference
                .resolve(None)
                .map_err(|e| bad(format!("password: {e}")))?;
            spec.secrets.insert("password".into(), secret);
        }
    }
    Ok(spec)
}

/// A host is a name or address with an optional numeric port (`[v6]:port` for IPv6), so
/// that what is left of a mangled user part (`admin:pa` of `admin:pa/ss@h`) is refused, and
/// so is anything else a name cannot hold (`h&password=…`, a `?` forgotten before the
/// options). The error does not quote the host: it may be that user part.
fn check_host(host: &str) -> Result<(), &'static str> {
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let port = if let Some(v6) = host.strip_prefix('[') {
        match v6.split_once(']') {
            Some((inner, rest)) => {
                if !inner
                    .chars()
                    .all(|c| name_char(c) || matches!(c, ':' | '%'))
                {
                    return Err("malformed IPv6 host");
                }
                match rest {
                    "" => None,
                    after => Some(after.strip_prefix(':').ok_or("malformed host")?),
                }
            }
            None => return Err("malformed IPv6 host (missing `]`)"),
        }
    } else {
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        if !name.chars().all(name_char) {
            return Err("a host is a name or an address (letters, digits, `.`, `-`, `_`)");
        }
        port
    };
    match port {
        Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => {
            Err("the port must be a number")
        }
        _ => Ok(()),
    }
}

/// `url` for messages: the password of its user part and the value of every secret-like
/// option replaced by `***`. Used only where the URL may be malformed, so it assumes the
/// worst: everything between the first `:` after a plain user name and the last `@` is
/// hidden (a password may hold `/`, `?`, `#` or `@`).
fn shown(url: &str) -> String {
    let (prefix, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let rest = match rest.rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            let user = rest[..at].split(':').next().unwrap_or("");
            if user.contains(['/', '?', '#', '[', '&', '=']) {
                format!("{HIDDEN}@{}", &rest[at + 1..])
            } else {
                format!("{user}:{HIDDEN}@{}", &rest[at + 1..])
            }
        }
        _ => rest.to_owned(),
    };
    // Every `KEY=VALUE` piece between `?` and `&` separators, wherever it is: a malformed
    // URL may carry its options after a second `?`, or after a `&` with no `?` at all.
    let mut shown_rest = String::with_capacity(rest.len());
    let mut start = 0;
    let ends = rest
        .match_indices(['?', '&'])
        .chain(std::iter::once((rest.len(), "")));
    for (end, sep) in ends {
        let piece = &rest[start..end];
        match piece.split_once('=') {
            Some((k, _)) if hides_value(k) => {
                shown_rest.push_str(k);
                shown_rest.push('=');
                shown_rest.push_str(HIDDEN);
            }
            _ => shown_rest.push_str(piece),
        }
        shown_rest.push_str(sep);
        start = end + sep.len();
    }
    format!("{prefix}{shown_rest}")
}

/// Whether an option's value is hidden in messages: a secret-like name, however spelled or
/// percent-encoded, or a name that does not decode.
fn hides_value(key: &str) -> bool {
    match percent_decode(key) {
        Ok(k) => {
            let lower = k.to_ascii_lowercase();
            is_secret_role(&lower) || secret_like(&lower)
        }
        Err(_) => true,
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes do not form UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencegate_driver::{DriverFactory, ExposeSecret, PowerDriver, SpecError};
    use std::sync::Arc;

    /// A factory that takes `roles` and builds nothing (parsing never builds).
    struct Roles(&'static str, &'static [&'static str]);

    impl DriverFactory for Roles {
        fn name(&self) -> &'static str {
            self.0
        }
        fn summary(&self) -> &'static str {
            "test"
        }
        fn build(&self, _: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
            Err(SpecError::for_key("driver", "not built in tests"))
        }
        fn secret_roles(&self) -> &'static [&'static str] {
            self.1
        }
    }

    fn registry(drivers: &[(&'static str, &'static [&'static str])]) -> Registry {
        let mut r = Registry::new();
        for (name, roles) in drivers {
            r.register(Arc::new(Roles(name, roles)));
        }
        r
    }

    #[test]
    fn ipmi_url() {
        let s =
            parse_device_url("ipmi://admin@127.0.0.1:9623?cipher=3", None, &registry(&[])).unwrap();
        assert_eq!(s.driver, "ipmi");
        assert_eq!(s.user.as_deref(), Some("admin"));
        assert_eq!(s.address, "127.0.0.1:9623");
        assert_eq!(s.option("cipher"), Some("3"));
        assert_eq!(s.path, None);
    }

    #[test]
    fn redfish_and_snmp_paths() {
        let s = parse_device_url(
            "redfish://admin@127.0.0.1:8443/redfish/v1/Systems/1?pin=sha256:ab",
            None,
            &registry(&[]),
        )
        .unwrap();
        assert_eq!(s.path.as_deref(), Some("/redfish/v1/Systems/1"));
        assert_eq!(s.option("pin"), Some("sha256:ab"));
        let s = parse_device_url(
            "snmp://127.0.0.1:1163/outlet/4?version=2c",
            None,
            &registry(&[]),
        )
        .unwrap();
        assert_eq!(s.path.as_deref(), Some("/outlet/4"));
        let s = parse_device_url("ssh://fencehost@[::1]:2222", None, &registry(&[])).unwrap();
        assert_eq!(s.address, "[::1]:2222");
    }

    #[test]
    fn external_program_path() {
        let s = parse_device_url(
            "external:///usr/lib/fg/driver?state=/tmp/x",
            None,
            &registry(&[]),
        )
        .unwrap();
        assert_eq!(s.address, "/usr/lib/fg/driver");
        assert_eq!(s.path, None);
    }

    #[test]
    fn secrets_in_urls_are_refused_without_echoing_them() {
        let e =
            parse_device_url("ipmi://admin:hunter2@127.0.0.1", None, &registry(&[])).unwrap_err();
        assert!(e.contains("must not carry a password"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse_device_url(
            "snmp://127.0.0.1/outlet/1?community=private",
            None,
            &registry(&[]),
        )
        .unwrap_err();
        assert!(e.contains("community_file"), "{e}");
    }

    /// Found by the `device_url` fuzz target: options after a forgotten `?` were taken into
    /// the host, and options after a second `?` were shown whole in the error.
    #[test]
    fn options_outside_the_query_are_refused_without_echo() {
        for url in [
            "ipmi://127.0.0.1&password=hunter2",
            "ipmi://bmc1&cipher=3&password=hunter2",
            "&password=hunter2",
            "ipmi://127.0.0.1?x=%?password=hunter2",
            "ipmi://[::1&password=hunter2]",
            "snmp://127.0.0.1/outlet/1&password=hunter2",
            "snmp://127.0.0.1/outlet/1?=x?password=hunter2",
            "snmp://127.0.0.1/outlet/1?version=2c?password=hunter2",
        ] {
            refused_without_echo(url, "hunter2");
        }
        let e = parse_device_url("ipmi://bmc1&cipher=3", None, &registry(&[])).unwrap_err();
        assert!(e.contains("a host is a name or an address"), "{e}");
    }

    /// The parse fails, and the error shows no part of `secret`.
    fn refused_without_echo(url: &str, secret: &str) -> String {
        let e = parse_device_url(url, None, &registry(&[])).unwrap_err();
        assert!(!e.contains(secret), "{url}: {e}");
        e
    }

    #[test]
    fn secrets_in_query_options_are_refused_without_echo_in_any_case() {
        for key in [
            "password",
            "PASSWORD",
            "Password",
            "pass%77ord",
            "passwd",
            "community",
            "Community",
            "kg",
            "KG",
            "auth_password",
            "priv_password",
            "token",
            "Token",
            "apikey",
            "secret_key",
            "passphrase",
            "key",
            "secret",
            "snmp_priv_passwd",
        ] {
            let url = format!("ipmi://admin@127.0.0.1:623?cipher=3&{key}=hunter2&x=1");
            let e = refused_without_echo(&url, "hunter2");
            assert!(e.contains("secrets never go in a URL"), "{url}: {e}");
            assert!(
                e.contains("device URL ipmi://admin@127.0.0.1:623?"),
                "{url}: {e}"
            );
        }
    }

    #[test]
    fn passwords_in_the_user_part_are_refused_without_echo_in_any_form() {
        for url in [
            "ipmi://admin:hunter2@127.0.0.1",
            "ipmi://admin:hunter2@127.0.0.1:623/x?cipher=3",
            "ipmi://:hunter2@127.0.0.1",
            "ipmi://admin:hun@ter2@127.0.0.1",
            "ipmi://admin:hun/ter2@127.0.0.1",
            "ipmi://admin:hun?ter2@127.0.0.1",
            "ipmi://admin:hun#ter2@127.0.0.1",
            "ipmi://admin:1234/5678@127.0.0.1",
            "ipmi://admin:1234?5678@127.0.0.1",
            "ipmi://admin:hunter2@[::1]:623",
            "admin:hunter2@127.0.0.1",
        ] {
            let e = parse_device_url(url, None, &registry(&[])).unwrap_err();
            for part in ["hunter2", "hun", "ter2", "1234", "5678"] {
                if url.contains(part) {
                    assert!(!e.contains(part), "{url}: {e}");
                }
            }
        }
    }

    #[test]
    fn a_valid_url_is_its_own_name() {
        let url = "ipmi://admin@127.0.0.1:623?cipher=3&state_file=/run/a@b";
        let s = parse_device_url(url, None, &registry(&[])).unwrap();
        assert_eq!(s.name, url);
        assert_eq!(s.option("state_file"), Some("/run/a@b"));
    }

    #[test]
    fn the_fallback_password_reaches_only_drivers_that_take_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "bmc-fallback\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let r = SecretRef::File(pw);
        let reg = registry(&[
            ("ipmi", &["password", "kg"]),
            ("snmp", &["community"]),
            ("external", &[]),
        ]);
        let s = parse_device_url("ipmi://admin@127.0.0.1", Some(&r), &reg).unwrap();
        assert!(s.secret("password").is_some());
        for url in [
            "external:///usr/lib/fencegate/driver",
            "snmp://127.0.0.1/outlet/1",
            "plugin:///usr/lib/x.so",
        ] {
            let s = parse_device_url(url, Some(&r), &reg).unwrap();
            assert!(s.secrets.is_empty(), "{url} got {:?}", s.secrets.keys());
        }
    }

    #[test]
    fn password_references() {
        use std::os::unix::fs::PermissionsExt;
        let reg = registry(&[("ipmi", &["password"]), ("snmp", &["community"])]);
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "pw-from-file\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let url = format!("ipmi://admin@127.0.0.1?password_file={}", pw.display());
        let s = parse_device_url(&url, None, &reg).unwrap();
        assert_eq!(
            s.secret("password").unwrap().expose_secret(),
            "pw-from-file"
        );
        let r = SecretRef::File(pw.clone());
        let s = parse_device_url("ipmi://admin@127.0.0.1", Some(&r), &reg).unwrap();
        assert_eq!(
            s.secret("password").unwrap().expose_secret(),
            "pw-from-file"
        );
        // A device with a secret of its own gets no fallback password.
        let url = format!("snmp://127.0.0.1/outlet/1?community_file={}", pw.display());
        let s = parse_device_url(&url, Some(&r), &reg).unwrap();
        assert_eq!(s.secrets.keys().collect::<Vec<_>>(), ["community"]);
        let missing = SecretRef::Env("FG_URL_TEST_SURELY_UNSET".into());
        let e = parse_device_url("ipmi://admin@127.0.0.1", Some(&missing), &reg).unwrap_err();
        assert!(e.contains("not set"), "{e}");
    }

    #[test]
    fn malformed_urls() {
        for bad in [
            "127.0.0.1",
            "IPMI://x",
            "ipmi://",
            "ipmi://h?cipher=1&cipher=2",
            "ipmi://h/%zz",
        ] {
            assert!(
                parse_device_url(bad, None, &registry(&[])).is_err(),
                "{bad}"
            );
        }
    }
}
