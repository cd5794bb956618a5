//! `fencegate demo`: failovers on a simulated lab, end to end, with no hardware and no setup.
//!
//! Everything runs in this process on 127.0.0.1: four hosts with simulated IPMI BMCs (one
//! slow to power off; one whose BMC is dead, its two power supplies fed by two simulated PDUs),
//! and one host with an iDRAC-like Redfish BMC (HTTPS, certificate pinned). The scenario fences
//! three failed hosts through the real engine, drivers and journal, prints each timeline and
//! proof, checks every simulator's own power state, and shows the guards at work.

use crate::cli::Global;
use crate::error::CommandError;
use crate::exit;
use crate::output;
use crate::setup::{self, Signals};
use fencegate_bmcsim::FaultProfile;
use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use fencegate_bmcsim::redfish::{Profile, RedfishConfig, RedfishLab};
use fencegate_bmcsim::snmp::{PduConfig, PduLab};
use fencegate_core::{Device, Engine, Host, Policy, Proof, Request, SqliteJournal, Verdict};
use fencegate_driver::{DeviceSpec, SecretString};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The simulated lab: every device the demo's hosts are fenced through.
struct Lab {
    ipmi: IpmiLab,
    redfish: RedfishLab,
    pdus: PduLab,
}

/// The PDU outlet both power supplies of node4 hang off (one on each PDU).
const NODE4_OUTLET: u32 = 4;

impl Lab {
    async fn start(password: &str) -> Result<Lab, CommandError> {
        let fail = |what: &str, e: std::io::Error| {
            CommandError::internal(format!(
                "cannot start the simulated {what} on 127.0.0.1: {e}"
            ))
        };
        let mut bmcs: Vec<BmcConfig> = (0..4)
            .map(|_| BmcConfig::new("fencegate", password))
            .collect();
        bmcs[2].faults = FaultProfile {
            off_delay_ms: 1500,
            ..FaultProfile::default()
        };
        bmcs[3].faults = FaultProfile {
            dead: true,
            ..FaultProfile::default()
        };
        let ipmi = IpmiLab::start(bmcs)
            .await
            .map_err(|e| fail("IPMI BMCs", e))?;
        let mut rf = RedfishConfig::new("fencegate", password);
        rf.profile = Profile::IdracLike.profile();
        rf.faults = FaultProfile {
            off_delay_ms: 600,
            ..FaultProfile::default()
        };
        let redfish = RedfishLab::start(vec![rf])
            .await
            .map_err(|e| fail("Redfish BMC", e))?;
        let pdus = PduLab::start(vec![PduConfig::new(8), PduConfig::new(8)])
            .await
            .map_err(|e| fail("PDUs", e))?;
        Ok(Lab {
            ipmi,
            redfish,
            pdus,
        })
    }

    /// Device specifications by name, as an inventory would give them.
    fn devices(&self, password: &str) -> Vec<DeviceSpec> {
        let secret = |role: &str, value: &str| -> BTreeMap<String, SecretString> {
            [(role.to_owned(), SecretString::from(value.to_owned()))].into()
        };
        let mut out: Vec<DeviceSpec> = (0..4)
            .map(|i| DeviceSpec {
                name: format!("node{}-bmc", i + 1),
                driver: "ipmi".into(),
                address: self.ipmi.addr(i).to_string(),
                user: Some("fencegate".into()),
                secrets: secret("password", password),
                ..DeviceSpec::default()
            })
            .collect();
        out.push(DeviceSpec {
            name: "node5-idrac".into(),
            driver: "redfish".into(),
            address: self.redfish.addr(0).to_string(),
            user: Some("fencegate".into()),
            options: [("pin".to_owned(), self.redfish.fingerprint())].into(),
            secrets: secret("password", password),
            ..DeviceSpec::default()
        });
        for (i, pdu) in ["pdu-a", "pdu-b"].iter().enumerate() {
            out.push(DeviceSpec {
                name: format!("{pdu}-{NODE4_OUTLET}"),
                driver: "snmp".into(),
                address: self.pdus.addr(i).to_string(),
                options: [("outlet".to_owned(), NODE4_OUTLET.to_string())].into(),
                secrets: secret("community", "private"),
                ..DeviceSpec::default()
            });
        }
        out
    }
}

/// Where the demo keeps its journal. Its simulated fences must never land in a journal real
/// fences use (they would count against the storm guard and leave power-on locks): an
/// inherited `FENCEGATE_STATE_DIR` is ignored, and an explicit `--state-dir` is taken only
/// when it holds no journal yet. Otherwise a fresh private directory, removed at the end.
fn demo_state_dir(global: &Global) -> Result<(std::path::PathBuf, bool), CommandError> {
    let inherited = std::env::var_os("FENCEGATE_STATE_DIR").map(std::path::PathBuf::from);
    match &global.state_dir {
        Some(d) if inherited.as_ref() != Some(d) => {
            let journal = d.join(SqliteJournal::FILE_NAME);
            if journal.exists() {
                return Err(CommandError::usage(format!(
                    "--state-dir {}: it already holds a journal; the demo writes only to a journal it creates (give a new directory, or none)",
                    d.display()
                )));
            }
            Ok((d.clone(), false))
        }
        _ => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|t| t.subsec_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir()
                .join(format!("fencegate-demo-{}-{nanos:08x}", std::process::id()));
            // A new, private directory: never one that somebody else prepared.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| {
                    CommandError::internal(format!("cannot create {}: {e}", dir.display()))
                })?;
            Ok((dir, true))
        }
    }
}

/// The simulated hosts, as an inventory would give them: node1..node3 behind one IPMI BMC
/// each, node4 behind its (dead) BMC and then both PDU outlets of its two supplies, node5
/// behind its Redfish BMC.
struct Hosts([Arc<Host>; 5]);

impl Hosts {
    fn build(lab: &Lab, password: &str) -> Result<Hosts, CommandError> {
        let registry = setup::registry();
        let mut devices = BTreeMap::new();
        for spec in lab.devices(password) {
            let name = spec.name.clone();
            let device = Device::from_spec(spec, &registry)
                .map_err(|e| CommandError::internal(format!("demo device {name}: {e}")))?;
            devices.insert(name, Arc::new(device));
        }
        let policy = Policy {
            // Room for node3's slow relay (1.5 s) plus the hold.
            attempt_timeout: Duration::from_secs(5),
            // Long enough to show the hold in every timeline, short enough for a demo.
            off_hold: Duration::from_secs(1),
            // Fences of a burst are judged together; the demo's come one by one.
            storm_settle: Duration::from_millis(300),
            overall_timeout: Duration::from_secs(12),
            ..Policy::default()
        };
        let host = |name: &str, levels: &[&[&str]]| {
            Arc::new(Host {
                name: name.to_owned(),
                aliases: Vec::new(),
                opennebula_id: None,
                levels: levels
                    .iter()
                    .map(|l| l.iter().map(|d| Arc::clone(&devices[*d])).collect())
                    .collect(),
                policy: policy.clone(),
                inventory: None,
            })
        };
        Ok(Hosts([
            host("node1", &[&["node1-bmc"]]),
            host("node2", &[&["node2-bmc"]]),
            host("node3", &[&["node3-bmc"]]),
            host("node4", &[&["node4-bmc"], &["pdu-a-4", "pdu-b-4"]]),
            host("node5", &[&["node5-idrac"]]),
        ]))
    }
}

/// Prints the story for a person; says nothing when the output is JSON.
#[derive(Clone, Copy)]
struct Narrator {
    human: bool,
}

impl Narrator {
    fn say(self, s: &str) {
        if self.human {
            println!("{s}");
        }
    }
}

/// The request of every demo operation: the demo plays OpenNebula's hook.
fn request(why: &str) -> Request {
    Request {
        requester: "demo (as OpenNebula's host_error hook)".into(),
        reason: why.to_owned(),
        force: false,
        door: fencegate_core::proof::Door::Demo,
    }
}

/// Fence one host for the scenario; an engine error ends the demo.
async fn fence(engine: &Engine, host: &Arc<Host>, why: &str) -> Result<Proof, CommandError> {
    engine
        .fence(Arc::clone(host), request(why))
        .await
        .map_err(|e| CommandError::internal(e.to_string()))
}

/// Run the demo; exit 0 only if every failed host was proven off, the simulators agree, and
/// nothing else was touched.
pub async fn run(global: &Global) -> Result<u8, CommandError> {
    let (state_dir, temporary) = demo_state_dir(global)?;
    let password = demo_password();
    let lab = Lab::start(&password).await?;
    let hosts = Hosts::build(&lab, &password)?;
    let journal =
        SqliteJournal::open(&state_dir).map_err(|e| CommandError::internal(e.to_string()))?;
    let journal_path = journal.path().to_owned();
    let engine = setup::engine_over(journal, Signals::StopOperations);
    let tell = Narrator {
        human: !global.json,
    };

    introduce(tell, &journal_path);
    read_every_device(tell, &engine, &hosts).await;
    let mut proofs = fence_failed_hosts(tell, &engine, &hosts).await?;
    let truth = Truth::of(&lab);
    truth.tell(tell);
    let guards = Guards::try_them(tell, &engine, &hosts).await?;

    let ok = proofs
        .iter()
        .all(|p| p.success && p.verdict == Verdict::PowerVerifiedOff)
        && truth.held()
        && lab.ipmi.power_on(0)
        && guards.held();
    if global.json {
        proofs.extend([guards.on, guards.storm, guards.again]);
        output::print_json(&proofs);
    }
    tell.say(&format!(
        "\n{}",
        if ok {
            "demo: every failed host was proven off before any VM moved; the guards held; nothing else was touched."
        } else {
            "demo: FAILED: the scenario did not end as it must (see above)."
        }
    ));
    if temporary {
        let _ = std::fs::remove_dir_all(&state_dir);
    } else {
        tell.say(&format!(
            "   The proofs stay in the journal: fencegate --state-dir {} history --details",
            state_dir.display()
        ));
    }
    Ok(if ok { exit::OK } else { exit::FAILED })
}

/// What the lab is and where the journal is.
fn introduce(tell: Narrator, journal: &std::path::Path) {
    tell.say(
        "fencegate demo: a simulated lab on 127.0.0.1; nothing outside this process is touched",
    );
    tell.say(
        "  node1..node4: IPMI 2.0 BMCs (RMCP+, cipher suite 17); node3's power takes 1.5 s to drop;",
    );
    tell.say("  node4's BMC is dead, its two power supplies hang off outlet 4 of two SNMP PDUs;");
    tell.say(
        "  node5: an iDRAC-like Redfish BMC over HTTPS, certificate pinned, PoweringOff for 0.6 s.",
    );
    tell.say(&format!("  journal: {}\n", journal.display()));
}

/// Step 1: every device read once, before anything fails.
async fn read_every_device(tell: Narrator, engine: &Engine, hosts: &Hosts) {
    tell.say("1. Every device, read once:");
    for h in &hosts.0 {
        let rows = engine.status(h).await;
        if tell.human {
            print!("{}", output::status(&h.name, &rows));
        }
    }
}

/// Steps 2 to 4: the three failed hosts fenced as the hook would, each with its timeline.
async fn fence_failed_hosts(
    tell: Narrator,
    engine: &Engine,
    hosts: &Hosts,
) -> Result<Vec<Proof>, CommandError> {
    let steps: [(usize, &str); 3] = [
        (
            2,
            "node3 stops answering; the cloud asks fencegate to fence it before moving its VMs.",
        ),
        (
            3,
            "node4 loses its BMC with its host: level 1 cannot answer, level 2 (both PDU outlets) must.",
        ),
        (
            4,
            "node5 stops answering; its Redfish BMC reports PoweringOff before Off.",
        ),
    ];
    let mut proofs = Vec::new();
    for (n, (i, story)) in steps.iter().enumerate() {
        tell.say(&format!("\n{}. {story}", n + 2));
        let p = fence(engine, &hosts.0[*i], "in ERROR").await?;
        if tell.human {
            timeline(&p);
        }
        proofs.push(p);
    }
    Ok(proofs)
}

/// Step 5: the simulators' own power state, which no proof can talk its way around.
struct Truth {
    /// Each fenced host, and whether its simulator is off.
    fenced: [(&'static str, bool); 3],
    /// node1, node2 and every outlet but node4's are still on.
    untouched: bool,
}

impl Truth {
    fn of(lab: &Lab) -> Truth {
        let fenced = [
            ("node3", !lab.ipmi.power_on(2)),
            (
                "node4 (both outlets)",
                !lab.pdus.outlet_on(0, NODE4_OUTLET) && !lab.pdus.outlet_on(1, NODE4_OUTLET),
            ),
            ("node5", !lab.redfish.power_on(0)),
        ];
        let untouched = lab.ipmi.power_on(0)
            && lab.ipmi.power_on(1)
            && (1..=8).all(|o| {
                o == NODE4_OUTLET || (lab.pdus.outlet_on(0, o) && lab.pdus.outlet_on(1, o))
            });
        Truth { fenced, untouched }
    }

    fn tell(&self, tell: Narrator) {
        tell.say("\n5. The simulators' own state:");
        for (name, off) in &self.fenced {
            tell.say(&format!(
                "   {name}: {}",
                if *off { "off" } else { "STILL ON" }
            ));
        }
        tell.say(&format!(
            "   node1, node2 and every other outlet: {}",
            if self.untouched {
                "untouched, on"
            } else {
                "NOT untouched"
            }
        ));
    }

    /// Every fenced host is off and nothing else was touched.
    fn held(&self) -> bool {
        self.fenced.iter().all(|(_, off)| *off) && self.untouched
    }
}

/// Step 6: the guards at work, each answer kept for the verdict and the JSON output.
struct Guards {
    /// Powering on a fenced host (the power-on lock refuses).
    on: Proof,
    /// A fourth fence within minutes (the storm guard refuses).
    storm: Proof,
    /// The hook firing again for a fenced host (re-confirmed, not fenced twice).
    again: Proof,
}

impl Guards {
    async fn try_them(
        tell: Narrator,
        engine: &Engine,
        hosts: &Hosts,
    ) -> Result<Guards, CommandError> {
        tell.say("\n6. Guards.");
        let on = engine
            .on(
                Arc::clone(&hosts.0[2]),
                request("someone powers node3 back on"),
            )
            .await
            .map_err(|e| CommandError::internal(e.to_string()))?;
        tell.say(&format!("   power on node3: {}: {}", on.verdict, on.detail));
        let storm = fence(engine, &hosts.0[0], "a fourth host in ERROR within minutes").await?;
        tell.say(&format!(
            "   fence node1 too: {}: {}",
            storm.verdict, storm.detail
        ));
        let again = fence(engine, &hosts.0[2], "the hook fires again").await?;
        tell.say(&format!(
            "   the hook fires again for node3: {}",
            again.one_line()
        ));
        Ok(Guards { on, storm, again })
    }

    /// The lock and the storm guard refused; the repeated fence succeeded.
    fn held(&self) -> bool {
        self.on.verdict == Verdict::Refused
            && self.storm.verdict == Verdict::Refused
            && self.again.success
    }
}

/// Print one fence's timeline and proof record, indented under its step.
fn timeline(p: &Proof) {
    println!("   timeline:");
    let mut events: Vec<(String, String)> = p
        .levels
        .iter()
        .flat_map(|l| {
            l.devices.iter().flat_map(move |d| {
                d.events
                    .iter()
                    .map(move |e| (output::event(p, e), d.device.clone()))
            })
        })
        .collect();
    events.sort_by_key(|(line, _)| {
        line.split_whitespace()
            .next()
            .and_then(|t| t.trim_start_matches('+').parse::<i64>().ok())
            .unwrap_or(0)
    });
    for (line, device) in events {
        println!("   {line}  [{device}]");
    }
    println!("   proof record:");
    for line in output::proof(p, false).lines() {
        println!("   {line}");
    }
}

/// A per-run password for the simulated BMCs (never printed).
fn demo_password() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // IPMI 2.0 passwords are at most 20 bytes.
    let mixed = (t as u64) ^ (u64::from(std::process::id()) << 40);
    format!("demo-{:012x}", mixed & 0xffff_ffff_ffff)
}
