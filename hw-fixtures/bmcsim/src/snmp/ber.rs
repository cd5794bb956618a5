//! A sans-IO BER codec for exactly the SNMPv1/v2c messages a PDU agent handles, plus the
//! SNMPv3 envelope as far as engine discovery and unknown-user reports need it.
//!
//! Hand-written rather than borrowed so that the simulator does not share a decoder (and its
//! bugs) with the driver under test. It decodes community-based messages with Get, GetNext,
//! GetBulk and Set PDUs and encodes Response PDUs. Everything a client sends is untrusted:
//! every length is checked against the buffer, nesting is bounded by the grammar, and a
//! malformed message is an error, never a panic (a property test feeds it garbage).

use std::fmt;

/// ASN.1/SNMP tags used here.
pub mod tag {
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// SEQUENCE.
    pub const SEQUENCE: u8 = 0x30;
    /// GetRequest-PDU.
    pub const GET: u8 = 0xa0;
    /// GetNextRequest-PDU.
    pub const GET_NEXT: u8 = 0xa1;
    /// Response-PDU.
    pub const RESPONSE: u8 = 0xa2;
    /// SetRequest-PDU.
    pub const SET: u8 = 0xa3;
    /// GetBulkRequest-PDU (v2c).
    pub const GET_BULK: u8 = 0xa5;
    /// noSuchObject exception (v2c).
    pub const NO_SUCH_OBJECT: u8 = 0x80;
    /// noSuchInstance exception (v2c).
    pub const NO_SUCH_INSTANCE: u8 = 0x81;
    /// endOfMibView exception (v2c).
    pub const END_OF_MIB_VIEW: u8 = 0x82;
}

/// A varbind value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// INTEGER.
    Integer(i64),
    /// OCTET STRING.
    OctetString(Vec<u8>),
    /// NULL (the value of every varbind in a GET).
    Null,
    /// OBJECT IDENTIFIER.
    Oid(Vec<u32>),
    /// noSuchObject.
    NoSuchObject,
    /// noSuchInstance.
    NoSuchInstance,
    /// endOfMibView.
    EndOfMibView,
    /// Any other type, kept as tag and content so a SET of it can be refused by type.
    Other(u8, Vec<u8>),
}

/// The kind of request PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PduKind {
    /// GetRequest.
    Get,
    /// GetNextRequest.
    GetNext,
    /// GetBulkRequest (treated as GetNext per varbind).
    GetBulk,
    /// SetRequest.
    Set,
    /// Response (only ever encoded here).
    Response,
}

impl PduKind {
    fn tag(self) -> u8 {
        match self {
            PduKind::Get => tag::GET,
            PduKind::GetNext => tag::GET_NEXT,
            PduKind::GetBulk => tag::GET_BULK,
            PduKind::Set => tag::SET,
            PduKind::Response => tag::RESPONSE,
        }
    }
}

/// A community-based SNMP message (v1: version 0, v2c: version 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The version field (0 = v1, 1 = v2c).
    pub version: i64,
    /// The community string.
    pub community: Vec<u8>,
    /// The PDU type.
    pub kind: PduKind,
    /// The request id, echoed in the response.
    pub request_id: i64,
    /// error-status (non-repeaters in GetBulk).
    pub error_status: i64,
    /// error-index (max-repetitions in GetBulk).
    pub error_index: i64,
    /// The variable bindings.
    pub varbinds: Vec<(Vec<u32>, Value)>,
}

/// Why a datagram was not a message this codec understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DecodeError {}

type Result<T> = std::result::Result<T, DecodeError>;

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn byte(&mut self) -> Result<u8> {
        let (&b, rest) = self.buf.split_first().ok_or(DecodeError("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    fn length(&mut self) -> Result<usize> {
        let first = self.byte()?;
        if first & 0x80 == 0 {
            return Ok(usize::from(first));
        }
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(DecodeError("unsupported length form"));
        }
        let mut len = 0usize;
        for _ in 0..n {
            len = (len << 8) | usize::from(self.byte()?);
        }
        Ok(len)
    }

    /// Any TLV: its tag and content.
    fn tlv(&mut self) -> Result<(u8, &'a [u8])> {
        let t = self.byte()?;
        if t & 0x1f == 0x1f {
            return Err(DecodeError("multi-byte tags are not used by SNMP"));
        }
        let len = self.length()?;
        if len > self.buf.len() {
            return Err(DecodeError("length beyond the datagram"));
        }
        let (content, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok((t, content))
    }

    fn expect(&mut self, want: u8) -> Result<&'a [u8]> {
        let (t, content) = self.tlv()?;
        if t != want {
            return Err(DecodeError("unexpected tag"));
        }
        Ok(content)
    }

    fn integer(&mut self) -> Result<i64> {
        decode_integer(self.expect(tag::INTEGER)?)
    }
}

fn decode_integer(content: &[u8]) -> Result<i64> {
    if content.is_empty() || content.len() > 8 {
        return Err(DecodeError("INTEGER of unsupported size"));
    }
    let mut v: i64 = if content[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in content {
        v = (v << 8) | i64::from(b);
    }
    Ok(v)
}

fn decode_oid(content: &[u8]) -> Result<Vec<u32>> {
    let mut arcs = Vec::with_capacity(content.len() + 1);
    let mut acc: u64 = 0;
    let mut in_arc = false;
    for &b in content {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if acc > u64::from(u32::MAX) {
            return Err(DecodeError("OID arc overflows 32 bits"));
        }
        in_arc = b & 0x80 != 0;
        if !in_arc {
            if arcs.is_empty() {
                let (first, second) = match acc {
                    0..40 => (0, acc),
                    40..80 => (1, acc - 40),
                    _ => (2, acc - 80),
                };
                arcs.push(first as u32);
                arcs.push(u32::try_from(second).map_err(|_| DecodeError("OID arc overflow"))?);
            } else {
                arcs.push(acc as u32);
            }
            acc = 0;
        }
    }
    if in_arc || arcs.is_empty() {
        return Err(DecodeError("truncated OID"));
    }
    Ok(arcs)
}

fn decode_value(t: u8, content: &[u8]) -> Result<Value> {
    Ok(match t {
        tag::INTEGER => Value::Integer(decode_integer(content)?),
        tag::OCTET_STRING => Value::OctetString(content.to_vec()),
        tag::NULL if content.is_empty() => Value::Null,
        tag::NULL => return Err(DecodeError("NULL with content")),
        tag::OID => Value::Oid(decode_oid(content)?),
        tag::NO_SUCH_OBJECT => Value::NoSuchObject,
        tag::NO_SUCH_INSTANCE => Value::NoSuchInstance,
        tag::END_OF_MIB_VIEW => Value::EndOfMibView,
        other if other & 0x20 != 0 => return Err(DecodeError("constructed varbind value")),
        other => Value::Other(other, content.to_vec()),
    })
}

/// Decode one datagram.
pub fn decode(datagram: &[u8]) -> Result<Message> {
    let mut outer = Reader::new(datagram);
    let mut msg = Reader::new(outer.expect(tag::SEQUENCE)?);
    let version = msg.integer()?;
    let community = msg.expect(tag::OCTET_STRING)?.to_vec();
    let (pdu_tag, pdu) = msg.tlv()?;
    decode_pdu(version, community, pdu_tag, pdu)
}

/// Decode a PDU's TLV into a [`Message`] carrying `version` and `community`.
fn decode_pdu(version: i64, community: Vec<u8>, pdu_tag: u8, pdu: &[u8]) -> Result<Message> {
    let kind = match pdu_tag {
        tag::GET => PduKind::Get,
        tag::GET_NEXT => PduKind::GetNext,
        tag::GET_BULK => PduKind::GetBulk,
        tag::SET => PduKind::Set,
        tag::RESPONSE => PduKind::Response,
        _ => return Err(DecodeError("unsupported PDU type")),
    };
    let mut pdu = Reader::new(pdu);
    let request_id = pdu.integer()?;
    let error_status = pdu.integer()?;
    let error_index = pdu.integer()?;
    let mut list = Reader::new(pdu.expect(tag::SEQUENCE)?);
    let mut varbinds = Vec::new();
    while !list.is_empty() {
        let mut vb = Reader::new(list.expect(tag::SEQUENCE)?);
        let name = decode_oid(vb.expect(tag::OID)?)?;
        let (t, content) = vb.tlv()?;
        varbinds.push((name, decode_value(t, content)?));
        if !vb.is_empty() {
            return Err(DecodeError("trailing bytes in a varbind"));
        }
    }
    Ok(Message {
        version,
        community,
        kind,
        request_id,
        error_status,
        error_index,
        varbinds,
    })
}

fn push_tlv(out: &mut Vec<u8>, t: u8, content: &[u8]) {
    out.push(t);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

fn encode_integer(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    // Drop redundant leading bytes while the sign stays the same.
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

fn encode_oid(arcs: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(arcs.len() + 2);
    let (first, rest) = match arcs {
        [a, b, rest @ ..] => (u64::from(*a) * 40 + u64::from(*b), rest),
        [a] => (u64::from(*a) * 40, &[][..]),
        [] => (0, &[][..]),
    };
    let mut push = |v: u64| {
        let mut groups = [0u8; 10];
        let mut n = 0;
        let mut v = v;
        loop {
            groups[n] = (v & 0x7f) as u8;
            n += 1;
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            out.push(groups[i] | if i == 0 { 0 } else { 0x80 });
        }
    };
    push(first);
    for a in rest {
        push(u64::from(*a));
    }
    out
}

fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Integer(i) => push_tlv(out, tag::INTEGER, &encode_integer(*i)),
        Value::OctetString(s) => push_tlv(out, tag::OCTET_STRING, s),
        Value::Null => push_tlv(out, tag::NULL, &[]),
        Value::Oid(o) => push_tlv(out, tag::OID, &encode_oid(o)),
        Value::NoSuchObject => push_tlv(out, tag::NO_SUCH_OBJECT, &[]),
        Value::NoSuchInstance => push_tlv(out, tag::NO_SUCH_INSTANCE, &[]),
        Value::EndOfMibView => push_tlv(out, tag::END_OF_MIB_VIEW, &[]),
        Value::Other(t, c) => push_tlv(out, *t, c),
    }
}

/// Encode a message (the simulator only ever encodes responses; tests encode requests).
pub fn encode(m: &Message, out: &mut Vec<u8>) {
    let mut list = Vec::new();
    for (name, value) in &m.varbinds {
        let mut vb = Vec::new();
        push_tlv(&mut vb, tag::OID, &encode_oid(name));
        encode_value(&mut vb, value);
        push_tlv(&mut list, tag::SEQUENCE, &vb);
    }
    let mut pdu = Vec::new();
    push_tlv(&mut pdu, tag::INTEGER, &encode_integer(m.request_id));
    push_tlv(&mut pdu, tag::INTEGER, &encode_integer(m.error_status));
    push_tlv(&mut pdu, tag::INTEGER, &encode_integer(m.error_index));
    push_tlv(&mut pdu, tag::SEQUENCE, &list);
    let mut body = Vec::new();
    push_tlv(&mut body, tag::INTEGER, &encode_integer(m.version));
    push_tlv(&mut body, tag::OCTET_STRING, &m.community);
    push_tlv(&mut body, m.kind.tag(), &pdu);
    out.clear();
    push_tlv(out, tag::SEQUENCE, &body);
}

/// What the agent reads of an SNMPv3 message (RFC 3412 §6, RFC 3414 §2.4): enough to answer
/// engine discovery and to refuse users it does not have, as a real agent does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Request {
    /// msgID, echoed in the report.
    pub msg_id: i64,
    /// Whether msgFlags asks for a report.
    pub reportable: bool,
    /// msgAuthoritativeEngineID (empty for discovery).
    pub engine_id: Vec<u8>,
    /// msgUserName.
    pub user: Vec<u8>,
    /// The request-id of a plaintext scoped PDU (0 when encrypted).
    pub request_id: i64,
}

/// The SNMP version field of a datagram.
pub fn version(datagram: &[u8]) -> Result<i64> {
    Reader::new(Reader::new(datagram).expect(tag::SEQUENCE)?).integer()
}

/// Decode an SNMPv3 message as far as [`V3Request`] goes.
pub fn decode_v3(datagram: &[u8]) -> Result<V3Request> {
    let mut m = Reader::new(Reader::new(datagram).expect(tag::SEQUENCE)?);
    if m.integer()? != 3 {
        return Err(DecodeError("not SNMPv3"));
    }
    let mut global = Reader::new(m.expect(tag::SEQUENCE)?);
    let msg_id = global.integer()?;
    let _max_size = global.integer()?;
    let flags = match global.expect(tag::OCTET_STRING)? {
        [f] => *f,
        _ => return Err(DecodeError("msgFlags must be one byte")),
    };
    if global.integer()? != 3 {
        return Err(DecodeError("not the user-based security model"));
    }
    let mut usm = Reader::new(Reader::new(m.expect(tag::OCTET_STRING)?).expect(tag::SEQUENCE)?);
    let engine_id = usm.expect(tag::OCTET_STRING)?.to_vec();
    let _boots = usm.integer()?;
    let _time = usm.integer()?;
    let user = usm.expect(tag::OCTET_STRING)?.to_vec();
    let request_id = if flags & 0x02 == 0 {
        let mut scoped = Reader::new(m.expect(tag::SEQUENCE)?);
        scoped.expect(tag::OCTET_STRING)?;
        scoped.expect(tag::OCTET_STRING)?;
        let (_, pdu) = scoped.tlv()?;
        Reader::new(pdu).integer()?
    } else {
        0
    };
    Ok(V3Request {
        msg_id,
        reportable: flags & 0x04 != 0,
        engine_id,
        user,
        request_id,
    })
}

/// An SNMPv3 message as the agent reads it to authenticate and answer it (RFC 3412 §6,
/// RFC 3414 §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Message {
    /// msgID.
    pub msg_id: i64,
    /// msgFlags (auth 0x01, priv 0x02, reportable 0x04).
    pub flags: u8,
    /// msgAuthoritativeEngineID.
    pub engine_id: Vec<u8>,
    /// msgAuthoritativeEngineBoots.
    pub boots: i64,
    /// msgAuthoritativeEngineTime.
    pub time: i64,
    /// msgUserName.
    pub user: Vec<u8>,
    /// msgAuthenticationParameters (the MAC).
    pub auth: Vec<u8>,
    /// Where the MAC sits in the datagram, to zero it for verification.
    pub auth_range: std::ops::Range<usize>,
    /// contextName and the PDU (as a [`Message`] without community); `None` when
    /// encrypted.
    pub scoped: Option<(Vec<u8>, Message)>,
}

/// Decode a whole SNMPv3 message.
pub fn decode_v3_full(datagram: &[u8]) -> Result<V3Message> {
    let mut m = Reader::new(Reader::new(datagram).expect(tag::SEQUENCE)?);
    if m.integer()? != 3 {
        return Err(DecodeError("not SNMPv3"));
    }
    let mut global = Reader::new(m.expect(tag::SEQUENCE)?);
    let msg_id = global.integer()?;
    let _max_size = global.integer()?;
    let flags = match global.expect(tag::OCTET_STRING)? {
        [f] => *f,
        _ => return Err(DecodeError("msgFlags must be one byte")),
    };
    if global.integer()? != 3 {
        return Err(DecodeError("not the user-based security model"));
    }
    let mut usm = Reader::new(Reader::new(m.expect(tag::OCTET_STRING)?).expect(tag::SEQUENCE)?);
    let engine_id = usm.expect(tag::OCTET_STRING)?.to_vec();
    let boots = usm.integer()?;
    let time = usm.integer()?;
    let user = usm.expect(tag::OCTET_STRING)?.to_vec();
    let auth = usm.expect(tag::OCTET_STRING)?;
    // The MAC is a sub-slice of the datagram: its offset is where it sits.
    let start = auth.as_ptr() as usize - datagram.as_ptr() as usize;
    let auth_range = start..start + auth.len();
    let _privacy = usm.expect(tag::OCTET_STRING)?;
    let scoped = if flags & 0x02 == 0 {
        let mut scoped = Reader::new(m.expect(tag::SEQUENCE)?);
        let _context_engine = scoped.expect(tag::OCTET_STRING)?;
        let context = scoped.expect(tag::OCTET_STRING)?.to_vec();
        let (t, pdu) = scoped.tlv()?;
        Some((context, decode_pdu(3, Vec::new(), t, pdu)?))
    } else {
        None
    };
    Ok(V3Message {
        msg_id,
        flags,
        engine_id,
        boots,
        time,
        user,
        auth: auth.to_vec(),
        auth_range,
        scoped,
    })
}

/// Encode an authenticated SNMPv3 answer (a Response, or a Report with `resp.kind`
/// ignored and `report` set) with a zero MAC of `mac_len` bytes; returns where the MAC
/// goes, for the caller to sign the datagram and fill it in.
pub fn encode_v3_answer(
    msg_id: i64,
    engine: (&[u8], i64, i64),
    user: &[u8],
    mac_len: usize,
    context: &[u8],
    resp: &Message,
    out: &mut Vec<u8>,
) -> std::ops::Range<usize> {
    let (engine_id, boots, time) = engine;
    let mut list = Vec::new();
    for (name, value) in &resp.varbinds {
        let mut vb = Vec::new();
        push_tlv(&mut vb, tag::OID, &encode_oid(name));
        encode_value(&mut vb, value);
        push_tlv(&mut list, tag::SEQUENCE, &vb);
    }
    let mut pdu = Vec::new();
    push_tlv(&mut pdu, tag::INTEGER, &encode_integer(resp.request_id));
    push_tlv(&mut pdu, tag::INTEGER, &encode_integer(resp.error_status));
    push_tlv(&mut pdu, tag::INTEGER, &encode_integer(resp.error_index));
    push_tlv(&mut pdu, tag::SEQUENCE, &list);
    let mut scoped = Vec::new();
    push_tlv(&mut scoped, tag::OCTET_STRING, engine_id);
    push_tlv(&mut scoped, tag::OCTET_STRING, context);
    push_tlv(&mut scoped, resp.kind.tag(), &pdu);
    let mut usm = Vec::new();
    push_tlv(&mut usm, tag::OCTET_STRING, engine_id);
    push_tlv(&mut usm, tag::INTEGER, &encode_integer(boots));
    push_tlv(&mut usm, tag::INTEGER, &encode_integer(time));
    push_tlv(&mut usm, tag::OCTET_STRING, user);
    push_tlv(&mut usm, tag::OCTET_STRING, &vec![0u8; mac_len]);
    push_tlv(&mut usm, tag::OCTET_STRING, b"");
    let mut usm_seq = Vec::new();
    push_tlv(&mut usm_seq, tag::SEQUENCE, &usm);
    let mut global = Vec::new();
    push_tlv(&mut global, tag::INTEGER, &encode_integer(msg_id));
    push_tlv(&mut global, tag::INTEGER, &encode_integer(65_507));
    push_tlv(&mut global, tag::OCTET_STRING, &[0x01]);
    push_tlv(&mut global, tag::INTEGER, &encode_integer(3));
    let mut body = Vec::new();
    push_tlv(&mut body, tag::INTEGER, &encode_integer(3));
    push_tlv(&mut body, tag::SEQUENCE, &global);
    push_tlv(&mut body, tag::OCTET_STRING, &usm_seq);
    push_tlv(&mut body, tag::SEQUENCE, &scoped);
    out.clear();
    push_tlv(out, tag::SEQUENCE, &body);
    // Read back where the placeholder landed rather than counting length octets twice.
    decode_v3_full(out).map(|m| m.auth_range).unwrap_or(0..0)
}

/// The usmStats counters a report names (RFC 3414 §5).
pub mod usm_stats {
    /// usmStatsUnknownUserNames.0
    pub const UNKNOWN_USER_NAMES: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 3, 0];
    /// usmStatsUnknownEngineIDs.0
    pub const UNKNOWN_ENGINE_IDS: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0];
    /// usmStatsUnsupportedSecLevels.0
    pub const UNSUPPORTED_SEC_LEVELS: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 1, 0];
    /// usmStatsWrongDigests.0
    pub const WRONG_DIGESTS: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 5, 0];
}

/// Encode an unauthenticated SNMPv3 Report answering `req`: the agent's engine, its boots
/// and time, and one usmStats counter.
pub fn encode_v3_report(
    req: &V3Request,
    engine: (&[u8], i64, i64),
    counter: (&[u32], u32),
    out: &mut Vec<u8>,
) {
    let (engine_id, boots, time) = engine;
    let mut vb = Vec::new();
    push_tlv(&mut vb, tag::OID, &encode_oid(counter.0));
    push_tlv(&mut vb, 0x41, &encode_integer(i64::from(counter.1)));
    let mut list = Vec::new();
    push_tlv(&mut list, tag::SEQUENCE, &vb);
    let mut pdu = Vec::new();
    push_tlv(&mut pdu, tag::INTEGER, &encode_integer(req.request_id));
    push_tlv(&mut pdu, tag::INTEGER, &encode_integer(0));
    push_tlv(&mut pdu, tag::INTEGER, &encode_integer(0));
    push_tlv(&mut pdu, tag::SEQUENCE, &list);
    let mut scoped = Vec::new();
    push_tlv(&mut scoped, tag::OCTET_STRING, engine_id);
    push_tlv(&mut scoped, tag::OCTET_STRING, b"");
    push_tlv(&mut scoped, 0xa8, &pdu);
    let mut usm = Vec::new();
    push_tlv(&mut usm, tag::OCTET_STRING, engine_id);
    push_tlv(&mut usm, tag::INTEGER, &encode_integer(boots));
    push_tlv(&mut usm, tag::INTEGER, &encode_integer(time));
    push_tlv(&mut usm, tag::OCTET_STRING, &req.user);
    push_tlv(&mut usm, tag::OCTET_STRING, b"");
    push_tlv(&mut usm, tag::OCTET_STRING, b"");
    let mut usm_seq = Vec::new();
    push_tlv(&mut usm_seq, tag::SEQUENCE, &usm);
    let mut global = Vec::new();
    push_tlv(&mut global, tag::INTEGER, &encode_integer(req.msg_id));
    push_tlv(&mut global, tag::INTEGER, &encode_integer(65_507));
    push_tlv(&mut global, tag::OCTET_STRING, &[0]);
    push_tlv(&mut global, tag::INTEGER, &encode_integer(3));
    let mut body = Vec::new();
    push_tlv(&mut body, tag::INTEGER, &encode_integer(3));
    push_tlv(&mut body, tag::SEQUENCE, &global);
    push_tlv(&mut body, tag::OCTET_STRING, &usm_seq);
    push_tlv(&mut body, tag::SEQUENCE, &scoped);
    out.clear();
    push_tlv(out, tag::SEQUENCE, &body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn v3_discovery_is_read_and_answered_with_a_report() {
        // `snmpget -v3` discovery as net-snmp sends it: msgID 0x1234, reportable, no engine,
        // no user, an empty GET with request-id 0x55.
        let discovery: &[u8] = &[
            0x30, 0x39, 0x02, 0x01, 0x03, 0x30, 0x0f, 0x02, 0x02, 0x12, 0x34, 0x02, 0x03, 0x00,
            0xff, 0xe3, 0x04, 0x01, 0x04, 0x02, 0x01, 0x03, 0x04, 0x10, 0x30, 0x0e, 0x04, 0x00,
            0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00, 0x04, 0x00, 0x30, 0x11,
            0x04, 0x00, 0x04, 0x00, 0xa0, 0x0b, 0x02, 0x01, 0x55, 0x02, 0x01, 0x00, 0x02, 0x01,
            0x00, 0x30, 0x00,
        ];
        let req = decode_v3(discovery).unwrap();
        assert_eq!(version(discovery).unwrap(), 3);
        assert_eq!(req.msg_id, 0x1234);
        assert!(req.reportable);
        assert!(req.engine_id.is_empty() && req.user.is_empty());
        assert_eq!(req.request_id, 0x55);
        let mut out = Vec::new();
        encode_v3_report(
            &req,
            (b"\x80\x00\x01\x3e\x04pdu0", 1, 42),
            (&usm_stats::UNKNOWN_ENGINE_IDS, 1),
            &mut out,
        );
        let back = decode_v3(&out).unwrap();
        assert_eq!(back.msg_id, 0x1234);
        assert_eq!(back.engine_id, b"\x80\x00\x01\x3e\x04pdu0");
        assert_eq!(back.request_id, 0x55);
    }

    /// `snmpget -v2c -c public 127.0.0.1 1.3.6.1.2.1.1.5.0` as net-snmp sends it.
    const NETSNMP_GET: &[u8] = &[
        0x30, 0x29, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa0, 0x1c,
        0x02, 0x04, 0x12, 0x34, 0x56, 0x78, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x0e, 0x30,
        0x0c, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x05, 0x00, 0x05, 0x00,
    ];

    #[test]
    fn decodes_a_real_get() {
        let m = decode(NETSNMP_GET).unwrap();
        assert_eq!(m.version, 1);
        assert_eq!(m.community, b"public");
        assert_eq!(m.kind, PduKind::Get);
        assert_eq!(m.request_id, 0x1234_5678);
        assert_eq!(
            m.varbinds,
            vec![(vec![1, 3, 6, 1, 2, 1, 1, 5, 0], Value::Null)]
        );
        let mut out = Vec::new();
        encode(&m, &mut out);
        assert_eq!(out, NETSNMP_GET);
    }

    #[test]
    fn integers_round_trip_at_the_edges() {
        for v in [
            0,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            256,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            assert_eq!(decode_integer(&encode_integer(v)).unwrap(), v, "{v}");
        }
        assert_eq!(encode_integer(128), [0x00, 0x80]);
        assert_eq!(encode_integer(-129), [0xff, 0x7f]);
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Integer),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::OctetString),
            Just(Value::Null),
            Just(Value::NoSuchInstance),
            proptest::collection::vec(any::<u32>(), 0..12).prop_map(|rest| {
                let mut oid = vec![1, 3];
                oid.extend(rest);
                Value::Oid(oid)
            }),
        ]
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn v3_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_v3_full(&bytes);
        }

        #[test]
        fn v3_answers_round_trip_and_survive_mutation(
            idx in 0usize..200, byte in any::<u8>(), request_id in any::<i32>(),
        ) {
            let resp = Message {
                version: 3, community: Vec::new(), kind: PduKind::Response,
                request_id: i64::from(request_id), error_status: 0, error_index: 0,
                varbinds: vec![(vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 4, 4, 2, 1, 3, 4], Value::Integer(2))],
            };
            let mut out = Vec::new();
            let at = encode_v3_answer(7, (b"\x80\x00\x01\x3e\x04pdu0", 1, 9), b"u", 24, b"", &resp, &mut out);
            prop_assert_eq!(at.len(), 24);
            let back = decode_v3_full(&out).unwrap();
            prop_assert_eq!(back.auth_range, at);
            prop_assert_eq!(back.scoped.map(|(_, m)| m.varbinds), Some(resp.varbinds));
            let i = idx % out.len();
            out[i] = byte;
            let _ = decode_v3_full(&out);
        }

        #[test]
        fn decoder_never_panics_on_mutated_messages(
            idx in 0usize..NETSNMP_GET.len(), byte in any::<u8>(), cut in 0usize..NETSNMP_GET.len()
        ) {
            let mut m = NETSNMP_GET.to_vec();
            m[idx] = byte;
            let _ = decode(&m);
            let _ = decode(&NETSNMP_GET[..cut]);
        }

        #[test]
        fn messages_round_trip(
            version in 0i64..2,
            community in proptest::collection::vec(any::<u8>(), 0..40),
            request_id in any::<i32>(),
            varbinds in proptest::collection::vec(
                (proptest::collection::vec(any::<u32>(), 1..16), arb_value()), 0..8),
        ) {
            let varbinds = varbinds
                .into_iter()
                .map(|(mut oid, v)| { oid.insert(0, 1); oid.insert(1, 3); (oid, v) })
                .collect();
            let m = Message {
                version, community, kind: PduKind::Set, request_id: i64::from(request_id),
                error_status: 0, error_index: 0, varbinds,
            };
            let mut out = Vec::new();
            encode(&m, &mut out);
            prop_assert_eq!(decode(&out).unwrap(), m);
        }
    }
}
