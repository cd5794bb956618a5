//! The simulator's server certificate: generated at start (ECDSA P-256, SANs `127.0.0.1`,
//! `::1` and `localhost`), so no key material is ever committed and tests pin what they got.

use base64::Engine;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::io;
use std::sync::Arc;

/// A generated certificate and the TLS server configuration that presents it.
pub(crate) struct ServerIdentity {
    pub(crate) der: Vec<u8>,
    pub(crate) config: Arc<ServerConfig>,
}

fn other(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

impl ServerIdentity {
    /// Generate a fresh self-signed certificate and a TLS 1.2/1.3 configuration (ring, ALPN
    /// `http/1.1`).
    pub(crate) fn generate() -> io::Result<ServerIdentity> {
        let names = vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "localhost".to_owned(),
        ];
        let key = rcgen::generate_simple_self_signed(names)
            .map_err(|e| other("cannot generate the certificate", e))?;
        let der = key.cert.der().to_vec();
        let pkcs8 = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| other("TLS versions", e))?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(der.clone())], pkcs8)
            .map_err(|e| other("TLS certificate", e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerIdentity {
            der,
            config: Arc::new(config),
        })
    }

    /// `sha256:<hex>` of the certificate's DER: the value a client pins.
    pub(crate) fn fingerprint(&self) -> String {
        let digest = Sha256::digest(&self.der);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// The certificate as PEM (for clients that take a CA file).
    pub(crate) fn pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }
}
