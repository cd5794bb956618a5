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

    /// Apply a command under a fault profile.
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
        let steps: &[(Duration, bool)] = match cmd {
            PowerCommand::Off | PowerCommand::SoftOff => &[(Duration::ZERO, false)],
            PowerCommand::On => &[(Duration::ZERO, true)],
            PowerCommand::Cycle if currently_on => {
                &[(Duration::ZERO, false), (CYCLE_OFF_TIME, true)]
            }
            PowerCommand::Cycle | PowerCommand::Reset => return CommandOutcome::Applied,
        };
        // A new command replaces whatever was still scheduled, as a real BMC would.
        self.pending.clear();
        for (extra, state) in steps {
            self.pending.push_back((now + delay + *extra, *state));
        }
        if delay.is_zero() && steps.len() == 1 {
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
}
