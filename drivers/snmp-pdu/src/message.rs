//! SNMP messages (RFC 3416 PDUs in RFC 1157 / 1901 community messages and RFC 3412 v3
//! messages), sans IO and sans crypto: [`crate::usm`] signs and encrypts, the session
//! sends.

use crate::ber::{self, DecodeError, Reader, tag};
use std::ops::Range;

/// PDU tags (context-specific, constructed).
pub mod pdu_tag {
    pub const GET: u8 = 0xa0;
    pub const RESPONSE: u8 = 0xa2;
    pub const SET: u8 = 0xa3;
    pub const REPORT: u8 = 0xa8;
}

/// A varbind value as the agent sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// INTEGER.
    Integer(i64),
    /// OCTET STRING.
    OctetString(Vec<u8>),
    /// NULL (what a request carries).
    Null,
    /// OBJECT IDENTIFIER.
    Oid(Vec<u64>),
    /// An unsigned application type (Counter32, Gauge32, TimeTicks, Counter64), named.
    Unsigned(&'static str, u64),
    /// Any other application type, named.
    Other(&'static str),
    /// SNMPv2 exception: no such object.
    NoSuchObject,
    /// SNMPv2 exception: no such instance.
    NoSuchInstance,
    /// SNMPv2 exception: end of the MIB view.
    EndOfMibView,
}

impl Value {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Integer(v) => ber::put_integer(out, tag::INTEGER, *v),
            Value::OctetString(s) => ber::put(out, tag::OCTET_STRING, s),
            Value::Oid(arcs) => {
                // Requests only carry OIDs the driver validated when it was built.
                if ber::put_oid(out, arcs).is_none() {
                    ber::put(out, tag::NULL, &[]);
                }
            }
            Value::Null
            | Value::Unsigned(..)
            | Value::Other(_)
            | Value::NoSuchObject
            | Value::NoSuchInstance
            | Value::EndOfMibView => ber::put(out, tag::NULL, &[]),
        }
    }

    fn decode(t: u8, content: &[u8]) -> Result<Value, DecodeError> {
        Ok(match t {
            tag::INTEGER => Value::Integer(ber::signed(content, "INTEGER value")?),
            tag::OCTET_STRING => Value::OctetString(content.to_vec()),
            tag::NULL => Value::Null,
            tag::OID => Value::Oid(ber::oid(content, "OID value")?),
            tag::COUNTER32 => Value::Unsigned("Counter32", ber::unsigned(content, 4, "Counter32")?),
            tag::GAUGE32 => Value::Unsigned("Gauge32", ber::unsigned(content, 4, "Gauge32")?),
            tag::TIMETICKS => Value::Unsigned("TimeTicks", ber::unsigned(content, 4, "TimeTicks")?),
            tag::COUNTER64 => Value::Unsigned("Counter64", ber::unsigned(content, 8, "Counter64")?),
            tag::IP_ADDRESS => Value::Other("IpAddress"),
            tag::OPAQUE => Value::Other("Opaque"),
            tag::NO_SUCH_OBJECT => Value::NoSuchObject,
            tag::NO_SUCH_INSTANCE => Value::NoSuchInstance,
            tag::END_OF_MIB_VIEW => Value::EndOfMibView,
            other => {
                return Err(DecodeError(format!(
                    "varbind value with unknown tag {other:#04x}"
                )));
            }
        })
    }
}

/// A PDU (RFC 3416 §3; v1 PDUs share the layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// One of [`pdu_tag`].
    pub tag: u8,
    /// Matches an answer to its request.
    pub request_id: i32,
    /// error-status (0 = noError).
    pub error_status: i64,
    /// error-index (1-based varbind, 0 = none).
    pub error_index: i64,
    /// The variable bindings.
    pub varbinds: Vec<(Vec<u64>, Value)>,
}

impl Pdu {
    /// A GetRequest for `oids`.
    pub fn get(request_id: i32, oids: &[Vec<u64>]) -> Pdu {
        Pdu {
            tag: pdu_tag::GET,
            request_id,
            error_status: 0,
            error_index: 0,
            varbinds: oids.iter().map(|o| (o.clone(), Value::Null)).collect(),
        }
    }

    /// A SetRequest of one INTEGER.
    pub fn set(request_id: i32, oid: &[u64], value: i64) -> Pdu {
        Pdu {
            tag: pdu_tag::SET,
            request_id,
            error_status: 0,
            error_index: 0,
            varbinds: vec![(oid.to_vec(), Value::Integer(value))],
        }
    }

    /// Append the PDU's BER.
    pub fn encode(&self, out: &mut Vec<u8>) {
        ber::put_with(out, self.tag, |c| {
            ber::put_integer(c, tag::INTEGER, i64::from(self.request_id));
            ber::put_integer(c, tag::INTEGER, self.error_status);
            ber::put_integer(c, tag::INTEGER, self.error_index);
            ber::put_with(c, tag::SEQUENCE, |list| {
                for (oid, value) in &self.varbinds {
                    ber::put_with(list, tag::SEQUENCE, |vb| {
                        if ber::put_oid(vb, oid).is_none() {
                            ber::put(vb, tag::OID, &[]);
                        }
                        value.encode(vb);
                    });
                }
            });
        });
    }

    /// Read a PDU.
    pub fn decode(r: &mut Reader<'_>) -> Result<Pdu, DecodeError> {
        let (t, content) = r.any()?;
        if !matches!(t, 0xa0..=0xa8) {
            return Err(DecodeError(format!("expected a PDU, got tag {t:#04x}")));
        }
        let mut p = Reader::new(content);
        let request_id = p.integer("request-id")?;
        let request_id = i32::try_from(request_id)
            .map_err(|_| DecodeError(format!("request-id {request_id} out of range")))?;
        let error_status = p.integer("error-status")?;
        let error_index = p.integer("error-index")?;
        let mut list = p.constructed(tag::SEQUENCE, "varbind list")?;
        let mut varbinds = Vec::new();
        while !list.is_empty() {
            let mut vb = list.constructed(tag::SEQUENCE, "varbind")?;
            let oid = ber::oid(vb.expect(tag::OID, "varbind name")?, "varbind name")?;
            let (vt, vc) = vb.any()?;
            varbinds.push((oid, Value::decode(vt, vc)?));
        }
        Ok(Pdu {
            tag: t,
            request_id,
            error_status,
            error_index,
            varbinds,
        })
    }
}

/// SNMP versions as they appear on the wire.
pub mod version {
    pub const V1: i64 = 0;
    pub const V2C: i64 = 1;
    pub const V3: i64 = 3;
}

/// An RFC 1157 / 1901 message: version, community, PDU.
pub fn community_message(version: i64, community: &[u8], pdu: &Pdu) -> Vec<u8> {
    let mut out = Vec::new();
    ber::put_with(&mut out, tag::SEQUENCE, |m| {
        ber::put_integer(m, tag::INTEGER, version);
        ber::put(m, tag::OCTET_STRING, community);
        pdu.encode(m);
    });
    out
}

/// A decoded community message.
#[derive(Debug)]
pub struct CommunityMessage<'a> {
    /// Wire version.
    pub version: i64,
    /// The community it carries.
    pub community: &'a [u8],
    /// The PDU.
    pub pdu: Pdu,
}

/// Decode a community (v1/v2c) message.
pub fn parse_community(datagram: &[u8]) -> Result<CommunityMessage<'_>, DecodeError> {
    let mut m = Reader::new(datagram).constructed(tag::SEQUENCE, "message")?;
    let version = m.integer("version")?;
    let community = m.octets("community")?;
    let pdu = Pdu::decode(&mut m)?;
    Ok(CommunityMessage {
        version,
        community,
        pdu,
    })
}

/// msgFlags bits (RFC 3412 §6.4).
pub mod flags {
    pub const AUTH: u8 = 0x01;
    pub const PRIV: u8 = 0x02;
    pub const REPORTABLE: u8 = 0x04;
}

/// The USM security model number.
pub const USM: i64 = 3;
/// The largest message we accept, announced as msgMaxSize.
pub const MAX_SIZE: i64 = 65_507;

/// What a v3 message says about its security (RFC 3414 §2.4), borrowed from the datagram.
#[derive(Debug, Clone)]
pub struct UsmParams<'a> {
    /// msgAuthoritativeEngineID.
    pub engine_id: &'a [u8],
    /// msgAuthoritativeEngineBoots.
    pub boots: i64,
    /// msgAuthoritativeEngineTime.
    pub time: i64,
    /// msgUserName.
    pub user: &'a [u8],
    /// msgAuthenticationParameters.
    pub auth: &'a [u8],
    /// msgPrivacyParameters.
    pub privacy: &'a [u8],
}

/// A decoded v3 message.
#[derive(Debug, Clone)]
pub struct V3Message<'a> {
    /// msgID.
    pub msg_id: i64,
    /// msgFlags.
    pub flags: u8,
    /// The USM parameters.
    pub usm: UsmParams<'a>,
    /// Where the authentication parameters sit in the datagram (zeroed to verify).
    pub auth_range: Range<usize>,
    /// The scoped PDU: plaintext BER, or ciphertext when `flags` has PRIV.
    pub data: &'a [u8],
}

/// Where `part` (a subslice of `whole`) starts in `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

/// Decode a v3 message's envelope (the scoped PDU stays as bytes).
pub fn parse_v3(datagram: &[u8]) -> Result<V3Message<'_>, DecodeError> {
    let mut m = Reader::new(datagram).constructed(tag::SEQUENCE, "message")?;
    let version = m.integer("msgVersion")?;
    if version != version::V3 {
        return Err(DecodeError(format!("msgVersion {version}, expected 3")));
    }
    let mut global = m.constructed(tag::SEQUENCE, "msgGlobalData")?;
    let msg_id = global.integer("msgID")?;
    let _max_size = global.integer("msgMaxSize")?;
    let flags = match global.octets("msgFlags")? {
        [f] => *f,
        other => {
            return Err(DecodeError(format!(
                "msgFlags of {} bytes, expected 1",
                other.len()
            )));
        }
    };
    let model = global.integer("msgSecurityModel")?;
    if model != USM {
        return Err(DecodeError(format!(
            "msgSecurityModel {model}, expected 3 (USM)"
        )));
    }
    let mut sp = Reader::new(m.octets("msgSecurityParameters")?)
        .constructed(tag::SEQUENCE, "UsmSecurityParameters")?;
    let engine_id = sp.octets("msgAuthoritativeEngineID")?;
    let boots = sp.integer("msgAuthoritativeEngineBoots")?;
    let time = sp.integer("msgAuthoritativeEngineTime")?;
    let user = sp.octets("msgUserName")?;
    let auth = sp.octets("msgAuthenticationParameters")?;
    let privacy = sp.octets("msgPrivacyParameters")?;
    let start = offset_in(datagram, auth);
    let data = if flags & flags::PRIV != 0 {
        m.octets("encryptedPDU")?
    } else {
        // The whole TLV, so that it parses like a decrypted one.
        let (t, whole) = m.raw()?;
        if t != tag::SEQUENCE {
            return Err(DecodeError(format!("ScopedPDU: tag {t:#04x}")));
        }
        whole
    };
    Ok(V3Message {
        msg_id,
        flags,
        usm: UsmParams {
            engine_id,
            boots,
            time,
            user,
            auth,
            privacy,
        },
        auth_range: start..start + auth.len(),
        data,
    })
}

/// A scoped PDU (RFC 3412 §6.8); the context it names is not needed to read an answer.
#[derive(Debug, Clone)]
pub struct ScopedPdu {
    /// The PDU.
    pub pdu: Pdu,
}

/// Encode a scoped PDU.
pub fn scoped_pdu(context_engine_id: &[u8], context_name: &[u8], pdu: &Pdu) -> Vec<u8> {
    let mut out = Vec::new();
    ber::put_with(&mut out, tag::SEQUENCE, |s| {
        ber::put(s, tag::OCTET_STRING, context_engine_id);
        ber::put(s, tag::OCTET_STRING, context_name);
        pdu.encode(s);
    });
    out
}

/// Decode a scoped PDU. Trailing bytes after it (AES-CFB needs no padding, but DES-era
/// agents pad) are ignored.
pub fn parse_scoped(bytes: &[u8]) -> Result<ScopedPdu, DecodeError> {
    let mut s = Reader::new(bytes).constructed(tag::SEQUENCE, "ScopedPDU")?;
    s.octets("contextEngineID")?;
    s.octets("contextName")?;
    let pdu = Pdu::decode(&mut s)?;
    Ok(ScopedPdu { pdu })
}

/// What goes into an outgoing v3 message.
pub struct V3Out<'a> {
    /// msgID.
    pub msg_id: i32,
    /// msgFlags.
    pub flags: u8,
    /// The USM parameters; `auth` is the placeholder (zeros of the MAC's length).
    pub usm: UsmParams<'a>,
    /// The scoped PDU's BER, or its ciphertext when `flags` has PRIV.
    pub data: &'a [u8],
}

/// Encode a v3 message; returns it and where its authentication parameters sit, to be
/// filled with the MAC over the whole message.
pub fn v3_message(out: &V3Out<'_>) -> (Vec<u8>, Range<usize>) {
    let mut usm = Vec::new();
    ber::put_with(&mut usm, tag::SEQUENCE, |s| {
        ber::put(s, tag::OCTET_STRING, out.usm.engine_id);
        ber::put_integer(s, tag::INTEGER, out.usm.boots);
        ber::put_integer(s, tag::INTEGER, out.usm.time);
        ber::put(s, tag::OCTET_STRING, out.usm.user);
        ber::put(s, tag::OCTET_STRING, out.usm.auth);
        ber::put(s, tag::OCTET_STRING, out.usm.privacy);
    });
    let mut message = Vec::new();
    ber::put_with(&mut message, tag::SEQUENCE, |m| {
        ber::put_integer(m, tag::INTEGER, version::V3);
        ber::put_with(m, tag::SEQUENCE, |g| {
            ber::put_integer(g, tag::INTEGER, i64::from(out.msg_id));
            ber::put_integer(g, tag::INTEGER, MAX_SIZE);
            ber::put(g, tag::OCTET_STRING, &[out.flags]);
            ber::put_integer(g, tag::INTEGER, USM);
        });
        ber::put(m, tag::OCTET_STRING, &usm);
        if out.flags & flags::PRIV != 0 {
            ber::put(m, tag::OCTET_STRING, out.data);
        } else {
            m.extend_from_slice(out.data);
        }
    });
    // The placeholder is followed only by the privacy parameters' TLV (the last field of
    // the security parameters) and by msgData, which closes the message.
    let data_len = if out.flags & flags::PRIV != 0 {
        tlv_len(out.data.len())
    } else {
        out.data.len()
    };
    let end = message.len() - data_len - tlv_len(out.usm.privacy.len());
    (message, end - out.usm.auth.len()..end)
}

/// The encoded size of a TLV with `content` bytes (as [`ber::put`] writes it).
fn tlv_len(content: usize) -> usize {
    let length_bytes = if content < 0x80 {
        1
    } else {
        1 + (usize::BITS - content.leading_zeros()).div_ceil(8) as usize
    };
    1 + length_bytes + content
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_v2c_get_is_byte_exact() {
        // GET sysUpTime.0 with community "public", request-id 1, as net-snmp sends it.
        let pdu = Pdu::get(1, &[vec![1, 3, 6, 1, 2, 1, 1, 3, 0]]);
        let bytes = community_message(version::V2C, b"public", &pdu);
        let want = [
            0x30, 0x26, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa0,
            0x19, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x0e, 0x30, 0x0c,
            0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00, 0x05, 0x00,
        ];
        assert_eq!(bytes, want);
        let back = parse_community(&bytes).unwrap();
        assert_eq!(back.version, version::V2C);
        assert_eq!(back.community, b"public");
        assert_eq!(back.pdu, pdu);
    }

    #[test]
    fn a_v3_message_round_trips_and_locates_its_mac() {
        let scoped = scoped_pdu(b"\x80\x00\x1f\x88", b"", &Pdu::set(7, &[1, 3, 6, 1], 2));
        let zeros = [0u8; 12];
        let out = V3Out {
            msg_id: 42,
            flags: flags::AUTH | flags::REPORTABLE,
            usm: UsmParams {
                engine_id: b"\x80\x00\x1f\x88",
                boots: 3,
                time: 1234,
                user: b"fenceuser",
                auth: &zeros,
                privacy: &[],
            },
            data: &scoped,
        };
        let (bytes, range) = v3_message(&out);
        assert_eq!(range.len(), 12);
        assert_eq!(parse_v3(&bytes).unwrap().auth_range, range);
        assert!(bytes[range.clone()].iter().all(|b| *b == 0));
        let back = parse_v3(&bytes).unwrap();
        assert_eq!(back.msg_id, 42);
        assert_eq!(back.usm.user, b"fenceuser");
        assert_eq!((back.usm.boots, back.usm.time), (3, 1234));
        assert_eq!(back.auth_range, range);
        let s = parse_scoped(back.data).unwrap();
        assert_eq!(s.pdu, Pdu::set(7, &[1, 3, 6, 1], 2));
    }

    proptest! {
        #[test]
        fn the_mac_placeholder_is_where_the_parser_finds_it(
            data_len in 0usize..400,
            mac_len in proptest::sample::select(vec![12usize, 24, 48]),
            encrypted in any::<bool>(),
            user_len in 0usize..40,
        ) {
            let scoped = scoped_pdu(b"e", b"", &Pdu::get(1, &[vec![1, 3, 6, 1, 2, 1, 1, 3, 0]]));
            let data = if encrypted { vec![0xab; data_len] } else { scoped };
            let mac = vec![0u8; mac_len];
            let user = vec![b'u'; user_len];
            let out = V3Out {
                msg_id: 7,
                flags: flags::AUTH | if encrypted { flags::PRIV } else { 0 },
                usm: UsmParams {
                    engine_id: b"engine",
                    boots: 1,
                    time: 2,
                    user: &user,
                    auth: &mac,
                    privacy: if encrypted { &[1; 8] } else { &[] },
                },
                data: &data,
            };
            let (bytes, range) = v3_message(&out);
            prop_assert_eq!(parse_v3(&bytes).unwrap().auth_range, range);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_community(&bytes);
            let _ = parse_v3(&bytes);
            let _ = parse_scoped(&bytes);
        }

        #[test]
        fn truncations_of_a_real_message_are_errors_not_panics(cut in 0usize..40) {
            let pdu = Pdu::get(1, &[vec![1, 3, 6, 1, 2, 1, 1, 3, 0]]);
            let bytes = community_message(version::V2C, b"public", &pdu);
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(parse_community(&bytes[..cut]).is_err());
        }
    }
}
