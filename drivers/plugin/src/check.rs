//! `fencegate plugin check PATH`: load a plugin, show what it is, and run the contract's
//! non-destructive checks (configure, capabilities, one status read, the identity it
//! reports). No power command is ever sent.

use crate::driver::PluginDriver;
use crate::load::{self, LoadError, LoadProblem};
use fencegate_driver::{Action, Channel, DeviceSpec, IdentityFact, PowerDriver};
use fencegate_plugin_sdk::abi::{ABI_MAJOR, ABI_MINOR};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How one check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The check passed.
    Ok,
    /// The check passed, but the plugin cannot serve fencing fully (e.g. no state reading).
    Warning,
    /// The check failed.
    Failed,
    /// The check was not run (an earlier one failed, or it does not apply).
    Skipped,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so that width and alignment apply (the report aligns the outcome column).
        f.pad(match self {
            Outcome::Ok => "ok",
            Outcome::Warning => "warn",
            Outcome::Failed => "FAIL",
            Outcome::Skipped => "skip",
        })
    }
}

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckStep {
    /// `configure`, `capabilities`, `status` or `identity`.
    pub step: &'static str,
    /// How it went.
    pub outcome: Outcome,
    /// What was seen, for humans.
    pub detail: String,
}

/// The plugin's ABI as its table declares it, next to the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AbiReport {
    /// The plugin's ABI major (equal to the host's, or it would not have loaded).
    pub major: u32,
    /// The plugin's ABI minor.
    pub minor: u32,
    /// The size of the plugin's table, in bytes.
    pub struct_size: u64,
    /// The host's ABI major.
    pub host_major: u32,
    /// The host's ABI minor.
    pub host_minor: u32,
}

/// What `check` found: the plugin's metadata and the result of each check. `Display` is the
/// human form; `Serialize` gives the same as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    /// The canonical path the library was loaded from.
    pub path: PathBuf,
    /// The plugin's name from its table.
    pub name: String,
    /// The plugin's version from its table.
    pub version: String,
    /// Its ABI version and table size.
    pub abi: AbiReport,
    /// The actions it declares (those this fencegate knows).
    pub actions: Vec<Action>,
    /// Whether it declares that it reads power state.
    pub reads_power_state: bool,
    /// The kind of channel it declares (`other` when it does not say).
    pub channel: Channel,
    /// Whether it declares identity facts the endpoint proves with the credentials. Without
    /// them the device cannot be pinned, which the report says.
    pub authenticated_identity: bool,
    /// The checks, in the order they ran.
    pub steps: Vec<CheckStep>,
    /// Identity facts the plugin reported about the endpoint.
    pub identity: Vec<IdentityFact>,
}

impl PluginReport {
    /// Whether no check failed (warnings pass), for the command's exit status.
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.outcome != Outcome::Failed)
    }
}

impl fmt::Display for PluginReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.abi;
        let actions: Vec<&str> = self.actions.iter().map(|a| a.as_str()).collect();
        writeln!(f, "plugin {} {}", self.name, self.version)?;
        writeln!(f, "  path:    {}", self.path.display())?;
        writeln!(
            f,
            "  abi:     {}.{} (table {} bytes; fencegate speaks {}.{})",
            a.major, a.minor, a.struct_size, a.host_major, a.host_minor
        )?;
        writeln!(
            f,
            "  actions: {}",
            if actions.is_empty() {
                "none".to_owned()
            } else {
                actions.join(", ")
            }
        )?;
        writeln!(
            f,
            "  reads power state: {}",
            if self.reads_power_state { "yes" } else { "no" }
        )?;
        writeln!(f, "  channel: {}", self.channel)?;
        writeln!(
            f,
            "  authenticated identity: {}",
            if self.authenticated_identity {
                "yes"
            } else {
                "no (the endpoint cannot be pinned)"
            }
        )?;
        for fact in &self.identity {
            let how = if fact.authenticated {
                "authenticated"
            } else {
                "unauthenticated"
            };
            writeln!(f, "  identity: {} = {} ({how})", fact.kind, fact.value)?;
        }
        for step in &self.steps {
            writeln!(f, "  {:<4} {}: {}", step.outcome, step.step, step.detail)?;
        }
        write!(f, "{}", if self.passed() { "passed" } else { "FAILED" })
    }
}

/// Load the plugin at `path` and check it without changing any power state.
///
/// `device` supplies the name, options (including `target`) and secrets handed to the
/// plugin's `configure`; its `address` is replaced by `path`. Each step is bounded by
/// `timeout`. A library that cannot be loaded is an `Err` naming the path and the mismatch;
/// anything after loading is reported as a step.
pub async fn check(
    path: impl AsRef<Path>,
    device: &DeviceSpec,
    timeout: Duration,
) -> Result<PluginReport, LoadError> {
    let path = path.as_ref().to_owned();
    let loading = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || load::load(&path))
    };
    let refused = |problem| LoadError {
        path: path.clone(),
        problem,
    };
    let plugin = match tokio::time::timeout(timeout, loading).await {
        Ok(Ok(loaded)) => loaded?,
        Ok(Err(join)) => return Err(refused(LoadProblem::NotALibrary(join.to_string()))),
        Err(_) => return Err(refused(LoadProblem::TimedOut(timeout))),
    };
    let mut report = PluginReport {
        path: plugin.path.clone(),
        name: plugin.name.clone(),
        version: plugin.version.clone(),
        abi: AbiReport {
            major: plugin.header.abi_major,
            minor: plugin.header.abi_minor,
            struct_size: plugin.header.struct_size,
            host_major: ABI_MAJOR,
            host_minor: ABI_MINOR,
        },
        actions: plugin.hello.known_actions(),
        reads_power_state: plugin.hello.reads_power_state,
        channel: plugin.hello.channel(),
        authenticated_identity: plugin.hello.authenticated_identity,
        steps: Vec::new(),
        identity: Vec::new(),
    };

    let mut spec = device.clone();
    spec.driver = "plugin".into();
    if spec.name.is_empty() {
        spec.name = "plugin-check".into();
    }
    let device_name = spec.name.clone();
    spec.address = plugin.path.display().to_string();
    let built = tokio::task::spawn_blocking(move || PluginDriver::new(&spec)).await;
    let driver = match built {
        Ok(Ok(driver)) => {
            report.steps.push(step(
                "configure",
                Outcome::Ok,
                format!("accepted device `{device_name}`"),
            ));
            Arc::new(driver)
        }
        Ok(Err(e)) => {
            report
                .steps
                .push(step("configure", Outcome::Failed, e.to_string()));
            report
                .steps
                .push(step("status", Outcome::Skipped, "not configured".into()));
            return Ok(report);
        }
        Err(join) => {
            report
                .steps
                .push(step("configure", Outcome::Failed, join.to_string()));
            return Ok(report);
        }
    };

    let caps = driver.capabilities();
    let (outcome, detail) = if !caps.reads_power_state {
        (
            Outcome::Warning,
            "cannot read power state, so it can never prove a host is off".into(),
        )
    } else if !caps.supports(Action::Off) {
        (
            Outcome::Warning,
            "reads power state but offers no `off`: usable for checks only".into(),
        )
    } else {
        (Outcome::Ok, "reads power state and offers `off`".into())
    };
    report.steps.push(step("capabilities", outcome, detail));

    let mut read = false;
    if caps.reads_power_state {
        let deadline = std::time::Instant::now() + timeout;
        match driver.status(deadline).await {
            Ok(state) => {
                read = true;
                report
                    .steps
                    .push(step("status", Outcome::Ok, format!("reads {state}")));
            }
            Err(e) => report
                .steps
                .push(step("status", Outcome::Failed, e.to_string())),
        }
    } else {
        report.steps.push(step(
            "status",
            Outcome::Skipped,
            "the plugin does not read state".into(),
        ));
    }
    report.identity = driver.identity();
    report.steps.push(identity_step(
        caps.authenticated_identity,
        read,
        &report.identity,
    ));
    Ok(report)
}

/// Whether the identity the plugin reports can be pinned. A plugin declaring an
/// authenticated identity must present it after its first successful `status`, because the
/// engine compares it before any command; one that declares none is usable but unpinnable.
fn identity_step(declared: bool, read: bool, facts: &[IdentityFact]) -> CheckStep {
    let authenticated = facts.iter().filter(|f| f.authenticated).count();
    match (declared, read, authenticated) {
        (false, _, _) => step(
            "identity",
            Outcome::Warning,
            "no authenticated identity: fencegate cannot tell this endpoint from another \
             answering at its address, and the device cannot be pinned"
                .into(),
        ),
        (true, false, _) => step(
            "identity",
            Outcome::Skipped,
            "declared authenticated, but no status was read to show it".into(),
        ),
        (true, true, 0) => step(
            "identity",
            Outcome::Failed,
            "declares an authenticated identity but reported no authenticated fact after \
             a successful status"
                .into(),
        ),
        (true, true, n) => step(
            "identity",
            Outcome::Ok,
            format!("{n} authenticated fact(s), can be pinned"),
        ),
    }
}

fn step(step: &'static str, outcome: Outcome, detail: String) -> CheckStep {
    CheckStep {
        step,
        outcome,
        detail,
    }
}
