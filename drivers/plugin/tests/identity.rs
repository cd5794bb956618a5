//! Channel and authenticated identity across the plugin boundary, in both directions: what
//! a plugin's hello declares reaches the capabilities and `check`; a plugin built before
//! the fields existed gets the safe defaults; an unknown channel or an isolation channel
//! that claims to read power is refused at load.

mod common;

use common::{in_ms, misbehaving, spec};
use fencegate_driver::{Channel, DriverFactory, IdentityFact, PowerState};
use fencegate_plugin::{LoadProblem, PluginFactory, load};

#[tokio::test]
async fn a_declared_authenticated_identity_is_kept_and_reported() {
    let p = misbehaving(&["-DHELLO_AUTHENTICATED"]);
    let d = PluginFactory
        .build(&spec(&p.path, &[("mode", "identity")]))
        .unwrap();
    assert_eq!(d.capabilities().channel, Channel::Outlet);
    assert!(d.capabilities().authenticated_identity);
    assert_eq!(d.status(in_ms(2000)).await.unwrap(), PowerState::On);
    assert_eq!(
        d.identity(),
        [
            IdentityFact::authenticated("mb-serial", "MB-1"),
            IdentityFact::new("mb-ip", "127.0.0.1"),
        ]
    );
}

#[tokio::test]
async fn an_older_plugin_gets_defaults_and_its_claims_are_not_believed() {
    let p = misbehaving(&[]);
    let d = PluginFactory
        .build(&spec(&p.path, &[("mode", "identity")]))
        .unwrap();
    assert_eq!(d.capabilities().channel, Channel::Other);
    assert!(!d.capabilities().authenticated_identity);
    assert_eq!(d.status(in_ms(2000)).await.unwrap(), PowerState::On);
    let facts = d.identity();
    assert_eq!(facts.len(), 2, "kept as evidence: {facts:?}");
    assert!(facts.iter().all(|f| !f.authenticated), "{facts:?}");
}

#[tokio::test]
async fn check_fails_a_plugin_that_declares_an_identity_it_never_shows() {
    let p = misbehaving(&["-DHELLO_AUTHENTICATED"]);
    let device = spec(&p.path, &[("mode", "ok")]);
    let report = fencegate_plugin::check(&p.path, &device, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!report.passed(), "{report}");
    assert!(
        report
            .to_string()
            .contains("FAIL identity: declares an authenticated identity"),
        "{report}"
    );
}

#[test]
fn an_unknown_channel_or_an_isolation_channel_that_reads_is_refused() {
    let unknown = misbehaving(&["-DHELLO_UNKNOWN_CHANNEL"]);
    assert!(matches!(
        load(&unknown.path).unwrap_err().problem,
        LoadProblem::BadHello(_)
    ));
    let reads = misbehaving(&["-DHELLO_ISOLATION_READS"]);
    let problem = load(&reads.path).unwrap_err().problem;
    assert!(
        matches!(&problem, LoadProblem::BadHello(why) if why.contains("isolation")),
        "{problem}"
    );
}
