//! `col flush`: makes the store's on-disk state complete and durable, and says what each step did (PRODUCT §10):
//! the store's database (its write-ahead log checkpointed into the file), then each collection's vector index through
//! the index's own `flush` (the embedded index: its database checkpointed; Qdrant: a snapshot created, then deleted).

use colstore_domain::CollectionName;
use colstore_domain::ports::IndexError;
use serde::Serialize;

use crate::sync::{SyncFailure, SyncPorts, index_name};

/// One step of a flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlushStep {
    /// What it touched: `store`, or a collection's vector index (`index notes`).
    pub target: String,
    /// What it did.
    pub step: String,
}

/// Flushes the store, then the vector index of each of `collections` (every collection when empty), in that order.
/// A collection never synced has nothing in its index, and its step says so. Safe while other commands run.
///
/// # Errors
/// `CollectionNotFound`, or a store or index failure (the steps before it were taken).
pub async fn flush(ports: &SyncPorts, collections: &[CollectionName]) -> Result<Vec<FlushStep>, SyncFailure> {
    let names: Vec<CollectionName> = if collections.is_empty() {
        ports.repo.list_collections().await?.into_iter().map(|c| c.name).collect()
    } else {
        collections.to_vec()
    };
    let mut steps: Vec<FlushStep> = ports.repo.flush().await?.into_iter().map(|step| FlushStep { target: "store".into(), step }).collect();
    for name in &names {
        let c = ports.repo.collection(name).await?;
        let target = format!("index {name}");
        let index = ports.for_collection(&c.settings).await?.index;
        match index.flush(&index_name(ports.store_id, name)).await {
            Ok(done) => steps.extend(done.into_iter().map(|step| FlushStep { target: target.clone(), step })),
            Err(IndexError::CollectionNotFound(_)) => {
                steps.push(FlushStep { target, step: "not synced yet: nothing in the index to flush".into() });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use colstore_domain::ports::{MockCollectionRepo, MockEmbedder, MockSyncStore, MockTextIndex, MockVectorIndex, VectorIndex};
    use colstore_domain::{Collection, CollectionSettings, StoreId, Timestamp};

    use super::*;

    fn collection(name: &str) -> Collection {
        Collection {
            name: CollectionName::parse(name).unwrap(),
            settings: CollectionSettings::default(),
            created_at: Timestamp::from_millis(0),
            document_count: 0,
            logical_bytes: 0,
        }
    }

    /// The store first, then each collection's index; a collection without points is said so, not an error.
    #[tokio::test]
    async fn the_store_then_each_index() {
        let mut seq = mockall::Sequence::new();
        let mut repo = MockCollectionRepo::new();
        repo.expect_list_collections().times(1).returning(|| Ok(vec![collection("a"), collection("b")]));
        repo.expect_flush().times(1).in_sequence(&mut seq).returning(|| Ok(vec!["checkpointed".into()]));
        repo.expect_collection().returning(|n| Ok(collection(n.as_str())));
        let mut index = MockVectorIndex::new();
        index.expect_flush().times(1).in_sequence(&mut seq).returning(|_| Ok(vec!["index checkpointed".into()]));
        index.expect_flush().times(1).in_sequence(&mut seq).returning(|n| Err(IndexError::CollectionNotFound(n.clone())));
        let index: Arc<dyn VectorIndex> = Arc::new(index);
        let ports = SyncPorts {
            repo: Arc::new(repo),
            ledger: Arc::new(MockSyncStore::new()),
            router: crate::OneIndex::router(index.clone()),
            index,
            embedder: Arc::new(MockEmbedder::new()),
            text: Arc::new(MockTextIndex::new()),
            store_id: StoreId::random(),
        };
        let steps = flush(&ports, &[]).await.unwrap();
        let got: Vec<(&str, &str)> = steps.iter().map(|s| (s.target.as_str(), s.step.as_str())).collect();
        assert_eq!(
            got,
            [("store", "checkpointed"), ("index a", "index checkpointed"), ("index b", "not synced yet: nothing in the index to flush")]
        );
    }
}
