//! `VectorIndex` for [`EmbeddedIndex`]: the port's methods, over the database and the in-memory copies.

use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{
    IndexCapabilities, IndexError, IndexHealth, ScrollPage, ScrollRequest, SearchRequest, StoredPoint, VectorIndex,
};
use colstore_domain::{Distance, Filter, IndexName, Point, PointId, ScoredPoint, VectorSettings};
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};

use crate::codec::{
    backend, db_err, decode_vector_into, dimension_mismatch, effective, encode_vector, id_bytes, id_from, parse_payload_map,
    payload_from_map,
};
use crate::index::{BACKEND, Change, EmbeddedIndex, INLINE_SEARCH_FLOATS, Prepared, ROWS_PER_STATEMENT, bump, existing, info};
use crate::rows::Rows;
use crate::{kernel, sidecar};

#[async_trait]
impl VectorIndex for EmbeddedIndex {
    fn capabilities(&self) -> IndexCapabilities {
        IndexCapabilities {
            max_batch_points: 1024,
            max_request_bytes: 256 * 1024 * 1024,
            filter_should: true,
            exact_count: true,
            snapshots: false,
        }
    }

    async fn health(&self) -> Result<IndexHealth, IndexError> {
        let answer: Result<String, sqlx::Error> = sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&self.inner.pool).await;
        Ok(match answer {
            Ok(v) => IndexHealth { backend: BACKEND.to_owned(), version: Some(format!("sqlite {v}")), ok: true, detail: None },
            Err(e) => IndexHealth {
                backend: BACKEND.to_owned(),
                version: None,
                ok: false,
                detail: Some(format!("{}: {e}", self.inner.path.display())),
            },
        })
    }

    async fn ensure_collection(&self, name: &IndexName, settings: &VectorSettings) -> Result<(), IndexError> {
        let dim = settings.embedder.dimension.get();
        let mut tx = self.begin_write().await?;
        if let Some(found) = info(&mut tx, name).await? {
            let wanted = dim as usize;
            if found.dim != wanted {
                return Err(dimension_mismatch(found.dim, wanted));
            }
            if found.distance != settings.distance {
                // The port has no variant for "other settings" but this one (see `IndexError::DimensionMismatch`).
                return Err(dimension_mismatch(found.dim, wanted));
            }
            return Ok(());
        }
        sqlx::query("INSERT INTO index_collections (name, dimension, distance, stamp) VALUES (?, ?, ?, random())")
            .bind(name.as_str())
            .bind(i64::from(dim))
            .bind(settings.distance.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn drop_collection(&self, name: &IndexName) -> Result<bool, IndexError> {
        let mut tx = self.begin_write().await?;
        let Some(found) = info(&mut tx, name).await? else { return Ok(false) };
        // The points go with their collection through `ON DELETE CASCADE`, which skips the per-row parent check a
        // plain `DELETE FROM points` makes while foreign keys are enforced (a third of the time of a large drop). The
        // second statement finds nothing then, and still empties the collection on a connection without them.
        sqlx::query("DELETE FROM index_collections WHERE id = ?").bind(found.id).execute(&mut *tx).await.map_err(db_err)?;
        sqlx::query("DELETE FROM points WHERE collection_id = ?").bind(found.id).execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.cache().remove(name);
        // Ids are never reused, so a file left behind could never be used; it would only take space.
        if let Err(e) = sidecar::remove(&self.inner.sidecars, found.id) {
            tracing::warn!(collection = %name, "cannot remove the snapshot file of the dropped collection: {e}");
        }
        Ok(true)
    }

    async fn upsert(&self, name: &IndexName, points: Vec<Point>) -> Result<(), IndexError> {
        let mut tx = self.begin_write().await?;
        let found = existing(&mut tx, name).await?;
        // Validate the whole batch before writing anything; dropping the transaction rolls back.
        if let Some(bad) = points.iter().find(|p| p.vector.len() != found.dim) {
            return Err(dimension_mismatch(found.dim, bad.vector.len()));
        }
        if points.is_empty() {
            return Ok(());
        }
        let mut prepared = Vec::with_capacity(points.len());
        for p in points {
            let mut vector = p.vector;
            if found.distance == Distance::Cosine {
                kernel::normalise(&mut vector);
            }
            let payload = match serde_json::to_value(&p.payload) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(backend("a payload did not serialise to a JSON object")),
                Err(e) => return Err(backend(format!("cannot serialise the payload of point {}: {e}", p.id))),
            };
            let payload_json = serde_json::to_string(&payload).map_err(|e| backend(e.to_string()))?;
            prepared.push(Prepared { id: p.id, vector, payload, payload_json });
        }
        for chunk in prepared.chunks(ROWS_PER_STATEMENT) {
            let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(",");
            let sql = format!(
                "INSERT INTO points (collection_id, id, payload, vector) VALUES {values} \
                 ON CONFLICT (collection_id, id) DO UPDATE SET payload = excluded.payload, vector = excluded.vector"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for p in chunk {
                q = q.bind(found.id).bind(id_bytes(&p.id).as_slice()).bind(p.payload_json.as_str()).bind(encode_vector(&p.vector));
            }
            q.execute(&mut *tx).await.map_err(db_err)?;
        }
        let version = bump(&mut tx, found.id).await?;
        tx.commit().await.map_err(db_err)?;
        self.apply(name, found.id, version, Change::Upsert(prepared));
        Ok(())
    }

    async fn delete(&self, name: &IndexName, ids: Vec<PointId>) -> Result<(), IndexError> {
        let mut tx = self.begin_write().await?;
        let found = existing(&mut tx, name).await?;
        let deleted = Self::delete_ids(&mut tx, found.id, &ids).await?;
        if deleted.is_empty() {
            // Nothing changed: leave the version (and so every in-memory copy) as it is.
            return Ok(());
        }
        let version = bump(&mut tx, found.id).await?;
        tx.commit().await.map_err(db_err)?;
        self.apply(name, found.id, version, Change::Delete(deleted));
        Ok(())
    }

    async fn delete_by_filter(&self, name: &IndexName, filter: &Filter) -> Result<Option<u64>, IndexError> {
        let mut tx = self.begin_write().await?;
        let found = existing(&mut tx, name).await?;
        let scope = Rows::for_filter(Some(filter));
        if scope == Rows::Nothing {
            return Ok(Some(0));
        }
        // The write lock is held, so an in-memory copy at this version shows exactly what will be deleted from.
        let in_memory = if scope == Rows::All { self.matching_in_memory(name, &found, filter).await? } else { None };
        let matching = match in_memory {
            Some(ids) => ids,
            None => {
                let sql = format!("SELECT id, payload FROM {} WHERE collection_id = ?{}", scope.table(), scope.clause());
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(found.id);
                for k in scope.keys() {
                    q = q.bind(k.as_str());
                }
                let mut matching = Vec::new();
                let mut rows = q.fetch(&mut *tx);
                while let Some(row) = rows.try_next().await.map_err(db_err)? {
                    let id = id_from(row.try_get::<&[u8], _>(0).map_err(db_err)?)?;
                    if filter.matches(&parse_payload_map(row.try_get::<&str, _>(1).map_err(db_err)?, &id)?) {
                        matching.push(id);
                    }
                }
                matching
            }
        };
        let deleted = Self::delete_ids(&mut tx, found.id, &matching).await?;
        let n = deleted.len() as u64;
        if deleted.is_empty() {
            return Ok(Some(0));
        }
        let version = bump(&mut tx, found.id).await?;
        tx.commit().await.map_err(db_err)?;
        self.apply(name, found.id, version, Change::Delete(deleted));
        Ok(Some(n))
    }

    async fn scroll(&self, name: &IndexName, request: ScrollRequest) -> Result<ScrollPage, IndexError> {
        if request.limit == 0 {
            return Err(backend("the scroll limit must be at least 1"));
        }
        let filter = effective(request.filter);
        let scope = Rows::for_filter(filter.as_ref());
        let mut tx = self.begin_read().await?;
        let found = existing(&mut tx, name).await?;
        if scope == Rows::Nothing {
            return Ok(ScrollPage { points: Vec::new(), next: None });
        }
        let columns = if request.with_vectors { "id, payload, vector" } else { "id, payload" };
        // Without a filter the database stops after the one point past the page; with one, rows are read in id
        // order until enough match.
        let limit_clause = if filter.is_none() { " LIMIT ?" } else { "" };
        let sql = format!(
            "SELECT {columns} FROM {} WHERE collection_id = ?{} AND id >= ? ORDER BY id{limit_clause}",
            scope.table(),
            scope.clause()
        );
        // The empty blob sorts before every id.
        let from: Vec<u8> = request.from.map(|id| id_bytes(&id).to_vec()).unwrap_or_default();
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(found.id);
        for k in scope.keys() {
            q = q.bind(k.as_str());
        }
        q = q.bind(from);
        if filter.is_none() {
            q = q.bind(i64::try_from(request.limit.saturating_add(1)).unwrap_or(i64::MAX));
        }
        let mut points = Vec::with_capacity(request.limit.min(1024));
        let mut next = None;
        {
            let mut rows = q.fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(db_err)? {
                let id = id_from(row.try_get::<&[u8], _>(0).map_err(db_err)?)?;
                let payload = parse_payload_map(row.try_get::<&str, _>(1).map_err(db_err)?, &id)?;
                if filter.as_ref().is_some_and(|f| !f.matches(&payload)) {
                    continue;
                }
                if points.len() == request.limit {
                    next = Some(id);
                    break;
                }
                let vector = if request.with_vectors {
                    let mut v = Vec::with_capacity(found.dim);
                    decode_vector_into(row.try_get::<&[u8], _>(2).map_err(db_err)?, found.dim, &id, &mut v)?;
                    Some(v)
                } else {
                    None
                };
                points.push(StoredPoint { id, payload: payload_from_map(payload, &id)?, vector });
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(ScrollPage { points, next })
    }

    async fn count(&self, name: &IndexName, filter: Option<Filter>) -> Result<u64, IndexError> {
        let filter = effective(filter);
        let mut tx = self.begin_read().await?;
        let found = existing(&mut tx, name).await?;
        let n = match filter {
            None => {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM points WHERE collection_id = ?")
                    .bind(found.id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                u64::try_from(n).unwrap_or(0)
            }
            Some(f) if Rows::for_filter(Some(&f)) == Rows::Nothing => 0,
            Some(f) if Rows::for_filter(Some(&f)) == Rows::All && self.cached(name, &found).is_some() => {
                // Same transaction, so the copy's version label still describes what this read sees.
                self.matching_in_memory(name, &found, &f).await?.map_or(0, |ids| ids.len() as u64)
            }
            Some(f) => {
                let scope = Rows::for_filter(Some(&f));
                let sql = format!("SELECT id, payload FROM {} WHERE collection_id = ?{}", scope.table(), scope.clause());
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(found.id);
                for k in scope.keys() {
                    q = q.bind(k.as_str());
                }
                let mut n = 0u64;
                let mut rows = q.fetch(&mut *tx);
                while let Some(row) = rows.try_next().await.map_err(db_err)? {
                    let id = id_from(row.try_get::<&[u8], _>(0).map_err(db_err)?)?;
                    if f.matches(&parse_payload_map(row.try_get::<&str, _>(1).map_err(db_err)?, &id)?) {
                        n += 1;
                    }
                }
                n
            }
        };
        tx.commit().await.map_err(db_err)?;
        Ok(n)
    }

    async fn search(&self, name: &IndexName, request: SearchRequest) -> Result<Vec<ScoredPoint>, IndexError> {
        let snap = self.snapshot(name).await?;
        if request.vector.len() != snap.dim {
            return Err(dimension_mismatch(snap.dim, request.vector.len()));
        }
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let mut query = request.vector;
        if snap.distance == Distance::Cosine {
            kernel::normalise(&mut query);
        }
        let filter = effective(request.filter);
        let limit = request.limit;
        let hits = if snap.len().saturating_mul(snap.dim) < INLINE_SEARCH_FLOATS {
            snap.search(&query, limit, filter.as_ref())
        } else {
            // Scanning a large collection takes milliseconds of CPU: keep it off the async workers.
            let s = Arc::clone(&snap);
            tokio::task::spawn_blocking(move || s.search(&query, limit, filter.as_ref()))
                .await
                .map_err(|e| backend(format!("the search task failed: {e}")))?
        }
        .map_err(|e| backend(format!("index collection {name}: {e}")))?;
        hits.into_iter()
            .map(|h| {
                let payload = serde_json::from_str(snap.payload_json(h.index))
                    .map_err(|e| backend(format!("the payload of point {} is not a colstore payload: {e}", h.id)))?;
                Ok(ScoredPoint { id: h.id, score: h.score, payload })
            })
            .collect()
    }

    async fn flush(&self, name: &IndexName) -> Result<Vec<String>, IndexError> {
        {
            let mut conn = self.inner.pool.acquire().await.map_err(db_err)?;
            existing(&mut conn, name).await?;
        }
        let (busy, log, checkpointed): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.inner.pool).await.map_err(db_err)?;
        let file = self.inner.path.display();
        let step = if busy == 0 {
            format!("checkpointed the write-ahead log of {file} into the database file and truncated it")
        } else {
            format!(
                "checkpointed {checkpointed} of {log} write-ahead log pages of {file}; a reader kept the rest in the log, \
                 which is durable too (synchronous = FULL)"
            )
        };
        Ok(vec![step])
    }
}
