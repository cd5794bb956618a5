//! The JSON messages that cross the C boundary. They are the shapes of fencegate's external
//! driver protocol v1 (`docs/external-protocol.md`), so that one plugin author learns one
//! vocabulary: `hello`, `configure`, `request`, `response`.
//!
//! Both sides use these types: the SDK to read requests and write replies, the host to write
//! requests and read replies. Unknown fields are ignored so minor versions can add some; an
//! unknown state or error kind does not decode, so a plugin cannot invent one.

use fencegate_driver::{Action, Channel, ErrorKind, IdentityFact, PowerState};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol name in `hello`, shared with external drivers.
pub const PROTOCOL_NAME: &str = "fencegate-driver";

/// The message vocabulary version in `hello`, shared with the external protocol (1.1 added
/// the optional `channel` and `authenticated_identity` to `hello` and `authenticated` to
/// identity facts). Informative: the table's ABI major is what the host checks, and the
/// new fields are optional JSON, so the table and its ABI minor did not change.
pub const PROTOCOL_VERSION: &str = "1.1";

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
    /// Optional capabilities; none are defined for plugins.
    #[serde(default)]
    pub features: Vec<String>,
    /// What kind of channel the plugin switches (`bmc`, `outlet`, `in-band`, `isolation`,
    /// `other`). Absent (a plugin built before 1.1) means `other`; a word the host does not
    /// know does not decode, because guessing could make an isolation channel a power one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Whether the plugin's identity facts include ones the endpoint proved with the
    /// credentials. Absent means no: the device then cannot be pinned, and `check` says so.
    #[serde(default)]
    pub authenticated_identity: bool,
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
            channel: None,
            authenticated_identity: false,
        }
    }

    /// The same hello declaring its channel and whether it reports an authenticated
    /// identity (both optional on the wire since 1.1).
    pub fn with_identity(mut self, channel: Channel, authenticated_identity: bool) -> Self {
        self.channel = Some(channel);
        self.authenticated_identity = authenticated_identity;
        self
    }

    /// The declared channel, `other` when the plugin did not say.
    pub fn channel(&self) -> Channel {
        self.channel.unwrap_or_default()
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
    /// Facts identifying the endpoint that answered, recorded as evidence. A fact's
    /// `authenticated` is absent, and so false, unless the plugin says so.
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
    fn hello_identity_fields_are_optional_in_both_directions() {
        let old = br#"{"type":"hello","actions":["off"],"reads_power_state":true}"#;
        let Ok(Message::Hello(h)) = serde_json::from_slice::<Message>(old) else {
            panic!("a hello without the 1.1 fields decodes");
        };
        assert_eq!(
            (h.channel(), h.authenticated_identity),
            (Channel::Other, false)
        );
        let new = Hello::new("p", "1", &[Action::Off], true).with_identity(Channel::Outlet, true);
        let v = value(&Message::Hello(new));
        assert_eq!(v["version"], "1.1");
        assert_eq!(v["channel"], "outlet");
        assert_eq!(v["authenticated_identity"], true);
        let Ok(Message::Hello(back)) = serde_json::from_value::<Message>(v) else {
            panic!("round trip");
        };
        assert_eq!(
            (back.channel(), back.authenticated_identity),
            (Channel::Outlet, true)
        );
        let unknown = br#"{"type":"hello","reads_power_state":true,"channel":"pdu"}"#;
        assert!(serde_json::from_slice::<Message>(unknown).is_err());
    }

    #[test]
    fn identity_facts_say_whether_they_are_authenticated() {
        let mut r = Response::ok(1);
        r.identity = vec![
            IdentityFact::authenticated("acme-serial", "S1"),
            IdentityFact::new("acme-ip", "10.0.0.9"),
        ];
        let v = value(&Message::Response(r));
        assert_eq!(v["identity"][0]["authenticated"], true);
        assert_eq!(v["identity"][1]["authenticated"], false);
        let old = br#"{"type":"response","id":1,"ok":true,"identity":[{"kind":"k","value":"v"}]}"#;
        let Ok(Message::Response(r)) = serde_json::from_slice::<Message>(old) else {
            panic!("decodes");
        };
        assert!(!r.identity[0].authenticated, "absent is false");
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
