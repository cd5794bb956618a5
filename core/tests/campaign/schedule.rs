//! What one schedule is: a world (boxes, the names and addresses that reach them, the
//! policies, how many fencegate processes share the journal) and a list of timed steps
//! (operations through the front doors, device faults, clock steps, crashes, restarts).
//! Both come from the seeded generator; the steps are independent of each other, so a
//! failing schedule shrinks by dropping steps.

use super::rng::Rng;
use super::sim::{CallFault, Fault};
use fencegate_core::Policy;
use fencegate_core::proof::Door;
use std::fmt;
use std::time::Duration;

/// A box's fixed traits.
#[derive(Debug, Clone)]
pub struct BoxSpec {
    /// Powered at the start.
    pub on: bool,
    /// Answers "already in that state" (a 409) instead of accepting a redundant command.
    pub conflict_if_already: bool,
    /// Every answer's latency.
    pub latency_ms: u64,
}

/// How a name reaches its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// An inventory host: its BMC, and maybe a second channel to the same box as level 2.
    Inventory,
    /// A second inventory name for the same box and devices (an old name, an alias entry).
    SecondName,
    /// An ad-hoc `--device URL --name …` reaching the box's BMC, with a weaker policy:
    /// another target.
    AdHoc,
    /// Another address that relays to the same box's BMC (same authenticated identity).
    Relay,
}

/// A name the schedule's operations use.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// The name.
    pub name: String,
    /// The box it reaches.
    pub target: usize,
    /// How.
    pub reach: Reach,
    /// Levels of addresses (each reaches the box).
    pub levels: Vec<Vec<String>>,
}

/// The world of a schedule.
#[derive(Debug, Clone)]
pub struct World {
    /// The boxes.
    pub boxes: Vec<BoxSpec>,
    /// The names.
    pub hosts: Vec<HostSpec>,
    /// fencegate processes sharing the journal.
    pub engines: usize,
    /// The inventory's policy.
    pub policy: Policy,
    /// The ad-hoc devices' policy (weaker: another target).
    pub adhoc_policy: Policy,
}

/// A BMC's address.
pub fn bmc(b: usize) -> String {
    format!("sim://bmc-{b}")
}

/// A second channel's address (a Redfish service on the same BMC).
pub fn second(b: usize) -> String {
    format!("sim://rf-{b}")
}

/// A relay's address.
pub fn relay(b: usize) -> String {
    format!("sim://relay-{b}")
}

impl World {
    /// The policy of a name.
    pub fn policy_of(&self, h: &HostSpec) -> &Policy {
        match h.reach {
            Reach::AdHoc => &self.adhoc_policy,
            _ => &self.policy,
        }
    }

    /// The shortest hold of any policy: every deception a fault can stage is shorter.
    pub fn min_hold_ms(&self) -> u64 {
        self.policy
            .off_hold
            .min(self.adhoc_policy.off_hold)
            .as_millis() as u64
    }
}

/// An operation through a front door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `fence`.
    Fence,
    /// `off`.
    Off,
    /// `on`.
    On,
    /// `unfence`.
    Unfence,
    /// `reboot`.
    Reboot,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Process `engine` runs `op` on name `host`.
    Op {
        /// The process slot.
        engine: usize,
        /// The name.
        host: usize,
        /// The operation.
        op: Op,
        /// Through which door.
        door: Door,
        /// `--force`.
        force: bool,
    },
    /// Arm a fault on a box.
    Fault {
        /// The box.
        target: usize,
        /// The fault.
        fault: Fault,
    },
    /// Step the wall clock.
    ClockStep(i64),
    /// The machine reboots: every process dies, the boot id changes.
    Reboot,
    /// Kill process slot `engine` (kill -9).
    Crash(usize),
    /// Start process slot `engine` again (if it is down): a new process reconciles.
    Restart(usize),
}

/// A step at a simulated time (ms after the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When.
    pub at_ms: u64,
    /// What.
    pub action: Action,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={:>6}ms ", self.at_ms)?;
        match &self.action {
            Action::Op {
                engine,
                host,
                op,
                door,
                force,
            } => write!(
                f,
                "process {engine}: {op:?} host#{host} via {}{}",
                door.as_str(),
                if *force { " --force" } else { "" }
            ),
            Action::Fault { target, fault } => write!(f, "box {target}: fault {fault:?}"),
            Action::ClockStep(d) => write!(f, "wall clock steps {d:+}ms"),
            Action::Reboot => write!(f, "machine reboots (every process dies)"),
            Action::Crash(e) => write!(f, "process {e} is killed"),
            Action::Restart(e) => write!(f, "process {e} starts again"),
        }
    }
}

fn policy(rng: &mut Rng) -> Policy {
    Policy {
        confirmations: rng.range(1, 3) as u32,
        off_hold: Duration::from_secs(*[2u64, 4, 6].get(rng.below(3)).unwrap_or(&6)),
        storm_limit: rng.range(1, 3) as u32,
        storm_settle: if rng.chance(50) {
            Duration::ZERO
        } else {
            Duration::from_secs(3)
        },
        retries: rng.range(0, 3) as u32,
        ..Policy::default()
    }
}

/// Draw a world.
pub fn world(rng: &mut Rng) -> World {
    let n = rng.range(2, 4) as usize;
    let boxes = (0..n)
        .map(|_| BoxSpec {
            on: rng.chance(85),
            conflict_if_already: rng.chance(30),
            latency_ms: rng.range(1, 40),
        })
        .collect();
    let policy = policy(rng);
    // Weaker than the inventory's: fewer confirmations or a shorter hold.
    let adhoc_policy = Policy {
        confirmations: 1,
        off_hold: policy.off_hold.min(Duration::from_secs(2)),
        ..policy.clone()
    };
    let mut hosts = Vec::new();
    for b in 0..n {
        let mut levels = vec![vec![bmc(b)]];
        if rng.chance(40) {
            levels.push(vec![second(b)]);
        }
        hosts.push(HostSpec {
            name: format!("kvm{b:02}"),
            target: b,
            reach: Reach::Inventory,
            levels: levels.clone(),
        });
        if rng.chance(35) {
            hosts.push(HostSpec {
                name: format!("kvm{b:02}-old"),
                target: b,
                reach: Reach::SecondName,
                levels,
            });
        }
        if rng.chance(35) {
            hosts.push(HostSpec {
                // Ad-hoc requests name the host as the inventory does, or by the URL.
                name: if rng.chance(50) {
                    format!("kvm{b:02}")
                } else {
                    bmc(b)
                },
                target: b,
                reach: Reach::AdHoc,
                levels: vec![vec![bmc(b)]],
            });
        }
        if rng.chance(15) {
            hosts.push(HostSpec {
                name: format!("relay{b:02}"),
                target: b,
                reach: Reach::Relay,
                levels: vec![vec![relay(b)]],
            });
        }
    }
    World {
        boxes,
        hosts,
        engines: rng.range(2, 3) as usize,
        policy,
        adhoc_policy,
    }
}

fn fault(rng: &mut Rng, min_hold_ms: u64) -> Fault {
    let calls = |rng: &mut Rng, f| Fault::Calls(f, rng.range(1, 4) as u8);
    match rng.weighted(&[3, 3, 1, 2, 1, 2, 2, 2, 1, 2, 1, 2, 2, 1]) {
        0 => calls(rng, CallFault::Drop),
        1 => calls(rng, CallFault::Busy),
        2 => calls(rng, CallFault::Auth),
        3 => calls(rng, CallFault::Timeout),
        4 => calls(rng, CallFault::CrashMidCall),
        5 => calls(rng, CallFault::Unknown),
        6 => {
            let ms = rng.range(100, 4000);
            calls(rng, CallFault::Delay(ms))
        }
        7 => Fault::Stuck(rng.range(500, 30_000)),
        8 => Fault::LyingOff(rng.range(100, min_hold_ms / 4)),
        9 => Fault::Stale(rng.range(50, min_hold_ms / 4), rng.range(1000, 20_000)),
        10 => Fault::FlapAfterOff(rng.range(100, min_hold_ms / 2)),
        11 => Fault::SlowOff(rng.range(100, 8000)),
        12 => Fault::PowerButton,
        _ => {
            let ms = rng.range(4000, 25_000);
            calls(rng, CallFault::Delay(ms))
        }
    }
}

/// Draw a schedule's steps for `world`, in time order.
pub fn steps(rng: &mut Rng, world: &World) -> Vec<Step> {
    const SPAN_MS: u64 = 90_000;
    let mut steps = Vec::new();
    for _ in 0..rng.range(3, 12) {
        let op =
            [Op::Fence, Op::Off, Op::On, Op::Unfence, Op::Reboot][rng.weighted(&[8, 3, 4, 3, 2])];
        let door = match op {
            Op::Unfence => [Door::Cli, Door::Agent][rng.weighted(&[7, 3])],
            _ => [Door::Cli, Door::Opennebula, Door::Agent][rng.weighted(&[5, 3, 2])],
        };
        steps.push(Step {
            at_ms: rng.range(0, SPAN_MS),
            action: Action::Op {
                engine: rng.below(world.engines),
                host: rng.below(world.hosts.len()),
                op,
                door,
                force: op == Op::Fence && rng.chance(15),
            },
        });
    }
    for _ in 0..rng.range(0, 6) {
        steps.push(Step {
            at_ms: rng.range(0, SPAN_MS),
            action: Action::Fault {
                target: rng.below(world.boxes.len()),
                fault: fault(rng, world.min_hold_ms()),
            },
        });
    }
    for _ in 0..rng.weighted(&[6, 3, 1]) {
        let delta = rng.range(1_000, 3 * 3_600_000) as i64;
        steps.push(Step {
            at_ms: rng.range(0, SPAN_MS),
            action: Action::ClockStep(if rng.chance(50) { delta } else { -delta }),
        });
    }
    if rng.chance(40) {
        let engine = rng.below(world.engines);
        let at = rng.range(0, SPAN_MS);
        steps.push(Step {
            at_ms: at,
            action: Action::Crash(engine),
        });
        steps.push(Step {
            at_ms: at + rng.range(200, 15_000),
            action: Action::Restart(engine),
        });
    }
    if rng.chance(8) {
        let at = rng.range(0, SPAN_MS);
        steps.push(Step {
            at_ms: at,
            action: Action::Reboot,
        });
        for engine in 0..world.engines {
            steps.push(Step {
                at_ms: at + 20_000,
                action: Action::Restart(engine),
            });
        }
    }
    // Stable: steps drawn for one instant keep their drawing order.
    steps.sort_by_key(|s| s.at_ms);
    steps
}
