//! The JSON messages that cross the C boundary. They are the shapes of fencegate's external
//! driver protocol v1 (`docs/external-protocol.md`), so that one plugin author learns one
//! vocabulary: `hello`, `configure`, `request`, `response`.
//!
//! Both sides use these types: the SDK to read requests and write replies, the host to write
//! requests and read replies. Unknown fields are ignored so minor versions can add some; an
//! unknown state or error kind does not decode, so a plugin cannot invent one.

use fencegate_driver::{Action, ErrorKind, IdentityFact, PowerState};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol name in `hello`, shared with external drivers.
pub const PROTOCOL_NAME: &str = "fencegate-driver";

/// The message vocabulary version in `hello`; it moves with the ABI major.
pub const PROTOCOL_VERSION: &str = "1.0";

/// The `id` of the `configure` message and of its response.
pub const CONFIGURE_ID: u64 = 0;

/// Every message, told apart by its `type` field.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// A plugin describing itself (reply to `hello`).
    Hello(Hello),
    /// The host handing a plugin its device (argument of `configure`).
    Configure(Configure),
    /// The host asking for one operation (argument of `call`).
    Request(Request),
    /// A plugin's answer to `configure` or a request.
    Response(Response),
}

impl Message {
    /// The message as JSON bytes. Serializing strings and numbers cannot fail; an empty
    /// buffer (refused by the host as malformed) is the fallback if it ever did.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What a plugin can do, independent of any device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_NAME`]; informative (the table's magic is what the host checks).
    #[serde(default)]
    pub protocol: String,
    /// [`PROTOCOL_VERSION`]; informative (the table's ABI major is what the host checks).
    #[serde(default)]
    pub version: String,
    /// The plugin's name (the table's `name` is authoritative).
    #[serde(default)]
    pub name: String,
    /// The plugin's own version.
    #[serde(default)]
    pub driver_version: Option<String>,
    /// Supported actions by contract name (`off`, `on`, `cycle`, `graceful_off`). The host
    /// ignores names it does not know.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Whether `status` works. A plugin that cannot read state can never give proof.
    pub reads_power_state: bool,
    /// Optional capabilities; none are defined in 1.0.
    #[serde(default)]
    pub features: Vec<String>,
}

impl Hello {
    /// A hello with the shared protocol name and version filled in.
    pub fn new(
        name: &str,
        driver_version: &str,
        actions: &[Action],
        reads_power_state: bool,
    ) -> Self {
        Hello {
            protocol: PROTOCOL_NAME.to_owned(),
            version: PROTOCOL_VERSION.to_owned(),
            name: name.to_owned(),
            driver_version: Some(driver_version.to_owned()),
            actions: actions.iter().map(|a| a.as_str().to_owned()).collect(),
            reads_power_state,
            features: Vec::new(),
        }
    }

    /// The declared actions this version knows, in the contract's order.
    pub fn known_actions(&self) -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|a| self.actions.iter().any(|n| n == a.as_str()))
            .collect()
    }
}

/// The `configure` message: one device, secrets included.
#[derive(Debug, Serialize, Deserialize)]
pub struct Configure {
    /// Always [`CONFIGURE_ID`].
    pub id: u64,
    /// The device.
    pub device: Device,
}

/// A device as a plugin receives it. `Debug` never shows the secrets (they are
/// [`SecretString`]s, wiped from memory when dropped), but serializing writes them in clear,
/// because that is how they reach the plugin: never log the serialized form.
#[derive(Debug, Serialize, Deserialize)]
pub struct Device {
    /// The device's inventory name, for messages.
    pub name: String,
    /// What the plugin should talk to (the device's `target` option), if configured.
    #[serde(default)]
    pub address: Option<String>,
    /// The configured user, if any.
    #[serde(default)]
    pub user: Option<String>,
    /// The path part of a device URL, if any.
    #[serde(default)]
    pub path: Option<String>,
    /// The plugin's options (fencegate's own options removed).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The secrets by role (`password`, `token`, …).
    #[serde(default, serialize_with = "expose_secrets")]
    pub secrets: BTreeMap<String, SecretString>,
}

fn expose_secrets<S: serde::Serializer>(
    secrets: &BTreeMap<String, SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(secrets.len()))?;
    for (role, value) in secrets {
        map.serialize_entry(role, value.expose_secret())?;
    }
    map.end()
}

/// The `request` message: one operation with the time left for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Counts up from 1 per instance; the response must carry the same.
    pub id: u64,
    /// `status` or `set_power`.
    pub op: String,
    /// The action, for `set_power`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Milliseconds left until the host gives up, relative so no clocks need agree.
    pub deadline_ms: u64,
}

/// The operation names in [`Request::op`].
pub mod op {
    /// Read the power state.
    pub const STATUS: &str = "status";
    /// Perform an action.
    pub const SET_POWER: &str = "set_power";
}

/// A failure, with the contract's error kind names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// One of the contract's kebab-case kinds; anything else does not decode.
    pub kind: ErrorKind,
    /// The plugin's own words. Never a secret.
    #[serde(default)]
    pub detail: String,
}

/// A plugin's answer. There is deliberately no field that could say "fenced": a `status`
/// answer carries a reading, a `set_power` answer a receipt, and nothing else counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The id of the message answered.
    pub id: u64,
    /// Whether it succeeded.
    pub ok: bool,
    /// The reading, for a successful `status` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PowerState>,
    /// The device's words about an accepted command, for a successful `set_power`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The failure, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    /// Facts identifying the endpoint that answered, recorded as evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity: Vec<IdentityFact>,
}

impl Response {
    /// A bare success (the answer to `configure`).
    pub fn ok(id: u64) -> Self {
        Response {
            id,
            ok: true,
            state: None,
            detail: None,
            error: None,
            identity: Vec::new(),
        }
    }

    /// A failure of the given kind.
    pub fn error(id: u64, kind: ErrorKind, detail: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(WireError {
                kind,
                detail: detail.into(),
            }),
            ..Response::ok(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::{Value, json};

    fn value(m: &Message) -> Value {
        serde_json::from_slice(&m.to_json()).unwrap()
    }

    #[test]
    fn shapes_match_the_external_protocol() {
        let req = Message::Request(Request {
            id: 2,
            op: op::SET_POWER.into(),
            action: Some(Action::Off),
            deadline_ms: 4990,
        });
        assert_eq!(
            value(&req),
            json!({"type":"request","id":2,"op":"set_power","action":"off","deadline_ms":4990})
        );
        let mut r = Response::ok(1);
        r.state = Some(PowerState::Off);
        assert_eq!(
            value(&Message::Response(r)),
            json!({"type":"response","id":1,"ok":true,"state":"Off"})
        );
        let e = Response::error(3, ErrorKind::StateConflict, "already off");
        assert_eq!(
            value(&Message::Response(e)),
            json!({"type":"response","id":3,"ok":false,
                   "error":{"kind":"state-conflict","detail":"already off"}})
        );
    }

    #[test]
    fn configure_round_trips_secrets_but_debug_hides_them() {
        let line = br#"{"type":"configure","id":0,"device":{"name":"n1","address":"10.0.0.9",
            "user":null,"path":null,"options":{"outlet":"7"},"secrets":{"token":"hunter2"}}}"#;
        let Ok(Message::Configure(c)) = serde_json::from_slice::<Message>(line) else {
            panic!("configure must decode");
        };
        assert_eq!(c.device.secrets["token"].expose_secret(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        let again = value(&Message::Configure(c));
        assert_eq!(again["device"]["secrets"]["token"], "hunter2");
    }

    #[test]
    fn invented_states_and_kinds_do_not_decode() {
        for line in [
            &br#"{"type":"response","id":1,"ok":true,"state":"Fenced"}"#[..],
            br#"{"type":"response","id":1,"ok":true,"state":"off"}"#,
            br#"{"type":"response","id":1,"ok":false,"error":{"kind":"fenced"}}"#,
            br#"{"type":"verdict","id":1,"fenced":true}"#,
        ] {
            assert!(serde_json::from_slice::<Message>(line).is_err());
        }
    }
}
