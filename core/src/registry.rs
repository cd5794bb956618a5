//! The driver registry: which driver names this build can instantiate.
//!
//! The engine never names a driver crate. Front doors register the factories they were built
//! with; a device naming a known but absent driver gets a clear "not built" error instead of
//! a confusing "unknown driver".

use fencegate_driver::{DeviceSpec, DriverFactory, PowerDriver, SpecError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Driver names fencegate knows of, whether or not this build includes them.
pub const KNOWN_DRIVERS: &[(&str, &str)] = &[
    ("ipmi", "IPMI 2.0 lanplus (RMCP+) BMCs"),
    ("redfish", "Redfish BMCs over HTTPS"),
    ("snmp", "PDU outlets over SNMP v1/v2c/v3"),
    (
        "ssh",
        "in-band `poweroff -f` over SSH (cannot prove power-off)",
    ),
    (
        "external",
        "out-of-process drivers speaking the JSON-lines protocol",
    ),
    ("fence-agent", "stock fence-agents `fence_*` programs"),
    ("plugin", "dynamic-library plugins (C ABI)"),
];

/// The set of driver factories available to the engine.
#[derive(Default, Clone)]
pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn DriverFactory>>,
}

/// Names the registered drivers only: a factory is code, not data worth printing.
impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.factories.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a factory under its own name (a later one with the same name replaces it).
    pub fn register(&mut self, factory: Arc<dyn DriverFactory>) {
        self.factories.insert(factory.name(), factory);
    }

    /// The registered driver names with their one-line summaries.
    pub fn drivers(&self) -> Vec<(&'static str, &'static str)> {
        self.factories
            .values()
            .map(|f| (f.name(), f.summary()))
            .collect()
    }

    /// The secret roles the named driver takes ([`DriverFactory::secret_roles`]); none for
    /// a driver this build does not have.
    pub fn secret_roles(&self, driver: &str) -> &'static [&'static str] {
        self.factories
            .get(driver)
            .map(|f| f.secret_roles())
            .unwrap_or(&[])
    }

    /// Build a driver for `spec`, or say why not.
    pub fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
        match self.factories.get(spec.driver.as_str()) {
            Some(f) => f.build(spec),
            None if KNOWN_DRIVERS.iter().any(|(n, _)| *n == spec.driver) => {
                Err(SpecError::for_key(
                    "driver",
                    format!(
                        "the `{}` driver is not built into this fencegate (built in: {})",
                        spec.driver,
                        self.names()
                    ),
                ))
            }
            None => Err(SpecError::for_key(
                "driver",
                format!(
                    "unknown driver `{}` (built in: {})",
                    spec.driver,
                    self.names()
                ),
            )),
        }
    }

    fn names(&self) -> String {
        if self.factories.is_empty() {
            "none".into()
        } else {
            self.factories
                .keys()
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_drivers_are_named_as_such() {
        let registry = Registry::new();
        let spec = |driver: &str| DeviceSpec {
            name: "d".into(),
            driver: driver.into(),
            address: "127.0.0.1".into(),
            ..DeviceSpec::default()
        };
        let e = registry.build(&spec("redfish")).err().unwrap();
        assert_eq!(e.key.as_deref(), Some("driver"));
        assert!(e.message.contains("not built into this fencegate"), "{e}");
        let e = registry.build(&spec("warp")).err().unwrap();
        assert!(e.message.starts_with("unknown driver `warp`"), "{e}");
    }

    #[test]
    fn debug_names_the_drivers_only() {
        struct Warp;
        impl DriverFactory for Warp {
            fn name(&self) -> &'static str {
                "warp"
            }
            fn summary(&self) -> &'static str {
                "a factory that builds nothing"
            }
            fn build(&self, _: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
                Err(SpecError::new("builds nothing"))
            }
        }
        let mut registry = Registry::new();
        registry.register(Arc::new(Warp));
        assert_eq!(format!("{registry:?}"), r#"{"warp"}"#);
    }
}
