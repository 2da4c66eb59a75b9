//! `col clear`: empty a collection (or drop it), in bounded transactions.

use colstore_domain::ports::{CollectionRepo, IndexError, IndexRouter, RepoError, SafetyCopy, SafetyNet};
use colstore_domain::{CollectionName, DocKey, PointId, StoreId};
use serde::Serialize;

use crate::remove::RemoveError;
use crate::sync::{SyncFailure, SyncPorts, index_name};

/// Where a clear reaches the projection: with `drop`, the index whose collections go with them; without, the sync
/// ports through which the cleared documents' points are retired at once. `Err` says why the shell could not open
/// them (the points then stay until the next `col sync`).
pub enum ClearProjection<'a> {
    /// `--drop`: the vector indexes (each collection's points go from the one it projects into), when they could be
    /// opened, and the store that namespaces them.
    Drop(Option<&'a dyn IndexRouter>, StoreId),
    /// A clear: the sync ports, or why there are none.
    Retire(Result<&'a SyncPorts, String>),
}

/// One collection a clear would empty (what `col clear --dry-run` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClearTarget {
    /// The collection.
    pub collection: CollectionName,
    /// Its documents.
    pub documents: u64,
    /// Their content's bytes.
    pub bytes: u64,
}

/// The collections a clear of `only` (or of every collection) would empty, with what they hold. Changes nothing.
///
/// # Errors
/// `CollectionNotFound` for `only`, or a store failure.
pub async fn plan_clear(repo: &dyn CollectionRepo, only: Option<&CollectionName>) -> Result<Vec<ClearTarget>, RepoError> {
    let collections = match only {
        Some(c) => vec![repo.collection(c).await?],
        None => repo.list_collections().await?,
    };
    Ok(collections.into_iter().map(|c| ClearTarget { collection: c.name, documents: c.document_count, bytes: c.logical_bytes }).collect())
}

/// What [`clear_collections`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClearReport {
    /// Documents deleted, over every collection.
    pub documents_deleted: u64,
    /// Points removed from the vector index at once.
    pub points_retired: u64,
    /// Collections whose points could not be retired yet, and why (the next `col sync` does it).
    pub unretired: Vec<(CollectionName, String)>,
    /// The safety backup taken first, if any.
    pub safety: Option<SafetyCopy>,
}

/// `col clear`: a safety backup of `names` (when `safety` is given; `on_kept` hears of it before anything changes),
/// then each collection emptied ([`clear_collection`]; with `drop`, deleted with its index collection) and, without
/// `drop`, its cleared documents' points retired at once so a search right after finds none of them.
/// `on_progress` hears (collection, documents deleted so far).
///
/// # Errors
/// [`RemoveError::Safety`] when the backup fails (nothing changed); a store failure (collections before it are
/// cleared, the rest untouched; running it again finishes the work).
pub async fn clear_collections(
    repo: &dyn CollectionRepo,
    projection: ClearProjection<'_>,
    safety: Option<&dyn SafetyNet>,
    names: &[CollectionName],
    drop: bool,
    on_kept: &(dyn Fn(&SafetyCopy) + Sync),
    on_progress: &(dyn Fn(&CollectionName, u64) + Sync),
) -> Result<ClearReport, RemoveError> {
    let mut report = ClearReport { documents_deleted: 0, points_retired: 0, unretired: Vec::new(), safety: None };
    if let Some(net) = safety {
        let copy = net.backup(names, "clear").await?;
        on_kept(&copy);
        report.safety = Some(copy);
    }
    for n in names {
        // Where its points are, read before a drop deletes the collection's settings.
        let target = match &projection {
            ClearProjection::Drop(Some(_), _) => repo.collection(n).await?.settings.index,
            _ => None,
        };
        report.documents_deleted += clear_collection(repo, n, drop, &|d| on_progress(n, d)).await?;
        match &projection {
            ClearProjection::Drop(Some(indexes), store_id) => {
                // The collection is gone; a failure here leaves points no collection will show.
                if let Ok(index) = indexes.route(target).await {
                    let _ = index.drop_collection(&index_name(*store_id, n)).await;
                }
            }
            ClearProjection::Drop(None, _) => {}
            ClearProjection::Retire(Ok(ports)) => match retire_deleted(ports, n).await {
                Ok(points) => report.points_retired += points,
                Err(e) => report.unretired.push((n.clone(), e.to_string())),
            },
            ClearProjection::Retire(Err(why)) => report.unretired.push((n.clone(), why.clone())),
        }
    }
    Ok(report)
}

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
    crate::commit_log::began("clear", Some(collection));
    if drop {
        let n = repo.delete_collection(collection).await?;
        crate::commit_log::durable("clear", collection, n);
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
        let n = repo.delete_documents(collection, keys).await?.len() as u64;
        crate::commit_log::durable("clear", collection, n);
        deleted += n;
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
    let ports = &match ports.repo.collection(collection).await {
        Ok(c) => ports.for_collection(&c.settings).await?,
        // Dropped meanwhile: its points went with it.
        Err(RepoError::CollectionNotFound(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use colstore_domain::ports::{MockSafetyNet, MockVectorIndex, SafetyError};
    use colstore_domain::{CollectionSettings, CollectionSpec, Content, Metadata, NewDocument, Tags};
    use colstore_testkit::{InMemoryRepo, ManualClock};

    use super::*;

    async fn store_with(collections: &[(&str, usize)]) -> InMemoryRepo {
        let repo = InMemoryRepo::new(Arc::new(ManualClock::at_2024()));
        for (name, docs) in collections {
            let name = CollectionName::parse(name).unwrap();
            repo.create_collection(CollectionSpec { name: name.clone(), settings: CollectionSettings::default() }).await.unwrap();
            let docs = (0..*docs)
                .map(|i| NewDocument {
                    key: DocKey::parse(&format!("d{i}.md")).unwrap(),
                    content: Content::Bytes(format!("text {i}").into()),
                    metadata: Metadata::default(),
                    tags: Tags::default(),
                })
                .collect();
            repo.put_batch(&name, docs).await.unwrap();
        }
        repo
    }

    fn names(n: &[&str]) -> Vec<CollectionName> {
        n.iter().map(|n| CollectionName::parse(n).unwrap()).collect()
    }

    #[tokio::test]
    async fn clear_backs_up_first_then_empties_every_collection() {
        let repo = store_with(&[("a", 3), ("b", 2)]).await;
        let mut net = MockSafetyNet::new();
        let counts = Arc::new(Mutex::new(Vec::new()));
        net.expect_backup()
            .withf(|c, op| c == names(&["a", "b"]) && op == "clear")
            .times(1)
            .returning(|_, _| Ok(SafetyCopy::Backup("b1".into())));
        let heard = Mutex::new(0);
        let r = clear_collections(
            &repo,
            ClearProjection::Retire(Err("no index here".into())),
            Some(&net),
            &names(&["a", "b"]),
            false,
            &|_| *heard.lock().unwrap() += 1,
            &|n, d| counts.lock().unwrap().push((n.to_string(), d)),
        )
        .await
        .unwrap();
        assert_eq!(r.documents_deleted, 5);
        assert_eq!(r.safety, Some(SafetyCopy::Backup("b1".into())));
        assert_eq!(*heard.lock().unwrap(), 1);
        assert_eq!(r.unretired.len(), 2, "without sync ports every collection's points wait for the next sync: {r:?}");
        for n in names(&["a", "b"]) {
            assert_eq!(repo.collection(&n).await.unwrap().document_count, 0, "{n} is empty and still exists");
        }
        assert_eq!(counts.lock().unwrap().last(), Some(&("b".to_owned(), 2)));
    }

    #[tokio::test]
    async fn a_failed_backup_clears_nothing() {
        let repo = store_with(&[("a", 3)]).await;
        let mut net = MockSafetyNet::new();
        net.expect_backup().returning(|_, _| Err(SafetyError(Box::new(std::io::Error::other("repository full")))));
        let e =
            clear_collections(&repo, ClearProjection::Drop(None, StoreId::random()), Some(&net), &names(&["a"]), true, &|_| {}, &|_, _| {})
                .await
                .unwrap_err();
        assert!(matches!(e, RemoveError::Safety(_)), "{e}");
        assert_eq!(repo.collection(&names(&["a"])[0]).await.unwrap().document_count, 3);
    }

    #[tokio::test]
    async fn drop_deletes_the_collections_and_their_index_collections() {
        let repo = store_with(&[("a", 1)]).await;
        let store = StoreId::random();
        let mut index = MockVectorIndex::new();
        let expected = index_name(store, &names(&["a"])[0]);
        index.expect_drop_collection().withf(move |n| *n == expected).times(1).returning(|_| Ok(true));
        let r = clear_collections(
            &repo,
            ClearProjection::Drop(Some(&*crate::OneIndex::router(Arc::new(index))), store),
            None,
            &names(&["a"]),
            true,
            &|_| panic!("no copy"),
            &|_, _| {},
        )
        .await
        .unwrap();
        assert_eq!((r.documents_deleted, r.safety), (1, None));
        assert!(matches!(repo.collection(&names(&["a"])[0]).await, Err(RepoError::CollectionNotFound(_))));
    }
}
