//! Validated names: collections, document keys, tags, metadata field paths, store ids.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// A collection name: `[a-z0-9][a-z0-9_-]{0,62}` (PRODUCT §3).
///
/// The rule keeps every name a safe folder name and a valid suffix of a Qdrant or Weaviate collection name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CollectionName(String);

impl CollectionName {
    /// Validates `s` as a collection name.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] naming the broken rule.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |reason: &str| Err(ValidationError::new("collection name", s, reason));
        if s.is_empty() {
            return err("it is empty");
        }
        if s.len() > 63 {
            return err("it is longer than 63 characters");
        }
        let first = s.as_bytes()[0];
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return err("it must start with a lowercase ASCII letter (a-z) or a digit");
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')) {
            return err(&format!("character {c:?} is not allowed (use a-z, 0-9, '_' and '-')"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CollectionName {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CollectionName> for String {
    fn from(n: CollectionName) -> Self {
        n.0
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest document key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A document key: a normalised relative path (PRODUCT §3).
///
/// UTF-8, `/`-separated, no empty, `.` or `..` segments, no NUL or other control characters,
/// no leading `/` or `\`, at most [`MAX_KEY_BYTES`] bytes. The same rule holds in both storage modes,
/// so every key is a safe relative file name and a store can move between modes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocKey(String);

impl DocKey {
    /// Validates `s` as a document key and brings it to Unicode NFC, so a name typed or stored in NFD (as macOS
    /// does) is the same key. Nothing else is rewritten: `a//b` is rejected, not fixed.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] naming the broken rule.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        // Fast path for the common case (a scan of 100 000 files parses 100 000 keys): one pass over the bytes of an
        // ASCII key, which is always NFC, with the same rules as below.
        if s.is_ascii() && Self::plain_ascii(s.as_bytes()) {
            return Ok(Self(s.to_owned()));
        }
        Self::parse_general(s)
    }

    /// [`DocKey::parse`] without the ASCII fast path: every rule, with its reason.
    pub(crate) fn parse_general(s: &str) -> Result<Self, ValidationError> {
        use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
        if is_nfc_quick(s.chars()) != IsNormalized::Yes {
            let nfc: String = s.nfc().collect();
            if nfc != s {
                return Self::parse_general(&nfc);
            }
        }
        let err = |reason: &str| Err(ValidationError::new("document key", s, reason));
        if s.is_empty() {
            return err("it is empty");
        }
        if s.len() > MAX_KEY_BYTES {
            return err(&format!("it is longer than {MAX_KEY_BYTES} bytes"));
        }
        if s.contains('\0') {
            return err("it contains a NUL byte");
        }
        if s.chars().any(char::is_control) {
            return err("it contains a control character");
        }
        if s.starts_with('/') || s.starts_with('\\') || s.as_bytes().get(1) == Some(&b':') {
            return err("it is an absolute path; keys are relative paths like \"notes/a.md\"");
        }
        if s.contains('\\') {
            return err("it contains '\\'; separate path segments with '/'");
        }
        for seg in s.split('/') {
            match seg {
                "" => return err("it has an empty path segment (\"//\" or a trailing '/')"),
                "." | ".." => return err(&format!("it has a {seg:?} segment; keys cannot point outside their collection")),
                _ => {}
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// Whether ASCII `b` is a valid key: not empty, not too long, no control character or `\\`, no leading `/`,
    /// no drive letter, and no empty, `.` or `..` segment. `false` sends it down the general path, which says why.
    fn plain_ascii(b: &[u8]) -> bool {
        if b.is_empty() || b.len() > MAX_KEY_BYTES || b[0] == b'/' || b.get(1) == Some(&b':') {
            return false;
        }
        let mut segment_start = 0;
        for (i, &c) in b.iter().enumerate() {
            if c < 0x20 || c == 0x7f || c == b'\\' {
                return false;
            }
            if c == b'/' {
                if matches!(&b[segment_start..i], b"" | b"." | b"..") {
                    return false;
                }
                segment_start = i + 1;
            }
        }
        !matches!(&b[segment_start..], b"" | b"." | b"..")
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DocKey {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DocKey> for String {
    fn from(k: DocKey) -> Self {
        k.0
    }
}

impl fmt::Display for DocKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: 1–64 characters, no whitespace, no control characters, no commas.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    /// Validates `s` as a tag.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] naming the broken rule.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |reason: &str| Err(ValidationError::new("tag", s, reason));
        if s.is_empty() {
            return err("it is empty");
        }
        if s.chars().count() > 64 {
            return err("it is longer than 64 characters");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',') {
            return err("tags cannot contain whitespace, control characters or ','");
        }
        Ok(Self(s.to_owned()))
    }

    /// The tag as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tag {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> Self {
        t.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path into a metadata object, such as `lang` or `author.name`: dot-separated segments of `[A-Za-z0-9_-]`.
///
/// The narrow alphabet keeps paths safe to embed in SQLite JSON paths, Qdrant payload keys and Weaviate property names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FieldPath(String);

impl FieldPath {
    /// Validates `s` as a field path.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] naming the broken rule.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() || s.len() > 256 {
            return Err(ValidationError::new("field path", s, "it must be 1 to 256 characters"));
        }
        for seg in s.split('.') {
            if seg.is_empty() || !seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(ValidationError::new(
                    "field path",
                    s,
                    "use dot-separated segments of letters, digits, '_' and '-', like \"author.name\"",
                ));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// Looks the path up in a JSON object.
    pub fn lookup<'a>(&self, object: &'a serde_json::Map<String, serde_json::Value>) -> Option<&'a serde_json::Value> {
        let mut segs = self.segments();
        let mut cur = object.get(segs.next()?)?;
        for seg in segs {
            cur = cur.as_object()?.get(seg)?;
        }
        Some(cur)
    }
}

impl TryFrom<String> for FieldPath {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<FieldPath> for String {
    fn from(p: FieldPath) -> Self {
        p.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A store's random identity. It namespaces point ids and remote collection names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoreId(pub uuid::Uuid);

impl StoreId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// The first 8 hex digits, used to namespace remote collections (`cs_<short>_<collection>`).
    pub fn short(&self) -> String {
        self.0.simple().to_string()[..8].to_owned()
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for StoreId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self).map_err(|e| ValidationError::new("store id", s, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("notes")]
    #[case("a")]
    #[case("0abc")]
    #[case("my_docs-2")]
    #[case(&"a".repeat(63))]
    fn collection_names_accepted(#[case] s: &str) {
        assert_eq!(CollectionName::parse(s).unwrap().as_str(), s);
    }

    #[rstest]
    #[case("", "empty")]
    #[case("Notes", "start")]
    #[case("_x", "start")]
    #[case("-x", "start")]
    #[case("no tes", "' '")]
    #[case("nötes", "'ö'")]
    #[case("a.b", "'.'")]
    #[case("a/b", "'/'")]
    #[case(&"a".repeat(64), "63")]
    fn collection_names_rejected(#[case] s: &str, #[case] reason: &str) {
        let e = CollectionName::parse(s).unwrap_err();
        assert!(e.to_string().contains(reason), "{e}");
    }

    #[rstest]
    #[case("a.md")]
    #[case("notes/2024/a.md")]
    #[case("ünïcødé/日本語.txt")]
    #[case(".hidden")]
    #[case("a..b")]
    #[case("with space.txt")]
    fn keys_accepted(#[case] s: &str) {
        assert_eq!(DocKey::parse(s).unwrap().as_str(), s);
    }

    #[rstest]
    #[case("", "empty")]
    #[case("/etc/passwd", "absolute")]
    #[case("\\\\server\\x", "absolute")]
    #[case("C:/x", "absolute")]
    #[case("../x", "\"..\"")]
    #[case("a/../../x", "\"..\"")]
    #[case("a/./b", "\".\"")]
    #[case("a//b", "empty path segment")]
    #[case("a/", "empty path segment")]
    #[case("a\0b", "NUL")]
    #[case("a\nb", "control")]
    #[case("a\\b", "separate path segments")]
    fn keys_rejected(#[case] s: &str, #[case] reason: &str) {
        let e = DocKey::parse(s).unwrap_err();
        assert!(e.to_string().contains(reason), "{e}");
    }

    #[test]
    fn key_length_limit_is_in_bytes() {
        assert!(DocKey::parse(&"é".repeat(512)).is_ok());
        assert!(DocKey::parse(&"é".repeat(513)).is_err());
    }

    #[test]
    fn keys_are_unicode_nfc() {
        let nfd = "notes/cafe\u{301}.md";
        let nfc = "notes/caf\u{e9}.md";
        assert_eq!(DocKey::parse(nfd).unwrap(), DocKey::parse(nfc).unwrap());
        assert_eq!(DocKey::parse(nfd).unwrap().as_str(), nfc);
        // A deserialised key is normalised too.
        let k: DocKey = serde_json::from_str(&format!("{nfd:?}").replace("\\u{301}", "\\u0301")).unwrap();
        assert_eq!(k.as_str(), nfc);
    }

    #[test]
    fn hostile_values_are_truncated_in_errors() {
        let e = DocKey::parse(&format!("/{}", "x".repeat(10_000))).unwrap_err();
        assert!(e.to_string().len() < 300);
    }

    #[rstest]
    #[case("lang", true)]
    #[case("author.name", true)]
    #[case("a-b_c.d1", true)]
    #[case("", false)]
    #[case("a..b", false)]
    #[case("a\"b", false)]
    #[case("$.x", false)]
    fn field_paths(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(FieldPath::parse(s).is_ok(), ok);
    }

    #[test]
    fn field_path_lookup_descends_objects() {
        let v = serde_json::json!({"a": {"b": 1}, "c": 2});
        let m = v.as_object().unwrap();
        assert_eq!(FieldPath::parse("a.b").unwrap().lookup(m), Some(&serde_json::json!(1)));
        assert_eq!(FieldPath::parse("c.d").unwrap().lookup(m), None);
        assert_eq!(FieldPath::parse("x").unwrap().lookup(m), None);
    }

    #[rstest]
    #[case("x", true)]
    #[case("draft-2", true)]
    #[case("", false)]
    #[case("a b", false)]
    #[case("a,b", false)]
    fn tags(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(Tag::parse(s).is_ok(), ok);
    }
}
