//! Entry points written as a C extension would write them (raw `rb-sys`,
//! stable symbol names), for measuring with callgrind and as baselines.

use std::ffi::{c_char, c_int};

use magnus::{rb_sys::AsRawValue, RModule};
use rb_sys::{
    rb_define_module_function, rb_yield, Qfalse, Qnil, Qtrue, RSTRING_LEN, RSTRING_PTR, VALUE,
};

/// `Experiments.region { ... }`: yields once. `valgrind --tool=callgrind
/// --collect-atstart=no --toggle-collect=se_exp_region` counts only what runs
/// inside the block.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn se_exp_region(_module: VALUE) -> VALUE {
    // SAFETY: called by Ruby with a block; a raise unwinds through this frame,
    // which owns nothing that needs dropping.
    unsafe { rb_yield(Qnil as VALUE) }
}

/// `Experiments.msgsnd_only(qid, frame)`: one `msgsnd(IPC_NOWAIT)` of a
/// prebuilt frame (`[mtype][body]` in a binary String); true if it was sent.
/// What a C extension that does nothing but `msgsnd` pays per Ruby call.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn se_exp_msgsnd_only(_module: VALUE, qid: VALUE, frame: VALUE) -> VALUE {
    // SAFETY: the bench passes an Integer and a String of at least 8 bytes.
    unsafe {
        let id = rb_sys::FIX2LONG(qid) as c_int;
        let len = RSTRING_LEN(frame) as usize;
        let ptr = RSTRING_PTR(frame);
        let rc = libc::msgsnd(id, ptr.cast(), len - 8, libc::IPC_NOWAIT);
        (if rc == 0 { Qtrue } else { Qfalse }) as VALUE
    }
}

pub(crate) fn define(module: RModule, name: &'static [u8], func: *const (), arity: c_int) {
    // SAFETY: `func` is an `extern "C"` function taking `arity` VALUEs after
    // the receiver, which is the calling convention Ruby uses for it.
    unsafe {
        rb_define_module_function(
            module.as_raw(),
            name.as_ptr() as *const c_char,
            Some(std::mem::transmute::<
                *const (),
                unsafe extern "C" fn() -> VALUE,
            >(func)),
            arity,
        );
    }
}

pub(crate) fn init(module: RModule) {
    define(module, b"region\0", se_exp_region as *const (), 0);
    define(module, b"msgsnd_only\0", se_exp_msgsnd_only as *const (), 2);
    define(
        module,
        b"polluted_floor\0",
        crate::polluted_floor::se_exp_polluted_floor as *const (),
        6,
    );
}
