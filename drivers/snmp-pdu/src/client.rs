//! One SNMP conversation with a PDU: bounded, timed requests over [`Session`]s.
//!
//! A session has no clock, so every request here runs under [`tokio::time::timeout`], and
//! after any unanswered or garbled attempt the session is thrown away and the next attempt
//! opens a fresh one (new socket, new request ids, new v3 engine discovery). That is safe
//! because outlet GETs and SETs are idempotent.
//!
//! A session that ended a call with every request answered has nothing in flight, so the
//! driver keeps it for the next call ([`Conversation::into_session`]): that saves the v3
//! engine discovery and key localization on every poll of the verification loop. The v3
//! password keys themselves come derived ([`Secrets`]): a fresh session only localizes them.

use crate::config::PduConfig;
use crate::message::Value;
use crate::session::{self, Report, Secrets, Session, SnmpError};
use fencegate_driver::{DriverError, ErrorKind};
use std::time::{Duration, Instant};

/// A value as the agent returned it, reduced to what the driver looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An INTEGER.
    Integer(i64),
    /// An OCTET STRING, lossily decoded.
    Text(String),
    /// An OBJECT IDENTIFIER in dotted form.
    Oid(String),
    /// SNMPv2 exception: no object of this type on the agent.
    NoSuchObject,
    /// SNMPv2 exception: the object exists but not this instance (wrong outlet number).
    NoSuchInstance,
    /// SNMPv2 exception: past the end of the MIB view.
    EndOfMibView,
    /// Any other type, named.
    Other(&'static str),
}

/// A response PDU reduced to what the driver looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The PDU's error-status (0 = noError).
    pub error_status: u32,
    /// The variable bindings as answered: the object each value is for, and the value, in
    /// the order given (empty or partial on error in some agents). The name is kept so that
    /// a value for another object can never be read as the one asked for.
    pub varbinds: Vec<(Vec<u64>, Answer)>,
}

impl Reply {
    /// The value of the `i`-th varbind, whatever object it names.
    pub fn value(&self, i: usize) -> Option<&Answer> {
        self.varbinds.get(i).map(|(_, v)| v)
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// GET of these OIDs.
    Get(&'a [Vec<u64>]),
    /// SET of one INTEGER.
    Set(&'a [u64], i64),
}

/// A conversation with one PDU, bounded by a deadline.
pub struct Conversation<'a> {
    config: &'a PduConfig,
    endpoint: &'a str,
    deadline: Instant,
    /// What every session of this conversation (and its probes) authenticates with.
    secrets: Secrets<'a>,
    session: Option<Session>,
    /// The engine ID proven by the session that gave the latest answer (SNMPv3 only).
    engine_id: Option<Vec<u8>>,
}

/// How an attempt failed.
enum Failure {
    /// Worth another attempt on a fresh session, with what happened.
    Transient(String),
    /// Final.
    Fatal(DriverError),
}

impl<'a> Conversation<'a> {
    /// A conversation that continues on `session` (one with nothing in flight, kept from
    /// an earlier call) or opens its first session lazily with `secrets`.
    pub fn resume(
        config: &'a PduConfig,
        endpoint: &'a str,
        deadline: Instant,
        secrets: Secrets<'a>,
        session: Option<Session>,
    ) -> Self {
        Conversation {
            config,
            endpoint,
            deadline,
            secrets,
            session,
            engine_id: None,
        }
    }

    /// The SNMPv3 engine ID that the agent proved (with a verified MAC) on the session that
    /// gave this conversation's latest answer; `None` for v1/v2c or before any answer.
    pub fn authenticated_engine_id(&self) -> Option<&[u8]> {
        self.engine_id.as_deref()
    }

    /// The session, if the last request was answered (a session whose request went
    /// unanswered was already dropped, so a late answer cannot be read as the next one).
    pub fn into_session(self) -> Option<Session> {
        self.session
    }

    /// Send a request, retrying (bounded by `retries` and the deadline) when unanswered.
    /// `what` names the object for messages, e.g. "GET outlet 4 (1.3.6.…)".
    pub async fn request(&mut self, req: Request<'_>, what: &str) -> Result<Reply, DriverError> {
        let attempts = self.config.retries + 1;
        let mut last = String::from("no attempt made");
        for attempt in 1..=attempts {
            let now = Instant::now();
            let Some(remaining) = self
                .deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                return Err(DriverError::timeout(format!(
                    "{}: {what}: deadline reached after {} attempt(s) ({last})",
                    self.endpoint,
                    attempt - 1
                )));
            };
            let budget = self.config.timeout.min(remaining);
            match tokio::time::timeout(budget, self.attempt(req)).await {
                Ok(Ok(reply)) => {
                    self.engine_id = self
                        .session
                        .as_ref()
                        .and_then(Session::authenticated_engine_id)
                        .map(<[u8]>::to_vec);
                    return Ok(reply);
                }
                Ok(Err(Failure::Fatal(e))) => {
                    self.session = None;
                    return Err(e);
                }
                Ok(Err(Failure::Transient(why))) => {
                    tracing::debug!(endpoint = self.endpoint, attempt, %why, "SNMP attempt failed");
                    self.session = None;
                    last = why;
                    // A refused port answers at once; do not spin through the retries.
                    tokio::time::sleep(Duration::from_millis(20).min(remaining)).await;
                }
                Err(_) => {
                    tracing::debug!(endpoint = self.endpoint, attempt, "SNMP attempt unanswered");
                    self.session = None;
                    last = format!("no answer within {} ms", budget.as_millis());
                }
            }
        }
        if Instant::now() >= self.deadline {
            return Err(DriverError::timeout(format!(
                "{}: {what}: deadline reached after {attempts} attempt(s) ({last})",
                self.endpoint
            )));
        }
        let failed = format!("{what}: {attempts} attempt(s) failed, last: {last}");
        Err(self.diagnose_silence(&failed).await)
    }

    /// Tell, where the agent lets us, why it left our requests unanswered. Agents drop a
    /// request with a wrong community (or one they cannot decrypt) without a word, so the
    /// silence alone cannot tell a wrong secret from a dead agent; two probes can:
    ///
    /// * `sysUpTime.0` with our own credentials: answered means the credentials work and
    ///   only the outlet requests go unanswered (a slow or hung outlet handler);
    /// * otherwise a probe the agent answers *without* our secret: SNMPv3 engine discovery
    ///   (for v1/v2c), or the same user without privacy (for v3 authPriv). Answered means
    ///   the agent is alive and ignores only our secret: that is `Auth`.
    ///
    /// Both run concurrently within one attempt's wait and the deadline, and only on this
    /// failure path.
    async fn diagnose_silence(&self, failed: &str) -> DriverError {
        let budget = self
            .deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_default()
            .min(self.config.timeout);
        let (own, without_secret) = if budget.is_zero() {
            (false, None)
        } else {
            let own = probe(self.config, self.secrets, budget);
            let without_secret = async {
                if self.secrets.is_community() {
                    Some(discovery(self.config, budget).await)
                } else if let Some(no_priv) = self.secrets.without_privacy() {
                    Some(probe(self.config, no_priv, budget).await)
                } else {
                    None
                }
            };
            tokio::join!(own, without_secret)
        };
        let v1_v2c = self.secrets.is_community();
        let (kind, why) = explain(v1_v2c, own, without_secret);
        DriverError::new(kind, format!("{}: {failed}; {why}", self.endpoint))
    }

    /// One attempt: open a session if needed, send, receive, decode.
    async fn attempt(&mut self, req: Request<'_>) -> Result<Reply, Failure> {
        if self.session.is_none() {
            self.session = Some(self.open().await?);
        }
        let Some(session) = self.session.as_mut() else {
            return Err(Failure::Transient("session not open".into()));
        };
        let pdu = match req {
            Request::Get(oids) => session.get(oids).await,
            Request::Set(oid, value) => session.set(oid, value).await,
        };
        let pdu = pdu.map_err(|e| self.classify(e))?;
        let varbinds = pdu
            .varbinds
            .iter()
            .map(|(name, v)| (name.clone(), answer(v)))
            .collect();
        Ok(Reply {
            error_status: u32::try_from(pdu.error_status).unwrap_or(u32::MAX),
            varbinds,
        })
    }

    /// Open a session; for v3 this includes engine discovery (one extra round trip) and
    /// localizing the keys to the engine (one short hash each).
    async fn open(&self) -> Result<Session, Failure> {
        Session::open(&self.config.host, self.config.port, self.secrets)
            .await
            .map_err(|e| self.classify(e))
    }

    /// Sort session errors into retry-worthy ones and final ones.
    fn classify(&self, e: SnmpError) -> Failure {
        let endpoint = self.endpoint;
        match e {
            SnmpError::Refused => Failure::Transient(
                "the agent's port refused the datagram (ICMP port unreachable)".into(),
            ),
            SnmpError::Io(why) => Failure::Transient(why),
            SnmpError::Malformed(why) => Failure::Fatal(DriverError::protocol(format!(
                "{endpoint}: malformed SNMP answer: {why}"
            ))),
            SnmpError::Unsupported(why) => {
                Failure::Fatal(DriverError::unsupported(format!("{endpoint}: {why}")))
            }
            SnmpError::Report(report) => match report {
                Report::UnknownUserName | Report::WrongDigest => {
                    Failure::Fatal(DriverError::auth(format!(
                        "{endpoint}: SNMPv3 authentication refused (unknown user, wrong \
                         auth_password or wrong auth_protocol)"
                    )))
                }
                Report::DecryptionError => Failure::Fatal(DriverError::auth(format!(
                    "{endpoint}: the agent cannot decrypt our requests: wrong priv_password or \
                     priv_protocol"
                ))),
                Report::UnsupportedSecLevel => Failure::Fatal(DriverError::auth(format!(
                    "{endpoint}: the agent does not allow this user the configured security \
                     level (security_level, priv_protocol)"
                ))),
                Report::UnknownContext => Failure::Fatal(DriverError::unsupported(format!(
                    "{endpoint}: the agent does not know the configured SNMPv3 context"
                ))),
                Report::NotInTimeWindow | Report::UnknownEngineId => Failure::Transient(
                    "the agent's SNMPv3 engine boots or time changed (restarted?)".into(),
                ),
                Report::Other(oid) => Failure::Fatal(DriverError::protocol(format!(
                    "{endpoint}: the agent refused the request with report {oid}"
                ))),
            },
        }
    }
}

/// What unanswered requests mean, from the two probes of
/// [`Conversation::diagnose_silence`]: `own` is whether the agent answered our own
/// credentials, `without_secret` whether it answered the probe that needs no secret (`None`
/// when there is none to try).
fn explain(v1_v2c: bool, own: bool, without_secret: Option<bool>) -> (ErrorKind, &'static str) {
    match (own, without_secret, v1_v2c) {
        (true, ..) => (
            ErrorKind::Unreachable,
            "the agent does answer sysUpTime.0 with these credentials, so it is alive and \
             they work: its outlet handler did not answer",
        ),
        (false, Some(true), true) => (
            ErrorKind::Auth,
            "the agent is alive (it answers SNMPv3 engine discovery) but ignores every \
             request with this community: the community is wrong (or not allowed from this \
             address)",
        ),
        (false, Some(true), false) => (
            ErrorKind::Auth,
            "the agent answers this user without privacy but ignores every encrypted \
             request: the priv_password (or priv_protocol) is wrong",
        ),
        (false, _, true) => (
            ErrorKind::Unreachable,
            "SNMPv1/v2c agents drop requests with a wrong community without a word, and \
             this one answered no other probe either: it is dead or unreachable, or the \
             community is wrong",
        ),
        (false, _, false) => (
            ErrorKind::Unreachable,
            "the agent answered no probe: it is dead or unreachable (an SNMPv3 agent that \
             cannot decrypt, with a wrong priv_password, is silent too)",
        ),
    }
}

/// `sysUpTime.0`: every agent has it, and it is answered by the agent itself rather than
/// by a PDU's outlet handler.
const SYS_UP_TIME: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];

/// Whether the agent answers anything (value, error status or report) to a GET of
/// `sysUpTime.0` with `secrets` within `budget`.
async fn probe(config: &PduConfig, secrets: Secrets<'_>, budget: Duration) -> bool {
    let attempt = async {
        let mut session = match Session::open(&config.host, config.port, secrets).await {
            Ok(s) => s,
            Err(e) => return e.answered(),
        };
        match session.get(&[SYS_UP_TIME.to_vec()]).await {
            Ok(_) => true,
            Err(e) => e.answered(),
        }
    };
    tokio::time::timeout(budget, attempt).await.unwrap_or(false)
}

/// Whether the agent answers SNMPv3 engine discovery, which needs no secret at all: most
/// agents (net-snmp, and the PDUs that speak v3) answer it even with v3 users unset.
async fn discovery(config: &PduConfig, budget: Duration) -> bool {
    let attempt = async {
        match session::discover(&config.host, config.port).await {
            Ok(()) => true,
            Err(e) => e.answered(),
        }
    };
    tokio::time::timeout(budget, attempt).await.unwrap_or(false)
}

fn answer(v: &Value) -> Answer {
    match v {
        Value::Integer(i) => Answer::Integer(*i),
        Value::OctetString(s) => Answer::Text(String::from_utf8_lossy(s).into_owned()),
        Value::Oid(o) => Answer::Oid(crate::profile::dotted(o)),
        Value::NoSuchObject => Answer::NoSuchObject,
        Value::NoSuchInstance => Answer::NoSuchInstance,
        Value::EndOfMibView => Answer::EndOfMibView,
        Value::Null => Answer::Other("NULL"),
        Value::Unsigned(name, _) | Value::Other(name) => Answer::Other(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_auth_only_when_the_agent_proved_alive_without_our_secret() {
        // v1/v2c: discovery answered, our community not: wrong community.
        assert_eq!(explain(true, false, Some(true)).0, ErrorKind::Auth);
        // v3 authPriv: the user without privacy answered, encrypted requests not.
        let (kind, why) = explain(false, false, Some(true));
        assert_eq!(kind, ErrorKind::Auth);
        assert!(why.contains("priv_password"));
        // Nothing answered: dead or unreachable, never a guess at the secret.
        for v1_v2c in [true, false] {
            for without in [None, Some(false)] {
                assert_eq!(explain(v1_v2c, false, without).0, ErrorKind::Unreachable);
            }
        }
        // Our own credentials work: the outlet handler is at fault, whatever else answered.
        for v1_v2c in [true, false] {
            for without in [None, Some(false), Some(true)] {
                let (kind, why) = explain(v1_v2c, true, without);
                assert_eq!(kind, ErrorKind::Unreachable);
                assert!(why.contains("outlet handler"));
            }
        }
    }
}
