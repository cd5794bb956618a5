//! The `plugin` driver: a device served by a plugin library, each call run on a blocking
//! thread and bounded by its deadline.

use crate::ffi::Instance;
use crate::load::{self, LoadedPlugin};
use crate::reply::{Context, MAX_IDENTITY};
use fencegate_driver::Redactor;
use fencegate_driver::{
    Action, Capabilities, CommandReceipt, DeviceSpec, DriverError, DriverFactory, DriverFuture,
    IdentityFact, PowerDriver, PowerState, SpecError,
};
use fencegate_plugin_sdk::wire::{self, CONFIGURE_ID, Configure, Device, Message, Request};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{Instant, timeout_at};
use zeroize::Zeroizing;

/// Options fencegate consumes itself; every other option is passed to the plugin.
pub const RESERVED_OPTIONS: &[&str] = &["target", "endpoint"];

/// How long loading a library and configuring a device may take. Both are meant to be
/// instant (no device I/O); the bound only keeps a broken plugin from hanging the
/// configuration load.
pub const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds `plugin` drivers: `address` is the plugin library's path.
///
/// Building loads the library (once per process, cached by canonical path, never unloaded),
/// checks its ABI table and hands the plugin the device, so a wrong file, ABI or option is
/// refused with the configuration rather than at the first fence.
#[derive(Debug, Default, Clone, Copy)]
pub struct PluginFactory;

impl DriverFactory for PluginFactory {
    fn name(&self) -> &'static str {
        "plugin"
    }

    fn summary(&self) -> &'static str {
        "an in-process driver from a shared library speaking fencegate's plugin ABI 1"
    }

    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
        Ok(Arc::new(PluginDriver::new(spec)?))
    }
}

/// A device served by a plugin instance.
pub struct PluginDriver {
    endpoint: String,
    label: String,
    plugin: Arc<LoadedPlugin>,
    capabilities: Capabilities,
    /// Held by every call, also one abandoned at its deadline, so that the instance is
    /// destroyed only after the last call has left the plugin.
    instance: Arc<Instance>,
    /// One call at a time per instance (the ABI promises plugins that); the value is the
    /// id of the last request sent.
    next_id: Arc<tokio::sync::Mutex<u64>>,
    redactor: Redactor,
    identity: Mutex<Vec<IdentityFact>>,
}

impl std::fmt::Debug for PluginDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginDriver")
            .field("endpoint", &self.endpoint)
            .field("plugin", &self.plugin.name)
            .field("path", &self.plugin.path)
            .finish_non_exhaustive()
    }
}

/// The configure message as JSON, in a buffer wiped when dropped. It is sized up front so
/// that growing it does not leave copies of the secrets in freed memory.
fn encode_configure(spec: &DeviceSpec, target: Option<&str>) -> Zeroizing<Vec<u8>> {
    use fencegate_driver::ExposeSecret;
    let options = spec
        .options
        .iter()
        .filter(|(k, _)| !RESERVED_OPTIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let message = Message::Configure(Configure {
        id: CONFIGURE_ID,
        device: Device {
            name: spec.name.clone(),
            address: target.map(str::to_owned),
            user: spec.user.clone(),
            path: spec.path.clone(),
            options,
            secrets: spec.secrets.clone(),
        },
    });
    let text: usize = spec
        .options
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .chain(
            spec.secrets
                .iter()
                .map(|(k, v)| k.len() + v.expose_secret().len()),
        )
        .sum();
    // JSON escaping makes a byte at most six (`\u00XX`).
    let mut json = Zeroizing::new(Vec::with_capacity(1024 + 6 * (text + spec.name.len())));
    // Writing strings and maps into memory cannot fail; an empty message is refused by the
    // plugin, which would surface as a configure error.
    let _ = serde_json::to_writer(&mut *json, &message);
    json
}

/// What the loading thread hands back.
type Prepared = (Arc<LoadedPlugin>, Instance);

impl PluginDriver {
    /// Load the plugin, check it, and configure one instance for `spec` (bounded by
    /// [`CONFIGURE_TIMEOUT`]). Errors name the path and what mismatched, or the option the
    /// plugin refused.
    pub fn new(spec: &DeviceSpec) -> Result<Self, SpecError> {
        let path = spec.address.trim();
        if path.is_empty() {
            return Err(SpecError::for_key(
                "address",
                "the plugin driver needs the plugin library's path as its address",
            ));
        }
        let target = spec.option("target").map(str::to_owned);
        let endpoint = match (spec.option("endpoint"), &target) {
            (Some(e), _) if !e.trim().is_empty() => e.trim().to_owned(),
            (Some(_), _) => return Err(SpecError::for_key("endpoint", "must not be empty")),
            (None, Some(t)) => format!("plugin:{t}"),
            (None, None) => format!("plugin:{path}#{}", spec.name),
        };
        let redactor = Redactor::new(spec.secrets.values());
        let json = encode_configure(spec, target.as_deref());
        let (plugin, instance) = prepare(Path::new(path), &spec.name, json, redactor.clone())?;
        let hello = &plugin.hello;
        let capabilities = Capabilities {
            reads_power_state: hello.reads_power_state,
            channel: hello.channel(),
            authenticated_identity: hello.authenticated_identity,
            ..Capabilities::readable(&hello.known_actions())
        };
        Ok(PluginDriver {
            endpoint,
            label: label(&plugin, &spec.name),
            capabilities,
            instance: Arc::new(instance),
            plugin,
            next_id: Arc::default(),
            redactor,
            identity: Mutex::default(),
        })
    }

    /// The loaded plugin behind this driver (name, version, ABI header, hello).
    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }

    fn context(&self) -> Context<'_> {
        Context {
            label: &self.label,
            redactor: &self.redactor,
            authenticated_identity: self.capabilities.authenticated_identity,
        }
    }

    /// Send one request and return the checked response. The plugin runs on a blocking
    /// thread; at the deadline the caller gets `timeout` and that thread is abandoned (it
    /// holds the instance and the library, so neither goes away under it).
    async fn call(
        &self,
        op: &'static str,
        action: Option<Action>,
        deadline: std::time::Instant,
    ) -> Result<wire::Response, DriverError> {
        let deadline = Instant::from_std(deadline);
        let what = action.map_or(op.to_owned(), |a| format!("{op} {a}"));
        let supported = match action {
            None => self.capabilities.reads_power_state,
            Some(a) => self.capabilities.supports(a),
        };
        if !supported {
            return Err(DriverError::unsupported(format!(
                "{}: the plugin does not offer {what}",
                self.label
            )));
        }
        let now = Instant::now();
        if deadline <= now {
            return Err(DriverError::timeout(format!(
                "{}: the deadline had passed before {what} was sent",
                self.label
            )));
        }
        let mut turn = timeout_at(deadline, self.next_id.clone().lock_owned())
            .await
            .map_err(|_| {
                DriverError::timeout(format!(
                    "{}: an earlier call was still inside the plugin at the deadline of {what}",
                    self.label
                ))
            })?;
        *turn += 1;
        let id = *turn;
        let left = deadline.saturating_duration_since(Instant::now());
        let request = Message::Request(Request {
            id,
            op: op.to_owned(),
            action,
            deadline_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1),
        })
        .to_json();
        let instance = self.instance.clone();
        tracing::debug!(plugin = %self.plugin.name, endpoint = %self.endpoint, id, %what, "plugin call");
        let task = tokio::task::spawn_blocking(move || {
            let reply = instance.call(&request);
            drop(turn);
            reply
        });
        let bytes = match timeout_at(deadline, task).await {
            Err(_) => {
                return Err(DriverError::timeout(format!(
                    "{}: no answer to {what} by the deadline (the call is abandoned inside \
                     the plugin; later calls on this device wait for it)",
                    self.label
                )));
            }
            Ok(Err(join)) => {
                return Err(self
                    .context()
                    .protocol(&format!("the call thread failed: {join}")));
            }
            Ok(Ok(Err(why))) => return Err(self.context().protocol(&why)),
            Ok(Ok(Ok(bytes))) => bytes,
        };
        let response = self.context().response(&bytes, id)?;
        self.learn_identity(&response);
        Ok(response)
    }

    fn learn_identity(&self, response: &wire::Response) {
        let facts = self.context().identity(response);
        if facts.is_empty() {
            return;
        }
        if let Ok(mut known) = self.identity.lock() {
            for fact in facts {
                if !known.contains(&fact) && known.len() < MAX_IDENTITY {
                    known.push(fact);
                }
            }
        }
    }
}

fn label(plugin: &LoadedPlugin, device: &str) -> String {
    format!("plugin `{}` for device `{device}`", plugin.name)
}

/// Load and configure on a thread of its own, so that a plugin hanging in its initializers
/// or in `configure` costs an error after [`CONFIGURE_TIMEOUT`], not a hung configuration.
fn prepare(
    path: &Path,
    device: &str,
    json: Zeroizing<Vec<u8>>,
    redactor: Redactor,
) -> Result<Prepared, SpecError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path_owned = path.to_owned();
    let device_owned = device.to_owned();
    let spawned = std::thread::Builder::new()
        .name("fencegate-plugin-load".into())
        .spawn(move || {
            let outcome = (|| {
                let plugin = load::load(&path_owned)
                    .map_err(|e| SpecError::for_key("address", e.to_string()))?;
                let label = label(&plugin, &device_owned);
                let context = Context {
                    label: &label,
                    redactor: &redactor,
                    authenticated_identity: plugin.hello.authenticated_identity,
                };
                let (instance, reply) = Instance::configure(&plugin, &json);
                drop(json);
                let refused = |e: DriverError| {
                    let why = e.detail.strip_prefix(&label).unwrap_or(&e.detail);
                    let why = why.strip_prefix(": ").unwrap_or(why);
                    SpecError::new(format!("{label} refused its configuration: {why}"))
                };
                let reply = reply.map_err(|why| refused(context.protocol(&why)))?;
                let response = context.response(&reply, CONFIGURE_ID).map_err(refused)?;
                context.configured(response).map_err(refused)?;
                let instance = instance.ok_or_else(|| {
                    refused(context.protocol("replied ok to configure but returned no instance"))
                })?;
                Ok((plugin, instance))
            })();
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        return Err(SpecError::new(format!(
            "plugin {}: cannot start a loading thread: {e}",
            path.display()
        )));
    }
    rx.recv_timeout(CONFIGURE_TIMEOUT).unwrap_or_else(|_| {
        Err(SpecError::new(format!(
            "plugin {}: loading and configuring device `{device}` took longer than {} s",
            path.display(),
            CONFIGURE_TIMEOUT.as_secs()
        )))
    })
}

impl PowerDriver for PluginDriver {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    fn status(&self, deadline: std::time::Instant) -> DriverFuture<'_, PowerState> {
        Box::pin(async move {
            let response = self.call(wire::op::STATUS, None, deadline).await?;
            self.context().reading(response)
        })
    }

    fn set_power(
        &self,
        action: Action,
        deadline: std::time::Instant,
    ) -> DriverFuture<'_, CommandReceipt> {
        Box::pin(async move {
            let response = self
                .call(wire::op::SET_POWER, Some(action), deadline)
                .await?;
            self.context().receipt(response)
        })
    }

    fn identity(&self) -> Vec<IdentityFact> {
        self.identity.lock().map(|k| k.clone()).unwrap_or_default()
    }
}
