//! The C ABI between fencegate and a plugin: one exported entry symbol returning a pointer to
//! a `#[repr(C)]` table. `include/fencegate_plugin.h` declares the same layout for C.
//!
//! Evolution is append-only: a minor version may only add fields at the end of
//! [`PluginTable`]. The host reads [`PluginHeader`] first (every version has it), refuses a
//! different [`ABI_MAJOR`], and reads a field only if `struct_size` says the plugin's table is
//! long enough to hold it. A new major version gets a new entry symbol name, so an old host
//! never even finds a new plugin's table.

use std::ffi::{c_char, c_void};

/// The name of the symbol every plugin exports (`extern "C"`, no arguments, returning
/// `*const PluginTable`). The `_v1` is the ABI major: a major bump renames it.
pub const ENTRY_SYMBOL: &str = "fencegate_plugin_entry_v1";

/// The first field of every table: the bytes `FGPLUGIN` read as a little-endian `u64`.
/// Tells a fencegate table from whatever else a symbol of that name could point at.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FGPLUGIN");

/// The ABI major version: changes when an old host could misread a new plugin.
pub const ABI_MAJOR: u32 = 1;

/// The ABI minor version: changes when fields are appended to the table.
pub const ABI_MINOR: u32 = 0;

/// The size of the table as ABI 1.0 defines it: the end of its last field, `destroy`. A host
/// refuses a plugin whose `struct_size` is smaller, because it would have to read fields that
/// do not exist. Defined by the field, not by `size_of`, so it stays right when later minors
/// append fields.
pub const TABLE_SIZE_V1_0: usize =
    std::mem::offset_of!(PluginTable, destroy) + std::mem::size_of::<Option<DestroyFn>>();

/// How a plugin hands its JSON reply to the host: `reply(reply_ctx, json, len)`.
///
/// The host copies the bytes before returning, so the plugin may free them afterwards. A
/// plugin calls it exactly once per `hello`, `configure` and `call`; the bytes are UTF-8 JSON,
/// not NUL-terminated. Using a callback means no memory is ever freed across the boundary.
pub type ReplyFn = unsafe extern "C" fn(reply_ctx: *mut c_void, json: *const u8, len: usize);

/// `hello(reply, reply_ctx)`: describe the plugin (actions, whether it reads state) with a
/// `hello` message. No device, no I/O.
pub type HelloFn = unsafe extern "C" fn(reply: Option<ReplyFn>, reply_ctx: *mut c_void);

/// `configure(json, len, reply, reply_ctx) -> instance`: build one device instance from a
/// `configure` message (which holds the device's secrets). Returns a non-null opaque instance
/// after replying `ok:true`, or null after replying `ok:false`. No device I/O.
pub type ConfigureFn = unsafe extern "C" fn(
    json: *const u8,
    len: usize,
    reply: Option<ReplyFn>,
    reply_ctx: *mut c_void,
) -> *mut c_void;

/// `call(instance, json, len, reply, reply_ctx)`: answer one `request` message for one
/// instance, blocking until done or until the request's deadline.
pub type CallFn = unsafe extern "C" fn(
    instance: *mut c_void,
    json: *const u8,
    len: usize,
    reply: Option<ReplyFn>,
    reply_ctx: *mut c_void,
);

/// `destroy(instance)`: free an instance. Called once, after its last call has returned.
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// The part of the table every ABI version starts with, so that a host can check what it is
/// looking at before it reads anything else.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginHeader {
    /// Always [`MAGIC`].
    pub magic: u64,
    /// The ABI major the plugin was built for; must equal the host's.
    pub abi_major: u32,
    /// The ABI minor the plugin was built for; any value is accepted.
    pub abi_minor: u32,
    /// `sizeof` the whole table as the plugin knows it, in bytes.
    pub struct_size: u64,
}

/// The table a plugin exports, ABI 1.0. Immutable and alive for as long as the library is
/// loaded (a `static` in the plugin). All function pointers are required in 1.0; they are
/// `Option` so that a null from a C plugin is a value the host can check, not UB.
#[repr(C)]
#[derive(Debug)]
pub struct PluginTable {
    /// Magic, versions and size.
    pub header: PluginHeader,
    /// The plugin's name: NUL-terminated UTF-8, static.
    pub name: *const c_char,
    /// The plugin's own version: NUL-terminated UTF-8, static.
    pub version: *const c_char,
    /// See [`HelloFn`].
    pub hello: Option<HelloFn>,
    /// See [`ConfigureFn`].
    pub configure: Option<ConfigureFn>,
    /// See [`CallFn`].
    pub call: Option<CallFn>,
    /// See [`DestroyFn`].
    pub destroy: Option<DestroyFn>,
}

// SAFETY: a table is immutable after construction and its pointers refer to static,
// immutable data (NUL-terminated strings) and to functions, so sharing it between threads
// cannot race. This is what lets the export macro put it in a `static`.
unsafe impl Sync for PluginTable {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_one_the_c_header_declares() {
        assert_eq!(std::mem::size_of::<PluginHeader>(), 24);
        assert_eq!(std::mem::offset_of!(PluginTable, name), 24);
        let p = std::mem::size_of::<usize>();
        assert_eq!(TABLE_SIZE_V1_0, 24 + 6 * p);
        assert_eq!(TABLE_SIZE_V1_0, std::mem::size_of::<PluginTable>());
        assert_eq!(&MAGIC.to_le_bytes(), b"FGPLUGIN");
        assert_eq!(MAGIC, 0x4E49_4755_4C50_4746);
    }
}
