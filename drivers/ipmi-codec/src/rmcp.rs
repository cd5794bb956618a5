//! RMCP framing and the two IPMI session wrappers that ride in it.
//!
//! * IPMI 1.5 *sessionless* (auth type none, session id 0): only used for the pre-session
//!   discovery commands (Get Channel Authentication Capabilities, Get Channel Cipher Suites).
//! * IPMI 2.0 / RMCP+: payload type, session id, sequence number, payload, and for
//!   authenticated packets an integrity pad, pad length, next header and integrity tag.
//!
//! Decoding borrows from the input and never panics; integrity is checked separately with
//! [`Rmcpp::verify`] because the tag length depends on the session's suite.

use crate::crypto::{AES_BLOCK, SessionKeys};
use crate::error::DecodeError;
use crate::wire::Reader;

/// RMCP version 1.0 (the only one).
pub const RMCP_VERSION: u8 = 0x06;
/// RMCP sequence number meaning "no RMCP ACK wanted" (IPMI never uses RMCP ACKs).
pub const RMCP_SEQ_NO_ACK: u8 = 0xFF;
/// RMCP message class IPMI.
pub const RMCP_CLASS_IPMI: u8 = 0x07;
/// The four-byte RMCP header every IPMI packet starts with.
pub const RMCP_HEADER: [u8; 4] = [RMCP_VERSION, 0x00, RMCP_SEQ_NO_ACK, RMCP_CLASS_IPMI];
/// Session auth type "none" (IPMI 1.5 sessionless).
pub const AUTH_TYPE_NONE: u8 = 0x00;
/// Session auth type "RMCP+" (IPMI 2.0 format).
pub const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;
/// Next-header byte of the integrity trailer.
const NEXT_HEADER: u8 = 0x07;
/// Integrity pad byte value.
const PAD_BYTE: u8 = 0xFF;
/// Length of the RMCP+ session header (auth type through payload length).
const RMCPP_HEADER_LEN: usize = 1 + 1 + 4 + 4 + 2;
/// Payload type flag: the payload is encrypted.
const FLAG_ENCRYPTED: u8 = 0x80;
/// Payload type flag: the packet carries an integrity trailer.
const FLAG_AUTHENTICATED: u8 = 0x40;

/// The RMCP+ payload types this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadType {
    /// An IPMI message (request or response).
    Ipmi,
    /// RMCP+ Open Session Request.
    OpenSessionRequest,
    /// RMCP+ Open Session Response.
    OpenSessionResponse,
    /// RAKP message 1.
    Rakp1,
    /// RAKP message 2.
    Rakp2,
    /// RAKP message 3.
    Rakp3,
    /// RAKP message 4.
    Rakp4,
}

impl PayloadType {
    /// The wire code (bits 5:0 of the payload type byte).
    pub fn code(self) -> u8 {
        match self {
            PayloadType::Ipmi => 0x00,
            PayloadType::OpenSessionRequest => 0x10,
            PayloadType::OpenSessionResponse => 0x11,
            PayloadType::Rakp1 => 0x12,
            PayloadType::Rakp2 => 0x13,
            PayloadType::Rakp3 => 0x14,
            PayloadType::Rakp4 => 0x15,
        }
    }

    /// The payload type for a wire code.
    pub fn from_code(code: u8) -> Result<PayloadType, DecodeError> {
        Ok(match code {
            0x00 => PayloadType::Ipmi,
            0x10 => PayloadType::OpenSessionRequest,
            0x11 => PayloadType::OpenSessionResponse,
            0x12 => PayloadType::Rakp1,
            0x13 => PayloadType::Rakp2,
            0x14 => PayloadType::Rakp3,
            0x15 => PayloadType::Rakp4,
            other => return Err(DecodeError::PayloadType(other)),
        })
    }
}

/// One decoded RMCP packet, borrowing from the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// IPMI 1.5 sessionless: the IPMI message it carries.
    Sessionless(&'a [u8]),
    /// IPMI 2.0 / RMCP+.
    Rmcpp(Rmcpp<'a>),
}

/// An RMCP+ packet. The payload is still encrypted if [`Rmcpp::encrypted`] is set, and the
/// packet is untrusted until [`Rmcpp::verify`] has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rmcpp<'a> {
    /// The payload type.
    pub payload_type: PayloadType,
    /// Whether the payload is encrypted.
    pub encrypted: bool,
    /// Whether the packet carries an integrity trailer.
    pub authenticated: bool,
    /// The *receiver's* session id (0 before a session exists).
    pub session_id: u32,
    /// The sender's session sequence number (0 outside a session).
    pub seq: u32,
    /// The payload as sent (IV and ciphertext when encrypted).
    pub payload: &'a [u8],
    /// Everything after the RMCP header: the region the integrity tag covers, plus the tag.
    session_part: &'a [u8],
    /// Offset of the end of the payload within `session_part`.
    payload_end: usize,
}

/// Decode an RMCP packet carrying IPMI.
pub fn decode(buf: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let mut r = Reader::new(buf);
    let header = r.array::<4>("RMCP header")?;
    if header[0] != RMCP_VERSION || header[3] != RMCP_CLASS_IPMI {
        return Err(DecodeError::NotIpmi);
    }
    let session_part = r.peek_rest();
    match r.u8("auth type")? {
        AUTH_TYPE_NONE => {
            let seq = r.u32("session sequence")?;
            let sid = r.u32("session id")?;
            if seq != 0 || sid != 0 {
                return Err(DecodeError::LegacySession(AUTH_TYPE_NONE));
            }
            let len = usize::from(r.u8("message length")?);
            let message = r.bytes(len, "IPMI message")?;
            // A single legacy pad byte may follow; anything more is malformed.
            if r.rest().len() > 1 {
                return Err(DecodeError::Malformed("bytes after IPMI 1.5 message"));
            }
            Ok(Packet::Sessionless(message))
        }
        AUTH_TYPE_RMCP_PLUS => {
            let ptype = r.u8("payload type")?;
            let payload_type = PayloadType::from_code(ptype & 0x3F)?;
            let session_id = r.u32("session id")?;
            let seq = r.u32("session sequence")?;
            let len = usize::from(r.u16("payload length")?);
            let payload = r.bytes(len, "payload")?;
            let authenticated = ptype & FLAG_AUTHENTICATED != 0;
            if !authenticated && !r.rest().is_empty() {
                return Err(DecodeError::Malformed(
                    "bytes after unauthenticated payload",
                ));
            }
            Ok(Packet::Rmcpp(Rmcpp {
                payload_type,
                encrypted: ptype & FLAG_ENCRYPTED != 0,
                authenticated,
                session_id,
                seq,
                payload,
                session_part,
                payload_end: RMCPP_HEADER_LEN + len,
            }))
        }
        other => Err(DecodeError::LegacySession(other)),
    }
}

impl Rmcpp<'_> {
    /// Check the integrity trailer with the session's K1 (constant-time). A packet that fails
    /// must be dropped: it may be forged, replayed from another session, or corrupted.
    pub fn verify(&self, keys: &SessionKeys) -> Result<(), DecodeError> {
        if !self.authenticated {
            return Err(DecodeError::Unauthenticated(
                "unauthenticated packet inside a session",
            ));
        }
        let tag_len = keys.suite().tag_len();
        let total = self.session_part.len();
        let signed_len = total
            .checked_sub(tag_len)
            .ok_or(DecodeError::Truncated("integrity tag"))?;
        let signed = &self.session_part[..signed_len];
        let tag = &self.session_part[signed_len..];
        // signed = header | payload | pad (0xFF…) | pad length | next header
        let trailer = signed
            .get(self.payload_end..)
            .ok_or(DecodeError::Truncated("integrity trailer"))?;
        let [pad @ .., pad_len, next] = trailer else {
            return Err(DecodeError::Truncated("integrity trailer"));
        };
        if *next != NEXT_HEADER
            || usize::from(*pad_len) != pad.len()
            || pad.iter().any(|b| *b != PAD_BYTE)
        {
            return Err(DecodeError::Malformed("integrity pad"));
        }
        if keys.integrity_tag(signed).matches(tag) {
            Ok(())
        } else {
            Err(DecodeError::Integrity)
        }
    }

    /// The plaintext payload: decrypted into `scratch` when encrypted, borrowed otherwise.
    /// Call only after [`Rmcpp::verify`].
    pub fn plaintext<'s>(
        &'s self,
        keys: &SessionKeys,
        scratch: &'s mut Vec<u8>,
    ) -> Result<&'s [u8], DecodeError> {
        if self.encrypted {
            keys.decrypt(self.payload, scratch)?;
            Ok(&scratch[..])
        } else {
            Ok(self.payload)
        }
    }
}

/// Write an IPMI 1.5 sessionless packet carrying `message` into `out` (cleared first).
pub fn encode_sessionless(out: &mut Vec<u8>, message: &[u8]) -> Result<(), DecodeError> {
    let len =
        u8::try_from(message.len()).map_err(|_| DecodeError::Malformed("message too long"))?;
    out.clear();
    out.extend_from_slice(&RMCP_HEADER);
    out.push(AUTH_TYPE_NONE);
    out.extend_from_slice(&[0; 8]);
    out.push(len);
    out.extend_from_slice(message);
    Ok(())
}

/// Write an unauthenticated RMCP+ packet (Open Session, RAKP) into `out` (cleared first).
pub fn encode_plain(
    out: &mut Vec<u8>,
    payload_type: PayloadType,
    session_id: u32,
    seq: u32,
    payload: &[u8],
) -> Result<(), DecodeError> {
    let len =
        u16::try_from(payload.len()).map_err(|_| DecodeError::Malformed("payload too long"))?;
    out.clear();
    out.extend_from_slice(&RMCP_HEADER);
    out.push(AUTH_TYPE_RMCP_PLUS);
    out.push(payload_type.code());
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Write an encrypted and authenticated RMCP+ packet into `out` (cleared first): the payload
/// is AES-CBC-128 encrypted under K2 with `iv`, and the packet is tagged with K1.
pub fn encode_sealed(
    out: &mut Vec<u8>,
    keys: &SessionKeys,
    iv: &[u8; AES_BLOCK],
    payload_type: PayloadType,
    session_id: u32,
    seq: u32,
    plain: &[u8],
) -> Result<(), DecodeError> {
    out.clear();
    out.extend_from_slice(&RMCP_HEADER);
    out.push(AUTH_TYPE_RMCP_PLUS);
    out.push(payload_type.code() | FLAG_ENCRYPTED | FLAG_AUTHENTICATED);
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    keys.encrypt(iv, plain, out);
    let payload_len = out.len() - len_at - 2;
    let len = u16::try_from(payload_len).map_err(|_| DecodeError::Malformed("payload too long"))?;
    out[len_at..len_at + 2].copy_from_slice(&len.to_le_bytes());
    // Pad so that auth type .. next header is a multiple of four bytes.
    let covered = RMCPP_HEADER_LEN + payload_len + 2;
    let pad = (4 - covered % 4) % 4;
    out.extend(std::iter::repeat_n(PAD_BYTE, pad));
    out.push(pad as u8);
    out.push(NEXT_HEADER);
    let tag = keys.integrity_tag(&out[RMCP_HEADER.len()..]);
    out.extend_from_slice(tag.as_bytes());
    Ok(())
}
