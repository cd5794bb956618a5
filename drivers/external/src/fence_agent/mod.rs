//! The `fence-agent` driver: runs a stock ClusterLabs `fence_*` agent through its stdin
//! `key=value` protocol, one short-lived process per call.

mod exposure;
mod invocation;
mod kinds;
mod metadata;
mod names;
mod outcome;
#[doc(hidden)]
pub use outcome::{FuzzedRun, fuzz_agent_run};

pub use kinds::{
    AgentKind, ISOLATION_AGENTS, LEFT_OUT, NOT_FENCING_AGENTS, POWER_AGENTS, SWITCHES_POWER_OPTION,
    agent_kind,
};

pub use exposure::{AGENT_ADVICE, AgentAdvice, agent_advice};
use metadata::{AgentMetadata, normalize};
pub use names::{AGENT_DIRS, SECRET_PARAMETERS, resolve_agent, secret_parameter};
use names::{OWN_KEYS, check_key, role_for};

use fencegate_driver::{
    Action, Capabilities, Channel, CommandReceipt, DeviceSpec, DriverError, DriverFactory,
    DriverFuture, ExposeSecret, PowerDriver, PowerState, SecretString, SpecError,
};
use fencegate_driver::{Redactor, secret_like};
use invocation::{Invocation, Keep, Output, run};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::time::Instant;

/// One secret as the agent receives it.
struct AgentSecret {
    /// The stdin key (see [`SECRET_PARAMETERS`]).
    parameter: String,
    /// The role it was configured as, for messages.
    role: String,
    value: SecretString,
}

/// Builds `fence-agent` drivers: `address` is the agent (`fence_ipmilan` or a path), every
/// option becomes a stdin `key=value` line, every secret too (never argv). The agent's file
/// name decides whether it switches power or only isolates ([`agent_kind`]).
#[derive(Debug, Default, Clone)]
pub struct FenceAgentFactory {
    metadata: Arc<MetadataCache>,
}

impl FenceAgentFactory {
    /// A factory with an empty metadata cache (shared by the drivers it builds).
    pub fn new() -> Self {
        Self::default()
    }
}

impl DriverFactory for FenceAgentFactory {
    fn name(&self) -> &'static str {
        "fence-agent"
    }

    fn summary(&self) -> &'static str {
        "a stock fence-agents `fence_*` agent, run through its stdin key=value protocol"
    }

    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
        Ok(Arc::new(FenceAgentDriver::new(
            spec,
            self.metadata.clone(),
        )?))
    }

    /// Stock agents log in with a password (sent as their `password` parameter), and some
    /// take the other roles under their own parameter names.
    fn secret_roles(&self) -> &'static [&'static str] {
        AGENT_SECRET_ROLES
    }
}

/// The secret roles a fence agent may be given ([`SECRET_PARAMETERS`] maps each to the
/// agent's parameter; the cloud ones are sent under their own name).
pub const AGENT_SECRET_ROLES: &[&str] = &[
    "password",
    "passwd",
    "auth_password",
    "priv_password",
    "kg",
    "community",
    "token",
    "apikey",
    "api_key",
    "secret_key",
    "access_key",
    "secret",
];

/// The secret role a secret-like agent parameter is configured as: the role sent as that
/// parameter ([`SECRET_PARAMETERS`]), else the parameter's own name.
fn role_of_parameter(parameter: &str) -> String {
    if parameter == "snmp_priv_passwd" {
        return role_for(parameter).to_owned();
    }
    SECRET_PARAMETERS
        .iter()
        .find(|(_, p)| *p == parameter)
        .map(|(r, _)| (*r).to_owned())
        .unwrap_or_else(|| parameter.to_owned())
}

/// `-o metadata` results by agent path, so each agent is asked once per process.
#[derive(Debug, Default)]
struct MetadataCache(Mutex<HashMap<PathBuf, Arc<AgentMetadata>>>);

impl MetadataCache {
    fn get(&self, agent: &Path) -> Option<Arc<AgentMetadata>> {
        self.0.lock().ok()?.get(agent).cloned()
    }

    fn put(&self, agent: &Path, metadata: Arc<AgentMetadata>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(agent.to_owned(), metadata);
        }
    }
}

/// A device reached through a fence agent.
pub struct FenceAgentDriver {
    agent: PathBuf,
    /// Whether its "off" switches power (and on which kind of channel) or only isolates.
    kind: AgentKind,
    endpoint: String,
    label: String,
    options: BTreeMap<String, String>,
    user: Option<String>,
    secrets: Vec<AgentSecret>,
    redactor: Redactor,
    cache: Arc<MetadataCache>,
    /// The agent's metadata once it has been fetched and the configuration checked against it.
    checked: OnceLock<Arc<AgentMetadata>>,
}

impl std::fmt::Debug for FenceAgentDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FenceAgentDriver")
            .field("agent", &self.agent)
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("options", &self.options)
            .field("user", &self.user)
            .field(
                "secrets",
                &self.secrets.iter().map(|s| &s.role).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl FenceAgentDriver {
    fn new(spec: &DeviceSpec, cache: Arc<MetadataCache>) -> Result<Self, SpecError> {
        let agent = resolve_agent(spec.address.trim())?;
        let switches_power = spec.parsed_option::<bool>(SWITCHES_POWER_OPTION)?;
        let mut options = spec.options.clone();
        options.remove(SWITCHES_POWER_OPTION);
        for (key, value) in &options {
            check_key(key)?;
            let n = normalize(key);
            if OWN_KEYS.contains(&n.as_str()) {
                return Err(SpecError::for_key(
                    key,
                    "set by fencegate itself (the action per call, the user from the device's user)",
                ));
            }
            // An agent option is written on its stdin and shown in messages and `Debug`:
            // a credential there would be echoed. It must come as a secret (masked).
            if secret_like(&n) {
                let role = role_of_parameter(&n.to_ascii_lowercase());
                return Err(SpecError::for_key(
                    key,
                    format!(
                        "`{key}` is a secret: give the `{role}` secret \
                         (`{role}_file` or `{role}_env`) instead"
                    ),
                ));
            }
            if value.contains(['\n', '\r', '\0']) {
                return Err(SpecError::for_key(key, "the value must be a single line"));
            }
        }
        let mut secrets: Vec<AgentSecret> = Vec::new();
        for (role, value) in &spec.secrets {
            check_key(role)?;
            let parameter = secret_parameter(role);
            if OWN_KEYS.contains(&parameter.as_str()) {
                return Err(SpecError::for_key(role, "not a secret of a fence agent"));
            }
            if value.expose_secret().contains(['\n', '\r', '\0']) {
                return Err(SpecError::for_key(role, "the secret must be a single line"));
            }
            if let Some(other) = secrets.iter().find(|s| s.parameter == parameter) {
                return Err(SpecError::for_key(
                    role,
                    format!(
                        "`{role}` and `{}` would both be sent as `{parameter}`",
                        other.role
                    ),
                ));
            }
            if options.keys().any(|k| normalize(k) == parameter) {
                return Err(SpecError::for_key(
                    role,
                    format!("`{parameter}` is given both as an option and as a secret"),
                ));
            }
            secrets.push(AgentSecret {
                parameter,
                role: role.clone(),
                value: value.clone(),
            });
        }
        if let Some(user) = &spec.user
            && user.contains(['\n', '\r', '\0'])
        {
            return Err(SpecError::for_key("user", "the user must be a single line"));
        }
        let agent_name = agent
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| agent.display().to_string());
        let kind = agent_kind(&agent_name, switches_power)?;
        let host = spec
            .option("ip")
            .or_else(|| spec.option("ipaddr"))
            .map(|h| {
                if h.contains(':') && !h.starts_with('[') {
                    format!("[{h}]")
                } else {
                    h.to_owned()
                }
            });
        let endpoint = match (host, spec.option("ipport")) {
            (Some(h), Some(p)) => format!("{agent_name}://{h}:{p}"),
            (Some(h), None) => format!("{agent_name}://{h}"),
            (None, _) => format!("{agent_name}:{}", spec.name),
        };
        Ok(FenceAgentDriver {
            label: format!("{agent_name} for device `{}`", spec.name),
            agent,
            kind,
            endpoint,
            options,
            user: spec.user.clone(),
            secrets,
            redactor: Redactor::new(spec.secrets.values()),
            cache,
            checked: OnceLock::new(),
        })
    }

    /// The stdin lines for `action`: options, user, secrets, then the action and extras
    /// (the last value of a repeated name wins, so ours come last).
    fn invocation(&self, action: &str, extra: &[(&str, &str)]) -> Invocation {
        let options = self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let user = self.user.as_deref().map(|u| ("username", u));
        let secrets = self
            .secrets
            .iter()
            .map(|s| (s.parameter.as_str(), s.value.expose_secret()));
        let ours = std::iter::once(("action", action)).chain(extra.iter().copied());
        Invocation::stdin_mode(
            self.agent.clone(),
            options.chain(user).chain(secrets).chain(ours),
        )
    }

    /// Fetch the agent's metadata (once per agent, cached) and check every configured
    /// name against its parameters (once per driver).
    async fn metadata(&self, deadline: Instant) -> Result<Arc<AgentMetadata>, DriverError> {
        if let Some(checked) = self.checked.get() {
            return Ok(checked.clone());
        }
        let metadata = match self.cache.get(&self.agent) {
            Some(m) => m,
            None => {
                let output = run(
                    &Invocation::metadata(self.agent.clone()),
                    Keep::METADATA,
                    &self.label,
                    deadline,
                    // `-o metadata` is given no secret; masking its text could only break it.
                    &Redactor::default(),
                )
                .await
                .map_err(|e| self.scrub(e))?;
                let parsed = metadata::parse(&output.stdout.join("\n")).map_err(|why| {
                    DriverError::protocol(format!(
                        "{}: `{} -o metadata` gave no usable fence-agent metadata: {why}",
                        self.label,
                        self.agent.display()
                    ))
                })?;
                let parsed = Arc::new(parsed);
                self.cache.put(&self.agent, parsed.clone());
                parsed
            }
        };
        let mut unknown: Vec<String> = self
            .options
            .keys()
            .filter(|k| !metadata.knows(k))
            .map(|k| format!("`{k}`"))
            .collect();
        for secret in self
            .secrets
            .iter()
            .filter(|s| !metadata.knows(&s.parameter))
        {
            unknown.push(if secret.parameter == secret.role {
                format!("`{}`", secret.role)
            } else {
                format!("`{}` (the `{}` secret)", secret.parameter, secret.role)
            });
        }
        if self.user.is_some() && !metadata.knows("username") && !metadata.knows("login") {
            unknown.push("`username` (the device's user)".to_owned());
        }
        if !unknown.is_empty() {
            return Err(DriverError::unsupported(format!(
                "{}: the agent does not know {} (see `{} -o metadata`)",
                self.label,
                unknown.join(", "),
                self.agent.display()
            )));
        }
        Ok(self.checked.get_or_init(|| metadata).clone())
    }

    /// Run `action` after the metadata check, refusing actions the agent does not list.
    async fn act(
        &self,
        action: &str,
        extra: &[(&str, &str)],
        deadline: std::time::Instant,
    ) -> Result<Output, DriverError> {
        let deadline = Instant::from_std(deadline);
        if deadline <= Instant::now() {
            return Err(DriverError::timeout(format!(
                "{}: the deadline had passed before `{action}` could start",
                self.label
            )));
        }
        let metadata = self.metadata(deadline).await?;
        if !metadata.has_action(action) {
            return Err(DriverError::unsupported(format!(
                "{}: the agent has no `{action}` action",
                self.label
            )));
        }
        let invocation = self.invocation(action, extra);
        tracing::debug!(agent = %self.agent.display(), action, "running fence agent");
        run(
            &invocation,
            Keep::ACTION,
            &self.label,
            deadline,
            &self.redactor,
        )
        .await
        .map_err(|e| self.scrub(e))
    }

    /// An error whose detail may quote the agent, with every secret masked.
    fn scrub(&self, e: DriverError) -> DriverError {
        DriverError::new(e.kind, self.redactor.redact(&e.detail))
    }

    fn error(&self, (kind, detail): (fencegate_driver::ErrorKind, String)) -> DriverError {
        DriverError::new(
            kind,
            self.redactor.redact(&format!("{}: {detail}", self.label)),
        )
    }

    async fn read_state(&self, deadline: std::time::Instant) -> Result<PowerState, DriverError> {
        if self.kind == AgentKind::Isolation {
            // Its `Status: OFF` says the isolation holds while the host keeps running: it
            // must never be mistaken for a power reading, so it is not even asked.
            return Err(DriverError::unsupported(format!(
                "{}: an isolation agent (it cuts storage or network, or is not known to \
                 switch power; set `{SWITCHES_POWER_OPTION} = true` to vouch that it does): \
                 its status is not a power reading",
                self.label
            )));
        }
        let output = self.act("status", &[], deadline).await?;
        outcome::status_reading(&output).map_err(|e| self.error(e))
    }

    async fn command(
        &self,
        action: Action,
        deadline: std::time::Instant,
    ) -> Result<CommandReceipt, DriverError> {
        let output = match action {
            Action::Off => self.act("off", &[], deadline).await?,
            Action::On => self.act("on", &[], deadline).await?,
            Action::Cycle => {
                let metadata = self.metadata(Instant::from_std(deadline)).await?;
                let extra: &[(&str, &str)] = if metadata.knows("method") {
                    &[("method", "cycle")]
                } else {
                    &[]
                };
                self.act("reboot", extra, deadline).await?
            }
            Action::GracefulOff => {
                return Err(DriverError::unsupported(format!(
                    "{}: fence agents have no graceful power-off",
                    self.label
                )));
            }
            // An action added to the contract after this driver was written: run nothing.
            other => {
                return Err(DriverError::unsupported(format!(
                    "{}: fence agents have no action {other}",
                    self.label
                )));
            }
        };
        if output.status.success() {
            let said = outcome::success_detail(&output);
            Ok(CommandReceipt::new(
                self.redactor.redact(&format!("{}: {said}", self.label)),
            ))
        } else {
            Err(self.error(outcome::failure(&output)))
        }
    }
}

impl PowerDriver for FenceAgentDriver {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Until the metadata has been read, the usual agent set (status; off, on, cycle);
    /// afterwards what the agent lists (`status`, `off`, `on`, `reboot` as cycle). An
    /// isolation agent never reads power state, whatever it lists. Fence agents present no
    /// authenticated identity of the endpoint.
    fn capabilities(&self) -> Capabilities {
        let all = [
            (Action::Off, "off"),
            (Action::On, "on"),
            (Action::Cycle, "reboot"),
        ];
        let checked = self.checked.get();
        let actions: Vec<Action> = all
            .into_iter()
            .filter(|(_, name)| checked.is_none_or(|m| m.has_action(name)))
            .map(|(a, _)| a)
            .collect();
        let (reads_power_state, channel) = match self.kind {
            AgentKind::Power(channel) => (checked.is_none_or(|m| m.has_action("status")), channel),
            AgentKind::Isolation => (false, Channel::Isolation),
        };
        Capabilities {
            reads_power_state,
            channel,
            authenticated_identity: false,
            ..Capabilities::readable(&actions)
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(options: &[(&str, &str)], secrets: &[(&str, &str)]) -> DeviceSpec {
        let mut spec = DeviceSpec {
            name: "bmc1".into(),
            driver: "fence-agent".into(),
            // Any existing file will do for building; nothing is run here.
            address: "/bin/sh".into(),
            user: Some("admin".into()),
            ..Default::default()
        };
        for (k, v) in options {
            spec.options.insert((*k).into(), (*v).into());
        }
        for (k, v) in secrets {
            spec.secrets.insert((*k).into(), SecretString::from(*v));
        }
        spec
    }

    fn driver(options: &[(&str, &str)], secrets: &[(&str, &str)]) -> FenceAgentDriver {
        FenceAgentDriver::new(&spec(options, secrets), Arc::default()).unwrap()
    }

    #[test]
    fn secrets_go_to_stdin_never_to_argv() {
        let d = driver(
            &[("ip", "127.0.0.1"), ("lanplus", "1")],
            &[
                ("password", "pw-Secret-1"),
                ("snmp_priv_passwd", "pw-Secret-2"),
            ],
        );
        let inv = d.invocation("off", &[]);
        assert_eq!(inv.program, PathBuf::from("/bin/sh"));
        assert!(inv.args.is_empty(), "stdin mode has no arguments");
        for arg in inv
            .args
            .iter()
            .chain(std::iter::once(&inv.program.to_string_lossy().into_owned()))
        {
            assert!(!arg.contains("pw-Secret"), "secret in argv: {arg}");
        }
        assert_eq!(
            &*inv.stdin,
            "ip=127.0.0.1\nlanplus=1\nusername=admin\npassword=pw-Secret-1\n\
             snmp_priv_passwd=pw-Secret-2\naction=off\n"
        );
        let cycle = d.invocation("reboot", &[("method", "cycle")]);
        assert!(cycle.stdin.ends_with("action=reboot\nmethod=cycle\n"));
        assert!(!format!("{d:?}").contains("pw-Secret"));
    }

    #[test]
    fn secret_roles_map_to_agent_parameters() {
        let e = FenceAgentDriver::new(
            &spec(&[], &[("password", "a"), ("auth_password", "b")]),
            Arc::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("both be sent as `password`"), "{e}");
        let e = FenceAgentDriver::new(
            &spec(&[("community", "x")], &[("community", "y")]),
            Arc::default(),
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("community"));
        let e = FenceAgentDriver::new(&spec(&[("snmp_priv_passwd", "x")], &[]), Arc::default())
            .unwrap_err();
        assert!(e.message.contains("`priv_password_file`"), "{e}");
    }

    #[test]
    fn refuses_what_would_break_or_leak() {
        for (key, value) in [
            ("action", "off"),
            ("username", "x"),
            ("login", "x"),
            ("password", "oops"),
            ("snmp-priv-passwd", "oops"),
            ("ip", "1.2.3.4\naction=on"),
            ("bad key", "1"),
            ("=x", "1"),
        ] {
            let e = FenceAgentDriver::new(&spec(&[(key, value)], &[]), Arc::default()).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{key}");
            assert!(!e.to_string().contains("oops"));
        }
        let e =
            FenceAgentDriver::new(&spec(&[], &[("password", "a\nb")]), Arc::default()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("password"));
        assert!(!e.to_string().contains("a\nb"));
        assert!(
            FenceAgentDriver::new(
                &spec(&[("password_script", "/bin/pw")], &[]),
                Arc::default()
            )
            .is_ok(),
            "a password script is a command, not a secret"
        );
    }

    #[test]
    fn secret_like_options_are_refused_by_name_and_must_come_as_secrets() {
        for (key, role) in [
            ("apikey", "apikey"),
            ("secret_key", "secret_key"),
            ("access_key", "access_key"),
            ("token", "token"),
            ("Password", "password"),
            ("passwd", "passwd"),
            ("community", "community"),
            ("hexadecimal_kg", "kg"),
            ("snmp-priv-passwd", "priv_password"),
        ] {
            let e = FenceAgentDriver::new(&spec(&[(key, "Leaky-Value-1")], &[]), Arc::default())
                .unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{key}");
            assert!(e.message.contains(&format!("`{role}_file`")), "{key}: {e}");
            assert!(!e.to_string().contains("Leaky-Value-1"), "{e}");
        }
        // Given as secrets they go to stdin under the agent's name, masked everywhere else.
        let d = driver(
            &[("ip", "10.0.0.1")],
            &[("apikey", "Cloud-Key-1"), ("secret_key", "Cloud-Key-2")],
        );
        let inv = d.invocation("status", &[]);
        assert!(
            inv.stdin.contains("apikey=Cloud-Key-1\n"),
            "{}",
            &*inv.stdin
        );
        assert!(inv.stdin.contains("secret_key=Cloud-Key-2\n"));
        assert!(inv.args.is_empty());
        assert!(!format!("{d:?}").contains("Cloud-Key"));
        assert_eq!(
            d.redactor.clip("auth with Cloud-Key-1 then Cloud-Ke", 100),
            "auth with [redacted] then Cloud-Ke"
        );
        assert!(
            FenceAgentFactory::new()
                .secret_roles()
                .contains(&"password")
        );
    }

    #[test]
    fn endpoint_names_agent_and_box() {
        let d = driver(&[("ip", "10.0.0.5"), ("ipport", "623")], &[]);
        assert_eq!(d.endpoint(), "sh://10.0.0.5:623");
        assert_eq!(driver(&[], &[]).endpoint(), "sh:bmc1");
        assert_eq!(
            driver(&[("ip", "fd00::5")], &[]).endpoint(),
            "sh://[fd00::5]"
        );
        let unknown = driver(&[], &[]).capabilities();
        assert!(
            !unknown.reads_power_state,
            "`sh` is not known to switch power"
        );
        assert_eq!(unknown.channel, Channel::Isolation);
        let vouched = driver(&[(SWITCHES_POWER_OPTION, "true")], &[]);
        assert!(vouched.capabilities().reads_power_state);
        assert_eq!(vouched.capabilities().channel, Channel::Other);
        assert!(
            !vouched.options.contains_key(SWITCHES_POWER_OPTION),
            "fencegate's own option is not sent to the agent"
        );
        let e = FenceAgentFactory::new()
            .build(&spec(&[(SWITCHES_POWER_OPTION, "yes")], &[]))
            .err()
            .unwrap();
        assert_eq!(e.key.as_deref(), Some(SWITCHES_POWER_OPTION));
    }
}
