//! Property tests of the engine over random fault schedules: whatever the devices do
//! (delays, transitional and unknown readings, flapping, 409s, busy, timeouts, hangs), no
//! operation reports power verified off without K fresh Off readings after the command,
//! every operation ends within its deadline, concurrent callers share one operation, and a
//! proof's Off readings, by the device's own clock, span the hold.

mod support;

use fencegate_core::{Policy, Request, Verdict};
use fencegate_driver::{ErrorKind, PowerState};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use support::journal::inline_engine;
use support::scripted::{Logged, Scripted, Step};

fn delay() -> impl Strategy<Value = Duration> {
    (0u64..8).prop_map(|n| Duration::from_millis(n * 50))
}

fn power_state() -> impl Strategy<Value = PowerState> {
    prop_oneof![
        3 => Just(PowerState::Off),
        2 => Just(PowerState::On),
        1 => Just(PowerState::PoweringOff),
        1 => Just(PowerState::PoweringOn),
        1 => Just(PowerState::Unknown("Reset".into())),
    ]
}

fn read_step() -> impl Strategy<Value = Step<PowerState>> {
    prop_oneof![
        8 => (power_state(), delay()).prop_map(|(s, d)| Step::Answer(s, d)),
        2 => (prop_oneof![
                Just(ErrorKind::Busy),
                Just(ErrorKind::Unreachable),
                Just(ErrorKind::Timeout),
                Just(ErrorKind::Protocol),
                Just(ErrorKind::Auth),
            ], delay()).prop_map(|(k, d)| Step::Fail(k, d)),
        1 => Just(Step::Hang),
    ]
}

fn command_step() -> impl Strategy<Value = Step<()>> {
    prop_oneof![
        6 => delay().prop_map(|d| Step::Answer((), d)),
        3 => (prop_oneof![
                Just(ErrorKind::StateConflict),
                Just(ErrorKind::Busy),
                Just(ErrorKind::Unreachable),
                Just(ErrorKind::Timeout),
                Just(ErrorKind::Auth),
                Just(ErrorKind::Unsupported),
            ], delay()).prop_map(|(k, d)| Step::Fail(k, d)),
        1 => Just(Step::Hang),
    ]
}

#[derive(Debug, Clone)]
struct DeviceScript {
    blind: bool,
    reads: Vec<Step<PowerState>>,
    commands: Vec<Step<()>>,
}

fn device_script() -> impl Strategy<Value = DeviceScript> {
    (
        prop::bool::weighted(0.1),
        prop::collection::vec(read_step(), 1..12),
        prop::collection::vec(command_step(), 1..4),
    )
        .prop_map(|(blind, reads, commands)| DeviceScript {
            blind,
            reads,
            commands,
        })
}

#[derive(Debug, Clone)]
struct Scenario {
    levels: Vec<Vec<DeviceScript>>,
    confirmations: u32,
    attempt_ms: u64,
    retries: u32,
    accept_liveness_loss: bool,
    callers: usize,
    hold_ms: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(prop::collection::vec(device_script(), 1..3), 1..3),
        1u32..4,
        prop_oneof![Just(500u64), Just(1500), Just(3000)],
        0u32..4,
        any::<bool>(),
        1usize..4,
        prop_oneof![Just(0u64), Just(100), Just(400)],
    )
        .prop_map(
            |(
                levels,
                confirmations,
                attempt_ms,
                retries,
                accept_liveness_loss,
                callers,
                hold_ms,
            )| {
                Scenario {
                    levels,
                    confirmations,
                    attempt_ms,
                    retries,
                    accept_liveness_loss,
                    callers,
                    hold_ms,
                }
            },
        )
}

/// By the device's own clock, its trailing run of Off readings spans at least `hold`.
fn off_held(reads: &[(tokio::time::Instant, PowerState)], hold: Duration) -> bool {
    let run: Vec<_> = reads
        .iter()
        .rev()
        .take_while(|(_, s)| *s == PowerState::Off)
        .collect();
    match (run.last(), run.first()) {
        (Some(first), Some(last)) => last.0 - first.0 >= hold,
        _ => false,
    }
}

/// The last `k` things the driver did were `k` fresh Off readings.
fn ends_with_k_off(log: &[Logged], k: u32) -> bool {
    let k = k as usize;
    log.len() >= k
        && log[log.len() - k..]
            .iter()
            .all(|l| *l == Logged::Read(PowerState::Off))
}

fn run(s: Scenario) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let policy = Policy {
            attempt_timeout: Duration::from_millis(s.attempt_ms),
            overall_timeout: Duration::from_millis(s.attempt_ms * s.levels.len() as u64 + 500),
            confirmations: s.confirmations,
            retries: s.retries,
            accept_liveness_loss: s.accept_liveness_loss,
            storm_limit: 0,
            off_hold: Duration::from_millis(s.hold_ms),
            ..Policy::default()
        };
        let mut drivers = Vec::new();
        let mut levels = Vec::new();
        for (li, level) in s.levels.iter().enumerate() {
            let mut devs = Vec::new();
            for (di, d) in level.iter().enumerate() {
                let endpoint = format!("scripted://l{li}d{di}");
                let driver = if d.blind {
                    Scripted::blind(&endpoint, d.commands.clone())
                } else {
                    Scripted::new(&endpoint, d.reads.clone(), d.commands.clone())
                };
                devs.push(driver.device(&format!("l{li}d{di}")));
                drivers.push((li, d.blind, driver));
            }
            levels.push(devs);
        }
        let host = support::host("node1", levels, policy.clone());
        let engine = inline_engine();
        let t0 = tokio::time::Instant::now();
        let mut calls = Vec::new();
        for _ in 0..s.callers {
            let engine = engine.clone();
            let host = Arc::clone(&host);
            calls.push(tokio::spawn(async move {
                engine
                    .fence(
                        host,
                        Request {
                            requester: "prop".into(),
                            ..Request::default()
                        },
                    )
                    .await
            }));
        }
        let mut proofs = Vec::new();
        for c in calls {
            proofs.push(c.await.unwrap().unwrap());
        }
        let elapsed = t0.elapsed();

        // Every operation ends within its overall deadline.
        prop_assert!(
            elapsed <= policy.overall_timeout + Duration::from_millis(1),
            "took {elapsed:?}"
        );
        // Concurrent callers share one operation and its result.
        prop_assert_eq!(engine.operations_for("node1"), 1);
        for p in &proofs {
            prop_assert_eq!(&p.request_id, &proofs[0].request_id);
        }
        let proof = &proofs[0];

        if proof.verdict == Verdict::PowerVerifiedOff {
            prop_assert!(proof.success);
            // Some level's every reading device really answered K fresh Offs last.
            let proven = (0..s.levels.len()).any(|li| {
                let readers: Vec<_> = drivers
                    .iter()
                    .filter(|(l, blind, _)| *l == li && !blind)
                    .collect();
                !readers.is_empty()
                    && readers.iter().all(|(_, _, d)| {
                        ends_with_k_off(&d.log(), s.confirmations)
                            && off_held(&d.reads_at(), policy.off_hold)
                    })
            });
            prop_assert!(
                proven,
                "verified off without K fresh Off readings: {proof:#?}"
            );
        }
        if proof.verdict == Verdict::LivenessLost {
            prop_assert_eq!(proof.success, s.accept_liveness_loss);
        }
        if matches!(proof.verdict, Verdict::Failed) {
            prop_assert!(!proof.success);
        }
        // The record agrees with what the devices said.
        for level in &proof.levels {
            for d in &level.devices {
                if d.outcome == fencegate_core::DeviceOutcome::VerifiedOff {
                    let readings: Vec<_> = d.readings().collect();
                    let k = s.confirmations as usize;
                    prop_assert!(
                        readings.len() >= k
                            && readings[readings.len() - k..].iter().all(|r| r.is_off())
                    );
                }
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn never_verified_without_fresh_off_readings(s in scenario()) {
        run(s)?;
    }
}
