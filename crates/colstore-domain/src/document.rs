//! Documents: content, metadata, tags and what a write reports.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{CollectionName, ContentHash, DocKey, Tag, Timestamp, ValidationError};

/// A document's version: 1 on creation, +1 on every change.
pub type Version = u64;

/// Streamed content: a sequence of byte chunks, so large documents never sit in memory whole.
pub type ContentStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// The error a [`checked_content`] stream ends with when the bytes that passed are not the recorded content: the file
/// was edited outside colstore since the last reconcile. Every byte of the file as it is now passed before it, so a
/// reader that keeps them has the current content; [`ContentChanged::of`] tells this error from a failed read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: the file was changed outside colstore since the last reconcile")]
pub struct ContentChanged {
    /// The document.
    pub key: DocKey,
}

impl ContentChanged {
    /// The `ContentChanged` inside `e`, when `e` is one.
    pub fn of(e: &std::io::Error) -> Option<&ContentChanged> {
        e.get_ref()?.downcast_ref()
    }
}

/// Wraps the stream of a document's content read from a place people may edit (its file in filesystem mode): it
/// hashes what passes and ends with an error when the bytes are not the recorded content (`expected`, `size`), so a
/// reader never gets other bytes silently.
pub fn checked_content(stream: ContentStream, key: DocKey, expected: ContentHash, size: u64) -> ContentStream {
    use futures::StreamExt;
    futures::stream::unfold(Some((stream, crate::ContentHasher::new(), 0u64)), move |state| {
        let key = key.clone();
        async move {
            let (mut stream, mut hasher, mut seen) = state?;
            match stream.next().await {
                Some(Ok(b)) => {
                    hasher.update(&b);
                    seen += b.len() as u64;
                    Some((Ok(b), Some((stream, hasher, seen))))
                }
                Some(Err(e)) => Some((Err(e), None)),
                None if seen == size && hasher.finish() == expected => None,
                None => Some((Err(std::io::Error::other(ContentChanged { key })), None)),
            }
        }
    })
    .boxed()
}

/// The content of a document being written.
pub enum Content {
    /// Content already in memory (the common case: small documents).
    Bytes(Bytes),
    /// Content produced piece by piece (large files, stdin). Adapters MUST NOT buffer it whole.
    Stream(ContentStream),
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "Content::Bytes({} bytes)", b.len()),
            Self::Stream(_) => f.write_str("Content::Stream(..)"),
        }
    }
}

impl From<Bytes> for Content {
    fn from(b: Bytes) -> Self {
        Self::Bytes(b)
    }
}

impl From<Vec<u8>> for Content {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(b.into())
    }
}

impl From<&'static str> for Content {
    fn from(s: &'static str) -> Self {
        Self::Bytes(Bytes::from_static(s.as_bytes()))
    }
}

/// A document's metadata: always a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(pub serde_json::Map<String, serde_json::Value>);

impl Metadata {
    /// Parses user JSON, which must be an object.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] with the JSON parser's position, or when the value is not an object.
    pub fn parse_json(s: &str) -> Result<Self, ValidationError> {
        // JSON parsers keep the last of repeated keys silently; a repeated key is a mistake (which value was meant?).
        if let Err(e) = serde_json::from_str::<NoRepeatedKeys>(s)
            && let Some(key) = e.to_string().strip_prefix(REPEATED_KEY)
        {
            let key = key.split(" at line ").next().unwrap_or(key);
            return Err(ValidationError::new("metadata", s, format!("the key {key} is given more than once; give each key once")));
        }
        match serde_json::from_str::<serde_json::Value>(s) {
            Ok(serde_json::Value::Object(m)) => Ok(Self(m)),
            Ok(other) => Err(ValidationError::new(
                "metadata",
                s,
                format!("it must be a JSON object like {{\"lang\":\"en\"}}, not {}", json_kind(&other)),
            )),
            Err(e) => Err(ValidationError::new("metadata", s, format!("it is not valid JSON: {e}"))),
        }
    }

    /// The metadata as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::Value::Object(self.0.clone()).to_string()
    }
}

/// The start of the error [`NoRepeatedKeys`] reports, followed by the key as JSON.
const REPEATED_KEY: &str = "repeated key ";

/// Any JSON value, checked for an object that names a key twice (at any depth); nothing is kept.
struct NoRepeatedKeys;

impl<'de> Deserialize<'de> for NoRepeatedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoRepeatedKeysVisitor)
    }
}

struct NoRepeatedKeysVisitor;

impl<'de> serde::de::Visitor<'de> for NoRepeatedKeysVisitor {
    type Value = NoRepeatedKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_unit<E>(self) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoRepeatedKeys, A::Error> {
        while seq.next_element::<NoRepeatedKeys>()?.is_some() {}
        Ok(NoRepeatedKeys)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NoRepeatedKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<NoRepeatedKeys>()?;
            if !seen.insert(key.clone()) {
                let shown = serde_json::Value::String(key).to_string();
                return Err(serde::de::Error::custom(format!("{REPEATED_KEY}{shown}")));
            }
        }
        Ok(NoRepeatedKeys)
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A document's tags: a sorted set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tags(pub BTreeSet<Tag>);

impl Tags {
    /// Parses each string as a [`Tag`].
    ///
    /// # Errors
    /// Returns the first invalid tag's error.
    pub fn parse_all<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Result<Self, ValidationError> {
        items.into_iter().map(|s| Tag::parse(s.as_ref())).collect::<Result<_, _>>().map(Self)
    }

    /// Whether every tag of `wanted` is present.
    pub fn contains_all(&self, wanted: &[Tag]) -> bool {
        wanted.iter().all(|t| self.0.contains(t))
    }

    /// The tags as a JSON array of strings, sorted.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into())
    }
}

/// A document to write: `put` replaces content, metadata and tags as a whole.
#[derive(Debug)]
pub struct NewDocument {
    /// Its key.
    pub key: DocKey,
    /// Its content.
    pub content: Content,
    /// Its metadata.
    pub metadata: Metadata,
    /// Its tags.
    pub tags: Tags,
}

/// A document's stored description: everything but the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentMeta {
    /// The collection it belongs to.
    pub collection: CollectionName,
    /// Its key.
    pub key: DocKey,
    /// The SHA-256 of its content.
    pub content_hash: ContentHash,
    /// Its content's length in bytes.
    pub size: u64,
    /// Its metadata.
    pub metadata: Metadata,
    /// Its tags.
    pub tags: Tags,
    /// Its version.
    pub version: Version,
    /// When it was first written.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// What a put did to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PutStatus {
    /// It did not exist.
    Created,
    /// It existed and something (content, metadata or tags) changed; the version went up.
    Updated,
    /// It existed with the same content, metadata and tags; nothing was written.
    Unchanged,
}

/// The outcome of putting one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutOutcome {
    /// The document's key.
    pub key: DocKey,
    /// What happened.
    pub status: PutStatus,
    /// Its version after the put.
    pub version: Version,
    /// Its content hash.
    pub content_hash: ContentHash,
    /// Its size in bytes.
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[test]
    fn metadata_with_a_repeated_key_is_refused() {
        for bad in [r#"{"a":1,"a":2}"#, r#"{"n":{"b":1,"b":2}}"#, r#"{"l":[{"c":1,"c":1}]}"#] {
            let e = Metadata::parse_json(bad).unwrap_err();
            assert!(e.reason.contains("more than once"), "{bad}: {e}");
        }
        let e = Metadata::parse_json(r#"{"a":1,"a":2}"#).unwrap_err();
        assert!(e.reason.starts_with("the key \"a\" is given"), "{e}");
        assert_eq!(Metadata::parse_json(r#"{"a":1,"b":{"a":2}}"#).unwrap().0.len(), 2, "the same key in another object is fine");
        assert!(Metadata::parse_json("[1]").unwrap_err().reason.contains("JSON object"));
        assert!(Metadata::parse_json("{").unwrap_err().reason.contains("not valid JSON"));
    }

    async fn drain(s: ContentStream) -> (Vec<u8>, Option<String>) {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    fn parts(p: &[&'static [u8]]) -> ContentStream {
        futures::stream::iter(p.iter().map(|b| Ok(Bytes::from_static(b))).collect::<Vec<_>>()).boxed()
    }

    #[tokio::test]
    async fn checked_content_passes_the_recorded_bytes_and_flags_others() {
        let key = DocKey::parse("a.md").unwrap();
        let good = checked_content(parts(&[b"hello ", b"world"]), key.clone(), ContentHash::of(b"hello world"), 11);
        assert_eq!(drain(good).await, (b"hello world".to_vec(), None));

        let edited = checked_content(parts(&[b"hello there"]), key.clone(), ContentHash::of(b"hello world"), 11);
        let (_, err) = drain(edited).await;
        assert!(err.unwrap().contains("changed outside colstore since the last reconcile"));

        let short = checked_content(parts(&[b"hello"]), key, ContentHash::of(b"hello world"), 11);
        assert!(drain(short).await.1.is_some(), "a truncated file is an error too");
    }

    #[tokio::test]
    async fn an_edit_is_told_from_a_failed_read() {
        let key = DocKey::parse("a.md").unwrap();
        let mut edited = checked_content(parts(&[b"hello there"]), key.clone(), ContentHash::of(b"hello world"), 11);
        assert_eq!(edited.next().await.unwrap().unwrap(), Bytes::from_static(b"hello there"), "the current bytes pass first");
        let err = edited.next().await.unwrap().unwrap_err();
        assert_eq!(ContentChanged::of(&err), Some(&ContentChanged { key }));
        assert!(ContentChanged::of(&std::io::Error::other("disk on fire")).is_none());
    }
}
