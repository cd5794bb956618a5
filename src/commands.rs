//! The inventory commands: fence, off, on, reboot, status, unfence, history, check, list.
//! Each is a thin layer: resolve targets, call the engine, render, pick the exit code.

use crate::cli::{AdHoc, Deadlines, Global, Targets, Why};
use crate::error::CommandError;
use crate::exit;
use crate::output;
use crate::setup::{self, Signals};
use fencegate_core::proof::printable;
use fencegate_core::{Engine, Host, Operation, Proof, Request};
use std::io::IsTerminal;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Run a power operation on every target, `fanout` at a time.
pub async fn power(
    global: &Global,
    op: Operation,
    targets: &Targets,
    force: bool,
    fanout: u32,
) -> Result<u8, CommandError> {
    let Targets {
        hosts,
        adhoc,
        deadlines,
        why,
    } = targets;
    let registry = setup::registry();
    let inventory = setup::inventory(global, &registry, adhoc.devices.is_empty())?;
    let targets = setup::targets(hosts, adhoc, deadlines, inventory.as_ref(), &registry)?;
    let engine = setup::engine(global, inventory.as_ref(), Signals::StopOperations).await?;
    let request = setup::request(why, force);
    let proofs = run_all(&engine, op, targets, request, fanout as usize, !global.json).await?;
    if global.json {
        output::print_json(&proofs);
    } else {
        for p in &proofs {
            print!("{}", output::proof(p, false));
        }
        if proofs.len() > 1 {
            let ok = proofs.iter().filter(|p| p.success).count();
            println!(
                "{ok} of {} hosts: {}",
                proofs.len(),
                if ok == proofs.len() {
                    "done"
                } else {
                    "NOT all done"
                }
            );
        }
    }
    Ok(exit::worst(proofs.iter().map(exit::for_proof)))
}

async fn run_all(
    engine: &Engine,
    op: Operation,
    targets: Vec<Arc<Host>>,
    request: Request,
    fanout: usize,
    progress: bool,
) -> Result<Vec<Proof>, CommandError> {
    let total = targets.len();
    let show = progress && total > 1 && std::io::stderr().is_terminal();
    let gate = Arc::new(Semaphore::new(fanout.max(1)));
    let mut set = JoinSet::new();
    for (i, host) in targets.into_iter().enumerate() {
        let (engine, request, gate) = (engine.clone(), request.clone(), Arc::clone(&gate));
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let r = match op {
                Operation::Fence => engine.fence(host, request).await,
                Operation::Off => engine.off(host, request).await,
                Operation::On => engine.on(host, request).await,
                Operation::Reboot => engine.reboot(host, request).await,
                Operation::Unfence => engine.unfence(host, request).await,
                Operation::Trust => engine.trust(host, request, false).await,
            };
            (i, r)
        });
    }
    let mut out = Vec::with_capacity(total);
    let mut done = 0;
    while let Some(joined) = set.join_next().await {
        let (i, r) =
            joined.map_err(|e| CommandError::internal(format!("operation task failed: {e}")))?;
        let proof =
            r.map_err(|e| CommandError::internal(format!("{e}; nothing is reported fenced")))?;
        done += 1;
        if show {
            eprintln!(
                "[{done}/{total}] {} {}",
                fencegate_core::proof::printable(&proof.host),
                proof.verdict
            );
        }
        out.push((i, proof));
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

/// Accept the identities the hosts' endpoints present now, replacing what was remembered
/// at first use (after a known board swap or re-addressing).
pub async fn trust(
    global: &Global,
    hosts: &[String],
    why: &Why,
    moved: bool,
) -> Result<u8, CommandError> {
    if hosts.is_empty() {
        return Err(CommandError::usage("name at least one host to trust"));
    }
    let registry = setup::registry();
    let inventory = setup::inventory(global, &registry, true)?
        .ok_or_else(|| CommandError::config("no inventory"))?;
    let mut targets: Vec<Arc<Host>> = Vec::new();
    for pattern in hosts {
        for name in crate::hostrange::expand(pattern).map_err(CommandError::usage)? {
            targets.push(
                inventory
                    .host(&name)
                    .map_err(|e| CommandError::config(e.to_string()))?,
            );
        }
    }
    let engine = setup::engine(global, Some(&inventory), Signals::Default).await?;
    let request = setup::request(why, false);
    let mut proofs = Vec::new();
    for host in targets {
        proofs.push(
            engine
                .trust(host, request.clone(), moved)
                .await
                .map_err(|e| CommandError::internal(e.to_string()))?,
        );
    }
    if global.json {
        output::print_json(&proofs);
    } else {
        for p in &proofs {
            print!("{}", output::proof(p, false));
        }
    }
    Ok(exit::worst(proofs.iter().map(exit::for_proof)))
}

/// Read every device of the targets once.
pub async fn status(global: &Global, hosts: &[String], adhoc: &AdHoc) -> Result<u8, CommandError> {
    let registry = setup::registry();
    let inventory = setup::inventory(global, &registry, adhoc.devices.is_empty())?;
    let targets = setup::targets(
        hosts,
        adhoc,
        &Deadlines::default(),
        inventory.as_ref(),
        &registry,
    )?;
    let mut code = exit::OK;
    let mut json = Vec::new();
    for host in targets {
        let rows = fencegate_core::engine::read_devices(&host).await;
        if rows.iter().any(|r| r.failed()) {
            code = exit::FAILED;
        }
        if global.json {
            json.push(output::status_json(&host.name, &rows));
        } else {
            print!("{}", output::status(&host.name, &rows));
        }
    }
    if global.json {
        output::print_json(&json);
    }
    Ok(code)
}

/// Lift power-on locks. Only the host's name matters (the lock is in the journal), so an
/// ad-hoc target fenced with `--device … --name NAME` is unfenced by that name, with or
/// without an inventory.
pub async fn unfence(global: &Global, hosts: &[String], why: &Why) -> Result<u8, CommandError> {
    if hosts.is_empty() {
        return Err(CommandError::usage("name at least one host to unfence"));
    }
    let registry = setup::registry();
    let inventory = setup::inventory(global, &registry, false)?;
    let mut targets: Vec<Arc<Host>> = Vec::new();
    for pattern in hosts {
        for name in crate::hostrange::expand(pattern).map_err(CommandError::usage)? {
            let host = inventory
                .as_ref()
                .and_then(|i| i.host(&name).ok())
                .unwrap_or_else(|| {
                    Arc::new(Host {
                        name: name.clone(),
                        aliases: Vec::new(),
                        opennebula_id: None,
                        levels: Vec::new(),
                        policy: fencegate_core::Policy::default(),
                        inventory: None,
                    })
                });
            targets.push(host);
        }
    }
    let engine = setup::engine(global, inventory.as_ref(), Signals::Default).await?;
    let request = setup::request(why, false);
    let proofs = run_all(&engine, Operation::Unfence, targets, request, 16, false).await?;
    if global.json {
        output::print_json(&proofs);
    } else {
        for p in &proofs {
            print!("{}", output::proof(p, false));
        }
    }
    Ok(exit::worst(proofs.iter().map(exit::for_proof)))
}

/// Show proof records.
pub async fn history(
    global: &Global,
    host: Option<&str>,
    limit: usize,
    details: bool,
) -> Result<u8, CommandError> {
    let registry = setup::registry();
    let inventory = setup::inventory(global, &registry, false)?;
    let engine = setup::engine(global, inventory.as_ref(), Signals::Default).await?;
    let records = engine
        .history(host, limit)
        .await
        .map_err(|e| CommandError::internal(e.to_string()))?;
    if global.json {
        output::print_json(&records);
    } else if records.is_empty() {
        println!(
            "no records{}",
            host.map(|h| format!(" for {h}")).unwrap_or_default()
        );
    } else {
        for p in &records {
            println!("{}  {}", p.started_at, output::proof(p, details).trim_end());
        }
    }
    Ok(exit::OK)
}

/// Validate the inventory, and with `probe` read every device.
pub async fn check(global: &Global, probe: bool) -> Result<u8, CommandError> {
    let registry = setup::registry();
    let inventory = setup::inventory(global, &registry, true)?
        .ok_or_else(|| CommandError::config("no inventory"))?;
    let problems: Vec<String> = inventory.problems().iter().map(|e| e.to_string()).collect();
    let mut readings = Vec::new();
    let mut unreadable = 0;
    if probe {
        for host in inventory.hosts.values().flatten() {
            let rows = fencegate_core::engine::read_devices(host).await;
            unreadable += rows.iter().filter(|r| r.failed()).count();
            readings.push((host.name.clone(), rows));
        }
    }
    let (mut problems, warnings, pins) = (problems, Vec::new(), Vec::new());
    let (mut warnings, pins) = if probe {
        probe_findings(&readings, &mut problems)
    } else {
        (warnings, pins)
    };
    warnings.splice(0..0, forgeable_readings(&inventory, &readings));
    // Fence agents that hand secrets to helpers on their command line, and (with --probe)
    // PDU levels that switch fewer supplies than the host's BMC reports.
    for host in inventory.hosts.values().flatten() {
        warnings.extend(crate::probe::agent_findings(host));
        if probe {
            warnings.extend(crate::probe::supply_findings(host).await);
        }
    }
    let hosts = inventory.hosts.len();
    let devices = inventory.devices.len();
    if global.json {
        output::print_json(&serde_json::json!({
            "config": inventory.path,
            "hosts": hosts,
            "devices": devices,
            "problems": problems,
            "warnings": warnings,
            "pins": pins,
            "probe": readings.iter().map(|(h, rows)| output::status_json(h, rows)).collect::<Vec<_>>(),
        }));
    } else {
        // Names, facts and driver messages are quoted in these lines: escaped, so none of
        // them can start a line of its own.
        for p in &problems {
            println!("problem: {}", printable(p));
        }
        for (h, rows) in &readings {
            print!("{}", output::status(h, rows));
        }
        for w in &warnings {
            println!("warning: {}", printable(w));
        }
        if !pins.is_empty() {
            println!("identities observed (authenticated), ready to pin in the inventory:");
            for p in &pins {
                println!("{}", printable(p));
            }
        }
        println!(
            "{}: {hosts} hosts, {devices} devices, {} problems{}",
            printable(&inventory.path.display().to_string()),
            problems.len(),
            if probe {
                format!(", {unreadable} devices unreadable")
            } else {
                String::new()
            }
        );
    }
    Ok(if problems.is_empty() && unreadable == 0 {
        exit::OK
    } else {
        exit::USAGE
    })
}

/// Devices whose readings nobody authenticates, so anyone on the network path between
/// fencegate and the device could answer `Off` for a host that still runs: SNMP v1/v2c
/// (a community in clear, no MAC), Redfish with `insecure` TLS, and any reader whose
/// driver proves no identity of the endpoint. Judged from what the driver declares
/// (`authenticated_identity`): after first contact when a probe read it, else as built;
/// an external program declares it only in its hello, so only a probe that reached it
/// judges it. A warning, not a problem: such a device still fences, and the proof marks
/// its readings.
fn forgeable_readings(
    inventory: &fencegate_core::Inventory,
    readings: &[(String, Vec<fencegate_core::DeviceStatus>)],
) -> Vec<String> {
    let probed = readings.iter().flat_map(|(_, rows)| rows);
    let mut warnings = Vec::new();
    for (name, device) in &inventory.devices {
        let Ok(device) = device else { continue };
        let probed_row = probed
            .clone()
            .find(|r| &r.device == name && r.reading.is_ok());
        let (reads, authenticated) = match probed_row {
            Some(row) => (row.reads_power_state, row.authenticated_identity),
            // An external program says it in its hello: unknown until it answered.
            None if device.driver_name == "external" => continue,
            None => {
                let caps = device.driver.capabilities();
                (
                    device.declared_reader && caps.reads_power_state,
                    caps.authenticated_identity,
                )
            }
        };
        if !reads || authenticated {
            continue;
        }
        let why = match device.driver_name.as_str() {
            "snmp" => {
                "SNMP v1/v2c: its readings can be forged by anyone on the path (the community travels in clear and answers carry no MAC); use v3 with auth (`version = \"3\"`, `auth_password_file`)"
            }
            "redfish" => {
                "TLS is not verified (`insecure`): its readings can be forged by anyone on the path; verify the BMC with `pin` or `ca_file`"
            }
            _ => {
                "its driver proves nothing about who answered: as far as fencegate can tell, its readings can be forged by anyone on the path"
            }
        };
        warnings.push(format!(
            "device `{name}` ({}): {why}; a proof through it marks its readings as not authenticated",
            device.driver_name
        ));
    }
    warnings
}

/// What `check --probe` learned beyond the readings: which boxes answered (as config lines
/// to pin them), devices that cannot prove which box they reach, placeholder identities, one
/// identity claimed by two endpoints, and declared readers that read nothing. The last two
/// are problems (a fence through them fails or proves nothing); the rest are warnings.
fn probe_findings(
    readings: &[(String, Vec<fencegate_core::DeviceStatus>)],
    problems: &mut Vec<String>,
) -> (Vec<String>, Vec<String>) {
    use fencegate_core::identity;
    let mut warnings = Vec::new();
    let mut pins = Vec::new();
    let mut seen: Vec<(String, String, fencegate_driver::IdentityFact)> = Vec::new();
    let mut reported = std::collections::BTreeSet::new();
    for row in readings.iter().flat_map(|(_, rows)| rows) {
        if !reported.insert(row.device.clone()) {
            continue;
        }
        if row.declared_reader && !row.reads_power_state {
            problems.push(format!(
                "device `{}`: declared able to read power state, but found blind at first contact: it can prove nothing, and its level fails unless the host accepts liveness loss",
                row.device
            ));
        }
        if row.reading.is_err() {
            continue;
        }
        for (fact, why) in identity::placeholders(&row.identity) {
            warnings.push(format!(
                "device `{}` presents {}={} ({why}): a placeholder cannot tell boxes apart; set a real one on the BMC",
                row.device, fact.kind, fact.value
            ));
        }
        let usable = identity::usable(&row.identity);
        if usable.is_empty() && row.reads_power_state {
            warnings.push(format!(
                "device `{}` ({}) presents no authenticated identity: a relay or a re-addressed box at its address could not be told apart{}",
                row.device,
                row.driver,
                if row.authenticated_identity { "" } else { " (this driver or its settings cannot authenticate one)" }
            ));
        }
        if row.pins.is_empty() {
            for fact in &usable {
                let option = identity::PIN_OPTIONS
                    .iter()
                    .find(|o| fact.kind.ends_with(&format!("-{}", o.replace('_', "-"))));
                if let Some(option) = option {
                    pins.push(format!(
                        "[devices.{}]  {option} = \"{}\"   # {}",
                        row.device, fact.value, fact.kind
                    ));
                }
            }
        }
        for fact in usable {
            if let Some((other, _, _)) = seen
                .iter()
                .find(|(dev, key, f)| *f == fact && *key != row.endpoint_key && *dev != row.device)
            {
                problems.push(format!(
                    "devices `{other}` and `{}` present the same identity {}={} at different addresses: one box claimed twice (a relay, or a copied configuration)",
                    row.device, fact.kind, fact.value
                ));
            }
            seen.push((row.device.clone(), row.endpoint_key.clone(), fact));
        }
    }
    (warnings, pins)
}

/// List hosts with their levels, or the drivers of this build.
pub async fn list(global: &Global, drivers: bool) -> Result<u8, CommandError> {
    let registry = setup::registry();
    if drivers {
        let built = registry.drivers();
        if global.json {
            output::print_json(
                &built
                    .iter()
                    .map(|(n, s)| serde_json::json!({"name": n, "summary": s}))
                    .collect::<Vec<_>>(),
            );
        } else {
            for (n, s) in built {
                println!("{n:<12} {s}");
            }
        }
        return Ok(exit::OK);
    }
    let inventory = setup::inventory(global, &registry, true)?
        .ok_or_else(|| CommandError::config("no inventory"))?;
    let mut json = Vec::new();
    for (name, host) in &inventory.hosts {
        match host {
            Ok(h) => {
                let levels: Vec<Vec<String>> = h
                    .levels
                    .iter()
                    .map(|l| l.iter().map(|d| d.name.clone()).collect())
                    .collect();
                if global.json {
                    json.push(
                        serde_json::json!({"host": name, "aliases": h.aliases, "levels": levels}),
                    );
                } else {
                    let shown: Vec<String> = levels.iter().map(|l| l.join(" + ")).collect();
                    println!("{name:<20} {}", shown.join("  ->  "));
                }
            }
            Err(e) => {
                if global.json {
                    json.push(serde_json::json!({"host": name, "error": e.to_string()}));
                } else {
                    println!("{name:<20} UNUSABLE: {e}");
                }
            }
        }
    }
    if global.json {
        output::print_json(&json);
    }
    Ok(exit::OK)
}
