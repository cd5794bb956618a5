//! Reading newline-terminated messages with a cap on their length, so that a driver printing
//! an endless line cannot make fencegate buffer without limit.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Why no line could be read.
#[derive(Debug)]
pub(crate) enum LineError {
    /// The stream ended (a partial last line counts as ended: the writer is gone).
    Eof,
    /// A line grew past the limit before its newline.
    TooLong(usize),
    /// The pipe failed.
    Io(std::io::Error),
}

/// Reads lines of at most `limit` bytes (the newline excluded).
pub(crate) struct LineReader<R> {
    inner: BufReader<R>,
    limit: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Wrap `inner`, refusing lines longer than `limit` bytes.
    pub(crate) fn new(inner: R, limit: usize) -> Self {
        LineReader {
            inner: BufReader::new(inner),
            limit,
        }
    }

    /// The next line without its `\n` (and without a `\r` before it).
    ///
    /// Not cancel-safe: a caller that abandons a read must abandon the reader, which is what
    /// every deadline path here does (the child is killed and the session dropped).
    pub(crate) async fn next_line(&mut self) -> Result<Vec<u8>, LineError> {
        let mut line = Vec::new();
        loop {
            let buf = self.inner.fill_buf().await.map_err(LineError::Io)?;
            if buf.is_empty() {
                return Err(LineError::Eof);
            }
            let (chunk, found) = match buf.iter().position(|b| *b == b'\n') {
                Some(at) => (&buf[..at], true),
                None => (buf, false),
            };
            if line.len() + chunk.len() > self.limit {
                return Err(LineError::TooLong(self.limit));
            }
            line.extend_from_slice(chunk);
            let used = chunk.len() + usize::from(found);
            self.inner.consume(used);
            if found {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_split_and_cap() {
        let data: &[u8] = b"one\r\ntwo\n\nthree";
        let mut r = LineReader::new(data, 8);
        assert_eq!(r.next_line().await.unwrap(), b"one");
        assert_eq!(r.next_line().await.unwrap(), b"two");
        assert_eq!(r.next_line().await.unwrap(), b"");
        assert!(matches!(r.next_line().await, Err(LineError::Eof)));

        let long = [b'x'; 100];
        let mut r = LineReader::new(&long[..], 10);
        assert!(matches!(r.next_line().await, Err(LineError::TooLong(10))));

        let exact: &[u8] = b"0123456789\n";
        let mut r = LineReader::new(exact, 10);
        assert_eq!(r.next_line().await.unwrap(), b"0123456789");
    }
}
