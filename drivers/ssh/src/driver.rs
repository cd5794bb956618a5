//! The SSH driver: deliver `poweroff -f` to a host whose identity is verified, then watch it
//! go quiet. It cannot read power state and says so.

use crate::config::SshConfig;
use crate::known_hosts::{HostKeyPolicy, Verdict, fingerprint};
use crate::liveness;
use fencegate_driver::{
    Action, Capabilities, CommandReceipt, DeviceSpec, DriverError, DriverFactory, DriverFuture,
    ErrorKind, ExposeSecret, IdentityFact, PowerDriver, PowerState, SpecError,
};
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How much of the remote's stderr is kept for an error message.
const STDERR_TAIL: usize = 512;

/// Builds [`SshDriver`]s from `ssh` device specifications (see the crate documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct SshFactory;

impl DriverFactory for SshFactory {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn summary(&self) -> &'static str {
        "in-band `poweroff -f` over SSH (verified host key); can only show loss of liveness"
    }

    /// The private key, its passphrase, or a password for password authentication.
    fn secret_roles(&self) -> &'static [&'static str] {
        &["key", "passphrase", "password"]
    }

    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
        Ok(Arc::new(SshDriver::new(SshConfig::from_spec(spec)?)))
    }
}

/// Sends the power-off command to one host over SSH.
#[derive(Debug)]
pub struct SshDriver {
    config: SshConfig,
    endpoint: String,
    identity: Arc<Mutex<Vec<IdentityFact>>>,
}

/// What the host did with the command.
enum Outcome {
    /// The command ended with this exit status; the stderr tail.
    Exit(u32, String),
    /// The command was killed by a signal (as happens when the host goes down).
    Signal(String),
    /// The connection or channel went away; whether the exec request had been accepted.
    Lost { accepted: bool },
    /// The server refused the exec request.
    Refused,
}

/// Checks the host key during the handshake, before any credential is sent. It holds what
/// the check needs and nothing more: it lives inside russh's session for the connection's
/// lifetime, so a copy of the whole configuration would carry the password along.
struct Verifier {
    host: String,
    port: u16,
    host_keys: HostKeyPolicy,
    /// Why the key was rejected, for the error message.
    rejected: Arc<Mutex<Option<String>>>,
    identity: Arc<Mutex<Vec<IdentityFact>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                *lock(&self.rejected) = Some(
                    "the server offered a host certificate; only plain keys are checked".into(),
                );
                return Ok(false);
            }
        };
        let fp = fingerprint(key);
        match self.host_keys.check(&self.host, self.port, key) {
            Verdict::Trusted => {
                *lock(&self.identity) = vec![IdentityFact::new("ssh-host-key", fp)];
                Ok(true)
            }
            Verdict::Rejected(why) => {
                *lock(&self.rejected) = Some(format!("presented {fp}; {why}"));
                Ok(false)
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn tail(buf: &[u8]) -> String {
    let start = buf.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&buf[start..]).trim().to_owned()
}

impl SshDriver {
    /// A driver for a validated configuration (no I/O).
    pub fn new(config: SshConfig) -> Self {
        let host = if config.host.contains(':') {
            format!("[{}]", config.host)
        } else {
            config.host.clone()
        };
        let endpoint = format!("ssh://{host}:{}", config.port);
        SshDriver {
            config,
            endpoint,
            identity: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// TCP connect, handshake with host key check, authentication.
    async fn connect(&self) -> Result<Handle<Verifier>, DriverError> {
        let ep = &self.endpoint;
        let stream = TcpStream::connect((self.config.host.as_str(), self.config.port))
            .await
            .map_err(|e| {
                DriverError::unreachable(format!("{ep}: cannot connect ({e}); nothing was sent"))
            })?;
        let _ = stream.set_nodelay(true);
        let rejected = Arc::new(Mutex::new(None));
        let verifier = Verifier {
            host: self.config.host.clone(),
            port: self.config.port,
            host_keys: self.config.host_keys.clone(),
            rejected: Arc::clone(&rejected),
            identity: Arc::clone(&self.identity),
        };
        let config = Arc::new(client::Config {
            nodelay: true,
            ..Default::default()
        });
        let mut handle = match client::connect_stream(config, stream, verifier).await {
            Ok(h) => h,
            Err(e) => {
                if let Some(why) = lock(&rejected).take() {
                    return Err(DriverError::auth(format!(
                        "{ep}: host key mismatch ({why}); the connection was closed before \
                         authentication and nothing was sent"
                    )));
                }
                return Err(handshake_error(ep, e));
            }
        };
        let user = self.config.user.as_str();
        if let Some(key) = &self.config.auth.key {
            let hash = if key.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| handshake_error(ep, e))?
                    .unwrap_or(Some(HashAlg::Sha256))
            } else {
                None
            };
            let r = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::clone(key), hash))
                .await
                .map_err(|e| handshake_error(ep, e))?;
            if r.success() {
                return Ok(handle);
            }
        }
        if let Some(password) = &self.config.auth.password {
            let r = handle
                .authenticate_password(user, password.expose_secret())
                .await
                .map_err(|e| handshake_error(ep, e))?;
            if r.success() {
                return Ok(handle);
            }
        }
        Err(DriverError::auth(format!(
            "{ep}: the server refused authentication as `{user}` ({}); nothing was sent",
            match (&self.config.auth.key, &self.config.auth.password) {
                (Some(_), Some(_)) => "key and password",
                (Some(_), None) => "public key not authorized",
                _ => "password",
            }
        )))
    }

    /// Wait for what the command did, collecting the stderr tail.
    async fn outcome(channel: &mut russh::Channel<client::Msg>) -> Outcome {
        let mut accepted = false;
        let mut stderr = Vec::new();
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => accepted = true,
                Some(ChannelMsg::Failure) => return Outcome::Refused,
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    accepted = true;
                    stderr.extend_from_slice(&data);
                    if stderr.len() > 4 * STDERR_TAIL {
                        stderr.drain(..stderr.len() - STDERR_TAIL);
                    }
                }
                Some(ChannelMsg::Data { .. } | ChannelMsg::ExtendedData { .. }) => accepted = true,
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    return Outcome::Exit(exit_status, tail(&stderr));
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    return Outcome::Signal(format!("{signal_name:?}"));
                }
                Some(ChannelMsg::Close) | None => return Outcome::Lost { accepted },
                Some(_) => {}
            }
        }
    }

    async fn power_off(&self, deadline: Instant) -> Result<CommandReceipt, DriverError> {
        let ep = &self.endpoint;
        let start = Instant::now();
        let connect_by = deadline.min(start + self.config.connect_timeout);
        let handle = match tokio::time::timeout_at(connect_by.into(), self.connect()).await {
            Ok(r) => r?,
            Err(_) => {
                let kind = if connect_by >= deadline {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Unreachable
                };
                return Err(DriverError::new(
                    kind,
                    format!(
                        "{ep}: connect, handshake and authentication did not finish within {} ms; \
                         nothing was sent",
                        connect_by.saturating_duration_since(start).as_millis()
                    ),
                ));
            }
        };
        let exec = async {
            let channel = handle.channel_open_session().await?;
            channel.exec(true, self.config.command.as_bytes()).await?;
            Ok::<_, russh::Error>(channel)
        };
        let mut channel = match tokio::time::timeout_at(deadline.into(), exec).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(DriverError::unreachable(format!(
                    "{ep}: the session failed before the command could be sent ({e})"
                )));
            }
            Err(_) => {
                return Err(DriverError::timeout(format!(
                    "{ep}: deadline reached while opening the session; the command was not sent"
                )));
            }
        };
        tracing::debug!(endpoint = %ep, "poweroff command sent, watching liveness");
        let mut ports = vec![self.config.port];
        ports.extend(self.config.extra_port);
        let watch = liveness::watch(
            &self.config.host,
            &ports,
            self.config.liveness_hold,
            self.config.probe_interval,
            deadline,
        );
        tokio::pin!(watch);
        let delivered = tokio::select! {
            outcome = Self::outcome(&mut channel) => match outcome {
                Outcome::Exit(0, _) => "delivered (exit status 0)".to_owned(),
                Outcome::Signal(sig) => format!("delivered (the command was killed by {sig})"),
                Outcome::Lost { accepted: true } => {
                    "delivered (exec accepted, then the connection was lost)".to_owned()
                }
                Outcome::Lost { accepted: false } => {
                    "probably delivered (exec sent, then the connection was lost before it was \
                     acknowledged)"
                        .to_owned()
                }
                Outcome::Exit(code, stderr) => {
                    let kind = if code == 126 || code == 127 {
                        ErrorKind::Unsupported
                    } else {
                        ErrorKind::Protocol
                    };
                    let stderr = if stderr.is_empty() { "no stderr".to_owned() } else { stderr };
                    return Err(DriverError::new(kind, format!(
                        "{ep}: `{}` failed with exit status {code}: {stderr}",
                        self.config.command
                    )));
                }
                Outcome::Refused => {
                    return Err(DriverError::protocol(format!(
                        "{ep}: the server refused to run `{}`",
                        self.config.command
                    )));
                }
            },
            quiet = &mut watch => {
                return match quiet {
                    Ok(q) => Ok(CommandReceipt::new(format!(
                        "sent; no answer on the session, and port(s) {} quiet for {} ms",
                        port_list(&ports),
                        q.quiet_for.as_millis()
                    ))),
                    Err(alive) => Err(DriverError::timeout(format!(
                        "{ep}: `{}` sent, but neither an exit status nor a dropped connection \
                         came before the deadline, and the host still answers on port {} \
                         ({} ms before the deadline)",
                        self.config.command,
                        alive.port,
                        alive.answered_ago.as_millis()
                    ))),
                };
            }
        };
        drop(channel);
        drop(handle);
        match watch.await {
            Ok(q) => Ok(CommandReceipt::new(format!(
                "{delivered}; port(s) {} quiet for {} ms",
                port_list(&ports),
                q.quiet_for.as_millis()
            ))),
            Err(alive) => Err(DriverError::new(
                ErrorKind::VerificationFailed,
                format!(
                    "{ep}: {delivered}, but the host still answers on port {} (last answer {} ms \
                     before the deadline; needed {} ms of silence)",
                    alive.port,
                    alive.answered_ago.as_millis(),
                    self.config.liveness_hold.as_millis()
                ),
            )),
        }
    }
}

fn port_list(ports: &[u16]) -> String {
    let v: Vec<String> = ports.iter().map(u16::to_string).collect();
    v.join(", ")
}

fn handshake_error(ep: &str, e: russh::Error) -> DriverError {
    use russh::Error as E;
    match e {
        E::NoCommonAlgo { .. } => DriverError::unsupported(format!(
            "{ep}: no SSH algorithm in common with the server ({e}); nothing was sent"
        )),
        E::IO(_) | E::HUP | E::Disconnect | E::ConnectionTimeout | E::SendError => {
            DriverError::unreachable(format!(
                "{ep}: the connection failed during the handshake ({e}); nothing was sent"
            ))
        }
        other => DriverError::protocol(format!(
            "{ep}: SSH handshake failed ({other}); nothing was sent"
        )),
    }
}

impl PowerDriver for SshDriver {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reads_power_state: false,
            actions: vec![Action::Off],
            serialize_per_endpoint: true,
            min_command_interval: Duration::ZERO,
            channel: fencegate_driver::Channel::InBand,
            authenticated_identity: false,
            outlets: 0,
        }
    }

    fn status(&self, _deadline: Instant) -> DriverFuture<'_, PowerState> {
        Box::pin(async move {
            Err(DriverError::unsupported(format!(
                "{}: SSH cannot read power state",
                self.endpoint
            )))
        })
    }

    fn set_power(&self, action: Action, deadline: Instant) -> DriverFuture<'_, CommandReceipt> {
        Box::pin(async move {
            if action != Action::Off {
                return Err(DriverError::unsupported(format!(
                    "{}: SSH fencing can only power off (asked for {action})",
                    self.endpoint
                )));
            }
            self.power_off(deadline).await
        })
    }

    fn identity(&self) -> Vec<IdentityFact> {
        lock(&self.identity).clone()
    }
}
