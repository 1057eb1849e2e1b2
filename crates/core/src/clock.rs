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

#[cfg(test)]
mod tests {
    use super::*;

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
