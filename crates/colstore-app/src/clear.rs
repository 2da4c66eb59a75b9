//! `col clear`: empty a collection (or drop it), in bounded transactions.

use colstore_domain::ports::{CollectionRepo, IndexError, RepoError};
use colstore_domain::{CollectionName, DocKey, PointId};

use crate::sync::{SyncFailure, SyncPorts, index_name};

/// Keys deleted per transaction.
const CLEAR_BATCH: usize = 1000;

/// Deletes every document of `collection` (the sync ledger turns projected ones into pending deletions, which
/// [`retire_deleted`] or the next sync carry out), or with `drop` the collection itself in one transaction. Returns how many documents
/// went. Each batch is one transaction: an interrupted clear leaves whole documents and can be run again.
///
/// # Errors
/// `CollectionNotFound`, or a store failure.
pub async fn clear_collection(
    repo: &dyn CollectionRepo,
    collection: &CollectionName,
    drop: bool,
    on_progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, RepoError> {
    if drop {
        let n = repo.delete_collection(collection).await?;
        on_progress(n);
        return Ok(n);
    }
    repo.collection(collection).await?;
    let mut deleted = 0;
    loop {
        // A fresh snapshot per batch: documents written meanwhile are cleared too.
        let page = repo.snapshot().await?.documents(collection, None, CLEAR_BATCH).await?;
        if page.is_empty() {
            return Ok(deleted);
        }
        let keys = page.into_iter().map(|d| d.key).collect();
        deleted += repo.delete_documents(collection, keys).await?.len() as u64;
        on_progress(deleted);
    }
}

/// Ledger rows read per round by [`retire_deleted`].
const RETIRE_BATCH: usize = 1000;

/// Carries out the pending deletions of `collection` in the vector index at once (what a sync does first): the points
/// of every deleted document are removed and its ledger row goes, so a search right after `col clear` or `col rm`
/// finds none of them. Documents that still exist are left pending for the next sync. Returns the points removed.
///
/// # Errors
/// Ledger or index failures (the deletions not carried out stay pending; the next sync does them).
pub async fn retire_deleted(ports: &SyncPorts, collection: &CollectionName) -> Result<u64, SyncFailure> {
    let name = index_name(ports.store_id, collection);
    let mut after: Option<DocKey> = None;
    let mut retired = 0;
    loop {
        let rows = ports.ledger.pending(collection, true, after.clone(), RETIRE_BATCH).await?;
        let Some(last) = rows.last() else { return Ok(retired) };
        after = Some(last.key.clone());
        for entry in rows.into_iter().filter(|e| e.current.is_none()) {
            if let Some(p) = entry.projected {
                let ids = (0..p.chunk_count).map(|i| PointId::derive(ports.store_id, collection, &entry.key, i)).collect();
                match ports.index.delete(&name, ids).await {
                    Ok(()) => retired += u64::from(p.chunk_count),
                    // Never synced into this index (or it was dropped): there is nothing to remove.
                    Err(IndexError::CollectionNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            ports.ledger.mark_synced(collection, &entry.key, None, None).await?;
        }
    }
}
