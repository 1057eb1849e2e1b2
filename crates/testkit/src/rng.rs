//! A tiny reproducible generator (xorshift64), for kill points, timings
//! and payload bytes that vary but repeat from run to run.

/// xorshift64; seed it with anything but 0.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Fills `buf` with random hex digits: they compress about 2:1, like
    /// JSON, so compressed throughput is not flattered.
    pub fn fill_hex(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            *b = b"0123456789abcdef"[(self.next_u64() & 15) as usize];
        }
    }
}
