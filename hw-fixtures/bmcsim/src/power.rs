//! The emulator-side truth about a simulated host's power, shared by all protocol front ends.

use crate::faults::FaultProfile;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a power cycle keeps the power off before switching it back on.
pub const CYCLE_OFF_TIME: Duration = Duration::from_secs(1);

/// A power command as a protocol front end understood it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerCommand {
    /// Hard power off.
    Off,
    /// Power on.
    On,
    /// Off, then on again after [`CYCLE_OFF_TIME`].
    Cycle,
    /// Hard reset (the power stays on).
    Reset,
    /// Soft (ACPI) shutdown; the simulated OS always cooperates.
    SoftOff,
}

/// What the power model did with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// The state changed (or already was as asked) at once.
    Applied,
    /// The change is scheduled after the off delay.
    Pending,
    /// The relay is stuck: acknowledged, nothing happens.
    Ignored,
}

/// One power command received by a simulated BMC, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandRecord {
    /// The protocol that carried it (`ipmi`).
    pub protocol: &'static str,
    /// The command.
    pub command: PowerCommand,
    /// What the model did.
    pub outcome: CommandOutcome,
}

/// On/off power with scheduled transitions. Transitions are applied lazily when the state is
/// read, so the model needs no timer task.
#[derive(Debug, Clone)]
pub struct PowerModel {
    on: bool,
    pending: VecDeque<(Instant, bool)>,
}

impl PowerModel {
    /// A model in the given state.
    pub fn new(on: bool) -> Self {
        PowerModel {
            on,
            pending: VecDeque::new(),
        }
    }

    /// The power state at `now` (transitions that are due are applied first).
    pub fn is_on(&mut self, now: Instant) -> bool {
        while let Some(&(at, state)) = self.pending.front() {
            if at > now {
                break;
            }
            self.on = state;
            self.pending.pop_front();
        }
        self.on
    }

    /// Force the state, cancelling scheduled transitions (the test harness's hand).
    pub fn force(&mut self, on: bool) {
        self.pending.clear();
        self.on = on;
    }

    /// Apply a command under a fault profile. With
    /// [`FaultProfile::power_returns_after_ms`], a power-off (hard or soft) also schedules
    /// the power to come back on that long after the off took effect.
    pub fn command(
        &mut self,
        cmd: PowerCommand,
        faults: &FaultProfile,
        now: Instant,
    ) -> CommandOutcome {
        if faults.stuck {
            return CommandOutcome::Ignored;
        }
        let currently_on = self.is_on(now);
        let delay = faults.off_delay();
        let mut steps: Vec<(Duration, bool)> = match cmd {
            PowerCommand::Off | PowerCommand::SoftOff => vec![(Duration::ZERO, false)],
            PowerCommand::On => vec![(Duration::ZERO, true)],
            PowerCommand::Cycle if currently_on => {
                vec![(Duration::ZERO, false), (CYCLE_OFF_TIME, true)]
            }
            PowerCommand::Cycle | PowerCommand::Reset => return CommandOutcome::Applied,
        };
        // Only the command's own steps decide whether it took effect at once; a scheduled
        // return of the power is the fault's doing, not part of the command.
        let at_once = delay.is_zero() && steps.len() == 1;
        if let (PowerCommand::Off | PowerCommand::SoftOff, Some(back)) =
            (cmd, faults.power_returns_after())
        {
            steps.push((back, true));
        }
        // A new command replaces whatever was still scheduled, as a real BMC would.
        self.pending.clear();
        for (extra, state) in steps {
            self.pending.push_back((now + delay + extra, state));
        }
        if at_once {
            self.is_on(now);
            CommandOutcome::Applied
        } else {
            CommandOutcome::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_delay_and_stuck() {
        let t0 = Instant::now();
        let mut m = PowerModel::new(true);
        let delayed = FaultProfile {
            off_delay_ms: 100,
            ..Default::default()
        };
        assert_eq!(
            m.command(PowerCommand::Off, &delayed, t0),
            CommandOutcome::Pending
        );
        assert!(m.is_on(t0 + Duration::from_millis(99)));
        assert!(!m.is_on(t0 + Duration::from_millis(100)));
        let stuck = FaultProfile {
            stuck: true,
            ..Default::default()
        };
        assert_eq!(
            m.command(PowerCommand::On, &stuck, t0),
            CommandOutcome::Ignored
        );
        assert!(!m.is_on(t0 + Duration::from_secs(5)));
        let fine = FaultProfile::default();
        m.command(PowerCommand::On, &fine, t0);
        assert!(m.is_on(t0));
        m.command(PowerCommand::Cycle, &fine, t0);
        assert!(!m.is_on(t0));
        assert!(m.is_on(t0 + CYCLE_OFF_TIME));
    }

    #[test]
    fn power_returns_after_the_off_took_effect() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut m = PowerModel::new(true);
        let returns = FaultProfile {
            power_returns_after_ms: Some(200),
            ..Default::default()
        };
        assert_eq!(
            m.command(PowerCommand::Off, &returns, t0),
            CommandOutcome::Applied,
            "the off itself takes effect at once"
        );
        assert!(!m.is_on(t0));
        assert!(!m.is_on(t0 + ms(199)));
        assert!(m.is_on(t0 + ms(200)), "back on, unasked");
        assert!(m.is_on(t0 + ms(5000)));

        // With an off delay, the return counts from when the off took effect.
        let mut m = PowerModel::new(true);
        let both = FaultProfile {
            off_delay_ms: 100,
            power_returns_after_ms: Some(200),
            ..Default::default()
        };
        assert_eq!(
            m.command(PowerCommand::SoftOff, &both, t0),
            CommandOutcome::Pending
        );
        assert!(m.is_on(t0 + ms(99)));
        assert!(!m.is_on(t0 + ms(100)));
        assert!(!m.is_on(t0 + ms(299)));
        assert!(m.is_on(t0 + ms(300)));

        // A power-on, or the harness forcing the power off, never schedules a return.
        let mut m = PowerModel::new(false);
        m.command(PowerCommand::On, &returns, t0);
        assert!(m.is_on(t0 + ms(1000)));
        m.force(false);
        assert!(!m.is_on(t0 + ms(5000)));

        // A command that comes before the return cancels it, as any new command does.
        let mut m = PowerModel::new(true);
        m.command(PowerCommand::Off, &returns, t0);
        m.command(PowerCommand::Off, &FaultProfile::default(), t0 + ms(50));
        assert!(!m.is_on(t0 + ms(5000)));

        // A stuck relay neither switches off nor comes back.
        let mut m = PowerModel::new(true);
        let stuck = FaultProfile {
            stuck: true,
            ..returns.clone()
        };
        m.command(PowerCommand::Off, &stuck, t0);
        assert!(m.is_on(t0 + ms(100)));
    }

    #[test]
    fn the_fault_is_part_of_the_control_json() {
        let f: FaultProfile = serde_json::from_str(r#"{"power_returns_after_ms":1500}"#).unwrap();
        assert_eq!(f.power_returns_after(), Some(Duration::from_millis(1500)));
        assert_eq!(FaultProfile::default().power_returns_after(), None);
        let json = serde_json::to_value(FaultProfile::default()).unwrap();
        assert!(json["power_returns_after_ms"].is_null());
    }
}
