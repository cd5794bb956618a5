//! The one error type of the codec: what was wrong with a packet, never a panic.

/// Why bytes could not be decoded (or a request could not be encoded). Decoders return this
/// for anything a peer can send, so a hostile or broken BMC can never crash the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the named field.
    #[error("truncated packet: {0} missing")]
    Truncated(&'static str),
    /// The named field has a value the protocol does not allow.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// Not an RMCP packet of the IPMI class.
    #[error("not an IPMI RMCP packet")]
    NotIpmi,
    /// An IPMI 1.5 session with authentication (MD2/MD5/password), which this crate never
    /// speaks: such sessions can be brute-forced from one captured packet.
    #[error("IPMI 1.5 authenticated session (auth type {0:#04x}) refused")]
    LegacySession(u8),
    /// An RMCP+ payload type this crate does not handle (e.g. SOL, OEM).
    #[error("unsupported RMCP+ payload type {0:#04x}")]
    PayloadType(u8),
    /// A message checksum did not add up.
    #[error("IPMI message checksum mismatch")]
    Checksum,
    /// The packet's integrity tag did not verify: it must be dropped, never trusted.
    #[error("integrity check failed")]
    Integrity,
    /// An authenticated packet arrived in a context without session keys, or the reverse.
    #[error("unexpected authentication state: {0}")]
    Unauthenticated(&'static str),
}
