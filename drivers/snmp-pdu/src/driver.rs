//! The PDU power driver: outlet readings and outlet SETs, reported honestly.

use crate::ber;
use crate::client::{Answer, Conversation, Reply, Request};
use crate::config::PduConfig;
use crate::profile::{self, OutletState};
use crate::session::Session;
use fencegate_driver::{
    Action, Capabilities, CommandReceipt, DeviceSpec, DriverError, DriverFactory, DriverFuture,
    IdentityFact, PowerDriver, PowerState, SpecError,
};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// SNMP error-status values (RFC 3416 §3) the driver tells apart.
mod status {
    pub const NO_ERROR: u32 = 0;
    pub const TOO_BIG: u32 = 1;
    pub const NO_SUCH_NAME: u32 = 2;
    pub const BAD_VALUE: u32 = 3;
    pub const READ_ONLY: u32 = 4;
    pub const GEN_ERR: u32 = 5;
    pub const NO_ACCESS: u32 = 6;
    pub const WRONG_TYPE: u32 = 7;
    pub const WRONG_LENGTH: u32 = 8;
    pub const WRONG_VALUE: u32 = 10;
    pub const NO_CREATION: u32 = 11;
    pub const INCONSISTENT_VALUE: u32 = 12;
    pub const RESOURCE_UNAVAILABLE: u32 = 13;
    pub const AUTHORIZATION_ERROR: u32 = 16;
    pub const NOT_WRITABLE: u32 = 17;
}

/// `sysName.0` and `sysObjectID.0`, read once for the evidence record.
const SYS_NAME: [u64; 9] = [1, 3, 6, 1, 2, 1, 1, 5, 0];
const SYS_OBJECT_ID: [u64; 9] = [1, 3, 6, 1, 2, 1, 1, 2, 0];

/// Builds [`SnmpPduDriver`]s from `snmp` device specifications.
///
/// A device is a set of outlets on one PDU (a dual-PSU host on one PDU is one device with
/// two outlets; on two PDUs it is two devices on one level). See the crate documentation
/// for the options.
#[derive(Debug, Default, Clone, Copy)]
pub struct SnmpPduFactory;

impl DriverFactory for SnmpPduFactory {
    fn name(&self) -> &'static str {
        "snmp"
    }

    fn summary(&self) -> &'static str {
        "PDU outlets over SNMP v1/v2c/v3 (APC, APC rPDU, Raritan, Eaton, ServerTech, generic)"
    }

    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn PowerDriver>, SpecError> {
        Ok(Arc::new(SnmpPduDriver::new(PduConfig::from_spec(spec)?)))
    }
}

/// Switches and reads the outlets of one device on one PDU.
pub struct SnmpPduDriver {
    config: PduConfig,
    endpoint: String,
    identity: Mutex<Vec<IdentityFact>>,
    /// A session left idle by the previous call (nothing in flight), reused by the next.
    idle: Mutex<Option<Session>>,
}

impl fmt::Debug for SnmpPduDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnmpPduDriver")
            .field("endpoint", &self.endpoint)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic while holding the lock cannot leave it inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SnmpPduDriver {
    /// A driver for a validated configuration (no I/O).
    pub fn new(config: PduConfig) -> Self {
        let host = if config.host.contains(':') {
            format!("[{}]", config.host)
        } else {
            config.host.clone()
        };
        let endpoint = format!("snmp://{host}:{}", config.port);
        SnmpPduDriver {
            config,
            endpoint,
            identity: Mutex::new(Vec::new()),
            idle: Mutex::new(None),
        }
    }

    fn conversation(&self, deadline: Instant) -> Conversation<'_> {
        let idle = lock(&self.idle).take();
        Conversation::resume(&self.config, &self.endpoint, deadline, idle)
    }

    fn keep(&self, conv: Conversation<'_>) {
        *lock(&self.idle) = conv.into_session();
    }

    fn oid(&self, template: &str, outlet: u32) -> Result<(Vec<u64>, String), DriverError> {
        let arcs = profile::expand(template, outlet).map_err(|e| {
            DriverError::unsupported(format!("{}: outlet {outlet}: {e}", self.endpoint))
        })?;
        let text = profile::dotted(&arcs);
        if !ber::oid_encodable(&arcs) {
            return Err(DriverError::unsupported(format!(
                "{}: {text} is not an encodable OID",
                self.endpoint
            )));
        }
        Ok((arcs, text))
    }

    async fn read_outlet(
        &self,
        conv: &mut Conversation<'_>,
        outlet: u32,
    ) -> Result<OutletState, DriverError> {
        let (oid, text) = self.oid(&self.config.profile.state_oid, outlet)?;
        let what = format!("GET state of outlet {outlet} ({text})");
        let reply = conv
            .request(Request::Get(std::slice::from_ref(&oid)), &what)
            .await?;
        self.check_status(&reply, &what, outlet, &text, false)?;
        match reply.values.first() {
            Some(Answer::Integer(v)) => Ok(self.config.profile.classify(*v)),
            Some(other) => Err(self.bad_value(other, &what, outlet, &text)),
            None => Err(DriverError::protocol(format!(
                "{}: {what}: the answer carries no value",
                self.endpoint
            ))),
        }
    }

    async fn switch_outlet(
        &self,
        conv: &mut Conversation<'_>,
        action: Action,
        outlet: u32,
    ) -> Result<(), DriverError> {
        let Some(cmd) = self.config.profile.command(action) else {
            return Err(DriverError::unsupported(format!(
                "{}: profile `{}` has no {action} command",
                self.endpoint, self.config.profile.name
            )));
        };
        let (oid, text) = self.oid(&cmd.oid, outlet)?;
        let what = format!("SET outlet {outlet} {action} ({text} = {})", cmd.value);
        let reply = conv.request(Request::Set(&oid, cmd.value), &what).await?;
        if reply.error_status == status::NO_SUCH_NAME && self.config.credentials.version() == "1" {
            // SNMPv1 folds "read-only community" into noSuchName (RFC 3584 §4.3); a GET of
            // the same object tells the two apart.
            let probe = conv
                .request(Request::Get(std::slice::from_ref(&oid)), &what)
                .await?;
            if probe.error_status == status::NO_ERROR
                && matches!(probe.values.first(), Some(Answer::Integer(_)))
            {
                return Err(DriverError::auth(format!(
                    "{}: {what}: refused (SNMPv1 noSuchName on an object that can be read): \
                     the community is read-only; give the read-write community",
                    self.endpoint
                )));
            }
        }
        self.check_status(&reply, &what, outlet, &text, true)?;
        if let Some(v @ (Answer::NoSuchObject | Answer::NoSuchInstance | Answer::EndOfMibView)) =
            reply.values.first()
        {
            return Err(self.bad_value(v, &what, outlet, &text));
        }
        Ok(())
    }

    /// Turn a non-zero error-status into the error class the engine acts on.
    fn check_status(
        &self,
        reply: &Reply,
        what: &str,
        outlet: u32,
        oid: &str,
        is_set: bool,
    ) -> Result<(), DriverError> {
        let ep = &self.endpoint;
        let profile = &self.config.profile.name;
        match reply.error_status {
            status::NO_ERROR => Ok(()),
            status::NO_SUCH_NAME | status::NO_CREATION => Err(DriverError::unsupported(format!(
                "{ep}: {what}: the PDU has no object {oid}: configuration error (does outlet \
                 {outlet} exist, and is profile `{profile}` right for this PDU?)"
            ))),
            status::READ_ONLY | status::NO_ACCESS | status::NOT_WRITABLE if is_set => {
                Err(DriverError::auth(format!(
                    "{ep}: {what}: write refused: the community (or v3 user) is read-only, or \
                     {oid} is not writable on this PDU (check profile `{profile}`)"
                )))
            }
            status::AUTHORIZATION_ERROR | status::NO_ACCESS => Err(DriverError::auth(format!(
                "{ep}: {what}: access refused by the agent's access control (authorizationError)"
            ))),
            status::BAD_VALUE
            | status::WRONG_VALUE
            | status::WRONG_TYPE
            | status::WRONG_LENGTH
            | status::INCONSISTENT_VALUE => Err(DriverError::unsupported(format!(
                "{ep}: {what}: the PDU refused the value (error-status {}): profile `{profile}` \
                 does not match this PDU",
                reply.error_status
            ))),
            status::RESOURCE_UNAVAILABLE => Err(DriverError::busy(format!(
                "{ep}: {what}: the agent is out of resources"
            ))),
            status::TOO_BIG | status::GEN_ERR => Err(DriverError::protocol(format!(
                "{ep}: {what}: the agent failed the request (error-status {})",
                reply.error_status
            ))),
            other => Err(DriverError::protocol(format!(
                "{ep}: {what}: error-status {other}"
            ))),
        }
    }

    fn bad_value(&self, v: &Answer, what: &str, outlet: u32, oid: &str) -> DriverError {
        let ep = &self.endpoint;
        let profile = &self.config.profile.name;
        match v {
            Answer::NoSuchObject | Answer::NoSuchInstance | Answer::EndOfMibView => {
                DriverError::unsupported(format!(
                    "{ep}: {what}: {oid} does not exist on this PDU ({v:?}): configuration error \
                     (does outlet {outlet} exist, and is profile `{profile}` right?)"
                ))
            }
            other => {
                DriverError::protocol(format!("{ep}: {what}: expected an INTEGER, got {other:?}"))
            }
        }
    }

    /// Read sysName and sysObjectID once, best effort, on an already working session.
    async fn learn_identity(&self, conv: &mut Conversation<'_>) {
        let known = !lock(&self.identity).is_empty();
        if known {
            return;
        }
        let oids = [SYS_NAME.to_vec(), SYS_OBJECT_ID.to_vec()];
        let Ok(reply) = conv
            .request(Request::Get(&oids), "GET sysName.0, sysObjectID.0")
            .await
        else {
            return;
        };
        if reply.error_status != status::NO_ERROR {
            return;
        }
        let mut facts = Vec::new();
        if let Some(Answer::Text(n)) = reply.values.first() {
            facts.push(IdentityFact::new("snmp-sysname", n.clone()));
        }
        if let Some(Answer::Oid(o)) = reply.values.get(1) {
            facts.push(IdentityFact::new("snmp-sysobjectid", o.clone()));
        }
        *lock(&self.identity) = facts;
    }
}

impl PowerDriver for SnmpPduDriver {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn capabilities(&self) -> Capabilities {
        let mut actions = vec![Action::Off, Action::On];
        if self.config.profile.cycle.is_some() {
            actions.push(Action::Cycle);
        }
        Capabilities::readable(&actions)
    }

    fn status(&self, deadline: Instant) -> DriverFuture<'_, PowerState> {
        Box::pin(async move {
            let mut conv = self.conversation(deadline);
            let mut readings = Vec::with_capacity(self.config.outlets.len());
            for &outlet in &self.config.outlets {
                readings.push((outlet, self.read_outlet(&mut conv, outlet).await?));
            }
            self.learn_identity(&mut conv).await;
            self.keep(conv);
            Ok(profile::aggregate(&readings))
        })
    }

    fn set_power(&self, action: Action, deadline: Instant) -> DriverFuture<'_, CommandReceipt> {
        Box::pin(async move {
            if action == Action::GracefulOff {
                return Err(DriverError::unsupported(format!(
                    "{}: a PDU outlet cannot ask the operating system to shut down",
                    self.endpoint
                )));
            }
            let mut conv = self.conversation(deadline);
            for &outlet in &self.config.outlets {
                self.switch_outlet(&mut conv, action, outlet).await?;
            }
            self.keep(conv);
            let outlets: Vec<String> = self.config.outlets.iter().map(u32::to_string).collect();
            Ok(CommandReceipt::new(format!(
                "SNMPv{} SET {action} accepted for outlet(s) {} (profile {})",
                self.config.credentials.version(),
                outlets.join(","),
                self.config.profile.name
            )))
        })
    }

    fn identity(&self) -> Vec<IdentityFact> {
        lock(&self.identity).clone()
    }

    fn release(&self, _deadline: Instant) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            lock(&self.idle).take();
            Ok(())
        })
    }
}
