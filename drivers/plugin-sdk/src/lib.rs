//! The SDK for fencegate plugin authors: the C ABI types and an export macro.
//!
//! A fencegate plugin is a shared library (`crate-type = ["cdylib"]`) that fencegate loads
//! in-process. It exports one symbol, [`abi::ENTRY_SYMBOL`], returning a versioned
//! `#[repr(C)]` table ([`abi::PluginTable`]); JSON messages ([`wire`]) cross the boundary in
//! both directions. A Rust author implements [`Plugin`] (blocking, no async runtime) and
//! writes `fencegate_plugin_sdk::export_plugin!(MyDriver);`. C authors use
//! `include/fencegate_plugin.h`. `docs/plugins.md` has the rules and a step-by-step guide.
//!
//! A plugin reports readings and command receipts; it has no way to say a host is fenced.
//! The engine decides that, from fresh `Off` readings it asks for itself.

#![warn(missing_docs)]

pub mod abi;
pub mod export;
mod plugin;
pub mod wire;

pub use fencegate_driver::{
    Action, Channel, CommandReceipt, DriverError, ErrorKind, ExposeSecret, IdentityFact,
    PowerState, SecretString,
};
pub use plugin::Plugin;
pub use wire::Device;

/// Export `$ty` (a type implementing [`Plugin`]) as this library's fencegate plugin: defines
/// the entry symbol and a static table whose functions catch every panic, so none ever
/// unwinds into fencegate. Use it once per library.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        /// The fencegate plugin entry point (ABI 1): returns this library's static table.
        // SAFETY: the ABI reserves this unmangled name for the entry point, with exactly this
        // signature; the macro is used once per library, so nothing else defines the symbol.
        #[unsafe(no_mangle)]
        pub extern "C" fn fencegate_plugin_entry_v1() -> *const $crate::abi::PluginTable {
            static TABLE: $crate::abi::PluginTable = $crate::export::table::<$ty>();
            &TABLE
        }
    };
}
