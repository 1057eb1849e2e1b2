//! `Experiments.polluted_floor(qid, frame, n, code_kib, data_kib, send)`:
//! the bare `msgsnd` loop with a controlled amount of user-space work
//! between the calls, to measure whether — and how much — a `msgsnd` costs
//! more when the caller's own code and data push the kernel's out of the
//! caches (the "msgsnd running colder" of the emit loop).
//!
//! After each `msgsnd` the loop runs straight through `code_kib` KiB of
//! code (one short jump per 64-byte line, so it touches every line at about
//! a cycle each) and reads one byte of each 64-byte line of a `data_kib`
//! KiB buffer. With `send` false it runs only the pollution, so the caller
//! can subtract it. Returns the thread's CPU time (CLOCK_THREAD_CPUTIME_ID)
//! over the whole loop, in ns; raises nothing (a failed send counts as sent:
//! the caller sizes the queue).

use std::arch::asm;
use std::ffi::c_int;

use rb_sys::{FIX2LONG, LONG2NUM, RSTRING_LEN, RSTRING_PTR, TEST, VALUE};

/// Runs through `LINES` 64-byte lines of code.
#[inline(never)]
fn code_lines<const LINES: usize>() {
    if LINES == 0 {
        return;
    }
    // SAFETY: straight-line jumps within the block; no registers or memory
    // touched besides the instruction stream.
    unsafe {
        asm!(
            ".rept {lines}",
            "jmp 2f",
            ".skip 62, 0xcc",
            "2:",
            ".endr",
            lines = const LINES,
            options(nomem, nostack, preserves_flags)
        );
    }
}

fn pollute_code(kib: usize) {
    match kib {
        0 => {}
        4 => code_lines::<64>(),
        8 => code_lines::<128>(),
        16 => code_lines::<256>(),
        24 => code_lines::<384>(),
        32 => code_lines::<512>(),
        64 => code_lines::<1024>(),
        _ => code_lines::<0>(),
    }
}

static mut DATA: [u8; 128 * 1024] = [0; 128 * 1024];

fn pollute_data(kib: usize) -> u8 {
    let lines = kib.min(128) * 1024 / 64;
    let mut sum = 0u8;
    for i in 0..lines {
        // SAFETY: within the buffer; reads only (volatile so they stay).
        sum =
            sum.wrapping_add(unsafe { std::ptr::read_volatile(std::ptr::addr_of!(DATA[i * 64])) });
    }
    sum
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer and clock id.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn se_exp_polluted_floor(
    _module: VALUE,
    qid: VALUE,
    frame: VALUE,
    n: VALUE,
    code_kib: VALUE,
    data_kib: VALUE,
    send: VALUE,
) -> VALUE {
    // SAFETY: the bench passes Integers, a String of at least 8 bytes, and a boolean.
    unsafe {
        let id = FIX2LONG(qid) as c_int;
        let (ptr, len) = (RSTRING_PTR(frame), RSTRING_LEN(frame) as usize);
        let (n, code_kib, data_kib) = (
            FIX2LONG(n),
            FIX2LONG(code_kib) as usize,
            FIX2LONG(data_kib) as usize,
        );
        let send = TEST(send);
        let mut sink = 0u8;
        let start = thread_cpu_ns();
        for _ in 0..n {
            if send {
                libc::msgsnd(id, ptr.cast(), len - 8, libc::IPC_NOWAIT);
            }
            pollute_code(code_kib);
            sink = sink.wrapping_add(pollute_data(data_kib));
        }
        let elapsed = thread_cpu_ns() - start;
        std::hint::black_box(sink);
        LONG2NUM(elapsed as i64)
    }
}
