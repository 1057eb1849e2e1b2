//! The cuts, as bits of the `CUTS` const generic every prototype path takes,
//! so that each combination compiles to its own specialised function.
//!
//! Candidates (what a product change would adopt):
/// The id String built in place (`rb_usascii_str_new` + direct fill).
pub(crate) const ID: u32 = 1 << 0;
/// `msgsnd` straight from the cached queue id; the size checks the kernel
/// repeats move to the error path.
pub(crate) const SEND: u32 = 1 << 1;
/// One buffer guarded by the GVL instead of a thread-local.
pub(crate) const BUF: u32 = 1 << 2;
/// A cache of validated (frozen) topic Strings. Implies [`LITE`].
pub(crate) const TOPIC: u32 = 1 << 3;
/// A one-pass envelope writer (same bytes, no placeholders to patch).
pub(crate) const LITE: u32 = 1 << 4;
/// A leaner Hash walk for JSON payloads.
pub(crate) const HASH: u32 = 1 << 5;
//
// Ablations (each removes one part to measure what it costs in place; not
// candidates: they change what `emit` does).
/// No emitted-counter increment (with [`SEND`]).
pub(crate) const NO_STATS: u32 = 1 << 8;
/// Return `true` instead of the id String.
pub(crate) const NO_ID_STRING: u32 = 1 << 9;
/// CRC field left zero (with [`LITE`]).
pub(crate) const NO_CRC: u32 = 1 << 10;
/// No topic validation at all (with [`LITE`]).
pub(crate) const NO_VALIDATE: u32 = 1 << 11;
/// A constant id and time: no clock read, no random bits.
pub(crate) const CONST_ID: u32 = 1 << 12;
/// Everything but the `msgsnd` itself.
pub(crate) const NO_SEND: u32 = 1 << 13;

/// Whether `CUTS` has `bit`.
pub(crate) const fn has(cuts: u32, bit: u32) -> bool {
    cuts & bit != 0
}

/// Whether the envelope is written by the one-pass writer.
pub(crate) const fn lite(cuts: u32) -> bool {
    has(cuts, LITE | TOPIC | NO_CRC | NO_VALIDATE)
}
