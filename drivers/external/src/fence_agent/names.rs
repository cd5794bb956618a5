//! The names a fence agent is configured with: where the agent is, which keys may become
//! stdin lines, and which agent parameter each of the contract's secret roles becomes.

use super::metadata::normalize;
use fencegate_driver::SpecError;
use std::path::PathBuf;

/// Where a bare agent name is looked up first (Debian and Red Hat install agents in
/// `/usr/sbin`), before `PATH`.
pub const AGENT_DIRS: &[&str] = &["/usr/sbin", "/usr/bin"];

/// Options the adapter sets itself and refuses from configuration.
pub(crate) const OWN_KEYS: &[&str] = &["action", "option", "username", "login"];

/// The contract's secret roles and the agent parameter each is sent as. Other roles are
/// sent under their own name (and must then be a parameter the agent knows).
pub const SECRET_PARAMETERS: &[(&str, &str)] = &[
    ("password", "password"),
    ("passwd", "password"),
    ("auth_password", "password"),
    ("priv_password", "snmp_priv_passwd"),
    ("kg", "hexadecimal_kg"),
    ("community", "community"),
];

/// The agent parameter a secret role is sent as.
pub fn secret_parameter(role: &str) -> String {
    let role = normalize(role);
    SECRET_PARAMETERS
        .iter()
        .find(|(r, _)| *r == role)
        .map(|(_, p)| (*p).to_owned())
        .unwrap_or(role)
}

/// The secret role under which a password-like agent parameter must be configured.
pub(crate) fn role_for(parameter: &str) -> &'static str {
    match parameter {
        "snmp_priv_passwd" => "priv_password",
        _ => "password",
    }
}

/// Option and secret names become stdin keys: keep them to what the protocol allows.
pub(crate) fn check_key(key: &str) -> Result<(), SpecError> {
    let ok = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(SpecError::for_key(
            key,
            "a fence-agent parameter name has only letters, digits, `_` and `-`",
        ))
    }
}

/// Find the agent: a path is used as given (the inventory makes a relative one relative to
/// its own directory); a bare name is looked up in [`AGENT_DIRS`], then `PATH`. Either way
/// the file found must pass [`crate::trusted_file`]: an agent someone else could replace is
/// code run as fencegate's user, normally root.
pub fn resolve_agent(address: &str) -> Result<PathBuf, SpecError> {
    if address.is_empty() {
        return Err(SpecError::for_key(
            "address",
            "name the fence agent, e.g. `fence_ipmilan` or `/usr/sbin/fence_ipmilan`",
        ));
    }
    if address.contains('/') {
        let path = PathBuf::from(address);
        return if path.is_file() {
            crate::trusted_file(&path, "fence agent")
        } else {
            Err(SpecError::for_key(
                "address",
                format!("no fence agent at {address}"),
            ))
        };
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    AGENT_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(path_dirs)
        .map(|dir| dir.join(address))
        .find(|candidate| candidate.is_file())
        .map(|found| crate::trusted_file(&found, "fence agent"))
        .ok_or_else(|| {
            SpecError::for_key(
                "address",
                format!(
                    "fence agent `{address}` not found in {} or PATH (Debian package `fence-agents`)",
                    AGENT_DIRS.join(", ")
                ),
            )
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_roles_map_to_agent_parameters() {
        assert_eq!(secret_parameter("password"), "password");
        assert_eq!(secret_parameter("priv_password"), "snmp_priv_passwd");
        assert_eq!(secret_parameter("kg"), "hexadecimal_kg");
        assert_eq!(secret_parameter("community"), "community");
        assert_eq!(secret_parameter("snmp-priv-passwd"), "snmp_priv_passwd");
        assert_eq!(role_for("snmp_priv_passwd"), "priv_password");
        assert_eq!(role_for("passwd"), "password");
    }

    #[test]
    fn keys_are_plain_names() {
        for good in ["ip", "power-wait", "snmp_priv_passwd", "4k"] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a b", "a=b", "a\nb", "é"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn agent_lookup() {
        assert_eq!(resolve_agent("/bin/sh").unwrap(), PathBuf::from("/bin/sh"));
        assert!(resolve_agent("sh").unwrap().ends_with("sh"));
        let e = resolve_agent("fence_does_not_exist_here").unwrap_err();
        assert!(e.message.contains("fence-agents"), "{e}");
        assert!(resolve_agent("/nonexistent/fence_x").is_err());
        assert!(resolve_agent("").is_err());
    }

    #[test]
    fn an_agent_others_could_replace_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("fence_local");
        std::fs::write(&agent, "#!/bin/sh\n").unwrap();
        let chmod =
            |mode| std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(mode)).unwrap();
        chmod(0o755);
        let path = agent.display().to_string();
        assert_eq!(resolve_agent(&path).unwrap(), agent);
        chmod(0o777);
        let e = resolve_agent(&path).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("address"));
        assert!(
            e.message.contains("fence agent ") && e.message.contains("chmod go-w"),
            "{e}"
        );
    }
}
