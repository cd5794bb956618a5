//! What `check --probe` learns beyond one reading per device: whether a host's PDU levels
//! switch as many supplies as its BMC reports (a dual-PSU host fenced through one outlet
//! keeps running), and which fence agents hand secrets to helpers on their command line.

use fencegate_core::Host;
use fencegate_driver::Channel;
use std::time::{Duration, Instant};

/// How long one BMC may take to count its power supplies.
const COUNT_BUDGET: Duration = Duration::from_secs(5);

/// Warnings about `host`'s outlet levels against the supplies its BMCs report. A BMC that
/// cannot count (the driver or the BMC has no such data) is said once, not guessed around.
pub async fn supply_findings(host: &Host) -> Vec<String> {
    let mut out = Vec::new();
    let outlet_levels: Vec<(usize, u32)> = host
        .levels
        .iter()
        .enumerate()
        .filter_map(|(i, level)| {
            let readers: Vec<_> = level.iter().filter(|d| d.declared_reader).collect();
            let outlets = !readers.is_empty()
                && readers
                    .iter()
                    .all(|d| d.driver.capabilities().channel == Channel::Outlet);
            outlets.then(|| {
                let total = readers
                    .iter()
                    .map(|d| d.driver.capabilities().outlets.max(1))
                    .sum();
                (i + 1, total)
            })
        })
        .collect();
    if outlet_levels.is_empty() {
        return out;
    }
    for bmc in host
        .devices()
        .into_iter()
        .filter(|d| d.driver.capabilities().channel == Channel::Bmc)
    {
        let deadline = Instant::now() + COUNT_BUDGET;
        let counted = tokio::time::timeout(COUNT_BUDGET, bmc.driver.power_supplies(deadline)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), bmc.driver.release(deadline)).await;
        match counted {
            Ok(Ok(supplies)) => {
                for (level, total) in &outlet_levels {
                    if *total < supplies {
                        out.push(format!(
                            "host `{}`: level {level} switches {total} outlet(s), but BMC `{}` reports {supplies} power supplies: a supply left fed keeps the host running (add its outlet to the level)",
                            host.name, bmc.name
                        ));
                    } else if *total > supplies {
                        out.push(format!(
                            "host `{}`: level {level} switches {total} outlet(s), but BMC `{}` reports only {supplies} power supplies: check the outlets belong to this host",
                            host.name, bmc.name
                        ));
                    }
                }
            }
            Ok(Err(e)) => out.push(format!(
                "host `{}`: BMC `{}` cannot count its power supplies ({e}); check by hand that its PDU level switches every supply",
                host.name, bmc.name
            )),
            Err(_) => out.push(format!(
                "host `{}`: BMC `{}` did not count its power supplies within {} s",
                host.name,
                bmc.name,
                COUNT_BUDGET.as_secs()
            )),
        }
    }
    out
}

/// Warnings for fence-agent devices whose agent passes secrets to a helper on its command
/// line, or which a built-in driver could replace.
pub fn agent_findings(host: &Host) -> Vec<String> {
    host.devices()
        .iter()
        .filter(|d| d.driver_name == "fence-agent")
        .filter_map(|d| {
            fencegate_external::agent_advice(&d.address)
                .map(|a| format!("device `{}`: {}", d.name, a.warning()))
        })
        .collect()
}
