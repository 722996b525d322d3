//! Deterministic data: test patterns, a seeded PRNG and mapping arithmetic.
//! Everything here is a pure function of its inputs so that the two runs
//! being compared write and expect exactly the same bytes.

/// SplitMix64 step, used both as a hash and as a PRNG.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 64-bit pattern stored at byte offset `off` of a memory BAR in round
/// `round`. Never all-ones and never zero, so that a read of a disabled BAR
/// (all-ones) or of untouched memory can never be mistaken for it.
pub fn word(off: u64, round: u64) -> u64 {
    let v = splitmix64(off ^ round.rotate_left(48) ^ 0x7666_696f_2d72_7321);
    if v == u64::MAX || v == 0 {
        0x5a5a_5a5a_a5a5_a5a5
    } else {
        v
    }
}

/// `len` bytes of pattern starting at byte offset `off`: byte i is taken from
/// the word of its 8-byte-aligned slot, so any sub-range read back can be
/// checked against `bytes(off', len')` independently of how it was written.
pub fn bytes(off: u64, len: usize, round: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let a = off + i;
            word(a & !7, round).to_le_bytes()[(a & 7) as usize]
        })
        .collect()
}

/// A small seeded PRNG (SplitMix64 sequence).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix64(self.0)
    }

    /// Uniform-ish value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Round `x` up to a multiple of `a` (a power of two).
pub fn align_up(x: u64, a: u64) -> u64 {
    (x + a - 1) & !(a - 1)
}

/// Virtual address alignment for mapping a BAR of `size` bytes: the size
/// rounded up to a power of two, capped at 1 GiB (the largest page size a
/// PFN map can use), so the driver can use the largest entries possible.
pub fn map_alignment(size: u64) -> u64 {
    size.max(1).next_power_of_two().min(1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_never_all_ones_or_zero_and_differ() {
        let mut seen = std::collections::HashSet::new();
        for off in (0..1u64 << 20).step_by(4096) {
            let w = word(off, 0);
            assert_ne!(w, u64::MAX);
            assert_ne!(w, 0);
            assert_ne!(w as u32, u32::MAX);
            seen.insert(w);
        }
        assert_eq!(seen.len(), 256);
        assert_ne!(word(0, 0), word(0, 1));
    }

    #[test]
    fn bytes_are_consistent_across_subranges() {
        let all = bytes(0, 64, 3);
        assert_eq!(&bytes(5, 8, 3)[..], &all[5..13]);
        assert_eq!(&all[8..16], &word(8, 3).to_le_bytes());
    }

    #[test]
    fn rng_is_deterministic() {
        let a: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::new(42);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert!(Rng::new(1).below(10) < 10);
    }

    #[test]
    fn alignment() {
        assert_eq!(align_up(1, 4096), 4096);
        assert_eq!(align_up(4096, 4096), 4096);
        assert_eq!(map_alignment(2048), 2048);
        assert_eq!(map_alignment(3 << 20), 4 << 20);
        assert_eq!(map_alignment(1 << 30), 1 << 30);
        assert_eq!(map_alignment(8 << 30), 1 << 30);
    }
}
