//! The subset of BER (X.690) that SNMP messages use, sans IO.
//!
//! Encoding builds every TLV from its finished content, so lengths are always definite
//! and minimal. Decoding borrows from the datagram, refuses indefinite lengths, lengths
//! past the end and integers wider than the type they stand for: an agent's answer is
//! untrusted input, and nothing in it may panic the driver.

use std::fmt;

/// Universal and SNMP application tags.
pub mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    pub const IP_ADDRESS: u8 = 0x40;
    pub const COUNTER32: u8 = 0x41;
    pub const GAUGE32: u8 = 0x42;
    pub const TIMETICKS: u8 = 0x43;
    pub const OPAQUE: u8 = 0x44;
    pub const COUNTER64: u8 = 0x46;
    pub const NO_SUCH_OBJECT: u8 = 0x80;
    pub const NO_SUCH_INSTANCE: u8 = 0x81;
    pub const END_OF_MIB_VIEW: u8 = 0x82;
}

/// A datagram that is not the BER it claims to be; says what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(what: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(what.into()))
}

/// Append a TLV with `content`.
pub fn put(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// Append a TLV whose content `f` writes.
pub fn put_with(out: &mut Vec<u8>, tag: u8, f: impl FnOnce(&mut Vec<u8>)) {
    let mut content = Vec::new();
    f(&mut content);
    put(out, tag, &content);
}

/// Append a two's-complement INTEGER (or an application type sharing its encoding).
pub fn put_integer(out: &mut Vec<u8>, tag: u8, v: i64) {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    // Drop leading bytes that only repeat the sign of the next one.
    while start < 7
        && ((bytes[start] == 0x00 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    put(out, tag, &bytes[start..]);
}

/// Append an OBJECT IDENTIFIER. `None` when the arcs cannot be encoded (fewer than two,
/// first above 2, second above 39 under 0 or 1).
pub fn put_oid(out: &mut Vec<u8>, arcs: &[u64]) -> Option<()> {
    let content = oid_content(arcs)?;
    put(out, tag::OID, &content);
    Some(())
}

fn oid_content(arcs: &[u64]) -> Option<Vec<u8>> {
    let (&first, &second) = (arcs.first()?, arcs.get(1)?);
    if first > 2 || (first < 2 && second > 39) {
        return None;
    }
    let mut content = Vec::new();
    let head = first.checked_mul(40)?.checked_add(second)?;
    for arc in std::iter::once(head).chain(arcs[2..].iter().copied()) {
        let mut groups = [0u8; 10];
        let mut n = 0;
        let mut v = arc;
        loop {
            groups[n] = (v & 0x7f) as u8;
            n += 1;
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            content.push(groups[i] | if i > 0 { 0x80 } else { 0 });
        }
    }
    Some(content)
}

/// Whether `arcs` can be encoded as an OBJECT IDENTIFIER.
pub fn oid_encodable(arcs: &[u64]) -> bool {
    oid_content(arcs).is_some()
}

/// A cursor over BER TLVs, borrowing from the datagram.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next TLV: its tag and content.
    pub fn any(&mut self) -> Result<(u8, &'a [u8]), DecodeError> {
        let [tag, first, rest @ ..] = self.buf else {
            return err("truncated TLV header");
        };
        if tag & 0x1f == 0x1f {
            return err(format!("multi-byte tag {tag:#04x} is not SNMP"));
        }
        let (len, rest) = if first & 0x80 == 0 {
            (usize::from(*first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 {
                return err("indefinite length is not allowed");
            }
            if n > 4 || rest.len() < n {
                return err("length field too long or truncated");
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return err(format!(
                "TLV {tag:#04x} claims {len} bytes, {} left",
                rest.len()
            ));
        }
        let (content, after) = rest.split_at(len);
        self.buf = after;
        Ok((*tag, content))
    }

    /// The next TLV whole (header and content), with its tag.
    pub fn raw(&mut self) -> Result<(u8, &'a [u8]), DecodeError> {
        let start = self.buf;
        let (tag, _) = self.any()?;
        let used = start.len() - self.buf.len();
        Ok((tag, &start[..used]))
    }

    /// The next TLV, which must have `tag`; its content.
    pub fn expect(&mut self, want: u8, what: &str) -> Result<&'a [u8], DecodeError> {
        let (tag, content) = self.any()?;
        if tag != want {
            return err(format!("{what}: expected tag {want:#04x}, got {tag:#04x}"));
        }
        Ok(content)
    }

    /// The next SEQUENCE (or constructed `tag`), as a reader over its content.
    pub fn constructed(&mut self, want: u8, what: &str) -> Result<Reader<'a>, DecodeError> {
        self.expect(want, what).map(Reader::new)
    }

    /// The next INTEGER, which must fit an `i64`.
    pub fn integer(&mut self, what: &str) -> Result<i64, DecodeError> {
        let content = self.expect(tag::INTEGER, what)?;
        signed(content, what)
    }

    /// The next OCTET STRING.
    pub fn octets(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        self.expect(tag::OCTET_STRING, what)
    }
}

/// A two's-complement integer content.
pub fn signed(content: &[u8], what: &str) -> Result<i64, DecodeError> {
    if content.is_empty() || content.len() > 8 {
        return err(format!("{what}: INTEGER of {} bytes", content.len()));
    }
    let negative = content[0] & 0x80 != 0;
    let init: i64 = if negative { -1 } else { 0 };
    Ok(content
        .iter()
        .fold(init, |acc, b| (acc << 8) | i64::from(*b)))
}

/// An unsigned integer content (Counter32, Gauge32, TimeTicks, Counter64).
pub fn unsigned(content: &[u8], max_bytes: usize, what: &str) -> Result<u64, DecodeError> {
    let trimmed = match content {
        [0, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    if content.is_empty() || trimmed.len() > max_bytes {
        return err(format!("{what}: unsigned of {} bytes", content.len()));
    }
    Ok(trimmed
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// An OBJECT IDENTIFIER content, as arcs.
pub fn oid(content: &[u8], what: &str) -> Result<Vec<u64>, DecodeError> {
    if content.is_empty() {
        return err(format!("{what}: empty OBJECT IDENTIFIER"));
    }
    let mut subids = Vec::new();
    let mut v: u64 = 0;
    let mut open = false;
    for b in content {
        if v > (u64::MAX >> 7) {
            return err(format!("{what}: OBJECT IDENTIFIER arc overflows"));
        }
        v = (v << 7) | u64::from(b & 0x7f);
        open = b & 0x80 != 0;
        if !open {
            subids.push(v);
            v = 0;
        }
    }
    if open {
        return err(format!("{what}: OBJECT IDENTIFIER ends mid-arc"));
    }
    let head = subids[0];
    let (first, second) = match head {
        0..=39 => (0, head),
        40..=79 => (1, head - 40),
        _ => (2, head - 80),
    };
    let mut arcs = vec![first, second];
    arcs.extend_from_slice(&subids[1..]);
    Ok(arcs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn integer_bytes(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_integer(&mut out, tag::INTEGER, v);
        out
    }

    #[test]
    fn integers_are_minimal_twos_complement() {
        assert_eq!(integer_bytes(0), [0x02, 0x01, 0x00]);
        assert_eq!(integer_bytes(127), [0x02, 0x01, 0x7f]);
        assert_eq!(integer_bytes(128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer_bytes(-1), [0x02, 0x01, 0xff]);
        assert_eq!(integer_bytes(-129), [0x02, 0x02, 0xff, 0x7f]);
    }

    #[test]
    fn oids_follow_x690() {
        // sysUpTime.0
        let mut out = Vec::new();
        put_oid(&mut out, &[1, 3, 6, 1, 2, 1, 1, 3, 0]).unwrap();
        assert_eq!(out, [0x06, 0x08, 0x2b, 6, 1, 2, 1, 1, 3, 0]);
        // A multi-byte arc (PowerNet-MIB's enterprise number 318).
        let mut out = Vec::new();
        put_oid(&mut out, &[1, 3, 6, 1, 4, 1, 318]).unwrap();
        assert_eq!(out, [0x06, 0x07, 0x2b, 6, 1, 4, 1, 0x82, 0x3e]);
        assert!(put_oid(&mut Vec::new(), &[3, 1]).is_none());
        assert!(put_oid(&mut Vec::new(), &[1]).is_none());
    }

    #[test]
    fn long_lengths_are_definite() {
        let mut out = Vec::new();
        put(&mut out, tag::OCTET_STRING, &[7; 300]);
        assert_eq!(&out[..4], [0x04, 0x82, 0x01, 0x2c]);
        let mut r = Reader::new(&out);
        assert_eq!(r.octets("x").unwrap().len(), 300);
        assert!(r.is_empty());
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert!(Reader::new(&[0x04, 0x80]).any().is_err(), "indefinite");
        assert!(
            Reader::new(&[0x04, 0x05, 1, 2]).any().is_err(),
            "past the end"
        );
        assert!(Reader::new(&[0x04, 0x85, 1, 1, 1, 1, 1]).any().is_err());
        assert!(Reader::new(&[0x1f, 0x01, 0x00]).any().is_err(), "long tag");
    }

    proptest! {
        #[test]
        fn integers_round_trip(v in any::<i64>()) {
            let bytes = integer_bytes(v);
            prop_assert_eq!(Reader::new(&bytes).integer("v").unwrap(), v);
        }

        #[test]
        fn oids_round_trip(first in 0u64..3, second in 0u64..40, rest in proptest::collection::vec(any::<u32>(), 0..12)) {
            let mut arcs = vec![first, second];
            arcs.extend(rest.iter().map(|a| u64::from(*a)));
            let mut out = Vec::new();
            put_oid(&mut out, &arcs).unwrap();
            let content = Reader::new(&out).expect(tag::OID, "oid").unwrap();
            prop_assert_eq!(oid(content, "oid").unwrap(), arcs);
        }

        #[test]
        fn the_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            while let Ok((tag, content)) = r.any() {
                let _ = signed(content, "x");
                let _ = unsigned(content, 8, "x");
                let _ = oid(content, "x");
                let _ = tag;
            }
        }
    }
}
