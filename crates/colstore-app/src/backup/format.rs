//! The backup repository's formats: the manifest (JSON), document and ledger records (JSON lines), pack indexes and
//! vector blobs (little-endian binary). Pure data and codecs; no I/O.
//!
//! A repository holds two kinds of objects, both content-addressed by the SHA-256 of their bytes and stored
//! compressed by the [`BackupStore`](colstore_domain::ports::BackupStore):
//! - **packs**: blobs laid end to end (document contents, vector blobs, record chunks), about [`PACK_TARGET`] each;
//! - **pack indexes**: for every blob of the packs one backup wrote, where it lives (pack, offset, length).
//!
//! A blob is named by the SHA-256 of its own bytes, so an unchanged document (or record chunk, or set of vectors) is
//! stored once, whatever the number of backups that contain it. A manifest, written last, names the indexes and packs
//! a backup needs and, per collection, its settings, counts and record chunks.

use colstore_domain::ports::{BackupId, LedgerEntry};
use colstore_domain::{CollectionName, CollectionSettings, ContentHash, DocKey, Metadata, StoreId, Tags, Timestamp, Vector};
use serde::{Deserialize, Serialize};

/// The manifest's `format` field.
pub const FORMAT: &str = "colstore-backup";
/// The newest manifest version this build reads (and writes when a backup holds a document in [`DocRecord::parts`]);
/// it refuses newer ones.
pub const VERSION: u32 = 2;
/// The version written when no document is in parts: what builds before parts read.
pub const VERSION_WITHOUT_PARTS: u32 = 1;
/// A document larger than this is read as a stream and stored as blobs of [`PIECE`] bytes ([`DocRecord::parts`]), so
/// a backup or restore of a document of any size holds a few of its pieces in memory, never the whole of it.
pub const LARGE_CONTENT: u64 = 32 * 1024 * 1024;
/// The size of the pieces of a large document (the last one may be shorter).
pub const PIECE: usize = 4 * 1024 * 1024;
/// Packs are cut once they reach this many bytes (a single larger blob makes a larger pack).
pub const PACK_TARGET: usize = 8 * 1024 * 1024;
/// Record chunks are cut after a record whose key hash falls under this fraction of `u16::MAX` (about 1 in 32), so
/// a change moves only its own chunk's boundaries, or once they reach [`RECORD_CHUNK_MAX`] bytes. Small chunks keep
/// what a few scattered changes rewrite small (1 % of documents changed touches about a quarter of the chunks).
pub const RECORD_CUT: u16 = u16::MAX / 32;
/// The largest record chunk.
pub const RECORD_CHUNK_MAX: usize = 1024 * 1024;

const INDEX_MAGIC: &[u8; 8] = b"CSIDX01\n";
const VECTORS_MAGIC: &[u8; 8] = b"CSVEC01\n";
const INDEX_ENTRY: usize = 32 + 32 + 8 + 8;

/// What a backup covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Scope {
    /// The collections named with `--collection`; `None` means all.
    pub collections: Option<Vec<CollectionName>>,
    /// Only collection definitions and settings: no documents, vectors or ledger.
    pub schema_only: bool,
}

/// Figures about one backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BackupStats {
    /// Documents in the backup.
    pub documents: u64,
    /// Their logical bytes.
    pub logical_bytes: u64,
    /// Blobs the backup references (contents, vectors, records).
    pub blobs: u64,
    /// Bytes of those blobs (uncompressed).
    pub blob_bytes: u64,
    /// Blobs this backup stored that no earlier backup had.
    pub new_blobs: u64,
    /// Their bytes (uncompressed).
    pub new_blob_bytes: u64,
    /// Objects (packs and indexes) this backup wrote.
    pub new_objects: u64,
    /// Bytes of those objects before compression.
    pub new_object_bytes: u64,
}

/// One collection in a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionEntry {
    /// Its name.
    pub name: CollectionName,
    /// Its settings (embedder, distance, chunking).
    pub settings: CollectionSettings,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its documents.
    pub documents: u64,
    /// Their logical bytes.
    pub bytes: u64,
    /// Chunk vectors included.
    pub vectors: u64,
    /// Ledger rows included.
    pub ledger_rows: u64,
    /// The record chunks of its documents ([`DocRecord`] lines), in key order.
    pub document_records: Vec<ContentHash>,
    /// The record chunks of its ledger ([`LedgerEntry`] lines), in key order.
    pub ledger_records: Vec<ContentHash>,
}

/// A backup's manifest: written last, create-only. A backup without one does not exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// The backup's id.
    pub id: BackupId,
    /// When the snapshot was taken.
    pub created_at: Timestamp,
    /// Tags given with `--tag`.
    pub tags: Vec<String>,
    /// What it covers.
    pub scope: Scope,
    /// The store it was taken from (`None` in a manifest that does not name its store: an "unknown store").
    #[serde(default)]
    pub store_id: Option<StoreId>,
    /// Where that store was (the directory holding `.colstore`), for display; absent in older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_path: Option<String>,
    /// The colstore version that wrote it.
    pub tool_version: String,
    /// The store's schema version at the time.
    pub schema_version: i64,
    /// The collections, by name.
    pub collections: Vec<CollectionEntry>,
    /// The pack indexes this backup needs.
    pub indexes: Vec<ContentHash>,
    /// The packs this backup needs.
    pub packs: Vec<ContentHash>,
    /// Figures.
    pub stats: BackupStats,
}

/// Why a manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not JSON, or not a manifest.
    #[error("manifest {0} is malformed: {1}")]
    Malformed(String, String),
    /// Written by a newer colstore.
    #[error("backup {id} has format version {found}, newer than this colstore reads ({VERSION}); upgrade colstore to restore it")]
    TooNew {
        /// The backup.
        id: String,
        /// Its version.
        found: u32,
    },
    /// A binary object does not parse.
    #[error("{what} is malformed: {detail}")]
    BadObject {
        /// Which object.
        what: String,
        /// What is wrong.
        detail: String,
    },
}

impl Manifest {
    /// Encodes the manifest as pretty JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Decodes and checks a manifest: format name and version first, so a future format is named as such.
    ///
    /// # Errors
    /// [`FormatError::TooNew`] or [`FormatError::Malformed`].
    pub fn parse(id: &str, bytes: &[u8]) -> Result<Self, FormatError> {
        #[derive(Deserialize)]
        struct Head {
            format: String,
            version: u32,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(id.into(), e.to_string()))?;
        if head.format != FORMAT {
            return Err(FormatError::Malformed(id.into(), format!("format is {:?}, not {FORMAT:?}", head.format)));
        }
        if head.version > VERSION {
            return Err(FormatError::TooNew { id: id.into(), found: head.version });
        }
        serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(id.into(), e.to_string()))
    }
}

/// One document in a record chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRecord {
    /// Its key.
    pub key: DocKey,
    /// Its content's SHA-256: the content blob, unless the content is in [`parts`](Self::parts).
    pub hash: ContentHash,
    /// A content larger than [`LARGE_CONTENT`]: the blobs of its pieces in order (each [`PIECE`] bytes, the last one
    /// shorter), whose concatenation is the content. Empty: the content is the one blob [`hash`](Self::hash).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<ContentHash>,
    /// Its size.
    pub size: u64,
    /// Its metadata.
    pub metadata: Metadata,
    /// Its tags.
    pub tags: Tags,
    /// Its version.
    pub version: u64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// The blob with its chunks' vectors ([`encode_vectors`]), when the cache had them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<ContentHash>,
    /// How many chunk vectors that blob holds.
    #[serde(default)]
    pub vector_count: u32,
}

/// Whether a record chunk ends after the record with this key.
pub fn cuts_after(key: &DocKey) -> bool {
    let h = ContentHash::of(key.as_str().as_bytes());
    u16::from_le_bytes([h.as_bytes()[0], h.as_bytes()[1]]) < RECORD_CUT
}

/// Parses a record chunk of JSON lines.
///
/// # Errors
/// [`FormatError::BadObject`] naming the line.
pub fn parse_lines<T: for<'de> Deserialize<'de>>(what: &ContentHash, bytes: &[u8]) -> Result<Vec<T>, FormatError> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_slice(l).map_err(|e| FormatError::BadObject {
                what: format!("record chunk {}", what.short()),
                detail: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

/// A ledger row as stored in a record chunk (the collection is the chunk's).
pub type LedgerRecord = LedgerEntry;

/// Where a blob lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack.
    pub pack: ContentHash,
    /// Byte offset in the pack.
    pub offset: u64,
    /// Length.
    pub len: u64,
}

/// Encodes a pack index: `(blob, location)` entries.
pub fn encode_index(entries: &[(ContentHash, BlobLocation)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_MAGIC.len() + entries.len() * INDEX_ENTRY);
    out.extend_from_slice(INDEX_MAGIC);
    for (blob, loc) in entries {
        out.extend_from_slice(blob.as_bytes());
        out.extend_from_slice(loc.pack.as_bytes());
        out.extend_from_slice(&loc.offset.to_le_bytes());
        out.extend_from_slice(&loc.len.to_le_bytes());
    }
    out
}

fn array32(b: &[u8]) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[..32]);
    a
}

fn u64_at(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Decodes a pack index.
///
/// # Errors
/// [`FormatError::BadObject`] when the magic or the length is wrong.
pub fn decode_index(id: &ContentHash, bytes: &[u8]) -> Result<Vec<(ContentHash, BlobLocation)>, FormatError> {
    let bad = |detail: &str| FormatError::BadObject { what: format!("pack index {id}"), detail: detail.into() };
    let body = bytes.strip_prefix(INDEX_MAGIC.as_slice()).ok_or_else(|| bad("it does not start with the index magic"))?;
    if body.len() % INDEX_ENTRY != 0 {
        return Err(bad("its length is not a whole number of entries"));
    }
    Ok(body
        .chunks_exact(INDEX_ENTRY)
        .map(|e| {
            (
                ContentHash::from_bytes(array32(&e[..32])),
                BlobLocation { pack: ContentHash::from_bytes(array32(&e[32..64])), offset: u64_at(&e[64..72]), len: u64_at(&e[72..80]) },
            )
        })
        .collect())
}

/// Encodes a document's chunk vectors: `(chunk hash, vector)` in chunk order, all of one dimension.
pub fn encode_vectors(vectors: &[(ContentHash, Vector)]) -> Vec<u8> {
    let dim = vectors.first().map_or(0, |(_, v)| v.len());
    let mut out = Vec::with_capacity(16 + vectors.len() * (32 + dim * 4));
    out.extend_from_slice(VECTORS_MAGIC);
    out.extend_from_slice(&u32::try_from(vectors.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&u32::try_from(dim).unwrap_or(u32::MAX).to_le_bytes());
    for (h, v) in vectors {
        out.extend_from_slice(h.as_bytes());
        for x in v.iter() {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

/// Decodes a vectors blob.
///
/// # Errors
/// [`FormatError::BadObject`] when the magic or the length is wrong.
pub fn decode_vectors(id: &ContentHash, bytes: &[u8]) -> Result<Vec<(ContentHash, Vector)>, FormatError> {
    let bad = |detail: &str| FormatError::BadObject { what: format!("vectors blob {id}"), detail: detail.into() };
    let body = bytes.strip_prefix(VECTORS_MAGIC.as_slice()).ok_or_else(|| bad("it does not start with the vectors magic"))?;
    if body.len() < 8 {
        return Err(bad("it is truncated"));
    }
    let count = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let dim = u32::from_le_bytes([body[4], body[5], body[6], body[7]]) as usize;
    let entry = 32 + dim * 4;
    let body = &body[8..];
    if count.checked_mul(entry) != Some(body.len()) {
        return Err(bad("its length does not match its count and dimension"));
    }
    Ok(body
        .chunks_exact(entry)
        .map(|e| {
            let v: Vec<f32> = e[32..].chunks_exact(4).map(|f| f32::from_le_bytes([f[0], f[1], f[2], f[3]])).collect();
            (ContentHash::from_bytes(array32(&e[..32])), Vector::from(v))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips_and_rejects_damage() {
        let loc = BlobLocation { pack: ContentHash::of(b"p"), offset: 7, len: 9 };
        let entries = vec![(ContentHash::of(b"a"), loc), (ContentHash::of(b"b"), BlobLocation { offset: 16, ..loc })];
        let bytes = encode_index(&entries);
        let id = ContentHash::of(&bytes);
        assert_eq!(decode_index(&id, &bytes).unwrap(), entries);
        assert!(decode_index(&id, &bytes[..bytes.len() - 1]).is_err());
        assert!(decode_index(&id, b"garbage").is_err());
    }

    #[test]
    fn vectors_round_trip_and_reject_damage() {
        let v = vec![
            (ContentHash::of(b"c0"), Vector::from(vec![0.5f32, -1.0, 2.0])),
            (ContentHash::of(b"c1"), Vector::from(vec![1.0f32, 0.0, 0.25])),
        ];
        let bytes = encode_vectors(&v);
        let id = ContentHash::of(&bytes);
        assert_eq!(decode_vectors(&id, &bytes).unwrap(), v);
        assert!(decode_vectors(&id, &bytes[..bytes.len() - 2]).is_err());
    }

    #[test]
    fn a_future_manifest_is_named_as_such() {
        let e = Manifest::parse("x", br#"{"format":"colstore-backup","version":99}"#).unwrap_err();
        assert!(matches!(e, FormatError::TooNew { found: 99, .. }), "{e}");
        let e = Manifest::parse("x", br#"{"format":"other","version":1}"#).unwrap_err();
        assert!(e.to_string().contains("not \"colstore-backup\""), "{e}");
        assert!(Manifest::parse("x", b"{").is_err());
    }

    #[test]
    fn a_manifest_without_a_store_is_of_an_unknown_store() {
        let m =
            br#"{"format":"colstore-backup","version":1,"id":"20250101T000000Z-00000000","created_at":"2025-01-01T00:00:00.000Z","tags":[],
            "scope":{"collections":null,"schema_only":false},"tool_version":"0.0.0","schema_version":3,"collections":[],
            "indexes":[],"packs":[],"stats":{"documents":0,"logical_bytes":0,"blobs":0,"blob_bytes":0,"new_blobs":0,
            "new_blob_bytes":0,"new_objects":0,"new_object_bytes":0}}"#;
        let m = Manifest::parse("x", m).unwrap();
        assert_eq!((m.store_id, m.store_path), (None, None));
    }
}
