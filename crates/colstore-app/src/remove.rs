//! `col rm` and `col collection delete`: deleting documents and collections, each after a safety copy.
//!
//! The use case decides *when* a copy is due; the [`SafetyNet`] knows *how* for the store's mode. A `None` net means
//! the user declined the copy (`--no-backup`).

use colstore_domain::ports::{CollectionRepo, IndexRouter, RepoError, SafetyCopy, SafetyError, SafetyNet};
use colstore_domain::{CollectionName, DocKey, StoreId};
use serde::Serialize;

use crate::sync::index_name;

/// Why a delete did not happen (nothing was deleted), or failed after its safety copy.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// The store failed, or the collection does not exist.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// No safety copy could be taken: nothing was deleted.
    #[error(transparent)]
    Safety(#[from] SafetyError),
}

/// Which of `keys` are documents of `collection` and which are not (what `col rm --dry-run` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovePlan {
    /// Keys that would be deleted, in the order given.
    pub present: Vec<DocKey>,
    /// Keys that are no document, in the order given.
    pub missing: Vec<DocKey>,
}

/// What [`remove_documents`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoveReport {
    /// Keys deleted, in the order given.
    pub deleted: Vec<DocKey>,
    /// Keys that were no document, in the order given.
    pub missing: Vec<DocKey>,
    /// The copy taken first, if any.
    pub safety: Option<SafetyCopy>,
}

/// Splits `keys` into documents of `collection` and keys that are none. Changes nothing.
///
/// # Errors
/// `CollectionNotFound`, or a store failure.
pub async fn plan_remove(repo: &dyn CollectionRepo, collection: &CollectionName, keys: &[DocKey]) -> Result<RemovePlan, RepoError> {
    let mut plan = RemovePlan { present: Vec::new(), missing: Vec::new() };
    repo.collection(collection).await?;
    for k in keys {
        match repo.document(collection, k).await {
            Ok(_) => plan.present.push(k.clone()),
            Err(RepoError::DocumentNotFound { .. }) => plan.missing.push(k.clone()),
            Err(e) => return Err(e),
        }
    }
    Ok(plan)
}

/// Deletes `keys` from `collection` (one transaction), after a safety copy when `safety` is given and at least one key
/// is a document: a mistyped key must not push an earlier, useful safety copy out of the rotation. `on_kept` hears of
/// the copy as soon as it is taken, before anything is deleted.
///
/// # Errors
/// `CollectionNotFound` before any copy; [`RemoveError::Safety`] when the copy fails (nothing deleted); a store failure.
pub async fn remove_documents(
    repo: &dyn CollectionRepo,
    safety: Option<&dyn SafetyNet>,
    collection: &CollectionName,
    keys: Vec<DocKey>,
    on_kept: &(dyn Fn(&SafetyCopy) + Sync),
) -> Result<RemoveReport, RemoveError> {
    let plan = plan_remove(repo, collection, &keys).await?;
    crate::commit_log::began("rm", Some(collection));
    let copy = match safety {
        Some(net) if !plan.present.is_empty() => {
            let copy = net.keep(std::slice::from_ref(collection), "rm").await?;
            on_kept(&copy);
            Some(copy)
        }
        _ => None,
    };
    let deleted = repo.delete_documents(collection, keys.clone()).await?;
    crate::commit_log::durable("rm", collection, deleted.len() as u64);
    let missing = keys.into_iter().filter(|k| !deleted.contains(k)).collect();
    Ok(RemoveReport { deleted, missing, safety: copy })
}

/// What [`delete_collection`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectionDeleteReport {
    /// Documents deleted with the collection.
    pub documents_deleted: u64,
    /// The copy taken first, if any.
    pub safety: Option<SafetyCopy>,
    /// Why the collection's points could not be dropped from the vector index, if they could not (the collection is
    /// deleted all the same; a re-created collection of that name would find the old points until then).
    pub index_problem: Option<String>,
}

/// Deletes `collection` with its documents, after a safety copy when `safety` is given (`on_kept` hears of it before
/// anything is deleted), then drops its projection from the index the collection projects into (found through
/// `indexes`, when the shell could open them), so a re-created collection of the same name never finds the old points.
///
/// # Errors
/// `CollectionNotFound` before any copy; [`RemoveError::Safety`] when the copy fails (nothing deleted); a store failure.
pub async fn delete_collection(
    repo: &dyn CollectionRepo,
    indexes: Option<&dyn IndexRouter>,
    store_id: StoreId,
    safety: Option<&dyn SafetyNet>,
    collection: &CollectionName,
    on_kept: &(dyn Fn(&SafetyCopy) + Sync),
) -> Result<CollectionDeleteReport, RemoveError> {
    let target = repo.collection(collection).await?.settings.index;
    crate::commit_log::began("collection-delete", Some(collection));
    let copy = match safety {
        Some(net) => {
            let copy = net.keep(std::slice::from_ref(collection), "collection-delete").await?;
            on_kept(&copy);
            Some(copy)
        }
        None => None,
    };
    let documents_deleted = repo.delete_collection(collection).await?;
    crate::commit_log::durable("collection-delete", collection, documents_deleted);
    let index_problem = match indexes {
        Some(indexes) => match indexes.route(target).await {
            Ok(index) => index.drop_collection(&index_name(store_id, collection)).await.err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        },
        None => None,
    };
    Ok(CollectionDeleteReport { documents_deleted, safety: copy, index_problem })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use colstore_domain::ports::{MockCollectionRepo, MockSafetyNet, MockVectorIndex};
    use colstore_domain::{Collection, CollectionSettings, DocumentMeta, Timestamp};
    use mockall::Sequence;

    use super::*;

    fn name(s: &str) -> CollectionName {
        CollectionName::parse(s).unwrap()
    }

    fn key(s: &str) -> DocKey {
        DocKey::parse(s).unwrap()
    }

    fn collection(n: &str) -> Collection {
        Collection {
            name: name(n),
            settings: CollectionSettings::default(),
            created_at: Timestamp::from_millis(0),
            document_count: 1,
            logical_bytes: 1,
        }
    }

    fn doc(k: &str) -> DocumentMeta {
        DocumentMeta {
            collection: name("notes"),
            key: key(k),
            content_hash: colstore_domain::ContentHash::of(b"x"),
            size: 1,
            metadata: Default::default(),
            tags: Default::default(),
            version: 1,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    /// `a.md` exists, `b.md` does not.
    fn repo_with_a(seq: &mut Sequence, deletes: bool) -> MockCollectionRepo {
        let mut repo = MockCollectionRepo::new();
        repo.expect_collection().times(1).in_sequence(seq).returning(|n| Ok(collection(n.as_str())));
        repo.expect_document().returning(|c, k| {
            if k.as_str() == "a.md" { Ok(doc("a.md")) } else { Err(RepoError::DocumentNotFound { collection: c.clone(), key: k.clone() }) }
        });
        if deletes {
            repo.expect_delete_documents()
                .times(1)
                .in_sequence(seq)
                .returning(|_, keys| Ok(keys.into_iter().filter(|k| k.as_str() == "a.md").collect()));
        }
        repo
    }

    #[tokio::test]
    async fn rm_keeps_a_copy_before_it_deletes_and_reports_what_was_missing() {
        let mut seq = Sequence::new();
        let mut repo = repo_with_a(&mut seq, false);
        let mut net = MockSafetyNet::new();
        net.expect_keep()
            .withf(|c, op| c == [name("notes")] && op == "rm")
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(SafetyCopy::Database("copy.db".into())));
        repo.expect_delete_documents()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, keys| Ok(keys.into_iter().filter(|k| k.as_str() == "a.md").collect()));
        let heard = Mutex::new(Vec::new());
        let r =
            remove_documents(&repo, Some(&net), &name("notes"), vec![key("a.md"), key("b.md")], &|c| heard.lock().unwrap().push(c.clone()))
                .await
                .unwrap();
        assert_eq!(r.deleted, [key("a.md")]);
        assert_eq!(r.missing, [key("b.md")]);
        assert_eq!(r.safety, Some(SafetyCopy::Database("copy.db".into())));
        assert_eq!(*heard.lock().unwrap(), [SafetyCopy::Database("copy.db".into())]);
    }

    #[tokio::test]
    async fn rm_of_keys_that_are_no_documents_takes_no_copy() {
        let mut seq = Sequence::new();
        let repo = repo_with_a(&mut seq, true);
        let mut net = MockSafetyNet::new();
        net.expect_keep().never();
        let r = remove_documents(&repo, Some(&net), &name("notes"), vec![key("b.md")], &|_| panic!("no copy")).await.unwrap();
        assert!(r.deleted.is_empty());
        assert_eq!(r.missing, [key("b.md")]);
        assert_eq!(r.safety, None);
    }

    #[tokio::test]
    async fn a_failed_copy_deletes_nothing() {
        let mut seq = Sequence::new();
        let mut repo = repo_with_a(&mut seq, false);
        repo.expect_delete_documents().never();
        let mut net = MockSafetyNet::new();
        net.expect_keep().returning(|_, _| Err(SafetyError(Box::new(std::io::Error::other("disk full")))));
        let e = remove_documents(&repo, Some(&net), &name("notes"), vec![key("a.md")], &|_| {}).await.unwrap_err();
        assert!(matches!(e, RemoveError::Safety(_)), "{e}");
    }

    #[tokio::test]
    async fn an_unknown_collection_is_refused_before_any_copy() {
        let mut repo = MockCollectionRepo::new();
        repo.expect_collection().returning(|n| Err(RepoError::CollectionNotFound(n.clone())));
        repo.expect_delete_documents().never();
        repo.expect_delete_collection().never();
        let mut net = MockSafetyNet::new();
        net.expect_keep().never();
        let e = remove_documents(&repo, Some(&net), &name("nope"), vec![key("a.md")], &|_| {}).await.unwrap_err();
        assert!(matches!(e, RemoveError::Repo(RepoError::CollectionNotFound(_))), "{e}");
        let e = delete_collection(&repo, None, StoreId::random(), Some(&net), &name("nope"), &|_| {}).await.unwrap_err();
        assert!(matches!(e, RemoveError::Repo(RepoError::CollectionNotFound(_))), "{e}");
    }

    #[tokio::test]
    async fn collection_delete_copies_then_deletes_then_drops_the_projection() {
        let mut seq = Sequence::new();
        let mut repo = MockCollectionRepo::new();
        repo.expect_collection().times(1).in_sequence(&mut seq).returning(|n| Ok(collection(n.as_str())));
        let mut net = MockSafetyNet::new();
        net.expect_keep()
            .withf(|c, op| c == [name("notes")] && op == "collection-delete")
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(SafetyCopy::Backup("b1".into())));
        repo.expect_delete_collection().times(1).in_sequence(&mut seq).returning(|_| Ok(3));
        let store = StoreId::random();
        let mut index = MockVectorIndex::new();
        let expected = index_name(store, &name("notes"));
        index.expect_drop_collection().withf(move |n| *n == expected).times(1).in_sequence(&mut seq).returning(|_| Ok(true));
        let heard = Arc::new(Mutex::new(0));
        let index = crate::OneIndex::router(Arc::new(index));
        let r = delete_collection(&repo, Some(&*index), store, Some(&net), &name("notes"), &|_| *heard.lock().unwrap() += 1).await.unwrap();
        assert_eq!(r, CollectionDeleteReport { documents_deleted: 3, safety: Some(SafetyCopy::Backup("b1".into())), index_problem: None });
        assert_eq!(*heard.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn collection_delete_without_a_copy_reports_an_index_that_could_not_drop() {
        let mut repo = MockCollectionRepo::new();
        repo.expect_collection().returning(|n| Ok(collection(n.as_str())));
        repo.expect_delete_collection().returning(|_| Ok(0));
        let mut index = MockVectorIndex::new();
        index.expect_drop_collection().returning(|_| Err(colstore_domain::ports::IndexError::Unavailable("down".into())));
        let index = crate::OneIndex::router(Arc::new(index));
        let r = delete_collection(&repo, Some(&*index), StoreId::random(), None, &name("notes"), &|_| panic!("no copy")).await.unwrap();
        assert_eq!(r.safety, None);
        assert!(r.index_problem.as_deref().is_some_and(|p| p.contains("down")), "{r:?}");
    }
}
