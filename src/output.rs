//! Human-readable rendering of proofs, timelines and tables. JSON output is the serde form
//! of the same records (documented in docs/json.md).
//!
//! Every name and every word a device or driver said goes through [`printable`] here: the
//! reader of these lines (a terminal, a log, host_error.log) cannot tell a line the text
//! started from one fencegate wrote.

use fencegate_core::proof::printable;
use fencegate_core::{DeviceRecord, DeviceStatus, Event, Proof};
use std::fmt::Write;

/// A one-screen rendering of a proof: the verdict, then one line per device.
pub fn proof(p: &Proof, details: bool) -> String {
    let mut s = String::new();
    let mark = if p.success { "OK " } else { "NOT" };
    let _ = writeln!(
        s,
        "{mark} {} {}: {} in {} ms [{}]",
        p.operation.as_str(),
        printable(&p.host),
        p.verdict,
        p.duration_ms,
        printable(&p.request_id)
    );
    let _ = writeln!(s, "    {}", printable(&p.detail));
    if let Some(c) = &p.confirms {
        let _ = writeln!(s, "    re-confirms the earlier proof {}", printable(c));
    }
    for level in &p.levels {
        for d in &level.devices {
            let ids = d
                .identity
                .iter()
                .map(|f| {
                    // Facts the endpoint proved with its credentials are marked.
                    let mark = if f.authenticated {
                        " (authenticated)"
                    } else {
                        ""
                    };
                    format!("{}={}{mark}", printable(&f.kind), printable(&f.value))
                })
                .collect::<Vec<_>>()
                .join(" ");
            let held = d
                .off_held_ms
                .map(|ms| format!(", off held {}.{} s", ms / 1000, (ms % 1000) / 100))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "    level {} {:<16} {:<8} {:<24} {:?} in {} ms{held}{} {}",
                level.level,
                printable(&d.device),
                printable(&d.driver),
                printable(&d.endpoint),
                d.outcome,
                d.duration_ms,
                unauthenticated(d),
                ids
            );
            if details {
                for e in &d.events {
                    let _ = writeln!(s, "        {}", event(p, e));
                }
            }
        }
    }
    s
}

/// A mark on a device whose `Off` readings nobody authenticated (SNMP v1/v2c, TLS not
/// verified, a channel that proves no identity): anyone on the network path could have
/// sent them. The proof stands on them all the same, so the reader must see it.
fn unauthenticated(d: &DeviceRecord) -> &'static str {
    if d.reads_power_state && d.readings().next().is_some() && !d.readings_authenticated() {
        ", readings NOT authenticated"
    } else {
        ""
    }
}

/// One event as a timeline line, timed from the start of the operation.
pub fn event(p: &Proof, e: &Event) -> String {
    let (at, text) = match e {
        Event::Reading { at, state } => (at, format!("reading: {}", printable(&state.to_string()))),
        Event::CommandIntent { at, action } => (at, format!("sending {action} (intent journaled)")),
        Event::CommandAccepted { at, action, detail } => {
            (at, format!("{action} accepted: {}", printable(detail)))
        }
        Event::Error {
            at,
            call,
            kind,
            detail,
        } => (
            at,
            format!("{} failed: {kind}: {}", printable(call), printable(detail)),
        ),
        Event::Note { at, text } => (at, printable(text).into_owned()),
        Event::RestorePolicy { at, detail, .. } => {
            (at, format!("power restore policy: {}", printable(detail)))
        }
    };
    format!("+{:>6} ms  {text}", at.millis() - p.started_at.millis())
}

/// The status table.
pub fn status(host: &str, rows: &[DeviceStatus]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", printable(host));
    for r in rows {
        let reading = match &r.reading {
            Ok(state) => state.to_string(),
            Err(_) if !r.reads_power_state => "cannot read power state (in-band only)".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        let _ = writeln!(
            s,
            "    level {} {:<16} {:<8} {:<24} {}",
            r.level,
            printable(&r.device),
            printable(&r.driver),
            printable(&r.endpoint),
            printable(&reading)
        );
    }
    s
}

/// The JSON form of a status table.
pub fn status_json(host: &str, rows: &[DeviceStatus]) -> serde_json::Value {
    serde_json::json!({
        "host": host,
        "devices": rows.iter().map(|r| {
            let mut v = serde_json::json!({
                "device": r.device,
                "level": r.level,
                "driver": r.driver,
                "endpoint": r.endpoint,
                "reads_power_state": r.reads_power_state,
                "declared_reader": r.declared_reader,
                "channel": r.channel,
                "authenticated_identity": r.authenticated_identity,
                "identity": r.identity,
            });
            match &r.reading {
                Ok(state) => v["state"] = serde_json::to_value(state).unwrap_or_default(),
                Err(e) => v["error"] = serde_json::to_value(e).unwrap_or_default(),
            }
            v
        }).collect::<Vec<_>>(),
    })
}

/// Print a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("fencegate: cannot encode JSON: {e}"),
    }
}
