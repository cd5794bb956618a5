//! The IPMI 2.0 (RMCP+) front end: many simulated BMCs on 127.0.0.1, one UDP socket and one
//! task each, so a thousand endpoints cost a thousand small tasks and nothing more.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
//! let lab = IpmiLab::start(vec![BmcConfig::new("admin", "password"); 3]).await?;
//! let addr = lab.addr(0); // 127.0.0.1:<free port>
//! assert!(lab.power_on(0));
//! # Ok(()) }
//! ```

mod bmc;

pub use bmc::DEFAULT_MAX_SESSIONS;

use crate::faults::FaultProfile;
use crate::lab::{Endpoint, Endpoints};
use crate::power::{CommandRecord, PowerModel};
use crate::rng::SplitMix64;
use bmc::{BmcIdentity, BmcState, IpmiBmc};
use fencegate_driver::RestorePolicy;
use fencegate_ipmi_codec::CipherSuite;
use fencegate_ipmi_codec::commands::Privilege;
use fencegate_ipmi_codec::session::Credentials;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::net::UdpSocket;

/// How one simulated IPMI BMC is set up.
#[derive(Clone)]
pub struct BmcConfig {
    /// The user name (may be empty: IPMI's null user).
    pub user: String,
    /// The user's password (at most 20 bytes).
    pub password: String,
    /// The BMC key Kg, if set (at most 20 bytes); then the SIK is keyed by it.
    pub kg: Option<Vec<u8>>,
    /// Whether the simulated host starts powered on.
    pub initial_power_on: bool,
    /// Faults in force from the start.
    pub faults: FaultProfile,
    /// Cipher suite ids accepted (a subset of 3 and 17), in the order listed to clients.
    pub cipher_suites: Vec<u8>,
    /// The highest privilege the user may take.
    pub max_privilege: Privilege,
    /// The GUID reported (in RAKP 2, where the password's HMAC covers it, and to Get
    /// Device/System GUID); `None` derives a distinct one from the endpoint's index.
    pub guid: Option<[u8; 16]>,
    /// The power restore policy at start; `None` makes the BMC report "unknown".
    pub restore_policy: Option<RestorePolicy>,
    /// Power supplies listed in the SDR repository (one status sensor each): a dual-PSU
    /// host by default, the case where fencing through one PDU outlet leaves it running.
    pub power_supplies: usize,
}

impl BmcConfig {
    /// A healthy, powered-on BMC with one administrator user, offering suites 17 and 3.
    pub fn new(user: &str, password: &str) -> Self {
        BmcConfig {
            user: user.to_owned(),
            password: password.to_owned(),
            kg: None,
            initial_power_on: true,
            faults: FaultProfile::default(),
            cipher_suites: vec![17, 3],
            max_privilege: Privilege::Administrator,
            guid: None,
            // What most servers ship with, and what a fence must not leave in place.
            restore_policy: Some(RestorePolicy::AlwaysOn),
            power_supplies: 2,
        }
    }
}

impl Default for BmcConfig {
    fn default() -> Self {
        BmcConfig::new("admin", "password")
    }
}

impl fmt::Debug for BmcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BmcConfig")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("kg", &self.kg.as_ref().map(|_| "<redacted>"))
            .field("initial_power_on", &self.initial_power_on)
            .field("faults", &self.faults)
            .field("cipher_suites", &self.cipher_suites)
            .field("max_privilege", &self.max_privilege)
            .field("restore_policy", &self.restore_policy)
            .field("power_supplies", &self.power_supplies)
            .finish_non_exhaustive()
    }
}

/// What the lab and an endpoint's task share.
struct Shared {
    state: Mutex<BmcState>,
    rng: Mutex<SplitMix64>,
    sessions: AtomicUsize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, BmcState> {
        // A panic while holding the lock cannot leave the plain-data state inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rng(&self) -> MutexGuard<'_, SplitMix64> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A set of running simulated IPMI BMCs. Dropping the lab stops them all.
pub struct IpmiLab {
    endpoints: Endpoints<Shared>,
}

impl fmt::Debug for IpmiLab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpmiLab")
            .field("endpoints", &self.endpoints.len())
            .finish()
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl IpmiLab {
    /// Start one BMC per config, each on its own `127.0.0.1:<free port>`.
    pub async fn start(configs: Vec<BmcConfig>) -> io::Result<IpmiLab> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), configs).await
    }

    /// Start one BMC per config on `ip` (port chosen by the kernel).
    pub async fn start_on(ip: IpAddr, configs: Vec<BmcConfig>) -> io::Result<IpmiLab> {
        let mut endpoints = Endpoints::new("IpmiLab", "BMC", configs.len());
        for (i, cfg) in configs.into_iter().enumerate() {
            let creds = Credentials::new(
                cfg.user.as_bytes(),
                cfg.password.as_bytes(),
                cfg.kg.as_deref(),
            )
            .map_err(|e| invalid(format!("BMC {i}: {e}")))?;
            let suites = cfg
                .cipher_suites
                .iter()
                .map(|id| CipherSuite::from_id(*id))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("BMC {i}: {e}")))?;
            let guid = cfg.guid.unwrap_or_else(|| {
                let mut g = *b"fencegate-bmc\0\0\0";
                g[12..].copy_from_slice(&(i as u32).to_be_bytes());
                g
            });
            let identity = BmcIdentity {
                creds,
                max_privilege: cfg.max_privilege,
                suites,
                guid,
            };
            let sock = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
            let addr = sock.local_addr()?;
            let shared = Arc::new(Shared {
                rng: Mutex::new(SplitMix64::new(cfg.faults.drop_seed)),
                state: Mutex::new(BmcState {
                    power: PowerModel::new(cfg.initial_power_on),
                    faults: cfg.faults,
                    log: Vec::new(),
                    restore_policy: cfg.restore_policy,
                    sdr: bmc::standard_sdr(cfg.power_supplies),
                    sdr_reservation: 1,
                }),
                sessions: AtomicUsize::new(0),
            });
            let bmc = IpmiBmc::new(identity, i as u32 + 1);
            let task = tokio::spawn(serve(sock, Arc::clone(&shared), bmc));
            endpoints.push(addr, shared, task);
        }
        Ok(IpmiLab { endpoints })
    }

    fn ep(&self, i: usize) -> &Endpoint<Shared> {
        self.endpoints.get(i)
    }

    /// Number of BMCs.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether the lab has no BMCs.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The UDP address of BMC `i` (panics if `i` is out of range, as do all per-BMC calls).
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.ep(i).addr
    }

    /// All addresses, in BMC order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.endpoints.addrs()
    }

    /// The emulator-side truth: is the host behind BMC `i` powered on right now?
    pub fn power_on(&self, i: usize) -> bool {
        self.ep(i).shared.state().power.is_on(Instant::now())
    }

    /// Force the power of BMC `i` (cancels pending transitions; not logged as a command).
    pub fn set_power(&self, i: usize, on: bool) {
        self.ep(i).shared.state().power.force(on);
    }

    /// Replace the fault profile of BMC `i` (the drop generator is reseeded).
    pub fn set_faults(&self, i: usize, faults: FaultProfile) {
        let shared = &self.ep(i).shared;
        *shared.rng() = SplitMix64::new(faults.drop_seed);
        shared.state().faults = faults;
    }

    /// The fault profile in force at BMC `i`.
    pub fn faults(&self, i: usize) -> FaultProfile {
        self.ep(i).shared.state().faults.clone()
    }

    /// The power restore policy BMC `i` holds now (what Set Power Restore Policy stored);
    /// `None` when it reports "unknown".
    pub fn restore_policy(&self, i: usize) -> Option<RestorePolicy> {
        self.ep(i).shared.state().restore_policy
    }

    /// Set the power restore policy of BMC `i` by hand (`None`: report "unknown").
    pub fn set_restore_policy(&self, i: usize, policy: Option<RestorePolicy>) {
        self.ep(i).shared.state().restore_policy = policy;
    }

    /// Rebuild BMC `i`'s SDR repository with `count` power supply sensors (cancels any
    /// SDR reservation, as a changed repository does).
    pub fn set_power_supplies(&self, i: usize, count: usize) {
        self.ep(i)
            .shared
            .state()
            .replace_sdr(bmc::standard_sdr(count));
    }

    /// Replace BMC `i`'s SDR repository with these records, each whole (header included):
    /// truncated records, duplicate ids, an empty repository.
    pub fn set_sdr(&self, i: usize, records: Vec<Vec<u8>>) {
        self.ep(i).shared.state().replace_sdr(records);
    }

    /// Every power command BMC `i` received, oldest first.
    pub fn command_log(&self, i: usize) -> Vec<CommandRecord> {
        self.ep(i).shared.state().log.clone()
    }

    /// Sessions BMC `i` holds open (half-open ones included): 0 after a client that closes
    /// its sessions properly.
    pub fn open_sessions(&self, i: usize) -> usize {
        self.ep(i).shared.sessions.load(Ordering::Relaxed)
    }
}

/// One endpoint's loop: receive, apply faults, answer. Ends when the lab aborts it.
async fn serve(sock: UdpSocket, shared: Arc<Shared>, mut bmc: IpmiBmc) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::with_capacity(256);
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(_) => {
                // Transient socket errors must not turn the loop into a busy spin.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                continue;
            }
        };
        let now = Instant::now();
        let delay = {
            let mut state = shared.state();
            let faults = &state.faults;
            if faults.dead {
                continue;
            }
            let (rate, delay) = (faults.drop_rate, faults.reply_delay());
            if shared.rng().chance(rate) {
                continue;
            }
            let reply = bmc.handle(&buf[..n], now, &mut state, &mut out);
            shared
                .sessions
                .store(bmc.session_count(), Ordering::Relaxed);
            if !reply || shared.rng().chance(rate) {
                continue;
            }
            delay
        };
        if delay.is_zero() {
            let _ = sock.send_to(&out, peer).await;
        } else {
            let sock = Arc::clone(&sock);
            let reply = out.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = sock.send_to(&reply, peer).await;
            });
        }
    }
}
