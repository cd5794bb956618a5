//! One run of a fence agent: what it is given (argv and stdin) and what came out, under a
//! deadline after which its whole process group is killed.

use crate::process::{self, ProcessGroup};
use crate::tail::{self, SharedTail, Tail};
use fencegate_driver::{DriverError, Redactor};
use secrecy::zeroize::Zeroizing;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};

/// After the agent exits, how long its output pipes may stay open (a lingering grandchild)
/// before we stop reading them.
const PIPE_GRACE: Duration = Duration::from_millis(300);

/// The longest stdout line kept, in bytes; longer lines are cut (and masked at the cut).
pub(crate) const STDOUT_LINE_MAX: usize = 2000;
/// The longest stderr line kept, in bytes.
pub(crate) const STDERR_LINE_MAX: usize = 500;

/// How much output to keep: enough for a metadata document, bounded for a flood.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keep {
    /// Lines kept of stdout.
    pub(crate) stdout_lines: usize,
    /// Lines kept of stderr.
    pub(crate) stderr_lines: usize,
}

impl Keep {
    /// For power actions: the last lines say what happened.
    pub(crate) const ACTION: Keep = Keep {
        stdout_lines: 20,
        stderr_lines: 20,
    };
    /// For `-o metadata`: the whole document (a few hundred lines).
    pub(crate) const METADATA: Keep = Keep {
        stdout_lines: 5000,
        stderr_lines: 20,
    };
}

/// Everything a fence agent is started with. The stdin text carries the secrets and is
/// wiped from memory when dropped; `args` never does.
pub(crate) struct Invocation {
    /// The agent executable.
    pub(crate) program: PathBuf,
    /// Command-line arguments: empty for stdin mode, `-o metadata` for metadata.
    pub(crate) args: Vec<String>,
    /// `key=value` lines.
    pub(crate) stdin: Zeroizing<String>,
}

impl Invocation {
    /// The FenceAgentAPI stdin form: one `key=value` per line.
    pub(crate) fn stdin_mode<'a>(
        program: PathBuf,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Invocation {
        let mut stdin = Zeroizing::new(String::new());
        for (key, value) in pairs {
            stdin.push_str(key);
            stdin.push('=');
            stdin.push_str(value);
            stdin.push('\n');
        }
        Invocation {
            program,
            args: Vec::new(),
            stdin,
        }
    }

    /// `agent -o metadata`, no stdin.
    pub(crate) fn metadata(program: PathBuf) -> Invocation {
        Invocation {
            program,
            args: vec!["-o".to_owned(), "metadata".to_owned()],
            stdin: Zeroizing::new(String::new()),
        }
    }
}

/// How an agent run ended.
#[derive(Debug)]
pub(crate) struct Output {
    /// Its exit status.
    pub(crate) status: ExitStatus,
    /// The last lines of stdout, the secrets the agent was given masked.
    pub(crate) stdout: Vec<String>,
    /// The last lines of stderr, the secrets the agent was given masked.
    pub(crate) stderr: Vec<String>,
    /// Masks those secrets; whoever quotes these lines shorter cuts them with it.
    pub(crate) redactor: Redactor,
}

/// Run `invocation` with `LANG=C`, killing the agent's process group at `deadline`.
///
/// Errors are only about running it (cannot start: `Unsupported`; deadline: `Timeout`);
/// what the exit status means is for the caller. `label` prefixes error details. Output is
/// masked with `redactor` as it is read, since long lines are cut there.
pub(crate) async fn run(
    invocation: &Invocation,
    keep: Keep,
    label: &str,
    deadline: Instant,
    redactor: &Redactor,
) -> Result<Output, DriverError> {
    let mut command = process::command(&invocation.program);
    command
        .args(&invocation.args)
        .env("LANG", "C")
        .env("LC_ALL", "C");
    let mut process = ProcessGroup::spawn(&mut command).map_err(|e| {
        DriverError::unsupported(format!(
            "{label}: cannot run {}: {e}",
            invocation.program.display()
        ))
    })?;
    let stdout: SharedTail = Arc::new(Mutex::new(Tail::new(
        keep.stdout_lines,
        STDOUT_LINE_MAX,
        redactor.clone(),
    )));
    let stderr: SharedTail = Arc::new(Mutex::new(Tail::new(
        keep.stderr_lines,
        STDERR_LINE_MAX,
        redactor.clone(),
    )));
    let mut drains = Vec::new();
    if let Some(pipe) = process.stdout() {
        drains.push(tokio::spawn(tail::drain(pipe, stdout.clone())));
    }
    if let Some(pipe) = process.stderr() {
        drains.push(tokio::spawn(tail::drain(pipe, stderr.clone())));
    }
    let stdin = process.stdin();
    let text: &[u8] = invocation.stdin.as_bytes();
    let work = async {
        if let Some(mut pipe) = stdin {
            // An agent that exits without reading stdin closes the pipe: not our failure.
            let _ = pipe.write_all(text).await;
            let _ = pipe.shutdown().await;
        }
        process.wait_for(Duration::MAX).await
    };
    let outcome = timeout_at(deadline, work).await;
    let status = match outcome {
        Ok(Some(status)) => status,
        Ok(None) => {
            process.kill_and_reap().await;
            abort_all(&drains);
            return Err(DriverError::unreachable(format!(
                "{label}: lost track of the agent process"
            )));
        }
        Err(_) => {
            process.kill_and_reap().await;
            for drain in &mut drains {
                let _ = tokio::time::timeout(PIPE_GRACE, drain).await;
            }
            abort_all(&drains);
            let mut detail =
                format!("{label}: the agent did not finish before the deadline; killed it");
            let last = tail::snapshot(&stderr);
            if let Some(line) = last.iter().rev().find(|l| !l.trim().is_empty()) {
                detail.push_str(&format!("; last stderr line: {}", line.trim()));
            }
            return Err(DriverError::timeout(detail));
        }
    };
    for drain in &mut drains {
        let _ = tokio::time::timeout(PIPE_GRACE, drain).await;
    }
    abort_all(&drains);
    Ok(Output {
        status,
        stdout: tail::snapshot(&stdout),
        stderr: tail::snapshot(&stderr),
        redactor: redactor.clone(),
    })
}

fn abort_all(tasks: &[tokio::task::JoinHandle<()>]) {
    for task in tasks {
        task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_mode_puts_everything_on_stdin_and_nothing_in_argv() {
        let inv = Invocation::stdin_mode(
            PathBuf::from("/usr/sbin/fence_x"),
            [
                ("ip", "10.0.0.1"),
                ("password", "pw-1"),
                ("action", "status"),
            ],
        );
        assert!(inv.args.is_empty());
        assert_eq!(&*inv.stdin, "ip=10.0.0.1\npassword=pw-1\naction=status\n");
        let meta = Invocation::metadata(PathBuf::from("fence_x"));
        assert_eq!(meta.args, ["-o", "metadata"]);
        assert!(meta.stdin.is_empty());
    }
}
