//! `col reindex --to` as a use case ([`move_index`]) over the fakes: two indexes behind a router, an embedder that
//! counts its calls. The move writes every point from the cache (no embedder call), verifies, switches the
//! collection's settings, drops the old projection; a projection that does not verify is never switched to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use colstore_app::{MoveError, SyncOptions, SyncPorts, move_index, search, sync_collection, verify_index};
use colstore_domain::ports::{
    CollectionRepo, EmbedError, Embedder, IndexCapabilities, IndexError, IndexHealth, IndexRouter, ScrollPage, ScrollRequest,
    SearchRequest, SyncStore, VectorIndex,
};
use colstore_domain::{
    CollectionName, CollectionSettings, CollectionSpec, Content, Dimension, DocKey, EmbedderId, Filter, IndexName, Metadata, NewDocument,
    Point, PointId, ScoredPoint, StoreId, Tags, Vector, VectorSettings,
};
use colstore_testkit::{InMemoryIndex, InMemoryRepo, ManualClock};

const REMOTE: &str = "qdrant://db.example:6333";

/// Counts its calls; a vector per text from its length and first byte, so searches can tell documents apart.
struct Counting(AtomicU64);

#[async_trait]
impl Embedder for Counting {
    fn identity(&self) -> EmbedderId {
        EmbedderId { kind: "test".into(), model: "move".into(), dimension: Dimension::new(3).unwrap() }
    }
    fn max_batch(&self) -> usize {
        16
    }
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vector>, EmbedError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(texts.iter().map(|t| vec![t.len() as f32, f32::from(t.as_bytes()[0]), 1.0]).collect())
    }
}

/// Two indexes by name: `embedded` (the default) and [`REMOTE`].
struct Two {
    local: Arc<dyn VectorIndex>,
    remote: Arc<dyn VectorIndex>,
}

#[async_trait]
impl IndexRouter for Two {
    fn default_target(&self) -> String {
        "embedded".into()
    }
    fn canonical(&self, target: &str) -> Result<String, IndexError> {
        Ok(target.to_owned())
    }
    async fn route(&self, target: Option<String>) -> Result<Arc<dyn VectorIndex>, IndexError> {
        match target.as_deref() {
            None | Some("embedded") => Ok(self.local.clone()),
            Some(REMOTE) => Ok(self.remote.clone()),
            Some(other) => Err(IndexError::Unavailable(format!("no index {other}"))),
        }
    }
}

struct World {
    repo: Arc<InMemoryRepo>,
    local: Arc<InMemoryIndex>,
    remote: Arc<InMemoryIndex>,
    embedder: Arc<Counting>,
    ports: SyncPorts,
}

fn notes() -> CollectionName {
    CollectionName::parse("notes").unwrap()
}

fn key(i: usize) -> DocKey {
    DocKey::parse(&format!("d{i:03}.md")).unwrap()
}

/// `n` one-chunk documents, synced into the default index; `remote` is what the router gives for [`REMOTE`].
async fn world(n: usize, remote: Option<Arc<dyn VectorIndex>>) -> World {
    let repo = Arc::new(InMemoryRepo::new(Arc::new(ManualClock::at_2024())));
    repo.create_collection(CollectionSpec { name: notes(), settings: CollectionSettings::default() }).await.unwrap();
    let docs = (0..n)
        .map(|i| NewDocument {
            key: key(i),
            content: Content::Bytes(format!("{} note number {i}", (b'a' + (i % 26) as u8) as char).into_bytes().into()),
            metadata: Metadata::default(),
            tags: Tags::default(),
        })
        .collect();
    repo.put_batch(&notes(), docs).await.unwrap();
    let local = Arc::new(InMemoryIndex::new());
    let remote_fake = Arc::new(InMemoryIndex::new());
    let router = Arc::new(Two { local: local.clone(), remote: remote.unwrap_or_else(|| remote_fake.clone()) });
    let embedder = Arc::new(Counting(AtomicU64::new(0)));
    let ports = SyncPorts {
        repo: repo.clone(),
        ledger: repo.clone(),
        index: local.clone(),
        router,
        embedder: embedder.clone(),
        text: repo.clone(),
        store_id: StoreId::random(),
    };
    sync_collection(&ports, &notes(), &SyncOptions::default(), &|_| {}).await.unwrap();
    World { repo, local, remote: remote_fake, embedder, ports }
}

fn index_name(w: &World) -> IndexName {
    colstore_app::index_name(w.ports.store_id, &notes())
}

async fn points(index: &dyn VectorIndex, name: &IndexName) -> Option<u64> {
    match index.count(name, None).await {
        Ok(n) => Some(n),
        Err(IndexError::CollectionNotFound(_)) => None,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_move_writes_from_the_cache_verifies_switches_and_drops_the_old_projection() {
    let w = world(30, None).await;
    let name = index_name(&w);
    let calls = w.embedder.0.load(Ordering::SeqCst);
    let before = w.repo.counts(Some(notes())).await.unwrap();
    assert_eq!((before.synced, points(&*w.local, &name).await), (30, Some(30)));

    let r = move_index(&w.ports, &notes(), REMOTE, false, &|_| {}).await.unwrap();
    assert_eq!((r.from.as_str(), r.to.as_str(), r.points_written, r.verified_points), ("embedded", REMOTE, 30, 30));
    assert!(r.left_for_sync.is_empty() && r.old_dropped && r.old_drop_problem.is_none(), "{r:?}");
    assert_eq!(w.embedder.0.load(Ordering::SeqCst), calls, "a move calls no embedder");
    assert_eq!(w.repo.collection(&notes()).await.unwrap().settings.index.as_deref(), Some(REMOTE), "switched");
    assert_eq!(points(&*w.remote, &name).await, Some(30));
    assert_eq!(points(&*w.local, &name).await, None, "the old projection is dropped after the switch");
    assert_eq!(w.repo.counts(Some(notes())).await.unwrap(), before, "the ledger is unchanged: every document is synced there");

    // Everything that touches the collection's points now goes to the new index.
    assert!(verify_index(&w.ports, &notes(), false).await.unwrap().drift.is_empty());
    let opts = colstore_app::SearchOptions { mode: colstore_app::SearchMode::Vector, k: 3, filter: None };
    let found = search(&w.ports, &notes(), "c note number 2", &opts).await.unwrap();
    assert!(!found.hits.is_empty(), "search reads the new index");
    assert_eq!(found.not_synced, 0, "every document is synced in the new index");
    let edited = NewDocument {
        key: key(0),
        content: Content::Bytes(b"z an edited note".to_vec().into()),
        metadata: Metadata::default(),
        tags: Tags::default(),
    };
    w.repo.put_batch(&notes(), vec![edited]).await.unwrap();
    sync_collection(&w.ports, &notes(), &SyncOptions::default(), &|_| {}).await.unwrap();
    assert_eq!(points(&*w.local, &name).await, None, "a sync after the move never writes into the old index");
    assert!(verify_index(&w.ports, &notes(), false).await.unwrap().drift.is_empty());

    // And back: the default index is recorded as no target of its own.
    let back = move_index(&w.ports, &notes(), "embedded", true, &|_| {}).await.unwrap();
    assert_eq!((back.points_written, back.old_dropped), (30, false));
    assert_eq!(w.repo.collection(&notes()).await.unwrap().settings.index, None);
    assert_eq!(points(&*w.remote, &name).await, Some(30), "--keep-old keeps the old projection");
    assert!(verify_index(&w.ports, &notes(), false).await.unwrap().drift.is_empty());
}

#[tokio::test]
async fn pending_documents_stay_pending_and_the_next_sync_projects_them_into_the_new_index() {
    let w = world(5, None).await;
    let name = index_name(&w);
    let edited = NewDocument {
        key: key(1),
        content: Content::Bytes(b"q changed before the move".to_vec().into()),
        metadata: Metadata::default(),
        tags: Tags::default(),
    };
    w.repo.put_batch(&notes(), vec![edited]).await.unwrap();
    let r = move_index(&w.ports, &notes(), REMOTE, false, &|_| {}).await.unwrap();
    assert_eq!(r.points_written, 4, "only synced documents move; the pending one waits for its sync");
    let counts = w.repo.counts(Some(notes())).await.unwrap();
    assert_eq!((counts.synced, counts.pending), (4, 1));
    let calls = w.embedder.0.load(Ordering::SeqCst);
    let s = sync_collection(&w.ports, &notes(), &SyncOptions::default(), &|_| {}).await.unwrap();
    assert_eq!((s.synced, w.embedder.0.load(Ordering::SeqCst) - calls), (1, 1), "one embedding, for the changed text only");
    assert_eq!(points(&*w.remote, &name).await, Some(5));
    assert!(verify_index(&w.ports, &notes(), false).await.unwrap().drift.is_empty());
}

#[tokio::test]
async fn a_move_to_where_the_collection_is_is_refused() {
    let w = world(2, None).await;
    let e = move_index(&w.ports, &notes(), "embedded", false, &|_| {}).await.unwrap_err();
    assert!(matches!(e, MoveError::AlreadyThere { .. }), "{e:?}");
}

/// An index that loses the first point of every upsert: what a broken engine (or a wrong adapter) would do.
struct Lossy(InMemoryIndex, Mutex<u64>);

#[async_trait]
impl VectorIndex for Lossy {
    fn capabilities(&self) -> IndexCapabilities {
        self.0.capabilities()
    }
    async fn health(&self) -> Result<IndexHealth, IndexError> {
        self.0.health().await
    }
    async fn ensure_collection(&self, name: &IndexName, settings: &VectorSettings) -> Result<(), IndexError> {
        self.0.ensure_collection(name, settings).await
    }
    async fn drop_collection(&self, name: &IndexName) -> Result<bool, IndexError> {
        self.0.drop_collection(name).await
    }
    async fn upsert(&self, name: &IndexName, mut points: Vec<Point>) -> Result<(), IndexError> {
        if !points.is_empty() {
            points.remove(0);
            *self.1.lock().unwrap() += 1;
        }
        self.0.upsert(name, points).await
    }
    async fn delete(&self, name: &IndexName, ids: Vec<PointId>) -> Result<(), IndexError> {
        self.0.delete(name, ids).await
    }
    async fn delete_by_filter(&self, name: &IndexName, filter: &Filter) -> Result<Option<u64>, IndexError> {
        self.0.delete_by_filter(name, filter).await
    }
    async fn scroll(&self, name: &IndexName, request: ScrollRequest) -> Result<ScrollPage, IndexError> {
        self.0.scroll(name, request).await
    }
    async fn count(&self, name: &IndexName, filter: Option<Filter>) -> Result<u64, IndexError> {
        self.0.count(name, filter).await
    }
    async fn search(&self, name: &IndexName, request: SearchRequest) -> Result<Vec<ScoredPoint>, IndexError> {
        self.0.search(name, request).await
    }
    async fn flush(&self, name: &IndexName) -> Result<Vec<String>, IndexError> {
        self.0.flush(name).await
    }
}

#[tokio::test]
async fn a_projection_that_does_not_verify_is_never_switched_to() {
    let lossy = Arc::new(Lossy(InMemoryIndex::new(), Mutex::new(0)));
    let w = world(10, Some(lossy.clone())).await;
    let name = index_name(&w);
    let e = move_index(&w.ports, &notes(), REMOTE, false, &|_| {}).await.unwrap_err();
    match &e {
        MoveError::Unverified { problems, first, .. } => assert!(*problems >= 1 && first.starts_with("missing "), "{e}"),
        other => panic!("expected Unverified, got {other:?}"),
    }
    assert!(*lossy.1.lock().unwrap() > 0, "the lossy index was written");
    assert_eq!(w.repo.collection(&notes()).await.unwrap().settings.index, None, "not switched");
    assert_eq!(points(&*w.local, &name).await, Some(10), "the old projection is untouched");
    assert_eq!(points(&lossy.0, &name).await, None, "the unverified projection is dropped again");
    assert_eq!(w.repo.counts(Some(notes())).await.unwrap().synced, 10);
}
