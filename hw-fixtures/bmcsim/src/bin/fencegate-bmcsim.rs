//! `fencegate-bmcsim`: start simulated BMCs and drive them over a JSON-lines control channel.
//!
//! On start it prints one line `{"ipmi":["127.0.0.1:PORT",…]}` on stdout. Then each stdin
//! line is a command, answered by one stdout line:
//!
//! * `{"cmd":"power","bmc":0}` → `{"power":"on"}` (the emulator-side truth)
//! * `{"cmd":"set_power","bmc":0,"power":"off"}` (or `"on":false`) → `{"ok":true}`
//! * `{"cmd":"set_faults","bmc":0,"stuck":true,"off_delay_ms":500,…}` → `{"ok":true}`
//!   (fields of the fault profile; omitted ones take their defaults; e.g.
//!   `"power_returns_after_ms":2000` makes the power come back on 2 s after an off)
//! * `{"cmd":"faults","bmc":0}` → `{"faults":{…}}`
//! * `{"cmd":"log","bmc":0}` → `{"log":[{"protocol":"ipmi","command":"off",…}]}`
//! * `{"cmd":"sessions","bmc":0}` → `{"sessions":0}`
//!
//! With `--pdu N --outlets M` it also starts N simulated APC PDUs (SNMPv1/v2c, communities
//! `public` read-only and `private` read-write, or the first line of `--community-file`),
//! listed as `"snmp":["127.0.0.1:PORT",…]` in the ready line. A command with a `"pdu"` key
//! addresses PDU i, and `"outlet"` (1-based) one of its outlets:
//!
//! * `{"cmd":"outlet","pdu":0,"outlet":4}` → `{"power":"on"}` (the emulator-side truth)
//! * `{"cmd":"set_outlet","pdu":0,"outlet":4,"power":"off"}` → `{"ok":true}`
//! * `{"cmd":"set_faults","pdu":0,"stuck":true,…}`, `{"cmd":"faults","pdu":0}`,
//!   `{"cmd":"log","pdu":0}` → as for BMCs (log entries carry `"outlet"`)
//!
//! With `--redfish N` it also starts N simulated Redfish services over HTTPS (user `--user`,
//! the same password; vendor behaviour from `--redfish-profile`: generic, idrac-like,
//! ilo-like, action-info-only, task202, no-session-service), listed as
//! `"redfish":["127.0.0.1:PORT",…]` in the ready line with `"redfish_sha256":"sha256:…"`, the
//! fingerprint of the certificate they all present (generated at start; pin it). A command
//! with a `"redfish"` key addresses service i: `power`, `set_power`, `set_faults`, `faults`,
//! `log`, `sessions` as for BMCs, and `{"cmd":"set_power_state","redfish":0,"raw":null}` to
//! report a raw `PowerState` (omit `raw` to go back to the model).
//!
//! Errors are `{"error":"…"}`. The process exits when stdin closes. The password is read
//! from a file (`--password-file`), never from the command line.

use clap::Parser;
use fencegate_bmcsim::FaultProfile;
use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use fencegate_bmcsim::redfish::{Profile, RedfishConfig, RedfishLab};
use fencegate_bmcsim::snmp::{PduConfig, PduLab};
use fencegate_ipmi_codec::commands::Privilege;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Start N simulated IPMI 2.0 BMCs on 127.0.0.1 and serve a JSON-lines control channel.
#[derive(Debug, Parser)]
#[command(name = "fencegate-bmcsim", version)]
struct Args {
    /// Number of IPMI endpoints to start (each on its own free UDP port).
    #[arg(long, default_value_t = 1)]
    ipmi: usize,
    /// User name of every BMC (may be empty).
    #[arg(long, default_value = "admin")]
    user: String,
    /// File holding the password (first line; at most 20 bytes).
    #[arg(long)]
    password_file: PathBuf,
    /// File holding the BMC key Kg (first line, raw; at most 20 bytes).
    #[arg(long)]
    kg_file: Option<PathBuf>,
    /// Cipher suites offered, e.g. `17,3`.
    #[arg(long, default_value = "17,3", value_delimiter = ',')]
    cipher: Vec<u8>,
    /// Highest privilege of the user: `operator` or `administrator`.
    #[arg(long, default_value = "administrator")]
    privilege: String,
    /// Start with the power off.
    #[arg(long)]
    off: bool,
    /// Power commands take effect after this many milliseconds.
    #[arg(long, default_value_t = 0)]
    off_delay_ms: u64,
    /// Acknowledge power commands and ignore them.
    #[arg(long)]
    stuck: bool,
    /// Fraction of datagrams dropped in each direction (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Seed of the drop decisions.
    #[arg(long, default_value_t = 1)]
    drop_seed: u64,
    /// Delay every reply by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    reply_delay_ms: u64,
    /// Answer Open Session with "insufficient resources" beyond this many sessions.
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Never answer anything.
    #[arg(long)]
    dead: bool,
    /// After a commanded power-off takes effect, switch the power back on this many
    /// milliseconds later (a PDU "reboot" action, a BMC that cycles instead of powering off).
    #[arg(long)]
    power_returns_after_ms: Option<u64>,
    /// Number of simulated APC PDUs (SNMPv1/v2c), each on its own free UDP port; the fault
    /// options above apply to them too.
    #[arg(long, default_value_t = 0)]
    pdu: usize,
    /// Outlets per PDU.
    #[arg(long, default_value_t = 8)]
    outlets: usize,
    /// File holding the PDUs' read-write community (first line); `private` if not given.
    #[arg(long)]
    community_file: Option<PathBuf>,
    /// Number of simulated Redfish services (HTTPS), each on its own free TCP port; the fault
    /// options above apply to them too (`--drop-rate` excepted).
    #[arg(long, default_value_t = 0)]
    redfish: usize,
    /// Vendor behaviour of the Redfish services.
    #[arg(long, default_value = "generic")]
    redfish_profile: Profile,
}

#[derive(Debug, Deserialize)]
struct Command {
    cmd: String,
    #[serde(default)]
    bmc: usize,
    /// Addresses PDU i instead of a BMC.
    #[serde(default)]
    pdu: Option<usize>,
    /// An outlet of that PDU (1-based).
    #[serde(default)]
    outlet: Option<u32>,
    /// Addresses Redfish service i instead of a BMC.
    #[serde(default)]
    redfish: Option<usize>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

fn first_line(path: &PathBuf, what: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the {what} file {}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// A control command addressed to a PDU (one with a `"pdu"` key).
fn handle_pdu(pdus: &PduLab, i: usize, cmd: Command) -> Value {
    if i >= pdus.len() {
        return json!({ "error": format!("no PDU {i} (there are {})", pdus.len()) });
    }
    let outlet = match cmd.outlet {
        Some(n) if n >= 1 && n as usize <= pdus.outlets(i) => Some(n),
        Some(n) => {
            return json!({ "error": format!("PDU {i} has outlets 1..={}, no outlet {n}", pdus.outlets(i)) });
        }
        None => None,
    };
    match (cmd.cmd.as_str(), outlet) {
        ("outlet", Some(n)) => json!({ "power": if pdus.outlet_on(i, n) { "on" } else { "off" } }),
        ("set_outlet", Some(n)) => match cmd.rest.get("power").and_then(Value::as_str) {
            Some("on") => {
                pdus.set_outlet(i, n, true);
                json!({ "ok": true })
            }
            Some("off") => {
                pdus.set_outlet(i, n, false);
                json!({ "ok": true })
            }
            _ => json!({ "error": "set_outlet needs \"power\": \"on\"|\"off\"" }),
        },
        ("outlet" | "set_outlet", None) => json!({ "error": "this command needs \"outlet\"" }),
        ("set_faults", _) => {
            match serde_json::from_value::<FaultProfile>(Value::Object(cmd.rest)) {
                Ok(f) => {
                    pdus.set_faults(i, f);
                    json!({ "ok": true })
                }
                Err(e) => json!({ "error": format!("bad fault profile: {e}") }),
            }
        }
        ("faults", _) => json!({ "faults": pdus.faults(i) }),
        ("log", _) => json!({ "log": pdus.command_log(i) }),
        (other, _) => json!({ "error": format!("unknown PDU command {other:?}") }),
    }
}

/// A control command addressed to a Redfish service (one with a `"redfish"` key).
fn handle_redfish(rf: &RedfishLab, i: usize, cmd: Command) -> Value {
    if i >= rf.len() {
        return json!({ "error": format!("no Redfish service {i} (there are {})", rf.len()) });
    }
    match cmd.cmd.as_str() {
        "power" => json!({ "power": if rf.power_on(i) { "on" } else { "off" } }),
        "set_power" => {
            let on = match (cmd.rest.get("power"), cmd.rest.get("on")) {
                (Some(Value::String(s)), None) if s == "on" => Some(true),
                (Some(Value::String(s)), None) if s == "off" => Some(false),
                (None, Some(Value::Bool(b))) => Some(*b),
                _ => None,
            };
            match on {
                Some(on) => {
                    rf.set_power(i, on);
                    json!({ "ok": true })
                }
                None => json!({
                    "error": "set_power needs \"power\": \"on\"|\"off\" or \"on\": true|false"
                }),
            }
        }
        "set_power_state" => {
            rf.set_reported_power_state(i, cmd.rest.get("raw").cloned());
            json!({ "ok": true })
        }
        "set_faults" => match serde_json::from_value::<FaultProfile>(Value::Object(cmd.rest)) {
            Ok(f) => {
                rf.set_faults(i, f);
                json!({ "ok": true })
            }
            Err(e) => json!({ "error": format!("bad fault profile: {e}") }),
        },
        "faults" => json!({ "faults": rf.faults(i) }),
        "log" => json!({ "log": rf.command_log(i) }),
        "sessions" => json!({ "sessions": rf.open_sessions(i) }),
        other => json!({ "error": format!("unknown Redfish command {other:?}") }),
    }
}

fn handle(lab: &IpmiLab, pdus: &PduLab, rf: &RedfishLab, line: &str) -> Value {
    let cmd: Command = match serde_json::from_str(line) {
        Ok(c) => c,
        Err(e) => return json!({ "error": format!("bad command: {e}") }),
    };
    if let Some(i) = cmd.pdu {
        return handle_pdu(pdus, i, cmd);
    }
    if let Some(i) = cmd.redfish {
        return handle_redfish(rf, i, cmd);
    }
    if cmd.bmc >= lab.len() {
        return json!({ "error": format!("no BMC {} (there are {})", cmd.bmc, lab.len()) });
    }
    let i = cmd.bmc;
    match cmd.cmd.as_str() {
        "power" => json!({ "power": if lab.power_on(i) { "on" } else { "off" } }),
        "set_power" => {
            let on = match (cmd.rest.get("power"), cmd.rest.get("on")) {
                (Some(Value::String(s)), None) if s == "on" => Some(true),
                (Some(Value::String(s)), None) if s == "off" => Some(false),
                (None, Some(Value::Bool(b))) => Some(*b),
                _ => None,
            };
            match on {
                Some(on) => {
                    lab.set_power(i, on);
                    json!({ "ok": true })
                }
                None => json!({
                    "error": "set_power needs \"power\": \"on\"|\"off\" or \"on\": true|false"
                }),
            }
        }
        "set_faults" => match serde_json::from_value::<FaultProfile>(Value::Object(cmd.rest)) {
            Ok(f) => {
                lab.set_faults(i, f);
                json!({ "ok": true })
            }
            Err(e) => json!({ "error": format!("bad fault profile: {e}") }),
        },
        "faults" => json!({ "faults": lab.faults(i) }),
        "log" => json!({ "log": lab.command_log(i) }),
        "sessions" => json!({ "sessions": lab.open_sessions(i) }),
        other => json!({ "error": format!("unknown command {other:?}") }),
    }
}

async fn run(args: Args) -> Result<(), String> {
    let password = first_line(&args.password_file, "password")?;
    let kg = match &args.kg_file {
        Some(p) => Some(first_line(p, "Kg")?.into_bytes()),
        None => None,
    };
    let max_privilege = match args.privilege.as_str() {
        "operator" => Privilege::Operator,
        "administrator" | "admin" => Privilege::Administrator,
        other => {
            return Err(format!(
                "--privilege {other:?}: expected operator or administrator"
            ));
        }
    };
    let faults = FaultProfile {
        off_delay_ms: args.off_delay_ms,
        stuck: args.stuck,
        drop_rate: args.drop_rate,
        drop_seed: args.drop_seed,
        reply_delay_ms: args.reply_delay_ms,
        max_sessions: args.max_sessions,
        dead: args.dead,
        power_returns_after_ms: args.power_returns_after_ms,
    };
    let mut cfg = BmcConfig::new(&args.user, &password);
    cfg.kg = kg;
    cfg.initial_power_on = !args.off;
    let lab_faults = faults.clone();
    cfg.faults = faults;
    cfg.cipher_suites = args.cipher.clone();
    cfg.max_privilege = max_privilege;
    let lab = IpmiLab::start(vec![cfg; args.ipmi])
        .await
        .map_err(|e| format!("cannot start the IPMI endpoints: {e}"))?;
    let addrs: Vec<String> = lab.addrs().iter().map(|a| a.to_string()).collect();
    let mut pdu_cfg = PduConfig::new(args.outlets);
    if let Some(p) = &args.community_file {
        pdu_cfg.write_community = first_line(p, "community")?;
    }
    pdu_cfg.initial_power_on = !args.off;
    pdu_cfg.faults = lab_faults.clone();
    let pdus = PduLab::start(vec![pdu_cfg; args.pdu])
        .await
        .map_err(|e| format!("cannot start the SNMP PDUs: {e}"))?;
    let pdu_addrs: Vec<String> = pdus.addrs().iter().map(|a| a.to_string()).collect();
    let mut rf_cfg = RedfishConfig::new(&args.user, &password).with_profile(args.redfish_profile);
    rf_cfg.initial_power_on = !args.off;
    rf_cfg.faults = lab_faults;
    let rf = RedfishLab::start(vec![rf_cfg; args.redfish])
        .await
        .map_err(|e| format!("cannot start the Redfish services: {e}"))?;
    let rf_addrs: Vec<String> = rf.addrs().iter().map(|a| a.to_string()).collect();
    let mut stdout = tokio::io::stdout();
    let write = async |stdout: &mut tokio::io::Stdout, v: Value| -> Result<(), String> {
        let mut line = v.to_string();
        line.push('\n');
        stdout
            .write_all(line.as_bytes())
            .await
            .and(stdout.flush().await)
            .map_err(|e| format!("stdout: {e}"))
    };
    write(
        &mut stdout,
        json!({ "ipmi": addrs, "snmp": pdu_addrs, "redfish": rf_addrs,
                "redfish_sha256": rf.fingerprint() }),
    )
    .await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.map_err(|e| format!("stdin: {e}"))? {
        if line.trim().is_empty() {
            continue;
        }
        write(&mut stdout, handle(&lab, &pdus, &rf, &line)).await?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fencegate-bmcsim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fencegate-bmcsim: {e}");
            ExitCode::FAILURE
        }
    }
}
