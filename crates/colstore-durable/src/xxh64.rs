//! XXH64, the 64-bit xxHash of Yann Collet (<https://github.com/Cyan4973/xxHash>, `doc/xxhash_spec.md`), streaming.
//!
//! It checks the files colstore writes for itself (the embedded index's snapshots, the catalog cache) for damage:
//! not cryptographic, but any corruption goes undetected with odds of about
//! 2⁻⁶⁴, and it runs at memory speed (four independent multiply-rotate lanes), where SHA-256 would add a large part
//! of a load's time. Twenty lines of arithmetic, so no dependency; the tests pin it to the reference implementation.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// Bytes consumed per round of the four lanes.
const STRIPE: usize = 32;

#[inline]
fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
}

#[inline]
fn merge(acc: u64, lane: u64) -> u64 {
    (acc ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P4)
}

#[inline]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// An XXH64 computation fed in pieces of any size: the result depends only on the concatenated bytes.
#[derive(Debug, Clone)]
pub struct Xxh64 {
    seed: u64,
    lanes: [u64; 4],
    total: u64,
    pending: [u8; STRIPE],
    pending_len: usize,
}

impl Xxh64 {
    /// A computation with this seed (colstore's files use 0).
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            lanes: [seed.wrapping_add(P1).wrapping_add(P2), seed.wrapping_add(P2), seed, seed.wrapping_sub(P1)],
            total: 0,
            pending: [0; STRIPE],
            pending_len: 0,
        }
    }

    /// The hash of `bytes` alone.
    pub fn digest(seed: u64, bytes: &[u8]) -> u64 {
        let mut h = Self::new(seed);
        h.update(bytes);
        h.finish()
    }

    #[inline]
    fn stripe(lanes: &mut [u64; 4], s: &[u8; STRIPE]) {
        lanes[0] = round(lanes[0], word(s, 0));
        lanes[1] = round(lanes[1], word(s, 8));
        lanes[2] = round(lanes[2], word(s, 16));
        lanes[3] = round(lanes[3], word(s, 24));
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.total = self.total.wrapping_add(bytes.len() as u64);
        if self.pending_len > 0 {
            let n = (STRIPE - self.pending_len).min(bytes.len());
            self.pending[self.pending_len..self.pending_len + n].copy_from_slice(&bytes[..n]);
            self.pending_len += n;
            bytes = &bytes[n..];
            if self.pending_len < STRIPE {
                return;
            }
            let full = self.pending;
            Self::stripe(&mut self.lanes, &full);
            self.pending_len = 0;
        }
        let (stripes, tail) = bytes.as_chunks::<STRIPE>();
        let mut lanes = self.lanes;
        for s in stripes {
            Self::stripe(&mut lanes, s);
        }
        self.lanes = lanes;
        self.pending[..tail.len()].copy_from_slice(tail);
        self.pending_len = tail.len();
    }

    /// The hash of everything fed so far (the computation may go on).
    pub fn finish(&self) -> u64 {
        let [v1, v2, v3, v4] = self.lanes;
        let mut h = if self.total >= STRIPE as u64 {
            let h = v1.rotate_left(1).wrapping_add(v2.rotate_left(7)).wrapping_add(v3.rotate_left(12)).wrapping_add(v4.rotate_left(18));
            merge(merge(merge(merge(h, v1), v2), v3), v4)
        } else {
            self.seed.wrapping_add(P5)
        };
        h = h.wrapping_add(self.total);
        let mut tail = &self.pending[..self.pending_len];
        while tail.len() >= 8 {
            h = (h ^ round(0, word(tail, 0))).rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
            tail = &tail[8..];
        }
        if tail.len() >= 4 {
            let w = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
            h = (h ^ u64::from(w).wrapping_mul(P1)).rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
            tail = &tail[4..];
        }
        for &b in tail {
            h = (h ^ u64::from(b).wrapping_mul(P5)).rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `0, 1, 2, …` modulo 251, so no stripe repeats another.
    fn ramp(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn matches_the_reference_implementation() {
        // From `xxhsum -H64` (xxHash 0.8) on the same bytes, and the spec's empty-input value.
        assert_eq!(Xxh64::digest(0, b""), 0xEF46_DB37_51D8_E999);
        for (input, want) in REFERENCE {
            assert_eq!(Xxh64::digest(0, &ramp(*input)), *want, "{input} bytes");
        }
        assert_eq!(Xxh64::digest(0, b"abc"), 0x44BC_2CF5_AD77_0999);
    }

    #[test]
    fn any_split_gives_the_same_hash() {
        let data = ramp(1000);
        let whole = Xxh64::digest(7, &data);
        for split in [0, 1, 3, 31, 32, 33, 64, 100, 999, 1000] {
            for step in [1, 5, 32, 77] {
                let mut h = Xxh64::new(7);
                h.update(&data[..split]);
                for piece in data[split..].chunks(step) {
                    h.update(piece);
                }
                assert_eq!(h.finish(), whole, "split {split}, step {step}");
            }
        }
        assert_ne!(Xxh64::digest(8, &data), whole, "the seed matters");
    }

    /// (length of `ramp(length)`, its XXH64 with seed 0).
    const REFERENCE: &[(usize, u64)] = &[
        (1, 0xE934_A84A_DB05_2768),
        (3, 0xE5C7_BB45_33BC_65DD),
        (4, 0xFFCE_D860_4453_CC1E),
        (7, 0x14CC_643F_630C_72D2),
        (8, 0x884A_1736_14B8_1B8D),
        (31, 0xC346_D2B5_9B4D_8EE1),
        (32, 0xCBF5_9C51_16FF_32B4),
        (33, 0x0C53_5D1A_CAFB_8EAD),
        (63, 0xE26A_A9E2_A95F_8E4F),
        (64, 0xF7C6_7301_DB67_13F0),
        (100, 0x6AC1_E580_3216_6597),
        (1000, 0xF306_F04A_A88B_54D3),
        (4099, 0xD1EB_C6E9_0972_9B6D),
    ];
}
