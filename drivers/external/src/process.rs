//! A child process in its own process group, so that killing it at a deadline also kills
//! whatever it started (a shell's `sleep`, a fence agent's `ipmitool`).

use rustix::process::{Pid, Signal, kill_process_group};
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

/// How long to wait for the kernel to reap a child after SIGKILL before leaving it to
/// tokio's background reaper. SIGKILL cannot be caught, so this is normally instant.
const REAP_AFTER_KILL: Duration = Duration::from_millis(500);

/// The environment variables a child inherits. Everything else is dropped: fencegate's own
/// environment may hold secrets (`password_env`) meant for one device, never for every
/// driver program it starts.
pub const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "TMPDIR", "TZ", "USER", "LOGNAME", "LANG", "LC_ALL",
];

/// A command for `program` with an environment reduced to [`INHERITED_ENV`].
pub(crate) fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
}

/// A spawned child that leads its own process group and dies with its owner.
pub(crate) struct ProcessGroup {
    child: Child,
    /// The group id (the child's pid) while it is safe to signal: the child has not been
    /// reaped, so the id cannot have been reused.
    pgid: Option<Pid>,
}

/// "Text file busy" (Linux `ETXTBSY`).
const ETXTBSY: i32 = 26;

impl ProcessGroup {
    /// Spawn `command` with piped stdio as the leader of a new process group.
    pub(crate) fn spawn(command: &mut Command) -> io::Result<ProcessGroup> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        die_with_owner(command);
        // A program written a moment ago can still be open for writing in a child another
        // thread forked meanwhile ("text file busy" until that child execs): a few short,
        // bounded retries, never a loop.
        let mut tries = 0;
        let child = loop {
            match command.spawn() {
                Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 5 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10 * tries));
                }
                other => break other?,
            }
        };
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        Ok(ProcessGroup { child, pgid })
    }

    /// The child's pid, for messages.
    pub(crate) fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Take the child's stdin (once).
    pub(crate) fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Take the child's stdout (once).
    pub(crate) fn stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Take the child's stderr (once).
    pub(crate) fn stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// SIGKILL the whole group. Harmless if it is already gone.
    pub(crate) fn kill(&mut self) {
        if let Some(pgid) = self.pgid {
            // ESRCH (already gone) is the only expected failure; nothing to do about others.
            let _ = kill_process_group(pgid, Signal::KILL);
        }
        let _ = self.child.start_kill();
    }

    /// Wait for the child to exit, at most `within`. `None` if it is still running.
    pub(crate) async fn wait_for(&mut self, within: Duration) -> Option<ExitStatus> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.pgid = None;
                Some(status)
            }
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Kill the group and reap the leader (bounded), returning its exit status if seen.
    pub(crate) async fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        self.kill();
        self.wait_for(REAP_AFTER_KILL).await
    }
}

/// Make the child receive SIGKILL when fencegate dies, even by SIGKILL itself: a driver
/// left running by a dead owner could still send a power command nobody records. (Its own
/// children are left to their own timeouts: the kernel signals only the direct child.)
///
/// The signal comes when the *thread* that spawned the child exits; drivers are spawned
/// from runtime worker threads, which live as long as the runtime.
#[cfg(target_os = "linux")]
fn die_with_owner(command: &mut Command) {
    use rustix::process::{getpid, getppid, set_parent_process_death_signal};
    let owner = getpid();
    // SAFETY: the closure runs in the forked child before exec. It makes two raw system
    // calls through rustix (prctl, getppid) and builds an `io::Error` from an errno: no
    // allocation and no locks, so it is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // The owner may have died between fork and prctl; then no signal would come.
            if getppid() != Some(owner) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_owner(_command: &mut Command) {}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // `kill_on_drop` only reaches the leader; take its descendants along too.
        if let Some(pgid) = self.pgid.take() {
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }
}

/// Describe how a child ended, for error messages ("exit status 3", "killed by signal 9").
pub(crate) fn describe_exit(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "still running".to_owned(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "ended".to_owned(),
        },
    }
}
