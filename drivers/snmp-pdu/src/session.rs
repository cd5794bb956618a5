//! One SNMP session with one agent over a connected UDP socket: v1/v2c with a community,
//! or v3 with USM (engine discovery, time synchronisation, authentication, AES privacy).
//!
//! A session has no clock of its own: the caller bounds every call with a timeout and
//! throws the session away after an unanswered one (see [`crate::client`]). Answers that
//! do not belong to the request in flight (stale request ids, foreign message ids, a
//! response failing its authentication check) are skipped, never taken for the answer.
//! An unauthenticated answer to an authenticated request can only ever be an error.

use crate::message::{self, CommunityMessage, Pdu, UsmParams, V3Out, flags, pdu_tag, version};
use crate::usm::{AuthAlg, PrivAlg, UserKeys, aes_cfb, aes_iv};
use fencegate_driver::{ExposeSecret, SecretString};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;
use tokio::net::UdpSocket;
use zeroize::Zeroizing;

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnmpError {
    /// ICMP port unreachable came back: nothing listens there.
    Refused,
    /// The socket could not be opened or the datagram not sent.
    Io(String),
    /// An answer arrived that is not a valid SNMP message.
    Malformed(String),
    /// The agent answered with a Report: refused at the security layer.
    Report(Report),
    /// The configuration asks for something this agent relationship cannot do.
    Unsupported(String),
}

impl SnmpError {
    /// Whether the agent sent anything back at all.
    pub fn answered(&self) -> bool {
        matches!(self, SnmpError::Malformed(_) | SnmpError::Report(_))
    }
}

/// The Report PDUs of RFC 3414 §5 and RFC 3412 §5 the driver tells apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// usmStatsUnsupportedSecLevels: the user may not use this security level.
    UnsupportedSecLevel,
    /// usmStatsNotInTimeWindows: our idea of the engine's clock is stale.
    NotInTimeWindow,
    /// usmStatsUnknownUserNames.
    UnknownUserName,
    /// usmStatsUnknownEngineIDs: discovery needed.
    UnknownEngineId,
    /// usmStatsWrongDigests: wrong authentication key.
    WrongDigest,
    /// usmStatsDecryptionErrors: wrong privacy key.
    DecryptionError,
    /// snmpUnknownContexts / snmpUnavailableContexts.
    UnknownContext,
    /// Any other report, by OID.
    Other(String),
}

impl Report {
    fn from_pdu(pdu: &Pdu) -> Report {
        const USM_STATS: [u64; 9] = [1, 3, 6, 1, 6, 3, 15, 1, 1];
        const MPD_CONTEXTS: [u64; 8] = [1, 3, 6, 1, 6, 3, 12, 1];
        let Some((oid, _)) = pdu.varbinds.first() else {
            return Report::Other("(empty report)".into());
        };
        match oid.as_slice() {
            [head @ .., n, 0] if head == USM_STATS => match n {
                1 => Report::UnsupportedSecLevel,
                2 => Report::NotInTimeWindow,
                3 => Report::UnknownUserName,
                4 => Report::UnknownEngineId,
                5 => Report::WrongDigest,
                6 => Report::DecryptionError,
                _ => Report::Other(crate::profile::dotted(oid)),
            },
            [head @ .., 4 | 5, 0] if head == MPD_CONTEXTS => Report::UnknownContext,
            _ => Report::Other(crate::profile::dotted(oid)),
        }
    }
}

/// Request and message ids: a random start, so that answers to an earlier session's
/// requests cannot match, then counting up (never 0 or negative).
struct Ids(i32);

impl Ids {
    fn new() -> Ids {
        let mut b = [0u8; 4];
        // Without entropy the start is merely predictable, not wrong.
        let _ = getrandom::fill(&mut b);
        Ids((i32::from_be_bytes(b) & 0x3fff_ffff).max(1))
    }

    fn next(&mut self) -> i32 {
        self.0 = if self.0 >= i32::MAX - 1 {
            1
        } else {
            self.0 + 1
        };
        self.0
    }
}

/// What USM needs to talk to one engine.
struct Usm {
    user: Vec<u8>,
    context: Vec<u8>,
    auth: AuthAlg,
    /// Localized authentication key.
    auth_key: Zeroizing<Vec<u8>>,
    /// Privacy protocol and localized key, cut to the cipher's length.
    privacy: Option<(PrivAlg, Zeroizing<Vec<u8>>)>,
    engine: Engine,
    salt: u64,
    /// Whether a message from `engine` passed its MAC check. Until then its ID is only what
    /// the unauthenticated discovery reply claimed, which anyone on the path can forge.
    proven: bool,
}

/// The authoritative engine as last heard from.
struct Engine {
    id: Vec<u8>,
    boots: i64,
    time: i64,
    heard: Instant,
}

impl Engine {
    /// The engine's time now, by our clock since we last heard it.
    fn time_now(&self) -> i64 {
        let elapsed = i64::try_from(self.heard.elapsed().as_secs()).unwrap_or(i64::MAX);
        self.time.saturating_add(elapsed).min(i64::from(i32::MAX))
    }

    /// Take an authenticated message's clock when it is newer (RFC 3414 §3.2.7 b).
    fn observe(&mut self, boots: i64, time: i64) {
        if boots > self.boots || (boots == self.boots && time > self.time_now()) {
            self.boots = boots;
            self.time = time;
            self.heard = Instant::now();
        }
    }
}

enum Security {
    Community {
        version: i64,
        community: Zeroizing<Vec<u8>>,
    },
    Usm(Box<Usm>),
}

/// A session with one agent.
pub struct Session {
    socket: UdpSocket,
    ids: Ids,
    security: Security,
    buf: Vec<u8>,
}

/// What a session authenticates with, borrowed from its driver: a community, or an SNMPv3
/// user with its password keys. The keys come already derived (a megabyte of hashing each,
/// done once per driver); a session only localizes them to the engine it discovers.
#[derive(Clone, Copy)]
pub enum Secrets<'a> {
    /// SNMPv1 (`v1`) or v2c with a community.
    Community {
        /// `true` for v1, `false` for v2c.
        v1: bool,
        /// The community.
        community: &'a SecretString,
    },
    /// SNMPv3 USM.
    Usm {
        /// The USM user name.
        user: &'a str,
        /// The context name.
        context: &'a str,
        /// The user's password keys.
        keys: &'a UserKeys,
        /// Whether requests are encrypted (authPriv); `false` also when `keys` have a
        /// privacy key, for the probe that asks without it.
        privacy: bool,
    },
}

impl<'a> Secrets<'a> {
    /// The same user without privacy, when these secrets use it: an agent that ignores
    /// every encrypted request but answers this proves only the privacy key wrong.
    pub fn without_privacy(self) -> Option<Secrets<'a>> {
        match self {
            Secrets::Usm {
                user,
                context,
                keys,
                privacy: true,
            } => Some(Secrets::Usm {
                user,
                context,
                keys,
                privacy: false,
            }),
            _ => None,
        }
    }

    /// Whether these are a v1/v2c community (no authenticated identity, no privacy).
    pub fn is_community(&self) -> bool {
        matches!(self, Secrets::Community { .. })
    }
}

/// A UDP socket connected to the agent, so that ICMP errors come back as `Refused`.
async fn connect(host: &str, port: u16) -> Result<UdpSocket, SnmpError> {
    let io = |e: io::Error| SnmpError::Io(format!("cannot reach {host}:{port}: {e}"));
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(io)?
        .next()
        .ok_or_else(|| SnmpError::Io(format!("{host} has no address")))?;
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(addr).await.map_err(io)?;
    Ok(socket)
}

async fn send(socket: &UdpSocket, datagram: &[u8]) -> Result<(), SnmpError> {
    match socket.send(datagram).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(SnmpError::Refused),
        Err(e) => Err(SnmpError::Io(format!("cannot send: {e}"))),
    }
}

async fn recv<'b>(socket: &UdpSocket, buf: &'b mut [u8]) -> Result<&'b [u8], SnmpError> {
    match socket.recv(buf).await {
        Ok(n) => Ok(&buf[..n]),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(SnmpError::Refused),
        Err(e) => Err(SnmpError::Io(format!("cannot receive: {e}"))),
    }
}

fn malformed(e: impl std::fmt::Display) -> SnmpError {
    SnmpError::Malformed(e.to_string())
}

/// The agent's engine, learned from a discovery exchange (RFC 3414 §4).
async fn discover_on(
    socket: &UdpSocket,
    ids: &mut Ids,
    buf: &mut [u8],
) -> Result<Engine, SnmpError> {
    let msg_id = ids.next();
    let scoped = message::scoped_pdu(b"", b"", &Pdu::get(ids.next(), &[]));
    let (datagram, _) = message::v3_message(&V3Out {
        msg_id,
        flags: flags::REPORTABLE,
        usm: UsmParams {
            engine_id: b"",
            boots: 0,
            time: 0,
            user: b"",
            auth: b"",
            privacy: b"",
        },
        data: &scoped,
    });
    send(socket, &datagram).await?;
    loop {
        let answer = recv(socket, buf).await?;
        let m = message::parse_v3(answer).map_err(malformed)?;
        if m.msg_id != i64::from(msg_id) {
            continue;
        }
        if m.usm.engine_id.is_empty() {
            return Err(malformed("the discovery answer names no engine"));
        }
        return Ok(Engine {
            id: m.usm.engine_id.to_vec(),
            boots: m.usm.boots,
            time: m.usm.time,
            heard: Instant::now(),
        });
    }
}

/// Whether the agent at `host:port` answers SNMPv3 engine discovery: it needs no secret,
/// so an answer proves the agent alive whatever our credentials. Unbounded: the caller
/// times it out.
pub async fn discover(host: &str, port: u16) -> Result<(), SnmpError> {
    let socket = connect(host, port).await?;
    let mut buf = vec![0u8; 65_536];
    discover_on(&socket, &mut Ids::new(), &mut buf)
        .await
        .map(drop)
}

impl Session {
    /// Open a session: a socket, and for v3 engine discovery and key localization (one
    /// short hash per key: the password keys come derived). Unbounded: the caller times it
    /// out.
    pub async fn open(host: &str, port: u16, secrets: Secrets<'_>) -> Result<Session, SnmpError> {
        let socket = connect(host, port).await?;
        let mut ids = Ids::new();
        let mut buf = vec![0u8; 65_536];
        let security = match secrets {
            Secrets::Community { v1, community } => Security::Community {
                version: if v1 { version::V1 } else { version::V2C },
                community: Zeroizing::new(community.expose_secret().as_bytes().to_vec()),
            },
            Secrets::Usm {
                user,
                context,
                keys,
                privacy,
            } => {
                let engine = discover_on(&socket, &mut ids, &mut buf).await?;
                let auth = keys.auth();
                let auth_key = keys.auth_key(&engine.id);
                let privacy = match privacy.then(|| keys.priv_key(&engine.id)).flatten() {
                    None => None,
                    Some((alg, mut key)) => {
                        if key.len() < alg.key_len() {
                            return Err(SnmpError::Unsupported(format!(
                                "{alg:?} needs a {}-byte key but {auth:?} localizes only {} \
                                 bytes and no key extension is done; use auth_protocol = \
                                 \"sha256\" or \"sha512\", or priv_protocol = \"aes\"",
                                alg.key_len(),
                                key.len()
                            )));
                        }
                        key.truncate(alg.key_len());
                        Some((alg, key))
                    }
                };
                let mut salt = [0u8; 8];
                let _ = getrandom::fill(&mut salt);
                Security::Usm(Box::new(Usm {
                    user: user.as_bytes().to_vec(),
                    context: context.as_bytes().to_vec(),
                    auth,
                    auth_key,
                    privacy,
                    engine,
                    salt: u64::from_be_bytes(salt),
                    proven: false,
                }))
            }
        };
        Ok(Session {
            socket,
            ids,
            security,
            buf,
        })
    }

    /// The SNMPv3 authoritative engine ID, once a message from it passed its MAC check
    /// (`None` for v1/v2c, and for v3 while only the discovery reply named it).
    pub fn authenticated_engine_id(&self) -> Option<&[u8]> {
        match &self.security {
            Security::Usm(usm) if usm.proven => Some(&usm.engine.id),
            _ => None,
        }
    }

    /// GET `oids`; the Response PDU.
    pub async fn get(&mut self, oids: &[Vec<u64>]) -> Result<Pdu, SnmpError> {
        self.exchange(Pdu::get(0, oids)).await
    }

    /// SET one INTEGER; the Response PDU.
    pub async fn set(&mut self, oid: &[u64], value: i64) -> Result<Pdu, SnmpError> {
        self.exchange(Pdu::set(0, oid, value)).await
    }

    async fn exchange(&mut self, mut pdu: Pdu) -> Result<Pdu, SnmpError> {
        pdu.request_id = self.ids.next();
        match &mut self.security {
            Security::Community { version, community } => {
                let datagram = message::community_message(*version, community, &pdu);
                send(&self.socket, &datagram).await?;
                loop {
                    let answer = recv(&self.socket, &mut self.buf).await?;
                    let CommunityMessage {
                        version: v,
                        community: c,
                        pdu: reply,
                    } = message::parse_community(answer).map_err(malformed)?;
                    if v == *version
                        && c == community.as_slice()
                        && reply.request_id == pdu.request_id
                        && reply.tag == pdu_tag::RESPONSE
                    {
                        return Ok(reply);
                    }
                }
            }
            Security::Usm(usm) => {
                // One resend after the agent corrected our idea of its clock.
                match usm_exchange(&self.socket, &mut self.ids, &mut self.buf, usm, &pdu).await {
                    Err(SnmpError::Report(Report::NotInTimeWindow)) => {
                        pdu.request_id = self.ids.next();
                        usm_exchange(&self.socket, &mut self.ids, &mut self.buf, usm, &pdu).await
                    }
                    other => other,
                }
            }
        }
    }
}

/// One authenticated (and, if configured, encrypted) request and its answer.
async fn usm_exchange(
    socket: &UdpSocket,
    ids: &mut Ids,
    buf: &mut [u8],
    usm: &mut Usm,
    pdu: &Pdu,
) -> Result<Pdu, SnmpError> {
    let msg_id = ids.next();
    let boots = usm.engine.boots;
    let time = usm.engine.time_now();
    let mut data = message::scoped_pdu(&usm.engine.id, &usm.context, pdu);
    let mut msg_flags = flags::AUTH | flags::REPORTABLE;
    let mut salt = [0u8; 8];
    if let Some((alg, key)) = &usm.privacy {
        usm.salt = usm.salt.wrapping_add(1);
        salt = usm.salt.to_be_bytes();
        aes_cfb(*alg, key, &aes_iv(boots, time, &salt), &mut data, true);
        msg_flags |= flags::PRIV;
    }
    let placeholder = vec![0u8; usm.auth.mac_len()];
    let (mut datagram, mac_at) = message::v3_message(&V3Out {
        msg_id,
        flags: msg_flags,
        usm: UsmParams {
            engine_id: &usm.engine.id,
            boots,
            time,
            user: &usm.user,
            auth: &placeholder,
            privacy: if usm.privacy.is_some() { &salt } else { b"" },
        },
        data: &data,
    });
    let mac = usm.auth.sign(&usm.auth_key, &datagram);
    datagram[mac_at].copy_from_slice(&mac);
    send(socket, &datagram).await?;
    loop {
        let answer = recv(socket, buf).await?;
        if let Some(done) = judge_answer(usm, answer, msg_id, pdu.request_id) {
            return done;
        }
    }
}

/// Read one datagram that arrived for a v3 request: `None` when it is not the answer
/// (another message, or one failing its authentication check) and the wait goes on.
fn judge_answer(
    usm: &mut Usm,
    answer: &[u8],
    msg_id: i32,
    request_id: i32,
) -> Option<Result<Pdu, SnmpError>> {
    let m = match message::parse_v3(answer) {
        Ok(m) => m,
        Err(e) => return Some(Err(malformed(e))),
    };
    if m.msg_id != i64::from(msg_id) {
        return None;
    }
    let authenticated = m.flags & flags::AUTH != 0
        && m.usm.engine_id == usm.engine.id.as_slice()
        && m.usm.user == usm.user.as_slice()
        && {
            let mut zeroed = answer.to_vec();
            zeroed[m.auth_range.clone()].fill(0);
            usm.auth.verify(&usm.auth_key, &zeroed, m.usm.auth)
        };
    if !authenticated {
        // Forged, corrupted, or an unauthenticated report (wrong user or key). Only the
        // report is worth reading, and only as a refusal.
        if m.flags & (flags::AUTH | flags::PRIV) != 0 {
            return None;
        }
        let scoped = message::parse_scoped(m.data).ok()?;
        return (scoped.pdu.tag == pdu_tag::REPORT)
            .then(|| Err(SnmpError::Report(Report::from_pdu(&scoped.pdu))));
    }
    // The MAC covers the engine ID and was keyed with the key localized to it: the agent
    // proved it is this engine (or holds this engine's key).
    usm.proven = true;
    usm.engine.observe(m.usm.boots, m.usm.time);
    let plain = if m.flags & flags::PRIV != 0 {
        let (Some((alg, key)), Ok(salt)) = (&usm.privacy, <[u8; 8]>::try_from(m.usm.privacy))
        else {
            return Some(Err(malformed(
                "an encrypted answer without usable privacy parameters",
            )));
        };
        let mut plain = m.data.to_vec();
        aes_cfb(
            *alg,
            key,
            &aes_iv(m.usm.boots, m.usm.time, &salt),
            &mut plain,
            false,
        );
        plain
    } else {
        m.data.to_vec()
    };
    let scoped = match message::parse_scoped(&plain) {
        Ok(s) => s,
        Err(e) => {
            return Some(Err(malformed(format!(
                "the answer does not decrypt to a scoped PDU ({e})"
            ))));
        }
    };
    if scoped.pdu.tag == pdu_tag::REPORT {
        return Some(Err(SnmpError::Report(Report::from_pdu(&scoped.pdu))));
    }
    if usm.privacy.is_some() && m.flags & flags::PRIV == 0 {
        return Some(Err(malformed(
            "an unencrypted answer to an encrypted request",
        )));
    }
    if scoped.pdu.request_id != request_id || scoped.pdu.tag != pdu_tag::RESPONSE {
        return None;
    }
    Some(Ok(scoped.pdu))
}

/// Run every decoder, and the v3 answer path with fixed keys, on arbitrary bytes: the fuzz
/// target's body. None may panic, and a PDU that decodes encodes to bytes that decode to it
/// again (values we never send come back as NULL, which is how they are encoded).
pub fn fuzz_one(data: &[u8]) {
    fn sendable(pdu: &Pdu) -> Pdu {
        use message::Value;
        let mut pdu = pdu.clone();
        for (_, value) in &mut pdu.varbinds {
            if !matches!(
                value,
                Value::Integer(_) | Value::OctetString(_) | Value::Null | Value::Oid(_)
            ) {
                *value = Value::Null;
            }
        }
        pdu
    }
    if let Ok(m) = message::parse_community(data) {
        let again = message::community_message(m.version, m.community, &m.pdu);
        let back = message::parse_community(&again).expect("an encoded message decodes");
        assert_eq!((back.version, back.community), (m.version, m.community));
        assert_eq!(back.pdu, sendable(&m.pdu));
    }
    if let Ok(s) = message::parse_scoped(data) {
        let again = message::scoped_pdu(b"", b"", &s.pdu);
        let back = message::parse_scoped(&again).expect("an encoded scoped PDU decodes");
        assert_eq!(back.pdu, sendable(&s.pdu));
    }
    for privacy in [None, Some(PrivAlg::Aes128), Some(PrivAlg::Aes256)] {
        let mut usm = Usm {
            user: b"fenceuser".to_vec(),
            context: Vec::new(),
            auth: AuthAlg::Sha256,
            auth_key: Zeroizing::new(vec![0x5a; 32]),
            privacy: privacy.map(|alg| (alg, Zeroizing::new(vec![0xa5; alg.key_len()]))),
            engine: Engine {
                id: b"\x80\x00\x1f\x88\x04fuzz".to_vec(),
                boots: 1,
                time: 1,
                heard: Instant::now(),
            },
            salt: 0,
            proven: false,
        };
        // Whatever msgID the input carries, so that the deeper paths are reached too.
        let msg_id = message::parse_v3(data)
            .ok()
            .and_then(|m| i32::try_from(m.msg_id).ok())
            .unwrap_or(1);
        let _ = judge_answer(&mut usm, data, msg_id, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Value;
    use std::sync::LazyLock;
    use std::time::Duration;

    const ENGINE: &[u8] = b"\x80\x00\x1f\x88\x04fake";
    const PASSWORD: &str = "authpass-fake";

    /// The user's password key (a megabyte of hashing: derived once for all tests).
    static USER_KEYS: LazyLock<UserKeys> =
        LazyLock::new(|| UserKeys::derive(AuthAlg::Sha1, PASSWORD.as_bytes(), None));

    fn secrets() -> Secrets<'static> {
        Secrets::Usm {
            user: "fenceuser",
            context: "",
            keys: &USER_KEYS,
            privacy: false,
        }
    }

    /// A v3 answer from the fake agent, signed with `key` (or not at all when `None`).
    fn answer(msg_id: i64, pdu: &Pdu, user: &[u8], key: Option<&[u8]>) -> Vec<u8> {
        let scoped = message::scoped_pdu(ENGINE, b"", pdu);
        let mac = vec![0u8; if key.is_some() { 12 } else { 0 }];
        let (mut datagram, at) = message::v3_message(&V3Out {
            msg_id: msg_id as i32,
            flags: if key.is_some() { flags::AUTH } else { 0 },
            usm: UsmParams {
                engine_id: ENGINE,
                boots: 1,
                time: 100,
                user,
                auth: &mac,
                privacy: b"",
            },
            data: &scoped,
        });
        if let Some(key) = key {
            let mac = AuthAlg::Sha1.sign(key, &datagram);
            datagram[at].copy_from_slice(&mac);
        }
        datagram
    }

    /// A fake agent that answers discovery, then answers the first request with each of
    /// `replies` in turn (built from the request's msgID and request-id). Claims outlet off.
    async fn fake_agent(
        replies: Vec<fn(i64, i32) -> Vec<u8>>,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            let (n, peer) = socket.recv_from(&mut buf).await.unwrap();
            let discovery = message::parse_v3(&buf[..n]).unwrap();
            let report = Pdu {
                tag: pdu_tag::REPORT,
                request_id: 0,
                error_status: 0,
                error_index: 0,
                varbinds: vec![(vec![1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0], Value::Integer(1))],
            };
            let reply = answer(discovery.msg_id, &report, b"", None);
            socket.send_to(&reply, peer).await.unwrap();
            let (n, peer) = socket.recv_from(&mut buf).await.unwrap();
            let request = message::parse_v3(&buf[..n]).unwrap();
            let scoped = message::parse_scoped(request.data).unwrap();
            for reply in replies {
                let datagram = reply(request.msg_id, scoped.pdu.request_id);
                socket.send_to(&datagram, peer).await.unwrap();
            }
        });
        (addr, task)
    }

    fn outlet_off(request_id: i32) -> Pdu {
        Pdu {
            tag: pdu_tag::RESPONSE,
            request_id,
            error_status: 0,
            error_index: 0,
            varbinds: vec![(vec![1, 3, 6, 1, 4, 1, 318, 1], Value::Integer(2))],
        }
    }

    /// The fake agent's localized key.
    fn key() -> Zeroizing<Vec<u8>> {
        USER_KEYS.auth_key(ENGINE)
    }

    async fn get_through(replies: Vec<fn(i64, i32) -> Vec<u8>>) -> Option<Result<Pdu, SnmpError>> {
        get_through_session(replies).await.0
    }

    /// Like [`get_through`], also giving the session afterwards.
    async fn get_through_session(
        replies: Vec<fn(i64, i32) -> Vec<u8>>,
    ) -> (Option<Result<Pdu, SnmpError>>, Session) {
        let (addr, agent) = fake_agent(replies).await;
        let mut session = Session::open("127.0.0.1", addr.port(), secrets())
            .await
            .unwrap();
        let got = tokio::time::timeout(
            Duration::from_millis(300),
            session.get(&[vec![1, 3, 6, 1, 4, 1, 318, 1]]),
        )
        .await
        .ok();
        agent.abort();
        (got, session)
    }

    #[tokio::test]
    async fn the_engine_id_is_proven_only_by_a_verified_answer() {
        let (got, session) = get_through_session(vec![|msg, req| {
            answer(msg, &outlet_off(req), b"fenceuser", Some(&key()))
        }])
        .await;
        assert!(matches!(got, Some(Ok(_))), "{got:?}");
        assert_eq!(session.authenticated_engine_id(), Some(ENGINE));

        // Discovery named the engine, but every answer after it was forged or unsigned.
        let (got, session) = get_through_session(vec![
            |msg, req| {
                answer(
                    msg,
                    &outlet_off(req),
                    b"fenceuser",
                    Some(b"wrong key 123456"),
                )
            },
            |msg, req| answer(msg, &outlet_off(req), b"fenceuser", None),
        ])
        .await;
        assert!(got.is_none(), "{got:?}");
        assert_eq!(session.authenticated_engine_id(), None);
    }

    #[tokio::test]
    async fn a_correctly_signed_answer_is_taken() {
        let got = get_through(vec![|msg, req| {
            answer(msg, &outlet_off(req), b"fenceuser", Some(&key()))
        }])
        .await;
        let pdu = got.expect("answered").expect("taken");
        assert_eq!(pdu.varbinds, outlet_off(0).varbinds);
    }

    #[tokio::test]
    async fn forged_and_unsigned_answers_are_never_taken_for_the_reading() {
        // A wrong MAC, an unsigned response, one for another user: all skipped, so the
        // request goes unanswered rather than reading "off".
        let got = get_through(vec![
            |msg, req| {
                answer(
                    msg,
                    &outlet_off(req),
                    b"fenceuser",
                    Some(b"wrong key 123456"),
                )
            },
            |msg, req| answer(msg, &outlet_off(req), b"fenceuser", None),
            |msg, req| answer(msg, &outlet_off(req), b"someoneelse", Some(&key())),
        ])
        .await;
        assert!(got.is_none(), "a forged answer was taken: {got:?}");
    }

    proptest::proptest! {
        #[test]
        fn the_answer_path_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            fuzz_one(&bytes);
        }

        #[test]
        fn mutated_signed_answers_never_panic_and_never_pass(
            flips in proptest::collection::vec((0usize..200, 1u8..=255), 1..4),
        ) {
            let mut usm = Usm {
                user: b"fenceuser".to_vec(),
                context: Vec::new(),
                auth: AuthAlg::Sha1,
                auth_key: key(),
                privacy: None,
                engine: Engine { id: ENGINE.to_vec(), boots: 1, time: 100, heard: Instant::now() },
                salt: 0,
                proven: false,
            };
            let good = answer(9, &outlet_off(5), b"fenceuser", Some(&key()));
            assert!(matches!(judge_answer(&mut usm, &good, 9, 5), Some(Ok(_))));
            let mut bad = good.clone();
            for (at, x) in flips {
                let at = at % bad.len();
                bad[at] ^= x;
            }
            // Two flips of one byte can cancel out: that is no change, so nothing to judge.
            proptest::prop_assume!(bad != good);
            // Any change to a signed answer either breaks it or fails its MAC.
            proptest::prop_assert!(!matches!(judge_answer(&mut usm, &bad, 9, 5), Some(Ok(_))));
        }
    }

    #[tokio::test]
    async fn an_unsigned_report_is_an_error_never_data() {
        let got = get_through(vec![|msg, _| {
            let report = Pdu {
                tag: pdu_tag::REPORT,
                request_id: 0,
                error_status: 0,
                error_index: 0,
                varbinds: vec![(vec![1, 3, 6, 1, 6, 3, 15, 1, 1, 5, 0], Value::Integer(1))],
            };
            answer(msg, &report, b"fenceuser", None)
        }])
        .await;
        assert_eq!(
            got.unwrap().unwrap_err(),
            SnmpError::Report(Report::WrongDigest)
        );
    }
}
