//! `col collection create` (and `col add --create`): a new collection with its settings.

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
    };
    repo.create_collection(CollectionSpec { name, settings }).await
}
