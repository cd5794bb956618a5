//! Watching a host go quiet: the only evidence SSH fencing can offer after the command.
//!
//! `poweroff -f` usually kills the host before any answer, and a dead host does not close
//! its TCP connections. So delivery is judged from outside: every watched TCP port must
//! refuse or ignore connection attempts *continuously* for the hold time. One answered
//! probe resets the clock. This is loss of liveness, never proof of power-off.
//!
//! Only conclusive probes count as quiet: a refused connection, or no answer within the full
//! probe timeout. A probe the deadline cut short (or never let start) proves nothing, so a
//! round containing one neither starts nor extends a quiet period; otherwise a host that is
//! up would look quiet at the very end of every watch.

use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The ports stayed quiet long enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quiet {
    /// How long they were quiet when the watch ended.
    pub quiet_for: Duration,
    /// Probes sent.
    pub probes: u32,
}

/// The deadline came while a port still answered (or had answered too recently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StillAlive {
    /// The port that answered last.
    pub port: u16,
    /// How long before the end of the watch it answered.
    pub answered_ago: Duration,
    /// How long the ports had been quiet when the deadline came (zero if none).
    pub quiet_for: Duration,
}

/// Probe `ports` of `host` until all have been quiet for `hold`, or the deadline.
pub async fn watch(
    host: &str,
    ports: &[u16],
    hold: Duration,
    interval: Duration,
    deadline: Instant,
) -> Result<Quiet, StillAlive> {
    let probe_timeout = interval.max(Duration::from_millis(250));
    let mut quiet_since: Option<Instant> = None;
    let mut last_alive: Option<(u16, Instant)> = None;
    let mut probes = 0u32;
    loop {
        let round = Instant::now();
        let mut answered = None;
        let mut conclusive = true;
        for &port in ports {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < probe_timeout {
                // Not enough time for a probe whose silence would mean anything.
                conclusive = false;
                break;
            }
            probes += 1;
            // Anything but a connection (refused, unreachable, silent for the whole probe
            // timeout) is a quiet probe.
            let attempt = tokio::time::timeout(probe_timeout, TcpStream::connect((host, port)));
            if let Ok(Ok(stream)) = attempt.await {
                drop(stream);
                answered = Some(port);
            }
        }
        let now = Instant::now();
        match (answered, conclusive) {
            (Some(port), _) => {
                quiet_since = None;
                last_alive = Some((port, now));
            }
            (None, false) => {}
            (None, true) => {
                let since = *quiet_since.get_or_insert(round);
                if now.duration_since(since) >= hold {
                    return Ok(Quiet {
                        quiet_for: now.duration_since(since),
                        probes,
                    });
                }
            }
        }
        if now >= deadline {
            let (port, at) = last_alive.unwrap_or((ports.first().copied().unwrap_or(0), now));
            return Err(StillAlive {
                port,
                answered_ago: now.duration_since(at),
                quiet_for: quiet_since
                    .map(|s| now.duration_since(s))
                    .unwrap_or_default(),
            });
        }
        let pause = interval.min(deadline.saturating_duration_since(now));
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencegate_test_kit::ports::{ClosedTcpPort, tcp_listener};

    #[tokio::test]
    async fn a_listening_port_is_never_quiet() {
        // Listening is enough: the kernel completes the handshake without an accept.
        let l = tcp_listener();
        let port = l.local_addr().unwrap().port();
        let t0 = Instant::now();
        let deadline = Duration::from_millis(300);
        let ports = [port];
        let r = watch(
            "127.0.0.1",
            &ports,
            Duration::from_millis(100),
            Duration::from_millis(20),
            t0 + deadline,
        );
        // Without its deadline the watch would go on for ever: bound the test, not the code.
        let r = tokio::time::timeout(Duration::from_secs(30), r)
            .await
            .expect("the watch ignored its deadline");
        assert_eq!(r.unwrap_err().port, port);
        assert!(
            t0.elapsed() < deadline + Duration::from_secs(2),
            "gave up {:?} after a deadline of {deadline:?}",
            t0.elapsed()
        );
    }

    #[tokio::test]
    async fn the_deadline_cutting_a_probe_short_is_not_quiet() {
        // With no hold at all, the only thing between a live host and "quiet" is the rule
        // that a probe cut short by the deadline proves nothing.
        let l = tcp_listener();
        let port = l.local_addr().unwrap().port();
        for deadline_ms in [0, 10, 260, 300, 700] {
            let r = watch(
                "127.0.0.1",
                &[port],
                Duration::ZERO,
                Duration::from_millis(20),
                Instant::now() + Duration::from_millis(deadline_ms),
            )
            .await;
            assert!(
                r.is_err(),
                "a listening port looked quiet ({deadline_ms} ms)"
            );
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_quiet_after_the_hold() {
        // Held closed for the whole test: no other test's server can appear on it.
        let closed = ClosedTcpPort::new();
        let t0 = Instant::now();
        let deadline = Duration::from_secs(10);
        let q = watch(
            "127.0.0.1",
            &[closed.port()],
            Duration::from_millis(150),
            Duration::from_millis(20),
            t0 + deadline,
        )
        .await
        .unwrap();
        assert!(q.quiet_for >= Duration::from_millis(150));
        assert!(t0.elapsed() >= Duration::from_millis(150));
        // Quiet once the hold is over, not only when the deadline comes.
        assert!(
            t0.elapsed() < deadline / 2,
            "quiet only after {:?}",
            t0.elapsed()
        );
    }

    #[tokio::test]
    async fn one_live_port_of_two_keeps_the_host_alive() {
        let l = tcp_listener();
        let live = l.local_addr().unwrap().port();
        let dead = ClosedTcpPort::new();
        let r = watch(
            "127.0.0.1",
            &[dead.port(), live],
            Duration::from_millis(50),
            Duration::from_millis(20),
            Instant::now() + Duration::from_millis(800),
        )
        .await;
        assert_eq!(r.unwrap_err().port, live);
    }
}
