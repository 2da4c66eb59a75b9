//! The built-in `hash` embedder: an offline, deterministic lexical embedding (the default).
//!
//! Algorithm `v1` (this is a persistent format: vectors are cached under [`HashEmbedder::identity`], so any change to
//! the steps below MUST come with a new model name, e.g. `v2`):
//!
//! 1. Lowercase the text (`char::to_lowercase`) and split it into words at every character that is not alphanumeric
//!    (`char::is_alphanumeric`, so Unicode letters and digits of every script count).
//! 2. Features: every word (weight 1.0) and every pair of adjacent words (weight 0.5).
//! 3. A word hashes to `fmix64(fnv1a64(utf8 bytes))` (FNV-1a 64, then the MurmurHash3 finaliser so every bit mixes);
//!    a pair `(a, b)` hashes to `fmix64(rotl(h(a), 23) ^ h(b) ^ PAIR_SALT)`, which is order-sensitive.
//! 4. A feature hash `h` adds `±weight` to component `(h × dimension) >> 64` (the high bits), with the sign taken from
//!    the lowest bit (`0` → `+`, `1` → `−`), so colliding features tend to cancel instead of piling up.
//! 5. The vector is L2-normalised; a text without words gives the zero vector.
//!
//! Both hashes are defined here bit for bit (never `std`'s `DefaultHasher`, whose output may change between Rust
//! releases), so vectors are stable across platforms, builds and versions.

use async_trait::async_trait;
use colstore_domain::ports::{EmbedError, Embedder};
use colstore_domain::{Dimension, EmbedderId, Vector};

/// The `kind` of [`HashEmbedder::identity`].
pub const HASH_KIND: &str = "hash";

/// The algorithm version, the `model` of [`HashEmbedder::identity`]: a new algorithm gets a new name, and so new cache keys.
pub const HASH_MODEL: &str = "v1";

/// Weight of a single word.
const WORD_WEIGHT: f32 = 1.0;
/// Weight of a pair of adjacent words: context helps, but less than the words themselves.
const PAIR_WEIGHT: f32 = 0.5;
/// Keeps pair hashes apart from word hashes.
const PAIR_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Batches with more text than this are embedded on tokio's blocking pool, so a large batch does not stall the
/// async worker thread it was called on (at ~1 µs per KB that is about a quarter of a millisecond and up).
const BLOCKING_THRESHOLD_BYTES: usize = 256 * 1024;

/// The largest batch [`HashEmbedder`] accepts in one call; it has no real limit, this only bounds memory per call.
const MAX_BATCH: usize = 4096;

/// The built-in lexical embedder: hashed word and word-pair features, L2-normalised (see the module docs for the
/// exact algorithm). Offline, deterministic and fast; the default embedder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashEmbedder {
    dimension: Dimension,
}

impl HashEmbedder {
    /// A hash embedder producing vectors of `dimension` components.
    pub fn new(dimension: Dimension) -> Self {
        Self { dimension }
    }

    /// The vector of one text (what [`Embedder::embed`] computes for each input), synchronously.
    pub fn embed_one(&self, text: &str) -> Vector {
        let dim = self.dimension.get() as usize;
        let mut v = vec![0.0f32; dim];
        let mut features = Features { v: &mut v, dim: dim as u64, prev: None };
        let mut word = FNV_OFFSET;
        let mut in_word = false;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii() {
                // Fast path: ASCII letters and digits are the only alphanumeric ASCII characters.
                if b.is_ascii_alphanumeric() {
                    word = fnv_byte(word, b.to_ascii_lowercase());
                    in_word = true;
                } else if in_word {
                    features.word(word);
                    word = FNV_OFFSET;
                    in_word = false;
                }
                i += 1;
                continue;
            }
            let Some(c) = text[i..].chars().next() else { break };
            i += c.len_utf8();
            // Lowercasing may yield several characters, some of them not alphanumeric (e.g. 'İ' → 'i' + U+0307):
            // the split happens on the lowercased text, as the algorithm says.
            for l in c.to_lowercase() {
                if l.is_alphanumeric() {
                    let mut buf = [0u8; 4];
                    for &lb in l.encode_utf8(&mut buf).as_bytes() {
                        word = fnv_byte(word, lb);
                    }
                    in_word = true;
                } else if in_word {
                    features.word(word);
                    word = FNV_OFFSET;
                    in_word = false;
                }
            }
        }
        if in_word {
            features.word(word);
        }
        normalise(&mut v);
        v
    }

    fn embed_all(self, texts: &[String]) -> Vec<Vector> {
        texts.iter().map(|t| self.embed_one(t)).collect()
    }
}

/// Accumulates features into the vector, remembering the previous word for pairs.
struct Features<'a> {
    v: &'a mut [f32],
    dim: u64,
    prev: Option<u64>,
}

impl Features<'_> {
    /// Adds the word whose raw FNV-1a state is `fnv`, and the pair it forms with the previous word.
    fn word(&mut self, fnv: u64) {
        let h = fmix64(fnv);
        self.add(h, WORD_WEIGHT);
        if let Some(prev) = self.prev {
            self.add(fmix64(prev.rotate_left(23) ^ h ^ PAIR_SALT), PAIR_WEIGHT);
        }
        self.prev = Some(h);
    }

    fn add(&mut self, h: u64, weight: f32) {
        // Multiply-shift maps the high bits uniformly onto 0..dim without a division; the result is < dim.
        let index = ((u128::from(h) * u128::from(self.dim)) >> 64) as usize;
        let signed = if h & 1 == 0 { weight } else { -weight };
        self.v[index] += signed;
    }
}

fn fnv_byte(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
}

/// MurmurHash3's 64-bit finaliser.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 0.0 {
        let inv = (1.0 / norm) as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn identity(&self) -> EmbedderId {
        EmbedderId { kind: HASH_KIND.to_owned(), model: HASH_MODEL.to_owned(), dimension: self.dimension }
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vector>, EmbedError> {
        let bytes: usize = texts.iter().map(String::len).sum();
        let this = *self;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if bytes > BLOCKING_THRESHOLD_BYTES => handle
                .spawn_blocking(move || this.embed_all(&texts))
                .await
                .map_err(|e| EmbedError::Backend { backend: HASH_KIND, source: Box::new(e) }),
            _ => Ok(this.embed_all(&texts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn embedder(d: u32) -> HashEmbedder {
        HashEmbedder::new(Dimension::new(d).unwrap())
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[test]
    fn identity_names_the_algorithm_version() {
        let id = embedder(384).identity();
        assert_eq!((id.kind.as_str(), id.model.as_str(), id.dimension.get()), ("hash", "v1", 384));
        assert_eq!(id.to_string(), "hash:v1/384");
        assert_eq!(embedder(384).max_batch(), 4096);
    }

    #[test]
    fn is_deterministic_and_normalised() {
        let e = embedder(256);
        let a = e.embed_one("The quick brown fox jumps over the lazy dog.");
        assert_eq!(a, e.embed_one("The quick brown fox jumps over the lazy dog."));
        assert_eq!(a.len(), 256);
        assert!((norm(&a) - 1.0).abs() < 1e-5, "norm {}", norm(&a));
        assert!((norm(&e.embed_one("x")) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn empty_or_wordless_text_gives_the_zero_vector() {
        let e = embedder(16);
        assert_eq!(e.embed_one(""), vec![0.0; 16]);
        assert_eq!(e.embed_one("  ,.;--!! \n\t"), vec![0.0; 16]);
    }

    #[test]
    fn case_and_punctuation_do_not_matter_but_word_order_does() {
        let e = embedder(512);
        assert_eq!(e.embed_one("Hello, World!"), e.embed_one("hello world"));
        assert_eq!(e.embed_one("ÉCOLE Straße"), e.embed_one("école straße"));
        // Same words, other order: only the pair features differ.
        let (a, b) = (e.embed_one("red apple green pear"), e.embed_one("green pear red apple"));
        assert_ne!(a, b);
        assert!(cosine(&a, &b) > 0.7);
    }

    #[test]
    fn unicode_words_are_words() {
        let e = embedder(512);
        // Cyrillic and CJK letters are alphanumeric, so they form words instead of vanishing.
        assert!(norm(&e.embed_one("привет мир")) > 0.99);
        assert!(norm(&e.embed_one("東京")) > 0.99);
        assert_ne!(e.embed_one("привет мир"), e.embed_one("мир привет"));
        // The split happens after lowercasing: 'İ' lowercases to 'i' + U+0307 (not alphanumeric).
        assert_eq!(e.embed_one("İx"), e.embed_one("i x"));
    }

    #[test]
    fn similar_texts_are_closer_than_unrelated_ones() {
        let e = embedder(384);
        let q = e.embed_one("how do I reset my password");
        let near = e.embed_one("to reset your password, open settings and choose reset password");
        let far = e.embed_one("the annual rainfall in the amazon basin exceeds two metres");
        assert!(cosine(&q, &near) > cosine(&q, &far) + 0.2, "near {} far {}", cosine(&q, &near), cosine(&q, &far));
    }

    #[test]
    fn known_vector_snapshot() {
        // Pins algorithm v1: if this changes, the cache keys must change too (bump HASH_MODEL).
        let v = embedder(8).embed_one("Hello, world! Hello again.");
        let rounded: Vec<f32> = v.iter().map(|x| (x * 1e4).round() / 1e4).collect();
        assert_eq!(rounded, [0.0, 0.0, 0.0, 0.2294, -0.2294, 0.0, -0.2294, 0.9177]);
        // At 384 components: 4 words (hello twice) and 3 pairs land on 6 components without collisions.
        let v = embedder(384).embed_one("Hello, world! Hello again.");
        let sparse: Vec<(usize, f32)> =
            v.iter().enumerate().filter(|(_, x)| **x != 0.0).map(|(i, x)| (i, (x * 1e4).round() / 1e4)).collect();
        assert_eq!(sparse, [(172, 0.1925), (196, -0.1925), (200, -0.3849), (212, 0.3849), (332, -0.1925), (350, 0.7698)]);
        // FNV-1a 64 of "a" is the published test vector 0xaf63dc4c8601ec8c.
        assert_eq!(fnv_byte(FNV_OFFSET, b'a'), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fmix64(0xaf63_dc4c_8601_ec8c), 0x82a2_a958_a9be_ce5b);
    }

    #[tokio::test]
    async fn embed_returns_one_vector_per_text_in_order_even_on_the_blocking_pool() {
        let e = embedder(64);
        let texts: Vec<String> = (0..600).map(|i| format!("document {i} {}", "lorem ipsum ".repeat(40))).collect();
        assert!(texts.iter().map(String::len).sum::<usize>() > BLOCKING_THRESHOLD_BYTES);
        let got = e.embed(texts.clone()).await.unwrap();
        assert_eq!(got.len(), 600);
        for (t, v) in texts.iter().zip(&got) {
            assert_eq!(v, &e.embed_one(t));
        }
        assert!(e.embed(Vec::new()).await.unwrap().is_empty());
    }

    #[test]
    fn throughput() {
        // Prints the rate on ~1 KB chunks; no timing assertion (machines and build profiles differ).
        let e = embedder(384);
        let words = ["alpha", "Beta", "gamma,", "delta.", "epsilon", "zeta;", "eta", "theta", "iota", "kappa", "lambda", "mu"];
        let texts: Vec<String> = (0..2000)
            .map(|i| {
                let mut t = String::with_capacity(1100);
                let mut k = i;
                while t.len() < 1024 {
                    t.push_str(words[k % words.len()]);
                    t.push(' ');
                    k = k.wrapping_mul(31).wrapping_add(7);
                }
                t
            })
            .collect();
        let start = Instant::now();
        let mut sink = 0.0f32;
        for t in &texts {
            sink += e.embed_one(t).iter().sum::<f32>();
        }
        let secs = start.elapsed().as_secs_f64();
        println!("hash embedder: {:.0} chunks/s of ~1 KB (dimension 384, {} build; sink {sink})", texts.len() as f64 / secs, profile());
    }

    fn profile() -> &'static str {
        if cfg!(debug_assertions) { "debug" } else { "release" }
    }
}
