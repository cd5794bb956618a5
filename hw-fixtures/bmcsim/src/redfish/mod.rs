//! The Redfish front end: many simulated Redfish services over HTTPS on 127.0.0.1, one
//! listener and one small task each, all presenting one certificate generated at start.
//!
//! Each service has one controllable system (`/redfish/v1/Systems/1`) on the shared
//! [`PowerModel`](crate::power::PowerModel) and [`FaultProfile`] (`off_delay_ms` shows as
//! `PoweringOff`/`PoweringOn` while it runs, `stuck`, `reply_delay_ms`, `max_sessions`,
//! `dead`; `drop_rate` does not apply to TCP), plus a [`VendorProfile`] saying how it
//! answers the cases vendors disagree on. Basic authentication always works; sessions when
//! the profile has a SessionService. The system links its chassis (`/redfish/v1/Chassis/1`),
//! whose power supplies are served both as the newer `PowerSubsystem/PowerSupplies`
//! collection (unless the profile is [`Profile::LegacyPower`]) and inline in the legacy
//! `Power` resource, so clients can count them either way.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use fencegate_bmcsim::redfish::{Profile, RedfishConfig, RedfishLab};
//! let lab = RedfishLab::start(vec![RedfishConfig::new("admin", "password"); 3]).await?;
//! let addr = lab.addr(0); // 127.0.0.1:<free port>
//! let pin = lab.fingerprint(); // "sha256:…", for the driver's `pin` option
//! assert!(lab.power_on(0));
//! # Ok(()) }
//! ```

mod profile;
mod server;
mod service;
mod tls;

pub use profile::{AlreadyInState, Profile, SessionLimitAnswer, VendorProfile};
pub use service::{
    AuthSeen, CHASSIS_ID, DEFAULT_MAX_SESSIONS, DEFAULT_POWER_SUPPLIES, RequestRecord, SYSTEM_ID,
};

use crate::faults::FaultProfile;
use crate::lab::{Endpoint, Endpoints};
use crate::power::CommandRecord;
use serde_json::Value;
use service::{Identity, ServiceState};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How one simulated Redfish service is set up.
#[derive(Clone)]
pub struct RedfishConfig {
    /// The user name.
    pub user: String,
    /// The user's password.
    pub password: String,
    /// Whether the system starts powered on.
    pub initial_power_on: bool,
    /// Faults in force from the start.
    pub faults: FaultProfile,
    /// How the service behaves in the cases vendors disagree on.
    pub profile: VendorProfile,
    /// Further (uncontrolled, always on) systems listed after the first, so that clients
    /// must choose one.
    pub extra_systems: usize,
    /// The system's UUID; `None` derives a distinct one from the endpoint's index.
    pub uuid: Option<String>,
    /// Installed (`Enabled`) power supplies in the chassis: a dual-PSU host by default, the
    /// case where fencing through one PDU outlet leaves the host running.
    pub power_supplies: usize,
}

impl RedfishConfig {
    /// A healthy, powered-on [`Profile::Generic`] service with one user.
    pub fn new(user: &str, password: &str) -> Self {
        RedfishConfig {
            user: user.to_owned(),
            password: password.to_owned(),
            initial_power_on: true,
            faults: FaultProfile::default(),
            profile: Profile::Generic.profile(),
            extra_systems: 0,
            uuid: None,
            power_supplies: service::DEFAULT_POWER_SUPPLIES,
        }
    }

    /// The same with a preset vendor profile.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile.profile();
        self
    }
}

impl Default for RedfishConfig {
    fn default() -> Self {
        RedfishConfig::new("admin", "password")
    }
}

impl fmt::Debug for RedfishConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedfishConfig")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("initial_power_on", &self.initial_power_on)
            .field("faults", &self.faults)
            .field("profile", &self.profile.name)
            .field("extra_systems", &self.extra_systems)
            .field("power_supplies", &self.power_supplies)
            .finish_non_exhaustive()
    }
}

/// What the lab and an endpoint's tasks share.
pub(crate) struct Shared {
    identity: Identity,
    state: Mutex<ServiceState>,
    handshakes: AtomicUsize,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, ServiceState> {
        // A panic while holding the lock cannot leave the plain-data state inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn note_handshake(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }
}

/// A set of running simulated Redfish services. Dropping the lab stops them all.
pub struct RedfishLab {
    endpoints: Endpoints<Shared>,
    cert: tls::ServerIdentity,
    stop: watch::Sender<bool>,
}

impl fmt::Debug for RedfishLab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedfishLab")
            .field("endpoints", &self.endpoints.len())
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl RedfishLab {
    /// Start one service per config, each on its own `127.0.0.1:<free port>`.
    pub async fn start(configs: Vec<RedfishConfig>) -> io::Result<RedfishLab> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), configs).await
    }

    /// Start one service per config on `ip` (port chosen by the kernel).
    pub async fn start_on(ip: IpAddr, configs: Vec<RedfishConfig>) -> io::Result<RedfishLab> {
        let cert = tls::ServerIdentity::generate()?;
        let acceptor = TlsAcceptor::from(Arc::clone(&cert.config));
        let (stop, stop_rx) = watch::channel(false);
        let mut endpoints = Endpoints::new("RedfishLab", "service", configs.len());
        for (i, cfg) in configs.into_iter().enumerate() {
            let identity = Identity {
                user: cfg.user,
                password: cfg.password,
                uuid: cfg
                    .uuid
                    .unwrap_or_else(|| format!("f3ac0000-0000-4000-8000-{i:012x}")),
                serial: format!("SIM{i:06}"),
                extra_systems: cfg.extra_systems,
            };
            let mut state = ServiceState::new(cfg.initial_power_on, cfg.faults, cfg.profile);
            state.supplies = vec![Some("Enabled".to_owned()); cfg.power_supplies];
            let shared = Arc::new(Shared {
                identity,
                state: Mutex::new(state),
                handshakes: AtomicUsize::new(0),
            });
            let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
            let addr = listener.local_addr()?;
            let task = tokio::spawn(server::serve(
                listener,
                acceptor.clone(),
                Arc::clone(&shared),
                stop_rx.clone(),
            ));
            endpoints.push(addr, shared, task);
        }
        Ok(RedfishLab {
            endpoints,
            cert,
            stop,
        })
    }

    fn ep(&self, i: usize) -> &Endpoint<Shared> {
        self.endpoints.get(i)
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether the lab has no services.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The HTTPS address of service `i` (panics if `i` is out of range, as do all
    /// per-service calls).
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.ep(i).addr
    }

    /// All addresses, in service order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.endpoints.addrs()
    }

    /// `sha256:<hex>` of the certificate every service presents: the driver's `pin`.
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint()
    }

    /// The certificate as PEM (it has SANs `127.0.0.1`, `::1`, `localhost`), for `ca_file`.
    pub fn certificate_pem(&self) -> String {
        self.cert.pem()
    }

    /// The emulator-side truth: is the system of service `i` powered on right now?
    pub fn power_on(&self, i: usize) -> bool {
        self.ep(i).shared.state().power.is_on(Instant::now())
    }

    /// Force the power of service `i` (cancels pending transitions; not logged as a command).
    pub fn set_power(&self, i: usize, on: bool) {
        self.ep(i).shared.state().force(on);
    }

    /// Replace the fault profile of service `i`.
    pub fn set_faults(&self, i: usize, faults: FaultProfile) {
        self.ep(i).shared.state().faults = faults;
    }

    /// The fault profile in force at service `i`.
    pub fn faults(&self, i: usize) -> FaultProfile {
        self.ep(i).shared.state().faults.clone()
    }

    /// Replace the vendor profile of service `i` (open sessions are kept).
    pub fn set_profile(&self, i: usize, profile: VendorProfile) {
        self.ep(i).shared.state().profile = profile;
    }

    /// Report this raw `PowerState` value (e.g. `null`, `"Reset"`) instead of the model's
    /// state; `None` goes back to the model.
    pub fn set_reported_power_state(&self, i: usize, raw: Option<Value>) {
        self.ep(i).shared.state().reported_power_state = raw;
    }

    /// Serve these bytes (status 200, labelled JSON) instead of service `i`'s system
    /// resource: one without `PowerState`, an empty body, HTML. `None` goes back to normal.
    pub fn set_raw_system(&self, i: usize, raw: Option<&str>) {
        self.ep(i).shared.state().raw_system = raw.map(str::to_owned);
    }

    /// Serve these bytes (status 200, labelled JSON) to a GET of `path` at service `i`
    /// instead of the resource there (a truncated power resource, a chassis without power
    /// links, a system linking another origin). `None` goes back to normal.
    pub fn set_raw_resource(&self, i: usize, path: &str, raw: Option<&str>) {
        let mut state = self.ep(i).shared.state();
        let path = path.trim_end_matches('/').to_owned();
        match raw {
            Some(raw) => state.raw_resources.insert(path, raw.to_owned()),
            None => state.raw_resources.remove(&path),
        };
    }

    /// Replace the chassis' power supplies at service `i` with `count` installed
    /// (`Enabled`) ones.
    pub fn set_power_supplies(&self, i: usize, count: usize) {
        self.ep(i).shared.state().supplies = vec![Some("Enabled".to_owned()); count];
    }

    /// Set the `Status.State` of power supply `slot` (0-based) at service `i`: `Absent` for
    /// an empty bay, `StandbyOffline` or `UnavailableOffline` for an unplugged one, `None`
    /// for a supply served without a `Status`. Panics if there is no such slot.
    pub fn set_supply_state(&self, i: usize, slot: usize, state: Option<&str>) {
        let mut s = self.ep(i).shared.state();
        let count = s.supplies.len();
        let Some(supply) = s.supplies.get_mut(slot) else {
            panic!("RedfishLab: service {i} has {count} power supplies, no slot {slot}");
        };
        *supply = state.map(str::to_owned);
    }

    /// Whether the system of service `i` links its chassis (`Links.Chassis`, the default)
    /// or, as on some BMCs, names none.
    pub fn set_chassis_link(&self, i: usize, on: bool) {
        self.ep(i).shared.state().chassis_link = on;
    }

    /// The system's `PowerRestorePolicy` at service `i` (`None`: the property is absent).
    pub fn restore_policy(&self, i: usize) -> Option<String> {
        self.ep(i).shared.state().restore_policy.clone()
    }

    /// Set the system's `PowerRestorePolicy` at service `i`, as its owner would in the BMC's
    /// own interface (the ETag changes); `None` removes the property, as on BMCs without it.
    pub fn set_restore_policy(&self, i: usize, policy: Option<&str>) {
        let mut state = self.ep(i).shared.state();
        state.restore_policy = policy.map(str::to_owned);
        state.revision += 1;
    }

    /// Whether service `i` gives the system an ETag and requires a matching `If-Match` on
    /// PATCH (the default), or neither.
    pub fn set_etags(&self, i: usize, on: bool) {
        self.ep(i).shared.state().etags = on;
    }

    /// Every power command service `i` received, oldest first.
    pub fn command_log(&self, i: usize) -> Vec<CommandRecord> {
        self.ep(i).shared.state().log.clone()
    }

    /// The last requests service `i` answered (up to 1,000), oldest first, with how each
    /// authenticated; credentials themselves are never kept.
    pub fn requests(&self, i: usize) -> Vec<RequestRecord> {
        self.ep(i).shared.state().requests.clone()
    }

    /// Completed TLS handshakes at service `i`.
    pub fn handshakes(&self, i: usize) -> usize {
        self.ep(i).shared.handshakes.load(Ordering::Relaxed)
    }

    /// Expire every session of service `i` (their tokens get 401 from then on).
    pub fn expire_sessions(&self, i: usize) {
        self.ep(i).shared.state().expire_sessions();
    }

    /// Sessions service `i` holds open: 0 after a client that logs out properly.
    pub fn open_sessions(&self, i: usize) -> usize {
        self.ep(i).shared.state().session_count()
    }
}

impl Drop for RedfishLab {
    fn drop(&mut self) {
        // The endpoints' tasks are aborted as `endpoints` drops; open connections watch this.
        let _ = self.stop.send(true);
    }
}
