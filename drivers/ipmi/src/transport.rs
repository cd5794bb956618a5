//! One RMCP+ conversation over a connected UDP socket: bounded retransmission under a
//! deadline, the handshake, in-session requests and a best-effort Close Session.

use fencegate_driver::DriverError;
use fencegate_ipmi_codec::commands::{
    self, AuthCapabilities, CMD_CLOSE_SESSION, CMD_GET_CHANNEL_AUTH_CAPS,
    CMD_GET_CHANNEL_CIPHER_SUITES, CMD_SET_SESSION_PRIVILEGE, NETFN_APP, Privilege,
};
use fencegate_ipmi_codec::crypto::CipherSuite;
use fencegate_ipmi_codec::message::{self, RequestHeader, completion_text};
use fencegate_ipmi_codec::rakp::{self, status_text};
use fencegate_ipmi_codec::rmcp::{self, Packet, PayloadType};
use fencegate_ipmi_codec::session::{
    ClientHandshake, Credentials, HandshakeError, RejectReason, Session,
};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Largest datagram we accept; RMCP+ replies for our commands are well under 200 bytes.
const MAX_DATAGRAM: usize = 1024;
/// Cap of the retransmission backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Retransmission policy for one exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    /// Wait before the first retransmission; grows by this much after each one (linear
    /// backoff, so a lossy path is not punished exponentially), up to [`MAX_BACKOFF`].
    pub first: Duration,
    /// Retransmissions after the first send.
    pub retries: u32,
}

/// One IPMI command to send: its name (for errors), network function, number and data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cmd<'d> {
    pub what: &'static str,
    pub netfn: u8,
    pub cmd: u8,
    pub data: &'d [u8],
}

/// What the accept function of an exchange decided about one datagram.
pub(crate) enum Accept<T> {
    /// The awaited answer.
    Done(T),
    /// Not the answer (a late reply to an earlier transmission, a duplicate): keep waiting.
    Ignore,
    /// A malformed or unverifiable datagram: dropped, and remembered so that an exchange
    /// that only ever got such replies ends as a protocol error rather than a timeout.
    Malformed(&'static str),
    /// A definitive failure: stop now.
    Fail(DriverError),
}

/// A UDP conversation with one BMC.
pub(crate) struct Conn {
    sock: UdpSocket,
    target: Arc<str>,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    scratch: Vec<u8>,
    /// Whether the BMC has sent anything at all during this call.
    answered: bool,
    /// Why the last malformed datagram was dropped, if any was.
    last_malformed: Option<&'static str>,
    /// The IPMI sequence number (rqSeq) of the last sessionless request: each one gets its
    /// own, so that a request asked again to confirm an answer is answered afresh, not by a
    /// late reply to the first asking.
    sessionless_seq: u8,
}

fn passed(deadline: Instant) -> bool {
    Instant::now() >= deadline
}

impl Conn {
    /// A socket bound to the BMC's address family and connected to it, so the kernel drops
    /// datagrams from anyone else and ICMP errors surface.
    pub(crate) async fn connect(addr: SocketAddr, target: Arc<str>) -> Result<Self, DriverError> {
        let local: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let io_err = |e: io::Error| DriverError::unreachable(format!("{target}: {e}"));
        let sock = UdpSocket::bind(local).await.map_err(io_err)?;
        sock.connect(addr).await.map_err(io_err)?;
        Ok(Conn {
            sock,
            target,
            out: Vec::with_capacity(256),
            inbuf: vec![0; MAX_DATAGRAM],
            scratch: Vec::with_capacity(256),
            answered: false,
            last_malformed: None,
            sessionless_seq: 0,
        })
    }

    /// Start a new driver call on this connection: what "no answer yet" means is per call,
    /// so a BMC that died since the last call is reported unreachable, not as a timeout.
    pub(crate) fn begin_call(&mut self) {
        self.answered = false;
        self.last_malformed = None;
    }

    /// The error for an exchange that got no acceptable answer.
    fn no_answer(&self, what: &str, attempts: u32, deadline_hit: bool) -> DriverError {
        let t = Arc::clone(&self.target);
        if attempts == 0 {
            return DriverError::timeout(format!(
                "{t}: the deadline passed before {what} could be sent"
            ));
        }
        if !self.answered {
            return DriverError::unreachable(format!(
                "{t}: no answer to {what} after {attempts} attempt(s)"
            ));
        }
        if let (Some(why), false) = (self.last_malformed, deadline_hit) {
            return DriverError::protocol(format!(
                "{t}: no valid answer to {what} after {attempts} attempt(s); last reply \
                 dropped: {why}"
            ));
        }
        let dropped = self
            .last_malformed
            .map(|why| format!("; last reply dropped: {why}"))
            .unwrap_or_default();
        if deadline_hit {
            DriverError::timeout(format!("{t}: deadline passed waiting for {what}{dropped}"))
        } else {
            DriverError::timeout(format!(
                "{t}: no answer to {what} after {attempts} attempt(s){dropped}"
            ))
        }
    }

    /// Send what `build` writes, wait for a datagram `accept` takes, retransmitting with
    /// backoff; all of it before `deadline`.
    pub(crate) async fn exchange<S, T>(
        &mut self,
        what: &str,
        deadline: Instant,
        retry: Retry,
        state: &mut S,
        mut build: impl FnMut(&mut S, u32, &mut Vec<u8>) -> Result<(), DriverError>,
        mut accept: impl FnMut(&mut S, &[u8], &mut Vec<u8>) -> Accept<T>,
    ) -> Result<T, DriverError> {
        let mut wait = retry.first;
        let mut attempts = 0;
        self.last_malformed = None;
        for attempt in 0..=retry.retries {
            if passed(deadline) {
                return Err(self.no_answer(what, attempts, true));
            }
            build(state, attempt, &mut self.out)?;
            if attempt > 0 {
                tracing::debug!(bmc = %self.target, what, attempt, "retransmitting");
            }
            attempts += 1;
            if let Err(e) = self.sock.send(&self.out).await {
                return Err(self.io_error(what, e));
            }
            let until = (Instant::now() + wait).min(deadline);
            loop {
                let n = match tokio::time::timeout_at(until, self.sock.recv(&mut self.inbuf)).await
                {
                    Err(_) => break,
                    Ok(Err(e)) => return Err(self.io_error(what, e)),
                    Ok(Ok(n)) => n,
                };
                self.answered = true;
                match accept(state, &self.inbuf[..n], &mut self.scratch) {
                    Accept::Done(t) => return Ok(t),
                    Accept::Ignore => {}
                    Accept::Malformed(why) => {
                        tracing::debug!(bmc = %self.target, what, why, "dropped a reply");
                        self.last_malformed = Some(why);
                    }
                    Accept::Fail(e) => return Err(e),
                }
            }
            wait = (wait + retry.first).min(MAX_BACKOFF);
        }
        Err(self.no_answer(what, attempts, passed(deadline)))
    }

    fn io_error(&self, what: &str, e: io::Error) -> DriverError {
        let t = Arc::clone(&self.target);
        match e.kind() {
            io::ErrorKind::ConnectionRefused => {
                DriverError::unreachable(format!("{t}: {what}: port unreachable (ICMP refused)"))
            }
            _ => DriverError::unreachable(format!("{t}: {what}: {e}")),
        }
    }

    /// Send a datagram without waiting for anything (used for aborts).
    pub(crate) fn fire(&mut self, packet: &[u8]) {
        let _ = self.sock.try_send(packet);
    }

    /// Send Close Session once without waiting (no await: usable from `Drop`).
    pub(crate) fn close_now(&mut self, session: &mut Session) {
        let sid = session.remote_sid().to_le_bytes();
        let header = RequestHeader::to_bmc(NETFN_APP, CMD_CLOSE_SESSION, 0x3F);
        let mut msg = Vec::with_capacity(16);
        message::encode_request(&mut msg, &header, &sid);
        let mut out = Vec::with_capacity(96);
        if session.seal(&msg, &mut out).is_ok() {
            self.fire(&out);
        }
    }

    /// A sessionless (IPMI 1.5 framed) request; returns the completion code and data.
    pub(crate) async fn sessionless(
        &mut self,
        what: &str,
        deadline: Instant,
        retry: Retry,
        netfn: u8,
        cmd: u8,
        data: &[u8],
    ) -> Result<(u8, Vec<u8>), DriverError> {
        self.sessionless_seq = self.sessionless_seq % 63 + 1;
        let header = RequestHeader::to_bmc(netfn, cmd, self.sessionless_seq);
        let mut msg = Vec::with_capacity(16);
        message::encode_request(&mut msg, &header, data);
        self.exchange(
            what,
            deadline,
            retry,
            &mut (),
            |_, _, out| {
                rmcp::encode_sessionless(out, &msg)
                    .map_err(|e| DriverError::protocol(format!("encoding {what}: {e}")))
            },
            |_, pkt, _| match rmcp::decode(pkt) {
                Ok(Packet::Sessionless(m)) => match message::decode_response(m) {
                    Ok(r) if r.answers(&header) => Accept::Done((r.completion, r.data.to_vec())),
                    Ok(_) => Accept::Ignore,
                    Err(_) => Accept::Malformed("malformed IPMI message"),
                },
                Ok(Packet::Rmcpp(_)) => Accept::Ignore,
                Err(_) => Accept::Malformed("malformed RMCP packet"),
            },
        )
        .await
    }

    /// Get Channel Authentication Capabilities. The outer error is an exchange that got no
    /// usable answer; the inner one a negative answer (a completion code, undecodable data,
    /// no IPMI 2.0 on the channel), which arrived outside any session, unauthenticated, and
    /// which the caller confirms by asking again before it counts.
    pub(crate) async fn auth_caps(
        &mut self,
        deadline: Instant,
        retry: Retry,
        privilege: Privilege,
    ) -> Result<Result<AuthCapabilities, DriverError>, DriverError> {
        let (cc, data) = self
            .sessionless(
                "Get Channel Authentication Capabilities",
                deadline,
                retry,
                NETFN_APP,
                CMD_GET_CHANNEL_AUTH_CAPS,
                &commands::auth_caps_request(privilege),
            )
            .await?;
        let t = Arc::clone(&self.target);
        if cc == commands::CC_INVALID_DATA {
            // IPMI 1.5-only BMCs refuse the "IPMI 2.0 extended data" bit.
            return Ok(Err(DriverError::unsupported(format!(
                "{t}: the BMC refuses IPMI 2.0 capability queries (IPMI 1.5 only); IPMI 1.5 \
                 sessions are refused because they cannot protect the password"
            ))));
        }
        if cc != 0 {
            return Ok(Err(DriverError::protocol(format!(
                "{t}: Get Channel Authentication Capabilities failed: {cc:#04x} ({})",
                completion_text(cc)
            ))));
        }
        let caps = match AuthCapabilities::decode(&data) {
            Ok(caps) => caps,
            Err(e) => {
                return Ok(Err(DriverError::protocol(format!(
                    "{t}: Get Channel Authentication Capabilities reply: {e}"
                ))));
            }
        };
        if !caps.ipmi20 {
            return Ok(Err(DriverError::unsupported(format!(
                "{t}: the BMC does not offer IPMI 2.0 (RMCP+) on this channel; IPMI 1.5 \
                 sessions are refused because they cannot protect the password"
            ))));
        }
        Ok(Ok(caps))
    }

    /// Get Channel Cipher Suites, at most `window` long, one attempt per page. `None` when
    /// the BMC does not answer (ipmi_sim never does outside a session) or answers oddly.
    pub(crate) async fn cipher_suites(&mut self, window: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + window;
        let mut records = Vec::new();
        let once = Retry {
            first: window,
            retries: 0,
        };
        for index in 0..4u8 {
            let answered = self.answered;
            let reply = self
                .sessionless(
                    "Get Channel Cipher Suites",
                    deadline,
                    once,
                    NETFN_APP,
                    CMD_GET_CHANNEL_CIPHER_SUITES,
                    &commands::cipher_suites_request(index),
                )
                .await;
            // Silence to an optional probe must not count as "the BMC answered".
            self.answered = answered || reply.is_ok();
            let (cc, data) = reply.ok()?;
            if cc != 0 {
                return None;
            }
            let page = data.get(1..).unwrap_or_default();
            records.extend_from_slice(page);
            if page.len() < 16 {
                break;
            }
        }
        Some(commands::parse_cipher_suite_records(&records))
    }

    /// Open Session and RAKP 1–4 for one suite: one handshake, with its own fresh session id
    /// and random number.
    ///
    /// A negative answer (a status code in Open Session Response, RAKP 2 or RAKP 4, a RAKP 2
    /// code or RAKP 4 check value that does not verify) ends the handshake as
    /// [`HandshakeFailure::Refused`]: none of those is covered by a MAC the BMC computed with
    /// keys the console trusts, so anyone on the path can forge one, and the caller must
    /// confirm it with a fresh handshake before it counts. Whatever this handshake left at
    /// the BMC is released: a half-open session is aborted with RAKP 3, a session the BMC
    /// opened before an unverifiable RAKP 4 is closed.
    ///
    /// The steps are one function each ([`Conn::open_session`], [`Conn::rakp_1_2`],
    /// [`Conn::rakp_3_4`]); the key derivation is the codec's
    /// (`ClientHandshake::on_rakp4`), so that the console and the simulated BMC compute the
    /// same keys with the same code.
    pub(crate) async fn handshake(
        &mut self,
        suite: CipherSuite,
        privilege: Privilege,
        creds: &Credentials,
        kg_hint: bool,
        deadline: Instant,
        retry: Retry,
    ) -> Result<Session, HandshakeFailure> {
        let steps = Steps {
            target: Arc::clone(&self.target),
            suite,
            creds,
            kg_hint,
            deadline,
            retry,
        };
        let mut hs = ClientHandshake::new(suite, privilege).map_err(|e| {
            HandshakeFailure::Failed(DriverError::protocol(format!(
                "{}: no randomness for the session: {e}",
                steps.target
            )))
        })?;
        self.open_session(&mut hs, &steps).await?;
        let rakp3 = self.rakp_1_2(&mut hs, &steps).await?;
        self.rakp_3_4(&hs, &steps, rakp3).await
    }

    /// Open Session Request → Response. Each (re)transmission has its own tag; only the
    /// latest is accepted.
    async fn open_session(
        &mut self,
        hs: &mut ClientHandshake,
        steps: &Steps<'_>,
    ) -> Result<(), HandshakeFailure> {
        let mut st = Step::new(hs);
        let res = self
            .exchange(
                "Open Session",
                steps.deadline,
                steps.retry,
                &mut st,
                |st, attempt, out| {
                    st.tag = attempt as u8;
                    st.hs
                        .open_session(st.tag, out)
                        .map_err(encode_error(&steps.target))
                },
                |st, pkt, _| match rmcpp_payload(pkt, PayloadType::OpenSessionResponse) {
                    Some(p) => match st.hs.on_open_session(st.tag, p) {
                        Ok(()) => Accept::Done(()),
                        Err(e) => steps.reject(&mut st.refused, e, false),
                    },
                    None => Accept::Ignore,
                },
            )
            .await;
        res.map_err(|e| classify(st.refused, e))
    }

    /// RAKP 1 → 2: the BMC proves it knows the password (and shows its GUID). A RAKP 2 that
    /// fails (refused, unverifiable, or never came) leaves a half-open session at the BMC,
    /// which is aborted with a RAKP 3 error message. On success, the RAKP 3 to send.
    async fn rakp_1_2(
        &mut self,
        hs: &mut ClientHandshake,
        steps: &Steps<'_>,
    ) -> Result<Rakp3Ready, HandshakeFailure> {
        let mut st = Step::new(hs);
        let mut rakp3 = Vec::with_capacity(64);
        let res = self
            .exchange(
                "RAKP 1",
                steps.deadline,
                steps.retry,
                &mut st,
                |st, attempt, out| {
                    st.tag = attempt as u8;
                    st.retransmitted |= attempt > 0;
                    st.hs
                        .rakp1(st.tag, steps.creds, out)
                        .map_err(encode_error(&steps.target))
                },
                |st, pkt, _| match rmcpp_payload(pkt, PayloadType::Rakp2) {
                    Some(p) => match st.hs.on_rakp2(st.tag, p, steps.creds, &mut rakp3) {
                        Ok(()) => Accept::Done(()),
                        Err(e) => steps.reject(&mut st.refused, e, false),
                    },
                    None => Accept::Ignore,
                },
            )
            .await;
        if let Err(e) = res {
            if st.hs.abort(st.tag, &mut rakp3).is_ok() && !rakp3.is_empty() {
                self.fire(&rakp3);
            }
            return Err(classify(st.refused, e));
        }
        Ok(Rakp3Ready {
            packet: rakp3,
            tag: st.tag,
            rakp1_retransmitted: st.retransmitted,
        })
    }

    /// RAKP 3 → 4: the console proves it knows the password, and the BMC's RAKP 4 check
    /// value proves both sides derived the same keys. RAKP 3 is resent as is: the BMC answers
    /// duplicates from its state. If no RAKP 4 verifies, the session the BMC may hold since it
    /// accepted RAKP 3 is closed.
    async fn rakp_3_4(
        &mut self,
        hs: &ClientHandshake,
        steps: &Steps<'_>,
        rakp3: Rakp3Ready,
    ) -> Result<Session, HandshakeFailure> {
        let mut r4: (Option<Session>, bool) = (None, false);
        let res = self
            .exchange(
                "RAKP 3",
                steps.deadline,
                steps.retry,
                &mut r4,
                |_, _, out| {
                    out.clear();
                    out.extend_from_slice(&rakp3.packet);
                    Ok(())
                },
                |(session, refused), pkt, _| match rmcpp_payload(pkt, PayloadType::Rakp4) {
                    Some(p) => match hs.on_rakp4(rakp3.tag, p, steps.creds) {
                        Ok(s) => {
                            *session = Some(s);
                            Accept::Done(())
                        }
                        Err(e) => steps.reject(refused, e, rakp3.rakp1_retransmitted),
                    },
                    None => Accept::Ignore,
                },
            )
            .await;
        let (session, refused) = r4;
        match (res, session) {
            (Ok(()), Some(session)) => Ok(session),
            (res, _) => {
                // Close it with the keys it would have (best effort; wrong keys are simply
                // ignored by the BMC).
                if let Some(mut abandoned) = hs.abandoned_session(steps.creds) {
                    self.close_now(&mut abandoned);
                }
                let e = res.err().unwrap_or_else(|| {
                    DriverError::protocol(format!("{}: RAKP 4 lost", steps.target))
                });
                Err(classify(refused, e))
            }
        }
    }

    /// One request inside the session; returns completion code and response data.
    pub(crate) async fn request(
        &mut self,
        session: &mut Session,
        cmd: Cmd<'_>,
        deadline: Instant,
        retry: Retry,
    ) -> Result<(u8, Vec<u8>), DriverError> {
        let t = Arc::clone(&self.target);
        let header = RequestHeader::to_bmc(cmd.netfn, cmd.cmd, session.next_rq_seq());
        let mut msg = Vec::with_capacity(16);
        message::encode_request(&mut msg, &header, cmd.data);
        self.exchange(
            cmd.what,
            deadline,
            retry,
            session,
            |s, _, out| s.seal(&msg, out).map_err(encode_error(&t)),
            |s, pkt, scratch| match s.open(pkt, scratch) {
                Ok(()) => match message::decode_response(scratch) {
                    Ok(r) if r.answers(&header) => Accept::Done((r.completion, r.data.to_vec())),
                    Ok(_) => Accept::Ignore,
                    Err(_) => Accept::Malformed("malformed IPMI message in session"),
                },
                Err(RejectReason::OtherSession | RejectReason::Sequence) => Accept::Ignore,
                Err(RejectReason::Decode(_) | RejectReason::NotSealed) => {
                    Accept::Malformed("packet failed the session's integrity or format checks")
                }
            },
        )
        .await
    }

    /// Set Session Privilege Level; a refusal means the user lacks that privilege.
    pub(crate) async fn set_privilege(
        &mut self,
        session: &mut Session,
        privilege: Privilege,
        deadline: Instant,
        retry: Retry,
    ) -> Result<(), DriverError> {
        let t = Arc::clone(&self.target);
        let (cc, _) = self
            .request(
                session,
                Cmd {
                    what: "Set Session Privilege Level",
                    netfn: NETFN_APP,
                    cmd: CMD_SET_SESSION_PRIVILEGE,
                    data: &[privilege.code()],
                },
                deadline,
                retry,
            )
            .await?;
        match cc {
            0 => Ok(()),
            0x80 | 0x81 | 0xD4 => Err(DriverError::auth(format!(
                "{t}: the user may not act at {privilege:?} privilege ({cc:#04x} {})",
                completion_text(cc)
            ))),
            0xC0 => Err(DriverError::busy(format!(
                "{t}: Set Session Privilege Level: node busy"
            ))),
            _ => Err(DriverError::protocol(format!(
                "{t}: Set Session Privilege Level failed: {cc:#04x} ({})",
                completion_text(cc)
            ))),
        }
    }

    /// Close Session, best effort: one send, and a short wait for the reply that never
    /// outlasts the deadline (no wait at all once it has passed).
    pub(crate) async fn close(&mut self, session: &mut Session, deadline: Instant, wait: Duration) {
        let sid = session.remote_sid().to_le_bytes();
        let deadline = deadline.min(Instant::now() + wait);
        if Instant::now() >= deadline {
            self.close_now(session);
            return;
        }
        let once = Retry {
            first: wait,
            retries: 0,
        };
        let _ = self
            .request(
                session,
                Cmd {
                    what: "Close Session",
                    netfn: NETFN_APP,
                    cmd: CMD_CLOSE_SESSION,
                    data: &sid,
                },
                deadline,
                once,
            )
            .await;
    }
}

/// Why a handshake failed, split by what the caller may conclude from it.
pub(crate) enum HandshakeFailure {
    /// A negative answer in a message no trusted MAC covers (an RMCP+ status code, a RAKP 2
    /// code or RAKP 4 check value that does not verify): possibly the BMC, possibly a single
    /// forged or corrupted datagram. It counts only once a fresh handshake confirms it.
    Refused(DriverError),
    /// No usable answer (silence, only malformed replies, the deadline) or a local failure:
    /// nothing to confirm.
    Failed(DriverError),
}

/// What every step of one handshake needs: where to, what to propose, under which bounds.
struct Steps<'c> {
    target: Arc<str>,
    suite: CipherSuite,
    creds: &'c Credentials,
    /// Whether the BMC reports a Kg is set (for the message of a failed RAKP 4 check).
    kg_hint: bool,
    deadline: Instant,
    retry: Retry,
}

impl Steps<'_> {
    /// What a step does with a reply the handshake did not accept: someone else's reply is
    /// ignored, an undecodable one dropped, and anything else (a status code, a proof that
    /// does not verify) ends the step as a refusal, noted in `refused`.
    fn reject<T>(&self, refused: &mut bool, e: HandshakeError, retransmitted: bool) -> Accept<T> {
        match e {
            HandshakeError::NotOurs => Accept::Ignore,
            HandshakeError::Decode(_) => Accept::Malformed("malformed handshake reply"),
            other => {
                *refused = true;
                Accept::Fail(handshake_error(
                    &self.target,
                    self.suite,
                    other,
                    self.kg_hint,
                    retransmitted,
                ))
            }
        }
    }
}

/// The state of one request/response step of the handshake across its retransmissions.
struct Step<'h> {
    hs: &'h mut ClientHandshake,
    /// The tag of the latest transmission, the only one whose answer is accepted.
    tag: u8,
    /// Whether the request was sent more than once.
    retransmitted: bool,
    /// Whether the step ended on a negative answer (rather than on silence).
    refused: bool,
}

impl<'h> Step<'h> {
    fn new(hs: &'h mut ClientHandshake) -> Self {
        Step {
            hs,
            tag: 0,
            retransmitted: false,
            refused: false,
        }
    }
}

/// A verified RAKP 2's outcome: the RAKP 3 to send and what its answer is judged by.
struct Rakp3Ready {
    packet: Vec<u8>,
    /// The tag RAKP 3 (and so RAKP 4) carries: the one of the RAKP 1 that was answered.
    tag: u8,
    /// Whether RAKP 1 went out more than once: an "invalid integrity check value" in RAKP 4
    /// may then answer a stale RAKP 1, not a wrong password.
    rakp1_retransmitted: bool,
}

/// A failed step's error, as a refusal to confirm or a plain failure.
fn classify(refused: bool, e: DriverError) -> HandshakeFailure {
    if refused {
        HandshakeFailure::Refused(e)
    } else {
        HandshakeFailure::Failed(e)
    }
}

fn encode_error(target: &str) -> impl Fn(fencegate_ipmi_codec::DecodeError) -> DriverError + '_ {
    move |e| DriverError::protocol(format!("{target}: cannot encode request: {e}"))
}

/// The payload of an unauthenticated RMCP+ packet of the given type.
fn rmcpp_payload(pkt: &[u8], want: PayloadType) -> Option<&[u8]> {
    match rmcp::decode(pkt) {
        Ok(Packet::Rmcpp(p)) if p.payload_type == want && !p.encrypted && p.session_id == 0 => {
            Some(p.payload)
        }
        _ => None,
    }
}

/// Marker put in the detail of a suite refusal so the caller can try the next suite.
const SUITE_REFUSED: &str = "does not offer cipher suite";

/// Whether `e` says the BMC does not offer the suite proposed (so the next one is tried).
pub(crate) fn is_suite_refusal(e: &DriverError) -> bool {
    e.kind == fencegate_driver::ErrorKind::Unsupported && e.detail.contains(SUITE_REFUSED)
}

/// Map a handshake failure to the contract's error classes.
fn handshake_error(
    t: &str,
    suite: CipherSuite,
    e: HandshakeError,
    kg_hint: bool,
    retransmitted: bool,
) -> DriverError {
    match e {
        HandshakeError::Status { step, code } => {
            let text = status_text(code);
            match code {
                rakp::STATUS_NO_RESOURCES | rakp::STATUS_NO_RESOURCES_FOR_ROLE => {
                    DriverError::busy(format!("{t}: {step}: {text} ({code:#04x})"))
                }
                rakp::STATUS_INVALID_AUTH_ALG
                | rakp::STATUS_INVALID_INTEGRITY_ALG
                | rakp::STATUS_INVALID_CONF_ALG
                | rakp::STATUS_NO_CIPHER_MATCH => DriverError::unsupported(format!(
                    "{t}: the BMC {SUITE_REFUSED} {suite}: {step}: {text} ({code:#04x})"
                )),
                rakp::STATUS_INVALID_ICV if retransmitted => DriverError::timeout(format!(
                    "{t}: {step}: {text} after retransmitted handshake messages (lost packets, \
                     not necessarily bad credentials)"
                )),
                rakp::STATUS_UNAUTHORIZED_NAME
                | rakp::STATUS_INVALID_ICV
                | rakp::STATUS_UNAUTHORIZED_ROLE
                | 0x09
                | 0x0C
                | 0x0E => DriverError::auth(format!(
                    "{t}: {step}: {text} ({code:#04x}){}",
                    if code == rakp::STATUS_UNAUTHORIZED_NAME {
                        ": unknown user"
                    } else {
                        ""
                    }
                )),
                rakp::STATUS_INVALID_SESSION | 0x08 => {
                    DriverError::busy(format!("{t}: {step}: {text} ({code:#04x})"))
                }
                _ => DriverError::protocol(format!("{t}: {step}: {text} ({code:#04x})")),
            }
        }
        HandshakeError::BadProof(why) => DriverError::auth(format!(
            "{t}: {why}{}",
            if kg_hint {
                "; the BMC reports a Kg is set"
            } else {
                ""
            }
        )),
        HandshakeError::SuiteMismatch => DriverError::protocol(format!(
            "{t}: the BMC accepted other algorithms than cipher suite {suite} proposed"
        )),
        HandshakeError::NotOurs | HandshakeError::Decode(_) => {
            DriverError::protocol(format!("{t}: malformed handshake reply"))
        }
    }
}

/// An established session that sends Close Session when dropped unless it was closed
/// properly, so a call cancelled from outside (the engine cutting it at the deadline) still
/// releases the BMC's session slot.
pub(crate) struct Live {
    pub(crate) conn: Conn,
    pub(crate) session: Session,
    closed: bool,
}

impl Live {
    /// Guard a freshly established session.
    pub(crate) fn new(conn: Conn, session: Session) -> Self {
        Live {
            conn,
            session,
            closed: false,
        }
    }

    /// Close Session, waiting briefly for the reply (see [`Conn::close`]).
    pub(crate) async fn close(mut self, deadline: Instant, wait: Duration) {
        self.closed = true;
        self.conn.close(&mut self.session, deadline, wait).await;
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if !self.closed {
            self.conn.close_now(&mut self.session);
        }
    }
}
