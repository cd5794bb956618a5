//! A simulator of the ACME PowerCtl API (std only, 127.0.0.1, a free port), for tests and
//! demos. Power-off and power-on pass through a transitional state for a configurable time,
//! so a poller sees `powering-off` before `off`, as with real hardware.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The serial number the simulator reports in `X-Acme-Serial`.
pub const SERIAL: &str = "ACME-SIM-0001";

/// The simulated power and what was asked of it.
#[derive(Debug)]
struct Power {
    on: bool,
    /// While set, the power is moving towards `on` until then.
    settles_at: Option<Instant>,
    commands: Vec<String>,
}

impl Power {
    /// The state as the API reports it.
    fn state(&mut self) -> &'static str {
        if let Some(at) = self.settles_at {
            if Instant::now() < at {
                return if self.on {
                    "powering-on"
                } else {
                    "powering-off"
                };
            }
            self.settles_at = None;
        }
        if self.on { "on" } else { "off" }
    }
}

/// A running simulator; stopped when dropped.
pub struct Simulator {
    addr: SocketAddr,
    power: Arc<Mutex<Power>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Serve on 127.0.0.1 (a free port), power on, accepting bearer `token`; transitions
    /// take `settle`.
    pub fn start(token: &str, settle: Duration) -> std::io::Result<Simulator> {
        Self::start_on("127.0.0.1:0", token, settle)
    }

    /// As [`Simulator::start`], on a given address.
    pub fn start_on(bind: &str, token: &str, settle: Duration) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let power = Arc::new(Mutex::new(Power {
            on: true,
            settles_at: None,
            commands: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, token) = (power.clone(), stop.clone(), token.to_owned());
        let thread = std::thread::Builder::new()
            .name("acme-powerctl-sim".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        // One connection at a time, like a small BMC; errors only end it.
                        let _ = serve(stream, &p, &token, settle);
                    }
                }
            })?;
        Ok(Simulator {
            addr,
            power,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on, e.g. `127.0.0.1:41234` (the plugin's `target`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn power(&self) -> MutexGuard<'_, Power> {
        self.power.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state as the API would report it now.
    pub fn state(&self) -> &'static str {
        self.power().state()
    }

    /// The power commands accepted so far (`off`, `on`, `cycle`), in order.
    pub fn commands(&self) -> Vec<String> {
        self.power().commands.clone()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    mut stream: TcpStream,
    power: &Mutex<Power>,
    token: &str,
    settle: Duration,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 2048];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&chunk[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
        if raw.len() > 16 * 1024 {
            return respond(&mut stream, 400, "{}");
        }
    };
    while raw.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let body = String::from_utf8_lossy(&raw[head_end..]).into_owned();
    let request_line = head.lines().next().unwrap_or_default();
    let authorized = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.eq_ignore_ascii_case("authorization") && v.trim() == format!("Bearer {token}")
        })
    });
    if !authorized {
        return respond(&mut stream, 401, r#"{"error":"unauthorized"}"#);
    }
    let mut power = power.lock().unwrap_or_else(|p| p.into_inner());
    match request_line.split(' ').take(2).collect::<Vec<_>>()[..] {
        ["GET", "/api/power"] => {
            let body = format!(r#"{{"state":"{}"}}"#, power.state());
            respond(&mut stream, 200, &body)
        }
        ["POST", "/api/power"] => {
            let wanted = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_owned));
            let current = power.state();
            let (on, status) = match wanted.as_deref() {
                Some("off") if current == "off" => {
                    return respond(&mut stream, 409, r#"{"error":"already off"}"#);
                }
                Some("on") if current == "on" => {
                    return respond(&mut stream, 409, r#"{"error":"already on"}"#);
                }
                Some("off") => (false, 202),
                Some("on") | Some("cycle") => (true, 202),
                _ => return respond(&mut stream, 400, r#"{"error":"bad state"}"#),
            };
            power.on = on;
            power.settles_at = Some(Instant::now() + settle);
            power.commands.push(wanted.unwrap_or_default());
            respond(&mut stream, status, r#"{"accepted":true}"#)
        }
        _ => respond(&mut stream, 404, r#"{"error":"not found"}"#),
    }
}

fn respond(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        401 => "Unauthorized",
        409 => "Conflict",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nX-Acme-Serial: {SERIAL}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())
}
