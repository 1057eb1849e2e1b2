//! Wall-clock time for event timestamps.

/// Current wall-clock time in microseconds since the Unix epoch.
///
/// Reads `CLOCK_REALTIME` through `clock_gettime`, which the vDSO serves
/// without a syscall (~20 ns). Wall time, not monotonic, because it becomes
/// the Kafka message timestamp. Returns 0 if the clock cannot be read, which
/// on Linux only happens with an invalid clock id.
pub fn now_micros() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_REALTIME is a valid clock id.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    // time_t and c_long are i64 on the 64-bit Linux targets this crate supports.
    // Saturating: i64 microseconds span ~292,000 years, so it never saturates in practice.
    ts.tv_sec
        .saturating_mul(1_000_000)
        .saturating_add(ts.tv_nsec / 1_000)
}

/// Seconds from `then_us` to `now_us` (microseconds since the epoch), 0
/// when `then_us` lies ahead.
///
/// Emit times come from the apps, so `then_us` may be any `i64` a hostile
/// or broken emitter wrote: the difference saturates instead of overflowing
/// (an overflow panics in a debug build and wraps to nonsense in release).
/// Every age computed from an emit time goes through here.
pub fn age_secs(now_us: i64, then_us: i64) -> f64 {
    now_us.saturating_sub(then_us).max(0) as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_of_any_emit_time_saturates_instead_of_overflowing() {
        let now = now_micros();
        assert_eq!(age_secs(now, now - 1_500_000), 1.5);
        assert_eq!(age_secs(now, now + 1), 0.0);
        assert_eq!(age_secs(now, i64::MAX), 0.0);
        assert_eq!(age_secs(now, i64::MIN), i64::MAX as f64 / 1e6);
        assert_eq!(age_secs(i64::MIN, i64::MAX), 0.0);
        assert_eq!(age_secs(0, i64::MIN), i64::MAX as f64 / 1e6);
    }

    #[test]
    fn now_micros_agrees_with_system_time() {
        let std_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        let ours = now_micros();
        assert!(
            (ours - std_us).abs() < 1_000_000,
            "ours={ours} std={std_us}"
        );
    }
}
