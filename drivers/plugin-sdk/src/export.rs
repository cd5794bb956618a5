//! The `extern "C"` glue behind [`crate::export_plugin!`]: decode the host's JSON, call the
//! [`Plugin`], encode the answer, and make sure no panic ever crosses the boundary.

use crate::abi::{
    ABI_MAJOR, ABI_MINOR, MAGIC, PluginHeader, PluginTable, ReplyFn, TABLE_SIZE_V1_0,
};
use crate::plugin::Plugin;
use crate::wire::{self, CONFIGURE_ID, Hello, Message, Response};
use fencegate_driver::{DriverError, ErrorKind};
use std::any::Any;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// The longest deadline a request may carry (a day): protects `Instant` arithmetic from a
/// host that sends an absurd number.
const MAX_DEADLINE: Duration = Duration::from_secs(86_400);

/// The table for plugin type `P`. Used by [`crate::export_plugin!`] in a `static`.
pub const fn table<P: Plugin>() -> PluginTable {
    PluginTable {
        header: PluginHeader {
            magic: MAGIC,
            abi_major: ABI_MAJOR,
            abi_minor: ABI_MINOR,
            struct_size: TABLE_SIZE_V1_0 as u64,
        },
        name: P::NAME.as_ptr(),
        version: P::VERSION.as_ptr(),
        hello: Some(hello::<P>),
        configure: Some(configure::<P>),
        call: Some(call::<P>),
        destroy: Some(destroy::<P>),
    }
}

/// Hand `message` to the host's reply callback (nothing happens if the host passed none).
fn send(reply: Option<ReplyFn>, reply_ctx: *mut c_void, message: &Message) {
    let mut json = message.to_json();
    if let Some(reply) = reply {
        // SAFETY: the host passed `reply` and `reply_ctx` together for this call; the ABI
        // requires the callback to accept any pointer/length pair that is valid for reads,
        // which `json` is for the duration of the call (the host copies it).
        unsafe { reply(reply_ctx, json.as_ptr(), json.len()) };
    }
    zeroize::Zeroize::zeroize(&mut json);
}

/// The panic payload as text, for the error the host receives.
fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-text panic payload".to_owned()
    }
}

fn panicked(id: u64, what: &str, payload: &(dyn Any + Send)) -> Message {
    Message::Response(Response::error(
        id,
        ErrorKind::Protocol,
        format!("plugin panicked in {what}: {}", panic_text(payload)),
    ))
}

fn failed(id: u64, e: DriverError) -> Message {
    Message::Response(Response::error(id, e.kind, e.detail))
}

/// The bytes the host passed, or `None` for a null pointer with a non-zero length.
///
/// # Safety
/// If `ptr` is non-null it must be valid for reads of `len` bytes for `'a` (the ABI's rule
/// for every `json, len` pair the host passes).
unsafe fn input<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return (len == 0).then_some(&[][..]);
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes for `'a`.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `hello` for plugin type `P`.
///
/// # Safety
/// `reply` must be null or a function that accepts `reply_ctx` (the ABI's rules).
pub unsafe extern "C" fn hello<P: Plugin>(reply: Option<ReplyFn>, reply_ctx: *mut c_void) {
    let message = catch_unwind(|| {
        Message::Hello(Hello::new(
            &P::NAME.to_string_lossy(),
            &P::VERSION.to_string_lossy(),
            &P::actions(),
            P::reads_power_state(),
        ))
    })
    .unwrap_or_else(|p| panicked(CONFIGURE_ID, "hello", p.as_ref()));
    send(reply, reply_ctx, &message);
}

/// `configure` for plugin type `P`: returns a boxed `P` as the opaque instance.
///
/// # Safety
/// `json` must be null or valid for reads of `len` bytes during the call; `reply` as for
/// [`hello`].
pub unsafe extern "C" fn configure<P: Plugin>(
    json: *const u8,
    len: usize,
    reply: Option<ReplyFn>,
    reply_ctx: *mut c_void,
) -> *mut c_void {
    // SAFETY: the ABI makes the host guarantee `len` readable bytes at a non-null `json`.
    let bytes = unsafe { input(json, len) };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let Some(bytes) = bytes else {
            return Err(DriverError::protocol(
                "configure: null JSON with a non-zero length",
            ));
        };
        match serde_json::from_slice::<Message>(bytes) {
            Ok(Message::Configure(c)) => P::configure(c.device),
            Ok(_) => Err(DriverError::protocol(
                "configure: expected a `configure` message",
            )),
            // The error position only: the text may hold secrets.
            Err(e) => Err(DriverError::protocol(format!(
                "configure: malformed message at line {} column {}",
                e.line(),
                e.column()
            ))),
        }
    }));
    match outcome {
        Ok(Ok(instance)) => {
            send(
                reply,
                reply_ctx,
                &Message::Response(Response::ok(CONFIGURE_ID)),
            );
            Box::into_raw(Box::new(instance)).cast()
        }
        Ok(Err(e)) => {
            send(reply, reply_ctx, &failed(CONFIGURE_ID, e));
            std::ptr::null_mut()
        }
        Err(p) => {
            send(
                reply,
                reply_ctx,
                &panicked(CONFIGURE_ID, "configure", p.as_ref()),
            );
            std::ptr::null_mut()
        }
    }
}

/// Answer one request for an instance of `P`.
fn answer<P: Plugin>(plugin: &mut P, request: wire::Request) -> Message {
    let deadline = Instant::now() + Duration::from_millis(request.deadline_ms).min(MAX_DEADLINE);
    let id = request.id;
    let mut response = match (request.op.as_str(), request.action) {
        (wire::op::STATUS, _) => match plugin.status(deadline) {
            Ok(state) => Response {
                state: Some(state),
                ..Response::ok(id)
            },
            Err(e) => Response::error(id, e.kind, e.detail),
        },
        (wire::op::SET_POWER, Some(action)) => match plugin.set_power(action, deadline) {
            Ok(receipt) => Response {
                detail: Some(receipt.detail),
                ..Response::ok(id)
            },
            Err(e) => Response::error(id, e.kind, e.detail),
        },
        (wire::op::SET_POWER, None) => {
            Response::error(id, ErrorKind::Protocol, "set_power without an action")
        }
        (other, _) => Response::error(
            id,
            ErrorKind::Unsupported,
            format!("unknown operation {other:?}"),
        ),
    };
    response.identity = plugin.identity();
    Message::Response(response)
}

/// `call` for plugin type `P`.
///
/// # Safety
/// `instance` must be null or a pointer returned by [`configure`] for the same `P` and not
/// yet destroyed, with no other call running on it; `json` and `reply` as for [`configure`].
pub unsafe extern "C" fn call<P: Plugin>(
    instance: *mut c_void,
    json: *const u8,
    len: usize,
    reply: Option<ReplyFn>,
    reply_ctx: *mut c_void,
) {
    // SAFETY: the ABI makes the host guarantee `len` readable bytes at a non-null `json`.
    let bytes = unsafe { input(json, len) };
    // Decode first, so that even a panic inside the plugin is answered with the right id.
    let decoded = catch_unwind(|| {
        let bytes = bytes.ok_or("call: null JSON with a non-zero length".to_owned())?;
        match serde_json::from_slice::<Message>(bytes) {
            Ok(Message::Request(r)) => Ok(r),
            Ok(_) => Err("call: expected a `request` message".to_owned()),
            Err(e) => Err(format!("call: malformed request: {e}")),
        }
    })
    .unwrap_or_else(|p| {
        Err(format!(
            "call: panicked decoding: {}",
            panic_text(p.as_ref())
        ))
    });
    let message = match decoded {
        Err(why) => failed(0, DriverError::protocol(why)),
        Ok(request) if instance.is_null() => {
            failed(request.id, DriverError::protocol("call: null instance"))
        }
        Ok(request) => {
            let id = request.id;
            catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: non-null, returned by `configure::<P>` (a leaked `Box<P>`), not
                // destroyed, and the host runs one call at a time per instance, so this is
                // the only reference.
                let plugin = unsafe { &mut *instance.cast::<P>() };
                answer(plugin, request)
            }))
            .unwrap_or_else(|p| panicked(id, "call", p.as_ref()))
        }
    };
    send(reply, reply_ctx, &message);
}

/// `destroy` for plugin type `P`: drops the instance (a panic in its `Drop` is swallowed).
///
/// # Safety
/// `instance` must be null or a pointer returned by [`configure`] for the same `P`, with no
/// call running on it, and must not be used again.
pub unsafe extern "C" fn destroy<P: Plugin>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Box::into_raw(Box<P>)` in `configure::<P>` and the host
    // destroys each instance once, after its last call.
    let boxed = unsafe { Box::from_raw(instance.cast::<P>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}
