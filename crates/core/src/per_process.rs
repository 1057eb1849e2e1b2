//! [`PerProcess`]: state one process generation owns (see
//! [`crate::process`]), reached without a lock a forked child could
//! inherit held.
//!
//! A lock guarding per-process state is itself state a child inherits, and
//! `fork` copies it as it was: held, if another thread of the parent held
//! it at that instant (a Ruby thread that released the GVL to flush or wait
//! for log lines, say). The child's first call would then wait forever
//! for a thread that does not exist in it. So the value of each generation
//! sits behind one pointer: a caller of the current generation loads it (an
//! acquire load and a compare); the first caller of a new generation
//! installs a fresh value with a compare-and-swap and never touches the
//! parent's, which is leaked in the child (its locks may be held, its
//! threads are gone). Locks *inside* the value are only ever shared by
//! threads of one generation.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::process;

/// A `T` per process generation; see the [module docs](self).
#[derive(Debug)]
pub struct PerProcess<T> {
    current: AtomicPtr<Generation<T>>,
}

#[derive(Debug)]
struct Generation<T> {
    generation: u64,
    value: T,
}

impl<T> Default for PerProcess<T> {
    fn default() -> Self {
        PerProcess::new()
    }
}

impl<T> PerProcess<T> {
    /// Nothing installed yet.
    pub const fn new() -> PerProcess<T> {
        PerProcess {
            current: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// This generation's value, if one was installed.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        self.current_generation().map(|g| &g.value)
    }

    /// This generation's value, made with `init` on the first call of the
    /// generation. `inherited` then sees the previous generation's value
    /// (a parent's, in a forked child), once, to release what it must (its
    /// descriptors, say) without locking anything; the value itself is
    /// leaked. Two threads of a new generation may both run `init`: one
    /// value is kept, the other dropped.
    pub fn get_or_init(&self, init: impl FnOnce() -> T, inherited: impl FnOnce(&T)) -> &T {
        if let Some(g) = self.current_generation() {
            return &g.value;
        }
        self.install(init, inherited)
    }

    #[inline]
    fn current_generation(&self) -> Option<&Generation<T>> {
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from Box::into_raw in `install`
        // and is freed only by `drop` (which has `&mut self`) or by the
        // losing side of `install` (never published), so it is valid for
        // as long as `&self` is.
        let g = unsafe { current.as_ref() }?;
        (g.generation == process::generation()).then_some(g)
    }

    #[cold]
    fn install(&self, init: impl FnOnce() -> T, inherited: impl FnOnce(&T)) -> &T {
        let fresh = Box::into_raw(Box::new(Generation {
            generation: process::generation(),
            value: init(),
        }));
        let mut seen = self.current.load(Ordering::Acquire);
        loop {
            if let Some(ours) = self.current_generation() {
                // Another thread of this generation was first.
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                return &ours.value;
            }
            match self
                .current
                .compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(previous) => {
                    // SAFETY: as in `current_generation`; it stays allocated
                    // (leaked) for the life of the process.
                    if let Some(previous) = unsafe { previous.as_ref() } {
                        inherited(&previous.value);
                    }
                    // SAFETY: just installed; freed only by `drop`.
                    return unsafe { &(*fresh).value };
                }
                Err(actual) => seen = actual,
            }
        }
    }
}

impl<T> Drop for PerProcess<T> {
    /// Drops this generation's value; leaves a parent's alone.
    fn drop(&mut self) {
        let current = *self.current.get_mut();
        // SAFETY: from Box::into_raw in `install`, not freed before.
        if let Some(g) = unsafe { current.as_ref() } {
            if g.generation == process::generation() {
                // SAFETY: ours, and `&mut self` excludes every other user.
                drop(unsafe { Box::from_raw(current) });
            }
        }
    }
}

// SAFETY: `PerProcess<T>` hands out `&T` to any thread and drops the `T` on
// whichever thread drops it: exactly what `T: Send + Sync` allows.
unsafe impl<T: Send + Sync> Sync for PerProcess<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Send for PerProcess<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_generation_made_once() {
        let slot = PerProcess::new();
        assert!(slot.get().is_none());
        let mut made = 0;
        let a = *slot.get_or_init(
            || {
                made += 1;
                7
            },
            |_| panic!("nothing inherited"),
        );
        let b = *slot.get_or_init(|| 8, |_| panic!("nothing inherited"));
        assert_eq!((a, b, made), (7, 7, 1));
        assert_eq!(slot.get(), Some(&7));
    }
}
