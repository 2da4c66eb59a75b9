//! `col search`: keyword search (full text, BM25), vector search (the nearest chunks) and hybrid search, the default:
//! both sides fused by reciprocal rank fusion (PRODUCT §9), with the collection's `FusionSettings` or its embedder's
//! defaults. One use case for every shell.
//!
//! Hybrid asks each side for more than `k` hits (`depth`), scores each chunk `Σ weight / (rrf_k + rank)` over the sides
//! that found it, and keeps the best `k`; every hit says which side found it and at which rank. A side that cannot
//! answer does not fail a hybrid search: a collection never synced still answers from its text (and says the vector
//! side is missing), and a query with no indexed word still gets vector hits.

use std::collections::{BTreeMap, HashMap};

use colstore_domain::ports::{IndexError, ReadDocument, RepoError, SearchRequest};
use colstore_domain::{
    Chunk, Collection, CollectionName, ContentHash, Distance, DocFilter, DocKey, FusionSettings, KeywordQuery, chunk_text, snippet,
};
use futures::StreamExt;
use serde::Serialize;

use crate::sync::{SyncFailure, SyncPorts, index_name};

/// Characters of a hit's snippet.
const SNIPPET_CHARS: usize = 160;

/// Which sides a search asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Keyword and vector, fused (the default).
    #[default]
    Hybrid,
    /// Full-text search only (BM25 over chunks).
    Keyword,
    /// Nearest chunks only.
    Vector,
}

/// A side of a hybrid search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Full-text search.
    Keyword,
    /// The vector index.
    Vector,
}

/// Where one side ranked a hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// The side.
    pub side: Side,
    /// Its rank there, from 1.
    pub rank: u32,
    /// Its score there (BM25 for keyword, the distance's similarity for vector).
    pub score: f64,
}

/// What to search and how.
#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    /// Which sides.
    pub mode: SearchMode,
    /// How many hits.
    pub k: usize,
    /// Only chunks of documents this `--where` expression matches.
    pub filter: Option<DocFilter>,
}

/// One search hit: a chunk of a document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The document key.
    pub key: String,
    /// The chunk number.
    pub chunk: u32,
    /// Higher is better: the fused score in hybrid mode, BM25 in keyword mode, the similarity in vector mode.
    pub score: f32,
    /// The chunk's text, shortened, with the query's words marked `«like this»`.
    pub snippet: String,
    /// The document's metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The document changed since this chunk was indexed (written and not synced yet, or in filesystem mode its file
    /// was edited outside colstore): the snippet says so instead of showing text the index no longer matches, and
    /// `col sync` brings the index up to date.
    pub stale: bool,
    /// Which sides found it, and where they ranked it.
    pub found_by: Vec<Found>,
}

/// What [`search`] found, with what a shell needs to explain it.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    /// The hits, best first.
    pub hits: Vec<SearchHit>,
    /// The sides asked.
    pub mode: SearchMode,
    /// How the collection's vectors are compared (what a vector score means); `None` before its first sync.
    pub distance: Option<Distance>,
    /// The kind of embedder that made them (`hash` compares words, so its scores are low even for good matches).
    pub embedder_kind: Option<String>,
    /// Documents of the collection not synced yet (pending or failed): the vector index does not show their current text.
    pub not_synced: u64,
    /// Why the vector side was not asked in a hybrid search (a collection never synced); `None` when it was.
    pub vector_missing: Option<String>,
    /// Documents whose text is not in the full-text index (it could not be brought up to date: a read-only store).
    pub not_indexed: u64,
    /// The fusion used (hybrid): the collection's settings, or its embedder's defaults.
    pub fusion: Option<FusionSettings>,
}

/// Searches `collection` for `query` as `opts` says.
///
/// # Errors
/// Repository, embedder or index failures; `NotSynced` for a vector search of a collection never synced.
pub async fn search(
    ports: &SyncPorts,
    collection: &CollectionName,
    query: &str,
    opts: &SearchOptions,
) -> Result<SearchResults, SyncFailure> {
    let c = ports.repo.collection(collection).await?;
    let ports = &ports.for_collection(&c.settings).await?;
    let filter = opts.filter.as_ref().filter(|f| !f.is_everything());
    let k = opts.k.max(1);
    let keywords = KeywordQuery::parse(query);
    let depth = if opts.mode == SearchMode::Hybrid { k.saturating_mul(3).clamp(30, 1000) } else { k };
    let vector_settings = c.settings.vectors.as_ref();
    let embedder_kind = vector_settings.map(|v| v.embedder.kind.clone());
    let mut out = SearchResults {
        hits: Vec::new(),
        mode: opts.mode,
        distance: vector_settings.map(|v| v.distance),
        embedder_kind: embedder_kind.clone(),
        not_synced: 0,
        vector_missing: None,
        not_indexed: 0,
        fusion: None,
    };

    let keyword = if opts.mode == SearchMode::Vector {
        Vec::new()
    } else {
        // Documents changed since the last search are indexed now; only a file edited outside colstore and not
        // reconciled yet differs from its indexed text (its hits are marked stale).
        match ports.text.catch_up(collection).await {
            Ok(_) => {}
            Err(RepoError::ReadOnly(_)) => out.not_indexed = ports.text.not_indexed(collection).await?,
            Err(e) => return Err(e.into()),
        }
        let everything = DocFilter::default();
        ports.text.keyword_search(collection, &keywords, filter.unwrap_or(&everything), depth).await?
    };

    let mut vector = Vec::new();
    if opts.mode != SearchMode::Keyword {
        let not_synced = |c: &CollectionName| format!("collection \"{c}\" is not synced yet: run `col sync {c}` to add vector hits");
        match vector_settings {
            None if opts.mode == SearchMode::Hybrid => out.vector_missing = Some(not_synced(collection)),
            None => return Err(SyncFailure::NotSynced(collection.clone())),
            Some(vs) => {
                // The ledger's counts are read while the query is embedded and the index searched (a new process may
                // spend most of its time loading the index).
                let (counts, hits) =
                    futures::join!(ports.ledger.counts(Some(collection.clone())), nearest(ports, &c, vs, query, depth, filter, &keywords));
                let counts = counts?;
                out.not_synced = counts.pending + counts.failed;
                match hits {
                    Err(SyncFailure::NotSynced(_)) if opts.mode == SearchMode::Hybrid => out.vector_missing = Some(not_synced(collection)),
                    other => vector = other?,
                }
            }
        }
    }

    out.hits = match opts.mode {
        SearchMode::Vector => ranked(vector, Side::Vector, k),
        SearchMode::Keyword => {
            let hits = keyword.into_iter().take(k).map(|h| (h.key, h.chunk, h.score)).collect();
            materialize(ports, &c, &keywords, hits, Side::Keyword).await?
        }
        SearchMode::Hybrid => {
            let fusion = c.settings.fusion.unwrap_or_else(|| FusionSettings::default_for(embedder_kind.as_deref()));
            out.fusion = Some(fusion);
            fuse(ports, &c, &keywords, keyword, vector, fusion, k).await?
        }
    };
    Ok(out)
}

/// Hits of one side, best first, each saying its rank.
fn ranked(hits: Vec<SearchHit>, side: Side, k: usize) -> Vec<SearchHit> {
    hits.into_iter()
        .take(k)
        .enumerate()
        .map(|(i, mut h)| {
            h.found_by = vec![Found { side, rank: i as u32 + 1, score: f64::from(h.score) }];
            h
        })
        .collect()
}

/// The largest document a search reads in its batched read (larger ones are streamed, one by one).
const BATCH_READ_BYTES: u64 = 16 << 20;

/// Keyword hits (key, chunk, score) made whole: snippet, metadata, and whether the text changed since indexed.
async fn materialize(
    ports: &SyncPorts,
    c: &Collection,
    keywords: &KeywordQuery,
    hits: Vec<(DocKey, u32, f64)>,
    side: Side,
) -> Result<Vec<SearchHit>, SyncFailure> {
    // Per document: its metadata, its current chunks, and whether its text is still what was indexed (a file edited
    // outside colstore, not reconciled yet, is not).
    type Current = (serde_json::Map<String, serde_json::Value>, Vec<Chunk>, bool);
    let mut texts: HashMap<DocKey, Option<Current>> = HashMap::new();
    // One batched read for every document; what it cannot answer whole is read one by one below.
    let mut keys: Vec<DocKey> = Vec::new();
    for (key, ..) in &hits {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    for (key, answer) in keys.clone().into_iter().zip(ports.repo.read_documents(&c.name, keys, BATCH_READ_BYTES).await?) {
        match answer {
            Ok(ReadDocument::Whole(meta, bytes)) => {
                let unchanged = ContentHash::of(&bytes) == meta.content_hash;
                let chunks = std::str::from_utf8(&bytes).map(|t| chunk_text(t, &c.settings.chunking)).unwrap_or_default();
                texts.insert(key, Some((meta.metadata.0, chunks, unchanged)));
            }
            Ok(ReadDocument::Missing) => {
                texts.insert(key, None);
            }
            Ok(ReadDocument::TooLarge(_)) | Err(_) => {}
        }
    }
    let mut out = Vec::with_capacity(hits.len());
    for (rank, (key, chunk, score)) in hits.into_iter().enumerate() {
        if !texts.contains_key(&key) {
            let doc = match ports.repo.document(&c.name, &key).await {
                Ok(d) => Some(d),
                Err(RepoError::DocumentNotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let text = match doc {
                Some(d) => current_text(ports, &c.name, &key).await?.map(|t| {
                    let unchanged = t.as_ref().is_some_and(|t| ContentHash::of(t.as_bytes()) == d.content_hash);
                    (d.metadata.0, t.map(|t| chunk_text(&t, &c.settings.chunking)).unwrap_or_default(), unchanged)
                }),
                None => None,
            };
            texts.insert(key.clone(), text);
        }
        // Gone since it was found (deleted between the two reads): left out.
        let Some((metadata, chunks, unchanged)) = &texts[&key] else { continue };
        let current = chunks.get(chunk as usize).filter(|_| *unchanged);
        out.push(SearchHit {
            key: key.to_string(),
            chunk,
            score: score as f32,
            snippet: current
                .map_or_else(|| "(the document changed since it was indexed)".to_owned(), |ch| snippet(&ch.text, keywords, SNIPPET_CHARS)),
            metadata: metadata.clone(),
            stale: current.is_none(),
            found_by: vec![Found { side, rank: rank as u32 + 1, score }],
        });
    }
    Ok(out)
}

/// Reciprocal rank fusion of the two sides' rankings, best `k` first (ties by key, then chunk).
async fn fuse(
    ports: &SyncPorts,
    c: &Collection,
    keywords: &KeywordQuery,
    keyword: Vec<colstore_domain::ports::KeywordHit>,
    vector: Vec<SearchHit>,
    fusion: FusionSettings,
    k: usize,
) -> Result<Vec<SearchHit>, SyncFailure> {
    #[derive(Default)]
    struct Entry {
        fused: f64,
        found_by: Vec<Found>,
        vector: Option<SearchHit>,
    }
    let mut entries: BTreeMap<(String, u32), Entry> = BTreeMap::new();
    let rrf = |weight: f64, rank: usize| weight / (f64::from(fusion.rrf_k()) + rank as f64);
    for (i, h) in keyword.into_iter().enumerate() {
        let e = entries.entry((h.key.to_string(), h.chunk)).or_default();
        e.fused += rrf(fusion.keyword_weight(), i + 1);
        e.found_by.push(Found { side: Side::Keyword, rank: i as u32 + 1, score: h.score });
    }
    for (i, h) in vector.into_iter().enumerate() {
        let e = entries.entry((h.key.clone(), h.chunk)).or_default();
        e.fused += rrf(fusion.vector_weight(), i + 1);
        e.found_by.push(Found { side: Side::Vector, rank: i as u32 + 1, score: f64::from(h.score) });
        e.vector = Some(h);
    }
    let mut best: Vec<((String, u32), Entry)> = entries.into_iter().collect();
    // A stable sort of entries in key order: equal fused scores stay ordered by key, then chunk.
    best.sort_by(|a, b| b.1.fused.total_cmp(&a.1.fused));
    best.truncate(k);
    // The hits only the keyword side found are made whole together (one batched read).
    let mut keyword_only = Vec::new();
    for ((key, chunk), e) in &best {
        if e.vector.is_none() {
            let key = DocKey::parse(key).map_err(|err| SyncFailure::Repo(RepoError::Unsupported(err.to_string())))?;
            keyword_only.push((key, *chunk, e.fused));
        }
    }
    let mut made: HashMap<(String, u32), SearchHit> =
        materialize(ports, c, keywords, keyword_only, Side::Keyword).await?.into_iter().map(|h| ((h.key.clone(), h.chunk), h)).collect();
    let mut out = Vec::with_capacity(best.len());
    for ((key, chunk), e) in best {
        // The vector side already read the chunk's text and metadata; a keyword-only hit deleted meanwhile is gone.
        let Some(mut hit) = e.vector.or_else(|| made.remove(&(key, chunk))) else { continue };
        hit.score = e.fused as f32;
        out.push(SearchHit { found_by: e.found_by, ..hit });
    }
    Ok(out)
}

/// The current text of a document for search: `None` when the document is gone. A file edited outside colstore
/// (filesystem mode) gives its current text; a file that is missing or unreadable gives no text (the hit is marked
/// stale), so one edited file never fails a search of the whole collection.
async fn current_text(ports: &SyncPorts, collection: &CollectionName, key: &DocKey) -> Result<Option<Option<String>>, RepoError> {
    let mut stream = match ports.repo.read_content(collection, key).await {
        Ok((_, stream)) => stream,
        Err(RepoError::DocumentNotFound { .. }) => return Ok(None),
        Err(e @ (RepoError::Corrupt { .. } | RepoError::ContentRead { .. })) => {
            tracing::warn!(collection = %collection, key = %key, error = %e, "search cannot read a document");
            return Ok(Some(None));
        }
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => bytes.extend_from_slice(&b),
            // Every byte of the file as it is now came before this error: the text is the current one.
            Err(e) if colstore_domain::ContentChanged::of(&e).is_some() => {}
            Err(e) => {
                tracing::warn!(collection = %collection, key = %key, error = %e, "search cannot read a document");
                return Ok(Some(None));
            }
        }
    }
    Ok(Some(String::from_utf8(bytes).ok()))
}

/// The `k` nearest chunks of `query` in `c`'s index, whose vectors are set up as `vector_settings` says.
async fn nearest(
    ports: &SyncPorts,
    c: &Collection,
    vector_settings: &colstore_domain::VectorSettings,
    query: &str,
    k: usize,
    filter: Option<&DocFilter>,
    keywords: &KeywordQuery,
) -> Result<Vec<SearchHit>, SyncFailure> {
    let collection = &c.name;
    let mut vectors = ports.embedder.embed(vec![query.to_owned()]).await.map_err(SyncFailure::Embedder)?;
    let vector = vectors.pop().unwrap_or_default();
    let filter = filter.filter(|f| !f.is_everything());
    // Qualifiers (`tag:`, `key:`, times) are not in point payloads: those are checked on each hit's document, and the
    // index gets the metadata part every match passes.
    let post_filter = filter.filter(|f| f.as_metadata_filter().is_none());
    let index_filter = filter
        .map(DocFilter::metadata_prefilter)
        .filter(|f| !f.is_empty())
        .map(|f| f.under("metadata"))
        .transpose()
        .map_err(|e| SyncFailure::Repo(RepoError::Unsupported(e.to_string())))?;
    let name = index_name(ports.store_id, collection);
    let k = k.max(1);
    // Sync states are in the ledger, not in the documents: with a `state:` condition the matching keys are listed once
    // by the repository (which evaluates the whole filter) and each hit is looked up there.
    let state_matches: Option<std::collections::HashSet<DocKey>> = match post_filter {
        Some(f) if f.has_state() => {
            let q = colstore_domain::ListQuery { expr: f.clone(), ..colstore_domain::ListQuery::default() };
            Some(ports.repo.list_documents(collection, &q).await?.items.into_iter().map(|d| d.key).collect())
        }
        _ => None,
    };
    // Documents deleted since the last sync (`col rm`, `col clear`, a file deleted outside colstore) may still have
    // points until the next sync retires them: their hits are hidden, and the index is asked for more to fill `k`.
    // Only hits that share something with the query: with cosine or dot, a score of 0 or less means nothing in common
    // (the built-in `hash` embedder gives exactly 0 to a chunk without a word of the query), and such hits would only
    // pad the top k. Euclidean scores are negated distances, all of them meaningful.
    let related = |score: f32| vector_settings.distance == Distance::Euclid || score > 0.0;
    let mut texts: HashMap<DocKey, Option<Vec<Chunk>>> = HashMap::new();
    let mut limit = k;
    let mut out = Vec::with_capacity(k);
    loop {
        let hits = match ports.index.search(&name, SearchRequest { vector: vector.clone(), limit, filter: index_filter.clone() }).await {
            Err(IndexError::CollectionNotFound(_)) => return Err(SyncFailure::NotSynced(collection.clone())),
            other => other?,
        };
        // Hits come best first: once one is unrelated, so are all the rest, and asking for more finds nothing.
        let exhausted = hits.len() < limit || hits.last().is_some_and(|h| !related(h.score));
        // The documents of this round's hits in one batched read; what it cannot answer whole (a file edited outside
        // colstore, a large or unreadable document) is read one by one below, as before.
        let mut new_keys: Vec<DocKey> = Vec::new();
        for h in hits.iter().filter(|h| related(h.score)) {
            if !texts.contains_key(&h.payload.key) && !new_keys.contains(&h.payload.key) {
                new_keys.push(h.payload.key.clone());
            }
        }
        for (key, answer) in new_keys.clone().into_iter().zip(ports.repo.read_documents(collection, new_keys, BATCH_READ_BYTES).await?) {
            let passes = |meta: &colstore_domain::DocumentMeta| match (post_filter, &state_matches) {
                (None, _) => true,
                (Some(_), Some(keys)) => keys.contains(&key),
                (Some(f), None) => f.matches(meta),
            };
            match answer {
                Ok(ReadDocument::Whole(meta, bytes)) => {
                    let chunks =
                        passes(&meta).then(|| std::str::from_utf8(&bytes).map(|t| chunk_text(t, &c.settings.chunking)).unwrap_or_default());
                    texts.insert(key, chunks);
                }
                Ok(ReadDocument::Missing) => {
                    texts.insert(key, None);
                }
                Ok(ReadDocument::TooLarge(_)) | Err(_) => {}
            }
        }
        out.clear();
        for h in hits.into_iter().filter(|h| related(h.score)) {
            if !texts.contains_key(&h.payload.key) {
                let passes = match (post_filter, &state_matches) {
                    (None, _) => true,
                    (Some(_), Some(keys)) => keys.contains(&h.payload.key),
                    (Some(f), None) => match ports.repo.document(collection, &h.payload.key).await {
                        Ok(d) => f.matches(&d),
                        Err(RepoError::DocumentNotFound { .. }) => false,
                        Err(e) => return Err(e.into()),
                    },
                };
                // A chunk whose text is still where the index has it is current, even in a file edited elsewhere.
                let chunks = if passes {
                    current_text(ports, collection, &h.payload.key)
                        .await?
                        .map(|t| t.map(|t| chunk_text(&t, &c.settings.chunking)).unwrap_or_default())
                } else {
                    None
                };
                texts.insert(h.payload.key.clone(), chunks);
            }
            let Some(chunks) = &texts[&h.payload.key] else { continue };
            let current = chunks.get(h.payload.chunk as usize).filter(|c| c.hash == h.payload.chunk_hash);
            let snippet = current
                .map_or_else(|| "(the document changed since it was synced)".to_owned(), |c| snippet(&c.text, keywords, SNIPPET_CHARS));
            out.push(SearchHit {
                key: h.payload.key.to_string(),
                chunk: h.payload.chunk,
                score: h.score,
                snippet,
                metadata: h.payload.metadata,
                stale: current.is_none(),
                found_by: Vec::new(),
            });
            if out.len() == k {
                break;
            }
        }
        if out.len() >= k || exhausted || limit >= k.saturating_mul(16) {
            break;
        }
        limit = limit.saturating_mul(4);
    }
    // Equal scores are ordered by key and chunk, not by point id (which depends on the store's random id).
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)).then(a.chunk.cmp(&b.chunk)));
    Ok(out)
}
