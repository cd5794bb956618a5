//! What counts as proof, as two small synchronous rules every path shares: a run of fresh
//! readings ([`ReadingRun`]: K in a row, spanning a hold) and the level rule
//! ([`judge_level`]: every declared reader of a level must prove it). The engine's polling
//! loops and the fence-agents door's `status` feed these rules; none re-derives them.

use crate::proof::{DeviceOutcome, DeviceRecord};
use fencegate_driver::PowerState;
use std::time::Duration;
use tokio::time::Instant;

/// Fresh readings toward a wanted power state: `needed` of them in a row, spanning at least
/// `hold` from when the run's first wanted reading was *answered* to when its latest was
/// *asked* (so a slow answer cannot stretch the span). Anything else breaks the run; for
/// `Off`, an `On` or `PoweringOn` inside a run is power coming back, which ends it for good
/// (an outlet's reboot action or a BMC cycle reads off for a few seconds, then turns on).
#[derive(Debug, Clone)]
pub struct ReadingRun {
    want: PowerState,
    needed: u32,
    hold: Duration,
    run: u32,
    since: Option<Instant>,
    last_asked: Option<Instant>,
}

/// What a reading did to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStep {
    /// The run is complete: `readings` in a row spanning `span`.
    Proven {
        /// How many wanted readings in a row.
        readings: u32,
        /// From the first answer to the last question.
        span: Duration,
    },
    /// Not yet: keep reading.
    Continue,
    /// The opposite state was read inside a run: power came back after `after`.
    Reversed {
        /// What was read.
        state: PowerState,
        /// How long the wanted state had lasted.
        after: Duration,
    },
}

/// One observation fed to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A fresh reading.
    Reading(PowerState),
    /// A transient error: no reading, so the run breaks.
    NoReading,
}

impl ReadingRun {
    /// A run of `needed` readings of `want` spanning `hold` (`needed` of 0 counts as 1: a
    /// proof needs at least one reading).
    pub fn new(want: PowerState, needed: u32, hold: Duration) -> Self {
        ReadingRun {
            want,
            needed: needed.max(1),
            hold,
            run: 0,
            since: None,
            last_asked: None,
        }
    }

    /// The wanted state, already read (asked and answered at `at`): it starts the run.
    pub fn started_at(mut self, at: Instant) -> Self {
        self.run = 1;
        self.since = Some(at);
        self.last_asked = Some(at);
        self
    }

    /// Feed a reading asked at `asked` and answered at `answered`.
    pub fn observe(&mut self, seen: Observation, asked: Instant, answered: Instant) -> RunStep {
        match seen {
            Observation::Reading(state) if state == self.want => {
                self.since.get_or_insert(answered);
                self.last_asked = Some(asked);
                self.run += 1;
            }
            Observation::Reading(state) if self.since.is_some() && self.is_reversal(&state) => {
                let after = answered.saturating_duration_since(self.since.unwrap_or(answered));
                return RunStep::Reversed { state, after };
            }
            Observation::Reading(_) | Observation::NoReading => self.reset(),
        }
        self.proven()
    }

    /// Whether the run is complete now (a pre-read alone may already be, with no hold).
    pub fn proven(&self) -> RunStep {
        match self.span() {
            Some(span) if self.run >= self.needed && span >= self.hold => RunStep::Proven {
                readings: self.run,
                span,
            },
            _ => RunStep::Continue,
        }
    }

    /// Wanted readings in the current run.
    pub fn readings(&self) -> u32 {
        self.run
    }

    /// How many are needed.
    pub fn needed(&self) -> u32 {
        self.needed
    }

    /// The hold the run must span.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// When the current run's first wanted reading was answered.
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// The span so far, from the first answer to the latest question.
    pub fn span(&self) -> Option<Duration> {
        Some(self.last_asked?.saturating_duration_since(self.since?))
    }

    fn reset(&mut self) {
        (self.run, self.since, self.last_asked) = (0, None, None);
    }

    fn is_reversal(&self, state: &PowerState) -> bool {
        self.want == PowerState::Off && matches!(state, PowerState::On | PowerState::PoweringOn)
    }
}

/// How a level of devices ended, in words naming its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelVerdict {
    /// Every declared reader proved off (named).
    VerifiedOff(String),
    /// In-band devices delivered, or readers turned out blind: the host went quiet, power
    /// was not proven off.
    LivenessLost(String),
    /// Every device was an isolation channel that cut the host off.
    Isolated(String),
    /// Nothing was proven; why.
    Failed(String),
}

/// What the level rule needs to know of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged<'a> {
    /// Its name.
    pub device: &'a str,
    /// Whether its driver declared it can read power state (when built).
    pub declared_reader: bool,
    /// Whether it could read power state at first contact.
    pub reads_power_state: bool,
    /// How it ended.
    pub outcome: DeviceOutcome,
    /// Why.
    pub detail: &'a str,
}

impl<'a> From<&'a DeviceRecord> for Judged<'a> {
    fn from(r: &'a DeviceRecord) -> Self {
        Judged {
            device: &r.device,
            declared_reader: r.declared_reader,
            reads_power_state: r.reads_power_state,
            outcome: r.outcome,
            detail: &r.detail,
        }
    }
}

/// A level proves power-off when every device declared a reader verified off and there is
/// at least one such device; devices declared blind (SSH, isolation agents) do not count
/// either way. A declared reader that turned out blind at first contact proves nothing: the
/// level is then liveness lost at best, never verified (both outlets of a dual-PSU host must
/// read off, not one). Without readers, the level is liveness lost or isolated when every
/// device delivered. Devices that ended `Done` (the standby check's BMC reads) are not
/// devices of the level.
pub fn judge_level(devices: &[Judged<'_>]) -> LevelVerdict {
    let names = |rs: &[&Judged<'_>]| rs.iter().map(|r| r.device).collect::<Vec<_>>().join(" + ");
    let why = |rs: &[&Judged<'_>]| {
        rs.iter()
            .map(|r| format!("{}: {}", r.device, r.detail))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let records: Vec<&Judged<'_>> = devices
        .iter()
        .filter(|r| r.outcome != DeviceOutcome::Done)
        .collect();
    let readers: Vec<&Judged<'_>> = records
        .iter()
        .copied()
        .filter(|r| r.declared_reader)
        .collect();
    if !readers.is_empty() {
        let failed: Vec<&Judged<'_>> = readers
            .iter()
            .copied()
            .filter(|r| r.outcome != DeviceOutcome::VerifiedOff)
            .collect();
        if failed.is_empty() {
            return LevelVerdict::VerifiedOff(names(&readers));
        }
        let turned_blind = failed
            .iter()
            .copied()
            .filter(|r| !r.reads_power_state && r.outcome == DeviceOutcome::LivenessLost)
            .collect::<Vec<_>>();
        if turned_blind.len() == failed.len() {
            return LevelVerdict::LivenessLost(format!(
                "{} (declared able to read power, found blind at first contact: nothing proven for {})",
                names(&readers),
                names(&turned_blind)
            ));
        }
        return LevelVerdict::Failed(why(&failed));
    }
    let all =
        |o: &[DeviceOutcome]| !records.is_empty() && records.iter().all(|r| o.contains(&r.outcome));
    if all(&[DeviceOutcome::LivenessLost]) {
        return LevelVerdict::LivenessLost(names(&records));
    }
    if all(&[DeviceOutcome::Isolated]) {
        return LevelVerdict::Isolated(names(&records));
    }
    if all(&[DeviceOutcome::LivenessLost, DeviceOutcome::Isolated]) {
        return LevelVerdict::Failed(format!(
            "{}: in-band and isolation devices together prove neither power-off nor a whole isolation",
            names(&records)
        ));
    }
    LevelVerdict::Failed(why(&records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn k_in_a_row_spanning_the_hold_from_first_answer_to_last_question() {
        let t0 = Instant::now();
        let mut run = ReadingRun::new(PowerState::Off, 2, Duration::from_millis(100));
        let off = || Observation::Reading(PowerState::Off);
        assert_eq!(run.observe(off(), ms(t0, 0), ms(t0, 10)), RunStep::Continue);
        // Two readings, but the second was asked only 80 ms after the first answer.
        assert_eq!(
            run.observe(off(), ms(t0, 90), ms(t0, 300)),
            RunStep::Continue
        );
        assert_eq!(
            run.observe(off(), ms(t0, 110), ms(t0, 120)),
            RunStep::Proven {
                readings: 3,
                span: Duration::from_millis(100)
            }
        );
    }

    #[test]
    fn anything_but_off_breaks_the_run_and_on_inside_it_is_power_back() {
        let t0 = Instant::now();
        let mut run = ReadingRun::new(PowerState::Off, 2, Duration::ZERO);
        let r = |s| Observation::Reading(s);
        run.observe(r(PowerState::Off), t0, t0);
        assert_eq!(
            run.observe(Observation::NoReading, t0, t0),
            RunStep::Continue
        );
        assert_eq!(run.readings(), 0, "an error is no reading");
        run.observe(r(PowerState::Off), t0, t0);
        assert_eq!(
            run.observe(r(PowerState::PoweringOff), t0, t0),
            RunStep::Continue
        );
        assert_eq!(run.readings(), 0, "powering off is not off");
        run.observe(r(PowerState::Off), ms(t0, 5), ms(t0, 5));
        assert!(matches!(
            run.observe(r(PowerState::On), ms(t0, 9), ms(t0, 9)),
            RunStep::Reversed { state: PowerState::On, after } if after == Duration::from_millis(4)
        ));
        // Outside a run, On is just not off yet.
        let mut fresh = ReadingRun::new(PowerState::Off, 1, Duration::ZERO);
        assert_eq!(fresh.observe(r(PowerState::On), t0, t0), RunStep::Continue);
    }

    #[test]
    fn a_pre_read_starts_the_run_and_may_complete_it_without_a_hold() {
        let t0 = Instant::now();
        let run = ReadingRun::new(PowerState::Off, 1, Duration::ZERO).started_at(t0);
        assert!(matches!(run.proven(), RunStep::Proven { readings: 1, .. }));
        let held = ReadingRun::new(PowerState::Off, 1, Duration::from_secs(1)).started_at(t0);
        assert_eq!(held.proven(), RunStep::Continue);
        assert_eq!(
            ReadingRun::new(PowerState::Off, 0, Duration::ZERO).needed(),
            1
        );
    }

    fn dev(name: &str, declared: bool, reads: bool, outcome: DeviceOutcome) -> Judged<'_> {
        Judged {
            device: name,
            declared_reader: declared,
            reads_power_state: reads,
            outcome,
            detail: "why",
        }
    }

    #[test]
    fn every_declared_reader_must_prove_off() {
        use DeviceOutcome::*;
        let both = [
            dev("a", true, true, VerifiedOff),
            dev("b", true, true, VerifiedOff),
        ];
        assert_eq!(
            judge_level(&both),
            LevelVerdict::VerifiedOff("a + b".into())
        );
        let one = [
            dev("a", true, true, VerifiedOff),
            dev("b", true, true, Failed),
        ];
        assert!(matches!(judge_level(&one), LevelVerdict::Failed(_)));
        // A declared reader found blind: liveness at best, never proof.
        let blind = [
            dev("a", true, true, VerifiedOff),
            dev("b", true, false, LivenessLost),
        ];
        assert!(matches!(judge_level(&blind), LevelVerdict::LivenessLost(_)));
        // An in-band device beside a reader does not count either way.
        let ssh = [
            dev("a", true, true, VerifiedOff),
            dev("s", false, false, Failed),
        ];
        assert_eq!(judge_level(&ssh), LevelVerdict::VerifiedOff("a".into()));
    }

    #[test]
    fn without_readers_a_level_proves_liveness_or_isolation_at_most() {
        use DeviceOutcome::*;
        assert!(matches!(
            judge_level(&[dev("s", false, false, LivenessLost)]),
            LevelVerdict::LivenessLost(_)
        ));
        assert!(matches!(
            judge_level(&[dev("i", false, false, Isolated)]),
            LevelVerdict::Isolated(_)
        ));
        assert!(matches!(
            judge_level(&[
                dev("s", false, false, LivenessLost),
                dev("i", false, false, Isolated)
            ]),
            LevelVerdict::Failed(_)
        ));
        assert!(matches!(judge_level(&[]), LevelVerdict::Failed(_)));
        // The standby check's BMC reading is not a device of the level.
        assert!(matches!(
            judge_level(&[dev("bmc", true, true, Done)]),
            LevelVerdict::Failed(_)
        ));
    }
}
