//! The SNMP front end: simulated APC PDUs on 127.0.0.1, one UDP socket and one task per PDU,
//! each with many outlets, speaking SNMPv1 and v2c with a read-only and a read-write
//! community, and SNMPv3 for the configured users (authNoPriv with HMAC-SHA-256-192, see
//! [`V3User`]). SNMPv3 engine discovery is answered with the configured engine ID, and any
//! other user is unknown (reported `usmStatsUnknownUserNames`), as net-snmp does.
//!
//! Each outlet has its own [`PowerModel`]; the PDU's [`FaultProfile`] applies to all of them
//! (`stuck` relays, `off_delay_ms`, `drop_rate`, `reply_delay_ms` for a slow agent, `dead`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use fencegate_bmcsim::snmp::{PduConfig, PduLab};
//! let lab = PduLab::start(vec![PduConfig::new(8); 2]).await?;
//! let addr = lab.addr(0); // 127.0.0.1:<free port>, communities "public" (ro) and "private" (rw)
//! assert!(lab.outlet_on(0, 4));
//! # Ok(()) }
//! ```

mod agent;
pub mod ber;
mod usm;

pub use agent::{OUTLET_CONTROL, OutletCommand, SYS_OBJECT_ID};

use crate::faults::FaultProfile;
use crate::lab::{Endpoint, Endpoints};
use crate::power::PowerModel;
use crate::rng::SplitMix64;
use agent::{AgentIdentity, Communities, PduState};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::net::UdpSocket;

/// How one simulated PDU is set up.
#[derive(Clone)]
pub struct PduConfig {
    /// Number of outlets (numbered from 1).
    pub outlets: usize,
    /// The community that may only read.
    pub read_community: String,
    /// The community that may read and switch outlets.
    pub write_community: String,
    /// Whether every outlet starts powered on.
    pub initial_power_on: bool,
    /// Faults in force from the start.
    pub faults: FaultProfile,
    /// sysName.0; `None` gives `pdu<i>`.
    pub sys_name: Option<String>,
    /// The SNMPv3 engine ID; `None` derives one from APC's enterprise number and sysName.
    pub engine_id: Option<Vec<u8>>,
    /// The SNMPv3 users; none by default (every v3 user is then unknown).
    pub v3_users: Vec<V3User>,
}

/// An SNMPv3 user of a simulated PDU: authNoPriv with HMAC-SHA-256-192 (`auth_protocol =
/// sha256`, `security_level = authNoPriv` in the driver). Privacy is not simulated.
#[derive(Clone)]
pub struct V3User {
    /// The USM user name.
    pub name: String,
    /// The authentication password (localized to the engine ID at start).
    pub auth_password: String,
    /// Whether the user may switch outlets (otherwise read only).
    pub write: bool,
}

impl V3User {
    /// A read-write user.
    pub fn read_write(name: &str, auth_password: &str) -> Self {
        V3User {
            name: name.to_owned(),
            auth_password: auth_password.to_owned(),
            write: true,
        }
    }
}

impl fmt::Debug for V3User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V3User")
            .field("name", &self.name)
            .field("auth_password", &"<redacted>")
            .field("write", &self.write)
            .finish()
    }
}

impl PduConfig {
    /// A healthy PDU with `outlets` powered outlets and APC's default communities
    /// (`public` read-only, `private` read-write).
    pub fn new(outlets: usize) -> Self {
        PduConfig {
            outlets,
            read_community: "public".to_owned(),
            write_community: "private".to_owned(),
            initial_power_on: true,
            faults: FaultProfile::default(),
            sys_name: None,
            engine_id: None,
            v3_users: Vec::new(),
        }
    }
}

impl Default for PduConfig {
    fn default() -> Self {
        PduConfig::new(8)
    }
}

impl fmt::Debug for PduConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PduConfig")
            .field("outlets", &self.outlets)
            .field("read_community", &"<redacted>")
            .field("write_community", &"<redacted>")
            .field("initial_power_on", &self.initial_power_on)
            .field("faults", &self.faults)
            .field("sys_name", &self.sys_name)
            .field("engine_id", &self.engine_id)
            .field("v3_users", &self.v3_users)
            .finish()
    }
}

struct Shared {
    state: Mutex<PduState>,
    rng: Mutex<SplitMix64>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, PduState> {
        // A panic while holding the lock cannot leave the plain-data state inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rng(&self) -> MutexGuard<'_, SplitMix64> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A set of running simulated PDUs. Dropping the lab stops them all.
pub struct PduLab {
    endpoints: Endpoints<Shared>,
}

impl fmt::Debug for PduLab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PduLab")
            .field("pdus", &self.endpoints.len())
            .finish()
    }
}

impl PduLab {
    /// Start one PDU per config, each on its own `127.0.0.1:<free port>`.
    pub async fn start(configs: Vec<PduConfig>) -> io::Result<PduLab> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), configs).await
    }

    /// Start one PDU per config on `ip` (port chosen by the kernel).
    pub async fn start_on(ip: IpAddr, configs: Vec<PduConfig>) -> io::Result<PduLab> {
        let mut endpoints = Endpoints::new("PduLab", "PDU", configs.len());
        for (i, cfg) in configs.into_iter().enumerate() {
            if cfg.read_community == cfg.write_community {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("PDU {i}: the read and write communities must differ"),
                ));
            }
            let sock = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
            let addr = sock.local_addr()?;
            let shared = Arc::new(Shared {
                rng: Mutex::new(SplitMix64::new(cfg.faults.drop_seed)),
                state: Mutex::new(PduState {
                    outlets: vec![PowerModel::new(cfg.initial_power_on); cfg.outlets],
                    faults: cfg.faults,
                    log: Vec::new(),
                }),
            });
            let communities = Communities {
                read_only: cfg.read_community.into_bytes(),
                read_write: cfg.write_community.into_bytes(),
            };
            let identity = AgentIdentity {
                sys_name: cfg.sys_name.unwrap_or_else(|| format!("pdu{i}")),
            };
            if cfg
                .engine_id
                .as_ref()
                .is_some_and(|e| !(5..=32).contains(&e.len()))
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("PDU {i}: an SNMPv3 engine ID has 5 to 32 bytes"),
                ));
            }
            let v3 = V3Engine::new(&identity, cfg.engine_id, &cfg.v3_users);
            let task = tokio::spawn(serve(sock, Arc::clone(&shared), communities, identity, v3));
            endpoints.push(addr, shared, task);
        }
        Ok(PduLab { endpoints })
    }

    fn ep(&self, i: usize) -> &Endpoint<Shared> {
        self.endpoints.get(i)
    }

    /// Number of PDUs.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether the lab has no PDUs.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The UDP address of PDU `i` (panics if `i` is out of range, as do all per-PDU calls).
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.ep(i).addr
    }

    /// All addresses, in PDU order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.endpoints.addrs()
    }

    /// Number of outlets of PDU `i`.
    pub fn outlets(&self, i: usize) -> usize {
        self.ep(i).shared.state().outlets.len()
    }

    fn with_outlet<T>(&self, i: usize, outlet: u32, f: impl FnOnce(&mut PowerModel) -> T) -> T {
        let mut state = self.ep(i).shared.state();
        let count = state.outlets.len();
        match (outlet as usize)
            .checked_sub(1)
            .and_then(|idx| state.outlets.get_mut(idx))
        {
            Some(m) => f(m),
            None => panic!("PDU {i} has outlets 1..={count}, no outlet {outlet}"),
        }
    }

    /// The emulator-side truth: is outlet `outlet` (1-based) of PDU `i` powered right now?
    pub fn outlet_on(&self, i: usize, outlet: u32) -> bool {
        self.with_outlet(i, outlet, |m| m.is_on(Instant::now()))
    }

    /// Force an outlet's power (cancels pending transitions; not logged as a command).
    pub fn set_outlet(&self, i: usize, outlet: u32, on: bool) {
        self.with_outlet(i, outlet, |m| m.force(on));
    }

    /// Replace the fault profile of PDU `i` (the drop generator is reseeded).
    pub fn set_faults(&self, i: usize, faults: FaultProfile) {
        let shared = &self.ep(i).shared;
        *shared.rng() = SplitMix64::new(faults.drop_seed);
        shared.state().faults = faults;
    }

    /// The fault profile in force at PDU `i`.
    pub fn faults(&self, i: usize) -> FaultProfile {
        self.ep(i).shared.state().faults.clone()
    }

    /// Every outlet command PDU `i` received, oldest first.
    pub fn command_log(&self, i: usize) -> Vec<OutletCommand> {
        self.ep(i).shared.state().log.clone()
    }
}

/// A v3 user with the key localized to this engine.
struct LocalUser {
    name: Vec<u8>,
    key: zeroize::Zeroizing<[u8; 32]>,
    write: bool,
}

/// The SNMPv3 side of a PDU, as net-snmp behaves: engine discovery is answered (it needs
/// no secret), a configured user's authenticated request is answered with an authenticated
/// response, and anything else gets an unauthenticated report (unknown user, wrong digest,
/// unsupported security level). A v1/v2c client whose community is wrong can thus tell the
/// agent is alive. The engine's boots are 1 and the time window is not enforced.
struct V3Engine {
    id: Vec<u8>,
    started: Instant,
    users: Vec<LocalUser>,
    unknown_engine_ids: u32,
    unknown_user_names: u32,
    wrong_digests: u32,
    unsupported_sec_levels: u32,
}

/// msgFlags bits.
const FLAG_AUTH: u8 = 0x01;
const FLAG_PRIV: u8 = 0x02;

impl V3Engine {
    fn new(identity: &AgentIdentity, engine_id: Option<Vec<u8>>, users: &[V3User]) -> Self {
        let id = engine_id.unwrap_or_else(|| {
            // RFC 3411 engine ID: APC's enterprise number with the high bit, format 4 (text).
            let mut id = vec![0x80, 0x00, 0x01, 0x3e, 0x04];
            id.extend_from_slice(identity.sys_name.as_bytes());
            id
        });
        let users = users
            .iter()
            .map(|u| LocalUser {
                name: u.name.as_bytes().to_vec(),
                key: usm::localized_key(u.auth_password.as_bytes(), &id),
                write: u.write,
            })
            .collect();
        V3Engine {
            id,
            started: Instant::now(),
            users,
            unknown_engine_ids: 0,
            unknown_user_names: 0,
            wrong_digests: 0,
            unsupported_sec_levels: 0,
        }
    }

    fn time(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX)
    }

    /// Encode the answer to a v3 request into `out`: a report, or for a configured user's
    /// authenticated request the agent's authenticated response. `false` when it gets none.
    fn answer(
        &mut self,
        datagram: &[u8],
        communities: &Communities,
        identity: &AgentIdentity,
        state: &mut PduState,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        let Ok(req) = ber::decode_v3(datagram) else {
            return false;
        };
        let report = |out: &mut Vec<u8>, counter: (&[u32], u32), time| {
            if req.reportable {
                ber::encode_v3_report(&req, (&self.id, 1, time), counter, out);
            }
            req.reportable
        };
        if req.engine_id.is_empty() {
            self.unknown_engine_ids += 1;
            let c = (
                &ber::usm_stats::UNKNOWN_ENGINE_IDS[..],
                self.unknown_engine_ids,
            );
            return report(out, c, self.time());
        }
        if req.engine_id != self.id {
            return false;
        }
        let Some(user) = self.users.iter().find(|u| u.name == req.user) else {
            self.unknown_user_names += 1;
            let c = (
                &ber::usm_stats::UNKNOWN_USER_NAMES[..],
                self.unknown_user_names,
            );
            return report(out, c, self.time());
        };
        let Ok(m) = ber::decode_v3_full(datagram) else {
            return false;
        };
        if m.flags & FLAG_AUTH == 0 || m.flags & FLAG_PRIV != 0 {
            // Only authNoPriv is simulated.
            self.unsupported_sec_levels += 1;
            let c = (
                &ber::usm_stats::UNSUPPORTED_SEC_LEVELS[..],
                self.unsupported_sec_levels,
            );
            return report(out, c, self.time());
        }
        let mut zeroed = datagram.to_vec();
        zeroed[m.auth_range.clone()].fill(0);
        if !usm::verify(&user.key, &zeroed, &m.auth) {
            self.wrong_digests += 1;
            let c = (&ber::usm_stats::WRONG_DIGESTS[..], self.wrong_digests);
            return report(out, c, self.time());
        }
        let Some((context, mut msg)) = m.scoped else {
            return false;
        };
        // The outlet semantics are the community ones: the user's rights pick the community.
        msg.version = 1;
        msg.community = if user.write {
            communities.read_write.clone()
        } else {
            communities.read_only.clone()
        };
        let Some(resp) = agent::handle(&msg, communities, identity, state, now) else {
            return false;
        };
        let at = ber::encode_v3_answer(
            m.msg_id,
            (&self.id, 1, self.time()),
            &m.user,
            usm::MAC_LEN,
            &context,
            &resp,
            out,
        );
        let mac = usm::mac(&user.key, out);
        if at.len() != mac.len() {
            return false;
        }
        out[at].copy_from_slice(&mac);
        true
    }
}

/// One PDU's loop: receive, apply faults, answer. Ends when the lab aborts it.
async fn serve(
    sock: UdpSocket,
    shared: Arc<Shared>,
    communities: Communities,
    identity: AgentIdentity,
    mut v3: V3Engine,
) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(512);
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let delay = {
            let mut state = shared.state();
            if state.faults.dead {
                continue;
            }
            let (rate, delay) = (state.faults.drop_rate, state.faults.reply_delay());
            if shared.rng().chance(rate) {
                continue;
            }
            if ber::version(&buf[..n]) == Ok(3) {
                let answered = v3.answer(
                    &buf[..n],
                    &communities,
                    &identity,
                    &mut state,
                    Instant::now(),
                    &mut out,
                );
                if !answered || shared.rng().chance(rate) {
                    continue;
                }
                delay
            } else {
                let Ok(req) = ber::decode(&buf[..n]) else {
                    continue;
                };
                let Some(resp) =
                    agent::handle(&req, &communities, &identity, &mut state, Instant::now())
                else {
                    continue;
                };
                if shared.rng().chance(rate) {
                    continue;
                }
                ber::encode(&resp, &mut out);
                delay
            }
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
