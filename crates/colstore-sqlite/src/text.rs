//! The `TextIndex` implementation: FTS5 over each document's chunks (migration 0008).
//!
//! Triggers mark every new or changed document in `fts_pending` (and drop a deleted one's rows) in the transaction
//! that changes it. In sqlite mode a put also indexes what it wrote **in that same transaction** ([`index_written`]),
//! so the marks are cleared before anyone sees them; what stays marked (filesystem mode, whose files are written
//! after the transaction and changed by hand; a content streamed in too large to hold; a re-chunking settings change)
//! is indexed by [`TextIndex::catch_up`], which reads it through the repository's own batched read (blobs in sqlite
//! mode, files in filesystem mode). Both paths write through [`write_rows`]: a few multi-row statements per batch.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{CollectionRepo, KeywordHit, ReadDocument, RepoError, TextCheck, TextIndex};
use colstore_domain::{
    Chunk, ChunkingSettings, CollectionName, CollectionSettings, ContentHash, DocFilter, DocKey, KeywordClause, KeywordQuery, chunk_text,
};
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use crate::SqliteRepo;
use crate::content::par_map;
use crate::filter_sql::{Arg, doc_filter_sql};
use crate::map_err;
use crate::repo::{backend, bind_args, collection_id};

/// Chunk row ids: document id × 2^20 + chunk number. A document's chunks past 2^20 − 1 (a gigabyte of text) are
/// not indexed.
pub(crate) const CHUNK_BITS: i64 = 20;
const MAX_CHUNKS: usize = (1 << CHUNK_BITS) - 1;

/// Documents indexed per catch-up transaction.
const DOCS_PER_BATCH: usize = 256;

/// The largest document whose text is indexed; larger ones are indexed as no chunks (their bytes are not read).
pub(crate) const MAX_INDEXED_BYTES: u64 = 64 << 20;

/// Chunk rows per multi-row insert.
const ROWS_PER_STATEMENT: usize = 200;

/// One document's full-text rows, made from the content with `hash`.
pub(crate) struct TextRows {
    pub id: i64,
    pub hash: ContentHash,
    pub chunks: Vec<Chunk>,
}

/// The chunks a content is indexed as: none when it is not UTF-8, at most [`MAX_CHUNKS`].
pub(crate) fn chunks_of(bytes: &[u8], chunking: &ChunkingSettings) -> Vec<Chunk> {
    let mut chunks = std::str::from_utf8(bytes).map(|t| chunk_text(t, chunking)).unwrap_or_default();
    chunks.truncate(MAX_CHUNKS);
    chunks
}

/// A JSON array of ids, for `json_each`.
fn ids_json(ids: impl Iterator<Item = i64>) -> String {
    format!("[{}]", ids.map(|i| i.to_string()).collect::<Vec<_>>().join(","))
}

/// The collection's chunking as stored now (read inside the writing transaction, so rows are never made with
/// settings a concurrent `col collection set` replaced).
pub(crate) async fn chunking_now(conn: &mut SqliteConnection, cid: i64) -> Result<ChunkingSettings, RepoError> {
    let json: String =
        sqlx::query_scalar("SELECT settings FROM collections WHERE id = ?").bind(cid).fetch_one(&mut *conn).await.map_err(map_err)?;
    let settings: CollectionSettings = serde_json::from_str(&json).map_err(|e| backend(format!("bad collection settings: {e}")))?;
    Ok(settings.chunking)
}

/// Deletes every full-text row of the documents `ids` (their whole row id ranges).
async fn delete_rows_of(conn: &mut SqliteConnection, ids: &[i64]) -> Result<(), RepoError> {
    for &id in ids {
        let base = id << CHUNK_BITS;
        sqlx::query("DELETE FROM chunk_fts WHERE rowid >= ? AND rowid < ?")
            .bind(base)
            .bind(base + (1 << CHUNK_BITS))
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// Replaces the full-text rows of `docs` inside the caller's write transaction and clears their pending marks:
/// one delete per document that had rows, multi-row inserts for the chunks and the `fts_docs` records.
pub(crate) async fn write_rows(conn: &mut SqliteConnection, docs: &[TextRows]) -> Result<(), RepoError> {
    if docs.is_empty() {
        return Ok(());
    }
    let ids = ids_json(docs.iter().map(|d| d.id));
    let had: Vec<i64> = sqlx::query_scalar("SELECT doc_id FROM fts_docs WHERE doc_id IN (SELECT value FROM json_each(?))")
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    delete_rows_of(&mut *conn, &had).await?;
    let rows: Vec<(i64, &str)> =
        docs.iter().flat_map(|d| d.chunks.iter().map(move |ch| ((d.id << CHUNK_BITS) + i64::from(ch.index), ch.text.as_str()))).collect();
    for part in rows.chunks(ROWS_PER_STATEMENT) {
        let values = vec!["(?, ?)"; part.len()].join(",");
        let mut q = sqlx::query(AssertSqlSafe(format!("INSERT INTO chunk_fts (rowid, text) VALUES {values}")));
        for (rowid, text) in part {
            q = q.bind(*rowid).bind(*text);
        }
        q.execute(&mut *conn).await.map_err(map_err)?;
    }
    for part in docs.chunks(ROWS_PER_STATEMENT) {
        let values = vec!["(?, ?, ?)"; part.len()].join(",");
        let mut q = sqlx::query(AssertSqlSafe(format!("INSERT OR REPLACE INTO fts_docs (doc_id, hash, chunks) VALUES {values}")));
        for d in part {
            q = q.bind(d.id).bind(d.hash.as_bytes().to_vec()).bind(d.chunks.len() as i64);
        }
        q.execute(&mut *conn).await.map_err(map_err)?;
    }
    sqlx::query("DELETE FROM fts_pending WHERE doc_id IN (SELECT value FROM json_each(?))")
        .bind(&ids)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Indexes, inside a put's write transaction, the documents it just wrote whose text it holds: `(key, hash, text)`
/// of each document whose content changed. Chunking runs on worker threads; the rest stays pending for
/// [`TextIndex::catch_up`] (nothing is lost by not indexing here, only deferred).
pub(crate) async fn index_written(
    conn: &mut SqliteConnection,
    cid: i64,
    written: Vec<(DocKey, ContentHash, Bytes)>,
) -> Result<(), RepoError> {
    if written.is_empty() {
        return Ok(());
    }
    let keys =
        serde_json::to_string(&written.iter().map(|(k, _, _)| k.as_str()).collect::<Vec<_>>()).map_err(|e| backend(e.to_string()))?;
    let ids: HashMap<String, i64> =
        sqlx::query_as("SELECT key, id FROM documents WHERE collection_id = ? AND key IN (SELECT value FROM json_each(?))")
            .bind(cid)
            .bind(keys)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?
            .into_iter()
            .collect();
    let chunking = chunking_now(&mut *conn, cid).await?;
    let items: Vec<(i64, ContentHash, Bytes)> =
        written.into_iter().filter_map(|(k, h, b)| ids.get(k.as_str()).map(|&id| (id, h, b))).collect();
    let docs = tokio::task::spawn_blocking(move || {
        par_map(items, |(id, hash, bytes)| TextRows { id, hash, chunks: chunks_of(&bytes, &chunking) })
    })
    .await
    .map_err(|e| backend(format!("chunking task failed: {e}")))?;
    write_rows(conn, &docs).await
}

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
        let mut indexed = 0u64;
        // Restarted from the top when the collection's chunking changes while it runs.
        'restart: loop {
            let c = self.collection(collection).await?;
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
                let Some(last) = rows.last() else { break 'restart };
                after = last.try_get(0).map_err(map_err)?;
                let mut pending = Vec::with_capacity(rows.len());
                for r in &rows {
                    let id: i64 = r.try_get(0).map_err(map_err)?;
                    let key: String = r.try_get(1).map_err(map_err)?;
                    let hash = crate::repo::hash_from(r.try_get(2).map_err(map_err)?)?;
                    pending.push((id, DocKey::parse(&key).map_err(|e| backend(e.to_string()))?, hash));
                }
                let read = self.read_documents(collection, pending.iter().map(|(_, k, _)| k.clone()).collect(), MAX_INDEXED_BYTES).await?;
                // Changed since the row was read, or unreadable now (a damaged blob, a file being edited): it stays
                // pending for the next catch-up. Too large: indexed as no chunks.
                let items: Vec<(i64, ContentHash, Option<Bytes>)> = pending
                    .iter()
                    .zip(read)
                    .filter_map(|(&(id, _, hash), doc)| match doc {
                        Ok(ReadDocument::Whole(meta, bytes)) if meta.content_hash == hash => Some((id, hash, Some(bytes))),
                        Ok(ReadDocument::TooLarge(meta)) if meta.content_hash == hash => Some((id, hash, None)),
                        _ => None,
                    })
                    .collect();
                let chunking = c.settings.chunking;
                let docs = tokio::task::spawn_blocking(move || {
                    par_map(items, |(id, hash, bytes)| TextRows {
                        id,
                        hash,
                        chunks: bytes.map(|b| chunks_of(&b, &chunking)).unwrap_or_default(),
                    })
                })
                .await
                .map_err(|e| backend(format!("chunking task failed: {e}")))?;
                let mut tx = self.begin_write().await?;
                let cid = collection_id(&mut tx, collection).await?;
                if chunking_now(&mut tx, cid).await? != c.settings.chunking {
                    continue 'restart;
                }
                // Only the content each was read as: a write since then left it pending with another hash.
                let current: HashMap<i64, Vec<u8>> =
                    sqlx::query_as("SELECT id, hash FROM documents WHERE id IN (SELECT value FROM json_each(?))")
                        .bind(ids_json(docs.iter().map(|d| d.id)))
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .into_iter()
                        .collect();
                let docs: Vec<TextRows> =
                    docs.into_iter().filter(|d| current.get(&d.id).map(Vec::as_slice) == Some(d.hash.as_bytes().as_slice())).collect();
                write_rows(&mut tx, &docs).await?;
                tx.commit().await.map_err(map_err)?;
                indexed += docs.len() as u64;
            }
        }
        Ok(indexed)
    }

    async fn check(&self, collection: &CollectionName) -> Result<TextCheck, RepoError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let cid = collection_id(&mut conn, collection).await?;
        // Rows per document, from the index itself (a contentless table still lists its row ids).
        let rows: HashMap<i64, i64> =
            sqlx::query_as(AssertSqlSafe(format!("SELECT rowid >> {CHUNK_BITS}, count(*) FROM chunk_fts GROUP BY 1")))
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)?
                .into_iter()
                .collect();
        let docs = sqlx::query(
            "SELECT d.id, d.key, d.hash, f.hash AS indexed, f.chunks, p.doc_id IS NOT NULL AS pending FROM documents d              LEFT JOIN fts_docs f ON f.doc_id = d.id LEFT JOIN fts_pending p ON p.doc_id = d.id WHERE d.collection_id = ? ORDER BY d.key",
        )
        .bind(cid)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        let mut check = TextCheck::default();
        for r in &docs {
            if r.try_get::<bool, _>("pending").map_err(map_err)? {
                check.pending += 1;
                continue;
            }
            let id: i64 = r.try_get("id").map_err(map_err)?;
            let hash: Vec<u8> = r.try_get("hash").map_err(map_err)?;
            let indexed: Option<Vec<u8>> = r.try_get("indexed").map_err(map_err)?;
            let chunks: Option<i64> = r.try_get("chunks").map_err(map_err)?;
            if indexed.as_deref() == Some(hash.as_slice()) && chunks == Some(rows.get(&id).copied().unwrap_or(0)) {
                check.indexed += 1;
            } else {
                let key: String = r.try_get("key").map_err(map_err)?;
                check.drift.push(DocKey::parse(&key).map_err(|e| backend(e.to_string()))?);
            }
        }
        let orphan_records: i64 = sqlx::query_scalar("SELECT count(*) FROM fts_docs WHERE doc_id NOT IN (SELECT id FROM documents)")
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        let orphan_rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM chunk_fts WHERE (rowid >> {CHUNK_BITS}) NOT IN (SELECT id FROM documents)"
        )))
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        check.orphans = (orphan_records + orphan_rows) as u64;
        drop(conn);
        // FTS5's own structure check is an INSERT of a command: run it in a write transaction that is rolled back
        // (not possible in a store opened read-only, whose rows and records were still compared above).
        if self.read_only {
            return Ok(check);
        }
        let mut tx = self.begin_write().await?;
        if let Err(e) = sqlx::query("INSERT INTO chunk_fts (chunk_fts, rank) VALUES ('integrity-check', 0)").execute(&mut *tx).await {
            check.damaged = Some(e.to_string());
        }
        tx.rollback().await.map_err(map_err)?;
        Ok(check)
    }

    async fn repair(&self, collection: &CollectionName) -> Result<u64, RepoError> {
        let check = self.check(collection).await?;
        if check.is_clean() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let cid = collection_id(&mut tx, collection).await?;
        let marked = if check.damaged.is_some() {
            // Rebuilt from nothing: every document of the store is indexed again by the next catch-ups.
            sqlx::query("INSERT INTO chunk_fts (chunk_fts) VALUES ('delete-all')").execute(&mut *tx).await.map_err(map_err)?;
            sqlx::query("DELETE FROM fts_docs").execute(&mut *tx).await.map_err(map_err)?;
            sqlx::query("INSERT INTO fts_pending (doc_id) SELECT id FROM documents WHERE id NOT IN (SELECT doc_id FROM fts_pending)")
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected()
        } else {
            let orphans: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT DISTINCT rowid >> {CHUNK_BITS} FROM chunk_fts WHERE (rowid >> {CHUNK_BITS}) NOT IN (SELECT id FROM documents)"
            )))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            delete_rows_of(&mut tx, &orphans).await?;
            sqlx::query("DELETE FROM fts_docs WHERE doc_id NOT IN (SELECT id FROM documents)").execute(&mut *tx).await.map_err(map_err)?;
            // A drifted document loses its rows and its record here (rows without a record would otherwise survive
            // the catch-up, which replaces the rows of recorded documents), and is indexed again by the catch-up.
            let keys =
                serde_json::to_string(&check.drift.iter().map(DocKey::as_str).collect::<Vec<_>>()).map_err(|e| backend(e.to_string()))?;
            let ids: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM documents WHERE collection_id = ? AND key IN (SELECT value FROM json_each(?))")
                    .bind(cid)
                    .bind(keys)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
            delete_rows_of(&mut tx, &ids).await?;
            let ids = ids_json(ids.into_iter());
            sqlx::query("DELETE FROM fts_docs WHERE doc_id IN (SELECT value FROM json_each(?))")
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query(
                "INSERT INTO fts_pending (doc_id) SELECT value FROM json_each(?) WHERE value NOT IN (SELECT doc_id FROM fts_pending)",
            )
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected()
        };
        tx.commit().await.map_err(map_err)?;
        Ok(marked)
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
        let indexed = crate::filter_sql::indexed_paths(&mut conn, cid).await.map_err(map_err)?;
        // The full-text match drives; conditions on tags and indexed fields are probes of each hit's terms.
        let terms = crate::filter_sql::Terms { cid, indexed: &indexed, drive: None };
        let filter_sql = if filter.is_everything() { "1".to_owned() } else { doc_filter_sql(filter, &mut args, Some(terms)) };
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
                    key: DocKey::parse(&key).map_err(|e| backend(e.to_string()))?,
                    chunk: u32::try_from(chunk).unwrap_or(u32::MAX),
                    score: -rank,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    //! Damage only this adapter can suffer (rows and records out of step, a broken FTS5 structure), found by `check`
    //! and made right by `repair` + `catch_up`.
    use std::sync::Arc;

    use colstore_domain::ports::TextIndex;
    use colstore_domain::{DocFilter, KeywordQuery};
    use colstore_testkit::repo::{create, plain, put};

    use crate::{SqliteOptions, SqliteRepo};

    async fn store(dir: &std::path::Path) -> SqliteRepo {
        let clock = Arc::new(colstore_testkit::ManualClock::at_2024());
        SqliteRepo::open(&dir.join("colstore.db"), SqliteOptions { create: true, ..SqliteOptions::default() }, clock).await.expect("open")
    }

    async fn exec(repo: &SqliteRepo, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&repo.pool).await.expect(sql);
    }

    async fn hits(repo: &SqliteRepo, c: &colstore_domain::CollectionName, q: &str) -> Vec<String> {
        let hits = repo.keyword_search(c, &KeywordQuery::parse(q), &DocFilter::default(), 10).await.unwrap();
        hits.iter().map(|h| h.key.to_string()).collect()
    }

    #[tokio::test]
    async fn drift_and_orphans_are_found_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let repo = store(dir.path()).await;
        let c = create(&repo, "notes").await;
        put(&repo, &c, vec![plain("a.md", "alpha"), plain("b.md", "bravo"), plain("c.md", "charlie")]).await;
        assert!(repo.check(&c).await.unwrap().is_clean());
        exec(&repo, "UPDATE fts_docs SET hash = x'00' WHERE doc_id = (SELECT id FROM documents WHERE key = 'a.md')").await;
        exec(&repo, "DELETE FROM fts_docs WHERE doc_id = (SELECT id FROM documents WHERE key = 'b.md')").await;
        exec(&repo, "INSERT INTO chunk_fts (rowid, text) VALUES (999 << 20, 'ghost words')").await;
        let check = repo.check(&c).await.unwrap();
        assert_eq!(check.drift.iter().map(|k| k.as_str()).collect::<Vec<_>>(), ["a.md", "b.md"], "{check:?}");
        assert_eq!((check.indexed, check.pending, check.orphans), (1, 0, 1), "{check:?}");
        assert_eq!(check.damaged, None);
        assert_eq!(hits(&repo, &c, "ghost").await, Vec::<String>::new(), "orphan rows belong to no document of the collection");

        assert_eq!(repo.repair(&c).await.unwrap(), 2);
        assert_eq!(repo.catch_up(&c).await.unwrap(), 2);
        let check = repo.check(&c).await.unwrap();
        assert!(check.is_clean(), "{check:?}");
        assert_eq!(check.indexed, 3);
        assert_eq!(hits(&repo, &c, "alpha bravo").await, ["a.md", "b.md"]);
        let rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM chunk_fts WHERE rowid >> 20 = (SELECT id FROM documents WHERE key = 'b.md')")
                .fetch_one(&repo.pool)
                .await
                .unwrap();
        assert_eq!(rows, 1, "the rows b.md had without a record are replaced, not doubled");
    }

    #[tokio::test]
    async fn a_damaged_index_is_rebuilt_from_the_documents() {
        let dir = tempfile::tempdir().unwrap();
        let repo = store(dir.path()).await;
        let c = create(&repo, "notes").await;
        let docs = (0..50).map(|i| plain(&format!("n{i:02}.md"), format!("word{i} common text number {i}"))).collect();
        put(&repo, &c, docs).await;
        exec(&repo, "UPDATE chunk_fts_data SET block = zeroblob(length(block)) WHERE id = (SELECT max(id) FROM chunk_fts_data)").await;
        let check = repo.check(&c).await.unwrap();
        assert!(check.damaged.is_some(), "{check:?}");
        assert_eq!(repo.repair(&c).await.unwrap(), 50);
        assert_eq!(repo.catch_up(&c).await.unwrap(), 50);
        let check = repo.check(&c).await.unwrap();
        assert!(check.is_clean(), "{check:?}");
        assert_eq!(hits(&repo, &c, "word7").await, ["n07.md"]);
    }
}
