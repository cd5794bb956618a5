//! Protocol v1 between fencegate and an out-of-process driver: JSON messages, one per line.
//!
//! Sans-IO: this module turns messages into lines and lines into messages, and decides
//! whether two hellos are compatible. Spawning, pipes and deadlines live in
//! the session module. The wire format is specified in `docs/external-protocol.md`.

use fencegate_driver::{
    Action, Channel, DriverError, ErrorKind, IdentityFact, PowerState, Redactor,
};
use secrecy::zeroize::Zeroizing;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The protocol name both hellos carry, so that a program speaking something else entirely
/// is refused before it is sent a secret.
pub const PROTOCOL_NAME: &str = "fencegate-driver";

/// The protocol version fencegate speaks. Compatible peers share the major version.
/// 1.1 added the optional hello fields `channel` and `authenticated_identity` and the
/// identity fact field `authenticated`; a 1.0 peer simply omits them.
pub const PROTOCOL_VERSION: Version = Version { major: 1, minor: 1 };

/// Optional capabilities fencegate offers in its hello. `identity`: responses may carry
/// identity facts about the endpoint, recorded as evidence.
pub const HOST_FEATURES: &[&str] = &["identity"];

/// A `major.minor` protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Changes when an old peer could misread a new one.
    pub major: u32,
    /// Changes when something optional is added.
    pub minor: u32,
}

impl Version {
    /// Parse `major.minor` (a trailing `.patch` is tolerated and ignored).
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        match (parts.next(), parts.next()) {
            (None, _) => {}
            (Some(patch), None) if patch.parse::<u32>().is_ok() => {}
            _ => return None,
        }
        Some(Version { major, minor })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The first line fencegate writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostHello {
    /// Always [`PROTOCOL_NAME`].
    pub protocol: String,
    /// Always [`PROTOCOL_VERSION`].
    pub version: String,
    /// Always [`HOST_FEATURES`].
    pub features: Vec<String>,
}

impl Default for HostHello {
    fn default() -> Self {
        HostHello {
            protocol: PROTOCOL_NAME.to_owned(),
            version: PROTOCOL_VERSION.to_string(),
            features: HOST_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

/// The first line a driver writes: who it is and what it can do.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct DriverHello {
    /// Must be [`PROTOCOL_NAME`].
    pub protocol: String,
    /// The protocol version the driver speaks, `major.minor`.
    pub version: String,
    /// The driver's own name, for messages and evidence.
    pub name: String,
    /// The driver's own version, for evidence.
    #[serde(default)]
    pub driver_version: Option<String>,
    /// The actions it supports, by their contract names (`off`, `on`, `cycle`,
    /// `graceful_off`). Names this fencegate does not know are ignored.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Whether it can read power state. A driver that cannot never produces proof.
    pub reads_power_state: bool,
    /// Optional capabilities the driver offers.
    #[serde(default)]
    pub features: Vec<String>,
    /// What kind of channel the driver switches (`bmc`, `outlet`, `in-band`, `isolation`,
    /// `other`), since 1.1. Absent means `other`; a word this fencegate does not know does
    /// not decode, because guessing could turn an isolation channel into a power channel.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// Whether the driver's identity facts include ones the endpoint proved with the
    /// credentials (since 1.1; absent means no). Without it, nothing can be pinned.
    #[serde(default)]
    pub authenticated_identity: bool,
}

impl DriverHello {
    /// The declared channel, `other` when the driver (a 1.0 peer) did not say.
    pub fn channel(&self) -> Channel {
        self.channel.unwrap_or_default()
    }

    /// The supported actions this fencegate understands, in the contract's order.
    pub fn known_actions(&self) -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|a| self.actions.iter().any(|n| n == a.as_str()))
            .collect()
    }

    /// Refuse a hello from another protocol or another major version, or one that
    /// contradicts itself, before any secret is sent. The error is [`ErrorKind::Protocol`]
    /// for a different protocol or a contradiction and [`ErrorKind::Unsupported`] for an
    /// incompatible version.
    pub fn check_compatible(&self) -> Result<Version, DriverError> {
        if self.protocol != PROTOCOL_NAME {
            return Err(DriverError::protocol(format!(
                "hello is for protocol {:?}, expected {PROTOCOL_NAME:?}",
                Redactor::default().clip(&self.protocol, MAX_QUOTE)
            )));
        }
        let version = Version::parse(&self.version).ok_or_else(|| {
            DriverError::protocol(format!(
                "hello has a malformed version {:?} (expected major.minor)",
                Redactor::default().clip(&self.version, MAX_QUOTE)
            ))
        })?;
        if version.major != PROTOCOL_VERSION.major {
            return Err(DriverError::unsupported(format!(
                "hello is for protocol version {version}, fencegate speaks {PROTOCOL_VERSION} \
                 (the major versions must match)"
            )));
        }
        if self.channel() == Channel::Isolation && self.reads_power_state {
            return Err(DriverError::protocol(
                "hello declares an isolation channel that reads power state: what an \
                 isolation channel reads is never a power reading",
            ));
        }
        Ok(version)
    }
}

/// The device as the driver receives it in `configure`: secrets included, which is why this
/// only ever travels over the driver's stdin pipe.
#[derive(Serialize)]
pub struct WireDevice<'a> {
    /// The device's inventory name.
    pub name: &'a str,
    /// The device address the driver should talk to, if configured (`target` option).
    pub address: Option<&'a str>,
    /// The user name, if any.
    pub user: Option<&'a str>,
    /// The path part of a device URL, if any.
    pub path: Option<&'a str>,
    /// The driver-specific options (fencegate's own options removed).
    pub options: BTreeMap<&'a str, &'a str>,
    /// The secrets by role, in clear: the one place they leave fencegate.
    pub secrets: BTreeMap<&'a str, &'a str>,
}

/// What fencegate asks in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read the power state.
    Status,
    /// Perform an action.
    SetPower(Action),
}

/// Messages fencegate writes after its hello.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum HostMessage<'a> {
    Hello(&'a HostHello),
    Configure {
        id: u64,
        device: &'a WireDevice<'a>,
    },
    Request {
        id: u64,
        op: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        action: Option<Action>,
        deadline_ms: u64,
    },
    Shutdown,
}

fn line_of(message: &HostMessage<'_>) -> Zeroizing<Vec<u8>> {
    // Serializing plain structs of strings and integers into memory cannot fail.
    let mut line = Zeroizing::new(serde_json::to_vec(message).unwrap_or_default());
    line.push(b'\n');
    line
}

/// The hello line fencegate sends first.
pub fn encode_hello(hello: &HostHello) -> Zeroizing<Vec<u8>> {
    line_of(&HostMessage::Hello(hello))
}

/// The configure line. It holds secrets, so it is wiped from memory when dropped.
pub fn encode_configure(id: u64, device: &WireDevice<'_>) -> Zeroizing<Vec<u8>> {
    line_of(&HostMessage::Configure { id, device })
}

/// A request line; `deadline_ms` is the time left, relative, so no clocks need agree.
pub fn encode_request(id: u64, op: Op, deadline_ms: u64) -> Zeroizing<Vec<u8>> {
    let (op, action) = match op {
        Op::Status => ("status", None),
        Op::SetPower(action) => ("set_power", Some(action)),
    };
    line_of(&HostMessage::Request {
        id,
        op,
        action,
        deadline_ms,
    })
}

/// The polite goodbye sent before closing the driver's stdin.
pub fn encode_shutdown() -> Zeroizing<Vec<u8>> {
    line_of(&HostMessage::Shutdown)
}

/// A failure as a driver reports it, with the contract's error kind names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WireError {
    /// One of the contract's kebab-case [`ErrorKind`] names.
    pub kind: ErrorKind,
    /// The driver's own words.
    #[serde(default)]
    pub detail: String,
}

/// A driver's answer to `configure` or a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Response {
    /// The id of the message answered.
    pub id: u64,
    /// Whether it succeeded.
    pub ok: bool,
    /// The reading, for a successful `status`, in the contract's serde form (`"Off"`,
    /// `{"Unknown":"…"}`). There is deliberately no way to say "fenced".
    #[serde(default)]
    pub state: Option<PowerState>,
    /// The device's words about an accepted command.
    #[serde(default)]
    pub detail: Option<String>,
    /// The failure, when `ok` is false.
    #[serde(default)]
    pub error: Option<WireError>,
    /// Facts identifying the endpoint that answered (feature `identity`). A fact's
    /// `authenticated` (since 1.1) is absent, and so false, unless the driver says so.
    #[serde(default)]
    pub identity: Vec<IdentityFact>,
}

/// Any line a driver may write. Unknown message types are ignored, so later minor versions
/// can add messages (progress, logs) without breaking this fencegate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DriverMessage {
    /// The driver's hello.
    Hello(DriverHello),
    /// An answer.
    Response(Response),
    /// A message type this version does not know.
    #[serde(other)]
    Other,
}

/// Decode one line from a driver. The error names what was wrong without echoing the line,
/// which may contain anything the driver chose to print.
pub fn decode(line: &[u8]) -> Result<DriverMessage, String> {
    serde_json::from_slice(line).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("not a JSON message ({} bytes)", line.len())
        } else {
            format!("malformed message: {e}")
        }
    })
}

/// How many bytes of a driver-supplied string an error message or reading quotes. Every cut
/// goes through [`fencegate_driver::Redactor::clip`], which masks secrets before cutting.
pub(crate) const MAX_QUOTE: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(line: &[u8]) -> Value {
        assert_eq!(line.last(), Some(&b'\n'), "every message ends its line");
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        serde_json::from_slice(line).expect("valid JSON")
    }

    #[test]
    fn host_hello_wire_form() {
        let v = parse(&encode_hello(&HostHello::default()));
        assert_eq!(
            v,
            json!({"type":"hello","protocol":"fencegate-driver","version":"1.1","features":["identity"]})
        );
    }

    #[test]
    fn request_wire_forms() {
        assert_eq!(
            parse(&encode_request(7, Op::Status, 1500)),
            json!({"type":"request","id":7,"op":"status","deadline_ms":1500})
        );
        assert_eq!(
            parse(&encode_request(8, Op::SetPower(Action::Off), 900)),
            json!({"type":"request","id":8,"op":"set_power","action":"off","deadline_ms":900})
        );
        assert_eq!(
            parse(&encode_request(9, Op::SetPower(Action::GracefulOff), 1))["action"],
            json!("graceful_off")
        );
        assert_eq!(parse(&encode_shutdown()), json!({"type":"shutdown"}));
    }

    #[test]
    fn configure_carries_the_device() {
        let device = WireDevice {
            name: "pdu1",
            address: Some("10.0.0.9"),
            user: None,
            path: None,
            options: BTreeMap::from([("outlet", "3")]),
            secrets: BTreeMap::from([("password", "s3cret")]),
        };
        let v = parse(&encode_configure(0, &device));
        assert_eq!(
            v,
            json!({"type":"configure","id":0,"device":{"name":"pdu1","address":"10.0.0.9",
                "user":null,"path":null,"options":{"outlet":"3"},"secrets":{"password":"s3cret"}}})
        );
    }

    #[test]
    fn responses_decode_with_contract_names_and_ignore_unknown_fields() {
        let ok = decode(br#"{"type":"response","id":3,"ok":true,"state":"Off","extra":[1,2]}"#);
        match ok {
            Ok(DriverMessage::Response(r)) => {
                assert_eq!((r.id, r.ok, r.state), (3, true, Some(PowerState::Off)));
            }
            other => panic!("unexpected {other:?}"),
        }
        let unknown = decode(br#"{"type":"response","id":1,"ok":true,"state":{"Unknown":"S5?"}}"#);
        assert!(matches!(
            unknown,
            Ok(DriverMessage::Response(Response {
                state: Some(PowerState::Unknown(_)),
                ..
            }))
        ));
        let err = decode(
            br#"{"type":"response","id":4,"ok":false,"error":{"kind":"state-conflict","detail":"already off"}}"#,
        );
        match err {
            Ok(DriverMessage::Response(r)) => {
                let e = r.error.expect("error present");
                assert_eq!(e.kind, ErrorKind::StateConflict);
                assert_eq!(e.detail, "already off");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_driver_cannot_invent_states_or_kinds() {
        for line in [
            &br#"{"type":"response","id":1,"ok":true,"state":"Fenced"}"#[..],
            br#"{"type":"response","id":1,"ok":true,"state":"off"}"#,
            br#"{"type":"response","id":1,"ok":false,"error":{"kind":"fenced"}}"#,
            br#"{"type":"response","ok":true}"#,
        ] {
            let r = decode(line);
            assert!(
                r.is_err(),
                "{} must be refused",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn garbage_is_described_not_echoed() {
        let e = decode(b"password=hunter2 oops").unwrap_err();
        assert!(e.starts_with("not a JSON message"), "{e}");
        assert!(!e.contains("hunter2"));
        assert!(matches!(
            decode(br#"{"type":"progress","pct":5}"#),
            Ok(DriverMessage::Other)
        ));
    }

    fn hello(protocol: &str, version: &str) -> DriverHello {
        DriverHello {
            protocol: protocol.into(),
            version: version.into(),
            name: "t".into(),
            driver_version: None,
            actions: vec!["off".into(), "on".into(), "teleport".into()],
            reads_power_state: true,
            features: vec![],
            channel: None,
            authenticated_identity: false,
        }
    }

    #[test]
    fn version_negotiation_is_same_major() {
        assert_eq!(
            hello(PROTOCOL_NAME, "1.0").check_compatible(),
            Ok(Version { major: 1, minor: 0 })
        );
        assert!(hello(PROTOCOL_NAME, "1.7").check_compatible().is_ok());
        assert!(hello(PROTOCOL_NAME, "1.2.3").check_compatible().is_ok());
        let e = hello(PROTOCOL_NAME, "2.0").check_compatible().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.detail.contains("2.0") && e.detail.contains("1.1"), "{e}");
        let e = hello(PROTOCOL_NAME, "0.9").check_compatible().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        for bad in ["", "1", "one.zero", "1.0.x", "1.0.0.0"] {
            let e = hello(PROTOCOL_NAME, bad).check_compatible().unwrap_err();
            assert_eq!(e.kind, ErrorKind::Protocol, "{bad:?}");
        }
        let e = hello("fencegw", "1.0").check_compatible().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
    }

    #[test]
    fn driver_hello_decodes_and_filters_actions() {
        let line = br#"{"type":"hello","protocol":"fencegate-driver","version":"1.0","name":"x",
            "driver_version":"0.3","actions":["off","on","teleport"],"reads_power_state":false,"new":1}"#;
        match decode(line) {
            Ok(DriverMessage::Hello(h)) => {
                assert_eq!(h.known_actions(), [Action::Off, Action::On]);
                assert!(!h.reads_power_state);
                assert_eq!(h.driver_version.as_deref(), Some("0.3"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            hello(PROTOCOL_NAME, "1.0").known_actions(),
            [Action::Off, Action::On]
        );
    }

    #[test]
    fn channel_and_authenticated_identity_are_optional_and_strict() {
        let old = br#"{"type":"hello","protocol":"fencegate-driver","version":"1.0","name":"x",
            "reads_power_state":true}"#;
        let Ok(DriverMessage::Hello(h)) = decode(old) else {
            panic!("a 1.0 hello decodes");
        };
        assert_eq!(
            (h.channel(), h.authenticated_identity),
            (Channel::Other, false)
        );
        let new = br#"{"type":"hello","protocol":"fencegate-driver","version":"1.1","name":"x",
            "reads_power_state":true,"channel":"bmc","authenticated_identity":true}"#;
        let Ok(DriverMessage::Hello(h)) = decode(new) else {
            panic!("a 1.1 hello decodes");
        };
        assert_eq!(
            (h.channel(), h.authenticated_identity),
            (Channel::Bmc, true)
        );
        assert!(h.check_compatible().is_ok());
        for bad in [r#""pdu""#, r#""Bmc""#, "1", r#""""#] {
            let line = format!(
                r#"{{"type":"hello","protocol":"fencegate-driver","version":"1.1","name":"x","reads_power_state":true,"channel":{bad}}}"#
            );
            assert!(
                decode(line.as_bytes()).is_err(),
                "channel {bad} must be refused"
            );
        }
        let mut isolating = hello(PROTOCOL_NAME, "1.1");
        isolating.channel = Some(Channel::Isolation);
        assert_eq!(
            isolating.check_compatible().unwrap_err().kind,
            ErrorKind::Protocol,
            "an isolation channel cannot read power"
        );
        isolating.reads_power_state = false;
        assert!(isolating.check_compatible().is_ok());
    }

    #[test]
    fn identity_facts_are_unauthenticated_unless_said() {
        let line = br#"{"type":"response","id":1,"ok":true,"state":"On","identity":[
            {"kind":"x-guid","value":"a"},{"kind":"x-serial","value":"b","authenticated":true},
            {"kind":"x-uuid","value":"c","authenticated":false}]}"#;
        let Ok(DriverMessage::Response(r)) = decode(line) else {
            panic!("decodes");
        };
        assert_eq!(
            r.identity,
            [
                IdentityFact::new("x-guid", "a"),
                IdentityFact::authenticated("x-serial", "b"),
                IdentityFact::new("x-uuid", "c"),
            ]
        );
        let line = br#"{"type":"response","id":1,"ok":true,"identity":[{"kind":"k","value":"v","authenticated":"yes"}]}"#;
        assert!(decode(line).is_err(), "authenticated is a boolean");
    }
}
