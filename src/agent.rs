//! The fence-agents front door: `fencegate agent` speaks the stdin `key=value` protocol of
//! fence-agents (FenceAgentAPI), with its actions, metadata and exit codes, so Pacemaker and
//! existing tooling can use fencegate as a fence device whose targets are inventory hosts.
//!
//! Exit codes are the agents' own: 0 success, 1 failure, 2 "status: off".

use crate::cli::Global;
use crate::setup::{self, SetupError};
use fencegate_core::proof::printable;
use fencegate_core::{Request, Verdict};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

/// Command-line form of the agent options (stdin is read when none is given).
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Action: on, off, reboot, status, monitor, list, metadata, validate-all.
    #[arg(short = 'o', long)]
    pub action: Option<String>,
    /// The host to act on (inventory name or alias).
    #[arg(short = 'n', long, alias = "port")]
    pub plug: Option<String>,
    /// The cluster node name (used when no plug is given).
    #[arg(long)]
    pub nodename: Option<String>,
}

const SUCCESS: u8 = 0;
/// The agents' failure code; every error of this door exits with it.
pub const FAILURE: u8 = 1;
const STATUS_OFF: u8 = 2;

/// The most stdin read.
const MAX_INPUT: u64 = 1024 * 1024;

/// Parse the stdin protocol: one `name=value` per line, `#` comments, last value wins,
/// surrounding double quotes stripped, `-` and `_` interchangeable in names.
pub fn parse_stdin(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        out.insert(k.trim().replace('-', "_"), v.to_owned());
    }
    out
}

/// Run the agent.
pub async fn run(global: &Global, args: &AgentArgs) -> Result<u8, SetupError> {
    let mut opts = BTreeMap::new();
    if args.action.is_none() && args.plug.is_none() && !std::io::stdin().is_terminal() {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_INPUT)
            .read_to_string(&mut text)
            .map_err(|e| SetupError::usage(format!("stdin: {e}")))?;
        opts = parse_stdin(&text);
    }
    let pick = |cli: &Option<String>, keys: &[&str]| {
        cli.clone()
            .or_else(|| keys.iter().find_map(|k| opts.get(*k).cloned()))
    };
    let action = pick(&args.action, &["action", "option"]).unwrap_or_else(|| "reboot".into());
    let target =
        pick(&args.plug, &["plug", "port"]).or_else(|| pick(&args.nodename, &["nodename"]));
    let mut global = Global {
        config: global.config.clone(),
        state_dir: global.state_dir.clone(),
        json: false,
        log: global.log.clone(),
    };
    if let Some(c) = opts.get("config") {
        global.config = Some(PathBuf::from(c));
    }
    if let Some(d) = opts.get("state_dir") {
        global.state_dir = Some(PathBuf::from(d));
    }
    for k in opts.keys() {
        if !KNOWN.contains(&k.as_str()) {
            eprintln!("fencegate agent: ignoring unknown option {k:?}");
        }
    }

    match action.as_str() {
        "metadata" | "meta-data" => {
            print!("{}", metadata());
            return Ok(SUCCESS);
        }
        "validate-all" => {
            return Ok(match load_inventory(&global) {
                Some(_) => SUCCESS,
                None => FAILURE,
            });
        }
        "monitor" | "list" => {
            let Some(inventory) = load_inventory(&global) else {
                return Ok(FAILURE);
            };
            if action == "list" {
                for (name, host) in &inventory.hosts {
                    let alias = host
                        .as_ref()
                        .ok()
                        .and_then(|h| h.aliases.first().cloned())
                        .unwrap_or_default();
                    println!("{},{}", printable(name), printable(&alias));
                }
                return Ok(SUCCESS);
            }
            let problems = inventory.problems();
            for p in &problems {
                eprintln!("fencegate agent: {}", printable(&p.to_string()));
            }
            return Ok(if problems.is_empty() {
                SUCCESS
            } else {
                FAILURE
            });
        }
        "on" | "off" | "reboot" | "status" => {}
        other => {
            eprintln!("fencegate agent: unknown action {other:?}");
            return Ok(FAILURE);
        }
    }

    let Some(target) = target else {
        eprintln!("fencegate agent: action {action} needs plug= (or port=/nodename=)");
        return Ok(FAILURE);
    };
    let Some(inventory) = load_inventory(&global) else {
        return Ok(FAILURE);
    };
    let host = match inventory.host(&target) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("fencegate agent: {}", printable(&e.to_string()));
            return Ok(FAILURE);
        }
    };
    if action == "status" {
        let rows = fencegate_core::engine::read_devices(&host).await;
        // Off when some level's devices that can read all read off (and none failed).
        let mut off_level = false;
        for level in 1..=host.levels.len() {
            let readers: Vec<_> = rows
                .iter()
                .filter(|r| r.level == level && r.reads_power_state)
                .collect();
            if !readers.is_empty()
                && readers
                    .iter()
                    .all(|r| matches!(r.reading, Ok(fencegate_driver::PowerState::Off)))
            {
                off_level = true;
            }
        }
        if off_level {
            println!("Status: OFF");
            return Ok(STATUS_OFF);
        }
        if rows
            .iter()
            .any(|r| matches!(r.reading, Ok(fencegate_driver::PowerState::On)))
        {
            println!("Status: ON");
            return Ok(SUCCESS);
        }
        for r in rows.iter().filter(|r| r.failed()) {
            if let Err(e) = &r.reading {
                eprintln!(
                    "fencegate agent: {}: {}",
                    printable(&r.device),
                    printable(&e.to_string())
                );
            }
        }
        return Ok(FAILURE);
    }
    let engine = setup::engine(&global, Some(&inventory)).await?;
    crate::commands::stop_on_signals(&engine);
    let request = Request {
        requester: setup::requester(None, "fence-agents protocol"),
        reason: format!("agent action {action} for {target}"),
        force: false,
        door: fencegate_core::proof::Door::Agent,
    };
    let say = |p: &fencegate_core::Proof| eprintln!("{}", p.one_line());
    let failed = |e: fencegate_core::EngineError| {
        eprintln!("fencegate agent: {}", printable(&e.to_string()));
        Ok(FAILURE)
    };
    match action.as_str() {
        // A fence: verified off (with the hold), storm guard, a power-on lock of this door.
        "off" => match engine.fence(host, request).await {
            Ok(p) => {
                say(&p);
                Ok(if p.success { SUCCESS } else { FAILURE })
            }
            Err(e) => failed(e),
        },
        // The cluster manager decides when its node returns: it lifts the lock its own door
        // set (never another door's), then powers on.
        "on" => {
            match engine.unfence(host.clone(), request.clone()).await {
                Ok(u) if !u.success => {
                    say(&u);
                    return Ok(FAILURE);
                }
                Ok(_) => {}
                Err(e) => return failed(e),
            }
            match engine.on(host, request).await {
                Ok(p) => {
                    say(&p);
                    Ok(if p.success { SUCCESS } else { FAILURE })
                }
                Err(e) => failed(e),
            }
        }
        // As fence-agents do: a verified off, then on; once the off is verified the reboot
        // has fenced the node, so a failed power-on is a warning, not a failure.
        _ => {
            let off = match engine.fence(host.clone(), request.clone()).await {
                Ok(p) => p,
                Err(e) => return failed(e),
            };
            say(&off);
            if !off.success || off.verdict != Verdict::PowerVerifiedOff {
                return Ok(FAILURE);
            }
            let on = match engine.unfence(host.clone(), request.clone()).await {
                Ok(u) if !u.success => Ok(u),
                Ok(_) => engine.on(host, request).await,
                Err(e) => Err(e),
            };
            match on {
                Ok(p) if p.success => say(&p),
                Ok(p) => eprintln!(
                    "fencegate agent: warning: the node was verified off but not powered on again: {}",
                    printable(&p.detail)
                ),
                Err(e) => eprintln!(
                    "fencegate agent: warning: the node was verified off but not powered on again: {}",
                    printable(&e.to_string())
                ),
            }
            Ok(SUCCESS)
        }
    }
}

/// The inventory, or `None` after saying on stderr why not (agents report by exit code).
fn load_inventory(global: &Global) -> Option<fencegate_core::Inventory> {
    match setup::inventory(global, &setup::registry(), true) {
        Ok(inventory) => inventory,
        Err(e) => {
            eprintln!("fencegate agent: {}", printable(&e.message));
            None
        }
    }
}

const KNOWN: &[&str] = &[
    "action",
    "option",
    "plug",
    "port",
    "nodename",
    "config",
    "state_dir",
];

/// The fence-agents metadata XML.
pub fn metadata() -> String {
    r#"<?xml version="1.0" ?>
<resource-agent name="fence_fencegate" shortdesc="Fence agent for fencegate: verified power-off through IPMI, Redfish, PDU outlets and more">
<longdesc>fencegate powers off a host through its configured fencing levels (BMC, then PDU outlets, ...) and reports success only after fresh power readings prove the host is off. Targets are hosts of the fencegate inventory.</longdesc>
<vendor-url>https://example.invalid/fencegate</vendor-url>
<parameters>
	<parameter name="action" unique="0" required="1">
		<getopt mixed="-o, --action=[action]" />
		<content type="string" default="reboot" />
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="plug" unique="0" required="1" obsoletes="port">
		<getopt mixed="-n, --plug=[host]" />
		<content type="string" />
		<shortdesc lang="en">Host to act on (inventory name or alias)</shortdesc>
	</parameter>
	<parameter name="port" unique="0" required="0" deprecated="1">
		<getopt mixed="-n, --plug=[host]" />
		<content type="string" />
		<shortdesc lang="en">Host to act on (inventory name or alias)</shortdesc>
	</parameter>
	<parameter name="nodename" unique="0" required="0">
		<getopt mixed="--nodename=[name]" />
		<content type="string" />
		<shortdesc lang="en">Cluster node name, used when no plug is given</shortdesc>
	</parameter>
	<parameter name="config" unique="0" required="0">
		<getopt mixed="--config=[file]" />
		<content type="string" default="/etc/fencegate/fencegate.toml" />
		<shortdesc lang="en">fencegate inventory</shortdesc>
	</parameter>
	<parameter name="state_dir" unique="0" required="0">
		<getopt mixed="--state-dir=[dir]" />
		<content type="string" default="/var/lib/fencegate" />
		<shortdesc lang="en">fencegate journal directory</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off" />
	<action name="reboot" />
	<action name="status" />
	<action name="list" />
	<action name="monitor" />
	<action name="metadata" />
	<action name="validate-all" />
</actions>
</resource-agent>
"#
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_protocol() {
        let o = parse_stdin(
            "# comment\naction=off\nport=\"node1\"\nplug=node2\naction=status\nstate-dir=/x\nbogus\n",
        );
        assert_eq!(o["action"], "status");
        assert_eq!(o["port"], "node1");
        assert_eq!(o["plug"], "node2");
        assert_eq!(o["state_dir"], "/x");
        assert!(!o.contains_key("bogus"));
    }

    #[test]
    fn metadata_is_well_formed() {
        let xml = metadata();
        let mut r = quick_xml::Reader::from_str(&xml);
        loop {
            match r.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("metadata XML: {e}"),
            }
        }
        assert!(xml.contains(r#"<action name="validate-all" />"#));
    }
}
