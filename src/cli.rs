//! Command-line interface definitions: what a person or a script can say, and nothing
//! about what it means. This module depends on clap and std alone, so it can be read, tested
//! and documented without the engine; turning these arguments into the engine's settings is
//! the job of setup.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// fencegate: power off a failed host through an out-of-band channel and prove it is off.
#[derive(Debug, Parser)]
#[command(name = "fencegate", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The inventory (devices, hosts, policy).
    #[arg(long, global = true, env = "FENCEGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the journal lives (default: the inventory's `state_dir`, else /var/lib/fencegate).
    #[arg(long, global = true, env = "FENCEGATE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print JSON instead of human-readable output (schema in docs/json.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// Log verbosity on stderr: error, warn, info, debug, trace (default warn; error for
    /// the demo, whose output already says everything).
    #[arg(long, global = true, env = "FENCEGATE_LOG", value_name = "LEVEL")]
    pub log: Option<String>,
}

/// Devices given on the command line instead of (or without) an inventory.
#[derive(Debug, Args, Clone, Default)]
pub struct AdHoc {
    /// A device URL, e.g. ipmi://admin@127.0.0.1:9623?cipher=3 (repeat for a level of
    /// several devices that must all verify). No secrets in URLs.
    #[arg(long = "device", value_name = "URL")]
    pub devices: Vec<String>,
    /// Read the devices' password from this file (mode 0600).
    #[arg(long, value_name = "FILE", conflicts_with = "password_env")]
    pub password_file: Option<PathBuf>,
    /// Read the devices' password from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Name under which an ad-hoc target is journaled (default: derived from the URLs).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// Overrides of the policy's deadlines for this run.
#[derive(Debug, Args, Clone, Default)]
pub struct Deadlines {
    /// Overall deadline, e.g. 60s.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Deadline of one device attempt, e.g. 20s.
    #[arg(long, value_name = "DURATION")]
    pub attempt_timeout: Option<String>,
    /// How long the confirming Off readings must span, e.g. 6s (must be shorter than the
    /// attempt deadline). Shorter holds prove less: an outlet's reboot action lasts 5 s.
    #[arg(long, value_name = "DURATION")]
    pub off_hold: Option<String>,
    /// How long a storm-guarded fence waits, announced, before it begins, e.g. 3s (0s: judge
    /// it on arrival). Fences asked for at the same time are judged together.
    #[arg(long, value_name = "DURATION")]
    pub storm_settle: Option<String>,
}

/// Who asks and why, recorded in the proof.
#[derive(Debug, Args, Clone, Default)]
pub struct Why {
    /// Why this is done (recorded in the proof).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Who asks (default: the user running fencegate).
    #[arg(long)]
    pub requester: Option<String>,
}

/// What a power command acts on, with its deadlines and reasons.
#[derive(Debug, Args, Clone)]
pub struct Targets {
    /// Hosts from the inventory; hostranges like node[001-100] are expanded.
    pub hosts: Vec<String>,
    /// Devices named on the command line instead of inventory hosts.
    #[command(flatten)]
    pub adhoc: AdHoc,
    /// Overrides of the policy's deadlines.
    #[command(flatten)]
    pub deadlines: Deadlines,
    /// Who asks and why.
    #[command(flatten)]
    pub why: Why,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fence hosts: hard power-off, verified by fresh Off readings, then a power-on lock.
    Fence {
        /// What to fence, with deadlines and reasons.
        #[command(flatten)]
        targets: Targets,
        /// Bypass the storm guard (the cloud really lost that many hosts).
        #[arg(long)]
        force: bool,
        /// How many hosts to work at once.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
        fanout: u32,
    },
    /// Verified power-off without storm guard or power-on lock (maintenance).
    Off(Targets),
    /// Power on (refused while a fence's power-on lock is set).
    On(Targets),
    /// Verified power-off, then power on (refused while locked).
    Reboot(Targets),
    /// Read every device of the hosts once, without acting.
    Status {
        /// Hosts (hostranges expanded).
        hosts: Vec<String>,
        /// Devices named on the command line instead of inventory hosts.
        #[command(flatten)]
        adhoc: AdHoc,
    },
    /// Lift the power-on lock of a fenced host once its VMs run elsewhere.
    Unfence {
        /// Hosts (hostranges expanded).
        hosts: Vec<String>,
        /// Who asks and why.
        #[command(flatten)]
        why: Why,
    },
    /// Accept the identity a host's BMCs and PDUs present now (after a known board swap or
    /// re-addressing), replacing the one remembered at first use. Reads each device once.
    Trust {
        /// Hosts (hostranges expanded).
        hosts: Vec<String>,
        /// The box really moved to this address (a re-addressed BMC): the identity the
        /// old address remembered is taken over instead of refused.
        #[arg(long)]
        moved: bool,
        /// Who asks and why.
        #[command(flatten)]
        why: Why,
    },
    /// Show proof records, newest first.
    History {
        /// Only this host.
        host: Option<String>,
        /// How many records.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print every reading and command of each record.
        #[arg(long)]
        details: bool,
    },
    /// Validate the inventory; with --probe, read every device's power state (no action).
    Check {
        /// Read every device's power state.
        #[arg(long)]
        probe: bool,
    },
    /// List hosts and their fencing levels, or the drivers of this build.
    List {
        /// List drivers instead of hosts.
        #[arg(long)]
        drivers: bool,
    },
    /// Dynamic-library plugins.
    #[command(subcommand)]
    Plugin(Plugin),
    /// Run a failover scenario on a simulated lab (no hardware, no setup) and show the proof.
    Demo,
    /// Front door for OpenNebula's host_error hook.
    #[command(subcommand)]
    Opennebula(Opennebula),
    /// Speak the fence-agents stdin protocol (for Pacemaker and fence-agents tooling).
    Agent(AgentArgs),
}

/// OpenNebula front doors.
#[derive(Debug, Subcommand)]
pub enum Opennebula {
    /// The fence_host.sh contract: base64 host XML on stdin; exit 0 only after verified off.
    FenceHost {
        /// Overrides of the policy's deadlines.
        #[command(flatten)]
        deadlines: Deadlines,
        /// Fence even when the host XML says the host is not in ERROR (manual use).
        #[arg(long)]
        any_state: bool,
    },
}

/// Plugin commands.
#[derive(Debug, Subcommand)]
pub enum Plugin {
    /// Load a plugin, show its metadata and ABI version, and run the contract's
    /// non-destructive checks (configure, capabilities, one status read; no power command).
    Check {
        /// The plugin's shared library.
        path: PathBuf,
        /// A device option handed to the plugin's configure call (repeatable), e.g.
        /// `-o target=10.0.0.5:8443`.
        #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// A secret for the plugin from a file (repeatable), e.g. `--secret-file token=/etc/fg/t`.
        #[arg(long, value_name = "ROLE=FILE")]
        secret_file: Vec<String>,
        /// A secret for the plugin from an environment variable (repeatable).
        #[arg(long, value_name = "ROLE=VAR")]
        secret_env: Vec<String>,
        /// The user name handed to the plugin, if its device has one.
        #[arg(long)]
        user: Option<String>,
        /// Time allowed for each step.
        #[arg(long, default_value = "10s", value_name = "DURATION")]
        timeout: String,
    },
}

/// Command-line form of the fence-agents options (stdin is read when none is given).
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Action: on, off, reboot, status, monitor, list, metadata, validate-all.
    #[arg(short = 'o', long)]
    pub action: Option<String>,
    /// The host to act on (inventory name or alias).
    #[arg(short = 'n', long, alias = "port")]
    pub plug: Option<String>,
    /// The cluster node name (used when no plug is given).
    #[arg(long)]
    pub nodename: Option<String>,
}
