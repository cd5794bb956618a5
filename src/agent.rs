//! The fence-agents front door: `fencegate agent` speaks the stdin `key=value` protocol of
//! fence-agents (FenceAgentAPI), with its actions, metadata and exit codes, so Pacemaker and
//! existing tooling can use fencegate as a fence device whose targets are inventory hosts.
//!
//! Exit codes are the agents' own: 0 success, 1 failure, 2 "status: off".

use crate::cli::{AgentArgs, Global};
use crate::error::CommandError;
use crate::setup::{self, Signals};
use fencegate_core::evidence::{Judged, LevelVerdict, judge_level};
use fencegate_core::proof::printable;
use fencegate_core::{
    DeviceOutcome, DeviceStatus, Engine, EngineError, Host, Inventory, Proof, Request, Verdict,
};
use fencegate_driver::{Channel, PowerState};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;

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

/// What the caller asked for, from the command line or from stdin.
struct Asked {
    /// The action (`reboot` when none is named, as fence-agents do).
    action: String,
    /// The host named by plug=, port= or nodename=.
    target: Option<String>,
    /// The global options with stdin's `config=` and `state_dir=` applied.
    global: Global,
}

/// Run the agent: read what is asked, then do it.
pub async fn run(global: &Global, args: &AgentArgs) -> Result<u8, CommandError> {
    let asked = read_asked(global, args)?;
    match asked.action.as_str() {
        "metadata" | "meta-data" => {
            print!("{}", metadata());
            Ok(SUCCESS)
        }
        "validate-all" => Ok(match load_inventory(&asked.global) {
            Some(_) => SUCCESS,
            None => FAILURE,
        }),
        "list" => Ok(list(&asked.global)),
        "monitor" => Ok(monitor(&asked.global)),
        "on" | "off" | "reboot" | "status" => act(&asked).await,
        other => {
            eprintln!("fencegate agent: unknown action {other:?}");
            Ok(FAILURE)
        }
    }
}

/// The options: the command line's when it names an action or a host, else stdin's (when
/// stdin is not a terminal). Unknown stdin options are named on stderr and ignored.
fn read_asked(global: &Global, args: &AgentArgs) -> Result<Asked, CommandError> {
    let mut opts = BTreeMap::new();
    if args.action.is_none() && args.plug.is_none() && !std::io::stdin().is_terminal() {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_INPUT)
            .read_to_string(&mut text)
            .map_err(|e| CommandError::input(format!("stdin: {e}")))?;
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
    Ok(Asked {
        action,
        target,
        global,
    })
}

/// `list`: one `name,alias` line per inventory host.
fn list(global: &Global) -> u8 {
    let Some(inventory) = load_inventory(global) else {
        return FAILURE;
    };
    for (name, host) in &inventory.hosts {
        let alias = host
            .as_ref()
            .ok()
            .and_then(|h| h.aliases.first().cloned())
            .unwrap_or_default();
        println!("{},{}", printable(name), printable(&alias));
    }
    SUCCESS
}

/// `monitor`: the inventory loads and has no problems (each is named on stderr).
fn monitor(global: &Global) -> u8 {
    let Some(inventory) = load_inventory(global) else {
        return FAILURE;
    };
    let problems = inventory.problems();
    for p in &problems {
        eprintln!("fencegate agent: {}", printable(&p.to_string()));
    }
    if problems.is_empty() {
        SUCCESS
    } else {
        FAILURE
    }
}

/// `on`, `off`, `reboot` and `status` on the host asked for.
async fn act(asked: &Asked) -> Result<u8, CommandError> {
    let action = asked.action.as_str();
    let Some(target) = &asked.target else {
        eprintln!("fencegate agent: action {action} needs plug= (or port=/nodename=)");
        return Ok(FAILURE);
    };
    let Some(inventory) = load_inventory(&asked.global) else {
        return Ok(FAILURE);
    };
    let host = match inventory.host(target) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("fencegate agent: {}", printable(&e.to_string()));
            return Ok(FAILURE);
        }
    };
    if action == "status" {
        return Ok(status(&host).await);
    }
    let engine = setup::engine(&asked.global, Some(&inventory), Signals::StopOperations).await?;
    let request = Request {
        requester: setup::requester(None, "fence-agents protocol"),
        reason: format!("agent action {action} for {target}"),
        force: false,
        door: fencegate_core::proof::Door::Agent,
    };
    Ok(match action {
        "off" => off(&engine, host, request).await,
        "on" => on(&engine, host, request).await,
        _ => reboot(&engine, host, request).await,
    })
}

/// `status`: read every device once. Off (2) when a level proves it; On (0) when any device
/// reads on; otherwise a failure, naming each device that could not be read.
async fn status(host: &Host) -> u8 {
    let rows = fencegate_core::engine::read_devices(host).await;
    if reads_off(&rows) {
        println!("Status: OFF");
        return STATUS_OFF;
    }
    if rows.iter().any(|r| matches!(r.reading, Ok(PowerState::On))) {
        println!("Status: ON");
        return SUCCESS;
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
    FAILURE
}

/// The engine's level rule ([`judge_level`]) over one round of readings: the host reads
/// off when some level proves it, every declared reader of that level reading `Off`. A single
/// round is not a fence's proof (no K readings, no hold): `status` reports, `off` proves.
fn reads_off(rows: &[DeviceStatus]) -> bool {
    // Outlets reading off while a whole-host channel reads the host on: some supply is still
    // fed (the engine's standby check fails such a level too).
    let whole_host_on = rows.iter().any(|r| {
        r.channel != Channel::Outlet
            && r.declared_reader
            && matches!(&r.reading, Ok(PowerState::On | PowerState::PoweringOn))
    });
    if whole_host_on {
        return false;
    }
    let mut levels: Vec<usize> = rows.iter().map(|r| r.level).collect();
    levels.dedup();
    levels.into_iter().any(|level| {
        let judged: Vec<Judged<'_>> = rows
            .iter()
            .filter(|r| r.level == level)
            .map(|r| Judged {
                device: &r.device,
                declared_reader: r.declared_reader,
                reads_power_state: r.reads_power_state,
                outcome: match &r.reading {
                    Ok(state) if state.is_off() => DeviceOutcome::VerifiedOff,
                    // Found blind: liveness at best, never proof.
                    _ if !r.reads_power_state => DeviceOutcome::LivenessLost,
                    _ => DeviceOutcome::Failed,
                },
                detail: "",
            })
            .collect();
        matches!(judge_level(&judged), LevelVerdict::VerifiedOff(_))
    })
}

/// `off` is a fence: verified off (with the hold), storm guard, a power-on lock of this door.
async fn off(engine: &Engine, host: Arc<Host>, request: Request) -> u8 {
    match engine.fence(host, request).await {
        Ok(p) => said(&p),
        Err(e) => failed(e),
    }
}

/// `on`: the cluster manager decides when its node returns: it lifts the lock its own door
/// set (never another door's), then powers on.
async fn on(engine: &Engine, host: Arc<Host>, request: Request) -> u8 {
    match engine.unfence(host.clone(), request.clone()).await {
        Ok(u) if !u.success => {
            say(&u);
            return FAILURE;
        }
        Ok(_) => {}
        Err(e) => return failed(e),
    }
    match engine.on(host, request).await {
        Ok(p) => said(&p),
        Err(e) => failed(e),
    }
}

/// `reboot`, as fence-agents do: a verified off, then on. Once the off is verified the
/// reboot has fenced the node, so a failed power-on is a warning, not a failure.
async fn reboot(engine: &Engine, host: Arc<Host>, request: Request) -> u8 {
    let off = match engine.fence(host.clone(), request.clone()).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    say(&off);
    if !off.success || off.verdict != Verdict::PowerVerifiedOff {
        return FAILURE;
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
    SUCCESS
}

/// The proof's line on stderr (stdout is for `Status:` and `list`).
fn say(p: &Proof) {
    eprintln!("{}", p.one_line());
}

/// The proof's line, and the agents' code for it.
fn said(p: &Proof) -> u8 {
    say(p);
    if p.success { SUCCESS } else { FAILURE }
}

/// The engine could not run the operation: say why; the agents' failure.
fn failed(e: EngineError) -> u8 {
    eprintln!("fencegate agent: {}", printable(&e.to_string()));
    FAILURE
}

/// The inventory, or `None` after saying on stderr why not (agents report by exit code).
fn load_inventory(global: &Global) -> Option<Inventory> {
    match setup::inventory(global, &setup::registry(), true) {
        Ok(inventory) => inventory,
        Err(e) => {
            eprintln!("fencegate agent: {}", printable(&e.to_string()));
            None
        }
    }
}

/// The stdin options this door reads; others are named and ignored.
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
    use fencegate_driver::DriverError;

    fn row(
        device: &str,
        level: usize,
        declared: bool,
        reading: Option<PowerState>,
    ) -> DeviceStatus {
        DeviceStatus {
            device: device.into(),
            level,
            driver: "scripted".into(),
            endpoint: format!("scripted://{device}"),
            reads_power_state: reading.is_some(),
            reading: reading.ok_or_else(|| DriverError::unsupported("blind")),
            identity: Vec::new(),
            declared_reader: declared,
            channel: Channel::Outlet,
            authenticated_identity: false,
            endpoint_key: device.into(),
            pins: Vec::new(),
        }
    }

    /// Both outlets of a dual-PSU host are declared readers; one turned out blind. One outlet
    /// reading off is not the host off: the engine's level rule says so, and so must status.
    #[test]
    fn status_applies_the_engines_level_rule() {
        let off = Some(PowerState::Off);
        let dual = [
            row("psu-a", 1, true, off.clone()),
            row("psu-b", 1, true, None),
        ];
        assert!(
            !reads_off(&dual),
            "a declared reader found blind proves nothing"
        );
        let both = [
            row("psu-a", 1, true, off.clone()),
            row("psu-b", 1, true, off.clone()),
        ];
        assert!(reads_off(&both));
        let one_on = [
            row("psu-a", 1, true, off.clone()),
            row("psu-b", 1, true, Some(PowerState::On)),
        ];
        assert!(!reads_off(&one_on));
        // Some level proving off is enough; an in-band device does not count either way.
        let levels = [
            row("pdu-b", 1, true, Some(PowerState::On)),
            row("psu-a", 2, true, off.clone()),
            row("ssh", 2, false, None),
        ];
        assert!(reads_off(&levels));
        assert!(
            !reads_off(&[row("ssh", 1, false, None)]),
            "no reader, no proof"
        );
        // The outlets read off but the BMC reads the host on: another supply feeds it.
        let mut bmc_on = row("bmc", 1, true, Some(PowerState::On));
        bmc_on.channel = Channel::Bmc;
        let standby = [bmc_on, row("psu-a", 2, true, off.clone())];
        assert!(!reads_off(&standby), "the engine's standby rule");
    }

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
