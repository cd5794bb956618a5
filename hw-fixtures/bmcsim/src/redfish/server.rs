//! The HTTPS front end of one simulated service: a TCP listener, TLS (rustls), HTTP/1.1
//! (hyper), and the fault profile's transport faults (slow replies, a dead endpoint).

use super::Shared;
use super::service::{self, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The largest request body read (a login or a reset is a few dozen bytes).
const MAX_REQUEST_BODY: usize = 64 * 1024;
/// A TLS handshake or a request head must arrive within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A dead endpoint holds an accepted connection at most this long, silently.
const DEAD_HOLD: Duration = Duration::from_secs(120);

/// Accept connections until `stop` fires; each connection is served by its own task, which
/// also ends when `stop` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((tcp, _peer)) = accepted else {
            // Out of descriptors or similar: back off briefly instead of spinning.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let shared = Arc::clone(&shared);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            if shared.state().faults.dead {
                // Accept and say nothing, like a hung management controller.
                tokio::select! {
                    _ = tokio::time::sleep(DEAD_HOLD) => {}
                    _ = stop.changed() => {}
                }
                drop(tcp);
                return;
            }
            let tls = tokio::select! {
                t = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => t,
                _ = stop.changed() => return,
            };
            let Ok(Ok(tls)) = tls else {
                return;
            };
            shared.note_handshake();
            let svc = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(answer(&shared, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// Read the request, apply the reply delay, answer from the service.
async fn answer(shared: &Shared, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    if shared.state().faults.dead {
        // Died with a connection open (kept alive): stop answering on it too.
        tokio::time::sleep(DEAD_HOLD).await;
    }
    let arrived = Instant::now();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut request = Request {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        authorization: header("authorization"),
        token: header("x-auth-token"),
        if_match: header("if-match"),
        body: Vec::new(),
    };
    let body = Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await;
    let response = match body {
        Ok(b) => {
            request.body = b.to_bytes().to_vec();
            let (resp, delay) = {
                let mut state = shared.state();
                let delay = state.faults.reply_delay();
                (
                    service::handle(&shared.identity, &mut state, &request, arrived),
                    delay,
                )
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            resp
        }
        Err(_) => Response::error(
            413,
            "Base.1.8.GeneralError",
            "The request body is too large or unreadable.",
        ),
    };
    to_http(response)
}

fn to_http(resp: Response) -> hyper::Response<Full<Bytes>> {
    let body = match (&resp.raw, &resp.body) {
        (Some(raw), _) => Bytes::from(raw.clone()),
        (None, Some(v)) => Bytes::from(v.to_string()),
        (None, None) => Bytes::new(),
    };
    let mut builder = hyper::Response::builder()
        .status(resp.status)
        .header("OData-Version", "4.0");
    if resp.body.is_some() || resp.raw.is_some() {
        builder = builder.header("Content-Type", "application/json; charset=utf-8");
    }
    for (name, value) in resp.headers {
        builder = builder.header(name, value);
    }
    builder.body(Full::new(body)).unwrap_or_else(|_| {
        let mut fallback = hyper::Response::new(Full::new(Bytes::new()));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}
