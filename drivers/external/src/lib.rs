//! Out-of-process power drivers for fencegate.
//!
//! Two drivers, one idea: the code that talks to a device runs in another process, so a
//! driver that crashes, hangs or floods its output costs one error, never the engine.
//!
//! - [`ExternalFactory`] (`external`): any executable speaking fencegate's JSON-lines
//!   protocol v1 ([`protocol`], `docs/external-protocol.md`), kept running between calls.
//! - [`FenceAgentFactory`] (`fence-agent`): a stock ClusterLabs `fence_*` agent, run once
//!   per call through its stdin `key=value` protocol, checked against its own metadata.
//!   Only agents known to switch power ([`POWER_AGENTS`]) are read; isolation agents
//!   (`fence_scsi`, `fence_sbd`, …, and any agent not known) never give a reading.
//!
//! Both only ever report readings. Whether a host is fenced is the engine's decision; a
//! driver program has no way to say so. Secrets reach the child through a pipe (never
//! argv) and are masked out of anything it prints back.

#![warn(missing_docs)]

mod external;
mod fence_agent;
mod lines;
mod process;
pub mod protocol;
mod session;
mod tail;

pub use external::{DEFAULT_MAX_RESPAWNS, ExternalDriver, ExternalFactory, RESERVED_OPTIONS};
pub use fence_agent::{
    AGENT_ADVICE, AGENT_DIRS, AGENT_SECRET_ROLES, AgentAdvice, AgentKind, FenceAgentDriver,
    FenceAgentFactory, ISOLATION_AGENTS, LEFT_OUT, NOT_FENCING_AGENTS, POWER_AGENTS,
    SECRET_PARAMETERS, SWITCHES_POWER_OPTION, agent_advice, agent_kind, resolve_agent,
    secret_parameter,
};
#[doc(hidden)]
pub use fence_agent::{FuzzedRun, fuzz_agent_run};
pub use fencegate_driver::{trusted, trusted_file};
pub use process::INHERITED_ENV;
