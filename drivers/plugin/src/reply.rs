//! Turning a plugin's JSON reply into a reading or a receipt, and refusing anything else.
//!
//! A plugin may report a reading (for `status`) or a receipt (for `set_power`); a reply that
//! does not decode, answers another id, contradicts itself, or puts a power state on a
//! command receipt is a `protocol` error. Nothing a plugin says can mark a host fenced.

use fencegate_driver::Redactor;
use fencegate_driver::{CommandReceipt, DriverError, IdentityFact, PowerState};
use fencegate_plugin_sdk::wire::{Message, Response};

/// At most this many identity facts are kept from one reply (as for external drivers).
pub(crate) const MAX_IDENTITY: usize = 16;

/// The longest text kept from a plugin, in bytes, for error messages and receipts.
const MAX_TEXT: usize = 500;

/// How to phrase errors about one driver's replies.
pub(crate) struct Context<'a> {
    /// Names the plugin and the device, e.g. "plugin `acme` for device `n1`".
    pub(crate) label: &'a str,
    /// Masks the device's secrets out of anything the plugin says.
    pub(crate) redactor: &'a Redactor,
    /// Whether the plugin's hello declared an authenticated identity; a fact's own
    /// `authenticated` mark is kept only then, so capabilities and facts never disagree.
    pub(crate) authenticated_identity: bool,
}

impl Context<'_> {
    fn text(&self, text: &str) -> String {
        self.redactor.clip(text, MAX_TEXT)
    }

    /// A protocol error about the reply.
    pub(crate) fn protocol(&self, why: &str) -> DriverError {
        DriverError::protocol(format!("{}: {}", self.label, self.text(why)))
    }

    /// Decode a reply and check it answers `id` consistently. A plugin's `ok:false` becomes
    /// its error, with its kind kept and its detail redacted.
    pub(crate) fn response(&self, bytes: &[u8], id: u64) -> Result<Response, DriverError> {
        let response = match serde_json::from_slice::<Message>(bytes) {
            Ok(Message::Response(r)) => r,
            Ok(_) => return Err(self.protocol("replied with a message that is not a `response`")),
            Err(e) if e.is_syntax() || e.is_eof() => {
                return Err(self.protocol(&format!("reply is not JSON ({} bytes)", bytes.len())));
            }
            Err(e) => return Err(self.protocol(&format!("malformed reply: {e}"))),
        };
        if response.id != id {
            return Err(self.protocol(&format!(
                "reply answers id {} but the request was id {id}",
                response.id
            )));
        }
        match (response.ok, &response.error) {
            (true, Some(_)) => Err(self.protocol("reply says both ok and error")),
            (true, None) => Ok(response),
            (false, None) => Err(self.protocol("reply says not ok but gives no error")),
            (false, Some(e)) => Err(DriverError::new(
                e.kind,
                format!("{}: {}", self.label, self.text(&e.detail)),
            )),
        }
    }

    /// The reading in a successful `status` reply.
    pub(crate) fn reading(&self, response: Response) -> Result<PowerState, DriverError> {
        if response.detail.is_some() {
            return Err(self.protocol("a status reply carries a reading, not a receipt `detail`"));
        }
        match response.state {
            Some(PowerState::Unknown(raw)) => Ok(PowerState::Unknown(self.text(&raw))),
            Some(state) => Ok(state),
            None => Err(self.protocol("status reply without a `state`")),
        }
    }

    /// The receipt in a successful `set_power` reply. A power state here would be a claim
    /// about the outcome, which only the engine's own fresh reading may make.
    pub(crate) fn receipt(&self, response: Response) -> Result<CommandReceipt, DriverError> {
        if response.state.is_some() {
            return Err(self.protocol(
                "a set_power reply may only carry a receipt, not a power state \
                 (the engine reads the state itself)",
            ));
        }
        let detail = response.detail.unwrap_or_default();
        Ok(CommandReceipt::new(if detail.is_empty() {
            "accepted by the plugin".to_owned()
        } else {
            self.text(&detail)
        }))
    }

    /// The configure reply: a bare acknowledgement.
    pub(crate) fn configured(&self, response: Response) -> Result<(), DriverError> {
        if response.state.is_some() {
            return Err(self.protocol("a configure reply may not carry a power state"));
        }
        Ok(())
    }

    /// The identity facts of a reply, redacted and bounded; authenticated only where the
    /// plugin both declared an authenticated identity and marked the fact.
    pub(crate) fn identity(&self, response: &Response) -> Vec<IdentityFact> {
        response
            .identity
            .iter()
            .take(MAX_IDENTITY)
            .map(|f| IdentityFact {
                kind: self.text(&f.kind),
                value: self.text(&f.value),
                authenticated: self.authenticated_identity && f.authenticated,
            })
            .collect()
    }
}

/// Everything the driver would make of one reply, through each of its checks.
#[doc(hidden)]
#[derive(Debug)]
pub struct FuzzedReply {
    /// The reply read as the answer to `status`.
    pub reading: Result<PowerState, DriverError>,
    /// The reply read as the answer to `set_power`.
    pub receipt: Result<CommandReceipt, DriverError>,
    /// The reply read as the answer to `configure`.
    pub configured: Result<(), DriverError>,
    /// The identity facts kept from it, when it decodes.
    pub identity: Vec<IdentityFact>,
}

/// Run `bytes` through every check the driver applies to a reply to request `id`, with
/// `secret` as the device's only secret. The reply checks are private, since a plugin's words
/// reach the engine only through the driver; this is their one outside door, for the fuzz
/// targets (`fuzz/` at the repository's root). Not part of the driver's API.
#[doc(hidden)]
pub fn fuzz_reply(
    bytes: &[u8],
    id: u64,
    secret: &str,
    authenticated_identity: bool,
) -> FuzzedReply {
    let redactor = Redactor::new([&fencegate_driver::SecretString::from(secret)]);
    let context = Context {
        label: "plugin `fuzz` for device `d`",
        redactor: &redactor,
        authenticated_identity,
    };
    let identity = context
        .response(bytes, id)
        .map(|r| context.identity(&r))
        .unwrap_or_default();
    FuzzedReply {
        reading: context.response(bytes, id).and_then(|r| context.reading(r)),
        receipt: context.response(bytes, id).and_then(|r| context.receipt(r)),
        configured: context
            .response(bytes, id)
            .and_then(|r| context.configured(r)),
        identity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencegate_driver::{ErrorKind, SecretString};

    fn with<T>(f: impl FnOnce(&Context<'_>) -> T) -> T {
        with_declared(false, f)
    }

    fn with_declared<T>(authenticated_identity: bool, f: impl FnOnce(&Context<'_>) -> T) -> T {
        let redactor = Redactor::new([&SecretString::from("hunter2")]);
        f(&Context {
            label: "plugin `t` for device `d`",
            redactor: &redactor,
            authenticated_identity,
        })
    }

    #[test]
    fn authenticated_marks_are_kept_only_when_declared() {
        let bytes = br#"{"type":"response","id":1,"ok":true,"state":"On","identity":[
            {"kind":"x-serial","value":"S-hunter2","authenticated":true},{"kind":"x-ip","value":"v"}]}"#;
        let declared = with_declared(true, |c| c.identity(&c.response(bytes, 1).unwrap()));
        assert_eq!(
            declared,
            [
                IdentityFact::authenticated("x-serial", "S-[redacted]"),
                IdentityFact::new("x-ip", "v"),
            ]
        );
        let undeclared = with(|c| c.identity(&c.response(bytes, 1).unwrap()));
        assert!(
            undeclared.iter().all(|f| !f.authenticated),
            "{undeclared:?}"
        );
        assert_eq!(undeclared.len(), 2);
    }

    #[test]
    fn readings_and_receipts_are_accepted() {
        with(|c| {
            let r = c.response(br#"{"type":"response","id":4,"ok":true,"state":"Off"}"#, 4);
            assert_eq!(c.reading(r.unwrap()).unwrap(), PowerState::Off);
            let r = c.response(
                br#"{"type":"response","id":5,"ok":true,"detail":"done"}"#,
                5,
            );
            assert_eq!(c.receipt(r.unwrap()).unwrap().detail, "done");
        });
    }

    #[test]
    fn claims_beyond_a_reading_or_receipt_are_protocol_errors() {
        with(|c| {
            let r = c
                .response(br#"{"type":"response","id":2,"ok":true,"state":"Off"}"#, 2)
                .unwrap();
            assert_eq!(c.receipt(r).unwrap_err().kind, ErrorKind::Protocol);
            for (bytes, id) in [
                (
                    &br#"{"type":"response","id":1,"ok":true,"state":"Fenced"}"#[..],
                    1,
                ),
                (
                    br#"{"type":"response","id":1,"ok":false,"error":{"kind":"fenced"}}"#,
                    1,
                ),
                (br#"{"type":"response","id":9,"ok":true,"state":"Off"}"#, 1),
                (br#"{"type":"hello","reads_power_state":true}"#, 1),
                (
                    br#"{"type":"response","id":1,"ok":true,"error":{"kind":"busy"}}"#,
                    1,
                ),
                (br#"{"type":"response","id":1,"ok":false}"#, 1),
                (b"{not json", 1),
            ] {
                let e = c.response(bytes, id).unwrap_err();
                assert_eq!(
                    e.kind,
                    ErrorKind::Protocol,
                    "{}",
                    String::from_utf8_lossy(bytes)
                );
            }
            let r = c
                .response(br#"{"type":"response","id":1,"ok":true}"#, 1)
                .unwrap();
            assert_eq!(c.reading(r).unwrap_err().kind, ErrorKind::Protocol);
        });
    }

    #[test]
    fn silence_emptiness_and_defaults_never_become_a_reading() {
        with(|c| {
            for bytes in [
                &b""[..],
                b" ",
                b"\n",
                b"null",
                b"{}",
                br#""Off""#,
                br#"{"type":"response","id":1,"ok":true}"#,
                br#"{"type":"response","id":1,"ok":true,"state":null}"#,
                br#"{"type":"response","id":1,"ok":true,"state":""}"#,
                br#"{"type":"response","id":1,"ok":true,"state":"off"}"#,
                br#"{"type":"response","id":1,"ok":true,"state":"OFF"}"#,
                br#"{"type":"response","id":1,"ok":true,"state":"down"}"#,
                br#"{"type":"response","id":1,"ok":true,"state":0}"#,
                br#"{"type":"response","id":1,"ok":true,"state":{}}"#,
                br#"{"type":"response","id":1,"ok":true,"state":{"Unknown":null}}"#,
                br#"{"type":"response","id":1,"ok":true,"state":"On","state":"Off"}"#,
                br#"{"type":"response","id":1,"ok":true,"state":"Off","detail":""}"#,
                br#"{"type":"response","id":1,"ok":false,"state":"Off"}"#,
                br#"{"type":"response","id":1,"state":"Off"}"#,
                br#"{"type":"response","id":1,"ok":"true","state":"Off"}"#,
                br#"{"type":"response","ok":true,"state":"Off"}"#,
                br#"{"type":"response","id":0,"ok":true,"state":"Off"}"#,
                br#"{"type":"response","id":2,"ok":true,"state":"Off"}"#,
                br#"{"id":1,"ok":true,"state":"Off"}"#,
                br#"{"type":"progress","type":"response","id":1,"ok":true,"state":"Off"}"#,
                br#"{"type":"response","id":1,"ok":true,"state":"Off"} x"#,
                br#"{"type":"hello","reads_power_state":true,"state":"Off"}"#,
            ] {
                let got = c.response(bytes, 1).and_then(|r| c.reading(r));
                let e = got.expect_err(&String::from_utf8_lossy(bytes));
                assert_eq!(
                    e.kind,
                    ErrorKind::Protocol,
                    "{}: {e}",
                    String::from_utf8_lossy(bytes)
                );
            }
        });
    }

    #[test]
    fn plugin_errors_keep_their_kind_and_lose_secrets() {
        with(|c| {
            let e = c
                .response(
                    br#"{"type":"response","id":3,"ok":false,"error":{"kind":"auth","detail":"token hunter2 refused"}}"#,
                    3,
                )
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Auth);
            assert!(!e.detail.contains("hunter2"), "{e}");
            assert!(e.detail.contains("[redacted]"), "{e}");
        });
    }

    #[test]
    fn a_long_detail_is_cut_without_leaving_part_of_a_secret() {
        with(|c| {
            // The whole secret straddling the cut, then text whose cut ends in a prefix.
            for tail in ["hunter2 and more text", "hunter-7 and more text"] {
                let detail = format!("{}{tail}", "x".repeat(496));
                let bytes = format!(
                    r#"{{"type":"response","id":3,"ok":false,"error":{{"kind":"auth","detail":"{detail}"}}}}"#
                );
                let e = c.response(bytes.as_bytes(), 3).unwrap_err();
                assert!(!e.detail.contains("hunt"), "{e}");
                assert!(e.detail.ends_with("[redacted]…"), "{e}");
            }
        });
    }
}
