//! The journal file under concurrent first use, and replaced or deleted under a running
//! process.

use fencegate_core::SqliteJournal;
use std::sync::{Arc, Barrier};

/// Many processes (here: connections on threads) opening a journal that does not exist yet,
/// at the same instant: every one must succeed (no "database is locked").
#[test]
fn first_use_by_many_at_once_is_race_free() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let n = 12;
        let barrier = Arc::new(Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (dir, barrier) = (dir.path().to_owned(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteJournal::open(&dir).map(|_| ())
                })
            })
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            assert!(r.is_ok(), "round {round}: {:?}", r.err());
        }
    }
}

mod support;

use fencegate_core::{Engine, EngineError, Policy, Request};
use fencegate_driver::PowerState;
use std::time::Duration;
use support::scripted::{Scripted, Step, now};

fn slow_bmc() -> Arc<Scripted> {
    Scripted::new(
        "bmc",
        vec![
            now(PowerState::On),
            Step::Answer(PowerState::Off, Duration::from_millis(400)),
        ],
        vec![now(())],
    )
}

fn policy() -> Policy {
    Policy {
        attempt_timeout: Duration::from_secs(3),
        overall_timeout: Duration::from_secs(5),
        off_hold: Duration::ZERO,
        storm_limit: 0,
        ..Policy::default()
    }
}

/// The journal is deleted (or replaced) while a fence runs: the fence's lock now lives in a
/// file nobody else sees, so the fence must not be reported, and the loss is said loudly.
#[tokio::test]
async fn a_journal_deleted_mid_fence_fails_loudly() {
    for replace in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
        let bmc = slow_bmc();
        let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
        let fence = tokio::spawn({
            let engine = engine.clone();
            async move { engine.fence(host, Request::default()).await }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let file = dir.path().join(SqliteJournal::FILE_NAME);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
        if replace {
            std::fs::write(&file, b"").unwrap();
        }
        match fence.await.unwrap() {
            Err(EngineError::Journal(e)) => {
                assert!(e.to_string().contains("deleted or replaced"), "{e}")
            }
            Ok(p) => panic!("reported {:?} on a lost journal: {}", p.verdict, p.detail),
            Err(e) => panic!("{e}"),
        }
    }
}
