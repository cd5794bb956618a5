//! The real binary, killed: fencegate processes started through every front door (the
//! command line, OpenNebula's hook, the fence-agents protocol) against simulated IPMI, Redfish
//! and SNMP devices, each sent SIGKILL after a random delay: before the journal records
//! anything, in the middle of a command, or after the proof.
//!
//! After each kill the next start reconciles, and the test judges from the journal
//! (`fencegate --json history`) and from the simulators' own logs and power state, never
//! from what the killed process printed:
//! - every operation that began has exactly one record; one the kill interrupted is
//!   `failed` ("interrupted before a verdict"), named by the start that reconciled it;
//! - every record seen before is still there, unchanged;
//! - a power-on lock set by a fence that reached its proof holds (no power-on begins) until
//!   an `unfence` lifts it;
//! - a device never receives a power command twice for one operation, nor one the journal
//!   did not announce first, and a reconciling start sends nothing at all (it only reads);
//! - a `power_verified_off` device rests on an effective off command (or power already off)
//!   in the device's log, and the device's own power state was off through the confirming
//!   readings.
//!
//! The series is seeded: the seed is printed, and `FENCEGATE_KILL9_SEED=N` replays it
//! (`FENCEGATE_KILL9_KILLS` sets how many kills each lab makes). Several labs, each with its
//! own journal and simulators, run at once on their own threads to keep the test short.

mod common;

use fencegate_bmcsim::FaultProfile;
use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use fencegate_bmcsim::power::{CommandOutcome, PowerCommand};
use fencegate_bmcsim::redfish::{RedfishConfig, RedfishLab};
use fencegate_bmcsim::snmp::{PduConfig, PduLab};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Labs run at once, each on its own thread with its own journal and simulators.
const LABS: usize = 4;
/// SIGKILLs per lab unless `FENCEGATE_KILL9_KILLS` says otherwise: 4 × 26 = 104, more than
/// the 100 the issue asks for (runs that end before their kill come on top).
const KILLS_PER_LAB: usize = 26;
/// Consecutive fresh Off readings that prove a device off (the policy's default).
const CONFIRMATIONS: usize = 2;
/// The hold configured below, in milliseconds.
const OFF_HOLD_MS: u64 = 200;
/// Slack for comparing the journal's millisecond timestamps with the test's samples.
const SLACK_US: i64 = 5_000;
/// How long a device's log must stay still after a kill before the run's commands are
/// counted: datagrams and requests a process sent just before SIGKILL are still delivered.
const STRAGGLERS: Duration = Duration::from_millis(100);
/// The simulators' password (a test secret, in a 0600 file).
const PASSWORD: &str = "kill9-password";

/// The hosts of every lab: one per protocol bmcsim offers.
const HOSTS: [(&str, Kind); 3] = [
    ("ipmi1", Kind::Ipmi),
    ("rf1", Kind::Redfish),
    ("pdu1", Kind::Pdu),
];

/// A small seeded generator (SplitMix64): the whole series follows from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ipmi,
    Redfish,
    Pdu,
}

/// The front door a run came through (the journal keeps one power-on lock per door).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Door {
    Cli,
    OpenNebula,
    Agent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Fence,
    Off,
    On,
    Reboot,
    Unfence,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Fence => "fence",
            Op::Off => "off",
            Op::On => "on",
            Op::Reboot => "reboot",
            Op::Unfence => "unfence",
        }
    }
}

/// What each door may be asked, with weights.
const CHOICES: [(Door, Op, u64); 9] = [
    (Door::Cli, Op::Fence, 3),
    (Door::Cli, Op::Off, 2),
    (Door::Cli, Op::On, 2),
    (Door::Cli, Op::Reboot, 2),
    (Door::Cli, Op::Unfence, 3),
    (Door::OpenNebula, Op::Fence, 3),
    (Door::Agent, Op::Off, 2),
    (Door::Agent, Op::On, 2),
    (Door::Agent, Op::Reboot, 2),
];

/// The operations (journal records) a request through `door` makes, in order. The agent
/// door's `on` lifts its own lock first; its `reboot` is a fence, that lift, then `on`.
fn expected_records(door: Door, op: Op) -> &'static [&'static str] {
    match (door, op) {
        (Door::Agent, Op::Off) | (Door::OpenNebula, _) => &["fence"],
        (Door::Agent, Op::On) => &["unfence", "on"],
        (Door::Agent, Op::Reboot) => &["fence", "unfence", "on"],
        (_, Op::Fence) => &["fence"],
        (_, Op::Off) => &["off"],
        (_, Op::On) => &["on"],
        (_, Op::Reboot) => &["reboot"],
        (_, Op::Unfence) => &["unfence"],
    }
}

/// Whether a multi-record request goes on after `record` (the agent door stops at a fence
/// that proved nothing, or at a lift it was refused).
fn continues_after(record: &Value) -> bool {
    match record["operation"].as_str() {
        Some("fence") => record["verdict"] == "power_verified_off",
        Some("unfence") => record["success"] == true,
        _ => false,
    }
}

fn interrupted(record: &Value) -> bool {
    record["verdict"] == "failed"
        && record["detail"]
            .as_str()
            .is_some_and(|d| d.contains("interrupted before a verdict"))
}

/// Microseconds since the Unix epoch.
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Milliseconds since the Unix epoch of a journal timestamp (`2026-11-22T05:01:40.307Z`).
fn parse_ms(ts: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 {
        ts.get(r)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a journal timestamp: {ts:?}"))
    };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss, ms) = (n(11..13), n(14..16), n(17..19), n(20..23));
    // Days from the civil date (proleptic Gregorian), epoch 1970-01-01.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms
}

/// The simulated devices of one lab, served by a runtime that lives as long as they do.
struct Sim {
    ipmi: IpmiLab,
    redfish: RedfishLab,
    pdu: PduLab,
    _rt: tokio::runtime::Runtime,
}

/// One power command a device received: what it was and what its power model did.
type Cmd = (PowerCommand, CommandOutcome);

impl Sim {
    fn start() -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (ipmi, redfish, pdu) = rt.block_on(async {
            (
                IpmiLab::start(vec![BmcConfig::new("admin", PASSWORD)])
                    .await
                    .unwrap(),
                RedfishLab::start(vec![RedfishConfig::new("admin", PASSWORD)])
                    .await
                    .unwrap(),
                PduLab::start(vec![PduConfig::new(2)]).await.unwrap(),
            )
        });
        Sim {
            ipmi,
            redfish,
            pdu,
            _rt: rt,
        }
    }

    /// The device's own truth: is the host it powers on right now?
    fn power_on(&self, kind: Kind) -> bool {
        match kind {
            Kind::Ipmi => self.ipmi.power_on(0),
            Kind::Redfish => self.redfish.power_on(0),
            Kind::Pdu => self.pdu.outlet_on(0, 1),
        }
    }

    /// Every power command the device received, oldest first.
    fn commands(&self, kind: Kind) -> Vec<Cmd> {
        match kind {
            Kind::Ipmi => self
                .ipmi
                .command_log(0)
                .into_iter()
                .map(|c| (c.command, c.outcome))
                .collect(),
            Kind::Redfish => self
                .redfish
                .command_log(0)
                .into_iter()
                .map(|c| (c.command, c.outcome))
                .collect(),
            Kind::Pdu => self
                .pdu
                .command_log(0)
                .into_iter()
                .filter(|c| c.outlet == 1)
                .map(|c| (c.record.command, c.record.outcome))
                .collect(),
        }
    }

    fn set_faults(&self, kind: Kind, faults: FaultProfile) {
        match kind {
            Kind::Ipmi => self.ipmi.set_faults(0, faults),
            Kind::Redfish => self.redfish.set_faults(0, faults),
            Kind::Pdu => self.pdu.set_faults(0, faults),
        }
    }
}

/// Write the lab's inventory: one host per device, short deadlines and hold, no storm
/// guard (one lab's hosts are not a storm). Retransmission timers are long enough that a
/// command is never repeated on the wire by a loaded machine's slow answer.
fn inventory(dir: &Path, sim: &Sim) -> PathBuf {
    let secret = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    };
    let pw = secret("bmc.pw", PASSWORD);
    let community = secret("community", "private");
    let toml = format!(
        r#"state_dir = "state"

[policy]
attempt_timeout = "2s"
overall_timeout = "3s"
off_hold = "{OFF_HOLD_MS}ms"
storm_limit = 0
storm_settle = "0s"

[devices.ipmi1-bmc]
driver = "ipmi"
address = "{ipmi}"
user = "admin"
password_file = "{pw}"
retransmit_ms = 1500

[devices.rf1-bmc]
driver = "redfish"
address = "{rf}"
user = "admin"
password_file = "{pw}"
pin = "{pin}"

[devices.pdu1-outlet]
driver = "snmp"
address = "{pdu}"
path = "/outlet/1"
version = "2c"
community_file = "{community}"
timeout_ms = 1500

[hosts.ipmi1]
levels = [["ipmi1-bmc"]]
opennebula_id = 1

[hosts.rf1]
levels = [["rf1-bmc"]]
opennebula_id = 2

[hosts.pdu1]
levels = [["pdu1-outlet"]]
opennebula_id = 3
"#,
        ipmi = sim.ipmi.addr(0),
        rf = sim.redfish.addr(0),
        pin = sim.redfish.fingerprint(),
        pdu = sim.pdu.addr(0),
        pw = pw.display(),
        community = community.display(),
    );
    let path = dir.join("fencegate.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// One fencegate process of the series and what the test saw of the device meanwhile.
struct Run {
    step: usize,
    host: usize,
    door: Door,
    op: Op,
    started_ms: i64,
    ended_ms: i64,
    /// `None`: killed.
    exit: Option<ExitStatus>,
    stderr: String,
    /// The device's command log before the run, and what it received during it.
    before: Vec<Cmd>,
    during: Vec<Cmd>,
    /// The device's power (true: on) sampled through the run, by wall-clock microseconds.
    samples: Vec<(i64, bool)>,
}

/// Power-on locks of one host as the journal's records imply them: `held` are certain
/// (a fence through that door reached its proof, and nothing lifted it since); `maybe`
/// are possible (a fence began without a proof, or an unfence was interrupted).
#[derive(Default)]
struct Locks {
    held: BTreeSet<Door>,
    maybe: BTreeSet<Door>,
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    runs: usize,
    completed: usize,
    killed_before_begin: usize,
    killed_mid: usize,
    killed_after: usize,
    proofs: usize,
    refused_by_lock: usize,
}

struct Series {
    seed: u64,
    lab: usize,
    rng: Rng,
    dir: tempfile::TempDir,
    config: PathBuf,
    sim: Sim,
    /// Every record seen so far, by request id, exactly as it was.
    known: BTreeMap<String, Value>,
    /// Runs not judged yet (their operations may still await reconciliation).
    pending: Vec<Run>,
    locks: [Locks; 3],
    trace: Vec<String>,
    stats: Stats,
    steps: usize,
    kills: usize,
}

impl Series {
    fn new(seed: u64, lab: usize) -> Series {
        let sim = Sim::start();
        let dir = tempfile::tempdir().unwrap();
        let config = inventory(dir.path(), &sim);
        Series {
            seed,
            lab,
            rng: Rng(seed ^ (lab as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)),
            dir,
            config,
            sim,
            known: BTreeMap::new(),
            pending: Vec::new(),
            locks: Default::default(),
            trace: Vec::new(),
            stats: Stats::default(),
            steps: 0,
            kills: 0,
        }
    }

    /// Panic with the seed, the lab and the last steps when `ok` is false.
    #[track_caller]
    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let recent = self.trace.len().saturating_sub(12);
            panic!(
                "kill9 violation (replay with FENCEGATE_KILL9_SEED={}), lab {} step {}: {}\nrecent steps:\n  {}",
                self.seed,
                self.lab,
                self.steps,
                what(),
                self.trace[recent..].join("\n  ")
            );
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("fencegate"));
        c.env_remove("FENCEGATE_STATE_DIR")
            .env_remove("FENCEGATE_PASSWORD")
            .env("FENCEGATE_CONFIG", &self.config);
        c
    }

    fn all_commands(&self) -> Vec<Vec<Cmd>> {
        HOSTS.iter().map(|(_, k)| self.sim.commands(*k)).collect()
    }

    /// Start one request through `door`, SIGKILL it after `kill_after` unless it ended by
    /// then, and sample the device's power all along.
    fn run(&mut self, host: usize, door: Door, op: Op, kill_after: Option<Duration>) {
        let (name, kind) = HOSTS[host];
        let stderr_path = self.dir.path().join(format!("run-{}.stderr", self.steps));
        let mut cmd = self.command();
        let input = match door {
            Door::Cli => {
                cmd.args(["--json", op.as_str(), name]);
                None
            }
            Door::OpenNebula => {
                cmd.args(["opennebula", "fence-host"]);
                let xml = common::host_xml(host as u64 + 1, name, 3, "");
                Some(common::base64(xml.as_bytes()))
            }
            Door::Agent => {
                cmd.arg("agent");
                Some(format!(
                    "action={}\nplug={name}\nconfig={}\n",
                    op.as_str(),
                    self.config.display()
                ))
            }
        };
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).unwrap());
        let before = self.sim.commands(kind);
        let mut samples = vec![(now_us(), self.sim.power_on(kind))];
        let started_ms = now_us() / 1000;
        let t0 = Instant::now();
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            // The process may already be dead (killed at once): a broken pipe is no error.
            let _ = stdin.write_all(input.as_bytes());
        }
        let limit = Duration::from_secs(30);
        let exit = loop {
            samples.push((now_us(), self.sim.power_on(kind)));
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            match kill_after {
                Some(after) if t0.elapsed() >= after => {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    self.kills += 1;
                    self.let_stragglers_land(kind);
                    break None;
                }
                _ => {}
            }
            self.check(t0.elapsed() < limit, || {
                format!("{door:?} {} {name} ran past {limit:?}", op.as_str())
            });
            std::thread::sleep(Duration::from_millis(1));
        };
        samples.push((now_us(), self.sim.power_on(kind)));
        let ended_ms = now_us() / 1000 + 1;
        let during = self.sim.commands(kind)[before.len()..].to_vec();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        self.trace.push(format!(
            "step {}: {door:?} {} {name}: {} after {} ms; device got {:?}",
            self.steps,
            op.as_str(),
            match exit {
                Some(s) => format!("exited {s}"),
                None => "SIGKILL".into(),
            },
            t0.elapsed().as_millis(),
            during.iter().map(|c| c.0).collect::<Vec<_>>()
        ));
        self.pending.push(Run {
            step: self.steps,
            host,
            door,
            op,
            started_ms,
            ended_ms,
            exit,
            stderr,
            before,
            during,
            samples,
        });
        self.steps += 1;
    }

    /// What a killed process sent just before it died may still wait in the simulator's
    /// socket: wait until the device's log has been still for [`STRAGGLERS`], so a command
    /// is counted in the run that sent it, not in the next start.
    fn let_stragglers_land(&self, kind: Kind) {
        let mut seen = self.sim.commands(kind).len();
        let mut still = Instant::now();
        while still.elapsed() < STRAGGLERS {
            std::thread::sleep(Duration::from_millis(5));
            let now = self.sim.commands(kind).len();
            if now != seen {
                (seen, still) = (now, Instant::now());
            }
        }
    }

    /// The next start: `fencegate --json history` reconciles what killed runs left open and
    /// shows every record; then judge every run since the last time.
    fn settle(&mut self) {
        let before = self.all_commands();
        let out = self
            .command()
            .args(["--json", "history", "--limit", "1000000"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.check(out.status.success(), || {
            format!("history failed: {}: {stderr}", out.status)
        });
        let after = self.all_commands();
        self.check(before == after, || {
            format!("the reconciling start sent power commands: {before:?} -> {after:?}")
        });
        let history: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let mut now: BTreeMap<String, Value> = BTreeMap::new();
        for record in history {
            let id = record["request_id"].as_str().unwrap().to_owned();
            self.check(!now.contains_key(&id), || {
                format!("two records of operation {id}")
            });
            now.insert(id, record);
        }
        for (id, old) in &self.known {
            self.check(now.get(id) == Some(old), || {
                format!(
                    "record {id} was lost or changed:\nbefore: {old}\nnow: {}",
                    now.get(id)
                        .map_or("(missing)".to_owned(), |v| v.to_string())
                )
            });
        }
        // New records, each to the run whose lifetime holds its start.
        let mut fresh: Vec<&Value> = now
            .iter()
            .filter(|(id, _)| !self.known.contains_key(*id))
            .map(|(_, r)| r)
            .collect();
        fresh.sort_by_key(|r| (parse_ms(r["started_at"].as_str().unwrap()), r.to_string()));
        let pending = std::mem::take(&mut self.pending);
        let mut by_run: Vec<Vec<&Value>> = vec![Vec::new(); pending.len()];
        for r in &fresh {
            let at = parse_ms(r["started_at"].as_str().unwrap());
            let owner = pending
                .iter()
                .position(|run| run.started_ms - 1 <= at && at <= run.ended_ms);
            self.check(owner.is_some(), || {
                format!("record begun outside every run: {r}")
            });
            by_run[owner.unwrap()].push(r);
        }
        for (i, run) in pending.iter().enumerate() {
            // Whatever started after this run may have reconciled it.
            let later: String = pending[i + 1..]
                .iter()
                .map(|r| r.stderr.as_str())
                .chain([stderr.as_str()])
                .collect();
            let later_killed = pending[i + 1..].iter().any(|r| r.exit.is_none());
            self.judge(run, &by_run[i], &later, later_killed);
        }
        self.known = now;
    }

    /// Judge one run by its records and the device's log and power.
    fn judge(&mut self, run: &Run, records: &[&Value], later_stderr: &str, later_killed: bool) {
        let (name, _) = HOSTS[run.host];
        let what = format!(
            "step {} ({:?} {} {name})",
            run.step,
            run.door,
            run.op.as_str()
        );
        self.stats.runs += 1;

        // Records: the door's sequence, cut short only where the door stops or the kill fell.
        let expected = expected_records(run.door, run.op);
        let ops: Vec<&str> = records
            .iter()
            .map(|r| r["operation"].as_str().unwrap())
            .collect();
        self.check(
            ops.len() <= expected.len() && ops == expected[..ops.len()],
            || format!("{what}: records {ops:?}, expected a prefix of {expected:?}"),
        );
        for r in records {
            self.check(r["host"] == name, || {
                format!("{what}: record of another host: {r}")
            });
        }
        for r in records.iter().rev().skip(1) {
            self.check(continues_after(r), || {
                format!("{what}: went on after a record that should end it: {r}")
            });
        }
        let killed = run.exit.is_none();
        match run.exit {
            Some(status) => {
                self.stats.completed += 1;
                let last = records.last();
                self.check(
                    last.is_some()
                        && (ops.len() == expected.len() || !continues_after(last.unwrap())),
                    || format!("{what}: exited {status} with records {ops:?} of {expected:?}"),
                );
                for r in records {
                    self.check(!interrupted(r), || {
                        format!("{what}: a run that ended by itself has an interrupted record: {r}")
                    });
                }
                let code = status.code();
                let allowed: &[i32] = if run.door == Door::Agent {
                    &[0, 1]
                } else {
                    &[0, 1, 3]
                };
                self.check(code.is_some_and(|c| allowed.contains(&c)), || {
                    format!("{what}: exit {status}: {}", run.stderr)
                });
                if run.door != Door::Agent {
                    let r = last.unwrap();
                    self.check((code == Some(0)) == (r["success"] == true), || {
                        format!("{what}: exit {status} for {r}")
                    });
                    self.check((code == Some(3)) == (r["verdict"] == "refused"), || {
                        format!("{what}: exit {status} for {r}")
                    });
                }
            }
            None if records.is_empty() => self.stats.killed_before_begin += 1,
            None if records.iter().any(|r| interrupted(r)) => self.stats.killed_mid += 1,
            None => self.stats.killed_after += 1,
        }
        for (i, r) in records.iter().enumerate() {
            if !interrupted(r) {
                continue;
            }
            let id = r["request_id"].as_str().unwrap();
            self.check(killed && i + 1 == records.len(), || {
                format!("{what}: interrupted record that no kill explains: {r}")
            });
            self.check(r["success"] == false, || format!("{what}: {r}"));
            // A later start reconciled it: it says so, unless it was killed itself first.
            self.check(later_stderr.contains(id) || later_killed, || {
                format!("{what}: no later start says it reconciled {id}")
            });
            // The reconciliation read the device again, after saying so.
            let events: Vec<&Value> = devices(r).flat_map(events).collect();
            let note = events.iter().rposition(|e| {
                e["event"] == "note"
                    && e["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("reconciliation"))
            });
            self.check(
                note.is_some_and(|n| {
                    events[n + 1..]
                        .iter()
                        .any(|e| e["event"] == "reading" || e["event"] == "error")
                }),
                || format!("{what}: reconciled without a fresh read: {r}"),
            );
        }

        // The device: at most one off and one on per run (its requests hold one power-off
        // operation and one power-on at most), off before on, nothing unannounced.
        let count = |c: PowerCommand| run.during.iter().filter(|x| x.0 == c).count();
        let (offs, ons) = (count(PowerCommand::Off), count(PowerCommand::On));
        self.check(
            offs + ons == run.during.len() && offs <= 1 && ons <= 1,
            || format!("{what}: the device received {:?}", run.during),
        );
        if offs == 1 && ons == 1 {
            self.check(run.during[0].0 == PowerCommand::Off, || {
                format!("{what}: on before off: {:?}", run.during)
            });
        }
        let intents = |action: &str| {
            records
                .iter()
                .flat_map(|r| devices(r))
                .flat_map(events)
                .filter(|e| e["event"] == "command_intent" && e["action"] == action)
                .count()
        };
        self.check(offs <= intents("off") && ons <= intents("on"), || {
            format!(
                "{what}: the device received {:?} but the journal announced off {} and on {} times",
                run.during,
                intents("off"),
                intents("on")
            )
        });
        for r in records.iter().filter(|r| r["verdict"] == "refused") {
            let announced = devices(r)
                .flat_map(events)
                .any(|e| e["event"] == "command_intent");
            self.check(!announced, || {
                format!("{what}: a refused operation commanded something: {r}")
            });
        }

        // Proofs: the device's own log and power agree with every verified-off device.
        for r in records.iter().filter(|r| !interrupted(r)) {
            if r["verdict"] == "power_verified_off" {
                self.stats.proofs += 1;
            }
            for d in devices(r).filter(|d| d["outcome"] == "verified_off") {
                self.check_off_proof(run, &what, d);
            }
        }
        let proved_last = records
            .last()
            .is_some_and(|r| r["verdict"] == "power_verified_off");
        if proved_last {
            let end = run.samples.last().unwrap().1;
            self.check(!end, || {
                format!("{what}: proof of off, device on at the end")
            });
        }

        // Locks, record by record.
        for r in records {
            let op = r["operation"].as_str().unwrap();
            let verdict = r["verdict"].as_str().unwrap();
            match (op, verdict) {
                (_, "refused") => {
                    if op == "on" || op == "reboot" {
                        self.stats.refused_by_lock += 1;
                    }
                }
                ("fence", "power_verified_off") => {
                    let l = &mut self.locks[run.host];
                    l.maybe.remove(&run.door);
                    l.held.insert(run.door);
                }
                ("fence", _) => {
                    let l = &mut self.locks[run.host];
                    if !l.held.contains(&run.door) {
                        l.maybe.insert(run.door);
                    }
                }
                // An operator's off sets no lock and lifts none.
                ("off", _) => {}
                ("unfence", _) => {
                    let lifted: Vec<Door> = if run.door == Door::Agent {
                        vec![Door::Agent]
                    } else {
                        vec![Door::Cli, Door::OpenNebula, Door::Agent]
                    };
                    let l = &mut self.locks[run.host];
                    for door in lifted {
                        let was = l.held.remove(&door) || l.maybe.remove(&door);
                        if was && interrupted(r) {
                            l.maybe.insert(door);
                        }
                    }
                }
                ("on" | "reboot", _) => {
                    let held = self.locks[run.host].held.clone();
                    self.check(held.is_empty(), || {
                        format!("{what}: a power-on began while a proven fence's lock through {held:?} should hold: {r}")
                    });
                    // It began: whatever lock might have been there is not.
                    self.locks[run.host].maybe.clear();
                }
                _ => self.check(false, || format!("{what}: unexpected record {r}")),
            }
        }
    }

    /// A device the record says verified off: its log shows an effective off (or the power
    /// was off already), and its power stayed off through the confirming readings.
    fn check_off_proof(&self, run: &Run, what: &str, device: &Value) {
        let readings: Vec<&Value> = events(device).filter(|e| e["event"] == "reading").collect();
        let trailing: Vec<&Value> = readings
            .iter()
            .rev()
            .take_while(|e| e["state"] == "Off")
            .copied()
            .collect();
        self.check(trailing.len() >= CONFIRMATIONS, || {
            format!("{what}: verified off without {CONFIRMATIONS} trailing Off readings: {device}")
        });
        let first = parse_ms(trailing.last().unwrap()["at"].as_str().unwrap()) * 1000;
        let last = parse_ms(trailing[0]["at"].as_str().unwrap()) * 1000;
        let window: Vec<&(i64, bool)> = run
            .samples
            .iter()
            .filter(|(t, _)| first + SLACK_US <= *t && *t <= last)
            .collect();
        self.check(window.iter().all(|(_, on)| !on), || {
            format!("{what}: the device was on during the confirming readings: {device}")
        });
        self.check(
            !window.is_empty() || last - first < (OFF_HOLD_MS as i64) * 1000,
            || {
                format!(
                    "{what}: no sample of the device during a {} ms hold",
                    (last - first) / 1000
                )
            },
        );
        // The last effective command before this run's first power-on was an off, or the
        // power was already off when the run began.
        let upto = run
            .during
            .iter()
            .position(|c| c.0 == PowerCommand::On)
            .unwrap_or(run.during.len());
        let last_effective = run
            .before
            .iter()
            .chain(&run.during[..upto])
            .rfind(|c| c.1 != CommandOutcome::Ignored);
        let off_at_start = !run.samples[0].1;
        self.check(
            off_at_start || last_effective.is_some_and(|c| c.0 == PowerCommand::Off),
            || format!("{what}: verified off, but the device's log shows no off ({:?} then {:?}) and it was on: {device}", run.before, run.during),
        );
    }

    /// One step: pick a host, a door, an operation and faults, run it, kill it at a random
    /// point; then usually the next start is a `history` that judges it, else the next run.
    fn step(&mut self) {
        let host = self.rng.below(HOSTS.len() as u64) as usize;
        let (_, kind) = HOSTS[host];
        // A proven lock, now and then, is probed with a plain `on` that must be refused.
        if !self.locks[host].held.is_empty() && self.rng.chance(30) {
            self.sim.set_faults(kind, FaultProfile::default());
            self.run(host, Door::Cli, Op::On, None);
            return;
        }
        let total: u64 = CHOICES.iter().map(|c| c.2).sum();
        let mut pick = self.rng.below(total);
        let (door, op) = CHOICES
            .iter()
            .find_map(|&(d, o, w)| {
                if pick < w {
                    Some((d, o))
                } else {
                    pick -= w;
                    None
                }
            })
            .unwrap();
        let stuck = self.rng.chance(4);
        let off_delay_ms = self.rng.pick(&[0, 0, 60, 150, 300]);
        let reply_delay_ms = if kind == Kind::Redfish {
            self.rng.pick(&[0, 0, 20, 50])
        } else {
            0
        };
        self.sim.set_faults(
            kind,
            FaultProfile {
                stuck,
                off_delay_ms,
                reply_delay_ms,
                ..FaultProfile::default()
            },
        );
        // About how long the request takes; kills fall anywhere from the start to past it.
        let mut typical = 120 + off_delay_ms + OFF_HOLD_MS + 12 * reply_delay_ms;
        if matches!(op, Op::Reboot) || (door == Door::Agent && op == Op::On) {
            typical += 150;
        }
        if stuck {
            typical = 2_300;
        }
        let kill_ms = if self.rng.chance(15) {
            self.rng.below(40)
        } else {
            self.rng.below(typical * 13 / 10)
        };
        self.run(host, door, op, Some(Duration::from_millis(kill_ms)));
        let killed = self.pending.last().is_some_and(|r| r.exit.is_none());
        if !(killed && self.rng.chance(30)) {
            self.settle();
        }
    }
}

/// The reading and command events of a device record.
fn events(device: &Value) -> impl Iterator<Item = &Value> {
    device["events"].as_array().into_iter().flatten()
}

/// The device records of a proof, level by level.
fn devices(record: &Value) -> impl Iterator<Item = &Value> {
    record["levels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["devices"].as_array().into_iter().flatten())
}

#[test]
fn sigkill_at_random_points_loses_no_proof_no_lock_and_repeats_no_command() {
    let seed = std::env::var("FENCEGATE_KILL9_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("FENCEGATE_KILL9_SEED: a number"))
        .unwrap_or_else(|| now_us() as u64);
    let kills = std::env::var("FENCEGATE_KILL9_KILLS")
        .ok()
        .map(|s| s.parse::<usize>().expect("FENCEGATE_KILL9_KILLS: a number"))
        .unwrap_or(KILLS_PER_LAB);
    println!(
        "kill9: seed {seed} (replay: FENCEGATE_KILL9_SEED={seed}), {LABS} labs x {kills} kills"
    );
    let t0 = Instant::now();
    let labs: Vec<_> = (0..LABS)
        .map(|lab| {
            std::thread::spawn(move || {
                let mut series = Series::new(seed, lab);
                while series.kills < kills {
                    series.step();
                }
                if !series.pending.is_empty() {
                    series.settle();
                }
                series.stats
            })
        })
        .collect();
    let mut total = Stats::default();
    for lab in labs {
        let s = lab
            .join()
            .unwrap_or_else(|_| panic!("a lab failed (replay with FENCEGATE_KILL9_SEED={seed})"));
        total.runs += s.runs;
        total.completed += s.completed;
        total.killed_before_begin += s.killed_before_begin;
        total.killed_mid += s.killed_mid;
        total.killed_after += s.killed_after;
        total.proofs += s.proofs;
        total.refused_by_lock += s.refused_by_lock;
    }
    println!("kill9: {total:?} in {:.1} s", t0.elapsed().as_secs_f64());
    let killed = total.killed_before_begin + total.killed_mid + total.killed_after;
    assert!(killed >= LABS * kills, "{total:?}");
    // The delays spread the kills over the operations: before the journal, mid-way.
    assert!(
        total.killed_before_begin > 0 && total.killed_mid > 0 && total.proofs > 0,
        "kills too one-sided (seed {seed}): {total:?}"
    );
}

/// The judge is not fencegate's echo: a Redfish BMC that reports `Off` while its host runs
/// makes fencegate record a proof, and the device's own power, sampled by the test, refutes it.
#[test]
fn the_judge_refutes_a_proof_the_device_contradicts() {
    let mut series = Series::new(1, 0);
    series
        .sim
        .redfish
        .set_reported_power_state(0, Some(Value::from("Off")));
    series.run(1, Door::Cli, Op::Fence, None);
    let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| series.settle()));
    let message = verdict
        .err()
        .and_then(|e| e.downcast::<String>().ok())
        .expect("a proof of a running host must be refuted");
    assert!(
        message.contains("the device was on during the confirming readings"),
        "{message}"
    );
    assert!(series.sim.redfish.power_on(0));
}

/// Rounds of the concurrent stress, and fencegate processes started at once in each.
const STRESS_ROUNDS: usize = 10;
const STRESS_AT_ONCE: usize = 8;

/// The non-deterministic stress beside the deterministic campaign (docs/RELIABILITY.md):
/// real fencegate processes started *at once* on one journal, on the same hosts, some of them
/// SIGKILLed at a random moment, round after round. Whatever order the processes and the
/// operating system pick, judged from the journal and the simulators:
/// - every process ends by its deadline (none waits forever on another);
/// - after the next start, every operation has exactly one record and a verdict, and one a
///   kill interrupted is `failed`, never a success;
/// - no `on` or `reboot` succeeds between a fence's begin and the `unfence` that lifts its
///   lock, in the journal's own order of begins;
/// - a host whose newest operation proved it off is really off.
#[test]
fn processes_at_once_on_one_journal_break_no_guard() {
    let seed = std::env::var("FENCEGATE_KILL9_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("FENCEGATE_KILL9_SEED: a number"))
        .unwrap_or_else(|| now_us() as u64);
    println!("stress: seed {seed} (replay: FENCEGATE_KILL9_SEED={seed})");
    let series = Series::new(seed, 0);
    let mut rng = Rng(seed ^ 0x5eed_57e5);
    const OPS: [Op; 5] = [Op::Fence, Op::Off, Op::On, Op::Reboot, Op::Unfence];
    let mut seen_ids = BTreeSet::new();
    let mut verdicts: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..STRESS_ROUNDS {
        let started = Instant::now();
        let mut children = Vec::new();
        for _ in 0..STRESS_AT_ONCE {
            let (name, _) = HOSTS[rng.below(HOSTS.len() as u64) as usize];
            let op = rng.pick(&OPS);
            let kill_after = rng
                .chance(25)
                .then(|| Duration::from_millis(rng.below(1500)));
            let child = series
                .command()
                .args(["--json", op.as_str(), name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            children.push((format!("{} {name}", op.as_str()), child, kill_after));
        }
        // Deadlines: 3 s overall per operation; a request waiting behind others on the same
        // host waits within its own overall deadline too. Allow a loaded machine its slack.
        let limit = Duration::from_secs(20);
        loop {
            let mut running = 0;
            for (what, child, kill_after) in &mut children {
                if child.try_wait().unwrap().is_some() {
                    continue;
                }
                running += 1;
                if kill_after.is_some_and(|k| started.elapsed() >= k) {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    *kill_after = None;
                    continue;
                }
                assert!(
                    started.elapsed() < limit,
                    "stress (seed {seed}) round {round}: `{what}` still runs after {limit:?}"
                );
            }
            if running == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(STRAGGLERS);
        // The next start reconciles whatever the kills left open.
        let out = series
            .command()
            .args(["--json", "history", "--limit", "1000"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let history: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let mut ids = BTreeSet::new();
        for r in &history {
            let id = r["request_id"].as_str().unwrap().to_owned();
            assert!(
                ids.insert(id.clone()),
                "stress (seed {seed}): {id} recorded twice"
            );
            assert!(
                r["verdict"].is_string(),
                "stress (seed {seed}): {id} has no verdict: {r}"
            );
            if interrupted(r) {
                assert_eq!(r["success"], false, "stress (seed {seed}): {r}");
            }
        }
        assert!(
            seen_ids.iter().all(|id| ids.contains(id)),
            "stress (seed {seed}) round {round}: a record disappeared"
        );
        seen_ids = ids;
        verdicts.clear();
        for r in &history {
            let key = format!(
                "{} {}",
                r["operation"].as_str().unwrap_or("?"),
                r["verdict"].as_str().unwrap_or("?")
            );
            *verdicts.entry(key).or_insert(0) += 1;
        }
        for (name, kind) in HOSTS {
            // Oldest first: the journal lists newest first.
            let records: Vec<&Value> = history.iter().rev().filter(|r| r["host"] == name).collect();
            let mut locked_by: Option<&str> = None;
            for r in &records {
                let op = r["operation"].as_str().unwrap_or_default();
                let done = r["success"] == true;
                match op {
                    "fence" if r["verdict"] != "refused" => {
                        locked_by = r["request_id"].as_str();
                    }
                    // An unfence killed after it lifted the lock is recorded as interrupted:
                    // the lock may be gone, so nothing after it is held to it.
                    "unfence" if done || interrupted(r) => locked_by = None,
                    "on" | "reboot" if done => assert!(
                        locked_by.is_none(),
                        "stress (seed {seed}): {op} {} of {name} succeeded under the lock of fence {}",
                        r["request_id"],
                        locked_by.unwrap_or_default()
                    ),
                    _ => {}
                }
            }
            if let Some(last) = records.iter().rev().find(|r| r["verdict"] != "refused")
                && last["verdict"] == "power_verified_off"
            {
                assert!(
                    !series.sim.power_on(kind),
                    "stress (seed {seed}): {name}'s newest operation {} proved it off, but it runs",
                    last["request_id"]
                );
            }
        }
    }
    println!(
        "stress: {} records ({verdicts:?}), {STRESS_ROUNDS} rounds of {STRESS_AT_ONCE}",
        seen_ids.len()
    );
}
