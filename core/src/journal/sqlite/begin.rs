//! Beginning an operation on SQLite: read the guards' facts, let [`guards::decide`] rule,
//! and record what it decided, all in the one immediate transaction the writer holds, so no
//! other process can slip in between the facts and the record.

use super::{Cached, lock_on, storage};
use crate::guards::{self, Decision, Facts, OffProof, OpenOperation, OtherFence};
use crate::journal::owner::{Owner, Owners};
use crate::journal::{Begin, Claim, JournalError};
use crate::proof::{Operation, Proof, Verdict};
use crate::time::Moment;
use rusqlite::{Connection, OptionalExtension, named_params, params};

/// Decide and record `claim` at `now`.
pub(super) fn begin(
    conn: &Connection,
    owners: &Owners,
    claim: &Claim,
    now: &Moment,
) -> Result<Begin, JournalError> {
    let facts = read_facts(conn, owners, claim, now)?;
    match guards::decide(claim, &facts, now) {
        Decision::Join {
            request_id,
            operation,
            target,
        } => Ok(Begin::InFlight {
            request_id,
            operation,
            target,
        }),
        Decision::Locked(lock) => Ok(Begin::Locked(lock)),
        Decision::Refuse { reason } => {
            no_longer_pending(conn, claim)?;
            record_storm_refusal(conn, claim, now, &reason)?;
            Ok(Begin::Refused { reason })
        }
        Decision::Start {
            confirms,
            read_only,
        } => {
            no_longer_pending(conn, claim)?;
            record_start(conn, claim, now, confirms.as_deref())?;
            Ok(Begin::Started {
                confirms,
                read_only,
            })
        }
    }
}

/// What the guards need to know, narrowed by cheap equality and the guards' own window
/// predicate (the SQL function `fg_within`, which is [`Moment::within`]).
fn read_facts(
    conn: &Connection,
    owners: &Owners,
    claim: &Claim,
    now: &Moment,
) -> Result<Facts, JournalError> {
    let mut facts = Facts {
        open: open_operations(conn, owners, claim, now)?,
        ..Facts::default()
    };
    if claim.blocked_by_lock {
        facts.lock = lock_on(conn, &claim.host, &claim.lock_keys)?;
    }
    facts.proofs = off_proofs(conn, claim, now)?;
    facts.last_power_on = conn
        .row(
            "SELECT MAX(rowid) FROM operations
             WHERE host = ?1 AND operation IN ('on', 'reboot', 'unfence')
               AND (verdict IS NULL OR verdict <> 'refused')",
            params![claim.host],
            |r| r.get(0),
        )
        .map_err(storage)?;
    if let Some((limit, window)) = claim.storm
        && limit > 0
    {
        facts.fences = other_fences(conn, claim, now, window)?;
        facts.pending = pending_hosts(conn, owners, claim)?;
    }
    Ok(facts)
}

/// Open records on the host by its name or on any box it reaches, with their owners'
/// liveness.
fn open_operations(
    conn: &Connection,
    owners: &Owners,
    claim: &Claim,
    now: &Moment,
) -> Result<Vec<OpenOperation>, JournalError> {
    let row = |r: &rusqlite::Row<'_>| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
        ))
    };
    let mut rows: Vec<(String, String, String, bool)> = conn
        .prepare_cached(
            "SELECT request_id, operation, target, lease_until_ms >= ?2
             FROM operations WHERE host = ?1 AND finished_ms IS NULL",
        )
        .and_then(|mut s| {
            s.query_map(params![claim.host, now.wall.millis()], row)?
                .collect()
        })
        .map_err(storage)?;
    let mut by_key = conn
        .prepare_cached(
            "SELECT o.request_id, o.operation, o.target, o.lease_until_ms >= ?2
             FROM operations o JOIN op_keys k ON k.request_id = o.request_id
             WHERE k.key = ?1 AND o.finished_ms IS NULL",
        )
        .map_err(storage)?;
    for key in &claim.lock_keys {
        let found: Vec<_> = by_key
            .query_map(params![key, now.wall.millis()], row)
            .and_then(|rows| rows.collect())
            .map_err(storage)?;
        rows.extend(found);
    }
    rows.into_iter()
        .map(|(id, op, target, young)| {
            let operation = Operation::parse(&op)
                .ok_or_else(|| JournalError::Corrupt(id.clone(), format!("operation {op:?}")))?;
            let owner_alive = owners.status(&id, young) == Owner::Alive;
            Ok(OpenOperation {
                request_id: id,
                operation,
                target,
                owner_alive,
            })
        })
        .collect()
}

/// The host's verified-off proofs of this target within the tolerance window, newest first.
fn off_proofs(
    conn: &Connection,
    claim: &Claim,
    now: &Moment,
) -> Result<Vec<OffProof>, JournalError> {
    let rows: Vec<(String, i64, String, String, String, Moment)> = conn
        .prepare_cached(
            "SELECT request_id, rowid, operation, verdict, target,
                    finished_ms, finished_boot, finished_up_ms
             FROM operations
             WHERE host = :host AND verdict = 'power_verified_off' AND target = :target
               AND operation IN ('fence', 'off')
               AND fg_within(finished_ms, finished_boot, finished_up_ms,
                             :now_ms, :now_boot, :now_up, :window)
             ORDER BY rowid DESC LIMIT 16",
        )
        .and_then(|mut s| {
            s.query_map(
                named_params! {
                    ":host": claim.host,
                    ":target": claim.target,
                    ":now_ms": now.wall.millis(),
                    ":now_boot": now.boot,
                    ":now_up": now.up_ms,
                    ":window": millis(claim.tolerance),
                },
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        moment(r, 5)?,
                    ))
                },
            )?
            .collect()
        })
        .map_err(storage)?;
    rows.into_iter()
        .map(|(request_id, seq, op, verdict, target, finished)| {
            let corrupt = |what: String| JournalError::Corrupt(request_id.clone(), what);
            Ok(OffProof {
                operation: Operation::parse(&op)
                    .ok_or_else(|| corrupt(format!("operation {op:?}")))?,
                verdict: Verdict::parse(&verdict)
                    .ok_or_else(|| corrupt(format!("verdict {verdict:?}")))?,
                request_id,
                seq,
                target,
                finished,
            })
        })
        .collect()
}

/// Other hosts' fences begun within the storm window.
fn other_fences(
    conn: &Connection,
    claim: &Claim,
    now: &Moment,
    window: std::time::Duration,
) -> Result<Vec<OtherFence>, JournalError> {
    conn.prepare_cached(
        "SELECT host, started_ms, owner_boot, started_up_ms, verdict, storm_refused,
                confirms <> ''
         FROM operations
         WHERE operation = 'fence' AND host <> :host
           AND fg_within(started_ms, owner_boot, started_up_ms,
                         :now_ms, :now_boot, :now_up, :window)",
    )
    .and_then(|mut s| {
        s.query_map(
            named_params! {
                ":host": claim.host,
                ":now_ms": now.wall.millis(),
                ":now_boot": now.boot,
                ":now_up": now.up_ms,
                ":window": millis(window),
            },
            |r| {
                Ok(OtherFence {
                    host: r.get(0)?,
                    started: moment(r, 1)?,
                    verdict: r
                        .get::<_, Option<String>>(4)?
                        .and_then(|v| Verdict::parse(&v)),
                    storm_refused: r.get(5)?,
                    reconfirmation: r.get(6)?,
                })
            },
        )?
        .collect()
    })
    .map_err(storage)
}

/// Hosts whose fences a live process announced and has not begun. An announcement whose
/// owner died is forgotten here, file and all.
fn pending_hosts(
    conn: &Connection,
    owners: &Owners,
    claim: &Claim,
) -> Result<Vec<String>, JournalError> {
    let pending: Vec<(String, String)> = conn
        .prepare_cached("SELECT request_id, host FROM pending_fences WHERE host <> ?1")
        .and_then(|mut st| {
            st.query_map(params![claim.host], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(storage)?;
    let mut hosts = Vec::new();
    for (id, host) in pending {
        if owners.status(&id, true) == Owner::Alive {
            hosts.push(host);
        } else {
            conn.exec(
                "DELETE FROM pending_fences WHERE request_id = ?1",
                params![id],
            )
            .map_err(storage)?;
            owners.forget(&id);
        }
    }
    Ok(hosts)
}

fn no_longer_pending(conn: &Connection, claim: &Claim) -> Result<(), JournalError> {
    conn.exec(
        "DELETE FROM pending_fences WHERE request_id = ?1",
        params![claim.request_id],
    )
    .map_err(storage)?;
    Ok(())
}

/// Insert the operation's row: open, or already closed with `verdict` and its proof.
fn insert_operation(
    conn: &Connection,
    claim: &Claim,
    now: &Moment,
    closed: Option<(Verdict, String)>,
) -> Result<(), JournalError> {
    let (verdict, proof) = closed.map(|(v, p)| (v.as_str(), p)).unzip();
    conn.exec(
        "INSERT INTO operations (request_id, host, operation, requester, reason,
            started_ms, owner_pid, owner_boot, lease_until_ms, finished_ms, verdict,
            success, proof, target, started_up_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            claim.request_id,
            claim.host,
            claim.operation.as_str(),
            claim.requester,
            claim.reason,
            now.wall.millis(),
            i64::from(std::process::id()),
            now.boot,
            now.wall.millis().saturating_add(millis(claim.lease)),
            verdict.map(|_| now.wall.millis()),
            verdict,
            verdict.map(|_| 0),
            proof,
            claim.target,
            now.up_ms,
        ],
    )
    .map_err(storage)?;
    Ok(())
}

/// The storm guard's refusal, closed at once with its proof: a storm in progress keeps
/// counting.
fn record_storm_refusal(
    conn: &Connection,
    claim: &Claim,
    now: &Moment,
    reason: &str,
) -> Result<(), JournalError> {
    let proof = Proof {
        request_id: claim.request_id.clone(),
        host: claim.host.clone(),
        operation: claim.operation,
        requester: claim.requester.clone(),
        reason: claim.reason.clone(),
        started_at: now.wall,
        finished_at: now.wall,
        verdict: Verdict::Refused,
        success: false,
        detail: reason.to_owned(),
        levels: Vec::new(),
        duration_ms: 0,
        confirms: None,
        target: Some(claim.target.clone()),
        inventory: None,
    };
    let json = serde_json::to_string(&proof).map_err(storage)?;
    insert_operation(conn, claim, now, Some((Verdict::Refused, json)))?;
    conn.exec(
        "UPDATE operations SET storm_refused = 1 WHERE request_id = ?1",
        params![claim.request_id],
    )
    .map_err(storage)?;
    Ok(())
}

/// The open record, the boxes it works on, and (for a fence) its power-on locks.
fn record_start(
    conn: &Connection,
    claim: &Claim,
    now: &Moment,
    confirms: Option<&str>,
) -> Result<(), JournalError> {
    insert_operation(conn, claim, now, None)?;
    if let Some(confirmed) = confirms {
        conn.exec(
            "UPDATE operations SET confirms = ?2 WHERE request_id = ?1",
            params![claim.request_id, confirmed],
        )
        .map_err(storage)?;
    }
    for key in &claim.lock_keys {
        conn.exec(
            "INSERT OR IGNORE INTO op_keys (request_id, key) VALUES (?1, ?2)",
            params![claim.request_id, key],
        )
        .map_err(storage)?;
    }
    if claim.sets_lock {
        set_locks(conn, claim, now)?;
    }
    Ok(())
}

/// A fence's power-on locks: its door's lock on the host and a lock on every box it switches.
fn set_locks(conn: &Connection, claim: &Claim, now: &Moment) -> Result<(), JournalError> {
    for key in &claim.lock_keys {
        conn.exec(
            "INSERT OR IGNORE INTO box_locks (key, request_id) VALUES (?1, ?2)",
            params![key, claim.request_id],
        )
        .map_err(storage)?;
    }
    // The boxes known behind the host's BMCs are locked by identity from the start: a relay
    // reaching one of them must not power it on while this fence still runs.
    for endpoint in &claim.identity_endpoints {
        conn.exec(
            "INSERT OR IGNORE INTO identity_locks (kind, value, request_id)
             SELECT kind, value, ?2 FROM identity_facts WHERE endpoint = ?1",
            params![endpoint, claim.request_id],
        )
        .map_err(storage)?;
    }
    // One lock per door: a fence through one door never replaces (or lets its door lift) a
    // lock another door set. A door's new fence takes over its earlier one's box and
    // identity locks: a failed re-fence must not unlock the boxes the first one proved.
    let earlier: Option<String> = conn
        .row(
            "SELECT request_id FROM host_locks WHERE host = ?1 AND door = ?2",
            params![claim.host, claim.door.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(storage)?;
    if let Some(earlier) = earlier {
        for table in ["box_locks", "identity_locks"] {
            conn.exec(
                &format!("UPDATE OR IGNORE {table} SET request_id = ?2 WHERE request_id = ?1"),
                params![earlier, claim.request_id],
            )
            .map_err(storage)?;
            conn.exec(
                &format!("DELETE FROM {table} WHERE request_id = ?1"),
                params![earlier],
            )
            .map_err(storage)?;
        }
    }
    conn.exec(
        "INSERT INTO host_locks (host, door, request_id, locked_ms, requester)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(host, door) DO UPDATE SET request_id = excluded.request_id,
            locked_ms = excluded.locked_ms, requester = excluded.requester",
        params![
            claim.host,
            claim.door.as_str(),
            claim.request_id,
            now.wall.millis(),
            claim.requester
        ],
    )
    .map_err(storage)?;
    Ok(())
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A [`Moment`] from three columns starting at `i`: wall ms, boot id, boot-clock ms.
fn moment(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Moment> {
    Ok(Moment {
        wall: crate::time::Timestamp(r.get(i)?),
        boot: r.get(i + 1)?,
        up_ms: r.get(i + 2)?,
    })
}

/// Register `fg_within(t_ms, t_boot, t_up, now_ms, now_boot, now_up, window_ms)`: the guards'
/// window rule ([`Moment::within`]) for queries that narrow the facts by time.
pub(super) fn register_window_function(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "fg_within",
        7,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            // A row without a time (a record still open) is never within a window.
            let at = |i: usize| -> rusqlite::Result<Option<Moment>> {
                let Some(wall) = ctx.get::<Option<i64>>(i)? else {
                    return Ok(None);
                };
                Ok(Some(Moment {
                    wall: crate::time::Timestamp(wall),
                    boot: ctx.get::<Option<String>>(i + 1)?.unwrap_or_default(),
                    up_ms: ctx.get::<Option<i64>>(i + 2)?.unwrap_or(-1),
                }))
            };
            let window: i64 = ctx.get(6)?;
            let window = std::time::Duration::from_millis(window.max(0) as u64);
            Ok(match (at(0)?, at(3)?) {
                (Some(t), Some(now)) => t.within(&now, window),
                _ => false,
            })
        },
    )
}
