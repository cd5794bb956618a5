//! Redfish power driver for fencegate, with certificate pinning and vendor quirks.
//!
//! The driver reads `PowerState` of one `ComputerSystem` and posts
//! `#ComputerSystem.Reset`; it also counts the installed power supplies of the system's
//! chassis, so that `check --probe` can tell whether a PDU level has an outlet for each. It reports what the BMC says and nothing more: a 202 task that
//! "completed" is a receipt, `PoweringOff` is not off, and an "already off" refusal (iDRAC's
//! 409, iLO's 400 "Power is off") is a [`fencegate_driver::ErrorKind::StateConflict`] so the
//! engine reads again instead of trusting the claim.
//!
//! Security choices, each because BMC fleets get them wrong:
//! * TLS is verified by default and no roots are bundled: a BMC is trusted through a leaf
//!   certificate pin, a private CA file, or an explicit, logged `insecure=true`;
//! * redirects are never followed by the HTTP client (a redirect would carry the session
//!   token elsewhere); the driver resolves same-origin redirects of system links itself;
//! * the environment's proxy variables are never read (a stray `HTTPS_PROXY` would put a
//!   third party between fencegate and every BMC); only a device's `proxy` option names one,
//!   and never together with `insecure`;
//! * sessions are reused per driver and logged out on release and on every failure, since
//!   BMCs have only a handful of session slots;
//! * passwords and tokens never appear in errors, logs or `Debug` output.
//!
//! Modules: [`options`] (device specification), [`tls`] (trust and pinning), [`model`]
//! (Redfish JSON), `http` (one exchange), `session` (login/logout), and the driver.

#![warn(missing_docs)]

mod driver;
mod http;
pub mod model;
pub mod options;
mod session;
pub mod tls;

pub use driver::{RedfishDriver, RedfishFactory};
