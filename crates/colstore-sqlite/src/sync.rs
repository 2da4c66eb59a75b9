//! The `SyncStore` implementation: the sync ledger (`sync_ledger`) and the embedding cache (`embedding_cache`).
//!
//! The repository keeps the ledger in step with documents inside its own write transactions (see [`touch`],
//! [`forget_or_mark_deleted`] and [`enqueue_sync`], called from `put_batch` and `delete_documents`), so a crash can
//! never lose a change that still has to reach the vector index. The methods here are what the sync use case calls.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use colstore_domain::ports::{LedgerEntry, Projection, SyncCounts, SyncError, SyncState, SyncStore};
use colstore_domain::{CollectionName, ContentHash, DocKey, EmbedderId, Timestamp, Vector};
use sqlx::{AssertSqlSafe, Row, SqliteConnection, sqlite::SqliteRow};

use crate::SqliteRepo;
use crate::jobs::cause;

/// Ledger rows per multi-row statement (3 parameters each).
const LEDGER_ROWS_PER_STATEMENT: usize = 500;

/// Cache rows per multi-row statement (3 parameters each; vectors are kilobytes, so keep statements moderate).
const CACHE_ROWS_PER_STATEMENT: usize = 200;

/// Chunk hashes per cache lookup.
const CACHE_LOOKUP_PER_STATEMENT: usize = 500;

/// `mark_synced_batch`, the projections: every item whose document still has the hash the projection was made from
/// becomes synced; the keys it changed come back. ?1 now, ?2 the items as a JSON array of `{k, h, p, n}` (key,
/// expected hash and projected hash in hex, chunk count), ?3 the collection. `CROSS JOIN` keeps the items the outer
/// loop, so each is one lookup in the documents' primary key (checked by `plans::batched_statements_use_indexes`).
pub(crate) const MARK_SYNCED: &str = "INSERT INTO sync_ledger (collection_id, key, state, projected_hash, projected_chunks, attempts, error, updated_at) \
     SELECT d.collection_id, d.key, 'synced', unhex(j.value ->> 'p'), j.value ->> 'n', 0, NULL, ?1 \
     FROM json_each(?2) j CROSS JOIN documents d ON d.collection_id = ?3 AND d.key = j.value ->> 'k' AND d.hash = unhex(j.value ->> 'h') \
     WHERE true \
     ON CONFLICT (collection_id, key) DO UPDATE SET state = 'synced', projected_hash = excluded.projected_hash, \
     projected_chunks = excluded.projected_chunks, attempts = 0, error = NULL, updated_at = excluded.updated_at \
     RETURNING key";

/// `mark_synced_batch`, the deletions: which of the keys (?1, a JSON array) are documents of collection ?2 again.
pub(crate) const STILL_THERE: &str =
    "SELECT j.value FROM json_each(?1) j WHERE EXISTS (SELECT 1 FROM documents d WHERE d.collection_id = ?2 AND d.key = j.value)";

/// `mark_synced_batch`, the deletions: the ledger rows of the keys (?2, a JSON array) of collection ?1 whose
/// documents are gone.
pub(crate) const FORGET_DELETED: &str = "DELETE FROM sync_ledger WHERE collection_id = ?1 AND key IN (SELECT value FROM json_each(?2)) \
     AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.collection_id = ?1 AND d.key = sync_ledger.key)";

pub(crate) fn serr(e: sqlx::Error) -> SyncError {
    SyncError::Backend { backend: "sqlite", source: cause(e) }
}

fn corrupt(what: impl std::fmt::Display) -> SyncError {
    SyncError::Backend { backend: "sqlite", source: format!("bad ledger row in database: {what}").into() }
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn state_str(s: SyncState) -> &'static str {
    match s {
        SyncState::Pending => "pending",
        SyncState::Synced => "synced",
        SyncState::Failed => "failed",
    }
}

/// Marks written documents pending, keeping what was projected and resetting attempts and error. Multi-row statements,
/// inside the caller's transaction.
pub(crate) async fn touch(conn: &mut SqliteConnection, cid: i64, keys: &[&str], now: i64) -> Result<(), sqlx::Error> {
    for chunk in keys.chunks(LEDGER_ROWS_PER_STATEMENT) {
        let values = vec!["(?, ?, 'pending', 0, ?)"; chunk.len()].join(",");
        let sql = format!(
            "INSERT INTO sync_ledger (collection_id, key, state, attempts, updated_at) VALUES {values} \
             ON CONFLICT (collection_id, key) DO UPDATE SET state = 'pending', attempts = 0, error = NULL, updated_at = excluded.updated_at"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for k in chunk {
            q = q.bind(cid).bind((*k).to_owned()).bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// For deleted documents: a projected one becomes a pending deletion, an unprojected one leaves the ledger. Returns
/// how many pending deletions there are now.
pub(crate) async fn forget_or_mark_deleted(conn: &mut SqliteConnection, cid: i64, keys: &[&str], now: i64) -> Result<u64, sqlx::Error> {
    let mut pending = 0;
    for chunk in keys.chunks(LEDGER_ROWS_PER_STATEMENT) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE sync_ledger SET state = 'pending', attempts = 0, error = NULL, updated_at = ? \
             WHERE collection_id = ? AND projected_hash IS NOT NULL AND key IN ({marks})"
        )))
        .bind(now)
        .bind(cid);
        for k in chunk {
            q = q.bind((*k).to_owned());
        }
        pending += q.execute(&mut *conn).await?.rows_affected();
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM sync_ledger WHERE collection_id = ? AND projected_hash IS NULL AND key IN ({marks})"
        )))
        .bind(cid);
        for k in chunk {
            q = q.bind((*k).to_owned());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(pending)
}

/// Enqueues the collection's sync job unless one is pending: one statement against the partial unique index.
pub(crate) async fn enqueue_sync(conn: &mut SqliteConnection, collection: &CollectionName, now: i64) -> Result<(), sqlx::Error> {
    let job = colstore_domain::ports::sync_job::spec(collection);
    sqlx::query(
        "INSERT INTO jobs (kind, dedup_key, payload, state, attempts, max_attempts, run_after, token, errors, created_at, updated_at) \
         VALUES (?, ?, ?, 'pending', 0, ?, ?, 0, '[]', ?, ?) ON CONFLICT (dedup_key) WHERE state = 'pending' DO NOTHING",
    )
    .bind(job.kind)
    .bind(job.dedup_key)
    .bind(job.payload.to_string())
    .bind(i64::from(job.max_attempts))
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ledger entries, with their collection's name and the document's current hash (NULL for a pending deletion).
const LEDGER_SELECT: &str = "SELECT c.name, l.key, l.state, d.hash AS current, l.projected_hash, l.projected_chunks, l.attempts, \
     l.error, l.updated_at FROM sync_ledger l JOIN collections c ON c.id = l.collection_id \
     LEFT JOIN documents d ON d.collection_id = l.collection_id AND d.key = l.key";

fn hash_of(v: Vec<u8>) -> Result<ContentHash, SyncError> {
    ContentHash::from_slice(&v).map_err(corrupt)
}

fn entry_from_row(r: &SqliteRow) -> Result<LedgerEntry, SyncError> {
    let name: String = r.try_get("name").map_err(serr)?;
    let key: String = r.try_get("key").map_err(serr)?;
    let state: String = r.try_get("state").map_err(serr)?;
    let current: Option<Vec<u8>> = r.try_get("current").map_err(serr)?;
    let projected_hash: Option<Vec<u8>> = r.try_get("projected_hash").map_err(serr)?;
    let projected_chunks: Option<i64> = r.try_get("projected_chunks").map_err(serr)?;
    let attempts: i64 = r.try_get("attempts").map_err(serr)?;
    let projected = match projected_hash {
        None => None,
        Some(h) => Some(Projection {
            content_hash: hash_of(h)?,
            chunk_count: u32::try_from(projected_chunks.unwrap_or(0)).map_err(|_| corrupt(format!("projected_chunks of {key}")))?,
        }),
    };
    Ok(LedgerEntry {
        collection: CollectionName::parse(&name).map_err(corrupt)?,
        key: DocKey::parse(&key).map_err(corrupt)?,
        state: match state.as_str() {
            "pending" => SyncState::Pending,
            "synced" => SyncState::Synced,
            "failed" => SyncState::Failed,
            other => return Err(corrupt(format!("unknown state {other:?} of {key}"))),
        },
        current: current.map(hash_of).transpose()?,
        projected,
        attempts: u32::try_from(attempts).map_err(|_| corrupt(format!("attempts of {key}")))?,
        error: r.try_get("error").map_err(serr)?,
        updated_at: Timestamp::from_millis(r.try_get("updated_at").map_err(serr)?),
    })
}

/// Cached vectors for `chunks` (same order), read on `conn` (inside the caller's transaction, if any).
pub(crate) async fn cached_vectors_on(
    conn: &mut SqliteConnection,
    embedder: &EmbedderId,
    chunks: Vec<ContentHash>,
) -> Result<Vec<Option<Vector>>, SyncError> {
    let id = embedder.to_string();
    let mut distinct: Vec<ContentHash> = chunks.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let mut found: HashMap<ContentHash, Vector> = HashMap::with_capacity(distinct.len());
    for group in distinct.chunks(CACHE_LOOKUP_PER_STATEMENT) {
        let marks = vec!["?"; group.len()].join(",");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT chunk_hash, vector FROM embedding_cache WHERE embedder = ? AND chunk_hash IN ({marks})"
        )))
        .bind(id.clone());
        for h in group {
            q = q.bind(h.as_bytes().to_vec());
        }
        for r in q.fetch_all(&mut *conn).await.map_err(serr)? {
            let hash = hash_of(r.try_get(0).map_err(serr)?)?;
            let bytes: Vec<u8> = r.try_get(1).map_err(serr)?;
            found.insert(hash, decode_vector(embedder, &bytes)?);
        }
    }
    Ok(chunks.iter().map(|h| found.get(h).cloned()).collect())
}

/// A page of a collection's ledger rows, in key order, read on `conn`.
pub(crate) async fn ledger_page(
    conn: &mut SqliteConnection,
    cid: i64,
    after: Option<DocKey>,
    limit: usize,
) -> Result<Vec<LedgerEntry>, SyncError> {
    let rows = sqlx::query(AssertSqlSafe(format!("{LEDGER_SELECT} WHERE l.collection_id = ? AND l.key > ? ORDER BY l.key LIMIT ?")))
        .bind(cid)
        .bind(after.map(String::from).unwrap_or_default())
        .bind(limit_of(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(serr)?;
    rows.iter().map(entry_from_row).collect()
}

/// Lowercase hexadecimal, as SQLite's `unhex` reads it.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn decode_vector(embedder: &EmbedderId, b: &[u8]) -> Result<Vector, SyncError> {
    let expected = embedder.dimension.get();
    if !b.len().is_multiple_of(4) {
        return Err(SyncError::Backend {
            backend: "sqlite",
            source: format!("cached vector of {embedder} has {} bytes, not a whole number of f32s", b.len()).into(),
        });
    }
    let got = u32::try_from(b.len() / 4).unwrap_or(u32::MAX);
    if got != expected {
        return Err(SyncError::DimensionMismatch { expected, got });
    }
    Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

impl SqliteRepo {
    async fn sync_collection_id(conn: &mut SqliteConnection, name: &CollectionName) -> Result<i64, SyncError> {
        sqlx::query_scalar::<_, i64>("SELECT id FROM collections WHERE name = ?")
            .bind(name.as_str().to_owned())
            .fetch_optional(conn)
            .await
            .map_err(serr)?
            .ok_or_else(|| SyncError::CollectionNotFound(name.clone()))
    }

    async fn sync_scope(&self, collection: Option<&CollectionName>) -> Result<Option<i64>, SyncError> {
        match collection {
            None => Ok(None),
            Some(c) => {
                let mut conn = self.pool.acquire().await.map_err(serr)?;
                Ok(Some(Self::sync_collection_id(&mut conn, c).await?))
            }
        }
    }
}

/// The ledger and cache in the store's database.
///
/// Ledger rows are written by `put_batch`, `delete_documents` and `delete_collection` in their own transactions;
/// `mark_failed` on a key without a row (its document and projection are gone) changes nothing. The cache keeps the
/// first vector stored for an (embedder, chunk hash): later writes of the same key are ignored.
#[async_trait]
impl SyncStore for SqliteRepo {
    async fn pending(
        &self,
        collection: &CollectionName,
        include_failed: bool,
        after: Option<DocKey>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, SyncError> {
        let mut tx = self.pool.begin().await.map_err(serr)?;
        let cid = Self::sync_collection_id(&mut tx, collection).await?;
        // A walk of the primary key from `after`: each page reads the rows up to its last match, so a whole pass reads
        // each row once.
        let states = if include_failed { "'pending', 'failed'" } else { "'pending'" };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{LEDGER_SELECT} WHERE l.collection_id = ? AND l.key > ? AND l.state IN ({states}) ORDER BY l.key LIMIT ?"
        )))
        .bind(cid)
        // Every key is non-empty, so "after the empty string" is "from the start".
        .bind(after.map(String::from).unwrap_or_default())
        .bind(limit_of(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(serr)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn mark_synced(
        &self,
        collection: &CollectionName,
        key: &DocKey,
        expected: Option<ContentHash>,
        projection: Option<Projection>,
    ) -> Result<bool, SyncError> {
        let mut out = self.mark_synced_batch(collection, vec![(key.clone(), expected, projection)]).await?;
        Ok(out.pop().unwrap_or(false))
    }

    async fn mark_synced_batch(
        &self,
        collection: &CollectionName,
        items: Vec<(DocKey, Option<ContentHash>, Option<Projection>)>,
    ) -> Result<Vec<bool>, SyncError> {
        // One transaction for the whole batch (one durable commit), and one statement per kind of item: the batch is
        // bound as one JSON array that `json_each` reads.
        let now = self.clock.now().as_millis();
        let mut projected = Vec::new();
        let mut deletions = Vec::new();
        for (key, expected, projection) in &items {
            match expected {
                Some(hash) => projected.push(serde_json::json!({
                    "k": key.as_str(),
                    "h": hex(hash.as_bytes()),
                    "p": projection.map(|p| hex(p.content_hash.as_bytes())),
                    "n": projection.map(|p| p.chunk_count),
                })),
                None => deletions.push(serde_json::Value::String(key.as_str().to_owned())),
            }
        }
        let mut tx = self.begin_immediate().await.map_err(serr)?;
        let cid = Self::sync_collection_id(&mut tx, collection).await?;
        let mut synced: HashSet<String> = HashSet::new();
        if !projected.is_empty() {
            // Synced only while the document still has the content the projection was made from.
            let keys: Vec<String> = sqlx::query_scalar(MARK_SYNCED)
                .bind(now)
                .bind(serde_json::Value::Array(projected).to_string())
                .bind(cid)
                .fetch_all(&mut *tx)
                .await
                .map_err(serr)?;
            synced.extend(keys);
        }
        let mut still_there: HashSet<String> = HashSet::new();
        if !deletions.is_empty() {
            // A deletion is projected only while the document is still gone.
            let json = serde_json::Value::Array(deletions).to_string();
            let keys: Vec<String> = sqlx::query_scalar(STILL_THERE).bind(json.clone()).bind(cid).fetch_all(&mut *tx).await.map_err(serr)?;
            still_there.extend(keys);
            sqlx::query(FORGET_DELETED).bind(cid).bind(json).execute(&mut *tx).await.map_err(serr)?;
        }
        tx.commit().await.map_err(serr)?;
        Ok(items
            .iter()
            .map(|(key, expected, _)| match expected {
                Some(_) => synced.contains(key.as_str()),
                None => !still_there.contains(key.as_str()),
            })
            .collect())
    }

    async fn mark_failed(&self, collection: &CollectionName, key: &DocKey, error: String) -> Result<(), SyncError> {
        let now = self.clock.now().as_millis();
        let mut tx = self.begin_immediate().await.map_err(serr)?;
        let cid = Self::sync_collection_id(&mut tx, collection).await?;
        sqlx::query("UPDATE sync_ledger SET state = 'failed', error = ?, attempts = attempts + 1, updated_at = ? WHERE collection_id = ? AND key = ?")
            .bind(error)
            .bind(now)
            .bind(cid)
            .bind(key.as_str().to_owned())
            .execute(&mut *tx)
            .await
            .map_err(serr)?;
        tx.commit().await.map_err(serr)?;
        Ok(())
    }

    async fn mark_all_pending(&self, collection: &CollectionName) -> Result<u64, SyncError> {
        let now = self.clock.now().as_millis();
        let mut tx = self.begin_immediate().await.map_err(serr)?;
        let cid = Self::sync_collection_id(&mut tx, collection).await?;
        let n = sqlx::query("UPDATE sync_ledger SET state = 'pending', attempts = 0, error = NULL, updated_at = ? WHERE collection_id = ?")
            .bind(now)
            .bind(cid)
            .execute(&mut *tx)
            .await
            .map_err(serr)?
            .rows_affected();
        if n > 0 {
            enqueue_sync(&mut tx, collection, now).await.map_err(serr)?;
        }
        tx.commit().await.map_err(serr)?;
        Ok(n)
    }

    async fn counts(&self, collection: Option<CollectionName>) -> Result<SyncCounts, SyncError> {
        let scope = self.sync_scope(collection.as_ref()).await?;
        let rows = sqlx::query("SELECT state, count(*) FROM sync_ledger WHERE (? IS NULL OR collection_id = ?) GROUP BY state")
            .bind(scope)
            .bind(scope)
            .fetch_all(&self.pool)
            .await
            .map_err(serr)?;
        let mut out = SyncCounts::default();
        for r in rows {
            let state: String = r.try_get(0).map_err(serr)?;
            let n = r.try_get::<i64, _>(1).map_err(serr)? as u64;
            match state.as_str() {
                "pending" => out.pending = n,
                "synced" => out.synced = n,
                "failed" => out.failed = n,
                other => return Err(corrupt(format!("unknown state {other:?}"))),
            }
        }
        Ok(out)
    }

    async fn recent_errors(&self, collection: Option<CollectionName>, limit: usize) -> Result<Vec<LedgerEntry>, SyncError> {
        let scope = self.sync_scope(collection.as_ref()).await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{LEDGER_SELECT} WHERE l.state = '{}' AND (? IS NULL OR l.collection_id = ?) \
             ORDER BY l.updated_at DESC, c.name, l.key LIMIT ?",
            state_str(SyncState::Failed)
        )))
        .bind(scope)
        .bind(scope)
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(serr)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn ledger(&self, collection: &CollectionName, after: Option<DocKey>, limit: usize) -> Result<Vec<LedgerEntry>, SyncError> {
        let mut tx = self.pool.begin().await.map_err(serr)?;
        let cid = Self::sync_collection_id(&mut tx, collection).await?;
        ledger_page(&mut tx, cid, after, limit).await
    }

    async fn cached_vectors(&self, embedder: &EmbedderId, chunks: Vec<ContentHash>) -> Result<Vec<Option<Vector>>, SyncError> {
        // One read transaction: one snapshot for the whole answer.
        let mut tx = self.pool.begin().await.map_err(serr)?;
        cached_vectors_on(&mut tx, embedder, chunks).await
    }

    async fn cache_vectors(&self, embedder: &EmbedderId, vectors: Vec<(ContentHash, Vector)>) -> Result<(), SyncError> {
        let expected = embedder.dimension.get();
        if let Some((_, v)) = vectors.iter().find(|(_, v)| v.len() != expected as usize) {
            return Err(SyncError::DimensionMismatch { expected, got: u32::try_from(v.len()).unwrap_or(u32::MAX) });
        }
        if vectors.is_empty() {
            return Ok(());
        }
        let id = embedder.to_string();
        // Encode before taking the write lock.
        let rows: Vec<(Vec<u8>, Vec<u8>)> = vectors.iter().map(|(h, v)| (h.as_bytes().to_vec(), encode_vector(v))).collect();
        let mut tx = self.begin_immediate().await.map_err(serr)?;
        let mut rows = rows.into_iter();
        loop {
            let group: Vec<(Vec<u8>, Vec<u8>)> = rows.by_ref().take(CACHE_ROWS_PER_STATEMENT).collect();
            if group.is_empty() {
                break;
            }
            let values = vec!["(?, ?, ?)"; group.len()].join(",");
            let mut q =
                sqlx::query(AssertSqlSafe(format!("INSERT OR IGNORE INTO embedding_cache (embedder, chunk_hash, vector) VALUES {values}")));
            for (h, v) in group {
                q = q.bind(id.clone()).bind(h).bind(v);
            }
            q.execute(&mut *tx).await.map_err(serr)?;
        }
        tx.commit().await.map_err(serr)?;
        Ok(())
    }

    async fn restore_ledger(&self, collection: &CollectionName, entries: Vec<LedgerEntry>) -> Result<(), SyncError> {
        let mut tx = self.begin_immediate().await.map_err(serr)?;
        let cid = Self::sync_collection_id(&mut tx, collection).await?;
        for chunk in entries.chunks(LEDGER_ROWS_PER_STATEMENT / 3) {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(",");
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO sync_ledger (collection_id, key, state, projected_hash, projected_chunks, attempts, error, updated_at) \
                 VALUES {values} ON CONFLICT (collection_id, key) DO UPDATE SET state = excluded.state, \
                 projected_hash = excluded.projected_hash, projected_chunks = excluded.projected_chunks, attempts = excluded.attempts, \
                 error = excluded.error, updated_at = excluded.updated_at"
            )));
            for e in chunk {
                q = q
                    .bind(cid)
                    .bind(e.key.as_str().to_owned())
                    .bind(state_str(e.state))
                    .bind(e.projected.map(|p| p.content_hash.as_bytes().to_vec()))
                    .bind(e.projected.map(|p| i64::from(p.chunk_count)))
                    .bind(i64::from(e.attempts))
                    .bind(e.error.clone())
                    .bind(e.updated_at.as_millis());
            }
            q.execute(&mut *tx).await.map_err(serr)?;
        }
        tx.commit().await.map_err(serr)?;
        Ok(())
    }
}
