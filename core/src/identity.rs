//! Which box answered: pins, placeholders and the key of a target.
//!
//! An address is not a box. A UDP relay, a re-addressed BMC or a copied configuration can put
//! another machine behind the address a device names, and the fleet-wide password lets it
//! answer. So the engine compares the identity the endpoint *proved* (an IPMI GUID inside
//! RAKP 2's HMAC, an SNMPv3 engine ID from an authenticated message, a Redfish UUID over
//! verified TLS) with what the operator pinned, or else with what the journal remembered at
//! first contact, before any command is sent. This module holds the pure rules; the engine
//! applies them and the journal stores what was seen.

use fencegate_driver::{DeviceSpec, IdentityFact, SpecError};
use sha2::{Digest, Sha256};

/// Device options that pin an identity. Each matches the authenticated facts whose kind ends
/// in `-<name>` (`_` written as `-`), so `guid` pins `ipmi-guid` and `serial` pins
/// `redfish-serial` or a plugin's `acme-serial`. The core takes them off the device's options
/// before the driver is built: pinning is the engine's check, not the driver's.
pub const PIN_OPTIONS: &[&str] = &["guid", "engine_id", "uuid", "serial"];

/// An identity the operator wrote down for a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pin {
    /// The option name (`guid`, `engine_id`, `uuid`, `serial`).
    pub option: String,
    /// The value, normalized (see [`normalize`]).
    pub value: String,
}

impl Pin {
    /// Whether `fact` is of the kind this pin speaks about.
    pub fn covers(&self, fact: &IdentityFact) -> bool {
        fact.kind
            .ends_with(&format!("-{}", self.option.replace('_', "-")))
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = \"{}\"", self.option, self.value)
    }
}

/// Take the pin options off `spec` (so the driver never sees them) and check them: a
/// placeholder is never accepted as a pin.
pub fn take_pins(spec: &mut DeviceSpec) -> Result<Vec<Pin>, SpecError> {
    let mut pins = Vec::new();
    for option in PIN_OPTIONS {
        if let Some(raw) = spec.options.remove(*option) {
            let value = normalize(&raw);
            if value.is_empty() {
                return Err(SpecError::for_key(
                    *option,
                    "an identity pin must not be empty",
                ));
            }
            if let Some(why) = placeholder(&value) {
                return Err(SpecError::for_key(
                    *option,
                    format!(
                        "{raw:?} is a placeholder ({why}), not an identity: many boxes present it, so it cannot tell them apart"
                    ),
                ));
            }
            pins.push(Pin {
                option: (*option).to_owned(),
                value,
            });
        }
    }
    Ok(pins)
}

/// The form in which identity values are compared: lower case, without the separators
/// vendors print differently (`-`, `:`, spaces) around hex digits. Text that is not hex
/// (a serial number) is only trimmed and lower-cased.
pub fn normalize(raw: &str) -> String {
    let trimmed = raw.trim();
    // Engine IDs are often written `0x8000…`.
    let bare = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let stripped: String = bare
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | ' '))
        .collect();
    if !stripped.is_empty() && stripped.chars().all(|c| c.is_ascii_hexdigit()) {
        stripped.to_ascii_lowercase()
    } else {
        trimmed.to_lowercase()
    }
}

/// Values BMCs and boards present when nobody set a real one. Compared after [`normalize`].
const PLACEHOLDER_TEXTS: &[&str] = &[
    "to be filled by o.e.m.",
    "to be filled by oem",
    "default string",
    "system serial number",
    "system product name",
    "not specified",
    "not applicable",
    "none",
    "n/a",
    "na",
    "0",
    "0123456789",
    "123456789",
    "1234567890",
    "serial",
    "chassis serial number",
    "invalid",
    "unknown",
];

/// UUIDs shipped by many boards' firmware unchanged (normalized hex).
const PLACEHOLDER_UUIDS: &[&str] = &[
    // The AMI/Intel reference-BIOS default, seen on thousands of white-box servers.
    "03000200040005000006000700080009",
    "00020003000400050006000700080009",
    "12345678123412341234123456789abc",
];

/// Why `value` (normalized) is a placeholder rather than an identity, if it is one.
pub fn placeholder(value: &str) -> Option<&'static str> {
    let v = normalize(value);
    if v.is_empty() {
        return Some("blank");
    }
    if v.chars().all(|c| c == '0') {
        return Some("all zeros");
    }
    if PLACEHOLDER_TEXTS.contains(&v.as_str()) {
        return Some("a vendor default text");
    }
    if PLACEHOLDER_UUIDS.contains(&v.as_str()) {
        return Some("a firmware default UUID shared by many boards");
    }
    let hex = v.len() >= 8 && v.chars().all(|c| c.is_ascii_hexdigit());
    if hex {
        if v.chars().all(|c| c == '0') {
            return Some("all zeros");
        }
        if v.chars().all(|c| c == 'f') {
            return Some("all ones");
        }
        // One byte (or one pair) repeated: `a5a5a5…`, `0101…`.
        let bytes = v.as_bytes();
        if bytes.len().is_multiple_of(2) && bytes.chunks(2).all(|b| b == &bytes[..2]) {
            return Some("one byte repeated");
        }
    }
    None
}

/// Whether a fact of this kind names one box (a GUID, an engine ID, a UUID, a serial: the
/// kinds pins speak about) rather than describing it (a model's sysObjectID, a sysName, a
/// certificate that may be rotated). Only these are compared, remembered and locked: two
/// PDUs of one model share a sysObjectID and are still two boxes.
pub fn identifying(kind: &str) -> bool {
    PIN_OPTIONS
        .iter()
        .any(|o| kind.ends_with(&format!("-{}", o.replace('_', "-"))))
}

/// The authenticated facts of `facts` that identify a box (placeholders and descriptive
/// kinds left out).
pub fn usable(facts: &[IdentityFact]) -> Vec<IdentityFact> {
    let mut out: Vec<IdentityFact> = facts
        .iter()
        .filter(|f| f.authenticated && identifying(&f.kind) && placeholder(&f.value).is_none())
        .map(|f| IdentityFact {
            value: normalize(&f.value),
            ..f.clone()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Authenticated facts that are placeholders: flagged, never trusted.
pub fn placeholders(facts: &[IdentityFact]) -> Vec<(IdentityFact, &'static str)> {
    facts
        .iter()
        .filter(|f| f.authenticated)
        .filter_map(|f| placeholder(&f.value).map(|why| (f.clone(), why)))
        .collect()
}

/// How the facts an endpoint presented compare with its pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// Every pin is matched by an authenticated fact.
    Matches,
    /// A pin is not matched: why, in one sentence.
    Mismatch(String),
}

/// Compare `facts` with `pins`: each pin needs an authenticated fact of its kind with its
/// value, and no authenticated fact of its kind with another value.
pub fn check_pins(pins: &[Pin], facts: &[IdentityFact]) -> PinCheck {
    for pin in pins {
        let seen: Vec<&IdentityFact> = facts
            .iter()
            .filter(|f| f.authenticated && pin.covers(f))
            .collect();
        if seen.is_empty() {
            return PinCheck::Mismatch(format!(
                "pinned {pin}, but the endpoint presented no authenticated {}",
                pin.option
            ));
        }
        if let Some(other) = seen.iter().find(|f| normalize(&f.value) != pin.value) {
            return PinCheck::Mismatch(format!(
                "pinned {pin}, but the endpoint proved {} = \"{}\": another box answers at this address",
                other.kind,
                normalize(&other.value)
            ));
        }
    }
    PinCheck::Matches
}

/// Whether `seen` is the same box as `known` (both normalized by [`usable`]): every
/// remembered fact must be presented again with the same value. A fact the endpoint
/// presents in addition is no change (a driver may learn more facts than it used to).
pub fn same_box(known: &[IdentityFact], seen: &[IdentityFact]) -> bool {
    known
        .iter()
        .all(|k| seen.iter().any(|s| s.kind == k.kind && s.value == k.value))
}

/// Facts as one line (`ipmi-guid=…, snmp-engine-id=…`) for messages and the journal.
pub fn describe(facts: &[IdentityFact]) -> String {
    if facts.is_empty() {
        return "none".to_owned();
    }
    facts
        .iter()
        .map(|f| format!("{}={}", f.kind, f.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stable key of what a device reaches: driver, address, path, user and every
/// non-secret option (outlets, profile, system), plus its pins. Two devices with the same
/// key reach the same thing whatever they are called. Secrets are left out: they say who
/// asks, not what is reached.
pub fn device_key(spec: &DeviceSpec, pins: &[Pin]) -> String {
    let mut key = Key::default();
    key.part(&spec.driver)
        .part(&spec.address)
        .part(spec.path.as_deref().unwrap_or(""))
        .part(spec.user.as_deref().unwrap_or(""));
    for (k, v) in &spec.options {
        key.part(k).part(v);
    }
    key.part("pins");
    for pin in pins {
        key.part(&pin.option).part(&pin.value);
    }
    key.0
}

/// A key built from parts that cannot run into each other: each part is written with its
/// length, so no value containing a separator can make two different sets of parts equal.
#[derive(Debug, Default)]
pub struct Key(pub String);

impl Key {
    /// Append one part.
    pub fn part(&mut self, text: &str) -> &mut Self {
        self.0.push_str(&format!("{}:{text};", text.len()));
        self
    }
}

/// A short, stable digest (hex SHA-256, 16 bytes) of `text`, for keys stored and compared
/// across processes.
pub fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(options: &[(&str, &str)]) -> DeviceSpec {
        DeviceSpec {
            name: "d".into(),
            driver: "ipmi".into(),
            address: "127.0.0.1:623".into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..DeviceSpec::default()
        }
    }

    #[test]
    fn pins_leave_the_driver_options_and_match_by_kind_suffix() {
        let mut s = spec(&[
            ("guid", "A1B2-C3D4-0011-2233-4455-6677-8899-AABB"),
            ("cipher", "17"),
        ]);
        let pins = take_pins(&mut s).unwrap();
        assert_eq!(s.options.keys().collect::<Vec<_>>(), ["cipher"]);
        assert_eq!(pins[0].value, "a1b2c3d400112233445566778899aabb");
        assert_eq!(
            normalize("0x80001F8803AABB"),
            normalize("80:00:1f:88:03:aa:bb")
        );
        let good = IdentityFact::authenticated("ipmi-guid", "a1b2c3d400112233445566778899aabb");
        assert_eq!(check_pins(&pins, &[good]), PinCheck::Matches);
    }

    #[test]
    fn a_pin_is_not_satisfied_by_an_unauthenticated_or_different_fact() {
        let pins = vec![Pin {
            option: "guid".into(),
            value: "a1b2c3d400112233445566778899aabb".into(),
        }];
        let forged = IdentityFact::new("ipmi-guid", "a1b2c3d400112233445566778899aabb");
        assert!(
            matches!(check_pins(&pins, &[forged]), PinCheck::Mismatch(m) if m.contains("no authenticated guid"))
        );
        let sibling = IdentityFact::authenticated("ipmi-guid", "ffee0000000000000000000000000001");
        assert!(
            matches!(check_pins(&pins, &[sibling]), PinCheck::Mismatch(m) if m.contains("another box"))
        );
    }

    #[test]
    fn placeholders_are_never_pins_and_never_usable() {
        for raw in [
            "00000000-0000-0000-0000-000000000000",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            "03000200-0400-0500-0006-000700080009",
            "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5",
            "To be filled by O.E.M.",
            "Default string",
        ] {
            assert!(placeholder(raw).is_some(), "{raw}");
            let mut s = spec(&[("uuid", raw)]);
            assert!(take_pins(&mut s).is_err(), "{raw} must be refused as a pin");
            assert!(usable(&[IdentityFact::authenticated("redfish-uuid", raw)]).is_empty());
        }
        assert!(placeholder("4c4c4544-0042-3510-8052-b4c04f4e3232").is_none());
        assert!(placeholder("CZ3401ABCD").is_none());
    }

    #[test]
    fn the_same_box_presents_every_remembered_fact_again() {
        let guid = IdentityFact::authenticated("ipmi-guid", "aa01");
        let other = IdentityFact::authenticated("ipmi-guid", "bb02");
        let extra = IdentityFact::authenticated("ipmi-serial", "x");
        assert!(same_box(
            std::slice::from_ref(&guid),
            &[guid.clone(), extra]
        ));
        assert!(!same_box(std::slice::from_ref(&guid), &[other]));
        assert!(
            !same_box(&[guid], &[]),
            "an endpoint that stops presenting its identity changed"
        );
        assert!(same_box(&[], &[]));
    }

    #[test]
    fn device_keys_ignore_the_name_and_secrets_but_not_the_outlet() {
        let mut a = spec(&[("outlets", "4")]);
        a.name = "pdu-a-4".into();
        let mut b = a.clone();
        b.name = "some-other-name".into();
        b.secrets.insert("password".into(), "x".to_owned().into());
        assert_eq!(device_key(&a, &[]), device_key(&b, &[]));
        let c = spec(&[("outlets", "5")]);
        assert_ne!(device_key(&a, &[]), device_key(&c, &[]));
        assert_eq!(digest("x").len(), 32);
    }
}
