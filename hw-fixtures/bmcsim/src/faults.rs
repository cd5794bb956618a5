//! What can go wrong with a simulated BMC, independent of the protocol that reaches it.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The fault profile of one simulated BMC. The default is a healthy, instant BMC.
///
/// Fields are plain numbers so the same struct is the JSON of the binary's control protocol.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultProfile {
    /// A power command takes effect only this long after it was accepted (the relay is
    /// slow); until then the old state is reported.
    pub off_delay_ms: u64,
    /// Power commands are acknowledged and ignored (a stuck relay): verification must fail.
    pub stuck: bool,
    /// Fraction (0.0–1.0) of datagrams dropped, each direction drawn separately.
    pub drop_rate: f64,
    /// Seed of the drop decisions, so a lossy run is reproducible.
    pub drop_seed: u64,
    /// Every reply is sent this long after the request arrived.
    pub reply_delay_ms: u64,
    /// At most this many sessions at once; further Open Session requests are answered with
    /// "insufficient resources". `None` means the BMC's built-in limit (32).
    pub max_sessions: Option<usize>,
    /// The BMC never answers anything (powered-off management controller, cut cable).
    pub dead: bool,
    /// After a commanded power-off takes effect, the power comes back on this long later
    /// without being asked: what a PDU outlet's "reboot" action, a BMC that turns an off
    /// into a cycle or reset, or a restore policy of "always on" looks like from outside.
    /// A fencer that reads `Off` once and stops would report a host off that is running
    /// again. `None`: power stays off.
    pub power_returns_after_ms: Option<u64>,
}

impl FaultProfile {
    /// The off delay as a duration.
    pub fn off_delay(&self) -> Duration {
        Duration::from_millis(self.off_delay_ms)
    }

    /// The reply delay as a duration.
    pub fn reply_delay(&self) -> Duration {
        Duration::from_millis(self.reply_delay_ms)
    }

    /// How long after a commanded power-off the power comes back, if it does.
    pub fn power_returns_after(&self) -> Option<Duration> {
        self.power_returns_after_ms.map(Duration::from_millis)
    }
}
