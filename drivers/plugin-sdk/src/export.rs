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
        Message::Hello(
            Hello::new(
                &P::NAME.to_string_lossy(),
                &P::VERSION.to_string_lossy(),
                &P::actions(),
                P::reads_power_state(),
            )
            .with_identity(P::channel(), P::authenticated_identity()),
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Device;
    use fencegate_driver::{Action, CommandReceipt, PowerState};
    use serde_json::{Value, json};
    use std::ffi::CStr;

    /// A plugin that panics when its device is named `panic`.
    struct Toy {
        panics: bool,
    }

    impl Plugin for Toy {
        const NAME: &'static CStr = c"toy";
        const VERSION: &'static CStr = c"9.9";

        fn actions() -> Vec<Action> {
            vec![Action::Off]
        }

        fn configure(device: Device) -> Result<Self, DriverError> {
            if device.name == "refuse" {
                return Err(DriverError::unsupported("`x`: unknown option"));
            }
            Ok(Toy {
                panics: device.name == "panic",
            })
        }

        fn status(&mut self, _deadline: Instant) -> Result<PowerState, DriverError> {
            assert!(!self.panics, "toy asked to panic");
            Ok(PowerState::PoweringOff)
        }

        fn set_power(
            &mut self,
            action: Action,
            _deadline: Instant,
        ) -> Result<CommandReceipt, DriverError> {
            Ok(CommandReceipt::new(format!("did {action}")))
        }
    }

    unsafe extern "C" fn collect(ctx: *mut c_void, json: *const u8, len: usize) {
        // SAFETY: the tests pass a `&mut Vec<Value>` as `ctx`, and the SDK passes `len`
        // readable bytes at `json` for the duration of the callback.
        let (out, bytes) = unsafe {
            (
                &mut *ctx.cast::<Vec<Value>>(),
                std::slice::from_raw_parts(json, len),
            )
        };
        out.push(serde_json::from_slice(bytes).unwrap());
    }

    fn configure_toy(name: &str) -> (*mut c_void, Value) {
        let msg = json!({"type":"configure","id":0,"device":{"name":name}}).to_string();
        let mut replies = Vec::<Value>::new();
        // SAFETY: valid JSON bytes for the call, a callback matching `ctx`.
        let instance = unsafe {
            configure::<Toy>(
                msg.as_ptr(),
                msg.len(),
                Some(collect),
                (&raw mut replies).cast(),
            )
        };
        assert_eq!(replies.len(), 1, "exactly one reply");
        (instance, replies.remove(0))
    }

    fn call_toy(instance: *mut c_void, request: Value) -> Value {
        let msg = request.to_string();
        let mut replies = Vec::<Value>::new();
        // SAFETY: `instance` came from `configure::<Toy>` and is not destroyed yet.
        unsafe {
            call::<Toy>(
                instance,
                msg.as_ptr(),
                msg.len(),
                Some(collect),
                (&raw mut replies).cast(),
            )
        };
        assert_eq!(replies.len(), 1, "exactly one reply");
        replies.remove(0)
    }

    #[test]
    fn the_table_describes_the_plugin() {
        let t = table::<Toy>();
        assert_eq!(t.header.magic, MAGIC);
        assert_eq!(t.header.struct_size, TABLE_SIZE_V1_0 as u64);
        let mut replies = Vec::<Value>::new();
        // SAFETY: a callback matching `ctx`.
        unsafe { hello::<Toy>(Some(collect), (&raw mut replies).cast()) };
        assert_eq!(replies[0]["type"], "hello");
        assert_eq!(replies[0]["actions"], json!(["off"]));
        assert_eq!(replies[0]["reads_power_state"], true);
        assert_eq!(replies[0]["channel"], "other", "the trait's default");
        assert_eq!(replies[0]["authenticated_identity"], false);
    }

    #[test]
    fn requests_are_answered_with_their_id() {
        let (instance, reply) = configure_toy("n1");
        assert_eq!(reply, json!({"type":"response","id":0,"ok":true}));
        let r = call_toy(
            instance,
            json!({"type":"request","id":7,"op":"status","deadline_ms":100}),
        );
        assert_eq!(
            r,
            json!({"type":"response","id":7,"ok":true,"state":"PoweringOff"})
        );
        let r = call_toy(
            instance,
            json!({"type":"request","id":8,"op":"set_power","action":"off","deadline_ms":100}),
        );
        assert_eq!(r["detail"], "did off");
        let r = call_toy(
            instance,
            json!({"type":"request","id":9,"op":"reboot","deadline_ms":100}),
        );
        assert_eq!(r["error"]["kind"], "unsupported");
        // SAFETY: from `configure::<Toy>`, destroyed once, no call running.
        unsafe { destroy::<Toy>(instance) };
    }

    #[test]
    fn a_panic_becomes_a_protocol_error_with_the_request_id() {
        let (instance, _) = configure_toy("panic");
        let r = call_toy(
            instance,
            json!({"type":"request","id":3,"op":"status","deadline_ms":100}),
        );
        assert_eq!(r["id"], 3);
        assert_eq!(r["ok"], false);
        assert_eq!(r["error"]["kind"], "protocol");
        let detail = r["error"]["detail"].as_str().unwrap();
        assert!(detail.contains("toy asked to panic"), "{detail}");
        // SAFETY: from `configure::<Toy>`, destroyed once, no call running.
        unsafe { destroy::<Toy>(instance) };
    }

    #[test]
    fn refusals_and_bad_input_return_null_or_errors_never_ub() {
        let (instance, reply) = configure_toy("refuse");
        assert!(instance.is_null());
        assert_eq!(reply["error"]["kind"], "unsupported");
        let mut replies = Vec::<Value>::new();
        // SAFETY: a null pointer with a non-zero length must be refused, not read.
        let instance = unsafe {
            configure::<Toy>(
                std::ptr::null(),
                5,
                Some(collect),
                (&raw mut replies).cast(),
            )
        };
        assert!(instance.is_null());
        assert_eq!(replies[0]["error"]["kind"], "protocol");
        let r = call_toy(
            std::ptr::null_mut(),
            json!({"type":"request","id":4,"op":"status","deadline_ms":1}),
        );
        assert_eq!(
            (r["id"].clone(), r["error"]["kind"].clone()),
            (json!(4), json!("protocol"))
        );
        // No reply callback at all: nothing to call, nothing to crash.
        // SAFETY: null callback and context are allowed.
        unsafe { hello::<Toy>(None, std::ptr::null_mut()) };
        // SAFETY: destroying null is a no-op.
        unsafe { destroy::<Toy>(std::ptr::null_mut()) };
    }
}
