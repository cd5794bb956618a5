//! Channel and authenticated identity across the external protocol (1.1), in both
//! directions: what a driver declares reaches the capabilities and the identity facts, and
//! an older (1.0) driver that declares nothing gets the safe defaults.

mod common;

use common::*;
use fencegate_driver::{Channel, IdentityFact, PowerState};

#[tokio::test]
async fn a_driver_declaring_an_authenticated_identity_has_it_after_the_first_status() {
    let driver = external(&external_spec(
        &fixture("identity.sh"),
        &[("args", "declared")],
    ));
    assert!(
        !driver.capabilities().authenticated_identity,
        "nothing is assumed before the hello"
    );
    assert_eq!(driver.capabilities().channel, Channel::Other);
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
    let caps = driver.capabilities();
    assert_eq!(caps.channel, Channel::Bmc);
    assert!(caps.authenticated_identity);
    assert_eq!(
        driver.identity(),
        [
            IdentityFact::authenticated("fx-guid", "G-1"),
            IdentityFact::new("fx-ip", "127.0.0.1"),
        ]
    );
}

#[tokio::test]
async fn facts_claimed_authenticated_without_the_declaration_are_not_believed() {
    let driver = external(&external_spec(
        &fixture("identity.sh"),
        &[("args", "undeclared")],
    ));
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
    let caps = driver.capabilities();
    assert_eq!(caps.channel, Channel::Outlet);
    assert!(!caps.authenticated_identity);
    assert!(
        driver.identity().iter().all(|f| !f.authenticated),
        "{:?}",
        driver.identity()
    );
    assert_eq!(driver.identity().len(), 2, "kept as evidence");
}

#[tokio::test]
async fn a_1_0_driver_gets_channel_other_and_no_authenticated_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, _) = scripted(dir.path(), "on", &[]);
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
    let caps = driver.capabilities();
    assert_eq!(caps.channel, Channel::Other);
    assert!(!caps.authenticated_identity);
    assert!(driver.identity().iter().all(|f| !f.authenticated));
    // The fixtures' hello is a bare 1.0 hello too.
    let reply = dir.path().join("configured");
    std::fs::write(&reply, "{\"type\":\"response\",\"id\":0,\"ok\":true}\n").unwrap();
    let args = reply.display().to_string();
    let driver = external(&external_spec(
        &fixture("configure-with.sh"),
        &[("args", args.as_str())],
    ));
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
    assert_eq!(driver.capabilities().channel, Channel::Other);
    assert!(!driver.capabilities().authenticated_identity);
}
