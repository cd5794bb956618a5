//! A driver's SNMPv3 password keys: derived once per driver, off the async runtime's
//! threads, at the first call that needs them.
//!
//! Deriving a key from a password (RFC 3414 §A.2) is a megabyte of hashing, 40–260 ms per
//! key in a debug build on a loaded machine. Done on every session open, it ran inside
//! every attempt's wait, on the runtime thread, on every retry and probe, and could make a
//! short per-attempt timeout expire although the agent answered. The keys do not depend on
//! the agent (only their cheap localization does), so a driver keeps them.
//!
//! Why lazily rather than when the driver is built: building is synchronous and does no
//! I/O, and it runs for every configured device while the inventory is loaded on the
//! runtime (and by `check`, which calls no device). Deriving there would stall the runtime
//! for a megabyte per key per device, for devices that may never be called. Deriving at
//! the first call, on the blocking pool, costs only the devices used, never blocks the
//! runtime, and is bounded by that call's deadline rather than an attempt's wait.

use crate::config::{AuthProtocol, Credentials, PrivProtocol};
use crate::session::Secrets;
use crate::usm::{AuthAlg, PrivAlg, UserKeys};
use fencegate_driver::{DriverError, ExposeSecret, SecretString};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

fn auth_alg(p: AuthProtocol) -> AuthAlg {
    match p {
        AuthProtocol::Md5 => AuthAlg::Md5,
        AuthProtocol::Sha => AuthAlg::Sha1,
        AuthProtocol::Sha256 => AuthAlg::Sha256,
        AuthProtocol::Sha512 => AuthAlg::Sha512,
    }
}

fn priv_alg(p: PrivProtocol) -> PrivAlg {
    match p {
        PrivProtocol::Aes128 => PrivAlg::Aes128,
        PrivProtocol::Aes256 => PrivAlg::Aes256,
    }
}

/// The passwords and, once derived, their keys. Shared with the blocking task that derives
/// them, so that a call giving up at its deadline does not throw the work away: the task
/// still stores the keys for the next call.
pub struct Shared {
    auth: AuthAlg,
    auth_password: SecretString,
    privacy: Option<(PrivAlg, SecretString)>,
    keys: OnceLock<UserKeys>,
}

impl Shared {
    /// The keys, deriving them here if no one has: blocking, a megabyte per password. A
    /// second caller meanwhile waits for the first one's result instead of deriving again.
    fn keys(&self) -> &UserKeys {
        self.keys.get_or_init(|| {
            UserKeys::derive(
                self.auth,
                self.auth_password.expose_secret().as_bytes(),
                self.privacy
                    .as_ref()
                    .map(|(alg, p)| (*alg, p.expose_secret().as_bytes())),
            )
        })
    }
}

/// What a driver's sessions authenticate with: the community, or the SNMPv3 user with
/// keys derived at most once.
pub enum DriverSecrets {
    /// SNMPv1 or v2c.
    Community {
        /// `true` for v1.
        v1: bool,
        /// The community.
        community: SecretString,
    },
    /// SNMPv3 USM.
    Usm {
        /// The USM user name.
        user: String,
        /// The context name.
        context: String,
        /// The passwords and their keys once derived.
        shared: Arc<Shared>,
    },
}

impl DriverSecrets {
    /// The secrets of `credentials`; derives nothing yet.
    pub fn new(credentials: &Credentials) -> DriverSecrets {
        match credentials {
            Credentials::Community { v1, community } => DriverSecrets::Community {
                v1: *v1,
                community: community.clone(),
            },
            Credentials::V3 {
                user,
                auth_protocol,
                auth_password,
                privacy,
                context,
            } => DriverSecrets::Usm {
                user: user.clone(),
                context: context.clone(),
                shared: Arc::new(Shared {
                    auth: auth_alg(*auth_protocol),
                    auth_password: auth_password.clone(),
                    privacy: privacy
                        .as_ref()
                        .map(|(p, password)| (priv_alg(*p), password.clone())),
                    keys: OnceLock::new(),
                }),
            },
        }
    }

    /// What a session authenticates with. For SNMPv3 the keys are derived on the blocking
    /// pool the first time, waited for until `deadline` at most (then a `Timeout` naming
    /// `endpoint`; the derivation still finishes and is kept for the next call); after
    /// that, this costs nothing.
    pub async fn get(&self, endpoint: &str, deadline: Instant) -> Result<Secrets<'_>, DriverError> {
        let (user, context, shared) = match self {
            DriverSecrets::Community { v1, community } => {
                return Ok(Secrets::Community { v1: *v1, community });
            }
            DriverSecrets::Usm {
                user,
                context,
                shared,
            } => (user, context, shared),
        };
        if shared.keys.get().is_none() {
            let task = tokio::task::spawn_blocking({
                let shared = Arc::clone(shared);
                move || {
                    shared.keys();
                }
            });
            match tokio::time::timeout_at(deadline.into(), task).await {
                Ok(Ok(())) => {}
                // Hashing cannot panic; if it did, that panic is the bug to see.
                Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Ok(Err(_)) => {
                    return Err(DriverError::timeout(format!(
                        "{endpoint}: deriving the SNMPv3 keys was cancelled (shutting down)"
                    )));
                }
                Err(_) => {
                    return Err(DriverError::timeout(format!(
                        "{endpoint}: deadline reached while deriving the SNMPv3 keys from \
                         the passwords"
                    )));
                }
            }
        }
        let keys = shared.keys();
        Ok(Secrets::Usm {
            user,
            context,
            keys,
            privacy: keys.has_privacy(),
        })
    }
}
