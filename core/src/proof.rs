//! The proof record: what the engine did, what every device said and when, and the verdict.
//!
//! It is the one artefact an operator or auditor needs after a failover: which channel said
//! `Off`, which physical box that channel was (certificate fingerprint, IPMI GUID), how many
//! fresh readings confirmed it, and how long it took.

use crate::time::Timestamp;
use fencegate_driver::{Action, Channel, ErrorKind, IdentityFact, PowerState, RestorePolicy};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// The front door a request came through. A power-on lock remembers it: the door that set a
/// lock may lift it, and the fence-agents door (the cluster manager's) lifts no other door's
/// lock unless the host's policy says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Door {
    /// The command line (an operator).
    #[default]
    Cli,
    /// OpenNebula's host_error hook.
    Opennebula,
    /// The fence-agents protocol (Pacemaker and other cluster managers).
    Agent,
    /// The simulated lab of `fencegate demo`.
    Demo,
}

impl Door {
    /// The kebab-case name used in the journal and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Cli => "cli",
            Door::Opennebula => "opennebula",
            Door::Agent => "agent",
            Door::Demo => "demo",
        }
    }

    /// Parse the name printed by [`Door::as_str`]; anything else (a lock recorded before
    /// doors were) is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cli" => Door::Cli,
            "opennebula" => Door::Opennebula,
            "agent" => Door::Agent,
            "demo" => Door::Demo,
            _ => return None,
        })
    }
}

/// The kind of operation a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Fence: verified power-off with guards, ending in a power-on lock.
    Fence,
    /// Verified power-off asked by an operator (no storm guard, no lock).
    Off,
    /// Power on (refused while the host is locked).
    On,
    /// Verified power-off, then on.
    Reboot,
    /// Lift the power-on lock of a fenced host.
    Unfence,
    /// Accept the identity a host's endpoints present now (after a BMC board swap), replacing
    /// the one remembered at first use.
    Trust,
}

impl Operation {
    /// The lowercase name used in JSON, the journal and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Fence => "fence",
            Operation::Off => "off",
            Operation::On => "on",
            Operation::Reboot => "reboot",
            Operation::Unfence => "unfence",
            Operation::Trust => "trust",
        }
    }

    /// Parse the name printed by [`Operation::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fence" => Operation::Fence,
            "off" => Operation::Off,
            "on" => Operation::On,
            "reboot" => Operation::Reboot,
            "unfence" => Operation::Unfence,
            "trust" => Operation::Trust,
            _ => return None,
        })
    }
}

/// The verdict of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A power channel was asked to power off and fresh readings proved it off.
    PowerVerifiedOff,
    /// An in-band power-off was delivered and the host went quiet; power was not proven off.
    LivenessLost,
    /// An isolation agent cut the host off storage or network; the host may still run.
    Isolated,
    /// Power-on (or another non-fencing action) was carried out and read back.
    Done,
    /// Nothing was proven. The reason says why.
    Failed,
    /// A guard refused the operation before any command was sent.
    Refused,
}

impl Verdict {
    /// The snake_case name used in JSON and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::PowerVerifiedOff => "power_verified_off",
            Verdict::LivenessLost => "liveness_lost",
            Verdict::Isolated => "isolated",
            Verdict::Done => "done",
            Verdict::Failed => "failed",
            Verdict::Refused => "refused",
        }
    }

    /// Parse the name printed by [`Verdict::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Verdict::PowerVerifiedOff,
            Verdict::LivenessLost,
            Verdict::Isolated,
            Verdict::Done,
            Verdict::Failed,
            Verdict::Refused,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened while working a device, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A fresh power reading.
    Reading {
        /// When it was answered.
        at: Timestamp,
        /// What the device said.
        state: PowerState,
    },
    /// A command is about to be sent (journaled durably before it goes out).
    CommandIntent {
        /// When.
        at: Timestamp,
        /// Which command.
        action: Action,
    },
    /// The device accepted a command (evidence, not proof).
    CommandAccepted {
        /// When.
        at: Timestamp,
        /// Which command.
        action: Action,
        /// The device's words.
        detail: String,
    },
    /// A call failed.
    Error {
        /// When.
        at: Timestamp,
        /// What was being done (`status`, `off`, …).
        call: String,
        /// The taxonomy class.
        kind: ErrorKind,
        /// The driver's message (never a secret).
        detail: String,
    },
    /// The host's power restore policy was read and set to stay off (a fence), or put back
    /// (`unfence`).
    RestorePolicy {
        /// When.
        at: Timestamp,
        /// The policy read before the change, if it could be read.
        previous: Option<RestorePolicy>,
        /// The policy asked for.
        set: RestorePolicy,
        /// Whether the device accepted it.
        accepted: bool,
        /// The device's words (or why not).
        detail: String,
    },
    /// Anything else worth knowing (a retry, a skipped command, a reconciliation).
    Note {
        /// When.
        at: Timestamp,
        /// What.
        text: String,
    },
}

/// How one device's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceOutcome {
    /// K consecutive fresh `Off` readings (after the command, or before it if already off).
    VerifiedOff,
    /// The command was delivered by a driver that cannot read power state.
    LivenessLost,
    /// An isolation agent reported the host cut off storage or network (not a power state).
    Isolated,
    /// The requested non-fencing action was carried out and read back.
    Done,
    /// Nothing proven.
    Failed,
}

/// Everything about one device within one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The device's name in the inventory (or its URL for ad-hoc devices).
    pub device: String,
    /// The driver name.
    pub driver: String,
    /// The management endpoint.
    pub endpoint: String,
    /// Identity facts the endpoint presented.
    pub identity: Vec<IdentityFact>,
    /// Whether this device can read power state (and so can prove anything).
    pub reads_power_state: bool,
    /// Whether the driver declared itself a reader when it was built. A declared reader that
    /// turned out blind fails its level's proof (unless liveness loss is accepted).
    #[serde(default)]
    pub declared_reader: bool,
    /// What kind of channel the device is.
    #[serde(default)]
    pub channel: Channel,
    /// How long the confirming `Off` readings spanned (monotonic clock), when they proved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_held_ms: Option<u64>,
    /// Every reading, command and error, in order.
    pub events: Vec<Event>,
    /// How the attempt ended.
    pub outcome: DeviceOutcome,
    /// Why, in one sentence.
    pub detail: String,
    /// Wall time spent on this device.
    pub duration_ms: u64,
}

impl DeviceRecord {
    /// Whether the channel these readings came over was authenticated: the endpoint proved
    /// at least one identity fact with the credentials (an IPMI GUID in RAKP 2, an SNMPv3
    /// engine ID, a Redfish UUID over verified TLS), so the answers came from the box that
    /// holds them. Without one (SNMP v1/v2c, whose community travels in clear and whose
    /// answers carry no MAC; Redfish with `insecure` TLS; a program that proves nothing)
    /// anyone on the network path could have answered `Off`. Derived from the recorded
    /// facts, so the engine needs no knowledge of any protocol and older records answer too.
    pub fn readings_authenticated(&self) -> bool {
        self.identity.iter().any(|f| f.authenticated)
    }

    /// The readings of this record, in order.
    pub fn readings(&self) -> impl Iterator<Item = &PowerState> {
        self.events.iter().filter_map(|e| match e {
            Event::Reading { state, .. } => Some(state),
            _ => None,
        })
    }
}

/// One topology level as it was tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelRecord {
    /// 1-based level number.
    pub level: usize,
    /// The devices of the level, all of which had to verify.
    pub devices: Vec<DeviceRecord>,
}

/// The durable record of one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proof {
    /// Unique id of the operation.
    pub request_id: String,
    /// The host concerned.
    pub host: String,
    /// What was asked.
    pub operation: Operation,
    /// Who asked (user, front door).
    pub requester: String,
    /// Why (free text from the caller).
    pub reason: String,
    /// When the operation began.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Timestamp,
    /// The verdict.
    pub verdict: Verdict,
    /// Whether the verdict counts as success for this host's policy (exit 0).
    pub success: bool,
    /// One sentence saying why.
    pub detail: String,
    /// The levels tried, in order.
    pub levels: Vec<LevelRecord>,
    /// Wall time of the whole operation.
    pub duration_ms: u64,
    /// Set when this operation re-confirmed an earlier proof within the tolerance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirms: Option<String>,
    /// The digest of what the proof rests on (the host's devices by what they reach, and the
    /// proof-relevant policy): only requests for the same target share a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The digest of the inventory text the host came from (none for ad-hoc devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<String>,
}

impl Proof {
    /// The devices whose fresh readings carry a `power_verified_off` verdict (none for any
    /// other verdict: a reconciled or failed record proves nothing, whatever it re-read).
    pub fn proving_devices(&self) -> Vec<&DeviceRecord> {
        if self.verdict != Verdict::PowerVerifiedOff {
            return Vec::new();
        }
        self.levels
            .iter()
            .flat_map(|l| &l.devices)
            .filter(|d| d.outcome == DeviceOutcome::VerifiedOff)
            .collect()
    }

    /// A one-line summary (for host_error.log and terminal output). Host and device names,
    /// and the detail (which quotes what drivers and devices said), pass through
    /// [`printable`], so nothing they contain can end the line and forge another verdict.
    pub fn one_line(&self) -> String {
        let by: Vec<String> = self
            .proving_devices()
            .iter()
            .map(|d| {
                let n = d.readings().filter(|s| s.is_off()).count();
                let held = d
                    .off_held_ms
                    .map(|ms| format!(", off held {}.{} s", ms / 1000, (ms % 1000) / 100))
                    .unwrap_or_default();
                let forgeable = if d.readings_authenticated() {
                    ""
                } else {
                    ", readings not authenticated"
                };
                format!(
                    "{} ({n} off readings{held}{forgeable})",
                    printable(&d.device)
                )
            })
            .collect();
        let by = if by.is_empty() {
            String::new()
        } else {
            format!(" by {}", by.join(", "))
        };
        format!(
            "fencegate: {} {}: {}{by} in {} ms: {} [request {}]",
            self.operation.as_str(),
            printable(&self.host),
            self.verdict,
            self.duration_ms,
            printable(&self.detail),
            printable(&self.request_id)
        )
    }
}

/// `text` made safe to print as part of one line of human output (the verdict line, a
/// table, a log message): control characters (C0, DEL, C1), the Unicode line and paragraph
/// separators and the bidirectional formatting characters are escaped as Rust escapes them
/// (`\n`, `\u{2028}`, `\u{202e}`); everything else, quotes and non-ASCII letters included,
/// is kept. Names come from the inventory or a front door's input, details from devices
/// and driver programs: without this, a newline in any of them forges a second verdict
/// line in host_error.log or a cluster log, and an override reorders what a terminal shows.
/// JSON output needs none of it (JSON escapes control characters itself).
pub fn printable(text: &str) -> Cow<'_, str> {
    fn hides(c: char) -> bool {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' // line and paragraph separators
                    | '\u{061c}' | '\u{200e}' | '\u{200f}' // bidi marks
                    | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
                    | '\u{2066}'..='\u{2069}' // bidi isolates
            )
    }
    if !text.chars().any(hides) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hides(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn record(outcome: DeviceOutcome) -> DeviceRecord {
        DeviceRecord {
            device: "bmc".into(),
            driver: "ipmi".into(),
            endpoint: "ipmi://127.0.0.1:623".into(),
            identity: Vec::new(),
            reads_power_state: true,
            declared_reader: true,
            channel: Channel::Bmc,
            off_held_ms: None,
            events: vec![
                Event::Reading {
                    at: Timestamp(1),
                    state: PowerState::Off,
                },
                Event::Reading {
                    at: Timestamp(2),
                    state: PowerState::Off,
                },
            ],
            outcome,
            detail: String::new(),
            duration_ms: 1,
        }
    }

    fn proof(verdict: Verdict) -> Proof {
        Proof {
            request_id: "r".into(),
            host: "h".into(),
            operation: Operation::Fence,
            requester: "t".into(),
            reason: String::new(),
            started_at: Timestamp(0),
            finished_at: Timestamp(3),
            verdict,
            success: verdict == Verdict::PowerVerifiedOff,
            detail: "d".into(),
            levels: vec![LevelRecord {
                level: 1,
                devices: vec![record(DeviceOutcome::VerifiedOff)],
            }],
            duration_ms: 3,
            confirms: None,
            target: None,
            inventory: None,
        }
    }

    /// Everything a device, a driver or an inventory says that reaches the verdict line.
    const FORGED: &str = "x\nfencegate: fence h: power_verified_off by bmc [request forged]";

    #[test]
    fn the_verdict_line_cannot_be_forged_by_names_or_driver_words() {
        let mut p = proof(Verdict::PowerVerifiedOff);
        p.host = format!("h{FORGED}\r\u{85}\u{2028}\u{2029}");
        p.detail = format!("d{FORGED}\u{1b}[2K\u{7f}\u{202e}\u{2066}\u{200f}\u{61c}");
        p.levels[0].devices[0].device = format!("bmc{FORGED}");
        let line = p.one_line();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(
            !line.chars().any(|c| c.is_control() || shown_escapes(c)),
            "{line:?}"
        );
        assert!(
            line.contains("\\nfencegate: fence h"),
            "escaped, still legible: {line}"
        );
    }

    fn shown_escapes(c: char) -> bool {
        matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
    }

    #[test]
    fn printable_escapes_only_what_can_forge_or_hide_text() {
        assert_eq!(printable("kvm01 \"é\" 10\\20 ü"), "kvm01 \"é\" 10\\20 ü");
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(printable("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(
            printable("\u{0}\u{1b}\u{7f}\u{85}\u{9f}"),
            "\\0\\u{1b}\\u{7f}\\u{85}\\u{9f}"
        );
        assert_eq!(
            printable("\u{2028}\u{2029}\u{202e}\u{2067}"),
            "\\u{2028}\\u{2029}\\u{202e}\\u{2067}"
        );
    }

    #[test]
    fn unauthenticated_readings_are_said_in_the_verdict_line() {
        let mut p = proof(Verdict::PowerVerifiedOff);
        let d = &mut p.levels[0].devices[0];
        d.identity = vec![
            IdentityFact::new("snmp-sysname", "pdu-a"),
            IdentityFact::new("tls", "insecure"),
        ];
        assert!(!d.readings_authenticated());
        let line = p.one_line();
        assert!(
            line.contains("by bmc (2 off readings, readings not authenticated)"),
            "{line}"
        );
        p.levels[0].devices[0]
            .identity
            .push(IdentityFact::authenticated("ipmi-guid", "00112233"));
        assert!(p.levels[0].devices[0].readings_authenticated());
        assert!(!p.one_line().contains("not authenticated"));
    }

    #[test]
    fn only_a_verified_verdict_names_proving_devices() {
        let mut p = proof(Verdict::PowerVerifiedOff);
        p.levels[0].devices[0].identity = vec![IdentityFact::authenticated("ipmi-guid", "0011")];
        assert!(p.one_line().contains("by bmc (2 off readings)"));
        let failed = proof(Verdict::Failed).one_line();
        assert!(!failed.contains(" by "), "{failed}");
    }
}
