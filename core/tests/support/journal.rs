//! The real SQLite journal for engine tests, and what tests read back from it.
//!
//! Engine tests run under tokio's paused clock. [`SqliteJournal::open_inline`] runs every
//! statement on the caller's thread before the call returns, so the paused clock never jumps
//! while a commit is pending, and a [`TestClock`] moves the journal's windows with the paused
//! time. Tests thus exercise the production schema, pragmas and guards, not a copy of them.

use super::clock::TestClock;
use fencegate_core::{Engine, Event, Journal, Proof, SqliteJournal};
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// An engine on its own inline journal in a temporary directory, which lives (and is
/// removed) with this value. Dereferences to the engine.
pub struct TestEngine {
    /// The engine.
    pub engine: Engine,
    /// Its journal.
    pub journal: Arc<SqliteJournal>,
    // Declared last: dropped after the journal that lives in it.
    dir: tempfile::TempDir,
}

impl TestEngine {
    /// Where the journal lives.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every finished record of `host`, newest first.
    pub async fn history(&self, host: &str) -> Vec<Proof> {
        self.journal
            .history(Some(host), usize::MAX >> 1)
            .await
            .unwrap()
    }

    /// How many operations the journal holds for `host`, open, finished or refused.
    pub fn operations_for(&self, host: &str) -> usize {
        operations_for(self.dir(), host)
    }

    /// Every event recorded for an operation, in order.
    pub fn events_of(&self, request_id: &str) -> Vec<Event> {
        events_of(self.dir(), request_id)
    }
}

impl Deref for TestEngine {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

/// A fresh directory for a test's journal, removed when the value drops.
///
/// On tmpfs when the machine has one (`/dev/shm`) and `TMPDIR` does not say otherwise: the
/// journal keeps its production settings (`synchronous=FULL`, one transaction per inline
/// call), and on a disk the fsyncs alone would make the 1,024 schedules of the property test
/// take minutes. What is tested is the journal's logic and SQLite's locking, which tmpfs has
/// like any local filesystem; durability across power loss is not something a test can see.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if std::env::var_os("TMPDIR").is_none() && shm.is_dir() {
        // A tmpfs that refuses us (read-only, full, no permission) falls back to the default.
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("fencegate-test")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::Builder::new()
        .prefix("fencegate-test")
        .tempdir()
        .unwrap()
}

/// An engine on a fresh inline journal whose clock follows tokio's (make it inside the
/// runtime).
pub fn inline_engine() -> TestEngine {
    let dir = scratch_dir();
    let journal =
        Arc::new(SqliteJournal::open_inline(dir.path(), Arc::new(TestClock::new())).unwrap());
    TestEngine {
        engine: Engine::new(journal.clone()),
        journal,
        dir,
    }
}

/// A read-only connection to the journal file in `dir`, for what the `Journal` trait does
/// not show (raw rows and events). It reads committed state only.
fn read(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        dir.join(SqliteJournal::FILE_NAME),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

/// How many operations the journal in `dir` holds for `host`, open, finished or refused.
pub fn operations_for(dir: &Path, host: &str) -> usize {
    read(dir)
        .query_row(
            "SELECT COUNT(*) FROM operations WHERE host = ?1",
            [host],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| usize::try_from(n).unwrap())
        .unwrap()
}

/// Every event the journal in `dir` holds for an operation, in the order recorded.
pub fn events_of(dir: &Path, request_id: &str) -> Vec<Event> {
    let conn = read(dir);
    let mut stmt = conn
        .prepare("SELECT event FROM events WHERE request_id = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([request_id], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|json| serde_json::from_str(&json.unwrap()).unwrap())
        .collect()
}
