//! One HTTPS exchange with a Redfish service: headers, credentials, timeouts, the deadline,
//! a bounded body, and the mapping of transport and HTTP failures onto the contract's errors.
//!
//! Links a BMC hands out (`@odata.id`, action targets, `Location`) are only ever followed on
//! the configured origin: credentials must not leave for another host because a BMC (or
//! someone in the middle before the pin check) said so.

use crate::model;
use crate::tls::Observed;
use bytes::Bytes;
use fencegate_driver::{DriverError, ExposeSecret, SecretString};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use zeroize::Zeroizing;

/// The largest response body read; Redfish resources are a few kilobytes.
const MAX_BODY: usize = 1 << 20;

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// No credentials (the service root is anonymous by specification).
    Anonymous,
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        user: &'a str,
        /// The password.
        password: &'a SecretString,
    },
    /// A Redfish session token (`X-Auth-Token`).
    Token(&'a SecretString),
}

/// An HTTP answer: status, headers and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, parsed as JSON when it is JSON.
    pub body: Value,
}

impl Reply {
    /// The Redfish error message of the body, or a placeholder.
    pub fn message(&self) -> String {
        model::error_message(&self.body).unwrap_or_else(|| "no Redfish error message".to_owned())
    }

    /// A header as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The HTTPS client of one driver instance, bound to one origin.
pub struct Http {
    client: reqwest::Client,
    origin: Url,
    endpoint: String,
    observed: Arc<Observed>,
    request_timeout: Duration,
    /// ` (through proxy http://host:port)` when a proxy is used, for connect errors.
    via: String,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("origin", &self.origin.as_str())
            .field("request_timeout", &self.request_timeout)
            .field("via", &self.via)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// A client for `origin` (`https://host:port/`) with the given TLS configuration,
    /// through `proxy` (a CONNECT tunnel) when one is given, else directly.
    ///
    /// The environment's proxy settings (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
    /// `NO_PROXY`, any case) are never read: reqwest honours them by default, and a stray
    /// one on the fencing host would route every BMC connection through a third party,
    /// breaking fencing at best and, with `insecure`, handing it the credentials.
    pub fn new(
        origin: Url,
        endpoint: String,
        tls: rustls::ClientConfig,
        observed: Arc<Observed>,
        connect_timeout: Duration,
        request_timeout: Duration,
        proxy: Option<&Url>,
    ) -> Result<Http, String> {
        let mut builder = reqwest::Client::builder().no_proxy();
        let via = proxy
            .map(|p| format!(" (through proxy {})", p.as_str().trim_end_matches('/')))
            .unwrap_or_default();
        if let Some(proxy) = proxy {
            // No exclusion list: a `Proxy` built here reads no `NO_PROXY` either.
            let proxy = reqwest::Proxy::all(proxy.as_str())
                .map_err(|e| format!("cannot use the proxy: {e}"))?;
            builder = builder.proxy(proxy);
        }
        let client = builder
            .tls_backend_preconfigured(tls)
            .http1_only()
            // Never follow a redirect: reqwest would carry X-Auth-Token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build()
            .map_err(|e| format!("cannot build the HTTPS client: {e}"))?;
        Ok(Http {
            client,
            origin,
            endpoint,
            observed,
            request_timeout,
            via,
        })
    }

    /// The endpoint name used in every message (`redfish://host:port`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Resolve a link against the origin, refusing links to any other origin.
    pub fn url(&self, link: &str) -> Result<Url, DriverError> {
        let url = self.origin.join(link).map_err(|e| {
            DriverError::protocol(format!(
                "{}: unusable link {:?}: {e}",
                self.endpoint,
                model::clip(link)
            ))
        })?;
        if url.origin() != self.origin.origin() {
            return Err(DriverError::protocol(format!(
                "{}: the service points to another origin ({}); credentials are only sent to \
                 the configured endpoint",
                self.endpoint,
                model::clip(&url.origin().ascii_serialization())
            )));
        }
        Ok(url)
    }

    /// The path (and query) of a same-origin link, the form kept between calls.
    pub fn path(&self, link: &str) -> Result<String, DriverError> {
        let url = self.url(link)?;
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        })
    }

    /// Send one request and read the whole answer, by the deadline.
    pub async fn send(
        &self,
        method: Method,
        link: &str,
        cred: Credential<'_>,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<Reply, DriverError> {
        self.send_with_headers(method, link, cred, body, &[], deadline)
            .await
    }

    /// [`Http::send`] with extra request headers (`If-Match` for a guarded PATCH).
    pub async fn send_with_headers(
        &self,
        method: Method,
        link: &str,
        cred: Credential<'_>,
        body: Option<&Value>,
        headers: &[(&'static str, &str)],
        deadline: Instant,
    ) -> Result<Reply, DriverError> {
        let body = match body {
            None => None,
            Some(body) => Some(Bytes::from(serde_json::to_vec(body).map_err(|e| {
                DriverError::protocol(format!(
                    "{}: {method} {link}: cannot encode: {e}",
                    self.endpoint
                ))
            })?)),
        };
        self.exchange(method, link, cred, body, headers, deadline)
            .await
    }

    /// Send a JSON body that holds a secret (the session login), already encoded in a buffer
    /// that is wiped when dropped. reqwest and hyper get the very same memory, without a
    /// copy: the body is a [`Bytes`] that owns the buffer, so it is wiped when the last
    /// reference is dropped, after the write. Over TLS hyper queues the body instead of
    /// flattening it into its own write buffer (rustls streams write vectored), and rustls
    /// encrypts it in place in its record buffer.
    pub async fn send_secret_json(
        &self,
        method: Method,
        link: &str,
        body: Zeroizing<Vec<u8>>,
        deadline: Instant,
    ) -> Result<Reply, DriverError> {
        let body = Bytes::from_owner(body);
        self.exchange(
            method,
            link,
            Credential::Anonymous,
            Some(body),
            &[],
            deadline,
        )
        .await
    }

    /// One exchange: headers, credentials and an encoded JSON body, then the whole answer.
    async fn exchange(
        &self,
        method: Method,
        link: &str,
        cred: Credential<'_>,
        body: Option<Bytes>,
        headers: &[(&'static str, &str)],
        deadline: Instant,
    ) -> Result<Reply, DriverError> {
        let url = self.url(link)?;
        let what = format!("{method} {}", url.path());
        let mut req = self
            .client
            .request(method, url)
            .header("OData-Version", "4.0")
            .header(ACCEPT, "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        match cred {
            Credential::Anonymous => {}
            Credential::Basic { user, password } => {
                let value = basic_authorization(user, password).ok_or_else(|| {
                    DriverError::protocol(format!(
                        "{}: the basic authentication header could not be built",
                        self.endpoint
                    ))
                })?;
                req = req.header(AUTHORIZATION, value);
            }
            Credential::Token(token) => {
                req = req.header(
                    "X-Auth-Token",
                    token_header(token).ok_or_else(|| {
                        DriverError::protocol(format!(
                            "{}: the session token is not a valid header value",
                            self.endpoint
                        ))
                    })?,
                );
            }
        }
        if let Some(body) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }
        let exchange = async {
            let mut resp = req.send().await.map_err(|e| self.transport(&what, e))?;
            let status = resp.status();
            let headers = received_headers(resp.headers());
            let mut raw = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&what, e))? {
                if raw.len() + chunk.len() > MAX_BODY {
                    return Err(DriverError::protocol(format!(
                        "{}: {what}: answer larger than {MAX_BODY} bytes",
                        self.endpoint
                    )));
                }
                raw.extend_from_slice(&chunk);
            }
            let body = if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&raw).unwrap_or(Value::Null)
            };
            Ok(Reply {
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(DriverError::timeout(format!(
                "{}: {what}: no complete answer before the deadline",
                self.endpoint
            ))),
        }
    }

    /// Map a transport failure. A certificate refusal recorded by the verifier wins over the
    /// generic connect error, because it says exactly what to fix.
    fn transport(&self, what: &str, e: reqwest::Error) -> DriverError {
        if let Some(refusal) = self.observed.refusal()
            && (e.is_connect() || e.is_request())
        {
            return DriverError::auth(format!("{}: TLS: {refusal}", self.endpoint));
        }
        let (timeout, connect) = (e.is_timeout(), e.is_connect());
        let chain = error_chain(&e.without_url());
        if timeout {
            DriverError::timeout(format!(
                "{}: {what}: no answer within {} ms ({chain})",
                self.endpoint,
                self.request_timeout.as_millis()
            ))
        } else if connect {
            DriverError::unreachable(format!(
                "{}: cannot connect{}: {chain}",
                self.endpoint, self.via
            ))
        } else {
            DriverError::unreachable(format!("{}: {what}: {chain}", self.endpoint))
        }
    }

    /// Forget a certificate refusal seen earlier, before a new exchange.
    pub fn clear_refusal(&self) {
        self.observed.clear_refusal();
    }

    /// The error for an unexpected HTTP status: Busy for out-of-resources answers, Auth for
    /// refused credentials, Unsupported for missing features, Protocol otherwise.
    pub fn status_error(&self, what: &str, reply: &Reply) -> DriverError {
        let msg = reply.message();
        let code = reply.status.as_u16();
        let detail = format!("{}: {what}: HTTP {code}: {msg}", self.endpoint);
        match code {
            503 | 429 => DriverError::busy(detail),
            400 | 401 | 403 if model::is_session_limit(&msg) => DriverError::busy(detail),
            401 => DriverError::auth(format!(
                "{}: {what}: credentials refused (HTTP 401): {msg}",
                self.endpoint
            )),
            403 => DriverError::auth(format!(
                "{}: {what}: the user lacks the privilege (HTTP 403): {msg}",
                self.endpoint
            )),
            404 | 405 | 501 => DriverError::unsupported(detail),
            _ => DriverError::protocol(detail),
        }
    }
}

/// `Basic base64(user:password)`, encoded straight from the secret into a buffer of exactly
/// its final size (no reallocation leaves a copy behind) that the header value owns and that
/// is wiped when the header is dropped; the value is marked sensitive, so `Debug` hides it.
/// reqwest's own `basic_auth` would format `user:password` into a plain `String` first.
/// `None` only if the bytes were refused as a header value, which base64 text never is.
fn basic_authorization(user: &str, password: &SecretString) -> Option<HeaderValue> {
    let password = password.expose_secret().as_bytes();
    let plain_len = user.len() + 1 + password.len();
    let mut out = Zeroizing::new(Vec::with_capacity(6 + plain_len.div_ceil(3) * 4));
    out.extend_from_slice(b"Basic ");
    let mut plain = user
        .as_bytes()
        .iter()
        .chain(std::iter::once(&b':'))
        .chain(password.iter())
        .copied();
    base64_into(&mut plain, &mut out);
    let mut value = HeaderValue::from_maybe_shared(Bytes::from_owner(out)).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The `X-Auth-Token` header value, in a buffer wiped when the header is dropped, marked
/// sensitive; `None` if the token holds bytes a header cannot carry.
fn token_header(token: &SecretString) -> Option<HeaderValue> {
    let bytes = Zeroizing::new(token.expose_secret().as_bytes().to_vec());
    let mut value = HeaderValue::from_maybe_shared(Bytes::from_owner(bytes)).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Standard base64 (RFC 4648, with padding) of `input`, appended to `out`, one 3-byte group
/// at a time, so that the plain text is never gathered anywhere.
fn base64_into(input: &mut impl Iterator<Item = u8>, out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    loop {
        let mut group = Zeroizing::new([0u8; 3]);
        let mut n = 0;
        while n < 3 {
            match input.next() {
                Some(b) => {
                    group[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 {
            return;
        }
        let bits = Zeroizing::new(
            (u32::from(group[0]) << 16) | (u32::from(group[1]) << 8) | u32::from(group[2]),
        );
        for i in 0..4 {
            if i <= n {
                out.push(ALPHABET[((*bits >> (18 - 6 * i)) & 0x3f) as usize]);
            } else {
                out.push(b'=');
            }
        }
        if n < 3 {
            return;
        }
    }
}

/// The answer's headers as kept in a [`Reply`], with `X-Auth-Token` (a login's answer
/// carries the session token) marked sensitive, so that no `Debug` output prints it.
fn received_headers(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    if let Some(token) = headers.get_mut("X-Auth-Token") {
        token.set_sensitive(true);
    }
    headers
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    let mut depth = 0;
    while let Some(s) = source {
        if depth == 8 {
            break;
        }
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
        depth += 1;
    }
    model::clip(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{self, Trust};

    fn http() -> Http {
        let observed = Arc::new(Observed::default());
        let config = tls::client_config(&Trust::Insecure, Arc::clone(&observed)).unwrap();
        Http::new(
            Url::parse("https://127.0.0.1:8443/").unwrap(),
            "redfish://127.0.0.1:8443".into(),
            config,
            observed,
            Duration::from_secs(1),
            Duration::from_secs(1),
            None,
        )
        .unwrap()
    }

    #[test]
    fn links_stay_on_the_configured_origin() {
        let h = http();
        assert_eq!(
            h.path("/redfish/v1/Systems/1").unwrap(),
            "/redfish/v1/Systems/1"
        );
        assert_eq!(
            h.path("https://127.0.0.1:8443/redfish/v1/Systems/1?x=1")
                .unwrap(),
            "/redfish/v1/Systems/1?x=1"
        );
        for elsewhere in [
            "https://10.0.0.9:8443/redfish/v1/Systems/1",
            "https://127.0.0.1:9443/redfish/v1/Systems/1",
            "http://127.0.0.1:8443/redfish/v1/Systems/1",
            "//evil.example/redfish/v1",
        ] {
            let e = h.path(elsewhere).unwrap_err();
            assert_eq!(e.kind, fencegate_driver::ErrorKind::Protocol, "{elsewhere}");
            assert!(e.detail.contains("another origin"), "{e}");
        }
    }

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            base64_into(&mut plain.bytes(), &mut out);
            assert_eq!(out, encoded.as_bytes(), "{plain:?}");
        }
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        base64_into(&mut all.iter().copied(), &mut out);
        assert!(out.starts_with(b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"));
        assert!(out.ends_with(b"+/w=="));
        assert_eq!(out.len(), 344);
    }

    #[test]
    fn credentials_in_headers_are_sensitive_and_exact() {
        // RFC 7617's example.
        let v = basic_authorization("Aladdin", &SecretString::from("open sesame")).unwrap();
        assert_eq!(v.as_bytes(), b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("QWxhZGRpbjpvcGVuIHNlc2FtZQ"));
        // The buffer was sized exactly: no reallocation left a copy behind.
        for password in ["", "p", "pw", "pw3", "pässwörd\"\u{1}"] {
            let v = basic_authorization("admin", &SecretString::from(password)).unwrap();
            let plain = format!("admin:{password}");
            assert_eq!(v.len(), 6 + plain.len().div_ceil(3) * 4, "{password:?}");
        }

        let token = SecretString::from("tok-3f9a");
        let v = token_header(&token).unwrap();
        assert_eq!(v.as_bytes(), b"tok-3f9a");
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("tok-3f9a"));
        assert!(token_header(&SecretString::from("bad\ntoken")).is_none());
    }

    #[test]
    fn a_reply_never_prints_the_session_token() {
        let mut received = HeaderMap::new();
        received.insert("X-Auth-Token", HeaderValue::from_static("tok-sekrit-77"));
        received.insert("Location", HeaderValue::from_static("/redfish/v1/S/1"));
        let reply = Reply {
            status: StatusCode::CREATED,
            headers: received_headers(&received),
            body: Value::Null,
        };
        assert_eq!(reply.header("X-Auth-Token"), Some("tok-sekrit-77"));
        let shown = format!("{reply:?}");
        assert!(!shown.contains("tok-sekrit-77"), "{shown}");
        assert!(shown.contains("/redfish/v1/S/1"), "{shown}");
    }

    #[test]
    fn status_errors_by_class() {
        let h = http();
        let reply = |status: u16, body: Value| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body,
        };
        let limit = serde_json::json!({"error": {"message": "RAC0218: The maximum number of user sessions is reached."}});
        use fencegate_driver::ErrorKind::*;
        for (status, body, kind) in [
            (503, Value::Null, Busy),
            (429, Value::Null, Busy),
            (400, limit.clone(), Busy),
            (401, limit, Busy),
            (401, Value::Null, Auth),
            (403, Value::Null, Auth),
            (404, Value::Null, Unsupported),
            (501, Value::Null, Unsupported),
            (500, Value::Null, Protocol),
            (400, Value::Null, Protocol),
        ] {
            let e = h.status_error("GET /x", &reply(status, body));
            assert_eq!(e.kind, kind, "{status}: {e}");
            assert!(e.detail.starts_with("redfish://127.0.0.1:8443: "), "{e}");
        }
    }
}
