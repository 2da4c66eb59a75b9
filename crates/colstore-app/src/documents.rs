//! `col put` and `col gc`: one document written, and the contents no document references removed.

use colstore_domain::ports::{CollectionRepo, GcReport, RepoError};
use colstore_domain::{CollectionName, NewDocument, PutOutcome};

/// Writes one document (created, updated, or unchanged when identical) in one transaction.
///
/// # Errors
/// `CollectionNotFound`, `ContentRead` when its stream fails (nothing written), or a store failure.
pub async fn put_document(repo: &dyn CollectionRepo, collection: &CollectionName, doc: NewDocument) -> Result<PutOutcome, RepoError> {
    let key = doc.key.clone();
    repo.put_batch(collection, vec![doc]).await?.pop().ok_or_else(|| RepoError::Backend {
        backend: "store",
        source: format!("the store returned no outcome for {collection}/{key}").into(),
    })
}

/// Removes the contents no document references any more (`dry_run`: only counts them).
///
/// # Errors
/// A store failure.
pub async fn collect_garbage(repo: &dyn CollectionRepo, dry_run: bool) -> Result<GcReport, RepoError> {
    repo.gc(dry_run).await
}
