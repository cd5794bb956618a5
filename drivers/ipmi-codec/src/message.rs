//! IPMI LAN messages: the addressed, checksummed request/response frame inside a session
//! payload (IPMI 2.0 §13.8).

use crate::error::DecodeError;
use crate::wire::Reader;

/// The BMC's responder slave address.
pub const BMC_SLAVE_ADDR: u8 = 0x20;
/// The remote console's software id (what ipmitool and FreeIPMI use).
pub const REMOTE_CONSOLE_SWID: u8 = 0x81;

/// The addressing part of a request; a response echoes it with the roles swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// Responder address (the BMC, 0x20).
    pub rs_addr: u8,
    /// Network function of the request (even).
    pub netfn: u8,
    /// Responder LUN.
    pub rs_lun: u8,
    /// Requester address (the console's software id).
    pub rq_addr: u8,
    /// Requester sequence number (6 bits): lets the console match replies to requests.
    pub rq_seq: u8,
    /// Requester LUN.
    pub rq_lun: u8,
    /// Command number.
    pub cmd: u8,
}

impl RequestHeader {
    /// A header for a request from the remote console to the BMC, LUN 0.
    pub fn to_bmc(netfn: u8, cmd: u8, rq_seq: u8) -> Self {
        RequestHeader {
            rs_addr: BMC_SLAVE_ADDR,
            netfn,
            rs_lun: 0,
            rq_addr: REMOTE_CONSOLE_SWID,
            rq_seq: rq_seq & 0x3F,
            rq_lun: 0,
            cmd,
        }
    }
}

/// A decoded response message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// Network function of the response (request netfn + 1).
    pub netfn: u8,
    /// Command number, echoed.
    pub cmd: u8,
    /// Requester sequence number, echoed.
    pub rq_seq: u8,
    /// Completion code (0x00 = success).
    pub completion: u8,
    /// Response data after the completion code.
    pub data: &'a [u8],
}

impl Response<'_> {
    /// Whether this response answers the request with `header`.
    pub fn answers(&self, header: &RequestHeader) -> bool {
        self.netfn == header.netfn | 1 && self.cmd == header.cmd && self.rq_seq == header.rq_seq
    }
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

fn check(bytes: &[u8]) -> Result<(), DecodeError> {
    // A correct checksum makes the sum of the covered bytes plus checksum zero.
    if bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b)) == 0 {
        Ok(())
    } else {
        Err(DecodeError::Checksum)
    }
}

/// Append a request message to `out`.
pub fn encode_request(out: &mut Vec<u8>, h: &RequestHeader, data: &[u8]) {
    let start = out.len();
    out.push(h.rs_addr);
    out.push(h.netfn << 2 | (h.rs_lun & 3));
    out.push(checksum(&out[start..start + 2]));
    let body = out.len();
    out.push(h.rq_addr);
    out.push(h.rq_seq << 2 | (h.rq_lun & 3));
    out.push(h.cmd);
    out.extend_from_slice(data);
    out.push(checksum(&out[body..]));
}

/// Decode a request message (BMC side). Returns the header and the request data.
pub fn decode_request(buf: &[u8]) -> Result<(RequestHeader, &[u8]), DecodeError> {
    let mut r = Reader::new(buf);
    let head = r.array::<3>("message header")?;
    check(head)?;
    let body = r.rest();
    if body.len() < 4 {
        return Err(DecodeError::Truncated("message body"));
    }
    check(body)?;
    let mut b = Reader::new(body);
    let [rq_addr, seq_lun, cmd] = *b.array::<3>("requester fields")?;
    let data = b.rest();
    let data = data.get(..data.len().saturating_sub(1)).unwrap_or_default();
    Ok((
        RequestHeader {
            rs_addr: head[0],
            netfn: head[1] >> 2,
            rs_lun: head[1] & 3,
            rq_addr,
            rq_seq: seq_lun >> 2,
            rq_lun: seq_lun & 3,
            cmd,
        },
        data,
    ))
}

/// Append the response to request `h` to `out` (BMC side).
pub fn encode_response(out: &mut Vec<u8>, h: &RequestHeader, completion: u8, data: &[u8]) {
    let start = out.len();
    out.push(h.rq_addr);
    out.push((h.netfn | 1) << 2 | (h.rq_lun & 3));
    out.push(checksum(&out[start..start + 2]));
    let body = out.len();
    out.push(h.rs_addr);
    out.push(h.rq_seq << 2 | (h.rs_lun & 3));
    out.push(h.cmd);
    out.push(completion);
    out.extend_from_slice(data);
    out.push(checksum(&out[body..]));
}

/// Decode a response message (console side).
pub fn decode_response(buf: &[u8]) -> Result<Response<'_>, DecodeError> {
    let mut r = Reader::new(buf);
    let head = r.array::<3>("message header")?;
    check(head)?;
    let body = r.rest();
    if body.len() < 5 {
        return Err(DecodeError::Truncated("response body"));
    }
    check(body)?;
    let mut b = Reader::new(body);
    let [_rs_addr, seq_lun, cmd, completion] = *b.array::<4>("responder fields")?;
    let data = b.rest();
    let data = data.get(..data.len().saturating_sub(1)).unwrap_or_default();
    Ok(Response {
        netfn: head[1] >> 2,
        cmd,
        rq_seq: seq_lun >> 2,
        completion,
        data,
    })
}

/// A short description of a completion code, for error details.
pub fn completion_text(code: u8) -> &'static str {
    match code {
        0x00 => "success",
        0xC0 => "node busy",
        0xC1 => "invalid command",
        0xC2 => "command invalid for given LUN",
        0xC3 => "timeout while processing command",
        0xC4 => "out of space",
        0xC5 => "reservation cancelled or invalid",
        0xC6 => "request data truncated",
        0xC7 => "request data length invalid",
        0xC8 => "request data field length limit exceeded",
        0xC9 => "parameter out of range",
        0xCA => "cannot return number of requested data bytes",
        0xCB => "requested sensor, data, or record not present",
        0xCC => "invalid data field in request",
        0xCD => "command illegal for specified sensor or record type",
        0xCE => "command response could not be provided",
        0xCF => "cannot execute duplicated request",
        0xD0 => "SDR repository in update mode",
        0xD1 => "device in firmware update mode",
        0xD2 => "BMC initialization in progress",
        0xD3 => "destination unavailable",
        0xD4 => "insufficient privilege level",
        0xD5 => "command not supported in present state",
        0xD6 => "command sub-function disabled or unavailable",
        0xFF => "unspecified error",
        _ => "device-specific or unknown completion code",
    }
}
