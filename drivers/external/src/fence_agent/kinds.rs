//! Which fence agents switch power, which only isolate, and which are no fence at all.
//!
//! Every fence agent prints `Status: OFF` when its own kind of "off" holds, but only some of
//! them mean power: `fence_scsi` means the host's SCSI registrations are gone, `fence_ifmib`
//! that a switch port is down, `fence_kdump` that a crash kernel said hello. The host keeps
//! running in all those cases, so their `Status: OFF` must never count as a power reading.
//! The adapter therefore classifies agents by their file name, from the tables below (data,
//! reviewed against the fence-agents 4.12 package: every agent it installs is in one of them
//! or deliberately left out). An agent in no table is *not known to switch power* and is
//! treated as an isolation agent, unless the device vouches for it with the option
//! `switches_power = true`.

use fencegate_driver::{Channel, SpecError};

/// Agents known to switch a host's power, and the kind of channel each is: a management
/// controller (IPMI, iLO, DRAC, a blade chassis manager) is [`Channel::Bmc`], a switched PDU
/// is [`Channel::Outlet`], a hypervisor or cloud API switching a virtual machine is
/// [`Channel::Other`].
pub const POWER_AGENTS: &[(&str, Channel)] = &[
    // IPMI and its aliases (the same program under vendor names).
    ("fence_ipmilan", Channel::Bmc),
    ("fence_ipmilanplus", Channel::Bmc),
    ("fence_idrac", Channel::Bmc),
    ("fence_ilo3", Channel::Bmc),
    ("fence_ilo4", Channel::Bmc),
    ("fence_ilo5", Channel::Bmc),
    ("fence_imm", Channel::Bmc),
    // Other management controllers.
    ("fence_redfish", Channel::Bmc),
    ("fence_ilo", Channel::Bmc),
    ("fence_ilo2", Channel::Bmc),
    ("fence_ilo_ssh", Channel::Bmc),
    ("fence_ilo3_ssh", Channel::Bmc),
    ("fence_ilo4_ssh", Channel::Bmc),
    ("fence_ilo5_ssh", Channel::Bmc),
    ("fence_ilo_mp", Channel::Bmc),
    ("fence_ilo_moonshot", Channel::Bmc),
    ("fence_drac", Channel::Bmc),
    ("fence_drac5", Channel::Bmc),
    ("fence_amt", Channel::Bmc),
    ("fence_amt_ws", Channel::Bmc),
    ("fence_alom", Channel::Bmc),
    ("fence_rsa", Channel::Bmc),
    ("fence_rsb", Channel::Bmc),
    // Blade chassis managers switching one blade's power.
    ("fence_cisco_ucs", Channel::Bmc),
    ("fence_ibmblade", Channel::Bmc),
    ("fence_bladecenter", Channel::Bmc),
    ("fence_hpblade", Channel::Bmc),
    ("fence_intelmodular", Channel::Bmc),
    ("fence_hds_cb", Channel::Bmc),
    // Switched PDUs: one outlet of a host that may have several supplies.
    ("fence_apc", Channel::Outlet),
    ("fence_apc_snmp", Channel::Outlet),
    ("fence_eaton_snmp", Channel::Outlet),
    ("fence_raritan", Channel::Outlet),
    ("fence_raritan_px3", Channel::Outlet),
    ("fence_wti", Channel::Outlet),
    ("fence_ipdu", Channel::Outlet),
    ("fence_eps", Channel::Outlet),
    ("fence_emerson", Channel::Outlet),
    ("fence_lindypdu", Channel::Outlet),
    ("fence_netio", Channel::Outlet),
    ("fence_cdu", Channel::Outlet),
    ("fence_tripplite_snmp", Channel::Outlet),
    ("fence_cyberpower_ssh", Channel::Outlet),
    // Hypervisors, partitions and clouds switching a guest's (virtual) power.
    ("fence_virsh", Channel::Other),
    ("fence_xvm", Channel::Other),
    ("fence_vmware", Channel::Other),
    ("fence_vmware_soap", Channel::Other),
    ("fence_vmware_rest", Channel::Other),
    ("fence_vmware_vcloud", Channel::Other),
    ("fence_rhevm", Channel::Other),
    ("fence_xenapi", Channel::Other),
    ("fence_vbox", Channel::Other),
    ("fence_pve", Channel::Other),
    ("fence_kubevirt", Channel::Other),
    ("fence_docker", Channel::Other),
    ("fence_skalar", Channel::Other),
    ("fence_ldom", Channel::Other),
    ("fence_lpar", Channel::Other),
    ("fence_ibmz", Channel::Other),
    ("fence_zvmip", Channel::Other),
    ("fence_aws", Channel::Other),
    ("fence_gce", Channel::Other),
    ("fence_azure_arm", Channel::Other),
    ("fence_aliyun", Channel::Other),
    ("fence_ecloud", Channel::Other),
    ("fence_ibm_powervs", Channel::Other),
    ("fence_ibm_vpc", Channel::Other),
    ("fence_openstack", Channel::Other),
    ("fence_ironic", Channel::Other),
    // A power manager daemon in front of PDUs and controllers.
    ("fence_powerman", Channel::Other),
];

/// Agents whose "off" leaves the host running: they cut its storage (SCSI reservations,
/// multipath, Fibre Channel switch ports), its network (a switch port), tell it to kill
/// itself (SBD's poison pill), wait for a crash kernel, take it out of a cloud's scheduler,
/// or reboot it into a rescue system. Their `Status: OFF` is never a power reading.
pub const ISOLATION_AGENTS: &[&str] = &[
    "fence_scsi",
    "fence_mpath",
    "fence_sbd",
    "fence_ifmib",
    "fence_brocade",
    "fence_cisco_mds",
    "fence_sanbox2",
    "fence_kdump",
    "fence_compute",
    "fence_evacuate",
    "fence_ovh",
];

/// Programs shipped as fence agents that fence nothing: a manual acknowledgement, a ping
/// heuristic gating another agent, and a cable check that assumes a host is dead when it
/// does not answer. They are refused outright, whatever the device says.
pub const NOT_FENCING_AGENTS: &[&str] = &[
    "fence_ack_manual",
    "fence_heuristics_ping",
    "fence_crosslink",
];

/// Installed agents deliberately in no table, so treated as isolation unless vouched for:
/// `fence_dummy` (a test agent writing a file) and `fence_rcd_serial` (pulses a reset line;
/// it has no `off` and no `status`).
pub const LEFT_OUT: &[&str] = &["fence_dummy", "fence_rcd_serial"];

/// The device option by which an operator vouches that an agent fencegate does not know
/// switches power (`true`), or says that a known power agent is used for something else
/// (`false`). fencegate consumes it; the agent never sees it.
pub const SWITCHES_POWER_OPTION: &str = "switches_power";

/// What an agent's "off" does, as the adapter treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// It switches power; its `Status:` is a power reading on this kind of channel.
    Power(Channel),
    /// It isolates a host that keeps running; its `Status:` is never read.
    Isolation,
}

/// Classify the agent named `name` (its file name), applying the device's
/// `switches_power` option if given. Refuses agents that fence nothing, and a vouch for an
/// agent known not to switch power.
pub fn agent_kind(name: &str, switches_power: Option<bool>) -> Result<AgentKind, SpecError> {
    if NOT_FENCING_AGENTS.contains(&name) {
        return Err(SpecError::for_key(
            "address",
            format!("`{name}` fences nothing (it acknowledges or guesses); fencegate refuses it"),
        ));
    }
    let listed_power = POWER_AGENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, channel)| *channel);
    let listed_isolation = ISOLATION_AGENTS.contains(&name);
    match (listed_power, listed_isolation, switches_power) {
        (_, _, Some(false)) => Ok(AgentKind::Isolation),
        (Some(channel), _, _) => Ok(AgentKind::Power(channel)),
        (None, true, Some(true)) => Err(SpecError::for_key(
            SWITCHES_POWER_OPTION,
            format!("`{name}` is known to isolate a host, not to switch its power"),
        )),
        (None, true, None) => Ok(AgentKind::Isolation),
        (None, false, Some(true)) => Ok(AgentKind::Power(Channel::Other)),
        (None, false, None) => Ok(AgentKind::Isolation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agent_is_in_one_table_only() {
        let mut seen = std::collections::BTreeSet::new();
        let power = POWER_AGENTS.iter().map(|(n, _)| *n);
        for name in power
            .chain(ISOLATION_AGENTS.iter().copied())
            .chain(NOT_FENCING_AGENTS.iter().copied())
            .chain(LEFT_OUT.iter().copied())
        {
            assert!(name.starts_with("fence_"), "{name}");
            assert!(seen.insert(name), "{name} is listed twice");
        }
    }

    #[test]
    fn power_isolation_and_unknown_agents() {
        assert_eq!(
            agent_kind("fence_ipmilan", None),
            Ok(AgentKind::Power(Channel::Bmc))
        );
        assert_eq!(
            agent_kind("fence_idrac", None),
            Ok(AgentKind::Power(Channel::Bmc))
        );
        assert_eq!(
            agent_kind("fence_apc_snmp", None),
            Ok(AgentKind::Power(Channel::Outlet))
        );
        assert_eq!(
            agent_kind("fence_virsh", None),
            Ok(AgentKind::Power(Channel::Other))
        );
        for isolating in ["fence_scsi", "fence_sbd", "fence_ifmib", "fence_kdump"] {
            assert_eq!(agent_kind(isolating, None), Ok(AgentKind::Isolation));
        }
        assert_eq!(
            agent_kind("fence_vendor_x", None),
            Ok(AgentKind::Isolation),
            "not known to switch power"
        );
        assert_eq!(
            agent_kind("fence_vendor_x", Some(true)),
            Ok(AgentKind::Power(Channel::Other)),
            "the operator vouches"
        );
        assert_eq!(
            agent_kind("fence_ipmilan", Some(false)),
            Ok(AgentKind::Isolation)
        );
        let e = agent_kind("fence_scsi", Some(true)).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(SWITCHES_POWER_OPTION));
        for never in NOT_FENCING_AGENTS {
            let e = agent_kind(never, Some(true)).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("address"));
        }
    }

    #[test]
    fn every_installed_agent_was_decided() {
        // The tables were reviewed against the agents the Debian package installs; an agent
        // added later lands in no table, which is safe (isolation) but worth a look.
        let installed: Vec<String> = std::fs::read_dir("/usr/sbin")
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with("fence_"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            installed.iter().any(|n| n == "fence_ipmilan"),
            "this test reviews the installed agents: install the Debian package `fence-agents`"
        );
        let unknown: Vec<&String> = installed
            .iter()
            .filter(|n| !LEFT_OUT.contains(&n.as_str()))
            .filter(|n| {
                !POWER_AGENTS.iter().any(|(p, _)| p == n)
                    && !ISOLATION_AGENTS.contains(&n.as_str())
                    && !NOT_FENCING_AGENTS.contains(&n.as_str())
            })
            .collect();
        assert!(unknown.is_empty(), "undecided agents: {unknown:?}");
    }
}
