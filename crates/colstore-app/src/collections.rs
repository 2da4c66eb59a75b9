//! `col collection create` (and `col add --create`): a new collection with its settings; `col collection set`'s search
//! fusion settings.

use colstore_domain::ports::{CollectionRepo, RepoError};
use colstore_domain::{
    ChunkingSettings, Collection, CollectionName, CollectionSettings, CollectionSpec, Distance, EmbedderId, VectorSettings,
};

/// Creates `name` with `chunking` (the default when `None`) and, when a `distance` is chosen, vector settings for the
/// store's embedder (`embedder`, which the caller knows from the store's configuration); without a distance the
/// collection gets its vector settings at its first sync. `index` names the vector index it projects into (a canonical
/// target, see [`IndexRouter::canonical`](colstore_domain::ports::IndexRouter::canonical)) when not the store's default.
///
/// # Errors
/// `CollectionExists`, or a store failure.
pub async fn create_collection(
    repo: &dyn CollectionRepo,
    name: CollectionName,
    chunking: Option<ChunkingSettings>,
    vectors: Option<(EmbedderId, Distance)>,
    index: Option<String>,
) -> Result<Collection, RepoError> {
    let settings = CollectionSettings {
        chunking: chunking.unwrap_or_default(),
        vectors: vectors.map(|(embedder, distance)| VectorSettings { embedder, distance }),
        index,
        fusion: None,
        indexed_fields: Vec::new(),
    };
    repo.create_collection(CollectionSpec { name, settings }).await
}

/// What `col collection set --rrf-k/--keyword-weight/--vector-weight/--default-fusion` asks for: values to change
/// (the others kept from the collection's fusion, or its embedder's defaults), or back to the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FusionChange {
    /// The new rank constant.
    pub rrf_k: Option<u32>,
    /// The new keyword weight.
    pub keyword_weight: Option<f64>,
    /// The new vector weight.
    pub vector_weight: Option<f64>,
    /// Forget the collection's own fusion: use its embedder's defaults again.
    pub reset: bool,
}

/// Why [`change_fusion`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum FusionError {
    /// A value out of range.
    #[error(transparent)]
    Invalid(#[from] colstore_domain::ValidationError),
    /// The store.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Changes how hybrid search fuses keyword and vector ranks in `collection`; nothing is re-indexed (fusion happens at
/// query time). Returns the collection as it is now.
///
/// # Errors
/// `Invalid` for a value out of range (nothing changed), or a store failure.
pub async fn change_fusion(
    repo: &dyn CollectionRepo,
    collection: &CollectionName,
    change: FusionChange,
) -> Result<Collection, FusionError> {
    let c = repo.collection(collection).await?;
    let mut settings = c.settings.clone();
    settings.fusion = if change.reset {
        None
    } else {
        let kind = settings.vectors.as_ref().map(|v| v.embedder.kind.as_str());
        let base = settings.fusion.unwrap_or_else(|| colstore_domain::FusionSettings::default_for(kind));
        Some(colstore_domain::FusionSettings::new(
            change.rrf_k.unwrap_or(base.rrf_k()),
            change.keyword_weight.unwrap_or(base.keyword_weight()),
            change.vector_weight.unwrap_or(base.vector_weight()),
        )?)
    };
    Ok(repo.update_settings(collection, settings).await?)
}

/// What [`index_field`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexChange {
    /// The field is indexed now (its values of every document were indexed in the same transaction).
    Added,
    /// The field was indexed already: nothing changed.
    AlreadyIndexed,
    /// The field's index was dropped.
    Dropped,
    /// The field was not indexed: nothing changed.
    NotIndexed,
}

/// `col collection index NAME FIELD [--drop]`: indexes a metadata field for `--where` filters (or drops its index).
/// Only speed changes: a filter gives the same documents either way. Returns the collection and what changed.
///
/// # Errors
/// `CollectionNotFound`, or a store failure.
pub async fn index_field(
    repo: &dyn CollectionRepo,
    collection: &CollectionName,
    field: &colstore_domain::FieldPath,
    drop: bool,
) -> Result<(Collection, IndexChange), RepoError> {
    let c = repo.collection(collection).await?;
    let mut settings = c.settings.clone();
    let present = settings.indexed_fields.contains(field);
    let change = match (drop, present) {
        (false, true) => return Ok((c, IndexChange::AlreadyIndexed)),
        (true, false) => return Ok((c, IndexChange::NotIndexed)),
        (false, false) => {
            settings.indexed_fields.push(field.clone());
            settings.indexed_fields.sort();
            IndexChange::Added
        }
        (true, true) => {
            settings.indexed_fields.retain(|f| f != field);
            IndexChange::Dropped
        }
    };
    Ok((repo.update_settings(collection, settings).await?, change))
}
