//! What a driver can do, declared up front so the engine can plan without trial and error.

use crate::Action;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What a driver instance can do and how gently its endpoint must be treated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Whether the driver can read power state at all. SSH `poweroff -f` cannot, and so can
    /// never produce proof of power-off: the engine caps its outcome at liveness lost.
    pub reads_power_state: bool,
    /// The actions the driver may be asked for.
    pub actions: Vec<Action>,
    /// Whether commands to one endpoint must be strictly one at a time (most BMCs answer
    /// parallel sessions with "busy"). The engine then serializes all callers per endpoint.
    pub serialize_per_endpoint: bool,
    /// The minimum pause between two commands to the same endpoint (some BMCs drop a command
    /// that arrives right after another).
    pub min_command_interval: Duration,
    /// What kind of channel this is, so the engine knows what an `Off` from it means: a
    /// BMC's `Off` leaves standby power, an outlet's cuts one supply, an isolation agent's
    /// "off" cuts storage or network while the host keeps running.
    #[serde(default)]
    pub channel: Channel,
    /// Whether the driver presents an identity of the endpoint that the endpoint had to
    /// authenticate (see [`IdentityFact::authenticated`]). Without one, fencegate cannot
    /// tell a relay or a re-addressed box from the one configured, and `check` says so.
    #[serde(default)]
    pub authenticated_identity: bool,
    /// How many outlets (power supplies of the host) this device switches: 0 for channels
    /// that are not outlets. `check --probe` compares a PDU level's total with the supplies
    /// the host's BMC reports.
    #[serde(default)]
    pub outlets: u32,
}

impl Capabilities {
    /// A driver that reads state and supports the given actions, one command at a time.
    pub fn readable(actions: &[Action]) -> Self {
        Capabilities {
            reads_power_state: true,
            actions: actions.to_vec(),
            serialize_per_endpoint: true,
            min_command_interval: Duration::ZERO,
            channel: Channel::Other,
            authenticated_identity: false,
            outlets: 0,
        }
    }

    /// Whether `action` is among the supported actions.
    pub fn supports(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }
}

/// What a power channel switches. The engine treats an `Off` from each differently.
///
/// Non-exhaustive: a later contract may name more kinds of channel. Code outside this crate
/// treats a kind it does not know like [`Channel::Other`]: never more trusted than that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Channel {
    /// A baseboard management controller (IPMI, Redfish): its `Off` is the host's main
    /// power; the BMC itself lives on standby power and keeps answering.
    Bmc,
    /// A switched PDU outlet: its `Off` cuts one supply of a host that may have several.
    Outlet,
    /// An in-band command to the host's own operating system (SSH `poweroff -f`): liveness
    /// lost at best, never proof of power.
    InBand,
    /// Cuts the host off storage or network (SCSI reservations, SBD, a switch port): the
    /// host keeps running, so nothing it says is a power reading.
    Isolation,
    /// A power channel of a kind fencegate does not know (plugins, external programs).
    #[default]
    Other,
}

impl Channel {
    /// The kebab-case name used in JSON, the journal and `check`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Bmc => "bmc",
            Channel::Outlet => "outlet",
            Channel::InBand => "in-band",
            Channel::Isolation => "isolation",
            Channel::Other => "other",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fact identifying the physical endpoint that answered (an IPMI device GUID, a TLS
/// certificate fingerprint, a Redfish system UUID). Recorded in the proof so that an audit can
/// tell *which* box said `Off`, not just which address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentityFact {
    /// What kind of fact this is, e.g. `ipmi-guid`, `tls-sha256`, `redfish-uuid`, `ssh-host-key`.
    /// Pins match by suffix (`guid`, `engine-id`, `uuid`, `serial`), so a plugin naming its
    /// fact `acme-serial` can be pinned with `serial = "…"`.
    pub kind: String,
    /// The value as the endpoint presented it.
    pub value: String,
    /// Whether the endpoint had to prove this fact with the credentials (an IPMI GUID inside
    /// RAKP 2's HMAC, an SNMPv3 engine ID in an authenticated message, a Redfish UUID read over
    /// verified TLS). Only authenticated facts are pinned, remembered or compared: anything
    /// else could be forged by whatever sits on the network path.
    #[serde(default)]
    pub authenticated: bool,
}

impl IdentityFact {
    /// An unauthenticated fact of the given kind (evidence only, never compared).
    pub fn new(kind: impl Into<String>, value: impl Into<String>) -> Self {
        IdentityFact {
            kind: kind.into(),
            value: value.into(),
            authenticated: false,
        }
    }

    /// A fact the endpoint proved with the credentials (see [`IdentityFact::authenticated`]).
    pub fn authenticated(kind: impl Into<String>, value: impl Into<String>) -> Self {
        IdentityFact {
            authenticated: true,
            ..Self::new(kind, value)
        }
    }
}

/// What a host does with its power when AC returns (IPMI power restore policy, Redfish
/// `PowerRestorePolicy`). A fenced host set to come back on would undo the fence when an
/// outlet or the mains returns, so fencing sets it to stay off and `unfence` restores it.
///
/// Non-exhaustive: devices know more policies than these three. Code outside this crate
/// treats a policy it does not know as one that may power the host on (anything but
/// [`RestorePolicy::AlwaysOff`]), and a driver asked to set one answers
/// [`crate::ErrorKind::Unsupported`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RestorePolicy {
    /// Stay off when power returns.
    AlwaysOff,
    /// Power on when power returns.
    AlwaysOn,
    /// Return to the state before the loss.
    LastState,
}

impl RestorePolicy {
    /// The kebab-case name used in JSON, the journal and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RestorePolicy::AlwaysOff => "always-off",
            RestorePolicy::AlwaysOn => "always-on",
            RestorePolicy::LastState => "last-state",
        }
    }
}

impl fmt::Display for RestorePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_peers_without_new_fields_still_parse() {
        let caps: Capabilities = serde_json::from_str(
            r#"{"reads_power_state":true,"actions":["off"],"serialize_per_endpoint":true,
               "min_command_interval":{"secs":0,"nanos":0}}"#,
        )
        .unwrap();
        assert_eq!(caps.channel, Channel::Other);
        assert!(!caps.authenticated_identity);
        let fact: IdentityFact = serde_json::from_str(r#"{"kind":"k","value":"v"}"#).unwrap();
        assert!(!fact.authenticated, "a fact is unauthenticated unless said");
    }

    #[test]
    fn a_channel_or_policy_this_build_does_not_know_is_refused_not_guessed() {
        // A plugin declaring a kind of channel this build does not know is refused at its
        // hello rather than trusted as a BMC; an unknown policy is never read as always-off.
        for wire in [r#""pdu""#, r#""Bmc""#, r#""bmc-v2""#] {
            let parsed = serde_json::from_str::<Channel>(wire);
            assert!(parsed.is_err(), "{wire} read as {parsed:?}");
        }
        for wire in [r#""off""#, r#""AlwaysOff""#, r#""always-off-unless-ups""#] {
            let parsed = serde_json::from_str::<RestorePolicy>(wire);
            assert!(parsed.is_err(), "{wire} read as {parsed:?}");
        }
    }
}
