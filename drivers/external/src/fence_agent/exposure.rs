//! Stock agents that copy their secrets onto a helper's command line, and the built-in
//! driver that does the same job.
//!
//! fencegate hands an agent its secrets on stdin, but what the agent does next is its own
//! business: `fence_ipmilan` (and its vendor aliases) runs `ipmitool -P PASSWORD`, and the
//! SNMP agents run `snmpwalk`/`snmpget`/`snmpset` with `-c COMMUNITY`, `-A AUTH -X PRIV`.
//! Command lines are readable by every local user (`ps`, `/proc/PID/cmdline`) while the
//! helper runs. That cannot be fixed from outside the agent, so it is said out loud: this
//! table is the data `fencegate check` prints a warning from, per device.

/// What one stock agent exposes, and what to use instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentAdvice {
    /// The agent's file name.
    pub agent: &'static str,
    /// The helper whose command line receives the agent's secrets, if any.
    pub argv_helper: Option<&'static str>,
    /// The built-in fencegate driver that does the same job without a helper, if any.
    pub builtin: Option<&'static str>,
}

const IPMITOOL: Option<&str> = Some("ipmitool -P");
const NET_SNMP: Option<&str> = Some("snmpwalk/snmpget/snmpset -c/-A/-X");

/// The agents with something to say, reviewed against fence-agents 4.12: the `ipmitool`
/// family, every agent built on its SNMP library, and `fence_redfish` (no helper, but a
/// built-in driver with verified TLS and an authenticated identity exists).
pub const AGENT_ADVICE: &[AgentAdvice] = &[
    advice("fence_ipmilan", IPMITOOL, Some("ipmi")),
    advice("fence_ipmilanplus", IPMITOOL, Some("ipmi")),
    advice("fence_idrac", IPMITOOL, Some("ipmi")),
    advice("fence_ilo3", IPMITOOL, Some("ipmi")),
    advice("fence_ilo4", IPMITOOL, Some("ipmi")),
    advice("fence_ilo5", IPMITOOL, Some("ipmi")),
    advice("fence_imm", IPMITOOL, Some("ipmi")),
    advice("fence_apc_snmp", NET_SNMP, Some("snmp")),
    advice("fence_eaton_snmp", NET_SNMP, Some("snmp")),
    advice("fence_emerson", NET_SNMP, Some("snmp")),
    advice("fence_ipdu", NET_SNMP, Some("snmp")),
    advice("fence_lindypdu", NET_SNMP, Some("snmp")),
    advice("fence_tripplite_snmp", NET_SNMP, Some("snmp")),
    advice("fence_ibmblade", NET_SNMP, None),
    advice("fence_intelmodular", NET_SNMP, None),
    advice("fence_cisco_mds", NET_SNMP, None),
    advice("fence_ifmib", NET_SNMP, None),
    advice("fence_redfish", None, Some("redfish")),
];

const fn advice(
    agent: &'static str,
    argv_helper: Option<&'static str>,
    builtin: Option<&'static str>,
) -> AgentAdvice {
    AgentAdvice {
        agent,
        argv_helper,
        builtin,
    }
}

/// The advice for a `fence-agent` device's `address` (an agent name or a path to one).
pub fn agent_advice(address: &str) -> Option<&'static AgentAdvice> {
    let name = address.trim().rsplit('/').next().unwrap_or_default();
    AGENT_ADVICE.iter().find(|a| a.agent == name)
}

impl AgentAdvice {
    /// The one-line warning for a device using this agent, as `fencegate check` prints it.
    pub fn warning(&self) -> String {
        let instead = self.builtin.map(|b| {
            format!("the built-in `{b}` driver does the same job without a helper program")
        });
        match (self.argv_helper, instead) {
            (Some(helper), Some(instead)) => format!(
                "{} passes its secrets to `{helper}` on the command line, readable by every \
                 local user (ps, /proc); {instead}",
                self.agent
            ),
            (Some(helper), None) => format!(
                "{} passes its secrets to `{helper}` on the command line, readable by every \
                 local user (ps, /proc); keep fencegate's host free of other users",
                self.agent
            ),
            (None, Some(instead)) => format!("{}: {instead}", self.agent),
            (None, None) => format!("{}: nothing to say", self.agent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_exposing_agents_say_so_and_name_the_builtin() {
        let w = agent_advice("/usr/sbin/fence_ipmilan").unwrap().warning();
        assert!(w.contains("ipmitool -P"), "{w}");
        assert!(w.contains("built-in `ipmi`"), "{w}");
        for alias in [
            "fence_idrac",
            "fence_ilo4",
            "fence_imm",
            "fence_ipmilanplus",
        ] {
            assert_eq!(agent_advice(alias).unwrap().builtin, Some("ipmi"));
        }
        let w = agent_advice("fence_apc_snmp").unwrap().warning();
        assert!(w.contains("-c/-A/-X"), "{w}");
        assert!(w.contains("built-in `snmp`"), "{w}");
        let w = agent_advice("fence_redfish").unwrap().warning();
        assert!(w.contains("built-in `redfish`"), "{w}");
        assert!(!w.contains("command line"), "{w}");
        assert_eq!(agent_advice("fence_virsh"), None);
    }

    #[test]
    fn the_table_names_only_known_power_or_isolation_agents() {
        use super::super::kinds::{ISOLATION_AGENTS, POWER_AGENTS};
        for a in AGENT_ADVICE {
            assert!(
                POWER_AGENTS.iter().any(|(n, _)| *n == a.agent)
                    || ISOLATION_AGENTS.contains(&a.agent),
                "{}",
                a.agent
            );
        }
    }
}
