//! Device URLs for ad-hoc use without an inventory:
//! `ipmi://admin@127.0.0.1:9623?cipher=3`,
//! `redfish://admin@127.0.0.1:8443/redfish/v1/Systems/1?pin=sha256:…`,
//! `snmp://127.0.0.1:1163/outlet/4?version=2c`, `ssh://fencehost@127.0.0.1:2222`.
//!
//! A URL never carries a secret: `user:password@` and `?password=` are refused, because
//! URLs end up in shell history, argv and logs. Secrets come from `?ROLE_file=`/`?ROLE_env=`
//! references (`password_file`, `community_file`, `key_file`, …); a device that names none
//! gets its password from the command line's `--password-file`/`--password-env`, else from
//! the `FENCEGATE_PASSWORD` environment variable.

use crate::secrets::{SecretRef, is_secret_role};
use fencegate_driver::DeviceSpec;

/// The environment variable consulted when a device has no password reference of its own.
pub const PASSWORD_ENV: &str = "FENCEGATE_PASSWORD";

/// Parse `url` into a device specification, resolving its secret references.
///
/// `default_password` is the command line's `--password-file`/`--password-env`, applied to
/// devices that name no password of their own.
pub fn parse_device_url(
    url: &str,
    default_password: Option<&SecretRef>,
) -> Result<DeviceSpec, String> {
    let bad = |why: String| format!("device URL {}: {why}", redact(url));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected SCHEME://[USER@]HOST[:PORT][/PATH][?OPTIONS]".into()))?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(bad(format!("invalid scheme {scheme:?}")));
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            if userinfo.contains(':') {
                return Err(bad(
                    "a URL must not carry a password; use --password-file, --password-env or ?password_file=".into(),
                ));
            }
            (Some(percent_decode(userinfo).map_err(bad)?), host)
        }
        None => (None, authority),
    };
    let mut spec = DeviceSpec {
        name: redact(url),
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
        let v = percent_decode(v).map_err(bad)?;
        if let Some((role, reference)) = SecretRef::from_key(&k, &v) {
            let secret = reference
                .resolve(None)
                .map_err(|e| bad(format!("{k}: {e}")))?;
            if spec.secrets.insert(role.clone(), secret).is_some() {
                return Err(bad(format!("the {role} is given twice")));
            }
        } else if is_secret_role(&k) {
            return Err(bad(format!(
                "secrets never go in a URL: use `{k}_file=` or `{k}_env=` instead of `{k}=`"
            )));
        } else if spec.options.insert(k.clone(), v).is_some() {
            return Err(bad(format!("option `{k}` is given twice")));
        }
    }
    // The fallback password fills in only for a device that names no secret of its own: an
    // SNMP community or SSH key given by reference is the device's whole credential.
    if spec.secrets.is_empty() {
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

/// The URL with anything after `:` in the user part removed, for messages.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            match rest[..end].rsplit_once('@') {
                Some((userinfo, host)) if userinfo.contains(':') => {
                    let user = userinfo.split(':').next().unwrap_or("");
                    format!("{scheme}://{user}:***@{host}{}", &rest[end..])
                }
                _ => url.to_owned(),
            }
        }
        None => url.to_owned(),
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
    use fencegate_driver::ExposeSecret;

    #[test]
    fn ipmi_url() {
        let s = parse_device_url("ipmi://admin@127.0.0.1:9623?cipher=3", None).unwrap();
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
        )
        .unwrap();
        assert_eq!(s.path.as_deref(), Some("/redfish/v1/Systems/1"));
        assert_eq!(s.option("pin"), Some("sha256:ab"));
        let s = parse_device_url("snmp://127.0.0.1:1163/outlet/4?version=2c", None).unwrap();
        assert_eq!(s.path.as_deref(), Some("/outlet/4"));
        let s = parse_device_url("ssh://fencehost@[::1]:2222", None).unwrap();
        assert_eq!(s.address, "[::1]:2222");
    }

    #[test]
    fn external_program_path() {
        let s = parse_device_url("external:///usr/lib/fg/driver?state=/tmp/x", None).unwrap();
        assert_eq!(s.address, "/usr/lib/fg/driver");
        assert_eq!(s.path, None);
    }

    #[test]
    fn secrets_in_urls_are_refused_without_echoing_them() {
        let e = parse_device_url("ipmi://admin:hunter2@127.0.0.1", None).unwrap_err();
        assert!(e.contains("must not carry a password"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse_device_url("snmp://127.0.0.1/outlet/1?community=private", None).unwrap_err();
        assert!(e.contains("community_file"), "{e}");
    }

    #[test]
    fn password_references() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "pw-from-file\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let url = format!("ipmi://admin@127.0.0.1?password_file={}", pw.display());
        let s = parse_device_url(&url, None).unwrap();
        assert_eq!(
            s.secret("password").unwrap().expose_secret(),
            "pw-from-file"
        );
        let r = SecretRef::File(pw.clone());
        let s = parse_device_url("ipmi://admin@127.0.0.1", Some(&r)).unwrap();
        assert_eq!(
            s.secret("password").unwrap().expose_secret(),
            "pw-from-file"
        );
        // A device with a secret of its own gets no fallback password.
        let url = format!("snmp://127.0.0.1/outlet/1?community_file={}", pw.display());
        let s = parse_device_url(&url, Some(&r)).unwrap();
        assert_eq!(s.secrets.keys().collect::<Vec<_>>(), ["community"]);
        let missing = SecretRef::Env("FG_URL_TEST_SURELY_UNSET".into());
        let e = parse_device_url("ipmi://admin@127.0.0.1", Some(&missing)).unwrap_err();
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
            assert!(parse_device_url(bad, None).is_err(), "{bad}");
        }
    }
}
