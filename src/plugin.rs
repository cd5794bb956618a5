//! `fencegate plugin check PATH`: load a plugin and run the contract's non-destructive checks.

use crate::cli::Global;
use crate::error::CommandError;
use crate::exit;
use fencegate_core::secrets::{SecretRef, is_secret_role};
use fencegate_core::time::parse_duration;
use fencegate_driver::DeviceSpec;
use std::path::Path;

/// Check the plugin at `path`; exit 0 only if every step passed.
#[allow(clippy::too_many_arguments)]
pub async fn check(
    global: &Global,
    path: &Path,
    options: &[String],
    secret_files: &[String],
    secret_envs: &[String],
    user: Option<&str>,
    timeout: &str,
) -> Result<u8, CommandError> {
    let timeout =
        parse_duration(timeout).map_err(|e| CommandError::usage(format!("--timeout: {e}")))?;
    let mut spec = DeviceSpec {
        name: path.display().to_string(),
        driver: "plugin".into(),
        address: path.display().to_string(),
        user: user.map(str::to_owned),
        ..DeviceSpec::default()
    };
    for o in options {
        let (k, v) = split(o, "--option")?;
        if is_secret_role(k) {
            return Err(CommandError::usage(format!(
                "--option {k}: secrets never go on the command line; use --secret-file {k}=FILE or --secret-env {k}=VAR"
            )));
        }
        spec.options.insert(k.to_owned(), v.to_owned());
    }
    let references = secret_files
        .iter()
        .map(|s| split(s, "--secret-file").map(|(r, f)| (r, SecretRef::File(f.into()))))
        .chain(
            secret_envs
                .iter()
                .map(|s| split(s, "--secret-env").map(|(r, v)| (r, SecretRef::Env(v.into())))),
        );
    for reference in references {
        let (role, reference) = reference?;
        let secret = reference
            .resolve(None)
            .map_err(|e| CommandError::usage(format!("secret {role}: {e}")))?;
        spec.secrets.insert(role.to_owned(), secret);
    }
    let report = fencegate_plugin::check(path, &spec, timeout)
        .await
        .map_err(|e| CommandError::usage(e.to_string()))?;
    if global.json {
        crate::output::print_json(&report);
    } else {
        println!("{report}");
    }
    Ok(if report.passed() {
        exit::OK
    } else {
        exit::FAILED
    })
}

fn split<'a>(s: &'a str, flag: &str) -> Result<(&'a str, &'a str), CommandError> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| CommandError::usage(format!("{flag} {s:?}: expected KEY=VALUE")))
}
