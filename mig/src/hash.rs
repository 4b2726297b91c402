//! A fast hasher for the engine's integer-keyed maps: SipHash's protection
//! against hash flooding is not needed for keys the scheduler chooses, and it
//! would cost a large share of a sub-microsecond decision.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hasher (Fibonacci hashing) for integer keys.
#[derive(Default, Clone, Copy)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

/// `HashMap` with [`IntHasher`].
pub(crate) type IntMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<IntHasher>>;
