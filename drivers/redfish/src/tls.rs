//! TLS trust for BMCs: certificate pinning, a private CA, or (loudly) nothing.
//!
//! BMCs ship self-signed certificates, so the usual web PKI cannot vouch for them and this
//! driver bundles no roots. An operator chooses one trust source per device:
//!
//! * a **pin** (SHA-256 of the leaf certificate's DER): name, chain and expiry are ignored on
//!   purpose, but the handshake signature is still verified, so the peer must hold the key;
//! * a **CA file** (PEM), verified the web-PKI way, name included;
//! * **insecure**, which accepts any certificate and is recorded as such.
//!
//! Without any of them every certificate is refused, and the refusal says which option to
//! set. Whatever the mode, the verifier records the fingerprint of the leaf actually
//! presented, which the driver reports as an identity fact.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Parse `sha256:<64 hex digits>`, with or without `:` between byte pairs, any case.
    pub fn parse_pin(raw: &str) -> Result<Self, String> {
        let hex = raw
            .strip_prefix("sha256:")
            .or_else(|| raw.strip_prefix("SHA256:"))
            .ok_or_else(|| "expected `sha256:` followed by the certificate's SHA-256".to_owned())?;
        let digits: String = hex.chars().filter(|c| *c != ':').collect();
        if digits.len() != 64 {
            return Err(format!(
                "a SHA-256 fingerprint has 64 hex digits, this one has {}",
                digits.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = digits
                .get(2 * i..2 * i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| "the fingerprint contains a non-hex digit".to_owned())?;
        }
        Ok(Fingerprint(out))
    }

    /// Lowercase hex without separators (the identity fact's value).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Compare without an early exit, so timing does not reveal how much of a pin matched.
    fn matches(&self, other: &Fingerprint) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

/// Where trust in the BMC's certificate comes from.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Nothing configured: every certificate is refused with advice.
    Unconfigured,
    /// The leaf certificate must have this fingerprint.
    Pin(Fingerprint),
    /// The chain must lead to one of these anchors and name the host.
    CaFile(Arc<RootCertStore>),
    /// Any certificate is accepted (the handshake signature is still checked).
    Insecure,
}

impl Trust {
    /// Load a PEM file of CA certificates.
    pub fn ca_file(path: &Path) -> Result<Trust, String> {
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        Ok(Trust::CaFile(Arc::new(roots)))
    }
}

/// What the verifier saw during the most recent handshake, for identity facts and errors.
#[derive(Debug, Default)]
pub struct Observed {
    inner: Mutex<ObservedInner>,
}

#[derive(Debug, Default)]
struct ObservedInner {
    leaf: Option<Fingerprint>,
    refusal: Option<String>,
}

impl Observed {
    fn lock(&self) -> MutexGuard<'_, ObservedInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fingerprint of the last leaf certificate presented (accepted or not).
    pub fn leaf(&self) -> Option<Fingerprint> {
        self.lock().leaf
    }

    /// Why the last refused certificate was refused, if the last handshake refused one.
    pub fn refusal(&self) -> Option<String> {
        self.lock().refusal.clone()
    }

    /// Forget the last refusal (before a new exchange, so a stale one is not reported).
    pub fn clear_refusal(&self) {
        self.lock().refusal = None;
    }

    fn record(&self, leaf: Fingerprint, refusal: Option<String>) {
        let mut inner = self.lock();
        inner.leaf = Some(leaf);
        inner.refusal = refusal;
    }
}

/// The one certificate verifier of this driver: applies the configured [`Trust`] and records
/// what it saw. Handshake signatures are always verified with the provider's algorithms.
#[derive(Debug)]
struct Verifier {
    trust: Trust,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    observed: Arc<Observed>,
}

impl Verifier {
    fn refuse(&self, leaf: Fingerprint, why: String) -> rustls::Error {
        self.observed.record(leaf, Some(why));
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let leaf = Fingerprint::of(end_entity.as_ref());
        match &self.trust {
            Trust::Pin(pin) if pin.matches(&leaf) => {
                self.observed.record(leaf, None);
                Ok(ServerCertVerified::assertion())
            }
            Trust::Pin(pin) => Err(self.refuse(
                leaf,
                format!(
                    "the certificate presented ({leaf}) does not match the configured pin \
                     ({pin}); no credentials were sent"
                ),
            )),
            Trust::Insecure => {
                self.observed.record(leaf, None);
                Ok(ServerCertVerified::assertion())
            }
            Trust::CaFile(_) => {
                let Some(webpki) = &self.webpki else {
                    return Err(self.refuse(leaf, "no CA verifier was built".to_owned()));
                };
                match webpki.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Ok(v) => {
                        self.observed.record(leaf, None);
                        Ok(v)
                    }
                    Err(e) => {
                        let why = format!(
                            "the certificate presented ({leaf}) does not verify against \
                             `ca_file`: {e}; no credentials were sent"
                        );
                        self.observed.record(leaf, Some(why));
                        Err(e)
                    }
                }
            }
            Trust::Unconfigured => Err(self.refuse(
                leaf,
                format!(
                    "the certificate presented ({leaf}) is not trusted: no roots are bundled, \
                     set option `pin=sha256:<fingerprint>` (after checking it out of band), \
                     `ca_file=<PEM file>`, or `insecure=true`; no credentials were sent"
                ),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`) that
/// applies `trust` and reports what it sees into `observed`.
pub fn client_config(trust: &Trust, observed: Arc<Observed>) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = match trust {
        Trust::CaFile(roots) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::clone(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| format!("cannot use the CA file: {e}"))?,
        ),
        _ => None,
    };
    let verifier = Verifier {
        trust: trust.clone(),
        webpki,
        algorithms: provider.signature_verification_algorithms,
        observed,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_forms() {
        let plain = format!("sha256:{}", "ab".repeat(32));
        let colons = format!(
            "SHA256:{}",
            std::iter::repeat_n("AB", 32).collect::<Vec<_>>().join(":")
        );
        let a = Fingerprint::parse_pin(&plain).unwrap();
        let b = Fingerprint::parse_pin(&colons).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.hex(), "ab".repeat(32));
        assert!(a.matches(&b));
        for bad in [
            "ab".repeat(32),
            format!("sha1:{}", "ab".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha256:{}zz", "ab".repeat(31)),
        ] {
            assert!(
                Fingerprint::parse_pin(&bad).is_err(),
                "{bad} must be refused"
            );
        }
    }

    fn verifier(trust: Trust) -> (Verifier, Arc<Observed>) {
        let observed = Arc::new(Observed::default());
        let v = Verifier {
            trust,
            webpki: None,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
            observed: Arc::clone(&observed),
        };
        (v, observed)
    }

    fn check(v: &Verifier, der: &[u8]) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        v.verify_server_cert(&CertificateDer::from(der), &[], &name, &[], UnixTime::now())
    }

    #[test]
    fn pin_verifier_accepts_only_the_pinned_leaf_and_records_it() {
        let der = b"not really a certificate, but pinning looks only at the bytes";
        let fp = Fingerprint::of(der);
        let (v, seen) = verifier(Trust::Pin(fp));
        assert!(check(&v, der).is_ok());
        assert_eq!(seen.leaf(), Some(fp));
        assert_eq!(seen.refusal(), None);

        let other = b"another certificate";
        assert!(check(&v, other).is_err());
        assert_eq!(seen.leaf(), Some(Fingerprint::of(other)));
        let why = seen.refusal().unwrap();
        assert!(why.contains("does not match the configured pin"), "{why}");
        assert!(why.contains(&Fingerprint::of(other).hex()), "{why}");
    }

    #[test]
    fn unconfigured_trust_refuses_with_advice_and_insecure_accepts() {
        let (v, seen) = verifier(Trust::Unconfigured);
        assert!(check(&v, b"cert").is_err());
        let why = seen.refusal().unwrap();
        for option in ["pin=sha256:", "ca_file=", "insecure=true"] {
            assert!(why.contains(option), "{why}");
        }
        let (v, seen) = verifier(Trust::Insecure);
        assert!(check(&v, b"cert").is_ok());
        assert_eq!(seen.leaf(), Some(Fingerprint::of(b"cert")));
    }

    #[test]
    fn mismatch_is_detected_in_any_byte() {
        let a = Fingerprint([7; 32]);
        for i in 0..32 {
            let mut b = a;
            b.0[i] ^= 1;
            assert!(!a.matches(&b));
        }
    }
}
