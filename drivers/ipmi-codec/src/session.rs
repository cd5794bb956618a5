//! Sans-IO RMCP+ sessions: the console's side of the RAKP handshake, and an established
//! session that seals outgoing and opens incoming IPMI payloads for either side.
//!
//! Nothing here touches a socket or a clock, so the same code runs in the driver, in the
//! simulator's BMC and under the fuzzer.

use crate::commands::Privilege;
use crate::crypto::{
    AES_BLOCK, CipherSuite, GUID_LEN, Handshake, Identity, MAX_USER_LEN, RANDOM_LEN, SecretKey,
    SessionKeys, random_bytes,
};
use crate::error::DecodeError;
use crate::rakp::{
    Algorithms, OpenSessionRequest, OpenSessionResponse, ROLE_NAME_ONLY_LOOKUP, Rakp1, Rakp2,
    Rakp3, Rakp4, STATUS_INVALID_ICV, STATUS_OK,
};
use crate::rmcp::{self, Packet, PayloadType};
use std::fmt;
use zeroize::Zeroize;

/// The console's credentials: user name, password and optional Kg. Never printed.
#[derive(Clone)]
pub struct Credentials {
    user: Vec<u8>,
    password: SecretKey,
    kg: Option<SecretKey>,
}

impl Credentials {
    /// Credentials, checking IPMI's limits (user ≤ 16 bytes, password and Kg ≤ 20 bytes).
    pub fn new(user: &[u8], password: &[u8], kg: Option<&[u8]>) -> Result<Self, &'static str> {
        if user.len() > MAX_USER_LEN {
            return Err("the user name is longer than IPMI's 16 bytes");
        }
        let password = SecretKey::new(password)
            .filter(|_| password.len() <= crate::crypto::MAX_KEY_LEN)
            .ok_or("the password is longer than IPMI 2.0's 20 bytes")?;
        let kg = match kg {
            None => None,
            Some(k) => Some(
                SecretKey::new(k)
                    .filter(|_| k.len() <= crate::crypto::MAX_KEY_LEN)
                    .ok_or("Kg is longer than 20 bytes")?,
            ),
        };
        Ok(Credentials {
            user: user.to_vec(),
            password,
            kg,
        })
    }

    /// The user name.
    pub fn user(&self) -> &[u8] {
        &self.user
    }

    /// The RAKP 2 code for a handshake under these credentials (the BMC's side).
    pub fn rakp2_code(&self, hs: &Handshake<'_>) -> crate::crypto::Mac32 {
        hs.rakp2_auth_code(&self.password)
    }

    /// The RAKP 3 code for a handshake under these credentials (what the BMC expects).
    pub fn rakp3_code(&self, hs: &Handshake<'_>) -> crate::crypto::Mac32 {
        hs.rakp3_auth_code(&self.password)
    }

    /// The session keys a handshake under these credentials yields (Kg when set).
    pub fn session_keys(&self, hs: &Handshake<'_>) -> SessionKeys {
        hs.session_keys(&self.password, self.kg.as_ref())
    }

    /// Whether a non-zero Kg is configured.
    pub fn has_kg(&self) -> bool {
        self.kg.as_ref().is_some_and(|k| !k.is_zero())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("password", &"<redacted>")
            .field("kg", &self.kg.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why the handshake failed, classified for the driver's error mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The BMC answered a step with a non-zero RMCP+ status code.
    Status {
        /// The step (`open session`, `RAKP 2`, `RAKP 4`).
        step: &'static str,
        /// The RMCP+ status code.
        code: u8,
    },
    /// The BMC's proof did not verify: wrong password (RAKP 2) or wrong Kg (RAKP 4).
    BadProof(&'static str),
    /// The BMC accepted a different suite than proposed.
    SuiteMismatch,
    /// A field did not match what this handshake sent (session id, tag): not our answer.
    NotOurs,
    /// The payload could not be decoded.
    Decode(DecodeError),
}

impl From<DecodeError> for HandshakeError {
    fn from(e: DecodeError) -> Self {
        HandshakeError::Decode(e)
    }
}

/// The console's side of one RMCP+ handshake (Open Session, RAKP 1–4).
pub struct ClientHandshake {
    suite: CipherSuite,
    privilege: Privilege,
    console_sid: u32,
    console_random: [u8; RANDOM_LEN],
    bmc_sid: u32,
    bmc_random: [u8; RANDOM_LEN],
    bmc_guid: [u8; GUID_LEN],
    /// Whether RAKP 2's code verified under the password, so that `bmc_guid` is the GUID the
    /// BMC proved rather than whatever a forwarder wrote into the packet.
    rakp2_verified: bool,
}

impl ClientHandshake {
    /// A handshake with fresh random session id and `Rm`.
    pub fn new(suite: CipherSuite, privilege: Privilege) -> Result<Self, getrandom::Error> {
        let mut sid = [0u8; 4];
        let mut console_random = [0u8; RANDOM_LEN];
        random_bytes(&mut console_random)?;
        let mut console_sid = 0;
        while console_sid == 0 {
            random_bytes(&mut sid)?;
            console_sid = u32::from_le_bytes(sid);
        }
        Ok(Self::with_values(
            suite,
            privilege,
            console_sid,
            console_random,
        ))
    }

    /// A handshake with given session id and `Rm` (tests and fuzzing).
    pub fn with_values(
        suite: CipherSuite,
        privilege: Privilege,
        console_sid: u32,
        console_random: [u8; RANDOM_LEN],
    ) -> Self {
        ClientHandshake {
            suite,
            privilege,
            console_sid,
            console_random,
            bmc_sid: 0,
            bmc_random: [0; RANDOM_LEN],
            bmc_guid: [0; GUID_LEN],
            rakp2_verified: false,
        }
    }

    /// The suite being negotiated.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The console's session id.
    pub fn console_sid(&self) -> u32 {
        self.console_sid
    }

    /// The role byte sent in RAKP 1 and hashed everywhere: privilege plus name-only lookup.
    pub fn role(&self) -> u8 {
        self.privilege.code() | ROLE_NAME_ONLY_LOOKUP
    }

    /// Whether a handshake reply answers our message: same tag and our session id, except
    /// that an error reply may omit the id (then it reads as 0).
    fn ours(&self, sent_tag: u8, tag: u8, status: u8, console_sid: u32) -> bool {
        tag == sent_tag
            && (console_sid == self.console_sid || (status != STATUS_OK && console_sid == 0))
    }

    /// The checks every handshake reply goes through before its content is looked at: it
    /// must answer our message ([`HandshakeError::NotOurs`] otherwise) and say OK
    /// ([`HandshakeError::Status`] naming `step` otherwise).
    fn answered(
        &self,
        step: &'static str,
        sent_tag: u8,
        tag: u8,
        status: u8,
        console_sid: u32,
    ) -> Result<(), HandshakeError> {
        if !self.ours(sent_tag, tag, status, console_sid) {
            return Err(HandshakeError::NotOurs);
        }
        if status != STATUS_OK {
            return Err(HandshakeError::Status { step, code: status });
        }
        Ok(())
    }

    /// The session keys (SIK, K1, K2) this handshake's values and the credentials give: the
    /// one place the console derives them, for the session RAKP 4 confirms and for closing
    /// one it does not.
    fn derive_keys(&self, creds: &Credentials) -> SessionKeys {
        self.handshake(creds)
            .session_keys(&creds.password, creds.kg.as_ref())
    }

    /// The Open Session Request packet, into `out`.
    pub fn open_session(&self, tag: u8, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let mut payload = Vec::with_capacity(32);
        OpenSessionRequest {
            tag,
            max_privilege: self.privilege.code(),
            console_sid: self.console_sid,
            algorithms: Algorithms::of(self.suite),
        }
        .encode(&mut payload);
        rmcp::encode_plain(out, PayloadType::OpenSessionRequest, 0, 0, &payload)
    }

    /// Accept the Open Session Response (payload) answering the request with `tag`.
    pub fn on_open_session(&mut self, tag: u8, payload: &[u8]) -> Result<(), HandshakeError> {
        let resp = OpenSessionResponse::decode(payload)?;
        self.answered("open session", tag, resp.tag, resp.status, resp.console_sid)?;
        if resp.algorithms.and_then(|a| a.suite()) != Some(self.suite) {
            return Err(HandshakeError::SuiteMismatch);
        }
        if resp.bmc_sid == 0 {
            return Err(HandshakeError::Decode(DecodeError::Malformed(
                "BMC session id 0",
            )));
        }
        self.bmc_sid = resp.bmc_sid;
        Ok(())
    }

    /// The RAKP 1 packet, into `out`.
    pub fn rakp1(
        &self,
        tag: u8,
        creds: &Credentials,
        out: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        let mut payload = Vec::with_capacity(48);
        Rakp1 {
            tag,
            bmc_sid: self.bmc_sid,
            console_random: self.console_random,
            role: self.role(),
            user: creds.user(),
        }
        .encode(&mut payload)?;
        rmcp::encode_plain(out, PayloadType::Rakp1, 0, 0, &payload)
    }

    fn handshake<'a>(&'a self, creds: &'a Credentials) -> Handshake<'a> {
        Handshake {
            suite: self.suite,
            console_sid: self.console_sid,
            bmc_sid: self.bmc_sid,
            console_random: &self.console_random,
            bmc_random: &self.bmc_random,
            bmc_guid: &self.bmc_guid,
            identity: Identity {
                role: self.role(),
                user: creds.user(),
            },
        }
    }

    /// Verify RAKP 2 (payload) answering RAKP 1 with `tag`, and write RAKP 3 into `out`.
    ///
    /// On a bad proof, `out` holds a RAKP 3 carrying "invalid integrity check value" so the
    /// caller can tell the BMC to drop the half-open session (best effort).
    pub fn on_rakp2(
        &mut self,
        tag: u8,
        payload: &[u8],
        creds: &Credentials,
        out: &mut Vec<u8>,
    ) -> Result<(), HandshakeError> {
        let msg = Rakp2::decode(payload)?;
        self.answered("RAKP 2", tag, msg.tag, msg.status, msg.console_sid)?;
        self.bmc_random = msg.bmc_random;
        self.bmc_guid = msg.bmc_guid;
        self.rakp2_verified = false;
        let hs = self.handshake(creds);
        if !hs.rakp2_auth_code(&creds.password).matches(msg.auth_code) {
            self.abort(tag, out)?;
            return Err(HandshakeError::BadProof(
                "the BMC's RAKP 2 code does not match this password (wrong password or user)",
            ));
        }
        let code = hs.rakp3_auth_code(&creds.password);
        self.rakp2_verified = true;
        let mut rakp3 = Vec::with_capacity(48);
        Rakp3 {
            tag,
            status: STATUS_OK,
            bmc_sid: self.bmc_sid,
            auth_code: code.as_bytes(),
        }
        .encode(&mut rakp3);
        rmcp::encode_plain(out, PayloadType::Rakp3, 0, 0, &rakp3)?;
        Ok(())
    }

    /// A RAKP 3 carrying "invalid integrity check value", into `out`: it tells the BMC to
    /// drop the half-open session of this handshake (best effort; nothing when Open Session
    /// never succeeded, as there is no BMC session id to name). A handshake abandoned after
    /// an unverifiable or refused RAKP 2 sends it, so that a forged datagram, which is
    /// answered by a fresh handshake, does not leave the BMC's slot taken until it times out.
    pub fn abort(&self, tag: u8, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        out.clear();
        if self.bmc_sid == 0 {
            return Ok(());
        }
        let mut rakp3 = Vec::with_capacity(8);
        Rakp3 {
            tag,
            status: STATUS_INVALID_ICV,
            bmc_sid: self.bmc_sid,
            auth_code: &[],
        }
        .encode(&mut rakp3);
        rmcp::encode_plain(out, PayloadType::Rakp3, 0, 0, &rakp3)
    }

    /// The session a BMC holds once it accepted our RAKP 3, built only so that it can be
    /// closed (Close Session) when RAKP 4 does not verify: a forged or corrupted RAKP 4 must
    /// not leave the real session open at the BMC. `None` before a verified RAKP 2. It is
    /// never used for anything else: its keys were not confirmed by the BMC.
    pub fn abandoned_session(&self, creds: &Credentials) -> Option<Session> {
        if !self.rakp2_verified {
            return None;
        }
        Some(Session::new(
            self.derive_keys(creds),
            self.console_sid,
            self.bmc_sid,
            true,
        ))
    }

    /// Verify RAKP 4 (payload) answering RAKP 3 with `tag`; on success the session is up,
    /// carrying the GUID the BMC proved in RAKP 2 (see [`Session::peer_guid`]).
    pub fn on_rakp4(
        &self,
        tag: u8,
        payload: &[u8],
        creds: &Credentials,
    ) -> Result<Session, HandshakeError> {
        let msg = Rakp4::decode(payload)?;
        self.answered("RAKP 4", tag, msg.tag, msg.status, msg.console_sid)?;
        let keys = self.derive_keys(creds);
        if !keys
            .rakp4_icv(&self.console_random, self.bmc_sid, &self.bmc_guid)
            .matches(msg.icv)
        {
            return Err(HandshakeError::BadProof(
                "the BMC's RAKP 4 check value does not match (wrong Kg, or Kg missing)",
            ));
        }
        if !self.rakp2_verified {
            // RAKP 4 before a verified RAKP 2 is out of order: nothing has been proved.
            return Err(HandshakeError::NotOurs);
        }
        let mut session = Session::new(keys, self.console_sid, self.bmc_sid, true);
        session.peer_guid = Some(self.bmc_guid);
        Ok(session)
    }
}

impl Drop for ClientHandshake {
    fn drop(&mut self) {
        self.console_random.zeroize();
        self.bmc_random.zeroize();
    }
}

/// Why an incoming in-session packet was not accepted. Every case means "drop it".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Undecodable, or failed integrity / decryption.
    Decode(DecodeError),
    /// Addressed to another session id.
    OtherSession,
    /// Not an encrypted, authenticated IPMI payload.
    NotSealed,
    /// Sequence number zero, or not newer than one already accepted (replay).
    Sequence,
}

/// An established RMCP+ session, usable by either side: packets carry the *receiver's*
/// session id, so `local_sid` is checked on input and `remote_sid` written on output.
pub struct Session {
    keys: SessionKeys,
    local_sid: u32,
    remote_sid: u32,
    out_seq: u32,
    in_seq: u32,
    replay_check: bool,
    /// The requester's last IPMI sequence number (rqSeq, 6 bits) in this session.
    rq_seq: u8,
    /// The managed system GUID the BMC proved in the handshake (console side only).
    peer_guid: Option<[u8; GUID_LEN]>,
}

impl Session {
    /// A session with derived keys. With `replay_check`, incoming sequence numbers must
    /// strictly increase (the console's policy); without, any non-zero one is accepted.
    pub fn new(keys: SessionKeys, local_sid: u32, remote_sid: u32, replay_check: bool) -> Self {
        Session {
            keys,
            local_sid,
            remote_sid,
            out_seq: 0,
            in_seq: 0,
            replay_check,
            rq_seq: 0,
            peer_guid: None,
        }
    }

    /// The managed system GUID (`GUIDc`, wire order) the BMC sent in RAKP 2, on a session
    /// the console established. It is covered by RAKP 2's HMAC, keyed with the user's
    /// password, which was verified before the session came up: a forwarder that does not
    /// know the password cannot substitute another box's GUID, so this names the box that
    /// really answered. `None` on sessions built directly with [`Session::new`] (the BMC's
    /// side).
    pub fn peer_guid(&self) -> Option<[u8; GUID_LEN]> {
        self.peer_guid
    }

    /// The session keys.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// The id the peer uses for this session (written into outgoing packets).
    pub fn remote_sid(&self) -> u32 {
        self.remote_sid
    }

    /// The id this side uses for this session (expected in incoming packets).
    pub fn local_sid(&self) -> u32 {
        self.local_sid
    }

    /// The next IPMI request sequence number (rqSeq, 1..=63, cycling) for a request sent in
    /// this session. Every request gets its own, so that a late or duplicated reply to an
    /// earlier request can never be taken for the answer to a later one (a stale `Off` must
    /// not pass for a fresh reading when a session serves several calls).
    pub fn next_rq_seq(&mut self) -> u8 {
        self.rq_seq = self.rq_seq % 63 + 1;
        self.rq_seq
    }

    /// Encrypt, sign and frame an IPMI message into `out`, with the next sequence number.
    pub fn seal(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let mut iv = [0u8; AES_BLOCK];
        random_bytes(&mut iv).map_err(|_| DecodeError::Malformed("no random IV available"))?;
        self.out_seq = self.out_seq.wrapping_add(1).max(1);
        rmcp::encode_sealed(
            out,
            &self.keys,
            &iv,
            PayloadType::Ipmi,
            self.remote_sid,
            self.out_seq,
            message,
        )
    }

    /// Check and decrypt an incoming packet; on success `scratch` holds the IPMI message.
    pub fn open(&mut self, packet: &[u8], scratch: &mut Vec<u8>) -> Result<(), RejectReason> {
        let Packet::Rmcpp(p) = rmcp::decode(packet).map_err(RejectReason::Decode)? else {
            return Err(RejectReason::NotSealed);
        };
        if p.session_id != self.local_sid {
            return Err(RejectReason::OtherSession);
        }
        if p.payload_type != PayloadType::Ipmi || !p.authenticated || !p.encrypted {
            return Err(RejectReason::NotSealed);
        }
        p.verify(&self.keys).map_err(RejectReason::Decode)?;
        if p.seq == 0 || (self.replay_check && p.seq <= self.in_seq) {
            return Err(RejectReason::Sequence);
        }
        p.plaintext(&self.keys, scratch)
            .map_err(RejectReason::Decode)?;
        if self.replay_check {
            self.in_seq = p.seq;
        }
        Ok(())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("suite", &self.keys.suite())
            .field("local_sid", &format_args!("{:#010x}", self.local_sid))
            .field("remote_sid", &format_args!("{:#010x}", self.remote_sid))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Mac32;

    const CONSOLE_SID: u32 = 0x1111_0001;
    const BMC_SID: u32 = 0x2222_0002;
    const RM: [u8; RANDOM_LEN] = [0x11; RANDOM_LEN];
    const RC: [u8; RANDOM_LEN] = [0x22; RANDOM_LEN];
    const REAL_GUID: [u8; GUID_LEN] = *b"the-real-box-id!";
    const FORGED_GUID: [u8; GUID_LEN] = *b"the-pinned-box!!";

    /// The BMC side's view of the handshake, answering with `guid` in its codes.
    fn bmc_handshake<'a>(
        suite: CipherSuite,
        role: u8,
        guid: &'a [u8; GUID_LEN],
        user: &'a [u8],
    ) -> Handshake<'a> {
        Handshake {
            suite,
            console_sid: CONSOLE_SID,
            bmc_sid: BMC_SID,
            console_random: &RM,
            bmc_random: &RC,
            bmc_guid: guid,
            identity: Identity { role, user },
        }
    }

    /// Run a handshake where the BMC computes RAKP 2's code over `signed_guid` but the
    /// packet carries `sent_guid` (a forwarder rewrote it), and RAKP 4 is computed over
    /// `sent_guid` (the most a forwarder could wish for). Returns RAKP 2's and RAKP 4's
    /// verdicts.
    fn run(
        suite: CipherSuite,
        signed_guid: [u8; GUID_LEN],
        sent_guid: [u8; GUID_LEN],
    ) -> (Result<(), HandshakeError>, Result<Session, HandshakeError>) {
        let creds = Credentials::new(b"admin", b"fleet-wide-pw", None).unwrap();
        let mut hs = ClientHandshake::with_values(suite, Privilege::Operator, CONSOLE_SID, RM);
        let mut payload = Vec::new();
        OpenSessionResponse {
            tag: 0,
            status: STATUS_OK,
            max_privilege: Privilege::Operator.code(),
            console_sid: CONSOLE_SID,
            bmc_sid: BMC_SID,
            algorithms: Some(Algorithms::of(suite)),
        }
        .encode(&mut payload);
        hs.on_open_session(0, &payload).unwrap();

        let role = hs.role();
        let code: Mac32 = creds.rakp2_code(&bmc_handshake(suite, role, &signed_guid, b"admin"));
        let mut payload = Vec::new();
        Rakp2 {
            tag: 1,
            status: STATUS_OK,
            console_sid: CONSOLE_SID,
            bmc_random: RC,
            bmc_guid: sent_guid,
            auth_code: code.as_bytes(),
        }
        .encode(&mut payload);
        let mut rakp3 = Vec::new();
        let rakp2 = hs.on_rakp2(1, &payload, &creds, &mut rakp3);

        let keys = creds.session_keys(&bmc_handshake(suite, role, &sent_guid, b"admin"));
        let icv = keys.rakp4_icv(&RM, BMC_SID, &sent_guid);
        let mut payload = Vec::new();
        Rakp4 {
            tag: 2,
            status: STATUS_OK,
            console_sid: CONSOLE_SID,
            icv: icv.as_bytes(),
        }
        .encode(&mut payload);
        (rakp2, hs.on_rakp4(2, &payload, &creds))
    }

    #[test]
    fn an_established_session_carries_the_guid_rakp2_proved() {
        for suite in [CipherSuite::Suite3, CipherSuite::Suite17] {
            let (rakp2, session) = run(suite, REAL_GUID, REAL_GUID);
            assert_eq!(rakp2, Ok(()));
            assert_eq!(session.unwrap().peer_guid(), Some(REAL_GUID));
        }
    }

    #[test]
    fn a_guid_rakp2_does_not_prove_never_comes_up() {
        for suite in [CipherSuite::Suite3, CipherSuite::Suite17] {
            let (rakp2, session) = run(suite, REAL_GUID, FORGED_GUID);
            assert!(
                matches!(rakp2, Err(HandshakeError::BadProof(_))),
                "{rakp2:?}"
            );
            assert!(
                session.is_err(),
                "a RAKP 4 after an unverified RAKP 2 must not yield a session"
            );
        }
    }

    #[test]
    fn sessions_built_directly_carry_no_guid() {
        let creds = Credentials::new(b"admin", b"pw", None).unwrap();
        let hs = bmc_handshake(CipherSuite::Suite17, 0x14, &REAL_GUID, b"admin");
        let s = Session::new(creds.session_keys(&hs), 1, 2, false);
        assert_eq!(s.peer_guid(), None);
    }
}
