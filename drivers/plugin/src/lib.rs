//! Loads fencegate power drivers from dynamic libraries through a versioned C ABI.
//!
//! [`PluginFactory`] (`plugin`) builds a [`PluginDriver`] from a device whose `address` is
//! the path of a shared library exporting `fencegate_plugin_entry_v1` (see
//! `fencegate-plugin-sdk` and `docs/plugins.md`). The library is loaded once per process,
//! its table checked (magic, ABI major, size, strings) before the plugin sees any device or
//! secret, and never unloaded. Each call runs the plugin's blocking function on a blocking
//! thread, bounded by the call's deadline; JSON replies are checked so that a plugin can only
//! report readings and command receipts, never that a host is fenced.
//!
//! [`check`] loads a plugin and runs the non-destructive checks behind
//! `fencegate plugin check PATH`.

#![warn(missing_docs)]

mod check;
mod driver;
mod ffi;
mod load;
mod reply;

pub use check::{AbiReport, CheckStep, Outcome, PluginReport, check};
pub use driver::{CONFIGURE_TIMEOUT, PluginDriver, PluginFactory, RESERVED_OPTIONS};
pub use load::{LoadError, LoadProblem, LoadedPlugin, load};
#[doc(hidden)]
pub use reply::{FuzzedReply, fuzz_reply};
