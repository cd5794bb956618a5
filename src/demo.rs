//! `fencegate demo`: a failover on a simulated lab, end to end, with no hardware and no setup.
//!
//! Four hosts with simulated IPMI BMCs (cipher suite 17) run in-process on 127.0.0.1; one
//! host's power takes 1.5 s to drop after the command. The scenario declares that host failed,
//! fences it through the real engine, driver and journal, prints the timeline and the proof,
//! checks the simulator's own truth, and shows the guards at work.

use crate::cli::Global;
use crate::exit;
use crate::output;
use crate::setup::SetupError;
use fencegate_bmcsim::FaultProfile;
use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use fencegate_core::{Device, Engine, Host, Policy, Request, SqliteJournal, Verdict};
use fencegate_driver::{DeviceSpec, DriverFactory, SecretString};
use std::sync::Arc;
use std::time::Duration;

const HOSTS: [&str; 4] = ["node1", "node2", "node3", "node4"];
/// The host that fails, and whose power is slow to drop.
const FAILED: usize = 2;

/// Run the demo; exit 0 only if the failed host was fenced, proven off, and the simulator
/// agrees.
pub async fn run(global: &Global) -> Result<u8, SetupError> {
    let password = demo_password();
    let mut configs: Vec<BmcConfig> = HOSTS
        .iter()
        .map(|_| BmcConfig::new("fencegate", &password))
        .collect();
    configs[FAILED].faults = FaultProfile {
        off_delay_ms: 1500,
        ..FaultProfile::default()
    };
    let lab = IpmiLab::start(configs).await.map_err(|e| {
        SetupError::internal(format!("cannot start the simulated lab on 127.0.0.1: {e}"))
    })?;

    let (state_dir, temporary) = match &global.state_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("fencegate-demo-{}", std::process::id())),
            true,
        ),
    };
    let journal =
        SqliteJournal::open(&state_dir).map_err(|e| SetupError::internal(e.to_string()))?;
    let journal_path = journal.path().to_owned();
    let engine = Engine::new(Arc::new(journal));
    crate::commands::stop_on_signals(&engine);

    let policy = Policy {
        attempt_timeout: Duration::from_secs(10),
        overall_timeout: Duration::from_secs(20),
        ..Policy::default()
    };
    let mut hosts = Vec::new();
    for (i, name) in HOSTS.iter().enumerate() {
        let spec = DeviceSpec {
            name: format!("{name}-bmc"),
            driver: "ipmi".into(),
            address: lab.addr(i).to_string(),
            user: Some("fencegate".into()),
            secrets: [("password".to_owned(), SecretString::from(password.clone()))].into(),
            ..DeviceSpec::default()
        };
        let driver = fencegate_ipmi::IpmiFactory
            .build(&spec)
            .map_err(|e| SetupError::internal(format!("demo device {}: {e}", spec.name)))?;
        hosts.push(Arc::new(Host {
            name: (*name).to_owned(),
            aliases: Vec::new(),
            opennebula_id: Some(i as u64),
            levels: vec![vec![Arc::new(Device {
                name: spec.name.clone(),
                driver_name: "ipmi".into(),
                driver,
            })]],
            policy: policy.clone(),
        }));
    }

    let say = |s: &str| {
        if !global.json {
            println!("{s}");
        }
    };
    say("fencegate demo: a simulated lab on 127.0.0.1, nothing outside this process is touched");
    say(&format!(
        "  {} hosts, each with an IPMI 2.0 BMC (RMCP+, cipher suite 17); {}'s power takes 1.5 s to drop",
        HOSTS.len(),
        HOSTS[FAILED]
    ));
    say(&format!("  journal: {}\n", journal_path.display()));

    say("1. Every host's BMC, read once:");
    for host in &hosts {
        let rows = engine.status(host).await;
        if !global.json {
            print!("{}", output::status(&host.name, &rows));
        }
    }

    let failed = Arc::clone(&hosts[FAILED]);
    say(&format!(
        "\n2. {} stops answering; the cloud asks fencegate to fence it before moving its VMs.",
        failed.name
    ));
    let request = Request {
        requester: "demo (as OpenNebula's host_error hook)".into(),
        reason: format!("{} in ERROR", failed.name),
        force: false,
    };
    let proof = engine
        .fence(Arc::clone(&failed), request.clone())
        .await
        .map_err(|e| SetupError::internal(e.to_string()))?;
    if global.json {
        output::print_json(&proof);
    } else {
        println!("   timeline:");
        for level in &proof.levels {
            for d in &level.devices {
                for e in &d.events {
                    println!("   {}  {}", output::event(&proof, e), d.device);
                }
            }
        }
        println!("\n   proof record:");
        for line in output::proof(&proof, false).lines() {
            println!("   {line}");
        }
    }
    let truth_off = !lab.power_on(FAILED);
    let others_on = (0..HOSTS.len())
        .filter(|i| *i != FAILED)
        .all(|i| lab.power_on(i));
    say(&format!(
        "\n3. The simulator's own state: {} is {}; the other hosts are {}.",
        failed.name,
        if truth_off { "off" } else { "STILL ON" },
        if others_on { "still on" } else { "NOT all on" }
    ));

    say(&format!(
        "\n4. Guards: someone tries to power {} back on.",
        failed.name
    ));
    let on = engine
        .on(Arc::clone(&failed), request.clone())
        .await
        .map_err(|e| SetupError::internal(e.to_string()))?;
    say(&format!("   {}: {}", on.verdict, on.detail));

    say(&format!(
        "\n5. The hook fires again for {} (a retry): the earlier proof is re-confirmed by fresh readings.",
        failed.name
    ));
    let again = engine
        .fence(Arc::clone(&failed), request)
        .await
        .map_err(|e| SetupError::internal(e.to_string()))?;
    say(&format!("   {}", again.one_line()));

    let ok = proof.success
        && proof.verdict == Verdict::PowerVerifiedOff
        && truth_off
        && others_on
        && on.verdict == Verdict::Refused
        && again.success;
    say(&format!(
        "\n{}",
        if ok {
            "demo: the failed host was proven off before any VM moved; nothing else was touched."
        } else {
            "demo: FAILED: the scenario did not end as it must (see above)."
        }
    ));
    if temporary {
        let _ = std::fs::remove_dir_all(&state_dir);
    } else {
        say(&format!(
            "   The proof stays in the journal: fencegate --state-dir {} history --details",
            state_dir.display()
        ));
    }
    Ok(if ok { exit::OK } else { exit::FAILED })
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
