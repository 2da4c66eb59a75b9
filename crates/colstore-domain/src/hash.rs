//! SHA-256 content hashes.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ValidationError;

/// The SHA-256 of a document's content. Displayed and serialised as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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
        self.to_string()
    }

    /// The first 12 hex digits, for human output.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_owned()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
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
        h.to_string()
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
}
