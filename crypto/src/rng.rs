//! The randomness source the protocol core takes as an input.
//!
//! The core never reaches for a global RNG: production code passes [`OsRng`], tests pass a
//! [`SeededRng`] so that every run draws the same keys, indices and jitter.

use zeroize::Zeroize;

/// A cryptographically secure source of random bytes.
pub trait Rng: Send {
    /// Fills `dest` with random bytes.
    fn fill_bytes(&mut self, dest: &mut [u8]);

    /// A random `u32`.
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    /// A random `u64`.
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
}

/// The operating system's generator, through aws-lc-rs.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRng;

impl Rng for OsRng {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        use aws_lc_rs::rand::SecureRandom;
        // The system generator only fails if the kernel refuses getrandom, which leaves no safe way on.
        #[allow(clippy::expect_used)]
        aws_lc_rs::rand::SystemRandom::new()
            .fill(dest)
            .expect("the operating system random number generator failed");
    }
}

/// A deterministic generator for tests, fuzzing and reproducible benchmarks: BLAKE2s of
/// `seed ‖ counter`, 32 bytes per block.
///
/// Its output is unpredictable only to someone who does not know the seed, so it must never key a
/// production node.
#[derive(Debug, Clone)]
pub struct SeededRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let seed = crate::blake2s::hash(&[b"pnet-mesh seeded rng", &seed.to_le_bytes()]);
        SeededRng {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }
}

impl Drop for SeededRng {
    fn drop(&mut self) {
        self.seed.zeroize();
        self.block.zeroize();
    }
}

impl Rng for SeededRng {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest.iter_mut() {
            if self.used == self.block.len() {
                self.block = crate::blake2s::hash(&[&self.seed, &self.counter.to_le_bytes()]);
                self.counter = self.counter.wrapping_add(1);
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }
}
