//! The fencegate driver: the factory, and one Redfish system reached over HTTPS.

use crate::http::{Credential, Http, Reply};
use crate::model::{self, ResetAction, RestoreSetting, ServiceRoot};
use crate::options::{AuthMode, Config, SystemRef};
use crate::session::{self, Login, Session};
use crate::tls::{self, Observed, Trust};
use fencegate_driver::{
    Action, Capabilities, Channel, CommandReceipt, DeviceSpec, DriverError, DriverFactory,
    DriverFuture, IdentityFact, PowerDriver, PowerState, RestorePolicy, SpecError,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a 202 task monitor is followed at most, for the receipt's detail only.
const TASK_FOLLOW: Duration = Duration::from_secs(2);
/// At most this many task monitor reads per command.
const TASK_POLLS: u32 = 8;
/// At most this many same-origin redirects are resolved for a system link (sushy aliases).
const MAX_REDIRECTS: u32 = 2;

/// Builds [`RedfishDriver`]s from `driver = "redfish"` device specifications.
///
/// Options: `system` (id, path or URL; default: the only system), `pin`
/// (`sha256:<hex>` of the leaf certificate), `ca_file` (PEM), `insecure` (bool), `auth`
/// (`session` | `basic` | `none`), `connect_timeout_ms`, `request_timeout_ms`, `proxy`
/// (`http://host:port`; the environment's proxy variables are never used). Secret:
/// `password`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedfishFactory;

impl DriverFactory for RedfishFactory {
    fn name(&self) -> &'static str {
        "redfish"
    }

    fn summary(&self) -> &'static str {
        "Redfish ComputerSystem power over HTTPS (certificate pinning, sessions, vendor quirks)"
    }

    /// The account password (session or basic authentication).
    fn secret_roles(&self) -> &'static [&'static str] {
        &["password"]
    }

    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
        Ok(Arc::new(RedfishDriver::from_spec(spec)?))
    }
}

/// What is kept between calls: the service root, the session and the resolved system.
#[derive(Debug, Default)]
struct Conn {
    root: Option<ServiceRoot>,
    session: Option<Session>,
    /// Session mode was asked for, but the service offers no SessionService.
    basic_fallback: bool,
    /// The resolved path of the system.
    system: Option<String>,
    /// The system's reset action and its allowed values, kept so that a command needs no
    /// extra GET (action metadata is not power state: it may be reused, readings never are).
    reset: Option<CachedReset>,
}

/// A reset action as last read, with the allowed values once known.
#[derive(Debug, Clone)]
struct CachedReset {
    action: ResetAction,
    /// `None` until read from the ActionInfo resource (or when the system lists none).
    allowed: Option<Vec<String>>,
    /// Whether `allowed` is final (inline, or the ActionInfo resource was read).
    resolved: bool,
}

impl CachedReset {
    fn new(action: ResetAction) -> Self {
        let resolved = action.allowed.is_some() || action.action_info.is_none();
        CachedReset {
            allowed: action.allowed.clone(),
            action,
            resolved,
        }
    }
}

/// What the system told us about itself, for identity facts.
#[derive(Debug, Default, Clone)]
struct Facts {
    uuid: Option<String>,
    serial: Option<String>,
}

/// The operations of a call.
#[derive(Debug, Clone, Copy)]
enum Op {
    Status,
    Reset(Action),
    ReadRestorePolicy,
    SetRestorePolicy(RestorePolicy),
    CountSupplies,
}

/// The result of an operation.
enum Outcome {
    State(PowerState),
    Receipt(CommandReceipt),
    Policy(RestorePolicy),
    Count(u32),
    Done,
}

impl Outcome {
    /// The error for an outcome of the wrong kind (a bug, never the BMC's doing).
    fn mismatch(op: &str) -> DriverError {
        DriverError::protocol(format!("internal: {op} gave another kind of result"))
    }
}

/// One Redfish ComputerSystem. Holds at most one session, reused across calls, logged out on
/// [`PowerDriver::release`] and after any failed call.
pub struct RedfishDriver {
    cfg: Config,
    http: Arc<Http>,
    observed: Arc<Observed>,
    conn: tokio::sync::Mutex<Conn>,
    facts: Mutex<Facts>,
}

impl std::fmt::Debug for RedfishDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishDriver")
            .field("endpoint", &self.cfg.endpoint)
            .field("system", &self.cfg.system)
            .field("user", &self.cfg.user)
            .field("auth", &self.cfg.auth)
            .field("trust", &self.cfg.trust)
            .finish_non_exhaustive()
    }
}

impl RedfishDriver {
    /// Validate a device specification and build the driver (no network I/O).
    pub fn from_spec(spec: &DeviceSpec) -> Result<Self, SpecError> {
        let cfg = Config::from_spec(spec)?;
        let observed = Arc::new(Observed::default());
        let tls = tls::client_config(&cfg.trust, Arc::clone(&observed)).map_err(SpecError::new)?;
        let http = Http::new(
            cfg.origin.clone(),
            cfg.endpoint.clone(),
            tls,
            Arc::clone(&observed),
            cfg.connect_timeout,
            cfg.request_timeout,
            cfg.proxy.as_ref(),
        )
        .map_err(SpecError::new)?;
        if matches!(cfg.trust, Trust::Insecure) {
            tracing::warn!(
                endpoint = cfg.endpoint,
                "insecure=true: the BMC's certificate is not verified, so anyone on the path \
                 can answer for it"
            );
        }
        Ok(RedfishDriver {
            cfg,
            http: Arc::new(http),
            observed,
            conn: tokio::sync::Mutex::new(Conn::default()),
            facts: Mutex::new(Facts::default()),
        })
    }

    fn ep(&self) -> &str {
        &self.cfg.endpoint
    }

    /// Run one operation under the connection lock; log the session out if it failed.
    async fn run(&self, op: Op, deadline: std::time::Instant) -> Result<Outcome, DriverError> {
        let deadline = Instant::from_std(deadline);
        if matches!(self.cfg.trust, Trust::Insecure) {
            tracing::warn!(
                endpoint = self.ep(),
                "insecure=true: using an unverified TLS connection; its readings prove nothing \
                 about which box answered"
            );
        }
        if Instant::now() >= deadline {
            return Err(DriverError::timeout(format!(
                "{}: the deadline had passed before the call started",
                self.ep()
            )));
        }
        let mut conn = tokio::time::timeout_at(deadline, self.conn.lock())
            .await
            .map_err(|_| {
                DriverError::timeout(format!(
                    "{}: another call held the connection until the deadline",
                    self.ep()
                ))
            })?;
        self.http.clear_refusal();
        let result = self.run_locked(&mut conn, op, deadline).await;
        if result.is_err() {
            // Whatever went wrong, start afresh next time: no session, no cached action.
            conn.reset = None;
            self.logout(&mut conn, deadline).await;
        }
        result
    }

    async fn run_locked(
        &self,
        conn: &mut Conn,
        op: Op,
        deadline: Instant,
    ) -> Result<Outcome, DriverError> {
        self.prepare(conn, deadline).await?;
        if let Op::Reset(action) = op
            && conn.reset.is_some()
        {
            return self
                .reset(conn, action, deadline)
                .await
                .map(Outcome::Receipt);
        }
        let (system, etag) = self.get_system(conn, deadline).await?;
        self.note_identity(&system);
        if conn.reset.is_none() {
            conn.reset = ResetAction::from_system(&system).map(CachedReset::new);
        }
        match op {
            Op::Status => Ok(Outcome::State(model::power_state(&system))),
            Op::Reset(action) => self
                .reset(conn, action, deadline)
                .await
                .map(Outcome::Receipt),
            Op::ReadRestorePolicy => self.restore_setting(conn, &system).map(Outcome::Policy),
            Op::SetRestorePolicy(policy) => {
                self.restore_setting(conn, &system)?;
                self.patch_restore_policy(conn, policy, etag.as_deref(), deadline)
                    .await
                    .map(|()| Outcome::Done)
            }
            Op::CountSupplies => self
                .count_supplies(conn, &system, deadline)
                .await
                .map(Outcome::Count),
        }
    }

    /// Count the installed power supplies of the system's chassis (`Links.Chassis[0]`): from
    /// the `PowerSubsystem`'s `PowerSupplies` collection (each member read for its status),
    /// else from the legacy `Power` resource's inline list. Only links the resources give
    /// are followed, each on the configured origin; no path is guessed.
    async fn count_supplies(
        &self,
        conn: &mut Conn,
        system: &Value,
        deadline: Instant,
    ) -> Result<u32, DriverError> {
        let system_path = conn
            .system
            .clone()
            .unwrap_or_else(|| "the system".to_owned());
        let link = model::chassis_link(system)
            .map_err(|why| {
                DriverError::protocol(format!("{}: GET {system_path}: {why}", self.ep()))
            })?
            .ok_or_else(|| {
                DriverError::unsupported(format!(
                    "{}: {system_path} names no chassis (Links.Chassis), so its power supplies \
                     cannot be counted",
                    self.ep()
                ))
            })?;
        let chassis_path = self.http.path(link)?;
        let chassis = self
            .get_resource(conn, &chassis_path, deadline)
            .await?
            .ok_or_else(|| {
                DriverError::unsupported(format!(
                    "{}: GET {chassis_path}: the chassis {system_path} links is not there \
                     (HTTP 404)",
                    self.ep()
                ))
            })?;
        // What was linked but not there, for the error when neither form answers.
        let mut missing = Vec::new();
        if let Some(link) = model::link(&chassis, "PowerSubsystem") {
            let path = self.http.path(link)?;
            match self.get_resource(conn, &path, deadline).await? {
                None => missing.push(format!("{path} (HTTP 404)")),
                Some(subsystem) => match model::link(&subsystem, "PowerSupplies") {
                    None => missing.push(format!("{path} without PowerSupplies")),
                    Some(link) => {
                        let path = self.http.path(link)?;
                        match self.get_resource(conn, &path, deadline).await? {
                            None => missing.push(format!("{path} (HTTP 404)")),
                            Some(collection) => {
                                let n = self
                                    .count_members(conn, &path, &collection, deadline)
                                    .await?;
                                return self.installed(n, &path);
                            }
                        }
                    }
                },
            }
        }
        if let Some(link) = model::link(&chassis, "Power") {
            let path = self.http.path(link)?;
            match self.get_resource(conn, &path, deadline).await? {
                None => missing.push(format!("{path} (HTTP 404)")),
                Some(power) => match model::legacy_supplies(&power) {
                    Ok(Some(n)) => return self.installed(n, &path),
                    Ok(None) => missing.push(format!("{path} without PowerSupplies")),
                    Err(why) => {
                        return Err(DriverError::protocol(format!(
                            "{}: GET {path}: {why}",
                            self.ep()
                        )));
                    }
                },
            }
        }
        let tried = if missing.is_empty() {
            String::new()
        } else {
            format!(" (linked but missing: {})", missing.join(", "))
        };
        Err(DriverError::unsupported(format!(
            "{}: {chassis_path} offers no power supply list: neither a \
             PowerSubsystem/PowerSupplies collection nor a Power resource with \
             PowerSupplies{tried}",
            self.ep()
        )))
    }

    /// Read every member of a `PowerSupplies` collection and count the installed ones.
    async fn count_members(
        &self,
        conn: &mut Conn,
        collection_path: &str,
        collection: &Value,
        deadline: Instant,
    ) -> Result<usize, DriverError> {
        let members = model::supply_members(collection).map_err(|why| {
            DriverError::protocol(format!("{}: GET {collection_path}: {why}", self.ep()))
        })?;
        let mut installed = 0;
        for link in members {
            let path = self.http.path(&link)?;
            let supply = self
                .get_resource(conn, &path, deadline)
                .await?
                .ok_or_else(|| {
                    DriverError::protocol(format!(
                        "{}: GET {path}: {collection_path} lists this power supply but it is \
                         not there (HTTP 404)",
                        self.ep()
                    ))
                })?;
            if model::supply_installed(&supply) {
                installed += 1;
            }
        }
        Ok(installed)
    }

    /// The count as the contract's number; none installed is `Unsupported`, because a
    /// running host has supplies and a BMC that lists none cannot count them (a blade's are
    /// in its enclosure), while zero would read as "no outlet needed".
    fn installed(&self, n: usize, path: &str) -> Result<u32, DriverError> {
        match u32::try_from(n) {
            Ok(0) => Err(DriverError::unsupported(format!(
                "{}: {path} lists no installed power supply: this BMC cannot count the supplies \
                 feeding the host",
                self.ep()
            ))),
            Ok(n) => Ok(n),
            Err(_) => Err(DriverError::protocol(format!(
                "{}: {path}: too many power supplies",
                self.ep()
            ))),
        }
    }

    /// GET a resource that must be a JSON object: `None` on 404 (the caller says what is
    /// missing), `Protocol` for a 200 that is not an object, the usual mapping otherwise.
    /// Redirects are not followed (only the system link's are, see [`Self::get_system`]).
    async fn get_resource(
        &self,
        conn: &mut Conn,
        path: &str,
        deadline: Instant,
    ) -> Result<Option<Value>, DriverError> {
        let reply = self
            .request(conn, Method::GET, path, None, deadline)
            .await?;
        match reply.status.as_u16() {
            200 if reply.body.is_object() => Ok(Some(reply.body)),
            200 => Err(DriverError::protocol(format!(
                "{}: GET {path}: the answer is not a JSON object",
                self.ep()
            ))),
            404 => Ok(None),
            _ => Err(self.http.status_error(&format!("GET {path}"), &reply)),
        }
    }

    /// The system's restore policy; `Unsupported` when it has none, `Protocol` when it
    /// says something outside the schema.
    fn restore_setting(&self, conn: &Conn, system: &Value) -> Result<RestorePolicy, DriverError> {
        let path = conn.system.as_deref().unwrap_or("the system");
        match model::restore_setting(system) {
            RestoreSetting::Known(p) => Ok(p),
            RestoreSetting::Absent => Err(DriverError::unsupported(format!(
                "{}: {path} has no PowerRestorePolicy: this BMC does not expose the power \
                 restore policy over Redfish",
                self.ep()
            ))),
            RestoreSetting::Other(raw) => Err(DriverError::protocol(format!(
                "{}: {path}: PowerRestorePolicy is {raw:?}, none of AlwaysOn, AlwaysOff, \
                 LastState",
                self.ep()
            ))),
        }
    }

    /// PATCH the system's `PowerRestorePolicy`, guarded by `If-Match` when the system was
    /// served with an ETag (so a concurrent change is refused, not overwritten).
    async fn patch_restore_policy(
        &self,
        conn: &mut Conn,
        policy: RestorePolicy,
        etag: Option<&str>,
        deadline: Instant,
    ) -> Result<(), DriverError> {
        let path = conn
            .system
            .clone()
            .ok_or_else(|| DriverError::protocol(format!("{}: no system resolved", self.ep())))?;
        let word = model::restore_word(policy).ok_or_else(|| {
            DriverError::unsupported(format!(
                "{}: no Redfish word for restore policy {policy}",
                self.ep()
            ))
        })?;
        let body = json!({ "PowerRestorePolicy": word });
        let headers: Vec<(&'static str, &str)> =
            etag.map(|t| ("If-Match", t)).into_iter().collect();
        let reply = self
            .request_with_headers(conn, Method::PATCH, &path, Some(&body), &headers, deadline)
            .await?;
        let what = format!("PATCH {path} PowerRestorePolicy={word}");
        match reply.status.as_u16() {
            200 | 202 | 204 => Ok(()),
            412 => Err(DriverError::protocol(format!(
                "{}: {what}: HTTP 412: the system changed since it was read (ETag {}): {}",
                self.ep(),
                model::clip(etag.unwrap_or("none")),
                reply.message()
            ))),
            _ => Err(self.http.status_error(&what, &reply)),
        }
    }

    /// Read the service root (only when it is needed: for the sessions link, or to find the
    /// systems collection), log in (or settle for basic auth) and resolve the system.
    async fn prepare(&self, conn: &mut Conn, deadline: Instant) -> Result<(), DriverError> {
        let needs_root =
            self.cfg.auth == AuthMode::Session || !matches!(self.cfg.system, SystemRef::Path(_));
        if conn.root.is_none() && needs_root {
            let reply = self
                .http
                .send(
                    Method::GET,
                    "/redfish/v1/",
                    Credential::Anonymous,
                    None,
                    deadline,
                )
                .await?;
            conn.root = Some(match reply.status {
                StatusCode::OK => ServiceRoot::from_json(&reply.body),
                // Some BMCs protect even the root: assume the specification's locations.
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ServiceRoot {
                    systems: "/redfish/v1/Systems".to_owned(),
                    sessions: Some("/redfish/v1/SessionService/Sessions".to_owned()),
                },
                _ => return Err(self.http.status_error("GET /redfish/v1/", &reply)),
            });
        }
        self.ensure_auth(conn, deadline).await?;
        if conn.system.is_none() {
            conn.system = Some(self.resolve_system(conn, deadline).await?);
        }
        Ok(())
    }

    async fn ensure_auth(&self, conn: &mut Conn, deadline: Instant) -> Result<(), DriverError> {
        if self.cfg.auth != AuthMode::Session || conn.basic_fallback || conn.session.is_some() {
            return Ok(());
        }
        let Some(password) = &self.cfg.password else {
            return Ok(());
        };
        let sessions = conn.root.as_ref().and_then(|r| r.sessions.clone());
        let Some(sessions) = sessions else {
            tracing::debug!(
                endpoint = self.ep(),
                "no SessionService: using basic authentication"
            );
            conn.basic_fallback = true;
            return Ok(());
        };
        match session::login(&self.http, &sessions, &self.cfg.user, password, deadline).await? {
            Login::Opened(s) => conn.session = Some(s),
            Login::NotOffered => {
                tracing::debug!(
                    endpoint = self.ep(),
                    "the SessionService refused to open sessions: using basic authentication"
                );
                conn.basic_fallback = true;
            }
        }
        Ok(())
    }

    fn credential<'a>(&'a self, conn: &'a Conn) -> Credential<'a> {
        match (&conn.session, &self.cfg.password, self.cfg.auth) {
            (_, _, AuthMode::None) | (None, None, _) => Credential::Anonymous,
            (Some(s), _, _) => s.credential(),
            (None, Some(password), _) => Credential::Basic {
                user: &self.cfg.user,
                password,
            },
        }
    }

    /// An authenticated request. When a session token is refused (it may have expired), the
    /// driver logs in once more and repeats the request once; a second refusal is final.
    async fn request(
        &self,
        conn: &mut Conn,
        method: Method,
        link: &str,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<Reply, DriverError> {
        self.request_with_headers(conn, method, link, body, &[], deadline)
            .await
    }

    /// [`RedfishDriver::request`] with extra request headers.
    async fn request_with_headers(
        &self,
        conn: &mut Conn,
        method: Method,
        link: &str,
        body: Option<&Value>,
        headers: &[(&'static str, &str)],
        deadline: Instant,
    ) -> Result<Reply, DriverError> {
        let reply = self
            .http
            .send_with_headers(
                method.clone(),
                link,
                self.credential(conn),
                body,
                headers,
                deadline,
            )
            .await?;
        if reply.status != StatusCode::UNAUTHORIZED || conn.session.is_none() {
            return Ok(reply);
        }
        tracing::debug!(
            endpoint = self.ep(),
            "session token refused: logging in once more"
        );
        conn.session = None;
        self.ensure_auth(conn, deadline).await?;
        self.http
            .send_with_headers(method, link, self.credential(conn), body, headers, deadline)
            .await
    }

    async fn get_json(
        &self,
        conn: &mut Conn,
        link: &str,
        deadline: Instant,
    ) -> Result<Value, DriverError> {
        let reply = self
            .request(conn, Method::GET, link, None, deadline)
            .await?;
        if reply.status != StatusCode::OK {
            return Err(self.http.status_error(&format!("GET {link}"), &reply));
        }
        Ok(reply.body)
    }

    /// Find the system's path from the configuration and the systems collection.
    async fn resolve_system(
        &self,
        conn: &mut Conn,
        deadline: Instant,
    ) -> Result<String, DriverError> {
        let systems = conn
            .root
            .as_ref()
            .map(|r| r.systems.clone())
            .unwrap_or_else(|| "/redfish/v1/Systems".to_owned());
        let wanted = match &self.cfg.system {
            SystemRef::Path(p) => return Ok(p.clone()),
            SystemRef::Id(id) => Some(id.clone()),
            SystemRef::Only => None,
        };
        let collection = self.get_json(conn, &systems, deadline).await?;
        let members = model::members(&collection);
        match wanted {
            Some(id) => {
                if let Some(m) = members.iter().find(|m| model::last_segment(m) == id) {
                    return self.http.path(m);
                }
                // Not a member id: maybe a name alias the service redirects (sushy does).
                Ok(format!("{}/{id}", systems.trim_end_matches('/')))
            }
            None => match members.as_slice() {
                [only] => self.http.path(only),
                [] => Err(DriverError::protocol(format!(
                    "{}: {systems} lists no systems",
                    self.ep()
                ))),
                several => Err(DriverError::unsupported(format!(
                    "{}: {systems} lists {} systems ({}); set option `system` to one of them",
                    self.ep(),
                    several.len(),
                    several
                        .iter()
                        .map(|m| model::clip(model::last_segment(m)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            },
        }
    }

    /// GET the system, resolving same-origin redirects (and remembering where they led);
    /// the resource and its ETag, if it has one.
    async fn get_system(
        &self,
        conn: &mut Conn,
        deadline: Instant,
    ) -> Result<(Value, Option<String>), DriverError> {
        for _ in 0..=MAX_REDIRECTS {
            let path = conn.system.clone().ok_or_else(|| {
                DriverError::protocol(format!("{}: no system resolved", self.ep()))
            })?;
            let reply = self
                .request(conn, Method::GET, &path, None, deadline)
                .await?;
            match reply.status.as_u16() {
                200 if reply.body.is_object() => {
                    let etag = reply.header("ETag").map(str::to_owned);
                    return Ok((reply.body, etag));
                }
                200 => {
                    return Err(DriverError::protocol(format!(
                        "{}: GET {path}: the answer is not a JSON object",
                        self.ep()
                    )));
                }
                301 | 302 | 303 | 307 | 308 => {
                    let location = reply.header("Location").ok_or_else(|| {
                        DriverError::protocol(format!(
                            "{}: GET {path}: HTTP {} without a Location",
                            self.ep(),
                            reply.status.as_u16()
                        ))
                    })?;
                    let next = self.http.path(location)?;
                    tracing::debug!(
                        endpoint = self.ep(),
                        from = path,
                        to = next,
                        "system link redirected"
                    );
                    conn.system = Some(next);
                }
                404 => {
                    return Err(DriverError::unsupported(format!(
                        "{}: GET {path}: no such system (HTTP 404): {}",
                        self.ep(),
                        reply.message()
                    )));
                }
                _ => return Err(self.http.status_error(&format!("GET {path}"), &reply)),
            }
        }
        Err(DriverError::protocol(format!(
            "{}: the system link redirects more than {MAX_REDIRECTS} times",
            self.ep()
        )))
    }

    /// Keep the UUID and serial number the system stated in its latest reading, so that a
    /// different system answering later shows as a change.
    fn note_identity(&self, system: &Value) {
        let (uuid, serial) = model::identity(system);
        *self.facts.lock().unwrap_or_else(|p| p.into_inner()) = Facts { uuid, serial };
    }

    /// Whether what the BMC says came over TLS whose certificate was verified (a pin or a
    /// CA): only then did the BMC prove who it is. With `insecure`, anyone on the path can
    /// answer with any UUID.
    fn verified_tls(&self) -> bool {
        matches!(self.cfg.trust, Trust::Pin(_) | Trust::CaFile(_))
    }

    async fn reset(
        &self,
        conn: &mut Conn,
        action: Action,
        deadline: Instant,
    ) -> Result<CommandReceipt, DriverError> {
        let mut cached = conn.reset.clone().ok_or_else(|| {
            DriverError::unsupported(format!(
                "{}: the system has no #ComputerSystem.Reset action",
                self.ep()
            ))
        })?;
        if !cached.resolved {
            if let Some(info) = &cached.action.action_info {
                cached.allowed = self.action_info(conn, info, deadline).await?;
            }
            cached.resolved = true;
            conn.reset = Some(cached.clone());
        }
        let reset_type = model::choose_reset_type(action, cached.allowed.as_deref())
            .map_err(|why| DriverError::unsupported(format!("{}: {action}: {why}", self.ep())))?;
        let target = self.http.path(&cached.action.target)?;
        let body = json!({ "ResetType": reset_type });
        let reply = self
            .request(conn, Method::POST, &target, Some(&body), deadline)
            .await?;
        let what = format!("POST {target} ResetType={reset_type}");
        match reply.status.as_u16() {
            200 | 204 => Ok(CommandReceipt::new(format!(
                "{what}: accepted (HTTP {})",
                reply.status.as_u16()
            ))),
            202 => {
                let task = self.follow_task(conn, &reply, deadline).await;
                Ok(CommandReceipt::new(format!(
                    "{what}: accepted (HTTP 202); {task}"
                )))
            }
            409 => Err(DriverError::state_conflict(format!(
                "{}: {what}: HTTP 409: {}",
                self.ep(),
                reply.message()
            ))),
            400 if model::says_already_in_state(&reply.message(), action) => {
                Err(DriverError::state_conflict(format!(
                    "{}: {what}: HTTP 400: {}",
                    self.ep(),
                    reply.message()
                )))
            }
            _ => Err(self.http.status_error(&what, &reply)),
        }
    }

    /// The allowed reset types from an ActionInfo resource; `None` if it cannot be read
    /// (ForceOff, the standard value, is then tried and the BMC judges).
    async fn action_info(
        &self,
        conn: &mut Conn,
        link: &str,
        deadline: Instant,
    ) -> Result<Option<Vec<String>>, DriverError> {
        let path = self.http.path(link)?;
        let reply = self
            .request(conn, Method::GET, &path, None, deadline)
            .await?;
        match reply.status {
            StatusCode::OK => Ok(model::action_info_allowed(&reply.body)),
            StatusCode::UNAUTHORIZED => Err(self.http.status_error(&format!("GET {path}"), &reply)),
            other => {
                tracing::debug!(
                    endpoint = self.ep(),
                    status = other.as_u16(),
                    "ActionInfo unreadable"
                );
                Ok(None)
            }
        }
    }

    /// Follow a 202's task monitor briefly, for the receipt only: a task's "Completed" is the
    /// BMC's opinion about its job, never proof of the power state.
    async fn follow_task(&self, conn: &mut Conn, accepted: &Reply, deadline: Instant) -> String {
        let link = accepted.header("Location").map(str::to_owned).or_else(|| {
            accepted
                .body
                .get("@odata.id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let Some(link) = link else {
            return "no task monitor given".to_owned();
        };
        let monitor = match self.http.path(&link) {
            Ok(p) => p,
            Err(e) => return format!("task monitor not followed: {}", e.detail),
        };
        let until = deadline.min(Instant::now() + TASK_FOLLOW);
        let mut last = describe_task(&accepted.body);
        for _ in 0..TASK_POLLS {
            let wait = accepted
                .header("Retry-After")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_millis(250))
                .min(Duration::from_millis(500));
            if Instant::now() + wait >= until {
                break;
            }
            tokio::time::sleep(wait).await;
            match self.request(conn, Method::GET, &monitor, None, until).await {
                Ok(r) if r.status == StatusCode::ACCEPTED => last = describe_task(&r.body),
                Ok(r) if r.status.is_success() => {
                    return format!(
                        "task {monitor} finished (HTTP {}){}",
                        r.status.as_u16(),
                        describe_task(&r.body)
                    );
                }
                Ok(r) => {
                    return format!(
                        "task {monitor}: HTTP {}: {}",
                        r.status.as_u16(),
                        r.message()
                    );
                }
                Err(e) => return format!("task {monitor} not followed further: {}", e.detail),
            }
        }
        format!("task {monitor} still running{last}")
    }

    /// Log the session out (bounded); when the deadline has passed, in the background.
    async fn logout(&self, conn: &mut Conn, deadline: Instant) {
        let Some(s) = conn.session.take() else {
            return;
        };
        if Instant::now() < deadline {
            session::logout(&self.http, s, deadline).await;
        } else if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let http = Arc::clone(&self.http);
            rt.spawn(async move {
                session::logout(&http, s, Instant::now() + session::LOGOUT_TIMEOUT).await;
            });
        }
    }
}

/// `: TaskState …, TaskStatus …` from a task body, when it has them.
fn describe_task(body: &Value) -> String {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(model::clip);
    match (field("TaskState"), field("TaskStatus")) {
        (Some(s), Some(st)) => format!(": TaskState {s}, TaskStatus {st}"),
        (Some(s), None) => format!(": TaskState {s}"),
        _ => String::new(),
    }
}

impl Drop for RedfishDriver {
    /// A driver dropped without [`PowerDriver::release`] still gives its session back, in
    /// the background, when a runtime is there to run the logout.
    fn drop(&mut self) {
        let Some(s) = self.conn.get_mut().session.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let http = Arc::clone(&self.http);
            rt.spawn(async move {
                session::logout(&http, s, Instant::now() + session::LOGOUT_TIMEOUT).await;
            });
        }
    }
}

impl PowerDriver for RedfishDriver {
    fn endpoint(&self) -> &str {
        &self.cfg.endpoint
    }

    fn switched(&self) -> Vec<String> {
        vec![self.identity_scope()]
    }

    fn identity_scope(&self) -> String {
        // One service may front several systems (a chassis manager): each is its own box.
        match &self.cfg.system {
            crate::options::SystemRef::Only => self.cfg.endpoint.clone(),
            crate::options::SystemRef::Id(id) => format!("{}/Systems/{id}", self.cfg.endpoint),
            crate::options::SystemRef::Path(path) => format!("{}{path}", self.cfg.endpoint),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            channel: Channel::Bmc,
            authenticated_identity: self.verified_tls(),
            ..Capabilities::readable(&Action::ALL)
        }
    }

    fn status(&self, deadline: std::time::Instant) -> DriverFuture<'_, PowerState> {
        Box::pin(async move {
            match self.run(Op::Status, deadline).await? {
                Outcome::State(s) => Ok(s),
                _ => Err(Outcome::mismatch("status")),
            }
        })
    }

    fn set_power(
        &self,
        action: Action,
        deadline: std::time::Instant,
    ) -> DriverFuture<'_, CommandReceipt> {
        Box::pin(async move {
            match self.run(Op::Reset(action), deadline).await? {
                Outcome::Receipt(r) => Ok(r),
                _ => Err(Outcome::mismatch("reset")),
            }
        })
    }

    /// Reads `PowerRestorePolicy` from a fresh GET of the ComputerSystem.
    fn restore_policy(&self, deadline: std::time::Instant) -> DriverFuture<'_, RestorePolicy> {
        Box::pin(async move {
            match self.run(Op::ReadRestorePolicy, deadline).await? {
                Outcome::Policy(p) => Ok(p),
                _ => Err(Outcome::mismatch("restore policy read")),
            }
        })
    }

    /// PATCHes `PowerRestorePolicy` after a fresh GET (for its ETag, and to tell a system
    /// without the property, `Unsupported`, from one that refuses the change).
    fn set_restore_policy(
        &self,
        policy: RestorePolicy,
        deadline: std::time::Instant,
    ) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            match self.run(Op::SetRestorePolicy(policy), deadline).await? {
                Outcome::Done => Ok(()),
                _ => Err(Outcome::mismatch("restore policy change")),
            }
        })
    }

    /// Counts the installed supplies of the system's chassis after a fresh GET of the system
    /// (which also refreshes the identity facts): the `PowerSubsystem/PowerSupplies`
    /// collection, else the legacy `Power` resource. A supply whose `Status.State` is `Absent`
    /// is not counted; any other state, or none, is.
    fn power_supplies(&self, deadline: std::time::Instant) -> DriverFuture<'_, u32> {
        Box::pin(async move {
            match self.run(Op::CountSupplies, deadline).await? {
                Outcome::Count(n) => Ok(n),
                _ => Err(Outcome::mismatch("power supply count")),
            }
        })
    }

    fn identity(&self) -> Vec<IdentityFact> {
        let mut out = Vec::new();
        if let Some(fp) = self.observed.leaf() {
            out.push(IdentityFact::new("tls-sha256", fp.hex()));
        }
        if matches!(self.cfg.trust, Trust::Insecure) {
            out.push(IdentityFact::new("tls", "insecure"));
        }
        let facts = self.facts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let fact = |kind: &str, value: String| IdentityFact {
            authenticated: self.verified_tls(),
            ..IdentityFact::new(kind, value)
        };
        if let Some(uuid) = facts.uuid {
            out.push(fact("redfish-uuid", uuid));
        }
        if let Some(serial) = facts.serial {
            out.push(fact("redfish-serial", serial));
        }
        out
    }

    fn release(&self, deadline: std::time::Instant) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let deadline = Instant::from_std(deadline);
            let mut conn = tokio::time::timeout_at(deadline, self.conn.lock())
                .await
                .map_err(|_| {
                    DriverError::timeout(format!(
                        "{}: release: another call held the connection until the deadline",
                        self.ep()
                    ))
                })?;
            self.logout(&mut conn, deadline).await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencegate_driver::SecretString;

    #[test]
    fn factory_and_debug() {
        let mut s = DeviceSpec {
            name: "bmc1".into(),
            driver: "redfish".into(),
            address: "127.0.0.1:8443".into(),
            user: Some("admin".into()),
            ..Default::default()
        };
        s.secrets
            .insert("password".into(), SecretString::from("hunter2-pw"));
        s.options.insert("insecure".into(), "true".into());
        let d = RedfishDriver::from_spec(&s).unwrap();
        assert_eq!(RedfishFactory.name(), "redfish");
        assert_eq!(d.endpoint(), "redfish://127.0.0.1:8443");
        assert!(!format!("{d:?}").contains("hunter2"));
        assert!(d.capabilities().serialize_per_endpoint);
        assert!(d.capabilities().supports(Action::Off));
        assert_eq!(d.identity(), [IdentityFact::new("tls", "insecure")]);
    }

    #[test]
    fn task_descriptions() {
        assert_eq!(
            describe_task(&json!({"TaskState": "Running", "TaskStatus": "OK"})),
            ": TaskState Running, TaskStatus OK"
        );
        assert_eq!(describe_task(&Value::Null), "");
    }
}
