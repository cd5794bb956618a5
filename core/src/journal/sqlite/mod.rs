//! The SQLite journal: WAL, `synchronous=FULL`, one writer thread with group commit.
//!
//! rusqlite is synchronous, so all statements run on one dedicated thread (no blocking I/O on
//! the async runtime). Jobs queued while a commit is in flight are committed together: a
//! thousand hosts fenced in one call cost a few dozen fsyncs, not thousands. Each job runs
//! inside a savepoint, so one failing job never undoes another's work.

mod begin;

use super::owner::{self, Owner, Owners};
use super::{
    Abandoned, Begin, Claim, DeviceMeta, IdentitySeen, Journal, JournalError, JournalFuture,
    KnownIdentity, PowerLock, Trusted,
};
use crate::identity;
use crate::proof::{Event, Operation, Proof};
use crate::time::{Clock, SystemClock, Timestamp};
use fencegate_driver::IdentityFact;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

type Deliver = Box<dyn FnOnce(Option<JournalError>) + Send>;
type Job = Box<dyn FnOnce(Result<&Connection, JournalError>) -> Deliver + Send>;

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 256;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS operations (
    request_id     TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    operation      TEXT NOT NULL,
    requester      TEXT NOT NULL,
    reason         TEXT NOT NULL,
    started_ms     INTEGER NOT NULL,
    owner_pid      INTEGER NOT NULL,
    owner_boot     TEXT NOT NULL,
    lease_until_ms INTEGER NOT NULL,
    finished_ms    INTEGER,
    verdict        TEXT,
    success        INTEGER,
    proof          TEXT
);
CREATE INDEX IF NOT EXISTS operations_by_host ON operations(host, started_ms);
CREATE INDEX IF NOT EXISTS operations_open ON operations(finished_ms);
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES operations(request_id),
    level      INTEGER NOT NULL,
    device     TEXT NOT NULL,
    driver     TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    event      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_request ON events(request_id, id);
CREATE TABLE IF NOT EXISTS host_locks (
    host       TEXT NOT NULL,
    door       TEXT NOT NULL,
    request_id TEXT NOT NULL,
    locked_ms  INTEGER NOT NULL,
    requester  TEXT NOT NULL,
    PRIMARY KEY (host, door)
);
CREATE TABLE IF NOT EXISTS pending_fences (
    request_id TEXT PRIMARY KEY,
    host       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS box_locks (
    key        TEXT NOT NULL,
    request_id TEXT NOT NULL,
    PRIMARY KEY (key, request_id)
);
CREATE TABLE IF NOT EXISTS identity_locks (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    request_id TEXT NOT NULL,
    PRIMARY KEY (kind, value, request_id)
);
CREATE TABLE IF NOT EXISTS op_keys (
    request_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    PRIMARY KEY (request_id, key)
);
CREATE INDEX IF NOT EXISTS op_keys_by_key ON op_keys(key);
CREATE TABLE IF NOT EXISTS power_locks (
    host       TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    locked_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identities (
    endpoint    TEXT PRIMARY KEY,
    facts       TEXT NOT NULL,
    since_ms    INTEGER NOT NULL,
    accepted_by TEXT
);
CREATE TABLE IF NOT EXISTS identity_facts (
    endpoint TEXT NOT NULL REFERENCES identities(endpoint) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (endpoint, kind, value)
);
CREATE INDEX IF NOT EXISTS identity_facts_by_value ON identity_facts(kind, value);
";

/// Columns added after the first schema, with their definitions: added to older journals
/// when they are opened.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("operations", "target", "TEXT NOT NULL DEFAULT ''"),
    // Boot-relative times (CLOCK_BOOTTIME, ms), so windows survive wall-clock steps.
    ("operations", "started_up_ms", "INTEGER NOT NULL DEFAULT -1"),
    (
        "operations",
        "finished_up_ms",
        "INTEGER NOT NULL DEFAULT -1",
    ),
    ("operations", "finished_boot", "TEXT NOT NULL DEFAULT ''"),
    // Refused by the storm guard: a storm in progress, which keeps counting.
    ("operations", "storm_refused", "INTEGER NOT NULL DEFAULT 0"),
    // The earlier proof a fence re-confirmed: no new power-off, so no new storm count.
    ("operations", "confirms", "TEXT NOT NULL DEFAULT ''"),
];

fn migrate(conn: &Connection) -> Result<(), JournalError> {
    // Locks from before doors were recorded keep holding, under no door.
    conn.execute_batch(
        "INSERT OR IGNORE INTO host_locks (host, door, request_id, locked_ms, requester)
            SELECT host, '', request_id, locked_ms, '' FROM power_locks;
         DELETE FROM power_locks;",
    )
    .map_err(storage)?;
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = conn
            .prepare_cached(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
            ))
            .and_then(|mut s| s.exists(params![column]))
            .map_err(storage)?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))
            .map_err(storage)?;
        }
    }
    Ok(())
}

fn read_known(conn: &Connection, endpoint: &str) -> Result<Option<KnownIdentity>, JournalError> {
    let row: Option<(String, i64, Option<String>)> = conn
        .row(
            "SELECT facts, since_ms, accepted_by FROM identities WHERE endpoint = ?1",
            params![endpoint],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(storage)?;
    let known = row
        .map(|(facts, since, accepted_by)| {
            Ok(KnownIdentity {
                facts: serde_json::from_str(&facts).map_err(|e| {
                    JournalError::Corrupt(format!("identity of {endpoint}"), e.to_string())
                })?,
                since: Timestamp(since),
                accepted_by,
            })
        })
        .transpose()?;
    // An empty identity would match any box: it is no identity.
    Ok(known.filter(|k: &KnownIdentity| !k.facts.is_empty()))
}

/// The first endpoint other than `endpoint` that remembers one of `facts`.
fn held_elsewhere(
    conn: &Connection,
    endpoint: &str,
    facts: &[IdentityFact],
) -> Result<Option<(String, IdentityFact)>, JournalError> {
    for fact in facts {
        let other: Option<String> = conn
            .row(
                "SELECT endpoint FROM identity_facts
                 WHERE kind = ?1 AND value = ?2 AND endpoint <> ?3 LIMIT 1",
                params![fact.kind, fact.value, endpoint],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        if let Some(other) = other {
            return Ok(Some((other, fact.clone())));
        }
    }
    Ok(None)
}

fn store_identity(
    conn: &Connection,
    endpoint: &str,
    facts: &[IdentityFact],
    by: Option<&str>,
    since: Timestamp,
) -> Result<(), JournalError> {
    let json = serde_json::to_string(facts).map_err(storage)?;
    conn.exec(
        "DELETE FROM identity_facts WHERE endpoint = ?1",
        params![endpoint],
    )
    .map_err(storage)?;
    conn.exec(
        "DELETE FROM identities WHERE endpoint = ?1",
        params![endpoint],
    )
    .map_err(storage)?;
    conn.exec(
        "INSERT INTO identities (endpoint, facts, since_ms, accepted_by) VALUES (?1, ?2, ?3, ?4)",
        params![endpoint, json, since.millis(), by],
    )
    .map_err(storage)?;
    for f in facts {
        conn.exec(
            "INSERT OR IGNORE INTO identity_facts (endpoint, kind, value) VALUES (?1, ?2, ?3)",
            params![endpoint, f.kind, f.value],
        )
        .map_err(storage)?;
    }
    Ok(())
}

/// Make sure the journal file is one every process sharing the state directory can write.
///
/// A new file gets the directory's owner and group (root running `unfence` must not leave a
/// root-owned journal that the OpenNebula hook, running as `oneadmin`, cannot open), and is
/// group read-write when the directory is group-writable, else owner-only. SQLite gives its
/// `-wal` and `-shm` files the main file's mode and, as root, its owner. An existing file
/// this process cannot write is refused with the exact fix.
fn prepare_file(dir: &Path, path: &Path) -> Result<(), JournalError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let d = std::fs::metadata(dir)
        .map_err(|e| storage(format!("cannot read {}: {e}", dir.display())))?;
    let mode = if d.mode() & 0o060 == 0o060 {
        0o660
    } else {
        0o600
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(f) => {
            let m = f.metadata().map_err(storage)?;
            let uid = (m.uid() != d.uid()).then_some(d.uid());
            let gid = (m.gid() != d.gid()).then_some(d.gid());
            if (uid.is_some() || gid.is_some()) && std::os::unix::fs::fchown(&f, uid, gid).is_err()
            {
                // Not root: at least the directory's group, where this user belongs to it.
                let _ = std::os::unix::fs::fchown(&f, None, gid);
            }
            // The umask may have taken bits the directory's sharing needs.
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(storage)?;
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let files: Vec<PathBuf> = ["", "-wal", "-shm"]
                .iter()
                .map(|suffix| PathBuf::from(format!("{}{suffix}", path.display())))
                .filter(|p| p.exists())
                .collect();
            let blocked: Vec<&PathBuf> = files
                .iter()
                .filter(|p| {
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(p)
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
                })
                .collect();
            if blocked.is_empty() {
                return Ok(());
            }
            let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
            let owner = std::fs::metadata(blocked[0]).map(|m| (m.uid(), m.gid(), m.mode() & 0o777));
            let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            Err(storage(format!(
                "the journal {} cannot be written by this user (uid {}; the file is uid {} gid {} mode {:o}), so it could neither record nor honour a power-on lock; every process sharing {} must be able to write it. Fix: chown {}:{} {} && chmod {:o} {}",
                blocked[0].display(),
                me.map(|u| u.to_string()).unwrap_or_else(|| "?".into()),
                owner
                    .as_ref()
                    .map(|o| o.0.to_string())
                    .unwrap_or_else(|_| "?".into()),
                owner
                    .as_ref()
                    .map(|o| o.1.to_string())
                    .unwrap_or_else(|_| "?".into()),
                owner.as_ref().map(|o| o.2).unwrap_or(0),
                dir.display(),
                d.uid(),
                d.gid(),
                names.join(" "),
                mode,
                names.join(" "),
            )))
        }
        Err(e) => Err(storage(format!("cannot create {}: {e}", path.display()))),
    }
}

/// How long opening a journal may wait for other processes setting up or writing it.
const SETUP_WAIT: Duration = Duration::from_secs(10);

/// Run `f` until it does not answer "busy" or "locked", for at most [`SETUP_WAIT`].
fn retry_busy<T>(
    what: &str,
    mut f: impl FnMut() -> rusqlite::Result<T>,
) -> Result<T, JournalError> {
    let until = std::time::Instant::now() + SETUP_WAIT;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < until =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(storage(format!("{what}: {e}"))),
        }
    }
}

/// The default journal: one SQLite file.
pub struct SqliteJournal {
    path: PathBuf,
    writer: Writer,
    owners: Arc<Owners>,
    clock: Arc<dyn Clock>,
}

/// Where a journal's statements run.
enum Writer {
    /// On the writer thread, with group commit (production).
    Thread(mpsc::Sender<Job>),
    /// On the caller's thread, one job per transaction, before the call returns: nothing
    /// happens behind a simulated clock's back, so a schedule replays exactly.
    Inline(std::sync::Mutex<Store>),
}

/// The connection and what the writer checks before every batch.
struct Store {
    conn: Connection,
    path: PathBuf,
    file: FileIdentity,
    lost: bool,
}

impl std::fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.path)
            .finish()
    }
}

/// Statements through SQLite's prepared-statement cache: the journal runs the same few
/// dozen statements for every operation, and compiling them again each time cost more than
/// running them.
trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

fn storage(e: impl std::fmt::Display) -> JournalError {
    JournalError::Storage(e.to_string())
}

impl SqliteJournal {
    /// The journal file's name inside a state directory.
    pub const FILE_NAME: &'static str = "journal.sqlite";

    /// Open (or create) the journal in `state_dir`, creating the directory owner-only.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        Self::open_with(state_dir, Arc::new(SystemClock), false)
    }

    /// Open the journal for a deterministic simulation: time comes from `clock`, and every
    /// call runs its statements on the caller's thread before it returns (one transaction
    /// each, no writer thread), so a paused tokio clock never advances while a commit is
    /// pending. Schema, pragmas, locking and guards are the production ones.
    pub fn open_inline(state_dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, JournalError> {
        Self::open_with(state_dir, clock, true)
    }

    fn open_with(
        state_dir: &Path,
        clock: Arc<dyn Clock>,
        inline: bool,
    ) -> Result<Self, JournalError> {
        // A directory fencegate creates is owner-only; one it finds is left as it is (its
        // owner and group decide who shares the journal).
        if !state_dir.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .map_err(|e| storage(format!("cannot create {}: {e}", state_dir.display())))?;
        }
        // WAL's shared memory and the owners' locks do not work on network filesystems.
        if let Some(fstype) = owner::filesystem_of(state_dir)
            && owner::NETWORK_FILESYSTEMS.contains(&fstype.as_str())
        {
            return Err(storage(format!(
                "{} is on a {fstype} filesystem: the journal needs local file locking (SQLite WAL, flock); put state_dir on a local disk",
                state_dir.display()
            )));
        }
        let path = state_dir.join(Self::FILE_NAME);
        prepare_file(state_dir, &path)?;
        let conn = Connection::open(&path)
            .map_err(|e| storage(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(SETUP_WAIT).map_err(storage)?;
        // Several processes may open a new journal at the same instant (a storm of hooks).
        // Switching to WAL can answer "busy" without waiting, so it is retried; the schema
        // and its migrations run in one immediate transaction, so only one process creates
        // them and the others find them done.
        retry_busy("switching the journal to WAL", || {
            conn.execute_batch("PRAGMA journal_mode=WAL")
        })?;
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(storage)?;
        retry_busy("locking the journal to set it up", || {
            conn.execute_batch("BEGIN IMMEDIATE")
        })?;
        let setup = conn
            .execute_batch(SCHEMA)
            .map_err(storage)
            .and_then(|()| migrate(&conn))
            .and_then(|()| conn.execute_batch("COMMIT").map_err(storage));
        if let Err(e) = setup {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        begin::register_window_function(&conn).map_err(storage)?;
        conn.set_prepared_statement_cache_capacity(64);
        let file = FileIdentity::of(&path)
            .ok_or_else(|| storage(format!("cannot stat {}", path.display())))?;
        let store = Store {
            conn,
            path: path.clone(),
            file,
            lost: false,
        };
        let writer = if inline {
            Writer::Inline(std::sync::Mutex::new(store))
        } else {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("fencegate-journal".into())
                .spawn(move || writer(store, rx))
                .map_err(storage)?;
            Writer::Thread(tx)
        };
        let owners = {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&path).map_err(storage)?;
            Arc::new(Owners::new(state_dir, m.mode() & 0o666, (m.uid(), m.gid())))
        };
        Ok(SqliteJournal {
            path,
            writer,
            owners,
            clock,
        })
    }

    /// Where the journal lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue `f` on the writer thread now; the future yields its result once committed.
    fn call<R, F>(&self, f: F) -> JournalFuture<'static, R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, JournalError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn: Result<&Connection, JournalError>| {
            let result = conn.and_then(|c| in_savepoint(c, f));
            Box::new(move |commit_error| {
                let _ = tx.send(match commit_error {
                    Some(e) => Err(e),
                    None => result,
                });
            })
        });
        let queued = match &self.writer {
            Writer::Thread(jobs) => jobs.send(job).map_err(|_| JournalError::Closed),
            Writer::Inline(store) => {
                store
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .commit(vec![job]);
                Ok(())
            }
        };
        Box::pin(async move {
            queued?;
            rx.await.map_err(|_| JournalError::Closed)?
        })
    }
}

fn in_savepoint<R>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, JournalError>,
) -> Result<R, JournalError> {
    conn.execute_batch("SAVEPOINT job").map_err(storage)?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE job").map_err(storage)?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

/// Which file a path names (device and inode): a journal deleted or replaced under a
/// running process must not go on silently in an unlinked file that nobody else sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| FileIdentity {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// The writer thread: take a job, take whatever else is queued, commit them together.
/// Ends when every sender is gone.
fn writer(mut store: Store, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        store.commit(batch);
    }
}

impl Store {
    /// Run a batch of jobs in one transaction, commit once, then tell every job's caller.
    /// First check that the journal's path still names the file this store opened; once it
    /// does not, every job fails loudly.
    fn commit(&mut self, batch: Vec<Job>) {
        self.lost = self.lost || FileIdentity::of(&self.path) != Some(self.file);
        if self.lost {
            let err = storage(format!(
                "the journal {} was deleted or replaced while fencegate was using it: its power-on locks and records are not where other processes look; nothing more is recorded (restart fencegate)",
                self.path.display()
            ));
            for job in batch {
                job(Err(err.clone()))(None);
            }
            return;
        }
        let conn = &self.conn;
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = storage(e);
            for job in batch {
                job(Err(err.clone()))(None);
            }
            return;
        }
        let delivers: Vec<Deliver> = batch.into_iter().map(|job| job(Ok(conn))).collect();
        let commit_error = conn.execute_batch("COMMIT").err().map(storage);
        if commit_error.is_some() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for deliver in delivers {
            deliver(commit_error.clone());
        }
    }
}

fn decode_proof(request_id: &str, json: &str) -> Result<Proof, JournalError> {
    serde_json::from_str(json)
        .map_err(|e| JournalError::Corrupt(request_id.to_owned(), e.to_string()))
}

/// A lock from a row of `request_id, locked_ms, door, requester, host`.
fn lock_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PowerLock> {
    Ok(PowerLock {
        request_id: r.get(0)?,
        locked_at: Timestamp(r.get(1)?),
        door: crate::proof::Door::parse(&r.get::<_, String>(2)?),
        requester: r.get(3)?,
        host: r.get(4)?,
    })
}

/// A lock on the host by its name, or on any box it switches by whatever name it was fenced.
fn lock_on(
    conn: &Connection,
    host: &str,
    keys: &[String],
) -> Result<Option<PowerLock>, JournalError> {
    match read_power_locks(conn, host)?.into_iter().next() {
        Some(lock) => Ok(Some(lock)),
        None => box_locked(conn, keys),
    }
}

/// The lock of a fence that covers one of `keys` (what a device switches), if any.
fn box_locked(conn: &Connection, keys: &[String]) -> Result<Option<PowerLock>, JournalError> {
    for key in keys {
        let lock = conn
            .row(
                "SELECT h.request_id, h.locked_ms, h.door, h.requester, h.host
                 FROM box_locks b JOIN host_locks h ON h.request_id = b.request_id
                 WHERE b.key = ?1 ORDER BY h.locked_ms LIMIT 1",
                params![key],
                lock_row,
            )
            .optional()
            .map_err(storage)?;
        if lock.is_some() {
            return Ok(lock);
        }
    }
    Ok(None)
}

/// The host's power-on locks, oldest first.
fn read_power_locks(conn: &Connection, host: &str) -> Result<Vec<PowerLock>, JournalError> {
    conn.prepare_cached(
        "SELECT request_id, locked_ms, door, requester, host FROM host_locks
         WHERE host = ?1 ORDER BY locked_ms, rowid",
    )
    .and_then(|mut s| s.query_map(params![host], lock_row)?.collect())
    .map_err(storage)
}

impl Journal for SqliteJournal {
    fn begin(&self, claim: Claim) -> JournalFuture<'static, Begin> {
        // The owner's lock is taken before the record can be seen, and given back unless the
        // operation starts.
        let owners = Arc::clone(&self.owners);
        let id = claim.request_id.clone();
        if let Err(e) = owners.claim(&id) {
            return Box::pin(
                async move { Err(storage(format!("cannot lock operation {id}: {e}"))) },
            );
        }
        let checker = Arc::clone(&owners);
        let clock = Arc::clone(&self.clock);
        let begun = self.call(move |conn| begin::begin(conn, &checker, &claim, &clock.now()));
        Box::pin(async move {
            let begun = begun.await;
            if !matches!(begun, Ok(Begin::Started { .. })) {
                owners.release(&id);
            }
            begun
        })
    }

    fn record(
        &self,
        request_id: &str,
        device: &DeviceMeta,
        event: &Event,
    ) -> JournalFuture<'static, ()> {
        let request_id = request_id.to_owned();
        let device = device.clone();
        let json = serde_json::to_string(event);
        self.call(move |conn| {
            let json = json.map_err(storage)?;
            conn.exec(
                "INSERT INTO events (request_id, level, device, driver, endpoint, event)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    request_id,
                    device.level as i64,
                    device.device,
                    device.driver,
                    device.endpoint,
                    json
                ],
            )
            .map_err(storage)?;
            Ok(())
        })
    }

    fn refused(&self, proof: &Proof) -> JournalFuture<'static, ()> {
        let json = serde_json::to_string(proof);
        let p = proof.clone();
        let clock = Arc::clone(&self.clock);
        self.call(move |conn| {
            let json = json.map_err(storage)?;
            conn.exec(
                "INSERT INTO operations (request_id, host, operation, requester, reason,
                    started_ms, owner_pid, owner_boot, lease_until_ms, finished_ms, verdict,
                    success, proof)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?6, ?9, ?10, 0, ?11)",
                params![
                    p.request_id,
                    p.host,
                    p.operation.as_str(),
                    p.requester,
                    p.reason,
                    p.started_at.millis(),
                    i64::from(std::process::id()),
                    clock.now().boot,
                    p.finished_at.millis(),
                    p.verdict.as_str(),
                    json,
                ],
            )
            .map_err(storage)?;
            Ok(())
        })
    }

    fn finish(&self, proof: &Proof) -> JournalFuture<'static, ()> {
        let json = serde_json::to_string(proof);
        let request_id = proof.request_id.clone();
        let (verdict, success) = (proof.verdict, proof.success);
        let owners = Arc::clone(&self.owners);
        let clock = Arc::clone(&self.clock);
        let id = request_id.clone();
        let finished_job = self.call(move |conn| {
            let json = json.map_err(storage)?;
            // The journal's own clock dates the verdict: the guards' windows compare it with
            // times this clock gave, never with another process's.
            let now = clock.now();
            // Only an operation still open is closed: a verdict never overwrites another.
            let n = conn
                .exec(
                    "UPDATE operations SET finished_ms = ?2, verdict = ?3, success = ?4, proof = ?5,
                        finished_up_ms = ?6, finished_boot = ?7
                     WHERE request_id = ?1 AND finished_ms IS NULL",
                    params![
                        request_id,
                        now.wall.millis(),
                        verdict.as_str(),
                        success as i64,
                        json,
                        now.up_ms,
                        now.boot,
                    ],
                )
                .map_err(storage)?;
            if n != 1 {
                return Err(storage(format!(
                    "operation {request_id} is not open (closed by another process): this verdict is not recorded"
                )));
            }
            conn.exec("DELETE FROM op_keys WHERE request_id = ?1", params![request_id])
                .map_err(storage)?;
            Ok(())
        });
        Box::pin(async move {
            let r = finished_job.await;
            if r.is_ok() {
                owners.release(&id);
            }
            r
        })
    }

    fn proof(&self, request_id: &str) -> JournalFuture<'static, Option<Proof>> {
        let request_id = request_id.to_owned();
        self.call(move |conn| {
            let json: Option<Option<String>> = conn
                .row(
                    "SELECT proof FROM operations WHERE request_id = ?1",
                    params![request_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(storage)?;
            json.flatten()
                .map(|j| decode_proof(&request_id, &j))
                .transpose()
        })
    }

    fn history(&self, host: Option<&str>, limit: usize) -> JournalFuture<'static, Vec<Proof>> {
        let host = host.map(str::to_owned);
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT request_id, proof FROM operations
                     WHERE proof IS NOT NULL AND (?1 IS NULL OR host = ?1)
                     ORDER BY started_ms DESC, rowid DESC LIMIT ?2",
                )
                .map_err(storage)?;
            let rows = stmt
                .query_map(params![host, limit as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(storage)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(storage)?;
            rows.iter()
                .map(|(id, json)| decode_proof(id, json))
                .collect()
        })
    }

    fn power_locks(&self, host: &str) -> JournalFuture<'static, Vec<PowerLock>> {
        let host = host.to_owned();
        self.call(move |conn| read_power_locks(conn, &host))
    }

    fn clear_power_locks(
        &self,
        host: &str,
        only: Option<crate::proof::Door>,
    ) -> JournalFuture<'static, Vec<PowerLock>> {
        let host = host.to_owned();
        self.call(move |conn| {
            let lifted: Vec<PowerLock> = read_power_locks(conn, &host)?
                .into_iter()
                .filter(|l| only.is_none() || l.door == only)
                .collect();
            for l in &lifted {
                conn.exec(
                    "DELETE FROM host_locks WHERE host = ?1 AND door = ?2",
                    params![host, l.door.map(crate::proof::Door::as_str).unwrap_or("")],
                )
                .map_err(storage)?;
                // The fence's box and identity locks go with its last door's lock (another
                // door that joined the same fence still holds them).
                for table in ["box_locks", "identity_locks"] {
                    conn.exec(
                        &format!(
                            "DELETE FROM {table} WHERE request_id = ?1
                               AND NOT EXISTS (SELECT 1 FROM host_locks WHERE request_id = ?1)"
                        ),
                        params![l.request_id],
                    )
                    .map_err(storage)?;
                }
            }
            Ok(lifted)
        })
    }

    fn identity_seen(
        &self,
        endpoint: &str,
        facts: &[IdentityFact],
    ) -> JournalFuture<'static, IdentitySeen> {
        let endpoint = endpoint.to_owned();
        let facts = facts.to_vec();
        let clock = Arc::clone(&self.clock);
        self.call(move |conn| {
            let known = read_known(conn, &endpoint)?;
            if let Some(known) = &known
                && !identity::same_box(&known.facts, &facts)
            {
                return Ok(IdentitySeen::Changed(known.clone()));
            }
            // Checked on every contact, not only the first: an address remembered before a
            // pinned device (or a trusted move) claimed the box is refused from then on.
            if let Some((other, fact)) = held_elsewhere(conn, &endpoint, &facts)? {
                return Ok(IdentitySeen::ClaimedElsewhere {
                    endpoint: other,
                    fact,
                });
            }
            if let Some(known) = known {
                return Ok(IdentitySeen::Matches(known));
            }
            if facts.is_empty() {
                return Ok(IdentitySeen::FirstUse);
            }
            store_identity(conn, &endpoint, &facts, None, clock.now().wall)?;
            Ok(IdentitySeen::FirstUse)
        })
    }

    fn trust_identity(
        &self,
        endpoint: &str,
        facts: &[IdentityFact],
        by: &str,
        moved: bool,
    ) -> JournalFuture<'static, Trusted> {
        let endpoint = endpoint.to_owned();
        let facts = facts.to_vec();
        let by = by.to_owned();
        let clock = Arc::clone(&self.clock);
        self.call(move |conn| {
            if facts.is_empty() {
                return Ok(Trusted::Nothing);
            }
            // A box that really moved: the operator says so, and the old address forgets it.
            while moved && let Some((other, _)) = held_elsewhere(conn, &endpoint, &facts)? {
                conn.exec(
                    "DELETE FROM identity_facts WHERE endpoint = ?1",
                    params![other],
                )
                .map_err(storage)?;
                conn.exec("DELETE FROM identities WHERE endpoint = ?1", params![other])
                    .map_err(storage)?;
            }
            if let Some((other, fact)) = held_elsewhere(conn, &endpoint, &facts)? {
                return Ok(Trusted::HeldElsewhere {
                    endpoint: other,
                    fact,
                });
            }
            let before = read_known(conn, &endpoint)?;
            store_identity(conn, &endpoint, &facts, Some(&by), clock.now().wall)?;
            Ok(Trusted::Accepted(before))
        })
    }

    fn pin_identity(&self, endpoint: &str, facts: &[IdentityFact]) -> JournalFuture<'static, ()> {
        let endpoint = endpoint.to_owned();
        let facts = facts.to_vec();
        let clock = Arc::clone(&self.clock);
        self.call(move |conn| {
            if facts.is_empty() {
                return Ok(());
            }
            // Recorded for this endpoint; any other endpoint remembering the same box is
            // refused from its next contact on (see `identity_seen`).
            if read_known(conn, &endpoint)?.is_some_and(|k| k.facts == facts) {
                return Ok(());
            }
            conn.exec(
                "DELETE FROM identity_facts WHERE endpoint = ?1",
                params![endpoint],
            )
            .map_err(storage)?;
            store_identity(
                conn,
                &endpoint,
                &facts,
                Some("pin in the configuration"),
                clock.now().wall,
            )
        })
    }

    fn known_identities(&self) -> JournalFuture<'static, Vec<(String, KnownIdentity)>> {
        self.call(move |conn| {
            let endpoints: Vec<String> = conn
                .prepare_cached("SELECT endpoint FROM identities ORDER BY endpoint")
                .and_then(|mut s| {
                    s.query_map([], |r| r.get(0))?
                        .collect::<Result<Vec<String>, _>>()
                })
                .map_err(storage)?;
            let mut out = Vec::new();
            for e in endpoints {
                if let Some(k) = read_known(conn, &e)? {
                    out.push((e, k));
                }
            }
            Ok(out)
        })
    }

    fn share_lock(
        &self,
        host: &str,
        door: crate::proof::Door,
        request_id: &str,
        requester: &str,
    ) -> JournalFuture<'static, ()> {
        let (host, request_id, requester) =
            (host.to_owned(), request_id.to_owned(), requester.to_owned());
        self.call(move |conn| {
            conn.exec(
                "INSERT OR IGNORE INTO host_locks (host, door, request_id, locked_ms, requester)
                 SELECT ?1, ?2, ?3, locked_ms, ?4 FROM host_locks WHERE request_id = ?3 LIMIT 1",
                params![host, door.as_str(), request_id, requester],
            )
            .map_err(storage)?;
            Ok(())
        })
    }

    fn announce(&self, claim: &Claim) -> JournalFuture<'static, ()> {
        let owners = Arc::clone(&self.owners);
        let (id, host) = (claim.request_id.clone(), claim.host.clone());
        // The announcement lives as long as its owner: a crashed announcer counts no more.
        if let Err(e) = owners.claim(&id) {
            return Box::pin(
                async move { Err(storage(format!("cannot lock operation {id}: {e}"))) },
            );
        }
        self.call(move |conn| {
            conn.exec(
                "INSERT OR REPLACE INTO pending_fences (request_id, host) VALUES (?1, ?2)",
                params![id, host],
            )
            .map_err(storage)?;
            Ok(())
        })
    }

    fn lock_identities(
        &self,
        request_id: &str,
        facts: &[IdentityFact],
    ) -> JournalFuture<'static, ()> {
        let request_id = request_id.to_owned();
        let facts = facts.to_vec();
        self.call(move |conn| {
            for f in &facts {
                conn.exec(
                    "INSERT OR IGNORE INTO identity_locks (kind, value, request_id)
                     SELECT ?1, ?2, ?3 WHERE EXISTS
                        (SELECT 1 FROM host_locks WHERE request_id = ?3)",
                    params![f.kind, f.value, request_id],
                )
                .map_err(storage)?;
            }
            Ok(())
        })
    }

    fn identity_locked(&self, facts: &[IdentityFact]) -> JournalFuture<'static, Option<PowerLock>> {
        let facts = facts.to_vec();
        self.call(move |conn| {
            for f in &facts {
                let lock = conn
                    .row(
                        "SELECT h.request_id, h.locked_ms, h.door, h.requester, h.host
                         FROM identity_locks i JOIN host_locks h ON h.request_id = i.request_id
                         WHERE i.kind = ?1 AND i.value = ?2 ORDER BY h.locked_ms LIMIT 1",
                        params![f.kind, f.value],
                        lock_row,
                    )
                    .optional()
                    .map_err(storage)?;
                if lock.is_some() {
                    return Ok(lock);
                }
            }
            Ok(None)
        })
    }

    fn take_abandoned(&self) -> JournalFuture<'static, Vec<Abandoned>> {
        let owners = Arc::clone(&self.owners);
        let clock = Arc::clone(&self.clock);
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT request_id, host, operation, requester, reason, started_ms,
                            lease_until_ms >= ?1
                     FROM operations WHERE finished_ms IS NULL",
                )
                .map_err(storage)?;
            let open = stmt
                .query_map(params![clock.now().wall.millis()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, bool>(6)?,
                    ))
                })
                .map_err(storage)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(storage)?;
            let mut out = Vec::new();
            for (id, host, op, requester, reason, started, young) in open {
                // Only an operation whose owner's lock nobody holds is abandoned; taking its
                // lock makes this process its reconciler, and no other.
                if owners.status(&id, young) == Owner::Alive || !owners.take_over(&id) {
                    continue;
                }
                let mut ev = conn
                    .prepare_cached(
                        "SELECT level, device, driver, endpoint, event FROM events
                         WHERE request_id = ?1 ORDER BY id",
                    )
                    .map_err(storage)?;
                let events = ev
                    .query_map(params![id], |r| {
                        Ok((
                            DeviceMeta {
                                level: r.get::<_, i64>(0)? as usize,
                                device: r.get(1)?,
                                driver: r.get(2)?,
                                endpoint: r.get(3)?,
                            },
                            r.get::<_, String>(4)?,
                        ))
                    })
                    .map_err(storage)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(storage)?
                    .into_iter()
                    .map(|(meta, json)| {
                        serde_json::from_str::<Event>(&json)
                            .map(|e| (meta, e))
                            .map_err(|e| JournalError::Corrupt(id.clone(), e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(Abandoned {
                    operation: Operation::parse(&op).ok_or_else(|| {
                        JournalError::Corrupt(id.clone(), format!("operation {op:?}"))
                    })?,
                    request_id: id,
                    host,
                    requester,
                    reason,
                    started_at: Timestamp(started),
                    events,
                });
            }
            Ok(out)
        })
    }
}
