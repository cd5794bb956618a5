//! In-band SSH poweroff driver for fencegate (can never prove power-off).
//!
//! The channel of last resort: log in to the failed host and run `poweroff -f`. Whatever
//! happens, nothing here proves the host is off (the capabilities say
//! `reads_power_state: false`), so at best the engine records *liveness lost*, and only a
//! host policy that accepts that turns it into a fence. The driver's job is to be honest
//! about what it saw: it verifies the host key before sending any credential, counts the
//! command as delivered on exit status 0 or on the connection dropping after the exec, and
//! then requires the host's SSH port (and `extra_port`) to stay quiet for a hold time.
//!
//! # Device specification (driver `ssh`)
//!
//! | key | kind | meaning |
//! | --- | --- | --- |
//! | `address` | | `host[:port]`, port 22 by default |
//! | `user` | | login user |
//! | `known_hosts_file` | option | OpenSSH known_hosts (plain, hashed, `[host]:port`, wildcards, `@revoked`) |
//! | `host_key` | option | pinned fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`); one of the two is required |
//! | `key` | secret | private key text (OpenSSH or PEM; ed25519, RSA with SHA-2, ECDSA), via `key_file`/`key_env` |
//! | `passphrase` | secret | the key's passphrase, if it is encrypted |
//! | `password_auth` | option | `true` to allow password authentication (off by default) |
//! | `password` | secret | the password, only with `password_auth = true` |
//! | `command` | option | default `poweroff -f` |
//! | `liveness_hold_ms` | option | how long the ports must stay quiet (default 3000) |
//! | `extra_port` | option | another TCP port that must go quiet too |
//! | `connect_timeout_ms` | option | limit on connect + handshake + authentication (default 5000) |
//! | `probe_interval_ms` | option | pause between liveness probes (default 200) |
//!
//! # Outcomes
//!
//! * refused or unanswered connection, failed handshake, wrong host key (`Auth`, "host key
//!   mismatch"), refused credentials (`Auth`): nothing was sent;
//! * nonzero exit status: `Protocol` (126/127: `Unsupported`) with the remote's stderr tail;
//! * delivered but the host still answers: `VerificationFailed`;
//! * no exit status, no dropped connection and the host still answers at the deadline
//!   (a hung command): `Timeout`;
//! * delivered (or silently dropped) and quiet for the hold time: a receipt such as
//!   "delivered (exec accepted, then the connection was lost); port(s) 22 quiet for 3000 ms".

mod config;
mod driver;
pub mod known_hosts;
pub mod liveness;

pub use config::{
    Auth, DEFAULT_COMMAND, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LIVENESS_HOLD, DEFAULT_PROBE_INTERVAL,
    SshConfig,
};
pub use driver::{SshDriver, SshFactory};
