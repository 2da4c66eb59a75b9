//! The `TextIndex` implementation: FTS5 over each document's chunks (migration 0008).
//!
//! Triggers mark every new or changed document in `fts_pending` (and drop a deleted one's rows) in the transaction
//! that changes it; [`TextIndex::catch_up`] reads what is pending through the repository's own batched read (so both
//! storage modes index the same way: blobs in sqlite mode, files in filesystem mode), chunks it with the collection's
//! settings, and replaces its rows in one transaction per batch, skipping any document that changed meanwhile.

use async_trait::async_trait;
use colstore_domain::ports::{CollectionRepo, KeywordHit, ReadDocument, RepoError, TextIndex};
use colstore_domain::{CollectionName, DocFilter, DocKey, KeywordClause, KeywordQuery, chunk_text};
use sqlx::{AssertSqlSafe, Row};

use crate::SqliteRepo;
use crate::filter_sql::{Arg, doc_filter_sql};
use crate::map_err;
use crate::repo::{bind_args, collection_id};

/// Chunk row ids: document id × 2^20 + chunk number. A document's chunks past 2^20 − 1 (a gigabyte of text) are
/// not indexed.
const CHUNK_BITS: i64 = 20;
const MAX_CHUNKS: usize = (1 << CHUNK_BITS) - 1;

/// Documents indexed per transaction.
const DOCS_PER_BATCH: usize = 256;

/// The largest document whose text is indexed; larger ones are indexed as no chunks (their bytes are not read).
const MAX_INDEXED_BYTES: u64 = 64 << 20;

/// Chunk rows per multi-row insert.
const ROWS_PER_STATEMENT: usize = 200;

/// The FTS5 query for a keyword query: each clause a quoted string (so no user text is FTS5 syntax), joined by OR.
pub(crate) fn fts_query(q: &KeywordQuery) -> String {
    let quote = |w: &str| format!("\"{}\"", w.replace('"', "\"\""));
    q.clauses
        .iter()
        .map(|c| match c {
            KeywordClause::Term(t) => quote(t),
            KeywordClause::Prefix(p) => format!("{} *", quote(p)),
            KeywordClause::Phrase(words) => quote(&words.join(" ")),
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

#[async_trait]
impl TextIndex for SqliteRepo {
    async fn catch_up(&self, collection: &CollectionName) -> Result<u64, RepoError> {
        let c = self.collection(collection).await?;
        let mut indexed = 0u64;
        let mut after = i64::MIN;
        loop {
            let rows = sqlx::query(
                "SELECT p.doc_id, d.key, d.hash FROM fts_pending p JOIN documents d ON d.id = p.doc_id \
                 WHERE d.collection_id = (SELECT id FROM collections WHERE name = ?) AND p.doc_id > ? ORDER BY p.doc_id LIMIT ?",
            )
            .bind(collection.as_str().to_owned())
            .bind(after)
            .bind(DOCS_PER_BATCH as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
            let Some(last) = rows.last() else { break };
            after = last.try_get(0).map_err(map_err)?;
            let mut pending = Vec::with_capacity(rows.len());
            for r in &rows {
                let id: i64 = r.try_get(0).map_err(map_err)?;
                let key: String = r.try_get(1).map_err(map_err)?;
                let hash: Vec<u8> = r.try_get(2).map_err(map_err)?;
                let key = DocKey::parse(&key).map_err(|e| crate::repo::backend(e.to_string()))?;
                pending.push((id, key, hash));
            }
            let read = self.read_documents(collection, pending.iter().map(|(_, k, _)| k.clone()).collect(), MAX_INDEXED_BYTES).await?;
            let mut tx = self.begin_write().await?;
            for ((id, _, hash), doc) in pending.iter().zip(read) {
                let chunks = match doc {
                    Ok(ReadDocument::Whole(meta, bytes)) if meta.content_hash.as_bytes().as_slice() == hash.as_slice() => {
                        std::str::from_utf8(&bytes).map(|t| chunk_text(t, &c.settings.chunking)).unwrap_or_default()
                    }
                    Ok(ReadDocument::TooLarge(meta)) if meta.content_hash.as_bytes().as_slice() == hash.as_slice() => Vec::new(),
                    // Changed since the row was read, or unreadable now (a damaged blob, a file being edited): it stays
                    // pending for the next catch-up.
                    _ => continue,
                };
                // Only the content it was read as: a write since then left it pending with another hash.
                let current: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM documents WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if current.as_deref() != Some(hash.as_slice()) {
                    continue;
                }
                let base = id << CHUNK_BITS;
                sqlx::query("DELETE FROM chunk_fts WHERE rowid >= ? AND rowid < ?")
                    .bind(base)
                    .bind(base + (1 << CHUNK_BITS))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let chunks = &chunks[..chunks.len().min(MAX_CHUNKS)];
                for part in chunks.chunks(ROWS_PER_STATEMENT) {
                    let values = vec!["(?, ?)"; part.len()].join(",");
                    let mut q = sqlx::query(AssertSqlSafe(format!("INSERT INTO chunk_fts (rowid, text) VALUES {values}")));
                    for ch in part {
                        q = q.bind(base + i64::from(ch.index)).bind(ch.text.clone());
                    }
                    q.execute(&mut *tx).await.map_err(map_err)?;
                }
                sqlx::query("INSERT OR REPLACE INTO fts_docs (doc_id, hash, chunks) VALUES (?, ?, ?)")
                    .bind(id)
                    .bind(hash.clone())
                    .bind(chunks.len() as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query("DELETE FROM fts_pending WHERE doc_id = ?").bind(id).execute(&mut *tx).await.map_err(map_err)?;
                indexed += 1;
            }
            tx.commit().await.map_err(map_err)?;
        }
        Ok(indexed)
    }

    async fn not_indexed(&self, collection: &CollectionName) -> Result<u64, RepoError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let cid = collection_id(&mut conn, collection).await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM fts_pending p JOIN documents d ON d.id = p.doc_id WHERE d.collection_id = ?")
            .bind(cid)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn keyword_search(
        &self,
        collection: &CollectionName,
        query: &KeywordQuery,
        filter: &DocFilter,
        limit: usize,
    ) -> Result<Vec<KeywordHit>, RepoError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let cid = collection_id(&mut conn, collection).await?;
        if query.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut args = vec![Arg::Text(fts_query(query)), Arg::Int(cid)];
        let filter_sql = if filter.is_everything() { "1".to_owned() } else { doc_filter_sql(filter, &mut args) };
        // bm25() is lower for better matches; ties by key then chunk, as the port says.
        let sql = format!(
            "SELECT d.key, f.rowid & {mask}, bm25(chunk_fts) AS rank FROM chunk_fts f JOIN documents d ON d.id = f.rowid >> {CHUNK_BITS} \
             WHERE chunk_fts MATCH ? AND d.collection_id = ? AND {filter_sql} ORDER BY rank, d.key, f.rowid LIMIT ?",
            mask = (1i64 << CHUNK_BITS) - 1
        );
        let rows = bind_args(sqlx::query(AssertSqlSafe(sql)), &args)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let key: String = r.try_get(0).map_err(map_err)?;
                let chunk: i64 = r.try_get(1).map_err(map_err)?;
                let rank: f64 = r.try_get(2).map_err(map_err)?;
                Ok(KeywordHit {
                    key: DocKey::parse(&key).map_err(|e| crate::repo::backend(e.to_string()))?,
                    chunk: u32::try_from(chunk).unwrap_or(u32::MAX),
                    score: -rank,
                })
            })
            .collect()
    }
}
