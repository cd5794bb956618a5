//! Building what every command needs: the driver registry of this build, the inventory,
//! the journal and the engine (with crashed operations reconciled first, and SIGTERM/SIGINT
//! wired to stop operations cleanly), and the conversions from command-line arguments into
//! the engine's settings (deadlines, ad-hoc targets, requests). The doors only choose.

use crate::cli::{AdHoc, Deadlines, Global, Why};
use crate::error::CommandError;
use fencegate_core::device_url::parse_device_url;
use fencegate_core::proof::Door;
use fencegate_core::proof::printable;
use fencegate_core::secrets::SecretRef;
use fencegate_core::time::parse_duration;
use fencegate_core::{Device, Engine, Host, Inventory, Policy, Registry, Request, SqliteJournal};
use std::path::PathBuf;
use std::sync::Arc;

/// Default inventory location.
pub const DEFAULT_CONFIG: &str = "/etc/fencegate/fencegate.toml";
/// Default journal directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/fencegate";

/// The drivers built into this binary.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    crate::drivers::register_builtin(&mut r);
    r
}

/// Where the inventory is: `--config`/`FENCEGATE_CONFIG`, else the default if it exists.
pub fn config_path(global: &Global) -> Option<PathBuf> {
    global.config.clone().or_else(|| {
        let p = PathBuf::from(DEFAULT_CONFIG);
        p.exists().then_some(p)
    })
}

/// Load the inventory, if one is configured (`required` makes its absence an error).
pub fn inventory(
    global: &Global,
    registry: &Registry,
    required: bool,
) -> Result<Option<Inventory>, CommandError> {
    match config_path(global) {
        Some(path) => Inventory::load(&path, registry)
            .map(Some)
            .map_err(|e| CommandError::config(e.to_string())),
        None if required => Err(CommandError::config(format!(
            "no inventory: pass --config FILE or set FENCEGATE_CONFIG (default {DEFAULT_CONFIG} does not exist)"
        ))),
        None => Ok(None),
    }
}

/// Which journal a command uses. An inventory's journal (its `state_dir`, else the default)
/// is authoritative for everything run with that inventory: its hosts' power-on locks, storm
/// history and running operations live there, so a caller naming another one (`--state-dir`,
/// `FENCEGATE_STATE_DIR`, `state_dir=` on the agent door's stdin) would get a fresh journal
/// with no lock and no storm history. That is refused, naming both paths. Without an
/// inventory, the caller's choice or the default.
pub fn journal_dir(
    global: &Global,
    inventory: Option<&Inventory>,
) -> Result<PathBuf, CommandError> {
    let Some(inventory) = inventory else {
        return Ok(global
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)));
    };
    let owned = inventory
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    match &global.state_dir {
        Some(asked) if !same_dir(asked, &owned) => Err(CommandError::usage(format!(
            "state directory {} is not the journal of inventory {} ({}): that journal holds its hosts' power-on locks and storm history; leave out --state-dir / FENCEGATE_STATE_DIR / state_dir= (or change state_dir in the inventory)",
            asked.display(),
            inventory.path.display(),
            owned.display()
        ))),
        _ => Ok(owned),
    }
}

/// Whether two paths name the same directory (resolved where they exist).
fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    let resolve = |p: &std::path::Path| {
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_owned())
    };
    resolve(a) == resolve(b)
}

/// What SIGTERM and SIGINT do while a command runs. Chosen per door, here and nowhere else,
/// so that every door that sends power commands stops them the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signals {
    /// Stop the running operations: each ends with an interrupted verdict recorded in the
    /// journal (never a proof of off), and the door exits with its proofs' codes. For every
    /// door that sends power commands: a fence killed mid-way would leave its operation open
    /// until the next start reconciles it.
    StopOperations,
    /// Leave the default disposition: the process ends at once. For commands that send no
    /// power command, where there is nothing to record.
    Default,
}

/// Open the journal and build the engine; reconcile what crashed runs left open, then wire
/// the signals as the door asks.
pub async fn engine(
    global: &Global,
    inventory: Option<&Inventory>,
    signals: Signals,
) -> Result<Engine, CommandError> {
    let dir = journal_dir(global, inventory)?;
    let journal = SqliteJournal::open(&dir).map_err(|e| {
        CommandError::internal(match inventory {
            Some(i) => format!("{e} (the journal of inventory {})", i.path.display()),
            None => {
                format!("{e} (choose another directory with --state-dir or FENCEGATE_STATE_DIR)")
            }
        })
    })?;
    let engine = Engine::new(Arc::new(journal));
    let reconciled = engine
        .reconcile(|name| inventory.and_then(|i| i.host(name).ok()))
        .await
        .map_err(|e| CommandError::internal(e.to_string()))?;
    for p in reconciled {
        let (host, detail) = (printable(&p.host), printable(&p.detail));
        tracing::warn!(request = %p.request_id, host = %host, "reconciled an interrupted operation: {detail}");
        eprintln!(
            "fencegate: reconciled interrupted operation {} on {host}: {detail}",
            p.request_id
        );
    }
    wire(&engine, signals);
    Ok(engine)
}

/// The engine over a journal the caller opened itself (the demo's, which never holds an
/// earlier run to reconcile), with the signals wired as asked.
#[cfg(feature = "demo")]
pub fn engine_over(journal: SqliteJournal, signals: Signals) -> Engine {
    let engine = Engine::new(Arc::new(journal));
    wire(&engine, signals);
    engine
}

/// Wire SIGTERM and SIGINT to the engine's shutdown, when asked to.
fn wire(engine: &Engine, signals: Signals) {
    if signals == Signals::Default {
        return;
    }
    let shutdown = engine.shutdown();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("fencegate: stopping: recording interrupted operations");
        shutdown.trigger();
    });
}

/// Apply command-line deadline overrides to a policy.
pub fn with_deadlines(policy: &Policy, d: &Deadlines) -> Result<Policy, CommandError> {
    let mut p = policy.clone();
    if let Some(t) = &d.timeout {
        p.overall_timeout =
            parse_duration(t).map_err(|e| CommandError::usage(format!("--timeout: {e}")))?;
    }
    if let Some(t) = &d.attempt_timeout {
        p.attempt_timeout = parse_duration(t)
            .map_err(|e| CommandError::usage(format!("--attempt-timeout: {e}")))?;
    }
    if let Some(t) = &d.storm_settle {
        p.storm_settle =
            parse_duration(t).map_err(|e| CommandError::usage(format!("--storm-settle: {e}")))?;
    }
    if let Some(t) = &d.off_hold {
        p.off_hold =
            parse_duration(t).map_err(|e| CommandError::usage(format!("--off-hold: {e}")))?;
    }
    if p.attempt_timeout > p.overall_timeout {
        p.attempt_timeout = p.overall_timeout;
    }
    p.validate().map_err(|e| {
        CommandError::usage(format!(
            "policy: {e}{}",
            if p.off_hold >= p.attempt_timeout {
                " (give a longer --attempt-timeout, or --off-hold)"
            } else {
                ""
            }
        ))
    })?;
    Ok(p)
}

/// An inventory host with the command line's deadline overrides applied to its policy (the
/// same host when there are none).
pub fn with_host_deadlines(host: Arc<Host>, d: &Deadlines) -> Result<Arc<Host>, CommandError> {
    let policy = with_deadlines(&host.policy, d)?;
    if policy == host.policy {
        return Ok(host);
    }
    Ok(Arc::new(Host {
        name: host.name.clone(),
        aliases: host.aliases.clone(),
        opennebula_id: host.opennebula_id,
        levels: host.levels.clone(),
        policy,
        inventory: host.inventory.clone(),
    }))
}

/// Resolve the hosts a command names: inventory hosts (with hostranges), or one ad-hoc
/// target built from `--device` URLs (one level of all of them).
pub fn targets(
    names: &[String],
    adhoc: &AdHoc,
    deadlines: &Deadlines,
    inventory: Option<&Inventory>,
    registry: &Registry,
) -> Result<Vec<Arc<Host>>, CommandError> {
    if !adhoc.devices.is_empty() {
        if !names.is_empty() {
            return Err(CommandError::usage(
                "give either host names or --device URLs, not both",
            ));
        }
        let reference = match (&adhoc.password_file, &adhoc.password_env) {
            (Some(f), _) => Some(SecretRef::File(f.clone())),
            (None, Some(v)) => Some(SecretRef::Env(v.clone())),
            (None, None) => None,
        };
        let mut level = Vec::new();
        for url in &adhoc.devices {
            // The fallback password reaches only devices whose driver takes a `password`.
            let spec =
                parse_device_url(url, reference.as_ref(), registry).map_err(CommandError::usage)?;
            let name = spec.name.clone();
            let device = Device::from_spec(spec, registry)
                .map_err(|e| CommandError::usage(format!("device {name}: {e}")))?;
            level.push(Arc::new(device));
        }
        let name = adhoc.name.clone().unwrap_or_else(|| {
            let first = adhoc.devices[0].split('?').next().unwrap_or_default();
            format!("adhoc:{first}")
        });
        let base = inventory.map(|i| i.policy.clone()).unwrap_or_default();
        return Ok(vec![Arc::new(Host {
            name,
            aliases: Vec::new(),
            opennebula_id: None,
            levels: vec![level],
            policy: with_deadlines(&base, deadlines)?,
            inventory: None,
        })]);
    }
    if names.is_empty() {
        return Err(CommandError::usage(
            "name at least one host, or give --device URL",
        ));
    }
    let inventory = inventory.ok_or_else(|| {
        CommandError::config(format!(
            "hosts are looked up in the inventory: pass --config FILE (or use --device URL); default {DEFAULT_CONFIG} does not exist"
        ))
    })?;
    let mut out = Vec::new();
    for pattern in names {
        for name in crate::hostrange::expand(pattern).map_err(CommandError::usage)? {
            let host = inventory
                .host(&name)
                .map_err(|e| CommandError::config(e.to_string()))?;
            let host = with_host_deadlines(host, deadlines)?;
            if !out.iter().any(|h: &Arc<Host>| h.name == host.name) {
                out.push(host);
            }
        }
    }
    Ok(out)
}

/// The request a command-line door makes: who asks (`--requester`, else the user running
/// fencegate) and why (`--reason`), recorded in every proof.
pub fn request(why: &Why, force: bool) -> Request {
    Request {
        requester: requester(why.requester.as_deref(), "cli"),
        reason: why.reason.clone(),
        force,
        door: Door::Cli,
    }
}

/// The user running fencegate, for proof records.
pub fn requester(explicit: Option<&str>, door: &str) -> String {
    if let Some(r) = explicit {
        return r.to_owned();
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", current_uid()));
    format!("{user} via {door}")
}

fn current_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into())
}
