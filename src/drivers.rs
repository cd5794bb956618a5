//! The drivers built into this binary, registered by name. This is the only place that
//! names driver crates: the engine knows drivers through the contract alone.

use fencegate_core::Registry;
use std::sync::Arc;

/// Register every built-in driver.
pub fn register_builtin(registry: &mut Registry) {
    registry.register(Arc::new(fencegate_ipmi::IpmiFactory));
    registry.register(Arc::new(fencegate_external::ExternalFactory));
    registry.register(Arc::new(fencegate_external::FenceAgentFactory::default()));
    registry.register(Arc::new(fencegate_plugin::PluginFactory));
    registry.register(Arc::new(fencegate_redfish::RedfishFactory));
    registry.register(Arc::new(fencegate_snmp_pdu::SnmpPduFactory));
    registry.register(Arc::new(fencegate_ssh::SshFactory));
}
