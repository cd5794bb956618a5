//! The fencegate driver: device specification parsing and one RMCP+ session per call.

use crate::transport::{Cmd, Conn, HandshakeFailure, Live, Retry, is_suite_refusal};
use fencegate_driver::{
    Action, Capabilities, Channel, CommandReceipt, DeviceSpec, DriverError, DriverFactory,
    DriverFuture, ExposeSecret, IdentityFact, PowerDriver, PowerState, RestorePolicy, SpecError,
    split_host_port,
};
use fencegate_ipmi_codec::commands::{
    self, CMD_CHASSIS_CONTROL, CMD_GET_CHASSIS_STATUS, CMD_GET_SDR, CMD_GET_SDR_REPO_INFO,
    CMD_SET_POWER_RESTORE_POLICY, ChassisControl, ChassisStatus, NETFN_CHASSIS, NETFN_STORAGE,
    Privilege, SDR_FIRST, SDR_HEADER_LEN, SDR_LAST, SDR_SENSOR_PREFIX_LEN, SdrHeader, SdrRepoInfo,
};
use fencegate_ipmi_codec::crypto::{CipherSuite, GUID_LEN};
use fencegate_ipmi_codec::message::completion_text;
use fencegate_ipmi_codec::session::{Credentials, Session};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use zeroize::Zeroizing;

/// Option names this driver accepts.
const OPTIONS: &[&str] = &[
    "cipher",
    "privilege",
    "retransmit_ms",
    "retries",
    "cipher_probe_ms",
    "auth_caps",
];
/// Secret names this driver accepts.
const SECRETS: &[&str] = &["password", "kg"];

/// Builds [`IpmiDriver`]s from `driver = "ipmi"` device specifications.
#[derive(Debug, Default, Clone, Copy)]
pub struct IpmiFactory;

impl DriverFactory for IpmiFactory {
    fn name(&self) -> &'static str {
        "ipmi"
    }

    fn summary(&self) -> &'static str {
        "IPMI 2.0 lanplus (RMCP+, cipher suites 17 and 3) BMCs over UDP"
    }

    /// The BMC password and the optional Kg key.
    fn secret_roles(&self) -> &'static [&'static str] {
        &["password", "kg"]
    }

    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
        Ok(Arc::new(IpmiDriver::from_spec(spec)?))
    }
}

/// Tunables of one driver instance, parsed from the device options.
#[derive(Debug, Clone)]
struct Options {
    suites: Vec<CipherSuite>,
    privilege: Privilege,
    retry: Retry,
    cipher_probe: Duration,
    auth_caps: bool,
}

/// How many handshakes one call makes with one cipher suite at most: the first, the fresh
/// one that confirms (or disproves) its refusal, and one more to settle two refusals of
/// different classes.
const HANDSHAKES_PER_SUITE: usize = 3;

/// A refusal that `handshakes` independent handshakes (or requests) agreed on: it now
/// counts, and its detail says so for the evidence.
fn confirmed(e: DriverError, handshakes: usize) -> DriverError {
    DriverError::new(
        e.kind,
        format!(
            "{} (confirmed by {handshakes} independent attempts)",
            e.detail
        ),
    )
}

/// At most this many SDR records are walked: real repositories hold tens to a few hundred,
/// and each record costs one or two requests.
const MAX_SDR_RECORDS: u16 = 1024;

/// How long a session may sit idle between two calls and still be reused. Within one
/// operation the engine polls at most about a second apart; BMCs drop idle sessions only
/// after tens of seconds.
const KEEP_IDLE: Duration = Duration::from_secs(5);

/// A session kept between the calls of one operation.
struct Kept {
    live: Live,
    last_used: Instant,
}

/// The GUIDs BMCs proved in RAKP 2 (see [`Session::peer_guid`]).
#[derive(Debug, Default)]
struct Proved {
    /// The GUID the current operation started with; cleared by `release()`. Every session
    /// opened before then must prove the same one, or its call fails before any command.
    bound: Option<[u8; GUID_LEN]>,
    /// Every distinct GUID proved since the current (or last) operation started, the bound
    /// one first: what `identity()` reports.
    seen: Vec<[u8; GUID_LEN]>,
}

/// One BMC reached over IPMI 2.0 lanplus. The first call of an operation opens an RMCP+
/// session; the following calls reuse it (one handshake per operation instead of one per
/// reading), and it is closed when the engine releases the driver, after any error, after
/// [`KEEP_IDLE`], or when the driver is dropped. Every request in a session carries its own
/// sequence numbers, so a reused session never mistakes an old reply for a fresh reading.
///
/// The endpoint's identity is the managed system GUID each session's BMC proved in RAKP 2
/// (covered by the HMAC keyed with the password), known once the first handshake is done and
/// before anything is sent in it. One operation (until `release()`) talks to one GUID: a
/// session proving another one is refused, so a forwarder cannot swap boxes between the
/// engine's identity check and the command.
pub struct IpmiDriver {
    endpoint: String,
    target: Arc<str>,
    host: String,
    port: u16,
    ip: Option<IpAddr>,
    creds: Credentials,
    opts: Options,
    /// The suite that worked in the current operation (0 = none yet), tried first by its
    /// later sessions; cleared by `release()`, so that a downgrade (17 refused, 3 used) is
    /// never carried into the next operation.
    preferred: AtomicU8,
    /// The endpoint identities proved so far.
    proved: Mutex<Proved>,
    /// The session kept for the next call, if any.
    kept: Mutex<Option<Kept>>,
}

impl std::fmt::Debug for IpmiDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpmiDriver")
            .field("endpoint", &self.endpoint)
            .field("creds", &self.creds)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Decode a Kg secret: `0x`-prefixed hex (up to 40 digits) or the raw characters.
fn parse_kg(raw: &str) -> Result<Zeroizing<Vec<u8>>, SpecError> {
    let bad = |why: &str| SpecError::for_key("kg", why.to_owned());
    match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        Some(hex) => {
            if hex.len() % 2 != 0 || hex.len() > 40 {
                return Err(bad("hex Kg must have an even number of digits, at most 40"));
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|d| u8::from_str_radix(d, 16).ok())
                        .ok_or_else(|| bad("hex Kg contains a non-hex digit"))
                })
                .collect::<Result<Vec<u8>, _>>()
                .map(Zeroizing::new)
        }
        None => Ok(Zeroizing::new(raw.as_bytes().to_vec())),
    }
}

fn parse_suites(raw: &str) -> Result<Vec<CipherSuite>, SpecError> {
    let mut suites = Vec::new();
    for part in raw.split(',').map(str::trim) {
        let id: u8 = part.parse().map_err(|_| {
            SpecError::for_key("cipher", format!("{part:?} is not a cipher suite number"))
        })?;
        let suite =
            CipherSuite::from_id(id).map_err(|e| SpecError::for_key("cipher", e.to_string()))?;
        if !suites.contains(&suite) {
            suites.push(suite);
        }
    }
    if suites.is_empty() {
        return Err(SpecError::for_key("cipher", "no cipher suite given"));
    }
    Ok(suites)
}

impl IpmiDriver {
    /// Validate a device specification and build the driver (no I/O).
    pub fn from_spec(spec: &DeviceSpec) -> Result<Self, SpecError> {
        spec.reject_unknown(OPTIONS, SECRETS)?;
        let (host, port) = split_host_port(&spec.address, crate::DEFAULT_PORT)?;
        let user = spec.user.as_deref().unwrap_or("");
        let password = spec.required_secret("password")?.expose_secret();
        let kg = spec
            .secret("kg")
            .map(|k| parse_kg(k.expose_secret()))
            .transpose()?;
        let creds = Credentials::new(
            user.as_bytes(),
            password.as_bytes(),
            kg.as_ref().map(|k| k.as_slice()),
        )
        .map_err(|why| {
            let key = if why.contains("user") {
                "user"
            } else if why.contains("Kg") {
                "kg"
            } else {
                "password"
            };
            SpecError::for_key(key, why)
        })?;
        let suites = parse_suites(spec.option("cipher").unwrap_or("17,3"))?;
        let privilege = match spec.option("privilege").unwrap_or("operator") {
            "operator" => Privilege::Operator,
            "administrator" | "admin" => Privilege::Administrator,
            other => {
                return Err(SpecError::for_key(
                    "privilege",
                    format!("{other:?}: expected `operator` or `administrator`"),
                ));
            }
        };
        let ms = |key: &str, default: u64, max: u64| -> Result<Duration, SpecError> {
            let v = spec.parsed_option::<u64>(key)?.unwrap_or(default);
            if v == 0 || v > max {
                return Err(SpecError::for_key(key, format!("must be 1..={max} ms")));
            }
            Ok(Duration::from_millis(v))
        };
        let retries = spec.parsed_option::<u32>("retries")?.unwrap_or(6);
        if retries > 30 {
            return Err(SpecError::for_key("retries", "must be at most 30"));
        }
        let auth_caps = spec.parsed_option::<bool>("auth_caps")?.unwrap_or(true);
        let opts = Options {
            suites,
            privilege,
            retry: Retry {
                first: ms("retransmit_ms", 250, 10_000)?,
                retries,
            },
            cipher_probe: ms("cipher_probe_ms", 250, 10_000)?,
            auth_caps,
        };
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(IpmiDriver {
            endpoint: format!("ipmi://{target}"),
            ip: host.parse().ok(),
            target: Arc::from(target),
            host,
            port,
            creds,
            opts,
            preferred: AtomicU8::new(0),
            proved: Mutex::new(Proved::default()),
            kept: Mutex::new(None),
        })
    }

    async fn resolve(&self, deadline: Instant) -> Result<SocketAddr, DriverError> {
        if let Some(ip) = self.ip {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let mut addrs = tokio::time::timeout_at(deadline, lookup)
            .await
            .map_err(|_| {
                DriverError::timeout(format!(
                    "{}: name lookup outlasted the deadline",
                    self.target
                ))
            })?
            .map_err(|e| DriverError::unreachable(format!("{}: {e}", self.target)))?;
        addrs.next().ok_or_else(|| {
            DriverError::unreachable(format!("{}: name resolves to no address", self.target))
        })
    }

    /// The suites to try, in order: within an operation, the one that worked for it first;
    /// otherwise the configured list, narrowed by what the BMC lists when it answers the
    /// optional probe.
    ///
    /// The probe's answer is unauthenticated: a list that would drop a configured suite
    /// (a downgrade, or "none of yours") is asked for again, and used only when both answers
    /// agree; otherwise the configured order is tried and the handshakes decide.
    async fn suite_order(&self, conn: &mut Conn) -> Result<Vec<CipherSuite>, DriverError> {
        let configured = &self.opts.suites;
        if let Ok(pref) = CipherSuite::from_id(self.preferred.load(Ordering::Relaxed)) {
            let mut order = vec![pref];
            order.extend(configured.iter().filter(|s| **s != pref));
            return Ok(order);
        }
        if configured.len() == 1 {
            return Ok(configured.clone());
        }
        let narrowed = |offered: &[u8]| -> Vec<CipherSuite> {
            configured
                .iter()
                .copied()
                .filter(|s| offered.contains(&s.id()))
                .collect()
        };
        let offered = match conn.cipher_suites(self.opts.cipher_probe).await {
            Some(offered) if !offered.is_empty() => offered,
            _ => return Ok(configured.clone()),
        };
        let order = narrowed(&offered);
        if order.len() == configured.len() {
            return Ok(order);
        }
        match conn.cipher_suites(self.opts.cipher_probe).await {
            Some(again) if again == offered => {}
            again => {
                tracing::debug!(
                    bmc = %self.target, first = ?offered, second = ?again,
                    "cipher suite lists disagree; trying the configured order"
                );
                return Ok(configured.clone());
            }
        }
        if order.is_empty() {
            return Err(DriverError::unsupported(format!(
                "{}: the BMC offers cipher suites {offered:?} (said twice), none of the \
                 configured {}",
                self.target,
                suite_list(configured)
            )));
        }
        Ok(order)
    }

    /// Get Channel Authentication Capabilities, asked a second time when the first answer is
    /// negative: that answer came outside any session, so one forged datagram could have
    /// written it. The second answer counts, whichever it is.
    async fn auth_caps(&self, conn: &mut Conn, deadline: Instant) -> Result<bool, DriverError> {
        let (retry, privilege) = (self.opts.retry, self.opts.privilege);
        let caps = match conn.auth_caps(deadline, retry, privilege).await? {
            Ok(caps) => caps,
            Err(first) => {
                tracing::debug!(bmc = %self.target, "unconfirmed refusal ({first}); asking again");
                conn.auth_caps(deadline, retry, privilege)
                    .await?
                    .map_err(|e| confirmed(e, 2))?
            }
        };
        Ok(caps.kg_set && !self.creds.has_kg())
    }

    /// Run the handshake, trying the suites in order; the session is not yet at the
    /// configured privilege.
    async fn open(&self, conn: &mut Conn, deadline: Instant) -> Result<Session, DriverError> {
        let kg_hint = if self.opts.auth_caps {
            self.auth_caps(conn, deadline).await?
        } else {
            false
        };
        let order = self.suite_order(conn).await?;
        let mut refusals = Vec::new();
        for suite in order {
            match self
                .confirmed_handshake(conn, suite, kg_hint, deadline)
                .await
            {
                Ok(session) => {
                    // Remembered until `release()`: a downgrade forced on this operation
                    // never outlives it.
                    self.preferred.store(suite.id(), Ordering::Relaxed);
                    return Ok(session);
                }
                Err(e) if is_suite_refusal(&e) => {
                    tracing::debug!(bmc = %self.target, suite = suite.id(), "suite refused");
                    refusals.push(e.detail);
                }
                Err(e) => return Err(e),
            }
        }
        Err(DriverError::unsupported(format!(
            "{}: no configured cipher suite ({}) accepted: {}",
            self.target,
            suite_list(&self.opts.suites),
            refusals.join("; ")
        )))
    }

    /// Handshakes with `suite` until one succeeds or a refusal is confirmed.
    ///
    /// Every refusal a handshake can get (a status code, a RAKP 2 code or RAKP 4 check value
    /// that does not verify) is unauthenticated, so a single forged or corrupted datagram
    /// could be it: it counts only when a second, independent handshake (new session id, new
    /// random number) ends with a refusal of the same class. A handshake that succeeds
    /// instead shows the refusal was noise on the path. At most [`HANDSHAKES_PER_SUITE`]
    /// handshakes, all under the call's deadline; failing safe throughout: no refusal,
    /// confirmed or not, ever yields a session.
    async fn confirmed_handshake(
        &self,
        conn: &mut Conn,
        suite: CipherSuite,
        kg_hint: bool,
        deadline: Instant,
    ) -> Result<Session, DriverError> {
        let (retry, privilege) = (self.opts.retry, self.opts.privilege);
        let mut refusals: Vec<DriverError> = Vec::new();
        for _ in 0..HANDSHAKES_PER_SUITE {
            match conn
                .handshake(suite, privilege, &self.creds, kg_hint, deadline, retry)
                .await
            {
                Ok(session) => {
                    if !refusals.is_empty() {
                        tracing::warn!(
                            bmc = %self.target,
                            ignored = %refusals.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>().join("; "),
                            "a handshake refusal was not confirmed by a fresh handshake: \
                             taken for a forged or corrupted datagram"
                        );
                    }
                    return Ok(session);
                }
                Err(HandshakeFailure::Failed(e)) => {
                    return Err(match refusals.first() {
                        None => e,
                        Some(first) => DriverError::new(
                            e.kind,
                            format!(
                                "{}; an earlier refusal was not confirmed: {}",
                                e.detail, first.detail
                            ),
                        ),
                    });
                }
                Err(HandshakeFailure::Refused(e)) => {
                    if refusals.iter().any(|r| r.kind == e.kind) {
                        return Err(confirmed(e, refusals.len() + 1));
                    }
                    tracing::debug!(bmc = %self.target, "unconfirmed refusal ({e}); fresh handshake");
                    refusals.push(e);
                }
            }
        }
        Err(DriverError::protocol(format!(
            "{}: {} fresh handshakes with cipher suite {suite} were refused in as many \
             different ways, none confirmed: {}",
            self.target,
            refusals.len(),
            refusals
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }

    /// Run `body` in the kept session if there is a fresh one, else in a new session that is
    /// then kept for the next call. Any error closes the session; a kept session that turns
    /// out dead (no answer, a malformed reply) is replaced once by a new one, deadline
    /// permitting.
    async fn with_session(
        &self,
        deadline: std::time::Instant,
        call: Call,
    ) -> Result<Answer, DriverError> {
        let deadline = Instant::from_std(deadline);
        let kept = self
            .lock_kept()
            .take()
            .filter(|k| k.last_used.elapsed() < KEEP_IDLE);
        if let Some(mut k) = kept {
            k.live.conn.begin_call();
            match self
                .perform(&mut k.live.conn, &mut k.live.session, call, deadline)
                .await
            {
                Ok(v) => {
                    self.keep(k.live);
                    return Ok(v);
                }
                Err(e) => {
                    // Taken out of the slot: dropping it sends Close Session.
                    drop(k);
                    let session_may_be_dead = matches!(
                        e.kind,
                        fencegate_driver::ErrorKind::Unreachable
                            | fencegate_driver::ErrorKind::Timeout
                            | fencegate_driver::ErrorKind::Protocol
                    );
                    if !session_may_be_dead || Instant::now() >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(bmc = %self.target, "kept session failed ({e}); opening a new one");
                }
            }
        }
        let addr = self.resolve(deadline).await?;
        let mut conn = Conn::connect(addr, Arc::clone(&self.target)).await?;
        let session = self.open(&mut conn, deadline).await?;
        // From here on the session is closed on every path, cancellation included.
        let mut live = Live::new(conn, session);
        let retry = self.opts.retry;
        let admitted = self.admit(live.session.peer_guid());
        let result = match admitted {
            Ok(()) => match live
                .conn
                .set_privilege(&mut live.session, self.opts.privilege, deadline, retry)
                .await
            {
                Ok(()) => {
                    self.perform(&mut live.conn, &mut live.session, call, deadline)
                        .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(v) => {
                self.keep(live);
                Ok(v)
            }
            Err(e) => {
                live.close(deadline, retry.first).await;
                Err(e)
            }
        }
    }

    fn lock_kept(&self) -> std::sync::MutexGuard<'_, Option<Kept>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `live` for the next call (a session kept before is replaced, and closed as it
    /// drops).
    fn keep(&self, live: Live) {
        let replaced = self.lock_kept().replace(Kept {
            live,
            last_used: Instant::now(),
        });
        drop(replaced);
    }

    fn lock_proved(&self) -> std::sync::MutexGuard<'_, Proved> {
        self.proved.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record the GUID a new session proved, before anything is sent in it. The first
    /// session of an operation binds the operation to its GUID; a later session of the same
    /// operation (the kept one died, or idled out) that proves another GUID is refused: the
    /// engine compared the identity after the first call, so a relay that switches boxes
    /// between the engine's check and the command must not get the command through.
    fn admit(&self, guid: Option<[u8; GUID_LEN]>) -> Result<(), DriverError> {
        let t = &self.target;
        let Some(guid) = guid else {
            return Err(DriverError::protocol(format!(
                "{t}: internal: an established session carries no proved GUID"
            )));
        };
        let mut proved = self.lock_proved();
        match proved.bound {
            None => {
                proved.bound = Some(guid);
                proved.seen = vec![guid];
                Ok(())
            }
            Some(bound) if bound == guid => Ok(()),
            Some(bound) => {
                if !proved.seen.contains(&guid) {
                    proved.seen.push(guid);
                }
                Err(DriverError::protocol(format!(
                    "{t}: the BMC now answering proves GUID {} in RAKP 2, but this operation \
                     started with GUID {}: another box answers at this address (a relay or a \
                     re-addressed BMC); nothing is sent to it in this operation",
                    commands::guid_hex(&guid),
                    commands::guid_hex(&bound)
                )))
            }
        }
    }

    async fn read_status(&self, deadline: std::time::Instant) -> Result<PowerState, DriverError> {
        match self.with_session(deadline, Call::Status).await? {
            Answer::State(state) => Ok(state),
            other => Err(self.mismatch("status", &other)),
        }
    }

    async fn read_restore_policy(
        &self,
        deadline: std::time::Instant,
    ) -> Result<RestorePolicy, DriverError> {
        match self.with_session(deadline, Call::RestorePolicy).await? {
            Answer::Policy(policy) => Ok(policy),
            other => Err(self.mismatch("restore policy", &other)),
        }
    }

    async fn write_restore_policy(
        &self,
        policy: RestorePolicy,
        deadline: std::time::Instant,
    ) -> Result<(), DriverError> {
        match self
            .with_session(deadline, Call::SetRestorePolicy(policy))
            .await?
        {
            Answer::Done => Ok(()),
            other => Err(self.mismatch("set restore policy", &other)),
        }
    }

    async fn count_power_supplies(&self, deadline: std::time::Instant) -> Result<u32, DriverError> {
        match self.with_session(deadline, Call::CountSupplies).await? {
            Answer::Count(n) => Ok(n),
            other => Err(self.mismatch("power supply count", &other)),
        }
    }

    /// One storage (SDR) command in the session; its completion code checked.
    async fn storage(
        &self,
        conn: &mut Conn,
        session: &mut Session,
        cmd: Cmd<'_>,
        what: &str,
        deadline: Instant,
    ) -> Result<Vec<u8>, DriverError> {
        let (cc, data) = conn
            .request(session, cmd, deadline, self.opts.retry)
            .await?;
        check_completion(&self.target, what, cc)?;
        Ok(data)
    }

    /// Walk the SDR repository and count the sensors that stand for one power supply each
    /// ([`commands::is_supply_sensor`]): the header of every record, then the header and
    /// sensor fields of full and compact sensor records. Every read starts at offset 0, which
    /// needs no reservation: a Reserve SDR Repository retransmitted because the first answer
    /// was slow would cancel the reservation the walk holds. The second read of a record
    /// must repeat its header. The walk is bounded by the count Get SDR Repository Info
    /// announced (at most [`MAX_SDR_RECORDS`]) and refuses a record id seen twice, so a
    /// broken or hostile BMC cannot keep it going.
    async fn count_supply_sensors(
        &self,
        conn: &mut Conn,
        session: &mut Session,
        deadline: Instant,
    ) -> Result<u32, DriverError> {
        let t = &self.target;
        let bad = |what: &str, e: fencegate_ipmi_codec::DecodeError| {
            DriverError::protocol(format!("{t}: {what} reply: {e}"))
        };
        let info = Cmd {
            what: "Get SDR Repository Info",
            netfn: NETFN_STORAGE,
            cmd: CMD_GET_SDR_REPO_INFO,
            data: &[],
        };
        let info = self
            .storage(conn, session, info, "Get SDR Repository Info", deadline)
            .await?;
        let info = SdrRepoInfo::decode(&info).map_err(|e| bad("Get SDR Repository Info", e))?;
        if info.record_count == 0 {
            return Err(DriverError::unsupported(format!(
                "{t}: the SDR repository is empty: this BMC lists no sensors, so it cannot say \
                 how many power supplies feed the host"
            )));
        }
        if info.record_count > MAX_SDR_RECORDS {
            return Err(DriverError::protocol(format!(
                "{t}: the SDR repository announces {} records, more than the {MAX_SDR_RECORDS} \
                 this driver reads",
                info.record_count
            )));
        }
        let mut next = SDR_FIRST;
        let mut seen = std::collections::HashSet::new();
        let mut supplies: u32 = 0;
        while next != SDR_LAST {
            if seen.len() >= usize::from(info.record_count) {
                return Err(DriverError::protocol(format!(
                    "{t}: the SDR repository goes on past the {} records Get SDR Repository \
                     Info announced",
                    info.record_count
                )));
            }
            let record = next;
            let what = format!("Get SDR record {record:#06x}");
            let request = commands::get_sdr_request(0, record, 0, SDR_HEADER_LEN);
            let head = Cmd {
                what: "Get SDR",
                netfn: NETFN_STORAGE,
                cmd: CMD_GET_SDR,
                data: &request,
            };
            let data = self.storage(conn, session, head, &what, deadline).await?;
            let (following, bytes) =
                commands::decode_sdr_chunk(&data).map_err(|e| bad(&what, e))?;
            let header = SdrHeader::decode(bytes).map_err(|e| bad(&what, e))?;
            if !seen.insert(header.id) {
                return Err(DriverError::protocol(format!(
                    "{t}: SDR record {:#06x} comes twice in the walk: the repository's links \
                     go round",
                    header.id
                )));
            }
            if header.is_sensor() {
                if header.length < SDR_SENSOR_PREFIX_LEN {
                    return Err(DriverError::protocol(format!(
                        "{t}: SDR sensor record {:#06x} is {} bytes long, too short for its \
                         sensor type",
                        header.id, header.length
                    )));
                }
                let request =
                    commands::get_sdr_request(0, record, 0, SDR_HEADER_LEN + SDR_SENSOR_PREFIX_LEN);
                let body = Cmd {
                    what: "Get SDR",
                    netfn: NETFN_STORAGE,
                    cmd: CMD_GET_SDR,
                    data: &request,
                };
                let data = self.storage(conn, session, body, &what, deadline).await?;
                let (_, bytes) = commands::decode_sdr_chunk(&data).map_err(|e| bad(&what, e))?;
                let (again, prefix) = bytes.split_at(bytes.len().min(usize::from(SDR_HEADER_LEN)));
                if SdrHeader::decode(again).ok() != Some(header) {
                    return Err(DriverError::protocol(format!(
                        "{t}: SDR record {:#06x} changed between two reads of its header",
                        header.id
                    )));
                }
                let (sensor_type, reading_type) =
                    commands::sensor_types(prefix).map_err(|e| bad(&what, e))?;
                if commands::is_supply_sensor(sensor_type, reading_type) {
                    supplies += 1;
                }
            }
            next = following;
        }
        if supplies == 0 {
            return Err(DriverError::unsupported(format!(
                "{t}: none of the {} SDR records is a power supply sensor (sensor type 0x08): \
                 this BMC cannot say how many supplies feed the host",
                seen.len()
            )));
        }
        Ok(supplies)
    }

    /// The error for a call that produced another call's kind of answer (a bug, never seen).
    fn mismatch(&self, call: &str, answer: &Answer) -> DriverError {
        DriverError::protocol(format!(
            "{}: internal: a {call} call produced {}",
            self.target,
            answer.kind()
        ))
    }

    /// Get Chassis Status in the session, checked and decoded.
    async fn chassis_status(
        &self,
        conn: &mut Conn,
        session: &mut Session,
        deadline: Instant,
    ) -> Result<ChassisStatus, DriverError> {
        let t = &self.target;
        let cmd = Cmd {
            what: "Get Chassis Status",
            netfn: NETFN_CHASSIS,
            cmd: CMD_GET_CHASSIS_STATUS,
            data: &[],
        };
        let (cc, data) = conn
            .request(session, cmd, deadline, self.opts.retry)
            .await?;
        check_completion(t, "Get Chassis Status", cc)?;
        ChassisStatus::decode(&data)
            .map_err(|e| DriverError::protocol(format!("{t}: Get Chassis Status reply: {e}")))
    }

    async fn control(
        &self,
        action: Action,
        deadline: std::time::Instant,
    ) -> Result<CommandReceipt, DriverError> {
        let ctl = match action {
            Action::Off => ChassisControl::PowerDown,
            Action::On => ChassisControl::PowerUp,
            Action::Cycle => ChassisControl::PowerCycle,
            Action::GracefulOff => ChassisControl::SoftShutdown,
            // An action added to the contract after this driver was written: send nothing.
            other => {
                return Err(DriverError::unsupported(format!(
                    "{}: IPMI has no chassis control for {other}",
                    self.target
                )));
            }
        };
        match self.with_session(deadline, Call::Control(ctl)).await? {
            Answer::Receipt(receipt) => Ok(receipt),
            other => Err(self.mismatch("control", &other)),
        }
    }

    /// Carry out one call inside an established session.
    async fn perform(
        &self,
        conn: &mut Conn,
        session: &mut Session,
        call: Call,
        deadline: Instant,
    ) -> Result<Answer, DriverError> {
        let t = &self.target;
        let retry = self.opts.retry;
        match call {
            Call::Status => {
                let status = self.chassis_status(conn, session, deadline).await?;
                Ok(Answer::State(if status.power_on {
                    PowerState::On
                } else {
                    PowerState::Off
                }))
            }
            Call::RestorePolicy => {
                let status = self.chassis_status(conn, session, deadline).await?;
                commands::restore_policy_from_code(status.restore_policy)
                    .map(Answer::Policy)
                    .ok_or_else(|| {
                        DriverError::protocol(format!(
                            "{t}: Get Chassis Status reports power restore policy {:02b}b \
                             (\"unknown\"): the BMC does not say what the host does when \
                             power returns",
                            status.restore_policy
                        ))
                    })
            }
            Call::SetRestorePolicy(policy) => {
                let code = commands::restore_policy_code(policy).ok_or_else(|| {
                    DriverError::unsupported(format!(
                        "{t}: IPMI has no power restore policy code for {policy}"
                    ))
                })?;
                let cmd = Cmd {
                    what: "Set Power Restore Policy",
                    netfn: NETFN_CHASSIS,
                    cmd: CMD_SET_POWER_RESTORE_POLICY,
                    data: &[code],
                };
                let (cc, _) = conn.request(session, cmd, deadline, retry).await?;
                check_completion(t, &format!("Set Power Restore Policy {policy}"), cc)?;
                Ok(Answer::Done)
            }
            Call::CountSupplies => self
                .count_supply_sensors(conn, session, deadline)
                .await
                .map(Answer::Count),
            Call::Control(ctl) => {
                let cmd = Cmd {
                    what: "Chassis Control",
                    netfn: NETFN_CHASSIS,
                    cmd: CMD_CHASSIS_CONTROL,
                    data: &[ctl.code()],
                };
                let (cc, _) = conn.request(session, cmd, deadline, retry).await?;
                check_completion(t, "Chassis Control", cc)?;
                Ok(Answer::Receipt(CommandReceipt::new(format!(
                    "Chassis Control {ctl:?} ({}) accepted: completion code 0x00",
                    ctl.code()
                ))))
            }
        }
    }
}

/// What one driver call asks of the BMC, as data, so that it can be carried out again in
/// a new session when a kept one turns out dead.
#[derive(Debug, Clone, Copy)]
enum Call {
    Status,
    Control(ChassisControl),
    RestorePolicy,
    SetRestorePolicy(RestorePolicy),
    CountSupplies,
}

/// What a call returns.
enum Answer {
    State(PowerState),
    Receipt(CommandReceipt),
    Policy(RestorePolicy),
    Count(u32),
    Done,
}

impl Answer {
    /// What kind of answer this is, for the message of an internal mismatch.
    fn kind(&self) -> &'static str {
        match self {
            Answer::State(_) => "a reading",
            Answer::Receipt(_) => "a receipt",
            Answer::Policy(_) => "a restore policy",
            Answer::Count(_) => "a power supply count",
            Answer::Done => "an acknowledgement",
        }
    }
}

fn suite_list(suites: &[CipherSuite]) -> String {
    suites
        .iter()
        .map(|s| s.id().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Map a command's completion code to the contract's error classes.
fn check_completion(t: &str, what: &str, cc: u8) -> Result<(), DriverError> {
    let text = completion_text(cc);
    match cc {
        0x00 => Ok(()),
        0xC0 => Err(DriverError::busy(format!(
            "{t}: {what}: {text} ({cc:#04x})"
        ))),
        0xD4 => Err(DriverError::auth(format!(
            "{t}: {what}: {text} ({cc:#04x})"
        ))),
        0xD5 => Err(DriverError::state_conflict(format!(
            "{t}: {what}: {text} ({cc:#04x})"
        ))),
        0xC1 | 0xC2 | 0xCC | 0xD6 => Err(DriverError::unsupported(format!(
            "{t}: {what}: {text} ({cc:#04x})"
        ))),
        _ => Err(DriverError::protocol(format!(
            "{t}: {what}: {text} ({cc:#04x})"
        ))),
    }
}

impl PowerDriver for IpmiDriver {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // Chassis Control switches the host's main power; the BMC stays on standby.
            channel: Channel::Bmc,
            // Every session's GUID is proved in RAKP 2 before it serves a call.
            authenticated_identity: true,
            ..Capabilities::readable(&Action::ALL)
        }
    }

    fn status(&self, deadline: std::time::Instant) -> DriverFuture<'_, PowerState> {
        Box::pin(self.read_status(deadline))
    }

    fn set_power(
        &self,
        action: Action,
        deadline: std::time::Instant,
    ) -> DriverFuture<'_, CommandReceipt> {
        Box::pin(self.control(action, deadline))
    }

    fn restore_policy(&self, deadline: std::time::Instant) -> DriverFuture<'_, RestorePolicy> {
        Box::pin(self.read_restore_policy(deadline))
    }

    fn set_restore_policy(
        &self,
        policy: RestorePolicy,
        deadline: std::time::Instant,
    ) -> DriverFuture<'_, ()> {
        Box::pin(self.write_restore_policy(policy, deadline))
    }

    /// Counts the power supply sensors of the BMC's SDR repository (one status sensor per
    /// supply; redundancy sensors describe the set and are left out), in the session the
    /// other calls use. An empty bay keeps its sensor, so the count may be one too many,
    /// never one too few.
    fn power_supplies(&self, deadline: std::time::Instant) -> DriverFuture<'_, u32> {
        Box::pin(self.count_power_supplies(deadline))
    }

    fn release(&self, deadline: std::time::Instant) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            // The operation ends: the next session may prove another GUID (a replaced
            // board) and the engine, not this driver, judges it.
            self.lock_proved().bound = None;
            // The next operation starts again from the configured suites: whatever pushed
            // this one down to a weaker suite must do so again, confirmed.
            self.preferred.store(0, Ordering::Relaxed);
            let kept = self.lock_kept().take();
            if let Some(k) = kept {
                k.live
                    .close(Instant::from_std(deadline), self.opts.retry.first)
                    .await;
            }
            Ok(())
        })
    }

    fn identity(&self) -> Vec<IdentityFact> {
        self.lock_proved()
            .seen
            .iter()
            .map(|g| IdentityFact::authenticated("ipmi-guid", commands::guid_hex(g)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fencegate_driver::SecretString;

    fn spec() -> DeviceSpec {
        let mut s = DeviceSpec {
            name: "bmc1".into(),
            driver: "ipmi".into(),
            address: "127.0.0.1:9623".into(),
            user: Some("admin".into()),
            ..Default::default()
        };
        s.secrets
            .insert("password".into(), SecretString::from("hunter2-pw"));
        s
    }

    #[test]
    fn defaults_and_endpoint() {
        let d = IpmiDriver::from_spec(&spec()).unwrap();
        assert_eq!(d.endpoint(), "ipmi://127.0.0.1:9623");
        assert_eq!(d.opts.suites, [CipherSuite::Suite17, CipherSuite::Suite3]);
        assert_eq!(d.opts.privilege, Privilege::Operator);
        assert!(!format!("{d:?}").contains("hunter2"));
        assert_eq!(IpmiFactory.name(), "ipmi");
    }

    #[test]
    fn refusals_name_the_key() {
        let mut s = spec();
        s.options.insert("cipher".into(), "0".into());
        let e = IpmiDriver::from_spec(&s).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("cipher"));
        assert!(e.message.contains("authenticates nothing"), "{e}");

        let mut s = spec();
        s.options.insert("ciphers".into(), "3".into());
        assert_eq!(
            IpmiDriver::from_spec(&s).unwrap_err().key.as_deref(),
            Some("ciphers")
        );

        let mut s = spec();
        s.secrets.clear();
        assert_eq!(
            IpmiDriver::from_spec(&s).unwrap_err().key.as_deref(),
            Some("password")
        );

        let mut s = spec();
        s.options.insert("privilege".into(), "user".into());
        assert_eq!(
            IpmiDriver::from_spec(&s).unwrap_err().key.as_deref(),
            Some("privilege")
        );

        let mut s = spec();
        s.secrets
            .insert("password".into(), SecretString::from("x".repeat(21)));
        let e = IpmiDriver::from_spec(&s).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("password"));
        assert!(!e.message.contains("xxxx"));
    }

    #[test]
    fn kg_forms() {
        assert_eq!(parse_kg("0x0102ff").unwrap().as_slice(), [1, 2, 0xff]);
        assert_eq!(parse_kg("abc").unwrap().as_slice(), b"abc");
        assert!(parse_kg("0x123").is_err());
        assert!(parse_kg("0xzz").is_err());
        assert!(parse_kg(&format!("0x{}", "00".repeat(21))).is_err());
    }

    #[test]
    fn ipv6_endpoint() {
        let mut s = spec();
        s.address = "[::1]:6230".into();
        let d = IpmiDriver::from_spec(&s).unwrap();
        assert_eq!(d.endpoint(), "ipmi://[::1]:6230");
    }
}
