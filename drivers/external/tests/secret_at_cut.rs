//! A secret that straddles the point where a driver's or an agent's words are cut to length
//! never shows, not even its prefix: every cut masks first, then masks a partial secret left
//! at the cut.

mod common;

use common::*;
use fencegate_driver::{Action, DeviceSpec, DriverFactory, ErrorKind, SecretString};
use fencegate_external::FenceAgentFactory;

const SECRET: &str = "Qz7-Straddle-Pw-91";

/// No prefix of four or more characters of the secret is in `text`.
fn assert_no_part_of_secret(text: &str) {
    for n in 4..=SECRET.len() {
        assert!(
            !text.contains(&SECRET[..n]),
            "{n} characters of the secret leaked: {text}"
        );
    }
}

async fn external_error(how: &str, first_call: bool) -> String {
    let spec = with_secret(
        external_spec(&fixture("secret-at-cut.sh"), &[]),
        "password",
        SECRET,
    );
    let mut spec = spec;
    spec.options.insert("args".into(), how.into());
    let driver = external(&spec);
    let e = driver.status(deadline(10_000)).await.unwrap_err();
    if first_call {
        assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    }
    e.to_string()
}

#[tokio::test]
async fn a_refused_configuration_is_masked_before_it_is_cut() {
    let e = external_error("refuse", true).await;
    assert!(e.contains("refused its configuration: xxxx"), "{e}");
    assert_no_part_of_secret(&e);
}

#[tokio::test]
async fn a_long_stderr_line_is_masked_at_the_cut() {
    let e = external_error("stderr", false).await;
    assert!(e.contains("stderr: xxxx"), "{e}");
    assert!(
        e.contains("[redacted]"),
        "the partial secret is masked: {e}"
    );
    assert_no_part_of_secret(&e);
}

#[tokio::test]
async fn an_error_reply_is_masked_before_it_is_cut() {
    let e = external_error("error", true).await;
    assert_no_part_of_secret(&e);
}

fn agent(how: &str, pad: usize) -> std::sync::Arc<dyn fencegate_driver::PowerDriver> {
    let mut spec = DeviceSpec {
        name: "cut".into(),
        driver: "fence-agent".into(),
        address: fixture("fake-agent-secret-at-cut.sh")
            .to_string_lossy()
            .into_owned(),
        ..Default::default()
    };
    spec.options.insert("how".into(), how.into());
    spec.options.insert("pad".into(), pad.to_string());
    spec.secrets
        .insert("password".into(), SecretString::from(SECRET));
    FenceAgentFactory::new().build(&spec).expect("valid spec")
}

#[tokio::test]
async fn an_agents_error_message_is_masked_before_it_is_cut() {
    // `ERROR: ` then 194 bytes then the secret: the 200-byte quote ends inside it.
    let e = agent("error", 194)
        .set_power(Action::Off, deadline(10_000))
        .await
        .unwrap_err();
    assert!(e.detail.contains("xxxx"), "{e}");
    assert_no_part_of_secret(&e.to_string());
}

#[tokio::test]
async fn an_agents_long_stderr_line_is_masked_at_the_cut() {
    // 494 bytes then the secret: the 500-byte line kept ends inside it.
    let e = agent("hang", 494)
        .set_power(Action::Off, deadline(2_000))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.detail.contains("last stderr line: xxxx"), "{e}");
    assert_no_part_of_secret(&e.to_string());
}
