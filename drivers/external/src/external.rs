//! The `external` driver: any executable speaking protocol v1, kept running between calls.

use crate::protocol::{MAX_QUOTE, Op, Response, WireDevice};
use crate::session::{Launch, Session, op_name};
use fencegate_driver::Redactor;
use fencegate_driver::{
    Action, Capabilities, CommandReceipt, DeviceSpec, DriverError, DriverFactory, DriverFuture,
    ExposeSecret, IdentityFact, PowerDriver, PowerState, SecretString, SpecError,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::time::{Instant, timeout_at};

/// Options fencegate consumes itself; every other option is passed to the driver program.
pub const RESERVED_OPTIONS: &[&str] = &["args", "endpoint", "target", "max_respawns"];

/// How many times in a row a crashed driver is restarted before calls fail fast, unless the
/// `max_respawns` option says otherwise.
pub const DEFAULT_MAX_RESPAWNS: u32 = 3;

/// The ceiling on `max_respawns`: a driver that needs more is broken, not unlucky.
const MAX_RESPAWNS_LIMIT: u32 = 100;

/// Builds `external` drivers: `address` is the program, `args` its fixed arguments.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExternalFactory;

impl DriverFactory for ExternalFactory {
    fn name(&self) -> &'static str {
        "external"
    }

    fn summary(&self) -> &'static str {
        "an out-of-process driver program speaking fencegate's JSON-lines protocol v1"
    }

    /// Builds the driver, then refuses a program that anyone but root or fencegate's user
    /// could replace ([`crate::trusted_file`]) and runs it by its absolute path, so that no
    /// `PATH` search can start another file than the one checked.
    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
        let mut driver = ExternalDriver::new(spec)?;
        driver.launch.program = crate::trusted_file(&driver.launch.program, "driver program")?;
        Ok(Arc::new(driver))
    }
}

/// The device as the driver program will receive it in `configure`.
struct Device {
    name: String,
    target: Option<String>,
    user: Option<String>,
    path: Option<String>,
    options: BTreeMap<String, String>,
    secrets: BTreeMap<String, SecretString>,
}

impl Device {
    fn wire(&self) -> WireDevice<'_> {
        WireDevice {
            name: &self.name,
            address: self.target.as_deref(),
            user: self.user.as_deref(),
            path: self.path.as_deref(),
            options: self
                .options
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            secrets: self
                .secrets
                .iter()
                .map(|(k, v)| (k.as_str(), v.expose_secret()))
                .collect(),
        }
    }
}

/// The one child of a driver instance and the count of failures since it last answered.
#[derive(Default)]
struct Slot {
    session: Option<Session>,
    failures_in_a_row: u32,
    last_failure: Option<String>,
}

/// What the driver program told us about itself, for the sync, I/O-free accessors.
#[derive(Default)]
struct Learned {
    capabilities: Option<Capabilities>,
    identity: Vec<IdentityFact>,
}

/// An out-of-process driver. One long-lived child, started on the first call, restarted
/// after a crash (bounded), asked one request at a time.
pub struct ExternalDriver {
    endpoint: String,
    launch: Launch,
    device: Device,
    max_respawns: u32,
    slot: tokio::sync::Mutex<Slot>,
    learned: Mutex<Learned>,
}

impl std::fmt::Debug for ExternalDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalDriver")
            .field("endpoint", &self.endpoint)
            .field("program", &self.launch.program)
            .field("args", &self.launch.args)
            .finish_non_exhaustive()
    }
}

impl ExternalDriver {
    /// Validate `spec` (no I/O) and build the driver.
    pub fn new(spec: &DeviceSpec) -> Result<Self, SpecError> {
        let program = spec.address.trim();
        if program.is_empty() {
            return Err(SpecError::for_key(
                "address",
                "the external driver needs the driver program's path as its address",
            ));
        }
        let args: Vec<String> = spec
            .option("args")
            .map(|a| a.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let max_respawns = spec
            .parsed_option::<u32>("max_respawns")?
            .unwrap_or(DEFAULT_MAX_RESPAWNS);
        if max_respawns > MAX_RESPAWNS_LIMIT {
            return Err(SpecError::for_key(
                "max_respawns",
                format!("at most {MAX_RESPAWNS_LIMIT}"),
            ));
        }
        let target = spec.option("target").map(str::to_owned);
        let endpoint = match (spec.option("endpoint"), &target) {
            (Some(e), _) if !e.trim().is_empty() => e.trim().to_owned(),
            (Some(_), _) => return Err(SpecError::for_key("endpoint", "must not be empty")),
            (None, Some(t)) => format!("external:{t}"),
            (None, None) => format!("external:{program}#{}", spec.name),
        };
        let program_name = std::path::Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.to_owned());
        let options = spec
            .options
            .iter()
            .filter(|(k, _)| !RESERVED_OPTIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(ExternalDriver {
            endpoint,
            launch: Launch {
                program: PathBuf::from(program),
                args,
                label: format!("{program_name} for device `{}`", spec.name),
                redactor: Redactor::new(spec.secrets.values()),
            },
            device: Device {
                name: spec.name.clone(),
                target,
                user: spec.user.clone(),
                path: spec.path.clone(),
                options,
                secrets: spec.secrets.clone(),
            },
            max_respawns,
            slot: tokio::sync::Mutex::new(Slot::default()),
            learned: Mutex::new(Learned::default()),
        })
    }

    /// Run one operation: take the slot, start the child if needed, check the driver said
    /// it can do this, ask, and keep the session only if the exchange was clean.
    async fn call(&self, op: Op, deadline: std::time::Instant) -> Result<Response, DriverError> {
        let deadline = Instant::from_std(deadline);
        let label = &self.launch.label;
        if deadline <= Instant::now() {
            return Err(DriverError::timeout(format!(
                "{label}: the deadline had passed before {} was sent",
                op_name(op)
            )));
        }
        let mut slot = timeout_at(deadline, self.slot.lock()).await.map_err(|_| {
            DriverError::timeout(format!(
                "{label}: the previous request was still running at the deadline"
            ))
        })?;
        // The session is taken out of the slot for the exchange and put back only after a
        // clean one. If the caller drops this future mid-request, the session is dropped
        // with it (its process group killed), so a late answer can never be read as the
        // answer to a later request.
        let mut session = match slot.session.take() {
            Some(session) => session,
            None => {
                if slot.failures_in_a_row > self.max_respawns {
                    return Err(DriverError::unreachable(format!(
                        "{label}: driver failed {} times in a row, not restarting it until \
                         the device is released; last failure: {}",
                        slot.failures_in_a_row,
                        slot.last_failure.as_deref().unwrap_or("none recorded")
                    )));
                }
                match Session::start(&self.launch, &self.device.wire(), deadline).await {
                    Ok(session) => {
                        self.learn_capabilities(&session);
                        session
                    }
                    Err(e) => {
                        slot.failures_in_a_row += 1;
                        slot.last_failure = Some(e.to_string());
                        return Err(e);
                    }
                }
            }
        };
        if let Err(e) = self.check_supported(&session, op) {
            slot.session = Some(session);
            return Err(e);
        }
        match session.request(op, deadline).await {
            Ok(response) => {
                slot.session = Some(session);
                slot.failures_in_a_row = 0;
                slot.last_failure = None;
                self.learn_identity(&response);
                Ok(response)
            }
            Err(e) => {
                slot.failures_in_a_row += 1;
                slot.last_failure = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn check_supported(&self, session: &Session, op: Op) -> Result<(), DriverError> {
        let hello = session.hello();
        let supported = match op {
            Op::Status => hello.reads_power_state,
            Op::SetPower(action) => hello.known_actions().contains(&action),
        };
        if supported {
            Ok(())
        } else {
            Err(DriverError::unsupported(format!(
                "{}: driver `{}` does not offer {}",
                self.launch.label,
                self.launch.redactor.clip(&hello.name, MAX_QUOTE),
                op_name(op)
            )))
        }
    }

    fn learn_capabilities(&self, session: &Session) {
        let hello = session.hello();
        let capabilities = Capabilities {
            reads_power_state: hello.reads_power_state,
            channel: hello.channel(),
            authenticated_identity: hello.authenticated_identity,
            ..Capabilities::readable(&hello.known_actions())
        };
        if let Ok(mut learned) = self.learned.lock() {
            learned.capabilities = Some(capabilities);
        }
    }

    /// Keep the identity facts of a response (redacted, bounded). A fact counts as
    /// authenticated only if the driver said so for the fact *and* declared
    /// `authenticated_identity` in its hello: capabilities and facts must not disagree.
    fn learn_identity(&self, response: &Response) {
        if response.identity.is_empty() {
            return;
        }
        if let Ok(mut learned) = self.learned.lock() {
            let declared = learned
                .capabilities
                .as_ref()
                .is_some_and(|c| c.authenticated_identity);
            for fact in &response.identity {
                let fact = IdentityFact {
                    kind: self.launch.redactor.clip(&fact.kind, MAX_QUOTE),
                    value: self.launch.redactor.clip(&fact.value, MAX_QUOTE),
                    authenticated: declared && fact.authenticated,
                };
                if !learned.identity.contains(&fact) && learned.identity.len() < 16 {
                    learned.identity.push(fact);
                }
            }
        }
    }

    /// The driver's own failure, with its words masked and prefixed with our label.
    fn remote_error(&self, response: Response) -> DriverError {
        match response.error {
            Some(e) => DriverError::new(
                e.kind,
                format!(
                    "{}: {}",
                    self.launch.label,
                    self.launch.redactor.clip(&e.detail, MAX_QUOTE)
                ),
            ),
            None => DriverError::protocol(format!(
                "{}: driver answered ok=false without an error",
                self.launch.label
            )),
        }
    }

    /// A response that says both `ok` and gives an error contradicts itself: neither half
    /// is believed (its state must not become a reading, its error not a verdict).
    fn consistent(&self, response: Response) -> Result<Response, DriverError> {
        if response.ok && response.error.is_some() {
            return Err(DriverError::protocol(format!(
                "{}: driver answered ok=true with an error",
                self.launch.label
            )));
        }
        if !response.ok {
            return Err(self.remote_error(response));
        }
        Ok(response)
    }

    async fn read_state(&self, deadline: std::time::Instant) -> Result<PowerState, DriverError> {
        let response = self.consistent(self.call(Op::Status, deadline).await?)?;
        match response.state {
            Some(PowerState::Unknown(text)) => Ok(PowerState::Unknown(
                self.launch.redactor.clip(&text, MAX_QUOTE),
            )),
            Some(state) => Ok(state),
            None => Err(DriverError::protocol(format!(
                "{}: driver answered status without a state",
                self.launch.label
            ))),
        }
    }

    async fn command(
        &self,
        action: Action,
        deadline: std::time::Instant,
    ) -> Result<CommandReceipt, DriverError> {
        let response = self.consistent(self.call(Op::SetPower(action), deadline).await?)?;
        let detail = response
            .detail
            .map(|d| self.launch.redactor.clip(&d, MAX_QUOTE))
            .unwrap_or_else(|| format!("{action} accepted"));
        Ok(CommandReceipt::new(detail))
    }

    async fn stop(&self, deadline: std::time::Instant) -> Result<(), DriverError> {
        let deadline = Instant::from_std(deadline);
        let mut slot = timeout_at(deadline, self.slot.lock()).await.map_err(|_| {
            DriverError::timeout(format!(
                "{}: a request was still running at the release deadline",
                self.launch.label
            ))
        })?;
        slot.failures_in_a_row = 0;
        slot.last_failure = None;
        if let Some(session) = slot.session.take() {
            session.shutdown(deadline).await;
        }
        Ok(())
    }
}

impl PowerDriver for ExternalDriver {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Until the driver program has said hello, the optimistic default (reads state; off,
    /// on, cycle; channel `other`; no authenticated identity); afterwards exactly what its
    /// hello declared.
    fn capabilities(&self) -> Capabilities {
        self.learned
            .lock()
            .ok()
            .and_then(|l| l.capabilities.clone())
            .unwrap_or_else(|| Capabilities::readable(&[Action::Off, Action::On, Action::Cycle]))
    }

    fn status(&self, deadline: std::time::Instant) -> DriverFuture<'_, PowerState> {
        Box::pin(self.read_state(deadline))
    }

    fn set_power(
        &self,
        action: Action,
        deadline: std::time::Instant,
    ) -> DriverFuture<'_, CommandReceipt> {
        Box::pin(self.command(action, deadline))
    }

    fn identity(&self) -> Vec<IdentityFact> {
        self.learned
            .lock()
            .map(|l| l.identity.clone())
            .unwrap_or_default()
    }

    /// Shut the child down (politely, then by force) and give the restart budget back.
    fn release(&self, deadline: std::time::Instant) -> DriverFuture<'_, ()> {
        Box::pin(self.stop(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(options: &[(&str, &str)]) -> DeviceSpec {
        let mut spec = DeviceSpec {
            name: "dev1".into(),
            driver: "external".into(),
            address: "/opt/drivers/my-driver".into(),
            ..Default::default()
        };
        for (k, v) in options {
            spec.options.insert((*k).into(), (*v).into());
        }
        spec.secrets
            .insert("password".into(), SecretString::from("s3cret-value"));
        spec
    }

    #[test]
    fn options_split_between_fencegate_and_the_driver() {
        let d = ExternalDriver::new(&spec(&[
            ("args", "--mode  fast -v"),
            ("target", "10.1.2.3"),
            ("max_respawns", "1"),
            ("outlet", "4"),
        ]))
        .unwrap();
        assert_eq!(d.launch.args, ["--mode", "fast", "-v"]);
        assert_eq!(d.max_respawns, 1);
        assert_eq!(d.endpoint(), "external:10.1.2.3");
        assert_eq!(
            d.device.options.keys().collect::<Vec<_>>(),
            ["outlet"],
            "fencegate's own options are not passed on"
        );
        assert_eq!(d.launch.label, "my-driver for device `dev1`");
    }

    #[test]
    fn secrets_stay_out_of_argv_and_debug() {
        let d = ExternalDriver::new(&spec(&[("args", "--x")])).unwrap();
        assert!(d.launch.args.iter().all(|a| !a.contains("s3cret")));
        assert!(!format!("{d:?}").contains("s3cret"));
        let wire = d.device.wire();
        assert_eq!(wire.secrets.get("password"), Some(&"s3cret-value"));
    }

    #[test]
    fn bad_specs_name_the_key() {
        let mut s = spec(&[]);
        s.address = " ".into();
        assert_eq!(
            ExternalDriver::new(&s).unwrap_err().key.as_deref(),
            Some("address")
        );
        for (k, v) in [
            ("max_respawns", "x"),
            ("max_respawns", "1000"),
            ("endpoint", ""),
        ] {
            let e = ExternalDriver::new(&spec(&[(k, v)])).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(k), "{k}={v}");
        }
    }

    #[test]
    fn endpoint_defaults_name_program_and_device() {
        let d = ExternalDriver::new(&spec(&[])).unwrap();
        assert_eq!(d.endpoint(), "external:/opt/drivers/my-driver#dev1");
        let d = ExternalDriver::new(&spec(&[("endpoint", "pdu-a")])).unwrap();
        assert_eq!(d.endpoint(), "pdu-a");
        assert!(d.capabilities().reads_power_state);
    }
}
