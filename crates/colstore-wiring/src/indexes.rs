//! The vector indexes a store projects into: its default (`[vectors]`) and any a collection names
//! ([`CollectionSettings::index`](colstore_domain::CollectionSettings::index), set by `col collection create --vectors`
//! and `col reindex --to`). One [`IndexRouter`] per opened store builds each index once and shares it, so the embedded
//! index is never opened twice in one process.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{Clock, ForeignCollection, IndexError, IndexRouter, VectorIndex};
use colstore_embedded::EmbeddedIndex;

use crate::{VectorBackend, VectorsConfig};

/// The API keys of the remote engines, by the variable they came from; `Debug` never shows them.
#[derive(Clone, Default)]
pub(crate) struct ApiKeys(HashMap<String, String>);

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Reads, through `env`, every API key a store's targets may need: the variable `[vectors]` names and each backend's
/// own (`QDRANT_API_KEY`, `WEAVIATE_API_KEY`), so nothing later depends on the environment.
pub(crate) fn read_keys(default: &VectorsConfig, env: &dyn Fn(&str) -> Option<String>) -> ApiKeys {
    let names = default.key_env().into_iter().chain(VectorBackend::ALL.iter().filter_map(|b| b.default_key_env()));
    ApiKeys(names.filter_map(|name| env(name).filter(|k| !k.is_empty()).map(|k| (name.to_owned(), k))).collect())
}

/// Every index target a store may use, built on first use.
pub(crate) struct StoreIndexes {
    /// The store's default: `[vectors]` after the environment overrides.
    default: VectorsConfig,
    /// API keys read at open, by the variable they came from (never shown).
    keys: HashMap<String, String>,
    embedded_path: PathBuf,
    read_only: bool,
    clock: Arc<dyn Clock>,
    built: tokio::sync::Mutex<HashMap<String, Arc<dyn VectorIndex>>>,
    /// The embedded index, once built, so [`StoreIndexes::close`] can checkpoint and close it.
    embedded: std::sync::Mutex<Option<EmbeddedIndex>>,
}

impl fmt::Debug for StoreIndexes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreIndexes").field("default", &self.default.target()).finish_non_exhaustive()
    }
}

impl StoreIndexes {
    /// The indexes of a store whose default is `default`, with the API keys [`read_keys`] found.
    pub(crate) fn new(default: VectorsConfig, keys: ApiKeys, embedded_path: PathBuf, read_only: bool, clock: Arc<dyn Clock>) -> Self {
        Self {
            default,
            keys: keys.0,
            embedded_path,
            read_only,
            clock,
            built: tokio::sync::Mutex::new(HashMap::new()),
            embedded: std::sync::Mutex::default(),
        }
    }

    /// The default target's API key (`api_key_env`, else the backend's variable).
    pub(crate) fn default_key(&self) -> Option<String> {
        self.default.key_env().and_then(|name| self.keys.get(name).cloned())
    }

    /// Builds the index `v` describes; `api_key` for a remote engine.
    async fn build(&self, v: &VectorsConfig, api_key: Option<String>) -> Result<Arc<dyn VectorIndex>, IndexError> {
        match v.backend {
            VectorBackend::Embedded => {
                let index = if self.read_only {
                    EmbeddedIndex::open_read_only(&self.embedded_path).await?
                } else {
                    EmbeddedIndex::open(&self.embedded_path).await?
                };
                *self.embedded.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(index.clone());
                Ok(Arc::new(index))
            }
            VectorBackend::Qdrant | VectorBackend::Weaviate => {
                let url =
                    v.url.clone().ok_or_else(|| router_error(format!("[vectors] backend = \"{}\" needs the server's url", v.backend)))?;
                crate::adapters::remote_index(v.backend, url, api_key, self.clock.clone())
            }
        }
    }
}

impl StoreIndexes {
    /// Checkpoints the embedded index's write-ahead log and closes its connections, if this store opened it. Without
    /// it, a process that ends before its pool's connections are closed leaves the log behind, and a reader that may
    /// not write (a read-only store) cannot open the index then.
    pub(crate) async fn close(&self) {
        let embedded = self.embedded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(index) = embedded {
            index.close().await;
        }
    }

    /// The collection `source` names in a remote engine (`qdrant://HOST:6333/NAME`, `weaviate://HOST:8080/Class`,
    /// `+https` for TLS), to be adopted by `col import`. Its API key is the backend's variable (`QDRANT_API_KEY`,
    /// `WEAVIATE_API_KEY`), or the one `[vectors]` names when the store's default is that backend.
    ///
    /// # Errors
    /// `IndexError::Backend` (backend `config`) for a source that is not such a URL, names no collection, or names
    /// the embedded index; the adapter's errors for an unusable URL or name.
    pub(crate) fn foreign(&self, source: &str) -> Result<Arc<dyn ForeignCollection>, IndexError> {
        let forms = "write qdrant://HOST:6333/COLLECTION or weaviate://HOST:8080/Class (qdrant+https://, weaviate+https:// for TLS)";
        let trimmed = source.trim().trim_end_matches('/');
        let Some((server, name)) = trimmed.rsplit_once('/').filter(|(server, _)| !server.ends_with('/') && server.contains("://")) else {
            return Err(router_error(format!("{source:?} names no collection; {forms}")));
        };
        let v = VectorsConfig::from_target(server).map_err(|e| router_error(format!("{e}; {forms}")))?;
        let url = v.url.clone().ok_or_else(|| router_error(format!("{source:?} is not a remote engine; {forms}")))?;
        let key_env = if v.backend == self.default.backend { self.default.key_env() } else { v.key_env() };
        let key = key_env.and_then(|name| self.keys.get(name).cloned());
        crate::adapters::foreign_collection(v.backend, url, name, key, self.clock.clone())
    }
}

fn router_error(message: String) -> IndexError {
    IndexError::Backend { backend: "config", source: message.into() }
}

#[async_trait]
impl IndexRouter for StoreIndexes {
    fn default_target(&self) -> String {
        self.default.target()
    }

    fn canonical(&self, target: &str) -> Result<String, IndexError> {
        VectorsConfig::from_target(target).map(|v| v.target()).map_err(router_error)
    }

    async fn route(&self, target: Option<String>) -> Result<Arc<dyn VectorIndex>, IndexError> {
        let default = self.default.target();
        let (name, config, key) = match target {
            Some(t) if t != default => {
                let v = VectorsConfig::from_target(&t).map_err(router_error)?;
                let key = v.key_env().and_then(|name| self.keys.get(name).cloned());
                (v.target(), v, key)
            }
            _ => (default, self.default.clone(), self.default_key()),
        };
        let mut built = self.built.lock().await;
        if let Some(index) = built.get(&name) {
            return Ok(index.clone());
        }
        let index = self.build(&config, key).await?;
        built.insert(name, index.clone());
        Ok(index)
    }
}
