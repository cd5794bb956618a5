//! Third-party emulators for the fence-agent interop tests: OpenIPMI `ipmi_sim` and net-snmp
//! `snmpd` with the APC pass_persist table, each from `hw-fixtures/` in a temporary directory
//! on a loopback UDP port (started by the test kit, which checks the emulator itself holds
//! the port), killed when dropped.

use fencegate_test_kit::tools;
use std::fs;

pub use fencegate_test_kit::ipmi_sim::IpmiSim;
pub use fencegate_test_kit::snmpd::ApcPdu;

/// OpenIPMI `ipmi_sim` as one BMC (users admin/password), power in `power.0x20`. The fence
/// agent drives it through ipmitool, so that must be there too.
pub fn ipmi_sim() -> IpmiSim {
    tools::require("ipmitool");
    IpmiSim::start()
}

/// The BMC's power as the emulator holds it: `1` on, `0` off (on before the first set).
pub fn ipmi_power(sim: &IpmiSim) -> String {
    sim.power()
}

/// net-snmp `snmpd` serving the APC outlet table (the test kit's fixture); v3 user
/// fenceuser/authpass123/privpass123. The fence agent runs net-snmp's `snmpget` and
/// `snmpset`, so those must be there too.
pub fn snmpd_apc() -> ApcPdu {
    tools::require("snmpget");
    ApcPdu::start()
}

/// Outlet `n`'s state as the emulator holds it: 1 on, 2 off.
pub fn apc_outlet(pdu: &ApcPdu, n: u32) -> u64 {
    let text = fs::read_to_string(pdu.state_file()).expect("apc_state.json");
    let state: serde_json::Value = serde_json::from_str(&text).expect("apc_state.json is JSON");
    state["outlets"][n.to_string()]["state"]
        .as_u64()
        .expect("outlet state")
}
