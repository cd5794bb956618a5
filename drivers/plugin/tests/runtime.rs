//! Runtime misbehaviour: whatever a plugin replies, the driver answers with a contract error
//! (`protocol`, `timeout`, `unsupported`), never with a reading it did not give, and the
//! process survives panics and hangs.

mod common;

use common::{acme_plugin, in_ms, misbehaving, spec, with_secret};
use fencegate_driver::{Action, DriverFactory, ErrorKind, PowerDriver, PowerState};
use fencegate_plugin::PluginFactory;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn driver(path: &std::path::Path, mode: &str) -> Arc<dyn PowerDriver> {
    PluginFactory
        .build(&spec(path, &[("mode", mode)]))
        .expect("the fixture loads and configures")
}

#[tokio::test]
async fn a_well_behaved_fixture_reads_and_commands() {
    let p = misbehaving(&[]);
    let d = driver(&p.path, "ok");
    assert_eq!(d.status(in_ms(2000)).await.unwrap(), PowerState::On);
    assert_eq!(
        d.set_power(Action::Off, in_ms(2000)).await.unwrap().detail,
        "done"
    );
    // Declared `teleport` is unknown and ignored; `cycle` is not offered and never sent.
    assert_eq!(d.capabilities().actions, [Action::Off, Action::On]);
    let e = d.set_power(Action::Cycle, in_ms(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert_eq!(d.endpoint(), format!("plugin:{}#node7", p.path.display()));
}

#[tokio::test]
async fn malformed_and_misshapen_replies_are_protocol_errors() {
    let p = misbehaving(&[]);
    for (mode, words) in [
        ("malformed", "not JSON"),
        ("none", "without replying"),
        ("twice", "replied 2 times"),
        ("null", "null pointer"),
        ("huge", "longer than 64 KiB"),
        ("fenced", "Fenced"),
        ("wrong_id", "answers id 999"),
        ("unknown_kind", "fenced"),
        ("empty", "not JSON (0 bytes)"),
        ("no_state", "without a `state`"),
        ("null_state", "without a `state`"),
    ] {
        let d = driver(&p.path, mode);
        let e = d.status(in_ms(2000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol, "{mode}: {e}");
        assert!(e.detail.contains(words), "{mode}: {e}");
        assert!(
            e.detail.contains("plugin `misbehaving` for device `node7`"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_receipt_claiming_a_power_state_is_refused() {
    let p = misbehaving(&[]);
    let d = driver(&p.path, "claim");
    let e = d.set_power(Action::Off, in_ms(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.detail.contains("only carry a receipt"), "{e}");
}

#[tokio::test]
async fn a_passed_deadline_is_a_timeout_without_calling() {
    let p = misbehaving(&[]);
    let d = driver(&p.path, "ok");
    let e = d.status(Instant::now()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
}

#[test]
fn a_hanging_plugin_times_out_at_the_deadline_and_others_keep_working() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let p = misbehaving(&[]);
    runtime.block_on(async {
        /// How long the fixture's `hang` mode sleeps inside the plugin before answering.
        const HANG: Duration = Duration::from_secs(3);
        let hung = driver(&p.path, "hang");
        let start = Instant::now();
        let e = hung.status(in_ms(300)).await.unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
        // Well before the plugin answers: the call was given up at its deadline.
        assert!(
            took >= Duration::from_millis(250) && took < HANG - Duration::from_secs(1),
            "returned after {took:?}, the deadline was 300 ms and the plugin answers after {HANG:?}"
        );
        // Another device of the same library answers while the first is still stuck in the
        // plugin: before that call's sleep ends, though its own deadline would let it wait.
        let other = driver(&p.path, "ok");
        assert_eq!(other.status(in_ms(10_000)).await.unwrap(), PowerState::On);
        assert!(
            start.elapsed() < HANG,
            "answered {:?} after the stuck call began: it waited for it",
            start.elapsed()
        );
        // The stuck device's next call waits for the abandoned one, bounded by its own deadline.
        let e = hung.status(in_ms(200)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
        assert!(e.detail.contains("still inside the plugin"), "{e}");
    });
    // The abandoned thread is still sleeping inside the plugin; do not wait for it.
    runtime.shutdown_background();
}

#[tokio::test]
async fn panics_are_caught_by_the_sdk_and_become_protocol_errors() {
    let acme = acme_plugin();
    let acme_spec = |panic_on: &str| {
        let mut s = with_secret(spec(&acme, &[("panic_on", panic_on)]), "token", "t0ken");
        s.options.insert("target".into(), "127.0.0.1:9".into());
        s
    };
    let d = PluginFactory.build(&acme_spec("status")).unwrap();
    let e = d.status(in_ms(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.detail.contains("panicked in call"), "{e}");

    let d = PluginFactory.build(&acme_spec("set_power")).unwrap();
    let e = d.set_power(Action::Off, in_ms(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");

    let e = PluginFactory.build(&acme_spec("configure")).err().unwrap();
    assert!(e.to_string().contains("panicked in configure"), "{e}");

    // The process and the library are fine: a sane device still works (and fails honestly,
    // since nothing listens on the discard port).
    let mut sane = acme_spec("status");
    sane.options.remove("panic_on");
    let d = PluginFactory.build(&sane).unwrap();
    let e = d.status(in_ms(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
}

#[test]
fn secrets_never_reach_errors_or_debug() {
    let acme = acme_plugin();
    let mut s = with_secret(spec(&acme, &[("bogus", "1")]), "token", "s3cr3t-t0ken");
    s.options.insert("target".into(), "127.0.0.1:9".into());
    let e = PluginFactory.build(&s).err().unwrap();
    assert!(e.to_string().contains("unknown option `bogus`"), "{e}");
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
    s.options.remove("bogus");
    let d = fencegate_plugin::PluginDriver::new(&s).unwrap();
    assert!(!format!("{d:?}").contains("s3cr3t"));
}
