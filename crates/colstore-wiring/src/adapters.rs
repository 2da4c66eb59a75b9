//! The adapters a store's configuration selects for sync: the job queue, the ledger and cache, the vector index and
//! the embedder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use colstore_domain::RetryPolicy;
use colstore_domain::ports::{Embedder, ForeignCollection, JobQueue, SyncStore, VectorIndex};
use colstore_embed::{HashEmbedder, OpenAiConfig, OpenAiEmbedder};
use colstore_qdrant::{QdrantConfig, QdrantForeign, QdrantIndex};
use colstore_weaviate::{WeaviateConfig, WeaviateForeign, WeaviateIndex};

use crate::{EmbedderKind, Store, VectorBackend, WiringError};

/// The default base URL of the OpenAI embeddings API.
pub const OPENAI_DEFAULT_URL: &str = "https://api.openai.com/v1";

/// The variable read for the API key when `embedder.api_key_env` is not set.
pub const OPENAI_DEFAULT_KEY_ENV: &str = "OPENAI_API_KEY";

impl Store {
    /// The bundle of ports the sync use cases need (repository, ledger and cache, vector index, embedder, store id),
    /// built from the store's configuration: what both shells hand to `colstore_app`, so neither assembles ports.
    ///
    /// # Errors
    /// As [`index`](Self::index) and [`embedder`](Self::embedder).
    pub async fn sync_ports(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<colstore_app::SyncPorts, WiringError> {
        Ok(colstore_app::SyncPorts {
            repo: self.repo().clone(),
            ledger: self.sync_store(),
            index: self.index().await?,
            router: self.indexes(),
            embedder: self.embedder(env)?,
            text: self.text(),
            store_id: self.store_id(),
        })
    }

    /// The durable job queue in the store's database.
    pub fn queue(&self) -> Arc<dyn JobQueue> {
        Arc::new(self.sqlite().clone())
    }

    /// The sync ledger and embedding cache in the store's database.
    pub fn sync_store(&self) -> Arc<dyn SyncStore> {
        Arc::new(self.sqlite().clone())
    }

    /// Where the embedded vector index lives.
    pub fn embedded_index_path(&self) -> PathBuf {
        self.dir().root().join("index").join("embedded.db")
    }

    /// The vector index `[vectors]` selects (after the environment overrides): the store's default, which every
    /// collection without a target of its own projects into. A remote engine's API key was read at open from the
    /// variable [`VectorsConfig::key_env`](crate::VectorsConfig::key_env) names.
    ///
    /// Building a remote index sends nothing: an unreachable server shows in `health` (`col status`) and as retried,
    /// then failed, requests in `col sync`.
    ///
    /// # Errors
    /// [`WiringError::Config`] when a remote backend has no URL; [`WiringError::Index`] when the embedded index cannot
    /// be opened or a remote client cannot be built (a malformed URL or key).
    pub async fn index(&self) -> Result<Arc<dyn VectorIndex>, WiringError> {
        let v = &self.config().vectors;
        if v.backend != VectorBackend::Embedded && v.url.is_none() {
            return Err(WiringError::Config {
                path: self.dir().config_path(),
                line: 0,
                column: 0,
                message: format!("[vectors] backend = \"{}\" needs the server's url", v.backend),
                fix: Some(crate::ConfigFix::VectorsUrl { backend: v.backend }),
            });
        }
        Ok(self.indexes().route(None).await?)
    }

    /// The embedder `[embedder]` selects, with its API key read from the environment through `env`.
    ///
    /// # Errors
    /// [`WiringError::Config`]-style errors for an incomplete `openai` section; [`WiringError::Embedder`] when the
    /// embedder cannot be built.
    pub fn embedder(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn Embedder>, WiringError> {
        let e = &self.config().embedder;
        match e.kind {
            EmbedderKind::Hash => Ok(Arc::new(HashEmbedder::new(e.dimension))),
            EmbedderKind::Openai => {
                let Some(model) = e.model.clone() else {
                    return Err(WiringError::Config {
                        path: self.dir().config_path(),
                        line: 0,
                        column: 0,
                        message: "[embedder] kind = \"openai\" needs a model".into(),
                        fix: Some(crate::ConfigFix::EmbedderModel),
                    });
                };
                let key_env = e.api_key_env.clone().unwrap_or_else(|| OPENAI_DEFAULT_KEY_ENV.to_owned());
                let config = OpenAiConfig {
                    base_url: e.url.clone().unwrap_or_else(|| OPENAI_DEFAULT_URL.to_owned()),
                    model,
                    dimension: e.dimension,
                    api_key: env(&key_env),
                    timeout: Duration::from_secs(60),
                    max_batch: 64,
                    retry: RetryPolicy::default(),
                    send_dimensions: false,
                };
                Ok(Arc::new(OpenAiEmbedder::new(config, self.clock().clone())?))
            }
        }
    }
}

/// A Qdrant or Weaviate index at `url`.
///
/// # Errors
/// When its client cannot be built (a malformed URL or key).
pub(crate) fn remote_index(
    backend: VectorBackend,
    url: String,
    api_key: Option<String>,
    clock: Arc<dyn colstore_domain::ports::Clock>,
) -> Result<Arc<dyn VectorIndex>, colstore_domain::ports::IndexError> {
    match backend {
        VectorBackend::Qdrant => Ok(Arc::new(QdrantIndex::new(QdrantConfig { api_key, ..QdrantConfig::new(url) }, clock)?)),
        VectorBackend::Weaviate => Ok(Arc::new(WeaviateIndex::new(WeaviateConfig { api_key, ..WeaviateConfig::new(url) }, clock)?)),
        VectorBackend::Embedded => Err(colstore_domain::ports::IndexError::Backend {
            backend: "config",
            source: "the embedded index is not a remote engine".into(),
        }),
    }
}

/// Collection `name` of the Qdrant or Weaviate server at `url`, to adopt.
///
/// # Errors
/// When its client cannot be built (a malformed URL, key or name).
pub(crate) fn foreign_collection(
    backend: VectorBackend,
    url: String,
    name: &str,
    api_key: Option<String>,
    clock: Arc<dyn colstore_domain::ports::Clock>,
) -> Result<Arc<dyn ForeignCollection>, colstore_domain::ports::IndexError> {
    match backend {
        VectorBackend::Qdrant => Ok(Arc::new(QdrantForeign::new(QdrantConfig { api_key, ..QdrantConfig::new(url) }, name, clock)?)),
        VectorBackend::Weaviate => {
            Ok(Arc::new(WeaviateForeign::new(&WeaviateConfig { api_key, ..WeaviateConfig::new(url) }, name, clock)?))
        }
        VectorBackend::Embedded => Err(colstore_domain::ports::IndexError::Backend {
            backend: "config",
            source: "the embedded index is not a remote engine".into(),
        }),
    }
}
