//! Keeping the last few lines of a child's output, in bounded memory, however much it prints.
//!
//! A line longer than the limit is cut as it arrives, so the tail masks the device's secrets
//! itself, at the cut ([`Redactor::clip_cut`]): a secret straddling the cut would otherwise
//! leave its prefix, which no later redaction recognises.

use fencegate_driver::Redactor;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The last `max_lines` lines of a stream, each cut to about `max_line_len` bytes, with the
/// secrets of `redactor` masked.
#[derive(Debug)]
pub(crate) struct Tail {
    lines: VecDeque<String>,
    partial: Vec<u8>,
    /// Whether the line being read was longer than `max_line_len` (and so was cut).
    partial_cut: bool,
    max_lines: usize,
    max_line_len: usize,
    total_bytes: u64,
    redactor: Redactor,
}

impl Tail {
    /// An empty tail keeping `max_lines` lines of at most about `max_line_len` bytes, masked
    /// by `redactor`.
    pub(crate) fn new(max_lines: usize, max_line_len: usize, redactor: Redactor) -> Self {
        Tail {
            lines: VecDeque::with_capacity(max_lines),
            partial: Vec::new(),
            partial_cut: false,
            max_lines,
            max_line_len,
            total_bytes: 0,
            redactor,
        }
    }

    /// Feed bytes as they arrive.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.total_bytes = self.total_bytes.saturating_add(bytes.len() as u64);
        while let Some(at) = bytes.iter().position(|b| *b == b'\n') {
            self.extend_partial(&bytes[..at]);
            self.finish_line();
            bytes = &bytes[at + 1..];
        }
        self.extend_partial(bytes);
    }

    fn extend_partial(&mut self, bytes: &[u8]) {
        let room = self.max_line_len.saturating_sub(self.partial.len());
        if bytes.len() > room {
            self.partial_cut = true;
        }
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The line read so far, masked (and masked at its cut, if it was cut).
    fn masked_partial(&self) -> String {
        let mut bytes = &self.partial[..];
        if self.partial_cut {
            // A character split by the cut is dropped whole, so that a secret's prefix ends
            // the text and can be recognised.
            if let Err(e) = std::str::from_utf8(bytes)
                && e.error_len().is_none()
            {
                bytes = &bytes[..e.valid_up_to()];
            }
        }
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end_matches('\r');
        self.redactor
            .clip_cut(text, self.max_line_len, self.partial_cut)
    }

    fn finish_line(&mut self) {
        let text = self.masked_partial();
        self.partial.clear();
        self.partial_cut = false;
        if self.max_lines == 0 {
            return;
        }
        if self.lines.len() == self.max_lines {
            self.lines.pop_front();
        }
        self.lines.push_back(text);
    }

    /// The kept lines, oldest first, including an unterminated last line.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.lines.iter().cloned().collect();
        if !self.partial.is_empty() {
            out.push(self.masked_partial());
            if out.len() > self.max_lines {
                out.remove(0);
            }
        }
        out
    }

    /// How many bytes the stream carried in all.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

/// A tail shared between the task draining a pipe and whoever reports an error.
pub(crate) type SharedTail = Arc<Mutex<Tail>>;

/// Read `reader` to its end into `tail`. Ends when the writer closes the pipe (or the pipe
/// fails); callers also abort it when they drop the child.
pub(crate) async fn drain<R: AsyncRead + Unpin>(mut reader: R, tail: SharedTail) {
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut t) = tail.lock() {
                    t.push(&buf[..n]);
                }
            }
        }
    }
}

/// A snapshot of a shared tail's lines (empty if the lock was poisoned).
pub(crate) fn snapshot(tail: &SharedTail) -> Vec<String> {
    tail.lock().map(|t| t.lines()).unwrap_or_default()
}

/// The kept lines joined for an error message, saying how much was dropped when the stream
/// carried more than was kept (a flood). Empty when nothing was written.
pub(crate) fn summary(tail: &SharedTail) -> String {
    let Ok(t) = tail.lock() else {
        return String::new();
    };
    let lines = t.lines();
    if lines.is_empty() {
        return String::new();
    }
    let shown: usize = lines.iter().map(|l| l.len() + 1).sum();
    let joined = lines.join(" | ");
    if t.total_bytes() > shown as u64 + 1024 {
        format!(
            "(last {} lines of {} bytes) {joined}",
            lines.len(),
            t.total_bytes()
        )
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_cut_to_length() {
        let mut t = Tail::new(2, 4, Redactor::default());
        t.push(b"first\nsecond line\nthi");
        t.push(b"rd\r\nfourth");
        assert_eq!(t.lines(), ["thir…", "four…"]);
        assert_eq!(t.total_bytes(), 31);
    }

    #[test]
    fn bounded_under_a_flood() {
        let mut t = Tail::new(3, 16, Redactor::default());
        let chunk = vec![b'A'; 1 << 16];
        for _ in 0..64 {
            t.push(&chunk);
            t.push(b"\n");
        }
        let lines = t.lines();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| *l == format!("{}…", "A".repeat(16))));
        assert_eq!(t.total_bytes(), 64 * ((1 << 16) + 1));
    }

    #[test]
    fn a_secret_cut_by_the_line_limit_is_masked() {
        let secret = fencegate_driver::SecretString::from("pw-Straddling-1");
        let mut t = Tail::new(4, 12, Redactor::new([&secret]));
        // Whole in a short line; cut after 6 of its characters in a long one (arriving in
        // two reads); a multi-byte character split by the cut is dropped whole.
        t.push(b"a pw-Straddling-1 b\nuser=pw-Str");
        t.push(b"addling-1 more\n12345678pw-\xc3\xa9");
        assert_eq!(
            t.lines(),
            ["a [redacted]…", "user=[redacted]…", "12345678pw-…"]
        );
        for line in t.lines() {
            assert!(!line.contains("pw-S"), "{line}");
        }
    }

    #[tokio::test]
    async fn drain_reads_to_the_end() {
        let tail: SharedTail = Arc::new(Mutex::new(Tail::new(4, 80, Redactor::default())));
        drain(&b"a\nb\nc"[..], tail.clone()).await;
        assert_eq!(snapshot(&tail), ["a", "b", "c"]);
        assert_eq!(summary(&tail), "a | b | c");
        let flood: SharedTail = Arc::new(Mutex::new(Tail::new(2, 10, Redactor::default())));
        drain(&vec![b'x'; 10_000][..], flood.clone()).await;
        assert_eq!(
            summary(&flood),
            format!("(last 1 lines of 10000 bytes) {}…", "x".repeat(10))
        );
    }
}
