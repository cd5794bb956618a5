//! The inventory: arbitrary TOML text through the real parser, with every built-in driver
//! that can be built without side effects (all but `plugin`, whose build loads the library a
//! device names: input must not choose code to run).
//!
//! Invariants: nothing panics; every error can be shown; every host the text declares can be
//! looked up by its name (it is found, or reported broken, never unknown).

#![no_main]

use fencegate_core::{Inventory, LookupError, Registry};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut r = Registry::new();
        r.register(Arc::new(fencegate_ipmi::IpmiFactory));
        r.register(Arc::new(fencegate_external::ExternalFactory));
        r.register(Arc::new(fencegate_external::FenceAgentFactory::default()));
        r.register(Arc::new(fencegate_redfish::RedfishFactory));
        r.register(Arc::new(fencegate_snmp_pdu::SnmpPduFactory));
        r.register(Arc::new(fencegate_ssh::SshFactory));
        r
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: relative secret files and programs resolve nowhere.
    let path = Path::new("/nonexistent-fencegate-fuzz/fencegate.toml");
    let inventory = match Inventory::parse(text, path, registry()) {
        Ok(inventory) => inventory,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for problem in inventory.problems() {
        let _ = problem.to_string();
    }
    let declared = toml::from_str::<toml::Table>(text).expect("an accepted inventory is TOML");
    if let Some(hosts) = declared.get("hosts").and_then(toml::Value::as_table) {
        for name in hosts.keys() {
            match inventory.host(name) {
                Ok(_) | Err(LookupError::Broken(..)) => {}
                Err(e @ LookupError::Unknown(..)) => panic!("declared host lost: {e}"),
            }
        }
    }
});
