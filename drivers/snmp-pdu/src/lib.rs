//! PDU outlet power driver for fencegate over SNMP v1/v2c/v3.
//!
//! A PDU outlet is the fencing channel of last resort that *can* prove power-off: when the
//! outlet reads off, the host behind it has no power, whatever its BMC or OS is doing. This
//! crate reads and switches outlets; it never decides "fenced" (the engine does, from fresh
//! `Off` readings).
//!
//! # Device specification (driver `snmp`)
//!
//! URL form: `snmp://pdu1:161/outlet/4,5?version=2c&community_file=/etc/fencegate/pdu1.community`.
//!
//! | key | kind | meaning |
//! | --- | --- | --- |
//! | `address` | | `host[:port]`, port 161 by default |
//! | path `/outlet/N[,M…]` or `outlet` | option | the outlet(s) of this device; every one must read off for `Off` |
//! | `version` | option | `1`, `2c` (default) or `3` |
//! | `community` | secret | v1/v2c community, given as `community_file` or `community_env` |
//! | `user` | | v3 USM user |
//! | `auth_password`, `priv_password` | secrets | v3 passwords (≥ 8 characters) |
//! | `auth_protocol` | option | `sha` (default), `sha256`, `sha512`, `md5` |
//! | `priv_protocol` | option | `aes` (default, AES-128), `aes256` |
//! | `security_level` | option | `authPriv` (default) or `authNoPriv` |
//! | `context` | option | v3 context name (default empty) |
//! | `profile` | option | `apc` (default), `apc-rpdu`, `raritan`, `eaton`, `servertech`, `generic` |
//! | `state_oid`, `control_oid`, `on_value`, `off_value`, `reboot_value`, `state_on`, `state_off` | options | the `generic` profile (OIDs get the outlet appended unless they contain `{outlet}`) |
//! | `timeout_ms` | option | wait per attempt (default 1000) |
//! | `retries` | option | extra attempts per request, each on a fresh session (default 2, at most 10) |
//!
//! # Identity
//!
//! Over SNMPv3 the agent proves its authoritative engine ID with every answer whose MAC
//! verifies; that ID (lowercase hex) is the authenticated fact `snmp-engine-id`, pinnable
//! with `engine_id = "…"`. The discovery reply alone proves nothing and is never reported.
//! A v1/v2c community travels in clear text, so over v1/v2c no fact is authenticated.
//!
//! # What errors can and cannot tell apart
//!
//! * An agent drops a request with a wrong community (v1/v2c) or one it cannot decrypt (v3
//!   wrong `priv_password`) without a word. When every attempt went unanswered, two probes
//!   tell why: `sysUpTime.0` with our credentials (answered: the outlet handler is at fault,
//!   `Unreachable`) and one that needs no secret (SNMPv3 engine discovery; for authPriv, the
//!   user without privacy). If only the latter is answered, the secret is wrong: `Auth`.
//!   If nothing answers, `Unreachable` (or `Timeout` at the deadline), saying a wrong
//!   community cannot be ruled out. A read-only community is detected: a SET answered
//!   `noAccess`/`notWritable`/`readOnly` (v2c/v3), or `noSuchName` on an object a GET can
//!   read (v1), is `Auth` "read-only".
//! * v3: an unknown user or wrong `auth_password` is `Auth`.
//! * A missing outlet or a profile that does not match the PDU (`noSuchName`,
//!   `noSuchObject`, `noSuchInstance`, `wrongValue`) is `Unsupported`, naming outlet and OID.

mod ber;
mod client;
mod config;
mod driver;
mod keys;
mod message;
pub mod profile;
mod session;
mod usm;

pub use config::{
    AuthProtocol, Credentials, DEFAULT_RETRIES, DEFAULT_TIMEOUT, PduConfig, PrivProtocol,
};
pub use driver::{SnmpPduDriver, SnmpPduFactory};

/// Entry point of the fuzz target in `fuzz/`; not part of the driver's API.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    session::fuzz_one(data);
}
