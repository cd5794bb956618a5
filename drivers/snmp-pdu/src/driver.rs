//! The PDU power driver: outlet readings and outlet SETs, reported honestly.

use crate::ber;
use crate::client::{Answer, Conversation, Reply, Request};
use crate::config::{Credentials, PduConfig};
use crate::keys::DriverSecrets;
use crate::profile::{self, OutletState};
use crate::session::Session;
use fencegate_driver::{
    Action, Capabilities, Channel, CommandReceipt, DeviceSpec, DriverError, DriverFactory,
    DriverFuture, IdentityFact, PowerDriver, PowerState, SpecError,
};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// SNMP error-status values (RFC 3416 §3) the driver tells apart.
mod status {
    pub const NO_ERROR: u32 = 0;
    pub const TOO_BIG: u32 = 1;
    pub const NO_SUCH_NAME: u32 = 2;
    pub const BAD_VALUE: u32 = 3;
    pub const READ_ONLY: u32 = 4;
    pub const GEN_ERR: u32 = 5;
    pub const NO_ACCESS: u32 = 6;
    pub const WRONG_TYPE: u32 = 7;
    pub const WRONG_LENGTH: u32 = 8;
    pub const WRONG_VALUE: u32 = 10;
    pub const NO_CREATION: u32 = 11;
    pub const INCONSISTENT_VALUE: u32 = 12;
    pub const RESOURCE_UNAVAILABLE: u32 = 13;
    pub const AUTHORIZATION_ERROR: u32 = 16;
    pub const NOT_WRITABLE: u32 = 17;
}

/// `sysName.0` and `sysObjectID.0`, read once for the evidence record.
const SYS_NAME: [u64; 9] = [1, 3, 6, 1, 2, 1, 1, 5, 0];
const SYS_OBJECT_ID: [u64; 9] = [1, 3, 6, 1, 2, 1, 1, 2, 0];

/// Builds [`SnmpPduDriver`]s from `snmp` device specifications.
///
/// A device is a set of outlets on one PDU (a dual-PSU host on one PDU is one device with
/// two outlets; on two PDUs it is two devices on one level). See the crate documentation
/// for the options.
#[derive(Debug, Default, Clone, Copy)]
pub struct SnmpPduFactory;

impl DriverFactory for SnmpPduFactory {
    fn name(&self) -> &'static str {
        "snmp"
    }

    fn summary(&self) -> &'static str {
        "PDU outlets over SNMP v1/v2c/v3 (APC, APC rPDU, Raritan, Eaton, ServerTech, generic)"
    }

    /// The v1/v2c community or the v3 keys; never a plain `password`.
    fn secret_roles(&self) -> &'static [&'static str] {
        &["community", "auth_password", "priv_password"]
    }

    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
        Ok(Arc::new(SnmpPduDriver::new(PduConfig::from_spec(spec)?)))
    }
}

/// Switches and reads the outlets of one device on one PDU.
pub struct SnmpPduDriver {
    config: PduConfig,
    endpoint: String,
    /// The community or the SNMPv3 keys, derived once (at the first call) for every
    /// session, retry and probe of this driver.
    secrets: DriverSecrets,
    identity: Mutex<Learned>,
    /// A session left idle by the previous call (nothing in flight), reused by the next.
    idle: Mutex<Option<Session>>,
}

impl fmt::Debug for SnmpPduDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnmpPduDriver")
            .field("endpoint", &self.endpoint)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the driver has learned about the PDU's identity.
#[derive(Debug, Default)]
struct Learned {
    /// sysName and sysObjectID, read once.
    system: Vec<IdentityFact>,
    /// The SNMPv3 engine ID (lowercase hex) the agent last proved with a verified MAC. Kept
    /// as the latest one, so that a different engine answering later shows as a change.
    engine_id: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic while holding the lock cannot leave it inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SnmpPduDriver {
    /// A driver for a validated configuration (no I/O).
    pub fn new(config: PduConfig) -> Self {
        let host = if config.host.contains(':') {
            format!("[{}]", config.host)
        } else {
            config.host.clone()
        };
        let endpoint = format!("snmp://{host}:{}", config.port);
        SnmpPduDriver {
            secrets: DriverSecrets::new(&config.credentials),
            config,
            endpoint,
            identity: Mutex::new(Learned::default()),
            idle: Mutex::new(None),
        }
    }

    /// A conversation on the idle session, if any. The first SNMPv3 call derives the keys
    /// here, before any attempt's wait starts.
    async fn conversation(&self, deadline: Instant) -> Result<Conversation<'_>, DriverError> {
        let secrets = self.secrets.get(&self.endpoint, deadline).await?;
        let idle = lock(&self.idle).take();
        Ok(Conversation::resume(
            &self.config,
            &self.endpoint,
            deadline,
            secrets,
            idle,
        ))
    }

    fn keep(&self, conv: Conversation<'_>) {
        *lock(&self.idle) = conv.into_session();
    }

    fn oid(&self, template: &str, outlet: u32) -> Result<(Vec<u64>, String), DriverError> {
        let arcs = profile::expand(template, outlet).map_err(|e| {
            DriverError::unsupported(format!("{}: outlet {outlet}: {e}", self.endpoint))
        })?;
        let text = profile::dotted(&arcs);
        if !ber::oid_encodable(&arcs) {
            return Err(DriverError::unsupported(format!(
                "{}: {text} is not an encodable OID",
                self.endpoint
            )));
        }
        Ok((arcs, text))
    }

    async fn read_outlet(
        &self,
        conv: &mut Conversation<'_>,
        outlet: u32,
    ) -> Result<OutletState, DriverError> {
        let (oid, text) = self.oid(&self.config.profile.state_oid, outlet)?;
        let what = format!("GET state of outlet {outlet} ({text})");
        let reply = conv
            .request(Request::Get(std::slice::from_ref(&oid)), &what)
            .await?;
        self.check_status(&reply, &what, outlet, &text, false)?;
        self.outlet_state(&reply, &oid, &what, outlet, &text)
    }

    /// What one outlet's GET answer says. Silence is never a reading: only an INTEGER for
    /// exactly the object asked for can be classified, and only the profile's off values
    /// become off. A missing varbind, one for another object, an exception, NULL or another
    /// type is an error naming the object and what came instead.
    fn outlet_state(
        &self,
        reply: &Reply,
        oid: &[u64],
        what: &str,
        outlet: u32,
        text: &str,
    ) -> Result<OutletState, DriverError> {
        let ep = &self.endpoint;
        let (name, value) = match reply.varbinds.as_slice() {
            [one] => one,
            [] => {
                return Err(DriverError::protocol(format!(
                    "{ep}: {what}: the answer carries no value"
                )));
            }
            several => {
                return Err(DriverError::protocol(format!(
                    "{ep}: {what}: one object was asked for, the answer carries {}",
                    several.len()
                )));
            }
        };
        if name.as_slice() != oid {
            return Err(DriverError::protocol(format!(
                "{ep}: {what}: the answer is for {} ({}), not for {text}",
                profile::dotted(name),
                shown(value)
            )));
        }
        match value {
            Answer::Integer(v) => Ok(self.config.profile.classify(*v)),
            other => Err(self.bad_value(other, what, outlet, text)),
        }
    }

    async fn switch_outlet(
        &self,
        conv: &mut Conversation<'_>,
        action: Action,
        outlet: u32,
    ) -> Result<(), DriverError> {
        let Some(cmd) = self.config.profile.command(action) else {
            return Err(DriverError::unsupported(format!(
                "{}: profile `{}` has no {action} command",
                self.endpoint, self.config.profile.name
            )));
        };
        let (oid, text) = self.oid(&cmd.oid, outlet)?;
        let what = format!("SET outlet {outlet} {action} ({text} = {})", cmd.value);
        let reply = conv.request(Request::Set(&oid, cmd.value), &what).await?;
        if reply.error_status == status::NO_SUCH_NAME && self.config.credentials.version() == "1" {
            // SNMPv1 folds "read-only community" into noSuchName (RFC 3584 §4.3); a GET of
            // the same object tells the two apart.
            let probe = conv
                .request(Request::Get(std::slice::from_ref(&oid)), &what)
                .await?;
            if probe.error_status == status::NO_ERROR
                && matches!(probe.value(0), Some(Answer::Integer(_)))
            {
                return Err(DriverError::auth(format!(
                    "{}: {what}: refused (SNMPv1 noSuchName on an object that can be read): \
                     the community is read-only; give the read-write community",
                    self.endpoint
                )));
            }
        }
        self.check_status(&reply, &what, outlet, &text, true)?;
        if let Some(v @ (Answer::NoSuchObject | Answer::NoSuchInstance | Answer::EndOfMibView)) =
            reply.value(0)
        {
            return Err(self.bad_value(v, &what, outlet, &text));
        }
        Ok(())
    }

    /// Turn a non-zero error-status into the error class the engine acts on.
    fn check_status(
        &self,
        reply: &Reply,
        what: &str,
        outlet: u32,
        oid: &str,
        is_set: bool,
    ) -> Result<(), DriverError> {
        let ep = &self.endpoint;
        let profile = &self.config.profile.name;
        match reply.error_status {
            status::NO_ERROR => Ok(()),
            status::NO_SUCH_NAME | status::NO_CREATION => Err(DriverError::unsupported(format!(
                "{ep}: {what}: the PDU has no object {oid}: configuration error (does outlet \
                 {outlet} exist, and is profile `{profile}` right for this PDU?)"
            ))),
            status::READ_ONLY | status::NO_ACCESS | status::NOT_WRITABLE if is_set => {
                Err(DriverError::auth(format!(
                    "{ep}: {what}: write refused: the community (or v3 user) is read-only, or \
                     {oid} is not writable on this PDU (check profile `{profile}`)"
                )))
            }
            status::AUTHORIZATION_ERROR | status::NO_ACCESS => Err(DriverError::auth(format!(
                "{ep}: {what}: access refused by the agent's access control (authorizationError)"
            ))),
            status::BAD_VALUE
            | status::WRONG_VALUE
            | status::WRONG_TYPE
            | status::WRONG_LENGTH
            | status::INCONSISTENT_VALUE => Err(DriverError::unsupported(format!(
                "{ep}: {what}: the PDU refused the value (error-status {}): profile `{profile}` \
                 does not match this PDU",
                reply.error_status
            ))),
            status::RESOURCE_UNAVAILABLE => Err(DriverError::busy(format!(
                "{ep}: {what}: the agent is out of resources"
            ))),
            status::TOO_BIG | status::GEN_ERR => Err(DriverError::protocol(format!(
                "{ep}: {what}: the agent failed the request (error-status {})",
                reply.error_status
            ))),
            other => Err(DriverError::protocol(format!(
                "{ep}: {what}: error-status {other}"
            ))),
        }
    }

    fn bad_value(&self, v: &Answer, what: &str, outlet: u32, oid: &str) -> DriverError {
        let ep = &self.endpoint;
        let profile = &self.config.profile.name;
        match v {
            Answer::NoSuchObject | Answer::NoSuchInstance | Answer::EndOfMibView => {
                DriverError::unsupported(format!(
                    "{ep}: {what}: {oid} does not exist on this PDU ({v:?}): configuration error \
                     (does outlet {outlet} exist, and is profile `{profile}` right?)"
                ))
            }
            other => DriverError::protocol(format!(
                "{ep}: {what}: expected an INTEGER, got {}",
                shown(other)
            )),
        }
    }

    /// Whether the agent authenticates what it says: SNMPv3 (always with authentication
    /// here) does, with the USM key; a v1/v2c community travels in clear text, so anyone on
    /// the path can answer as the PDU.
    fn authenticated(&self) -> bool {
        matches!(self.config.credentials, Credentials::V3 { .. })
    }

    /// Remember the engine ID the conversation's agent proved, if it did (SNMPv3).
    fn note_engine(&self, conv: &Conversation<'_>) {
        if let Some(id) = conv.authenticated_engine_id() {
            lock(&self.identity).engine_id = Some(hex(id));
        }
    }

    /// Read sysName and sysObjectID once, best effort, on an already working session.
    /// Over SNMPv3 the answer passed its MAC check, so they are authenticated facts too.
    async fn learn_identity(&self, conv: &mut Conversation<'_>) {
        let known = !lock(&self.identity).system.is_empty();
        if known {
            return;
        }
        let oids = [SYS_NAME.to_vec(), SYS_OBJECT_ID.to_vec()];
        let Ok(reply) = conv
            .request(Request::Get(&oids), "GET sysName.0, sysObjectID.0")
            .await
        else {
            return;
        };
        if reply.error_status != status::NO_ERROR {
            return;
        }
        let fact = |kind: &str, value: &str| IdentityFact {
            authenticated: self.authenticated(),
            ..IdentityFact::new(kind, value)
        };
        let mut facts = Vec::new();
        if let Some(Answer::Text(n)) = reply.value(0) {
            facts.push(fact("snmp-sysname", n));
        }
        if let Some(Answer::Oid(o)) = reply.value(1) {
            facts.push(fact("snmp-sysobjectid", o));
        }
        lock(&self.identity).system = facts;
    }
}

/// Bytes as lowercase hex, the form engine IDs are pinned in.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An agent's value as shown in an error: at most 80 characters, so that an agent cannot
/// flood the evidence record through it.
fn shown(v: &Answer) -> String {
    let full = format!("{v:?}");
    match full.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &full[..at]),
        None => full,
    }
}

/// A host written one way: lower case, IPv6 in brackets, the loopback names as addresses.
fn canonical_host(host: &str) -> String {
    let h = host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let h = match h.as_str() {
        "localhost" | "localhost.localdomain" | "localhost4" => "127.0.0.1".to_owned(),
        "ip6-localhost" | "localhost6" => "::1".to_owned(),
        _ => h,
    };
    match h.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        Ok(ip) => ip.to_string(),
        Err(_) => h,
    }
}

impl PowerDriver for SnmpPduDriver {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn switched(&self) -> Vec<String> {
        // One key per outlet: a lock on a dual-PSU host's outlets 1 and 2 covers outlet 1
        // reached alone. The host is written one way for every spelling this driver can
        // tell apart without a lookup (case, brackets, the loopback names); v1/v2c have no
        // identity to catch another DNS name for the same PDU.
        let host = canonical_host(&self.config.host);
        self.config
            .outlets
            .iter()
            .map(|o| format!("snmp://{host}:{}/outlet/{o}", self.config.port))
            .collect()
    }

    fn capabilities(&self) -> Capabilities {
        let mut actions = vec![Action::Off, Action::On];
        if self.config.profile.cycle.is_some() {
            actions.push(Action::Cycle);
        }
        Capabilities {
            channel: Channel::Outlet,
            authenticated_identity: self.authenticated(),
            outlets: self.config.outlets.len() as u32,
            ..Capabilities::readable(&actions)
        }
    }

    fn status(&self, deadline: Instant) -> DriverFuture<'_, PowerState> {
        Box::pin(async move {
            let mut conv = self.conversation(deadline).await?;
            let mut readings = Vec::with_capacity(self.config.outlets.len());
            for &outlet in &self.config.outlets {
                readings.push((outlet, self.read_outlet(&mut conv, outlet).await?));
            }
            self.note_engine(&conv);
            self.learn_identity(&mut conv).await;
            self.keep(conv);
            Ok(profile::aggregate(&readings))
        })
    }

    fn set_power(&self, action: Action, deadline: Instant) -> DriverFuture<'_, CommandReceipt> {
        Box::pin(async move {
            if action == Action::GracefulOff {
                return Err(DriverError::unsupported(format!(
                    "{}: a PDU outlet cannot ask the operating system to shut down",
                    self.endpoint
                )));
            }
            let mut conv = self.conversation(deadline).await?;
            for &outlet in &self.config.outlets {
                self.switch_outlet(&mut conv, action, outlet).await?;
            }
            self.note_engine(&conv);
            self.keep(conv);
            let outlets: Vec<String> = self.config.outlets.iter().map(u32::to_string).collect();
            Ok(CommandReceipt::new(format!(
                "SNMPv{} SET {action} accepted for outlet(s) {} (profile {})",
                self.config.credentials.version(),
                outlets.join(","),
                self.config.profile.name
            )))
        })
    }

    fn identity(&self) -> Vec<IdentityFact> {
        let learned = lock(&self.identity);
        let mut facts = learned.system.clone();
        if let Some(id) = &learned.engine_id {
            facts.push(IdentityFact::authenticated("snmp-engine-id", id.clone()));
        }
        facts
    }

    fn release(&self, _deadline: Instant) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            lock(&self.idle).take();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ber::tag;
    use crate::message;
    use fencegate_driver::{ErrorKind, SecretString};
    use std::time::Duration;
    use tokio::net::UdpSocket;

    /// APC outlet 4's state object, the one the driver asks for below.
    const OUTLET_4: &str = "1.3.6.1.4.1.318.1.1.4.4.2.1.3.4";
    const OUTLET_5: &str = "1.3.6.1.4.1.318.1.1.4.4.2.1.3.5";

    /// One raw varbind of a crafted answer: name, and the value's tag and content.
    type RawVarbind = (&'static str, u8, Vec<u8>);

    fn arcs(dotted: &str) -> Vec<u64> {
        dotted.split('.').map(|a| a.parse().unwrap()).collect()
    }

    /// A v2c Response with exactly these varbinds, whatever they are.
    fn response(request_id: i32, varbinds: &[RawVarbind]) -> Vec<u8> {
        let mut out = Vec::new();
        ber::put_with(&mut out, tag::SEQUENCE, |m| {
            ber::put_integer(m, tag::INTEGER, 1);
            ber::put(m, tag::OCTET_STRING, b"private");
            ber::put_with(m, message::pdu_tag::RESPONSE, |p| {
                ber::put_integer(p, tag::INTEGER, i64::from(request_id));
                ber::put_integer(p, tag::INTEGER, 0);
                ber::put_integer(p, tag::INTEGER, 0);
                ber::put_with(p, tag::SEQUENCE, |list| {
                    for (name, t, content) in varbinds {
                        ber::put_with(list, tag::SEQUENCE, |vb| {
                            ber::put_oid(vb, &arcs(name)).unwrap();
                            ber::put(vb, *t, content);
                        });
                    }
                });
            });
        });
        out
    }

    /// A v2c agent on 127.0.0.1 answering every request with `answer(request_id)`.
    async fn agent(
        answer: impl Fn(&message::Pdu) -> Vec<u8> + Send + 'static,
    ) -> std::net::SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(req) = message::parse_community(&buf[..n]) else {
                    continue;
                };
                let _ = socket.send_to(&answer(&req.pdu), peer).await;
            }
        });
        addr
    }

    async fn read_outlet_4(
        answer: impl Fn(i32) -> Vec<u8> + Send + 'static,
    ) -> Result<PowerState, DriverError> {
        let addr = agent(move |pdu| answer(pdu.request_id)).await;
        let mut spec = DeviceSpec {
            name: "pdu".into(),
            driver: "snmp".into(),
            address: addr.to_string(),
            path: Some("/outlet/4".into()),
            ..Default::default()
        };
        spec.secrets
            .insert("community".into(), SecretString::from("private"));
        spec.options.insert("timeout_ms".into(), "1000".into());
        spec.options.insert("retries".into(), "0".into());
        let d = SnmpPduFactory.build(&spec).unwrap();
        d.status(Instant::now() + Duration::from_secs(10)).await
    }

    async fn read_with(varbinds: Vec<RawVarbind>) -> Result<PowerState, DriverError> {
        read_outlet_4(move |id| response(id, &varbinds)).await
    }

    #[tokio::test]
    async fn the_fake_agent_can_say_off() {
        // The harness is able to produce an Off, so the refusals below mean something.
        let got = read_with(vec![(OUTLET_4, tag::INTEGER, vec![2])]).await;
        assert_eq!(got, Ok(PowerState::Off));
    }

    /// Asserts the reading is an error of `kind` naming the outlet's object and `shows`.
    fn refused(got: Result<PowerState, DriverError>, kind: ErrorKind, shows: &str) {
        let e = match got {
            Err(e) => e,
            Ok(s) => panic!("read as {s}, not refused"),
        };
        assert_eq!(e.kind, kind, "{e}");
        assert!(e.detail.contains(OUTLET_4), "the object is not named: {e}");
        assert!(e.detail.contains(shows), "{shows:?} is not named: {e}");
    }

    #[tokio::test]
    async fn no_varbind_is_no_reading() {
        refused(read_with(vec![]).await, ErrorKind::Protocol, "no value");
    }

    #[tokio::test]
    async fn a_value_for_another_object_is_no_reading() {
        let got = read_with(vec![(OUTLET_5, tag::INTEGER, vec![2])]).await;
        refused(got, ErrorKind::Protocol, OUTLET_5);
        // Nor when it comes first and the right one second.
        let got = read_with(vec![
            (OUTLET_5, tag::INTEGER, vec![2]),
            (OUTLET_4, tag::INTEGER, vec![2]),
        ])
        .await;
        refused(got, ErrorKind::Protocol, "carries 2");
    }

    #[tokio::test]
    async fn exceptions_are_no_reading() {
        for (t, name) in [
            (tag::NO_SUCH_OBJECT, "NoSuchObject"),
            (tag::NO_SUCH_INSTANCE, "NoSuchInstance"),
            (tag::END_OF_MIB_VIEW, "EndOfMibView"),
        ] {
            let got = read_with(vec![(OUTLET_4, t, vec![])]).await;
            refused(got, ErrorKind::Unsupported, name);
        }
    }

    #[tokio::test]
    async fn null_and_wrong_types_are_no_reading() {
        let got = read_with(vec![(OUTLET_4, tag::NULL, vec![])]).await;
        refused(got, ErrorKind::Protocol, "NULL");
        // The off value as text is still not an INTEGER.
        let got = read_with(vec![(OUTLET_4, tag::OCTET_STRING, b"2".to_vec())]).await;
        refused(got, ErrorKind::Protocol, "Text(\"2\")");
        let got = read_with(vec![(OUTLET_4, tag::GAUGE32, vec![2])]).await;
        refused(got, ErrorKind::Protocol, "Gauge32");
    }

    #[tokio::test]
    async fn an_unmapped_integer_is_unknown_verbatim() {
        let got = read_with(vec![(OUTLET_4, tag::INTEGER, vec![4])]).await;
        assert_eq!(got, Ok(PowerState::Unknown("outlet 4=4".into())));
        let got = read_with(vec![(OUTLET_4, tag::INTEGER, vec![0xfe])]).await;
        assert_eq!(got, Ok(PowerState::Unknown("outlet 4=-2".into())));
    }

    const ENGINE: &[u8] = b"\x80\x00\x1f\x88\x04fake-pdu";
    const AUTH_PASSWORD: &str = "authpass-fake";

    /// How the fake v3 agent answers requests after discovery.
    #[derive(Clone, Copy, PartialEq)]
    enum Agent {
        /// Outlet 4 off, signed with the key of the password it was given.
        Signs,
        /// Outlet 4 off, with a made-up MAC.
        Forges,
        /// Not at all (it answers only discovery, as an agent does that cannot decrypt).
        Silent,
    }

    /// A v3 agent on 127.0.0.1 that answers discovery with [`ENGINE`] and every request as
    /// `mode` says, as the SHA-1 user with `password`.
    async fn v3_agent(password: &str, mode: Agent) -> std::net::SocketAddr {
        use crate::message::{Pdu, UsmParams, V3Out, flags, pdu_tag};
        use crate::usm::AuthAlg;
        let key = if mode == Agent::Signs {
            let ku = AuthAlg::Sha1.password_key(password.as_bytes());
            AuthAlg::Sha1.localize(&ku, ENGINE)
        } else {
            zeroize::Zeroizing::new(Vec::new())
        };
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(req) = message::parse_v3(&buf[..n]) else {
                    continue;
                };
                let Ok(scoped) = message::parse_scoped(req.data) else {
                    continue;
                };
                let discovery = req.usm.engine_id.is_empty();
                if !discovery && mode == Agent::Silent {
                    continue;
                }
                let pdu = if discovery {
                    Pdu {
                        tag: pdu_tag::REPORT,
                        request_id: scoped.pdu.request_id,
                        error_status: 0,
                        error_index: 0,
                        varbinds: vec![(
                            vec![1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0],
                            message::Value::Integer(1),
                        )],
                    }
                } else {
                    Pdu {
                        tag: pdu_tag::RESPONSE,
                        varbinds: scoped
                            .pdu
                            .varbinds
                            .iter()
                            .map(|(name, _)| (name.clone(), message::Value::Integer(2)))
                            .collect(),
                        ..scoped.pdu.clone()
                    }
                };
                let data = message::scoped_pdu(ENGINE, b"", &pdu);
                let mac_len = if discovery { 0 } else { 12 };
                let (mut datagram, at) = message::v3_message(&V3Out {
                    msg_id: i32::try_from(req.msg_id).unwrap(),
                    flags: if discovery { 0 } else { flags::AUTH },
                    usm: UsmParams {
                        engine_id: ENGINE,
                        boots: 1,
                        time: 100,
                        user: if discovery { b"" } else { req.usm.user },
                        auth: &vec![0u8; mac_len],
                        privacy: b"",
                    },
                    data: &data,
                });
                if !discovery {
                    let mac = if mode == Agent::Forges {
                        vec![0x5a; 12]
                    } else {
                        AuthAlg::Sha1.sign(&key, &datagram).to_vec()
                    };
                    datagram[at].copy_from_slice(&mac);
                }
                let _ = socket.send_to(&datagram, peer).await;
            }
        });
        addr
    }

    /// An authNoPriv SHA-1 driver for outlet 4 of the agent at `addr`, with `password` and a
    /// single attempt of a generous wait unless `options` say otherwise.
    fn v3_driver(
        addr: std::net::SocketAddr,
        password: &str,
        options: &[(&str, &str)],
    ) -> Arc<dyn PowerDriver> {
        let mut spec = DeviceSpec {
            name: "pdu".into(),
            driver: "snmp".into(),
            address: addr.to_string(),
            path: Some("/outlet/4".into()),
            user: Some("fenceuser".into()),
            ..Default::default()
        };
        spec.secrets
            .insert("auth_password".into(), SecretString::from(password));
        for (k, v) in [
            ("version", "3"),
            ("security_level", "authNoPriv"),
            ("timeout_ms", "1000"),
            ("retries", "0"),
        ]
        .iter()
        .chain(options)
        {
            spec.options.insert((*k).into(), (*v).into());
        }
        SnmpPduFactory.build(&spec).unwrap()
    }

    #[tokio::test]
    async fn a_verified_v3_answer_proves_the_engine_id() {
        let d = v3_driver(
            v3_agent(AUTH_PASSWORD, Agent::Signs).await,
            AUTH_PASSWORD,
            &[],
        );
        let caps = d.capabilities();
        assert!(caps.authenticated_identity);
        assert_eq!(caps.channel, Channel::Outlet);
        assert!(d.identity().is_empty(), "nothing is known before a call");
        assert_eq!(
            d.status(Instant::now() + Duration::from_secs(10)).await,
            Ok(PowerState::Off)
        );
        let engine = IdentityFact::authenticated("snmp-engine-id", hex(ENGINE));
        assert_eq!(engine.value, "80001f880466616b652d706475");
        assert!(d.identity().contains(&engine), "{:?}", d.identity());
    }

    #[tokio::test]
    async fn an_engine_id_seen_only_in_discovery_is_never_authenticated() {
        // The discovery reply names the engine; the answer after it carries a forged MAC.
        let d = v3_driver(
            v3_agent(AUTH_PASSWORD, Agent::Forges).await,
            AUTH_PASSWORD,
            &[],
        );
        let e = d
            .status(Instant::now() + Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(e.kind.is_transient(), "{e}");
        let facts = d.identity();
        assert!(
            facts
                .iter()
                .all(|f| !f.authenticated && f.kind != "snmp-engine-id"),
            "{facts:?}"
        );
    }

    #[tokio::test]
    async fn a_driver_derives_its_password_key_once_not_per_session() {
        use crate::usm::derivations;
        const PASSWORD: &str = "authpass-once-per-driver";
        let addr = v3_agent(PASSWORD, Agent::Signs).await;
        // The agent derived its own copy of the key.
        let before = derivations::of(PASSWORD.as_bytes());
        let d = v3_driver(addr, PASSWORD, &[]);
        assert_eq!(
            derivations::of(PASSWORD.as_bytes()),
            before,
            "built without hashing"
        );
        for _ in 0..3 {
            let deadline = Instant::now() + Duration::from_secs(10);
            assert_eq!(d.status(deadline).await, Ok(PowerState::Off));
            // The engine releases the driver after every operation, so the next one opens a
            // fresh session: new discovery, new localization, the same password key.
            d.release(deadline).await.unwrap();
        }
        assert_eq!(derivations::of(PASSWORD.as_bytes()) - before, 1);
    }

    #[tokio::test]
    async fn a_call_out_of_time_for_the_keys_times_out_and_the_keys_are_kept() {
        use crate::usm::derivations;
        const PASSWORD: &str = "authpass-out-of-time";
        let addr = v3_agent(PASSWORD, Agent::Signs).await;
        let before = derivations::of(PASSWORD.as_bytes());
        let d = v3_driver(addr, PASSWORD, &[]);
        // No time at all: the call waits neither for the keys nor for the agent.
        let e = d.status(Instant::now()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
        // The derivation it started finishes on its own and serves the next call, which
        // waits for it rather than deriving again.
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(d.status(deadline).await, Ok(PowerState::Off));
        assert_eq!(derivations::of(PASSWORD.as_bytes()) - before, 1);
    }

    #[tokio::test]
    async fn retries_and_probes_derive_no_key_again() {
        use crate::usm::derivations;
        const AUTH: &str = "authpass-retries-and-probes";
        const PRIV: &str = "privpass-retries-and-probes";
        let addr = v3_agent(AUTH, Agent::Silent).await;
        let mut spec = DeviceSpec {
            name: "pdu".into(),
            driver: "snmp".into(),
            address: addr.to_string(),
            path: Some("/outlet/4".into()),
            user: Some("fenceuser".into()),
            ..Default::default()
        };
        spec.secrets
            .insert("auth_password".into(), SecretString::from(AUTH));
        spec.secrets
            .insert("priv_password".into(), SecretString::from(PRIV));
        // authPriv: three attempts, then the two probes (our own credentials, and the user
        // without privacy), each on a fresh session.
        for (k, v) in [("version", "3"), ("timeout_ms", "200"), ("retries", "2")] {
            spec.options.insert(k.into(), v.into());
        }
        let d = SnmpPduFactory.build(&spec).unwrap();
        let e = d
            .status(Instant::now() + Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
        assert!(e.detail.contains("3 attempt(s) failed"), "{e}");
        assert_eq!(derivations::of(AUTH.as_bytes()), 1, "authentication key");
        assert_eq!(derivations::of(PRIV.as_bytes()), 1, "privacy key");
    }

    #[tokio::test]
    async fn a_community_proves_nothing_about_the_pdu() {
        let addr = agent(|pdu| {
            let asks_outlet =
                pdu.varbinds.first().map(|(n, _)| n.as_slice()) == Some(arcs(OUTLET_4).as_slice());
            if asks_outlet {
                response(pdu.request_id, &[(OUTLET_4, tag::INTEGER, vec![2])])
            } else {
                response(
                    pdu.request_id,
                    &[
                        ("1.3.6.1.2.1.1.5.0", tag::OCTET_STRING, b"pdu-a".to_vec()),
                        ("1.3.6.1.2.1.1.2.0", tag::OID, vec![0x2b, 6, 1]),
                    ],
                )
            }
        })
        .await;
        let mut spec = DeviceSpec {
            name: "pdu".into(),
            driver: "snmp".into(),
            address: addr.to_string(),
            path: Some("/outlet/4".into()),
            ..Default::default()
        };
        spec.secrets
            .insert("community".into(), SecretString::from("private"));
        let d = SnmpPduFactory.build(&spec).unwrap();
        let caps = d.capabilities();
        assert!(!caps.authenticated_identity);
        assert_eq!(caps.channel, Channel::Outlet);
        d.status(Instant::now() + Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(
            d.identity(),
            [
                IdentityFact::new("snmp-sysname", "pdu-a"),
                IdentityFact::new("snmp-sysobjectid", "1.3.6.1"),
            ]
        );
    }

    #[tokio::test]
    async fn an_empty_datagram_is_no_reading() {
        let got = read_outlet_4(|_| Vec::new()).await;
        let e = got.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    }
}
