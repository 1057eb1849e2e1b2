//! Running blocking work without the GVL, interruptibly.
//!
//! Ruby interrupts a thread blocked outside the GVL (Thread#kill, Timeout,
//! signals) by calling an "unblocking function". Ours sets a flag the blocking
//! loop polls, so the work returns soon after. `rb_thread_call_without_gvl`
//! then raises the pending interrupt itself (before or after running the
//! work); it runs inside `protect`, so that raise comes back to us as an
//! `Err` instead of unwinding through Rust frames.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use magnus::{Error, Ruby};
use rb_sys::{rb_thread_call_without_gvl, Qnil, VALUE};

/// Runs `func` without the GVL. `func` gets a flag that turns true when Ruby
/// wants the thread back; it must then return soon. Returns the exception
/// Ruby raised for the interrupt, if any, or `func`'s result. A panic in
/// `func` is caught (it must not unwind through Ruby's C frames) and raised as
/// a `RuntimeError`.
pub(crate) fn nogvl<F, R>(ruby: &Ruby, func: F) -> Result<R, Error>
where
    F: FnOnce(&AtomicBool) -> R,
{
    struct Call<'a, F, R> {
        func: Option<F>,
        interrupted: &'a AtomicBool,
        result: Option<std::thread::Result<R>>,
    }

    unsafe extern "C" fn call<F, R>(data: *mut c_void) -> *mut c_void
    where
        F: FnOnce(&AtomicBool) -> R,
    {
        // SAFETY: `data` is the `Call` below, alive for the whole call.
        let call = unsafe { &mut *(data as *mut Call<'_, F, R>) };
        if let Some(func) = call.func.take() {
            let interrupted = call.interrupted;
            call.result = Some(catch_unwind(AssertUnwindSafe(|| func(interrupted))));
        }
        std::ptr::null_mut()
    }

    unsafe extern "C" fn unblock(data: *mut c_void) {
        // SAFETY: `data` is the `AtomicBool` below, alive for the whole call.
        let flag = unsafe { &*(data as *const AtomicBool) };
        flag.store(true, Ordering::SeqCst);
    }

    let interrupted = AtomicBool::new(false);
    let mut state = Call {
        func: Some(func),
        interrupted: &interrupted,
        result: None,
    };
    let data = &mut state as *mut Call<'_, F, R> as *mut c_void;
    let flag = &interrupted as *const AtomicBool as *mut c_void;
    let raised = magnus::rb_sys::protect(|| {
        // SAFETY: `data` and `flag` outlive the call; a raise inside it is
        // caught by `protect`, and no Rust frame with destructors lies between.
        unsafe { rb_thread_call_without_gvl(Some(call::<F, R>), data, Some(unblock), flag) };
        Qnil as VALUE
    });
    let result = state.result.take();
    raised?;
    match result {
        Some(Ok(value)) => Ok(value),
        Some(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(Error::new(
                ruby.exception_runtime_error(),
                format!("shopify_events: internal error in blocking call: {message}"),
            ))
        }
        None => Err(Error::new(
            ruby.exception_runtime_error(),
            "shopify_events: blocking call was not run",
        )),
    }
}
