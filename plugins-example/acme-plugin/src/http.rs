//! A deliberately tiny blocking HTTP/1.1 client over `std::net::TcpStream`: one request per
//! connection (`Connection: close`), every step bounded by the caller's deadline.

use fencegate_plugin_sdk::DriverError;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The largest response read, in bytes: the ACME API answers with a few dozen.
const MAX_RESPONSE: usize = 64 * 1024;

/// A response: status code, headers (names lowercased) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The headers, names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (cut to `Content-Length` when given).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of that (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The time left before `deadline`, or a timeout error naming what was being done.
fn left(deadline: Instant, doing: &str, endpoint: &str) -> Result<Duration, DriverError> {
    let now = Instant::now();
    if now >= deadline {
        return Err(DriverError::timeout(format!(
            "{endpoint}: deadline passed while {doing}"
        )));
    }
    Ok(deadline - now)
}

fn io_error(e: std::io::Error, doing: &str, endpoint: &str) -> DriverError {
    match e.kind() {
        IoKind::WouldBlock | IoKind::TimedOut => {
            DriverError::timeout(format!("{endpoint}: timed out {doing}"))
        }
        _ => DriverError::unreachable(format!("{endpoint}: {doing}: {e}")),
    }
}

/// Send one request and read the whole response, all by `deadline`. The bearer token goes
/// in the `Authorization` header only, and no error message ever repeats the request.
pub fn request(
    endpoint: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&[u8]>,
    deadline: Instant,
) -> Result<HttpResponse, DriverError> {
    let addr = endpoint
        .to_socket_addrs()
        .map_err(|e| DriverError::unreachable(format!("{endpoint}: cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| DriverError::unreachable(format!("{endpoint}: no address")))?;
    let mut stream = TcpStream::connect_timeout(&addr, left(deadline, "connecting", endpoint)?)
        .map_err(|e| io_error(e, "connecting", endpoint))?;
    let body = body.unwrap_or_default();
    // The request holds the token: build it in one buffer sized up front (so growing it
    // leaves no copies behind) that is wiped when dropped, on every path.
    let mut out = Zeroizing::new(Vec::with_capacity(
        256 + endpoint.len() + path.len() + token.len() + body.len(),
    ));
    let written = write!(
        out,
        "{method} {path} HTTP/1.1\r\nHost: {endpoint}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if body.is_empty() {
            ""
        } else {
            "Content-Type: application/json\r\n"
        }
    );
    let send_within = left(deadline, "sending", endpoint)?;
    written
        .and_then(|()| out.write_all(body))
        .and_then(|()| stream.set_write_timeout(Some(send_within)))
        .and_then(|()| stream.write_all(&out))
        .map_err(|e| io_error(e, "sending the request", endpoint))?;

    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        stream
            .set_read_timeout(Some(left(deadline, "reading the response", endpoint)?))
            .map_err(|e| io_error(e, "reading the response", endpoint))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&chunk[..n]);
                if raw.len() > MAX_RESPONSE {
                    return Err(DriverError::protocol(format!(
                        "{endpoint}: response longer than {MAX_RESPONSE} bytes"
                    )));
                }
            }
            Err(e) if e.kind() == IoKind::Interrupted => {}
            Err(e) => return Err(io_error(e, "reading the response", endpoint)),
        }
    }
    parse(&raw).ok_or_else(|| {
        DriverError::protocol(format!(
            "{endpoint}: malformed HTTP response ({} bytes)",
            raw.len()
        ))
    })
}

/// Parse a complete HTTP/1.x response (no chunked encoding: the ACME API never uses it).
pub fn parse(raw: &[u8]) -> Option<HttpResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        if body.len() < len {
            return None;
        }
        body.truncate(len);
    }
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_headers_and_length() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Acme-Serial: S1\r\n\r\n{}junk")
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-acme-serial"), Some("S1"));
        assert_eq!(r.body, b"{}");
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_none());
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_none());
    }
}
