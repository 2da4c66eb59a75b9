//! `InMemoryRepo` as a [`TextIndex`]: the SQLite adapter's semantics (FTS5, `unicode61 remove_diacritics 2`, BM25
//! with k1 = 1.2 and b = 0.75 over every indexed chunk of the store) computed in memory.
//!
//! Like the adapter, it answers from what the last [`TextIndex::catch_up`] indexed, never from text it did not index:
//! a deleted document's chunks are gone at once (the adapter's trigger), a changed one keeps its old chunks until the
//! next catch-up.

use std::collections::HashMap;

use async_trait::async_trait;
use colstore_domain::ports::{CollectionRepo, KeywordHit, ReadDocument, RepoError, TextCheck, TextIndex};
use colstore_domain::{ChunkingSettings, CollectionName, ContentHash, DocFilter, DocKey, KeywordClause, KeywordQuery, chunk_text, tokens};

use super::InMemoryRepo;

/// One indexed document.
pub(super) struct Indexed {
    hash: ContentHash,
    chunking: ChunkingSettings,
    /// The terms of each chunk, in order.
    chunks: Vec<Vec<String>>,
}

impl Indexed {
    /// A content's chunks as the adapter indexes them (none when it is not UTF-8).
    pub(super) fn of(hash: ContentHash, chunking: ChunkingSettings, bytes: &[u8]) -> Self {
        let chunks = std::str::from_utf8(bytes).map(|t| chunk_text(t, &chunking)).unwrap_or_default();
        Indexed { hash, chunking, chunks: chunks.iter().map(|ch| tokens(&ch.text)).collect() }
    }

    fn current(&self, hash: ContentHash, chunking: &ChunkingSettings) -> bool {
        self.hash == hash && &self.chunking == chunking
    }
}

/// How often a clause occurs in a chunk's terms.
fn occurrences(clause: &KeywordClause, terms: &[String]) -> usize {
    match clause {
        KeywordClause::Term(t) => terms.iter().filter(|x| *x == t).count(),
        KeywordClause::Prefix(p) => terms.iter().filter(|x| x.starts_with(p.as_str())).count(),
        KeywordClause::Phrase(words) if words.is_empty() => 0,
        KeywordClause::Phrase(words) => terms.windows(words.len()).filter(|w| w == words).count(),
    }
}

#[async_trait]
impl TextIndex for InMemoryRepo {
    async fn catch_up(&self, collection: &CollectionName) -> Result<u64, RepoError> {
        let (chunking, stale) = {
            let mut st = self.lock();
            let c = st.collections.get_mut(collection).ok_or_else(|| RepoError::CollectionNotFound(collection.clone()))?;
            let docs = &c.docs;
            c.text.retain(|k, _| docs.contains_key(k));
            let stale: Vec<DocKey> = c
                .docs
                .values()
                .filter(|d| !c.text.get(&d.key).is_some_and(|i| i.current(d.content_hash, &c.settings.chunking)))
                .map(|d| d.key.clone())
                .collect();
            (c.settings.chunking, stale)
        };
        let read = self.read_documents(collection, stale, 64 << 20).await?;
        let mut st = self.lock();
        let c = st.collections.get_mut(collection).ok_or_else(|| RepoError::CollectionNotFound(collection.clone()))?;
        let mut indexed = 0;
        for doc in read {
            let (key, fresh) = match doc {
                Ok(ReadDocument::Whole(meta, bytes)) => (meta.key.clone(), Indexed::of(meta.content_hash, chunking, &bytes)),
                Ok(ReadDocument::TooLarge(meta)) => (meta.key.clone(), Indexed { hash: meta.content_hash, chunking, chunks: Vec::new() }),
                _ => continue,
            };
            // Only the content it was read as, and only with the chunking it was cut with.
            let unchanged = c.docs.get(&key).is_some_and(|d| d.content_hash == fresh.hash) && c.settings.chunking == chunking;
            if unchanged {
                c.text.insert(key, fresh);
                indexed += 1;
            }
        }
        Ok(indexed)
    }

    async fn check(&self, collection: &CollectionName) -> Result<TextCheck, RepoError> {
        // The fake keeps each document's terms with the content and chunking they came from, so it cannot drift or
        // be damaged: a document is indexed or pending. Rows of deleted documents are not answered from (the
        // adapter's trigger deletes them), so they are no orphans either.
        let st = self.lock();
        let c = st.collection(collection)?;
        let indexed =
            c.docs.values().filter(|d| c.text.get(&d.key).is_some_and(|i| i.current(d.content_hash, &c.settings.chunking))).count() as u64;
        Ok(TextCheck { indexed, pending: c.docs.len() as u64 - indexed, ..TextCheck::default() })
    }

    async fn repair(&self, collection: &CollectionName) -> Result<u64, RepoError> {
        self.lock().collection(collection)?;
        Ok(0)
    }

    async fn not_indexed(&self, collection: &CollectionName) -> Result<u64, RepoError> {
        let st = self.lock();
        let c = st.collection(collection)?;
        Ok(c.docs.values().filter(|d| !c.text.get(&d.key).is_some_and(|i| i.current(d.content_hash, &c.settings.chunking))).count() as u64)
    }

    async fn keyword_search(
        &self,
        collection: &CollectionName,
        query: &KeywordQuery,
        filter: &DocFilter,
        limit: usize,
    ) -> Result<Vec<KeywordHit>, RepoError> {
        let st = self.lock();
        st.collection(collection)?;
        if query.is_empty() {
            return Ok(Vec::new());
        }
        // Statistics over every indexed chunk of the store, as FTS5 keeps them for its one table.
        let all: Vec<(&CollectionName, &DocKey, usize, &Vec<String>)> = st
            .collections
            .iter()
            .flat_map(|(name, c)| {
                c.text
                    .iter()
                    .filter(|(k, _)| c.docs.contains_key(*k))
                    .flat_map(move |(k, i)| i.chunks.iter().enumerate().map(move |(n, t)| (name, k, n, t)))
            })
            .collect();
        let rows = all.len() as f64;
        let avg_len = if all.is_empty() { 0.0 } else { all.iter().map(|(.., t)| t.len()).sum::<usize>() as f64 / rows };
        let idf: HashMap<usize, f64> = query
            .clauses
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let with = all.iter().filter(|(.., t)| occurrences(c, t) > 0).count() as f64;
                // FTS5's idf, floored at a small positive value as FTS5 does for very common terms.
                (i, ((rows - with + 0.5) / (with + 0.5)).ln().max(1e-6))
            })
            .collect();
        let (k1, b) = (1.2, 0.75);
        let c = st.collection(collection)?;
        let mut hits: Vec<KeywordHit> = Vec::new();
        for (_, key, n, terms) in all.iter().filter(|(name, ..)| *name == collection) {
            let Some(doc) = c.docs.get(*key) else { continue };
            if !filter.matches_in(doc, c.ledger_state(key)) {
                continue;
            }
            let mut score = 0.0;
            let mut matched = false;
            for (i, clause) in query.clauses.iter().enumerate() {
                let tf = occurrences(clause, terms) as f64;
                if tf > 0.0 {
                    matched = true;
                    score += idf[&i] * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * terms.len() as f64 / avg_len.max(1e-9)));
                }
            }
            if matched {
                hits.push(KeywordHit { key: (*key).clone(), chunk: *n as u32, score });
            }
        }
        hits.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then_with(|| a.key.as_str().as_bytes().cmp(b.key.as_str().as_bytes())).then(a.chunk.cmp(&b.chunk))
        });
        hits.truncate(limit);
        Ok(hits)
    }
}
