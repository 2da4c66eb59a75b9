//! `col clear`: empty a collection (or drop it), in bounded transactions.

use colstore_domain::CollectionName;
use colstore_domain::ports::{CollectionRepo, RepoError};

/// Keys deleted per transaction.
const CLEAR_BATCH: usize = 1000;

/// Deletes every document of `collection` (the sync ledger turns projected ones into pending deletions, so the next
/// sync retires their points), or with `drop` the collection itself in one transaction. Returns how many documents
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
