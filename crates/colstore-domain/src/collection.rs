//! Collections and their settings.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CollectionName, Timestamp, ValidationError};

/// A vector dimension: 1 to 65 536.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Dimension(u32);

impl Dimension {
    /// Validates a dimension.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] outside 1..=65536.
    pub fn new(d: u32) -> Result<Self, ValidationError> {
        if (1..=65_536).contains(&d) {
            Ok(Self(d))
        } else {
            Err(ValidationError::new("dimension", &d.to_string(), "it must be between 1 and 65536"))
        }
    }

    /// The dimension as a number.
    pub fn get(&self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Dimension {
    type Error = ValidationError;
    fn try_from(d: u32) -> Result<Self, Self::Error> {
        Self::new(d)
    }
}

impl From<Dimension> for u32 {
    fn from(d: Dimension) -> Self {
        d.0
    }
}

/// How vectors are compared. Each backend maps these to its own names
/// (Qdrant `Cosine|Dot|Euclid`, Weaviate `cosine|dot|l2-squared`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// Cosine similarity (vectors are normalised); higher scores are closer.
    #[default]
    Cosine,
    /// Dot product; higher scores are closer.
    Dot,
    /// Euclidean distance; lower distances are closer (scores are reported negated so higher is closer).
    Euclid,
}

impl Distance {
    /// Parses `cosine`, `dot` or `euclid` (case-insensitive).
    ///
    /// # Errors
    /// Returns a [`ValidationError`] listing the choices.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" => Ok(Self::Cosine),
            "dot" => Ok(Self::Dot),
            "euclid" | "euclidean" | "l2" => Ok(Self::Euclid),
            _ => Err(ValidationError::new("distance", s, "choose cosine, dot or euclid")),
        }
    }
}

impl fmt::Display for Distance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cosine => "cosine",
            Self::Dot => "dot",
            Self::Euclid => "euclid",
        })
    }
}

/// Which embedder produced a vector: the key of the embedding cache together with the chunk hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmbedderId {
    /// `hash`, `openai`, `user` (vectors supplied by the user), ...
    pub kind: String,
    /// The model name (for `hash`, the algorithm version, e.g. `v1`).
    pub model: String,
    /// The vectors' dimension.
    pub dimension: Dimension,
}

impl fmt::Display for EmbedderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.model.is_empty() {
            write!(f, "{}/{}", self.kind, self.dimension.get())
        } else {
            write!(f, "{}:{}/{}", self.kind, self.model, self.dimension.get())
        }
    }
}

/// A collection's vector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorSettings {
    /// The embedder (and so the dimension) used for this collection.
    pub embedder: EmbedderId,
    /// The distance function.
    pub distance: Distance,
}

/// How document text is cut into chunks. Same text + same settings ⇒ same chunks.
///
/// Always valid: the only ways to make one are [`ChunkingSettings::new`] and deserialisation, which goes through it,
/// so settings read from an import file, a backup's manifest or the database pass the same check as
/// `col collection create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawChunking", into = "RawChunking")]
pub struct ChunkingSettings {
    max_chars: u32,
    overlap_chars: u32,
}

/// The serialised form of [`ChunkingSettings`], checked on the way in.
#[derive(Serialize, Deserialize)]
struct RawChunking {
    max_chars: u32,
    overlap_chars: u32,
}

impl TryFrom<RawChunking> for ChunkingSettings {
    type Error = ValidationError;
    fn try_from(r: RawChunking) -> Result<Self, Self::Error> {
        Self::new(r.max_chars, r.overlap_chars)
    }
}

impl From<ChunkingSettings> for RawChunking {
    fn from(c: ChunkingSettings) -> Self {
        Self { max_chars: c.max_chars, overlap_chars: c.overlap_chars }
    }
}

impl Default for ChunkingSettings {
    fn default() -> Self {
        Self { max_chars: 1200, overlap_chars: 200 }
    }
}

impl ChunkingSettings {
    /// Validates the pair.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] when `max_chars` is 0 or the overlap is not smaller than it.
    pub fn new(max_chars: u32, overlap_chars: u32) -> Result<Self, ValidationError> {
        if max_chars == 0 || overlap_chars >= max_chars {
            return Err(ValidationError::new(
                "chunking",
                &format!("{max_chars}/{overlap_chars}"),
                "chunk size must be positive and larger than the overlap",
            ));
        }
        Ok(Self { max_chars, overlap_chars })
    }

    /// One chunk per document, whatever its length: what `col import` gives a collection adopted from a remote
    /// engine, where each object was embedded whole and its vector is exactly one chunk.
    pub const WHOLE_DOCUMENT: Self = Self { max_chars: u32::MAX, overlap_chars: 0 };

    /// Whether every document is one chunk ([`WHOLE_DOCUMENT`](Self::WHOLE_DOCUMENT)).
    pub fn is_whole_document(&self) -> bool {
        self.max_chars == u32::MAX
    }

    /// Target chunk size in characters (above 0).
    pub fn max_chars(&self) -> u32 {
        self.max_chars
    }

    /// Characters shared by consecutive chunks (below [`max_chars`](Self::max_chars)).
    pub fn overlap_chars(&self) -> u32 {
        self.overlap_chars
    }
}

impl fmt::Display for ChunkingSettings {
    /// `1200 characters, 200 overlap`, or `whole documents`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_whole_document() {
            f.write_str("whole documents (one chunk each)")
        } else {
            write!(f, "{} characters, {} overlap", self.max_chars, self.overlap_chars)
        }
    }
}

/// Everything configurable about a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CollectionSettings {
    /// Vector settings; `None` until the collection is synced to an index.
    pub vectors: Option<VectorSettings>,
    /// Chunking settings.
    pub chunking: ChunkingSettings,
    /// The vector index this collection projects into, as a target string (`embedded`, `qdrant://HOST:PORT`,
    /// `weaviate+https://HOST:PORT`), or `None` for the store's default index (`[vectors]` in its config). Set by
    /// `col collection create --vectors` and switched by `col reindex --to` once the new projection is verified. The
    /// domain treats it as an opaque name; an [`IndexRouter`](crate::ports::IndexRouter) resolves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// How hybrid search fuses keyword and vector ranks in this collection; `None` for the defaults of its embedder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion: Option<FusionSettings>,
    /// Metadata fields the store indexes for `--where` (`col collection index NAME FIELD`), sorted, no duplicates.
    /// Only speed depends on it: a filter on a field that is not indexed gives the same documents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexed_fields: Vec<crate::FieldPath>,
}

/// Reciprocal rank fusion settings: a chunk scores `keyword_weight / (rrf_k + keyword rank) + vector_weight /
/// (rrf_k + vector rank)` over the sides that found it. Weights are kept in thousandths, so settings compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawFusion", into = "RawFusion")]
pub struct FusionSettings {
    rrf_k: u32,
    keyword_permille: u32,
    vector_permille: u32,
}

#[derive(Serialize, Deserialize)]
struct RawFusion {
    rrf_k: u32,
    keyword_weight: f64,
    vector_weight: f64,
}

impl TryFrom<RawFusion> for FusionSettings {
    type Error = ValidationError;
    fn try_from(r: RawFusion) -> Result<Self, Self::Error> {
        Self::new(r.rrf_k, r.keyword_weight, r.vector_weight)
    }
}

impl From<FusionSettings> for RawFusion {
    fn from(f: FusionSettings) -> Self {
        Self { rrf_k: f.rrf_k, keyword_weight: f.keyword_weight(), vector_weight: f.vector_weight() }
    }
}

impl FusionSettings {
    /// Validates the settings: `rrf_k` from 0 to 10 000, weights from 0 to 100 (to a thousandth), not both 0.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the value out of range.
    pub fn new(rrf_k: u32, keyword_weight: f64, vector_weight: f64) -> Result<Self, ValidationError> {
        if rrf_k > 10_000 {
            return Err(ValidationError::new("fusion setting", &rrf_k.to_string(), "rrf_k goes from 0 to 10000 (60 is usual)"));
        }
        let permille = |w: f64, what: &str| {
            if w.is_finite() && (0.0..=100.0).contains(&w) {
                Ok((w * 1000.0).round() as u32)
            } else {
                Err(ValidationError::new("fusion setting", &w.to_string(), format!("the {what} weight goes from 0 to 100")))
            }
        };
        let (keyword_permille, vector_permille) = (permille(keyword_weight, "keyword")?, permille(vector_weight, "vector")?);
        if keyword_permille == 0 && vector_permille == 0 {
            return Err(ValidationError::new("fusion setting", "0", "the keyword and vector weights cannot both be 0"));
        }
        Ok(Self { rrf_k, keyword_permille, vector_permille })
    }

    /// The rank constant.
    pub fn rrf_k(&self) -> u32 {
        self.rrf_k
    }

    /// The keyword side's weight.
    pub fn keyword_weight(&self) -> f64 {
        f64::from(self.keyword_permille) / 1000.0
    }

    /// The vector side's weight.
    pub fn vector_weight(&self) -> f64 {
        f64::from(self.vector_permille) / 1000.0
    }

    /// The defaults for a collection whose vectors come from an embedder of `kind` (`None`: not synced yet). The
    /// built-in `hash` embedder compares words, as keyword search does but less precisely, so its side gets a small
    /// weight and ranks count more (a small `rrf_k`); a semantic embedder finds what keywords miss and gets an equal say.
    pub fn default_for(embedder_kind: Option<&str>) -> Self {
        match embedder_kind {
            Some("hash") | None => Self { rrf_k: 10, keyword_permille: 1000, vector_permille: 100 },
            Some(_) => Self { rrf_k: 60, keyword_permille: 1000, vector_permille: 1000 },
        }
    }
}

impl fmt::Display for FusionSettings {
    /// `rrf_k 60, keyword weight 1, vector weight 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rrf_k {}, keyword weight {}, vector weight {}", self.rrf_k, self.keyword_weight(), self.vector_weight())
    }
}

/// What it takes to create a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSpec {
    /// The new collection's name.
    pub name: CollectionName,
    /// Its settings.
    pub settings: CollectionSettings,
}

/// A collection as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    /// Its name.
    pub name: CollectionName,
    /// Its settings.
    pub settings: CollectionSettings,
    /// When it was created.
    pub created_at: Timestamp,
    /// How many documents it holds now.
    pub document_count: u64,
    /// The sum of its documents' sizes, in bytes.
    pub logical_bytes: u64,
}
