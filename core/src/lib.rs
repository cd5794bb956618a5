//! The fencegate engine: inventory and policy, the verified-fencing engine, guards, the
//! journal of evidence, and the driver registry.
//!
//! The engine knows drivers only through the contract in `fencegate-driver`; front doors
//! (the CLI, the OpenNebula hook, the fence-agents protocol, the daemon) are thin layers on
//! [`Engine`]. The one promise: no operation reports a host fenced unless a power channel
//! has just said `Off`, K times in a row, and that proof is durable in the journal.

// Front doors, tests and reviewers read the engine through its public items: each says what
// it promises and why.
#![deny(missing_docs)]

pub mod config;
pub mod device_url;
pub mod engine;
pub mod evidence;
pub mod guards;
pub mod identity;
pub mod journal;
pub mod policy;
pub mod proof;
pub mod registry;
pub mod secrets;
pub mod time;
pub mod topology;

pub use config::{ConfigError, Inventory, LookupError};
pub use engine::{DeviceStatus, Engine, EngineError, Request, Shutdown};
pub use journal::{Journal, JournalError, SqliteJournal};
pub use policy::Policy;
pub use proof::{DeviceOutcome, DeviceRecord, Event, LevelRecord, Operation, Proof, Verdict};
pub use registry::Registry;
pub use topology::{Device, Host};
