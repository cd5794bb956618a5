//! Silence, emptiness and defaults never become a reading: a driver program that answers a
//! `status` request with a missing, null, empty, misspelt or ambiguous state, with another
//! request's id, with a blank line, or with nothing at all before closing its output, gives
//! an error, never `Off` (and never `On`).

mod common;

use common::*;
use fencegate_driver::{DriverError, ErrorKind};

/// Run `reply-with.sh`, which answers the first request with `reply` verbatim and then
/// waits (`then = "wait"`) or exits (`then = "exit"`); return the status call's error.
async fn answered_with(reply: &str, then: &str) -> DriverError {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reply");
    std::fs::write(&file, reply).unwrap();
    let args = format!("{} {then}", file.display());
    let driver = external(&external_spec(
        &fixture("reply-with.sh"),
        &[("args", args.as_str())],
    ));
    match driver.status(deadline(1500)).await {
        Ok(state) => panic!("{reply:?} ({then}) became the reading {state}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_status_answer_without_a_usable_state_is_a_protocol_error() {
    for reply in [
        // Missing, null, empty, or not a state word.
        r#"{"type":"response","id":1,"ok":true}"#,
        r#"{"type":"response","id":1,"ok":true,"state":null}"#,
        r#"{"type":"response","id":1,"ok":true,"state":""}"#,
        r#"{"type":"response","id":1,"ok":true,"state":"off"}"#,
        r#"{"type":"response","id":1,"ok":true,"state":"OFF"}"#,
        r#"{"type":"response","id":1,"ok":true,"state":"Off "}"#,
        r#"{"type":"response","id":1,"ok":true,"state":"down"}"#,
        r#"{"type":"response","id":1,"ok":true,"state":0}"#,
        r#"{"type":"response","id":1,"ok":true,"state":false}"#,
        r#"{"type":"response","id":1,"ok":true,"state":["Off"]}"#,
        r#"{"type":"response","id":1,"ok":true,"state":{}}"#,
        r#"{"type":"response","id":1,"ok":true,"state":{"Unknown":null}}"#,
        r#"{"type":"response","id":1,"ok":true,"state":{"Off":1}}"#,
        // Ambiguous: two states, or success and failure at once.
        r#"{"type":"response","id":1,"ok":true,"state":"On","state":"Off"}"#,
        r#"{"type":"response","id":1,"ok":true,"state":"Off","error":{"kind":"busy","detail":"x"}}"#,
        r#"{"type":"response","id":1,"ok":false,"state":"Off"}"#,
        // `ok` missing or not a boolean, the id missing or not a number, no type.
        r#"{"type":"response","id":1,"state":"Off"}"#,
        r#"{"type":"response","id":1,"ok":"true","state":"Off"}"#,
        r#"{"type":"response","ok":true,"state":"Off"}"#,
        r#"{"type":"response","id":"1","ok":true,"state":"Off"}"#,
        r#"{"id":1,"ok":true,"state":"Off"}"#,
        r#"{"type":"progress","type":"response","id":1,"ok":true,"state":"Off"}"#,
        // Another request's id: the configure (0) or a later one.
        r#"{"type":"response","id":0,"ok":true,"state":"Off"}"#,
        r#"{"type":"response","id":2,"ok":true,"state":"Off"}"#,
        // A second hello, trailing bytes, two messages on one line, a bare value.
        r#"{"type":"hello","protocol":"fencegate-driver","version":"1.0","name":"x","reads_power_state":true}"#,
        r#"{"type":"response","id":1,"ok":true,"state":"Off"} x"#,
        r#"{"type":"response","id":1,"ok":true,"state":"Off"}{"type":"response","id":1,"ok":true,"state":"Off"}"#,
        r#""Off""#,
        "null",
        "{}",
    ] {
        let e = answered_with(&format!("{reply}\n"), "wait").await;
        assert_eq!(e.kind, ErrorKind::Protocol, "{reply}: {e}");
    }
}

#[tokio::test]
async fn blank_lines_unknown_messages_and_eof_are_not_readings() {
    for reply in [
        "",
        "\n",
        "\n\n\r\n   \n",
        "{\"type\":\"progress\",\"state\":\"Off\"}\n",
        // A last line without its newline: the writer is gone, the message incomplete.
        r#"{"type":"response","id":1,"ok":true,"state":"Off""#,
    ] {
        let e = answered_with(reply, "exit").await;
        assert_eq!(e.kind, ErrorKind::Unreachable, "{reply:?}: {e}");
        assert!(e.detail.contains("closed its output"), "{reply:?}: {e}");
    }
}

#[tokio::test]
async fn silence_until_the_deadline_is_a_timeout() {
    for reply in ["", "\n", "{\"type\":\"progress\"}\n"] {
        let e = answered_with(reply, "wait").await;
        assert_eq!(e.kind, ErrorKind::Timeout, "{reply:?}: {e}");
    }
}

#[tokio::test]
async fn the_same_fixture_with_a_clean_answer_gives_a_reading() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reply");
    std::fs::write(
        &file,
        "{\"type\":\"response\",\"id\":1,\"ok\":true,\"state\":\"On\"}\n",
    )
    .unwrap();
    let args = format!("{} wait", file.display());
    let driver = external(&external_spec(
        &fixture("reply-with.sh"),
        &[("args", args.as_str())],
    ));
    assert_eq!(
        driver.status(deadline(1500)).await.unwrap(),
        fencegate_driver::PowerState::On
    );
}

/// Run `configure-with.sh`, which answers `configure` with `reply` verbatim; return what
/// the first `status` gave.
async fn configured_with(reply: &str) -> Result<fencegate_driver::PowerState, DriverError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reply");
    std::fs::write(&file, reply).unwrap();
    let args = file.display().to_string();
    external(&external_spec(
        &fixture("configure-with.sh"),
        &[("args", args.as_str())],
    ))
    .status(deadline(1500))
    .await
}

#[tokio::test]
async fn a_configure_answer_must_be_a_clear_yes() {
    assert_eq!(
        configured_with("{\"type\":\"response\",\"id\":0,\"ok\":true}\n").await,
        Ok(fencegate_driver::PowerState::On)
    );
    for (reply, kind) in [
        (
            r#"{"type":"response","id":0,"ok":true,"error":{"kind":"auth","detail":"x"}}"#,
            ErrorKind::Protocol,
        ),
        (
            r#"{"type":"response","id":0,"ok":false}"#,
            ErrorKind::Protocol,
        ),
        (r#"{"type":"response","id":0}"#, ErrorKind::Protocol),
        (
            r#"{"type":"response","id":1,"ok":true}"#,
            ErrorKind::Protocol,
        ),
        ("", ErrorKind::Timeout),
    ] {
        let e = configured_with(&format!("{reply}\n")).await.unwrap_err();
        assert_eq!(e.kind, kind, "{reply}: {e}");
    }
}
