//! RMCP+ session establishment payloads: Open Session Request/Response and RAKP 1–4
//! (IPMI 2.0 §13.17–13.23). Both directions, so the simulator and the fuzzer share them.

use crate::crypto::{CipherSuite, GUID_LEN, MAX_USER_LEN, RANDOM_LEN};
use crate::error::DecodeError;
use crate::wire::Reader;

/// RMCP+ status code: no errors.
pub const STATUS_OK: u8 = 0x00;
/// RMCP+ status code: insufficient resources to create a session.
pub const STATUS_NO_RESOURCES: u8 = 0x01;
/// RMCP+ status code: invalid session id.
pub const STATUS_INVALID_SESSION: u8 = 0x02;
/// RMCP+ status code: invalid authentication algorithm.
pub const STATUS_INVALID_AUTH_ALG: u8 = 0x04;
/// RMCP+ status code: invalid integrity algorithm.
pub const STATUS_INVALID_INTEGRITY_ALG: u8 = 0x05;
/// RMCP+ status code: unauthorized role or privilege level requested.
pub const STATUS_UNAUTHORIZED_ROLE: u8 = 0x0A;
/// RMCP+ status code: insufficient resources to create a session at the requested role.
pub const STATUS_NO_RESOURCES_FOR_ROLE: u8 = 0x0B;
/// RMCP+ status code: unauthorized name (unknown user).
pub const STATUS_UNAUTHORIZED_NAME: u8 = 0x0D;
/// RMCP+ status code: invalid integrity check value (wrong password or Kg).
pub const STATUS_INVALID_ICV: u8 = 0x0F;
/// RMCP+ status code: invalid confidentiality algorithm.
pub const STATUS_INVALID_CONF_ALG: u8 = 0x10;
/// RMCP+ status code: no cipher suite match with proposed security algorithms.
pub const STATUS_NO_CIPHER_MATCH: u8 = 0x11;

/// The RAKP 1 role bit asking the BMC to look the user up by name only (as ipmitool does),
/// rather than by name and privilege.
pub const ROLE_NAME_ONLY_LOOKUP: u8 = 0x10;

/// A short description of an RMCP+ status code, for error details.
pub fn status_text(code: u8) -> &'static str {
    match code {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session id",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session id",
        0x09 => "invalid role",
        0x0A => "unauthorized role or privilege level requested",
        0x0B => "insufficient resources to create a session at the requested role",
        0x0C => "invalid name length",
        0x0D => "unauthorized name",
        0x0E => "unauthorized GUID",
        0x0F => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown RMCP+ status code",
    }
}

/// The three algorithm proposals of an Open Session message, as raw algorithm numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Algorithms {
    /// Authentication (RAKP) algorithm.
    pub auth: u8,
    /// Integrity algorithm.
    pub integrity: u8,
    /// Confidentiality algorithm.
    pub confidentiality: u8,
}

impl Algorithms {
    /// The algorithms of a suite.
    pub fn of(suite: CipherSuite) -> Self {
        Algorithms {
            auth: suite.auth_algorithm(),
            integrity: suite.integrity_algorithm(),
            confidentiality: suite.confidentiality_algorithm(),
        }
    }

    /// The suite these algorithms form, if this crate implements it.
    pub fn suite(&self) -> Option<CipherSuite> {
        CipherSuite::from_algorithms(self.auth, self.integrity, self.confidentiality)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for (kind, alg) in [
            (0u8, self.auth),
            (1, self.integrity),
            (2, self.confidentiality),
        ] {
            out.extend_from_slice(&[kind, 0, 0, 8, alg & 0x3F, 0, 0, 0]);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut algs = [0u8; 3];
        for (kind, slot) in algs.iter_mut().enumerate() {
            let rec = r.array::<8>("algorithm payload")?;
            if usize::from(rec[0]) != kind {
                return Err(DecodeError::Malformed("algorithm payload type"));
            }
            // A zero length is the wildcard "any algorithm" (we never send it); treat it
            // like the null algorithm so it can never match a suite we use.
            *slot = if rec[3] == 0 { 0xFF } else { rec[4] & 0x3F };
        }
        Ok(Algorithms {
            auth: algs[0],
            integrity: algs[1],
            confidentiality: algs[2],
        })
    }
}

/// Open Session Request (console → BMC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenSessionRequest {
    /// Message tag, echoed in the response so retransmissions can be told apart.
    pub tag: u8,
    /// Requested maximum privilege level (0 = highest the proposal allows).
    pub max_privilege: u8,
    /// The console's session id for this session.
    pub console_sid: u32,
    /// Proposed algorithms.
    pub algorithms: Algorithms,
}

impl OpenSessionRequest {
    /// Append the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.tag, self.max_privilege & 0x0F, 0, 0]);
        out.extend_from_slice(&self.console_sid.to_le_bytes());
        self.algorithms.encode(out);
    }

    /// Decode the payload.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let tag = r.u8("message tag")?;
        let max_privilege = r.u8("requested privilege")? & 0x0F;
        r.skip(2, "reserved")?;
        let console_sid = r.u32("console session id")?;
        let algorithms = Algorithms::decode(&mut r)?;
        Ok(OpenSessionRequest {
            tag,
            max_privilege,
            console_sid,
            algorithms,
        })
    }
}

/// Open Session Response (BMC → console).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenSessionResponse {
    /// Message tag of the request.
    pub tag: u8,
    /// RMCP+ status code.
    pub status: u8,
    /// Maximum privilege level granted.
    pub max_privilege: u8,
    /// The console's session id, echoed.
    pub console_sid: u32,
    /// The BMC's session id (absent on error).
    pub bmc_sid: u32,
    /// Accepted algorithms (absent on error).
    pub algorithms: Option<Algorithms>,
}

impl OpenSessionResponse {
    /// Append the payload to `out`; an error response is the short 8-byte form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.tag, self.status, self.max_privilege & 0x0F, 0]);
        out.extend_from_slice(&self.console_sid.to_le_bytes());
        if let Some(algs) = &self.algorithms {
            out.extend_from_slice(&self.bmc_sid.to_le_bytes());
            algs.encode(out);
        }
    }

    /// Decode the payload (the short form is accepted when the status is an error).
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let tag = r.u8("message tag")?;
        let status = r.u8("status code")?;
        if status != STATUS_OK {
            // Some BMCs (OpenIPMI's ipmi_sim) send only tag and status on error.
            let max_privilege = r.u8("privilege").unwrap_or(0) & 0x0F;
            let _ = r.skip(1, "reserved");
            return Ok(OpenSessionResponse {
                tag,
                status,
                max_privilege,
                console_sid: r.u32("console session id").unwrap_or(0),
                bmc_sid: 0,
                algorithms: None,
            });
        }
        let max_privilege = r.u8("privilege")? & 0x0F;
        r.skip(1, "reserved")?;
        let console_sid = r.u32("console session id")?;
        let bmc_sid = r.u32("BMC session id")?;
        let algorithms = Some(Algorithms::decode(&mut r)?);
        Ok(OpenSessionResponse {
            tag,
            status,
            max_privilege,
            console_sid,
            bmc_sid,
            algorithms,
        })
    }
}

/// RAKP message 1 (console → BMC): the console's random number and the user to log in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rakp1<'a> {
    /// Message tag.
    pub tag: u8,
    /// The BMC's session id.
    pub bmc_sid: u32,
    /// The console's random number (`Rm`).
    pub console_random: [u8; RANDOM_LEN],
    /// Requested role: privilege level (bits 3:0) and [`ROLE_NAME_ONLY_LOOKUP`].
    pub role: u8,
    /// User name (at most 16 bytes).
    pub user: &'a [u8],
}

impl<'a> Rakp1<'a> {
    /// Append the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        if self.user.len() > MAX_USER_LEN {
            return Err(DecodeError::Malformed("user name longer than 16 bytes"));
        }
        out.extend_from_slice(&[self.tag, 0, 0, 0]);
        out.extend_from_slice(&self.bmc_sid.to_le_bytes());
        out.extend_from_slice(&self.console_random);
        out.extend_from_slice(&[self.role, 0, 0, self.user.len() as u8]);
        out.extend_from_slice(self.user);
        Ok(())
    }

    /// Decode the payload.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let tag = r.u8("message tag")?;
        r.skip(3, "reserved")?;
        let bmc_sid = r.u32("BMC session id")?;
        let console_random = *r.array::<RANDOM_LEN>("console random")?;
        let role = r.u8("role")?;
        r.skip(2, "reserved")?;
        let len = usize::from(r.u8("user name length")?);
        if len > MAX_USER_LEN {
            return Err(DecodeError::Malformed("user name longer than 16 bytes"));
        }
        let user = r.bytes(len, "user name")?;
        Ok(Rakp1 {
            tag,
            bmc_sid,
            console_random,
            role,
            user,
        })
    }
}

/// RAKP message 2 (BMC → console): the BMC's random number, GUID and key exchange code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rakp2<'a> {
    /// Message tag of RAKP 1.
    pub tag: u8,
    /// RMCP+ status code.
    pub status: u8,
    /// The console's session id.
    pub console_sid: u32,
    /// The BMC's random number (`Rc`).
    pub bmc_random: [u8; RANDOM_LEN],
    /// The BMC's GUID (`GUIDc`).
    pub bmc_guid: [u8; GUID_LEN],
    /// Key exchange authentication code (empty on error).
    pub auth_code: &'a [u8],
}

impl<'a> Rakp2<'a> {
    /// Append the payload to `out`; an error response is the short 8-byte form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.tag, self.status, 0, 0]);
        out.extend_from_slice(&self.console_sid.to_le_bytes());
        if self.status == STATUS_OK {
            out.extend_from_slice(&self.bmc_random);
            out.extend_from_slice(&self.bmc_guid);
            out.extend_from_slice(self.auth_code);
        }
    }

    /// Decode the payload.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let tag = r.u8("message tag")?;
        let status = r.u8("status code")?;
        if status != STATUS_OK {
            // The error form may stop after the status code.
            let _ = r.skip(2, "reserved");
            return Ok(Rakp2 {
                tag,
                status,
                console_sid: r.u32("console session id").unwrap_or(0),
                bmc_random: [0; RANDOM_LEN],
                bmc_guid: [0; GUID_LEN],
                auth_code: &[],
            });
        }
        r.skip(2, "reserved")?;
        let console_sid = r.u32("console session id")?;
        let bmc_random = *r.array::<RANDOM_LEN>("BMC random")?;
        let bmc_guid = *r.array::<GUID_LEN>("BMC GUID")?;
        Ok(Rakp2 {
            tag,
            status,
            console_sid,
            bmc_random,
            bmc_guid,
            auth_code: r.rest(),
        })
    }
}

/// RAKP message 3 (console → BMC): proves the console knows the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rakp3<'a> {
    /// Message tag.
    pub tag: u8,
    /// RMCP+ status code (non-zero aborts the handshake).
    pub status: u8,
    /// The BMC's session id.
    pub bmc_sid: u32,
    /// Key exchange authentication code (empty when aborting).
    pub auth_code: &'a [u8],
}

impl<'a> Rakp3<'a> {
    /// Append the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.tag, self.status, 0, 0]);
        out.extend_from_slice(&self.bmc_sid.to_le_bytes());
        out.extend_from_slice(self.auth_code);
    }

    /// Decode the payload.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let tag = r.u8("message tag")?;
        let status = r.u8("status code")?;
        r.skip(2, "reserved")?;
        let bmc_sid = r.u32("BMC session id")?;
        Ok(Rakp3 {
            tag,
            status,
            bmc_sid,
            auth_code: r.rest(),
        })
    }
}

/// RAKP message 4 (BMC → console): proves the BMC derived the same session key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rakp4<'a> {
    /// Message tag of RAKP 3.
    pub tag: u8,
    /// RMCP+ status code.
    pub status: u8,
    /// The console's session id.
    pub console_sid: u32,
    /// Integrity check value (empty on error).
    pub icv: &'a [u8],
}

impl<'a> Rakp4<'a> {
    /// Append the payload to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.tag, self.status, 0, 0]);
        out.extend_from_slice(&self.console_sid.to_le_bytes());
        out.extend_from_slice(self.icv);
    }

    /// Decode the payload.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let tag = r.u8("message tag")?;
        let status = r.u8("status code")?;
        if status != STATUS_OK {
            // The error form may stop after the status code.
            let _ = r.skip(2, "reserved");
            return Ok(Rakp4 {
                tag,
                status,
                console_sid: r.u32("console session id").unwrap_or(0),
                icv: &[],
            });
        }
        r.skip(2, "reserved")?;
        let console_sid = r.u32("console session id")?;
        Ok(Rakp4 {
            tag,
            status,
            console_sid,
            icv: r.rest(),
        })
    }
}
