//! One running driver program: spawned, greeted, configured, then asked one request at a
//! time, each under its deadline. Any transport failure ends the session; the caller drops
//! it and may start a new one.

use crate::lines::{LineError, LineReader};
use crate::process::{self, ProcessGroup, describe_exit};
use crate::protocol::{self, DriverHello, DriverMessage, HostHello, Op, Response, WireDevice};
use crate::tail::{self, SharedTail, Tail};
use fencegate_driver::Redactor;
use fencegate_driver::{DriverError, ErrorKind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

/// The longest line a driver may write. A response is a few hundred bytes; this leaves room
/// for long details while bounding memory.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// How many stderr lines to keep for error messages, and how long each may be.
const STDERR_LINES: usize = 5;
const STDERR_LINE_LEN: usize = 300;

/// After a driver closes stdout, how long to let it finish exiting and flushing stderr so
/// the error can say how it ended.
const EXIT_GRACE: Duration = Duration::from_millis(300);

/// The longest a polite shutdown may take before the driver is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How to start a driver program and how to name it in messages.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// The program to run.
    pub(crate) program: PathBuf,
    /// Its fixed arguments (never secrets).
    pub(crate) args: Vec<String>,
    /// "`prog` for device `x`", the prefix of every error detail.
    pub(crate) label: String,
    /// The secrets sent to it, masked out of anything it prints back.
    pub(crate) redactor: Redactor,
}

/// A greeted and configured driver process.
pub(crate) struct Session {
    process: ProcessGroup,
    stdin: ChildStdin,
    stdout: LineReader<ChildStdout>,
    stderr: SharedTail,
    stderr_task: JoinHandle<()>,
    next_id: u64,
    hello: DriverHello,
    label: String,
    redactor: Redactor,
}

impl Session {
    /// Spawn the program, exchange hellos, send `configure`, all before `deadline`.
    pub(crate) async fn start(
        launch: &Launch,
        device: &WireDevice<'_>,
        deadline: Instant,
    ) -> Result<Session, DriverError> {
        let mut command = process::command(&launch.program);
        command.args(&launch.args);
        let mut process = ProcessGroup::spawn(&mut command).map_err(|e| {
            DriverError::unsupported(format!(
                "{}: cannot start {}: {e}",
                launch.label,
                launch.program.display()
            ))
        })?;
        let (Some(stdin), Some(stdout), Some(stderr_pipe)) =
            (process.stdin(), process.stdout(), process.stderr())
        else {
            process.kill();
            return Err(DriverError::unreachable(format!(
                "{}: the driver's pipes could not be set up",
                launch.label
            )));
        };
        let stderr: SharedTail = Arc::new(Mutex::new(Tail::new(
            STDERR_LINES,
            STDERR_LINE_LEN,
            launch.redactor.clone(),
        )));
        let stderr_task = tokio::spawn(tail::drain(stderr_pipe, stderr.clone()));
        tracing::debug!(driver = %launch.label, pid = ?process.id(), "started external driver");
        let mut session = Session {
            process,
            stdin,
            stdout: LineReader::new(stdout, MAX_LINE),
            stderr,
            stderr_task,
            next_id: 1,
            // Replaced by the driver's own hello during the handshake.
            hello: DriverHello::default(),
            label: launch.label.clone(),
            redactor: launch.redactor.clone(),
        };
        match timeout_at(deadline, session.handshake(device)).await {
            Ok(Ok(())) => Ok(session),
            Ok(Err(fault)) => Err(session.end(fault).await),
            Err(_) => Err(session
                .end(Fault::new(
                    ErrorKind::Timeout,
                    "did not complete the hello and configure exchange before the deadline; killed it",
                ))
                .await),
        }
    }

    /// What the driver said about itself.
    pub(crate) fn hello(&self) -> &DriverHello {
        &self.hello
    }

    async fn handshake(&mut self, device: &WireDevice<'_>) -> Result<(), Fault> {
        self.send(&protocol::encode_hello(&HostHello::default()))
            .await?;
        let hello = match self.receive().await? {
            DriverMessage::Hello(hello) => hello,
            DriverMessage::Response(_) | DriverMessage::Other => {
                return Err(Fault::new(
                    ErrorKind::Protocol,
                    "its first message was not a hello",
                ));
            }
        };
        // Refuse before any secret is sent.
        hello
            .check_compatible()
            .map_err(|e| Fault::new(e.kind, e.detail))?;
        self.hello = hello;
        self.send(&protocol::encode_configure(0, device)).await?;
        let response = self.receive_response(0).await?;
        if response.ok && response.error.is_some() {
            return Err(Fault::new(
                ErrorKind::Protocol,
                "answered its configuration with both ok=true and an error",
            ));
        }
        if response.ok {
            return Ok(());
        }
        let (kind, detail) = match response.error {
            Some(e) => (e.kind, e.detail),
            None => (ErrorKind::Protocol, String::from("(no error given)")),
        };
        Err(Fault::new(
            kind,
            format!(
                "refused its configuration: {}",
                self.redactor.clip(&detail, protocol::MAX_QUOTE)
            ),
        ))
    }

    /// Send one request and wait for its response, before `deadline`.
    ///
    /// `Ok` carries whatever the driver answered, success or failure. `Err` means the
    /// session is finished (the driver was killed or is gone): drop it.
    pub(crate) async fn request(
        &mut self,
        op: Op,
        deadline: Instant,
    ) -> Result<Response, DriverError> {
        let id = self.next_id;
        self.next_id += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let deadline_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        let line = protocol::encode_request(id, op, deadline_ms);
        let exchange = async {
            self.send(&line).await?;
            self.receive_response(id).await
        };
        match timeout_at(deadline, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(fault)) => Err(self.end(fault).await),
            Err(_) => Err(self
                .end(Fault::new(
                    ErrorKind::Timeout,
                    format!(
                        "did not answer request {id} ({}) before its deadline; killed it",
                        op_name(op)
                    ),
                ))
                .await),
        }
    }

    /// Say goodbye, close stdin and give the driver a moment to exit; kill it otherwise.
    pub(crate) async fn shutdown(mut self, deadline: Instant) {
        let grace = deadline
            .saturating_duration_since(Instant::now())
            .min(SHUTDOWN_GRACE);
        let goodbye = async {
            let _ = self.stdin.write_all(&protocol::encode_shutdown()).await;
            let _ = self.stdin.shutdown().await;
        };
        let _ = tokio::time::timeout(grace, goodbye).await;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(SHUTDOWN_GRACE);
        if self.process.wait_for(left).await.is_none() {
            self.process.kill_and_reap().await;
        }
    }

    async fn send(&mut self, line: &[u8]) -> Result<(), Fault> {
        let write = async {
            self.stdin.write_all(line).await?;
            self.stdin.flush().await
        };
        write.await.map_err(|e| {
            Fault::new(
                ErrorKind::Unreachable,
                format!("could not be written to ({e})"),
            )
            .gone()
        })
    }

    async fn receive(&mut self) -> Result<DriverMessage, Fault> {
        loop {
            let line = match self.stdout.next_line().await {
                Ok(line) => line,
                Err(LineError::Eof) => {
                    return Err(Fault::new(ErrorKind::Unreachable, "closed its output").gone());
                }
                Err(LineError::TooLong(limit)) => {
                    return Err(Fault::new(
                        ErrorKind::Protocol,
                        format!("wrote a line longer than {limit} bytes"),
                    ));
                }
                Err(LineError::Io(e)) => {
                    return Err(Fault::new(
                        ErrorKind::Unreachable,
                        format!("output could not be read ({e})"),
                    )
                    .gone());
                }
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match protocol::decode(&line) {
                Ok(DriverMessage::Other) => continue,
                Ok(message) => return Ok(message),
                Err(why) => {
                    return Err(Fault::new(
                        ErrorKind::Protocol,
                        format!("wrote something that is not protocol v1: {why}"),
                    ));
                }
            }
        }
    }

    async fn receive_response(&mut self, id: u64) -> Result<Response, Fault> {
        match self.receive().await? {
            DriverMessage::Response(r) if r.id == id => Ok(r),
            DriverMessage::Response(r) => Err(Fault::new(
                ErrorKind::Protocol,
                format!("answered id {} while id {id} was pending", r.id),
            )),
            DriverMessage::Hello(_) | DriverMessage::Other => Err(Fault::new(
                ErrorKind::Protocol,
                format!("sent a second hello while id {id} was pending"),
            )),
        }
    }

    /// Finish the session after a fault: kill the process group, collect how it ended and
    /// its last stderr lines, and build the error (secrets masked).
    async fn end(&mut self, fault: Fault) -> DriverError {
        let status = if fault.gone {
            match self.process.wait_for(EXIT_GRACE).await {
                Some(status) => Some(status),
                None => self.process.kill_and_reap().await,
            }
        } else {
            self.process.kill_and_reap().await
        };
        // The pipe closes once the group is dead; let the drain catch the last lines.
        let _ = tokio::time::timeout(EXIT_GRACE, &mut self.stderr_task).await;
        let mut detail = format!("{}: driver {}", self.label, fault.what);
        if fault.gone {
            detail.push_str(&format!(" ({})", describe_exit(status)));
        }
        let stderr = tail::summary(&self.stderr);
        if !stderr.is_empty() {
            detail.push_str("; stderr: ");
            detail.push_str(&stderr);
        }
        let detail = self.redactor.redact(&detail);
        tracing::warn!(kind = %fault.kind, detail = %detail, "external driver session ended");
        DriverError::new(fault.kind, detail)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The process group is killed by `ProcessGroup`'s own drop.
        self.stderr_task.abort();
    }
}

/// The protocol name of an operation, for messages.
pub(crate) fn op_name(op: Op) -> String {
    match op {
        Op::Status => "status".to_owned(),
        Op::SetPower(action) => format!("set_power {action}"),
    }
}

/// What went wrong with a session, before it is turned into a [`DriverError`].
struct Fault {
    kind: ErrorKind,
    what: String,
    /// The driver went away by itself (rather than being killed for misbehaving).
    gone: bool,
}

impl Fault {
    fn new(kind: ErrorKind, what: impl Into<String>) -> Self {
        Fault {
            kind,
            what: what.into(),
            gone: false,
        }
    }

    fn gone(mut self) -> Self {
        self.gone = true;
        self
    }
}
