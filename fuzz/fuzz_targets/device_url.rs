//! Device URLs (`--device ipmi://admin@10.0.0.5?cipher=17`): arbitrary text through the real
//! parser, with every built-in driver's secret roles known.
//!
//! Invariants: a URL that parses keeps its text as the device name and its scheme as the
//! driver; a password written into a URL — in the user part or as an option, whatever comes
//! around it — is always refused, and the refusal never shows it.

#![no_main]

use fencegate_core::Registry;
use fencegate_core::device_url::parse_device_url;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

/// A password someone wrote into a URL.
const SECRET: &str = "Qz7urlSecret";

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
    if let Ok(spec) = parse_device_url(text, None, registry()) {
        assert_eq!(spec.name, text);
        assert_eq!(
            Some(spec.driver.as_str()),
            text.split_once("://").map(|(s, _)| s)
        );
    }
    if text.contains(SECRET) {
        return;
    }
    for url in [
        format!("ipmi://admin:{SECRET}@{text}"),
        format!("{text}?password={SECRET}"),
        format!("{text}&password={SECRET}"),
    ] {
        match parse_device_url(&url, None, registry()) {
            Ok(_) => panic!("a password in a URL was accepted: {url:?}"),
            Err(e) => assert!(!e.contains(SECRET), "secret shown: {e:?}"),
        }
    }
});
