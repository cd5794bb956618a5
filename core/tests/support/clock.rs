//! Clocks for tests: the journal reads time only through [`Clock`], so a test decides what
//! time it is.

use fencegate_core::time::{Clock, Moment, Timestamp};
use std::sync::Mutex;
use std::time::Duration;

/// The wall clock's reading when a test clock starts (2027-01-15, a fixed day, so records
/// never depend on when the test ran).
pub const EPOCH_MS: i64 = 1_800_000_000_000;

/// The boot id every test clock reports unless told otherwise.
pub const BOOT: &str = "test-boot";

/// A clock that follows tokio's clock (paused in most engine tests): the wall clock is
/// [`EPOCH_MS`] plus the time elapsed since the clock was made, the boot clock that elapsed
/// time, on one fixed boot. The journal's tolerance and storm windows then move with the
/// paused time exactly as the engine's deadlines do, and a schedule replays the same way on
/// every run. Make it inside the runtime whose clock it should follow.
#[derive(Debug)]
pub struct TestClock {
    start: tokio::time::Instant,
}

impl TestClock {
    /// A clock starting now, by tokio's clock.
    pub fn new() -> Self {
        TestClock {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TestClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TestClock {
    fn now(&self) -> Moment {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        Moment {
            wall: Timestamp(EPOCH_MS + elapsed),
            boot: BOOT.into(),
            up_ms: elapsed,
        }
    }
}

/// A clock that stands still until the test moves it: forward on both clocks (time
/// passes), the wall clock alone (an NTP or operator step), or to another boot. The guards'
/// window tests need exactly these moves, and nothing else may move it under them.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Moment>,
}

impl ManualClock {
    /// A clock standing at `now`.
    pub fn at(now: Moment) -> Self {
        ManualClock {
            now: Mutex::new(now),
        }
    }

    /// A clock standing at [`EPOCH_MS`] on boot [`BOOT`], an hour after that boot.
    pub fn new() -> Self {
        Self::at(Moment {
            wall: Timestamp(EPOCH_MS),
            boot: BOOT.into(),
            up_ms: 3_600_000,
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Moment) -> R) -> R {
        f(&mut self.now.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Let `d` pass: both clocks move forward.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap();
        self.with(|m| {
            m.wall = Timestamp(m.wall.0 + ms);
            m.up_ms += ms;
        });
    }

    /// Step the wall clock alone by `ms` (negative: back), as NTP or an operator would.
    pub fn step_wall(&self, ms: i64) {
        self.with(|m| m.wall = Timestamp(m.wall.0 + ms));
    }

    /// Reboot: another boot id, the boot clock starting again near zero; the wall clock
    /// goes on.
    pub fn reboot(&self, boot: &str) {
        self.with(|m| {
            m.boot = boot.into();
            m.up_ms = 1_000;
        });
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Moment {
        self.with(|m| m.clone())
    }
}
