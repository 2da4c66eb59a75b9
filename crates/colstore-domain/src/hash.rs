//! SHA-256 content hashes.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ValidationError;

/// The SHA-256 of a document's content. Displayed and serialised as 64 lowercase hex digits.
///
/// Hashes are written and read on every hot path (two per index point, one per ledger row), so the text form is
/// made with a lookup table on the stack, and serde reads and writes it without a `String` in between.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Hashes a whole buffer.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// Parses 64 hex digits (either case).
    ///
    /// # Errors
    /// Returns a [`ValidationError`] when the input is not 64 hex digits.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new("content hash", s, "expected 64 hex digits");
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Ok(Self(out))
    }

    /// Builds a hash from a slice, which must be 32 bytes long.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] for any other length.
    pub fn from_slice(b: &[u8]) -> Result<Self, ValidationError> {
        <[u8; 32]>::try_from(b)
            .map(Self)
            .map_err(|_| ValidationError::new("content hash", &format!("{} bytes", b.len()), "expected 32 bytes"))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.hex_digits().as_str().to_owned()
    }

    /// The first 12 hex digits, for human output.
    pub fn short(&self) -> String {
        self.hex_digits().as_str()[..12].to_owned()
    }

    /// The 64 lowercase hex digits, on the stack.
    fn hex_digits(&self) -> HexDigits {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        HexDigits(out)
    }
}

/// A hash's 64 hex digits (always ASCII).
struct HexDigits([u8; 64]);

impl HexDigits {
    fn as_str(&self) -> &str {
        // Only bytes of `DIGITS` are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex_digits().as_str())
    }
}

impl Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.hex_digits().as_str())
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = ContentHash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ContentHash, E> {
                ContentHash::parse(s).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Hex)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl TryFrom<String> for ContentHash {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ContentHash> for String {
    fn from(h: ContentHash) -> Self {
        h.to_hex()
    }
}

/// Incremental SHA-256 over streamed content.
#[derive(Default, Clone)]
pub struct ContentHasher(Sha256);

impl ContentHasher {
    /// A hasher with nothing fed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The hash of everything fed.
    pub fn finish(self) -> ContentHash {
        ContentHash(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_round_trip() {
        let h = ContentHash::of(b"abc");
        assert_eq!(h.to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(ContentHash::parse(&h.to_string().to_uppercase()).unwrap(), h);
        let mut inc = ContentHasher::new();
        inc.update(b"a");
        inc.update(b"bc");
        assert_eq!(inc.finish(), h);
    }

    #[test]
    fn bad_hex_is_rejected() {
        assert!(ContentHash::parse("zz").is_err());
        assert!(ContentHash::parse(&"g".repeat(64)).is_err());
    }

    /// The table-driven text equals the formatter's, for every byte value in every position; serde writes and reads
    /// the same text, borrowed or owned, and refuses what `parse` refuses.
    #[test]
    fn hex_text_and_serde_round_trip() {
        for b in 0..=255u8 {
            let mut bytes = [0u8; 32];
            bytes[usize::from(b) % 32] = b;
            bytes[31 - usize::from(b) % 32] = b.wrapping_mul(7);
            let h = ContentHash::from_bytes(bytes);
            let expected: String = bytes.iter().map(|x| format!("{x:02x}")).collect();
            assert_eq!(h.to_string(), expected);
            assert_eq!(h.to_hex(), expected);
            assert_eq!(h.short(), expected[..12]);
            let json = serde_json::to_string(&h).unwrap();
            assert_eq!(json, format!("\"{expected}\""));
            assert_eq!(serde_json::from_str::<ContentHash>(&json).unwrap(), h);
            assert_eq!(serde_json::from_value::<ContentHash>(serde_json::Value::String(expected)).unwrap(), h);
        }
        let err = serde_json::from_str::<ContentHash>("\"abc\"").unwrap_err().to_string();
        assert!(err.contains("expected 64 hex digits"), "{err}");
        assert!(serde_json::from_str::<ContentHash>("12").is_err());
    }
}
