//! fencegate: power off a failed host through an out-of-band channel and prove it is off.
//!
//! The front doors (the command line, OpenNebula's hook, the fence-agents protocol, the
//! demo) live in this library so that their decoders can be reached from fuzz targets and
//! tests; the `fencegate` binary is a thin `main` over [`run`].

// Fuzz targets and tests outside this crate use these doors; every public item says why.
#![deny(missing_docs)]

pub mod agent;
pub mod cli;
mod commands;
#[cfg(feature = "demo")]
mod demo;
mod drivers;
pub mod error;
pub mod exit;
pub mod hostrange;
pub mod opennebula;
mod output;
mod plugin;
mod probe;
mod setup;

use cli::{Cli, Command, Global, Opennebula};
use error::CommandError;
use fencegate_core::Operation;
use fencegate_core::proof::printable;
use std::process::ExitCode;

/// Run one command line to its exit code: logging, the runtime, the command, and the
/// mapping of its outcome to the documented exit codes. Everything `main` would do lives
/// here, so the binary is the parser and this call.
pub fn run(cli: Cli) -> ExitCode {
    let default_level = if matches!(cli.command, Command::Demo) {
        "error"
    } else {
        "warn"
    };
    init_logging(cli.global.log.as_deref().unwrap_or(default_level));
    raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fencegate: cannot start the runtime: {e}");
            return exit::code(exit::INTERNAL);
        }
    };
    let result = runtime.block_on(dispatch(&cli.global, &cli.command));
    // Do not wait for driver tasks still winding down after a verdict.
    runtime.shutdown_background();
    match result {
        Ok(code) => exit::code(code),
        Err(e) => {
            eprintln!("fencegate: {}", printable(&e.to_string()));
            exit::code(e.exit_code())
        }
    }
}

/// Hand the command to its door.
async fn dispatch(g: &Global, command: &Command) -> Result<u8, CommandError> {
    match command {
        Command::Fence {
            targets,
            force,
            fanout,
        } => commands::power(g, Operation::Fence, targets, *force, *fanout).await,
        Command::Off(t) => commands::power(g, Operation::Off, t, false, 64).await,
        Command::On(t) => commands::power(g, Operation::On, t, false, 64).await,
        Command::Reboot(t) => commands::power(g, Operation::Reboot, t, false, 64).await,
        Command::Status { hosts, adhoc } => commands::status(g, hosts, adhoc).await,
        Command::Unfence { hosts, why } => commands::unfence(g, hosts, why).await,
        Command::Trust { hosts, why, moved } => commands::trust(g, hosts, why, *moved).await,
        Command::History {
            host,
            limit,
            details,
        } => commands::history(g, host.as_deref(), *limit, *details).await,
        Command::Check { probe } => commands::check(g, *probe).await,
        Command::List { drivers } => commands::list(g, *drivers).await,
        Command::Opennebula(Opennebula::FenceHost {
            deadlines,
            any_state,
        }) => opennebula::fence_host(g, deadlines, *any_state).await,
        // The agents' codes: 2 means "status: off", so no failure of ours may exit 2
        // (or anything but 1) through this door.
        Command::Agent(args) => agent::run(g, args).await.or_else(|e| {
            eprintln!("fencegate agent: {}", printable(&e.to_string()));
            Ok(agent::FAILURE)
        }),
        #[cfg(feature = "demo")]
        Command::Demo => demo::run(g).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo => Err(CommandError::usage(
            "this fencegate was built without the simulated lab (cargo feature `demo`)",
        )),
        Command::Plugin(cli::Plugin::Check {
            path,
            options,
            secret_file,
            secret_env,
            user,
            timeout,
        }) => {
            plugin::check(
                g,
                path,
                options,
                secret_file,
                secret_env,
                user.as_deref(),
                timeout,
            )
            .await
        }
    }
}

/// Logs go to stderr at `level` (an env-filter directive; a bad one falls back to warn).
fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into host_error.log.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Fencing a rack at once holds one socket per BMC session: lift the soft limit on open
/// files to the hard limit (commonly 1024 → 4096 or more) so a large `--fanout` does not
/// fail with "too many open files". Failure to raise it is harmless and ignored.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid, properly aligned `rlimit` we pass and reads
    // nothing else; RLIMIT_NOFILE is a valid resource.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the `rlimit` we pass; raising the soft limit up to the
        // hard limit is always permitted.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}
