//! `fencegate-bmcsim`: start simulated BMCs and drive them over a JSON-lines control channel.
//!
//! On start it prints one line `{"ipmi":["127.0.0.1:PORT",…]}` on stdout. Then each stdin
//! line is a command, answered by one stdout line:
//!
//! * `{"cmd":"power","bmc":0}` → `{"power":"on"}` (the emulator-side truth)
//! * `{"cmd":"set_power","bmc":0,"power":"off"}` (or `"on":false`) → `{"ok":true}`
//! * `{"cmd":"set_faults","bmc":0,"stuck":true,"off_delay_ms":500,…}` → `{"ok":true}`
//!   (fields of the fault profile; omitted ones take their defaults)
//! * `{"cmd":"faults","bmc":0}` → `{"faults":{…}}`
//! * `{"cmd":"log","bmc":0}` → `{"log":[{"protocol":"ipmi","command":"off",…}]}`
//! * `{"cmd":"sessions","bmc":0}` → `{"sessions":0}`
//!
//! Errors are `{"error":"…"}`. The process exits when stdin closes. The password is read
//! from a file (`--password-file`), never from the command line.

use clap::Parser;
use fencegate_bmcsim::FaultProfile;
use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use fencegate_ipmi::commands::Privilege;
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
}

#[derive(Debug, Deserialize)]
struct Command {
    cmd: String,
    #[serde(default)]
    bmc: usize,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

fn first_line(path: &PathBuf, what: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the {what} file {}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

fn handle(lab: &IpmiLab, line: &str) -> Value {
    let cmd: Command = match serde_json::from_str(line) {
        Ok(c) => c,
        Err(e) => return json!({ "error": format!("bad command: {e}") }),
    };
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
    };
    let mut cfg = BmcConfig::new(&args.user, &password);
    cfg.kg = kg;
    cfg.initial_power_on = !args.off;
    cfg.faults = faults;
    cfg.cipher_suites = args.cipher.clone();
    cfg.max_privilege = max_privilege;
    let lab = IpmiLab::start(vec![cfg; args.ipmi])
        .await
        .map_err(|e| format!("cannot start the IPMI endpoints: {e}"))?;
    let addrs: Vec<String> = lab.addrs().iter().map(|a| a.to_string()).collect();
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
    write(&mut stdout, json!({ "ipmi": addrs })).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.map_err(|e| format!("stdin: {e}"))? {
        if line.trim().is_empty() {
            continue;
        }
        write(&mut stdout, handle(&lab, &line)).await?;
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
