//! `source_stamps` (migration 0006): what `col add` saw of each source file when it last wrote the file's document,
//! answered only while the document keeps the version it was recorded for.
//!
//! Both statements work on a bound JSON array, a chunk of keys or stamps at a time, and the lookup answers one packed
//! JSON text per chunk: rows cross from SQLite's worker thread one by one in sqlx, which would cost more than the
//! lookups themselves on 100 000 files.

use colstore_domain::ports::{RepoError, SourceRecord, SourceStamp};
use colstore_domain::{CollectionName, DocKey};

use crate::repo::{backend, collection_id};
use crate::{SqliteRepo, map_err};

/// Keys or stamps per statement.
const CHUNK: usize = 1000;

/// The stamps of the keys bound as a JSON array (`?2`) in collection `?1` whose document still has the recorded
/// version, hash and update time, as one JSON array of `[key, size, mtime_ns, ctime_ns, inode, options, seen_at_ns]`.
pub(crate) const LOOKUP: &str = "SELECT json_group_array(json_array(s.key, s.size, s.mtime_ns, s.ctime_ns, s.inode, s.options, s.seen_at_ns)) \
     FROM source_stamps s JOIN documents d ON d.collection_id = s.collection_id AND d.key = s.key AND d.version = s.version \
     AND d.hash = s.hash AND d.updated_at = s.updated_at \
     WHERE s.collection_id = ?1 AND s.key IN (SELECT value FROM json_each(?2))";

/// Records the stamps bound as a JSON array (`?2`) of `[key, version, hash (hex), size, mtime_ns, ctime_ns, inode,
/// options, seen_at_ns]` in collection `?1`, each only while its document has that version and hash; its update time
/// is taken from the document. `CROSS JOIN` keeps `json_each` the
/// outer loop (SQLite may otherwise walk the whole collection, checked in `plans.rs`).
pub(crate) const RECORD: &str = "INSERT INTO source_stamps \
     (collection_id, key, version, hash, updated_at, size, mtime_ns, ctime_ns, inode, options, seen_at_ns) \
     SELECT d.collection_id, d.key, d.version, d.hash, d.updated_at, \
     j.value ->> 3, j.value ->> 4, j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 8 \
     FROM json_each(?2) j CROSS JOIN documents d ON d.collection_id = ?1 AND d.key = j.value ->> 0 AND d.version = j.value ->> 1 \
     AND d.hash = unhex(j.value ->> 2) \
     WHERE true \
     ON CONFLICT (collection_id, key) DO UPDATE SET version = excluded.version, hash = excluded.hash, \
     updated_at = excluded.updated_at, size = excluded.size, mtime_ns = excluded.mtime_ns, \
     ctime_ns = excluded.ctime_ns, inode = excluded.inode, options = excluded.options, seen_at_ns = excluded.seen_at_ns";

type Row = (String, i64, i64, i64, i64, i64, i64);

impl SqliteRepo {
    pub(crate) async fn source_stamps_impl(
        &self,
        collection: &CollectionName,
        keys: &[DocKey],
    ) -> Result<Vec<Option<SourceStamp>>, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let cid = collection_id(&mut tx, collection).await?;
        let mut found = std::collections::HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let bound = serde_json::to_string(&chunk.iter().map(DocKey::as_str).collect::<Vec<_>>()).map_err(|e| backend(e.to_string()))?;
            let packed: String = sqlx::query_scalar(LOOKUP).bind(cid).bind(bound).fetch_one(&mut *tx).await.map_err(map_err)?;
            let rows: Vec<Row> =
                serde_json::from_str(&packed).map_err(|e| backend(format!("unreadable source stamps in the database: {e}")))?;
            for (key, size, mtime_ns, ctime_ns, inode, options, seen_at_ns) in rows {
                let stamp = SourceStamp { size: size as u64, mtime_ns, ctime_ns, inode: inode as u64, options: options as u64, seen_at_ns };
                found.insert(key, stamp);
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(keys.iter().map(|k| found.get(k.as_str()).copied()).collect())
    }

    pub(crate) async fn record_source_stamps_impl(&self, collection: &CollectionName, records: Vec<SourceRecord>) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        let cid = collection_id(&mut tx, collection).await?;
        for chunk in records.chunks(CHUNK) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|SourceRecord { key, version, content_hash, stamp: s }| {
                    serde_json::json!([
                        key.as_str(),
                        *version as i64,
                        content_hash.to_hex(),
                        s.size as i64,
                        s.mtime_ns,
                        s.ctime_ns,
                        s.inode as i64,
                        s.options as i64,
                        s.seen_at_ns
                    ])
                })
                .collect();
            let bound = serde_json::Value::Array(rows).to_string();
            sqlx::query(RECORD).bind(cid).bind(bound).execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }
}
