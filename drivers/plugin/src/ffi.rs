//! Calling into a plugin: the reply callback the host hands out, and a device instance
//! that is destroyed only after its last call has returned.

use crate::load::LoadedPlugin;
use fencegate_plugin_sdk::abi::HelloFn;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::Arc;

/// The largest reply accepted, in bytes (the external protocol's line limit). A longer one
/// is a protocol error, so a runaway plugin cannot make the host allocate without bound.
pub(crate) const MAX_REPLY: usize = 65_536;

/// Where the reply callback puts what the plugin said during one call.
#[derive(Default)]
struct ReplySlot {
    bytes: Vec<u8>,
    replies: u32,
    problem: Option<&'static str>,
}

impl ReplySlot {
    /// The reply, or why there is no usable one.
    fn finish(self) -> Result<Vec<u8>, String> {
        match (self.replies, self.problem) {
            (0, _) => Err("the plugin returned without replying".into()),
            (1, None) => Ok(self.bytes),
            (1, Some(problem)) => Err(problem.into()),
            (n, _) => Err(format!("the plugin replied {n} times to one call")),
        }
    }
}

/// The callback every plugin call receives. Copies the reply into the [`ReplySlot`] behind
/// `ctx`; never panics across the boundary.
unsafe extern "C" fn on_reply(ctx: *mut c_void, json: *const u8, len: usize) {
    if ctx.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `&mut ReplySlot` this module passed for the call in progress,
        // and the ABI allows the reply only during that call, on its thread of control.
        let slot = unsafe { &mut *ctx.cast::<ReplySlot>() };
        slot.replies = slot.replies.saturating_add(1);
        if slot.replies > 1 {
            return;
        }
        if json.is_null() {
            slot.problem = Some("the plugin replied with a null pointer");
        } else if len > MAX_REPLY {
            slot.problem = Some("the plugin's reply is longer than 64 KiB");
        } else {
            // SAFETY: non-null, at most `MAX_REPLY` bytes, and the ABI requires `len`
            // readable bytes at `json` for the duration of this callback.
            let bytes = unsafe { std::slice::from_raw_parts(json, len) };
            slot.bytes.extend_from_slice(bytes);
        }
    }));
}

/// Run `f` with a fresh reply slot and return what was replied.
fn with_reply<R>(f: impl FnOnce(*mut c_void) -> R) -> (R, Result<Vec<u8>, String>) {
    let mut slot = ReplySlot::default();
    let out = f((&raw mut slot).cast());
    (out, slot.finish())
}

/// Ask a plugin's `hello` for its description.
pub(crate) fn hello(hello: HelloFn) -> Result<Vec<u8>, String> {
    // SAFETY: `hello` comes from a checked table of a library that is never unloaded; the
    // reply callback and its slot outlive the call.
    let ((), reply) = with_reply(|ctx| unsafe { hello(Some(on_reply), ctx) });
    reply
}

/// One configured device inside a plugin. Dropping the last `Arc` calls `destroy`, so an
/// instance can never be destroyed while a call (possibly abandoned at its deadline) is
/// still inside it: every call holds a clone.
pub(crate) struct Instance {
    plugin: Arc<LoadedPlugin>,
    ptr: NonNull<c_void>,
}

// SAFETY: the instance pointer is opaque to the host and only ever passed back to the plugin.
// The ABI lets a plugin instance be called from any thread, one call at a time, which the
// driver enforces with its call lock; `destroy` runs once, from `Drop`.
unsafe impl Send for Instance {}
// SAFETY: as above; shared references to `Instance` only read the pointer value.
unsafe impl Sync for Instance {}

impl Instance {
    /// Hand `configure` to the plugin. Returns the instance and the plugin's reply; on any
    /// failure a non-null instance is destroyed at once.
    pub(crate) fn configure(
        plugin: &Arc<LoadedPlugin>,
        json: &[u8],
    ) -> (Option<Instance>, Result<Vec<u8>, String>) {
        let configure = plugin.table.configure;
        // SAFETY: a checked table function of a never-unloaded library; `json` is valid for
        // its length during the call and the reply slot outlives it.
        let (raw, reply) =
            with_reply(|ctx| unsafe { configure(json.as_ptr(), json.len(), Some(on_reply), ctx) });
        let instance = NonNull::new(raw).map(|ptr| Instance {
            plugin: plugin.clone(),
            ptr,
        });
        (instance, reply)
    }

    /// Run one request (blocking) and return the plugin's reply bytes.
    pub(crate) fn call(&self, json: &[u8]) -> Result<Vec<u8>, String> {
        let call = self.plugin.table.call;
        // SAFETY: a checked table function; `ptr` came from this plugin's `configure` and is
        // not destroyed while `self` exists; the driver's call lock makes this the only call
        // on the instance; `json` and the reply slot outlive the call.
        let ((), reply) = with_reply(|ctx| unsafe {
            call(
                self.ptr.as_ptr(),
                json.as_ptr(),
                json.len(),
                Some(on_reply),
                ctx,
            )
        });
        reply
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let destroy = self.plugin.table.destroy;
        // SAFETY: the last reference is going away, so no call is running on the instance;
        // the pointer came from `configure` and is destroyed exactly once, here.
        unsafe { destroy(self.ptr.as_ptr()) };
    }
}
