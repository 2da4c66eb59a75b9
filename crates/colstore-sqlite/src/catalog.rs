//! The `FileCatalog` implementation: what the database records about a filesystem-mode collection's files, and the
//! application of reconciliation's changes, with the same metadata code as puts and deletes.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use colstore_domain::ports::{ApplyReport, CatalogEntry, FileCatalog, FileChange, FileStat, FilesError, RepoError};
use colstore_domain::{CollectionName, ContentHash, DocKey, Metadata, Tags};
use sqlx::SqliteConnection;

use crate::files::Which;
use crate::repo::{DocWrite, backend, collection_id, delete_rows, write_documents};
use crate::{SqliteRepo, catalog_cache, map_err, sync};

/// Catalog entries packed into one text per query.
const CATALOG_PAGE: i64 = 8192;

/// One packed catalog entry: key, hash (hex), size, path (empty: the key), then the file's size, mtime and inode
/// (all empty when no stat is recorded), split by U+001F.
fn unpack(rec: &str) -> Result<CatalogEntry, RepoError> {
    let bad = || backend(format!("unreadable catalog entry in the database: {rec:?}"));
    let mut f = rec.split('\u{1f}');
    let mut next = || f.next().ok_or_else(bad);
    let key = next()?;
    let hash = next()?;
    let size = next()?;
    let path = next()?;
    let (file_size, mtime, inode) = (next()?, next()?, next()?);
    let int = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let stat = if file_size.is_empty() {
        None
    } else {
        Some(FileStat { size: int(file_size)? as u64, mtime_ns: int(mtime)?, inode: int(inode)? as u64 })
    };
    Ok(CatalogEntry {
        key: DocKey::parse(key).map_err(|e| backend(format!("bad key in database: {e}")))?,
        path: if path.is_empty() { key.to_owned() } else { path.to_owned() },
        content_hash: ContentHash::parse(hash).map_err(|_| bad())?,
        size: int(size)? as u64,
        stat,
    })
}

/// Records a file's path and stat for a document, inside the caller's transaction.
async fn record_stat(conn: &mut SqliteConnection, cid: i64, key: &DocKey, path: &str, stat: FileStat) -> Result<(), RepoError> {
    sqlx::query(
        "INSERT INTO file_state (collection_id, key, path, size, mtime_ns, inode) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (collection_id, key) DO UPDATE SET path = excluded.path, size = excluded.size, mtime_ns = excluded.mtime_ns, \
         inode = excluded.inode",
    )
    .bind(cid)
    .bind(key.as_str().to_owned())
    .bind((path != key.as_str()).then(|| path.to_owned()))
    .bind(i64::try_from(stat.size).unwrap_or(i64::MAX))
    .bind(stat.mtime_ns)
    .bind(stat.inode as i64)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// The collection's catalog stamp (`catalog_stamps`), `None` until its catalog was first read by a writer.
async fn catalog_stamp(conn: &mut SqliteConnection, cid: i64) -> Result<Option<i64>, RepoError> {
    sqlx::query_scalar("SELECT stamp FROM catalog_stamps WHERE collection_id = ?").bind(cid).fetch_optional(conn).await.map_err(map_err)
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, RepoError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| backend(format!("the catalog cache task failed: {e}")))
}

/// Every document of collection `cid` with its `file_state`, sorted by key, inside the caller's read transaction.
async fn read_catalog(conn: &mut SqliteConnection, cid: i64) -> Result<Vec<CatalogEntry>, RepoError> {
    // Rows cross from SQLite's thread one by one in sqlx, which costs more than SQLite's own work on 100k files;
    // so SQLite packs a page of entries into one text (fields split by U+001F, entries by U+001E: control
    // characters, which keys and their paths never contain) and we split it here.
    let mut out: Vec<CatalogEntry> = Vec::new();
    let mut after = String::new();
    loop {
        let (packed, n, last): (Option<String>, i64, Option<String>) = sqlx::query_as(
            "SELECT group_concat(rec, char(30)), count(*), max(key) FROM ( \
               SELECT d.key AS key, d.key || char(31) || hex(d.hash) || char(31) || d.size || char(31) || \
                      coalesce(fs.path, '') || char(31) || coalesce(fs.size, '') || char(31) || \
                      coalesce(fs.mtime_ns, '') || char(31) || coalesce(fs.inode, '') AS rec \
               FROM documents d LEFT JOIN file_state fs ON fs.collection_id = d.collection_id AND fs.key = d.key \
               WHERE d.collection_id = ? AND d.key > ? ORDER BY d.key LIMIT ?)",
        )
        .bind(cid)
        .bind(&after)
        .bind(CATALOG_PAGE)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        if let Some(packed) = packed {
            for rec in packed.split('\u{1e}') {
                out.push(unpack(rec)?);
            }
        }
        match last {
            Some(last) if n == CATALOG_PAGE => after = last,
            _ => break,
        }
    }
    // group_concat keeps the subquery's order in practice; the contract promises key order, so make sure.
    if !out.is_sorted_by(|a, b| a.key <= b.key) {
        out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(out)
}

/// The metadata side of the filesystem mode.
///
/// - `catalog` reads one snapshot (a read transaction), joining each document with its `file_state` row, or the
///   collection's catalog cache file when it is labelled with the stamp of that snapshot (`catalog_cache.rs`); after
///   a read from the database a writer replaces the cache file.
/// - `apply_changes` runs in one `BEGIN IMMEDIATE` transaction, in this order so that keys freed by one change can be
///   taken by another: deletions (as `delete_documents`: a projected document becomes a pending deletion), renames,
///   additions and modifications (as a put: version 1 with empty metadata and no tags, or version + 1 keeping
///   metadata and tags; pending, sync job enqueued), touches (stat only). A rename changes the document's key in
///   place, keeping metadata, tags, version and creation time, and sets `updated_at` to now (the document did change:
///   listings by update time and the ledger see it); in the ledger the old key becomes a pending deletion (or goes,
///   when nothing was projected) and the new key is pending, so the next sync re-projects it from the embedding
///   cache without calling the embedder. Besides an `expected` hash no longer on record or an added key that exists,
///   a change is a conflict when its key has an unfinished write of colstore's own (its file is about to change), or
///   when it deletes a document whose file exists again (written since the scan).
/// - `recover` carries out every recorded intent (and counts those), then discards leftover staged files (see
///   `files.rs`).
///
/// In sqlite mode `catalog` and `apply_changes` are `Unsupported`, and `recover` has nothing to do.
#[async_trait]
impl FileCatalog for SqliteRepo {
    async fn catalog(&self, collection: &CollectionName) -> Result<Vec<CatalogEntry>, RepoError> {
        self.files_or_unsupported("the file catalog")?;
        let dir = catalog_cache::dir_beside(&self.path);
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut cid = collection_id(&mut tx, collection).await?;
        let mut stamp = catalog_stamp(&mut tx, cid).await?;
        if stamp.is_none() && !self.read_only {
            // The first catalog of this collection: from now on the triggers keep a stamp for it. Then read the stamp
            // and the catalog in one snapshot again, so the cache written below is labelled with the right one.
            tx.rollback().await.map_err(map_err)?;
            sqlx::query("INSERT OR IGNORE INTO catalog_stamps (collection_id, stamp) VALUES (?, random())")
                .bind(cid)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            tx = self.pool.begin().await.map_err(map_err)?;
            // (Were the collection deleted and created again meanwhile, the new one has no stamp yet: no cache now.)
            cid = collection_id(&mut tx, collection).await?;
            stamp = catalog_stamp(&mut tx, cid).await?;
        }
        if let Some(stamp) = stamp {
            let dir = dir.clone();
            if let Some(entries) = blocking(move || catalog_cache::read(&dir, cid, stamp)).await? {
                return Ok(entries);
            }
        }
        let out = read_catalog(&mut tx, cid).await?;
        tx.commit().await.map_err(map_err)?;
        match stamp {
            Some(stamp) if !self.read_only => {
                blocking(move || {
                    if let Err(e) = catalog_cache::write(&dir, cid, stamp, &out) {
                        tracing::debug!(error = %e, "could not write the catalog cache; the next reconcile reads the database");
                    }
                    out
                })
                .await
            }
            _ => Ok(out),
        }
    }

    async fn apply_changes(&self, collection: &CollectionName, changes: Vec<FileChange>) -> Result<ApplyReport, RepoError> {
        let files = self.files_or_unsupported("reconciliation")?.clone();
        let now = self.clock.now().as_millis();
        let mut tx = self.begin_write().await?;
        let cid = collection_id(&mut tx, collection).await?;
        let busy: HashSet<String> = sqlx::query_scalar("SELECT key FROM file_writes WHERE collection = ?")
            .bind(collection.as_str().to_owned())
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?
            .into_iter()
            .collect();
        let mut involved: Vec<&DocKey> = Vec::with_capacity(changes.len());
        for ch in &changes {
            match ch {
                FileChange::Added { key, .. }
                | FileChange::Modified { key, .. }
                | FileChange::Deleted { key, .. }
                | FileChange::Touched { key, .. } => involved.push(key),
                FileChange::Renamed { from, to, .. } => involved.extend([from, to]),
            }
        }
        // What is on record now, kept up to date as the changes are applied.
        let mut current: HashMap<String, (ContentHash, String, String)> =
            Self::existing_docs(&mut tx, cid, &involved).await?.into_iter().map(|(k, e)| (k, (e.hash, e.meta_json, e.tags_json))).collect();
        let paths: HashMap<String, String> = {
            let keys: Vec<&str> = involved.iter().map(|k| k.as_str()).collect();
            let mut out = HashMap::new();
            for chunk in keys.chunks(200) {
                let marks = vec!["?"; chunk.len()].join(",");
                let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(format!(
                    "SELECT key, path FROM file_state WHERE collection_id = ? AND path IS NOT NULL AND key IN ({marks})"
                )))
                .bind(cid);
                for k in chunk {
                    q = q.bind((*k).to_owned());
                }
                out.extend(q.fetch_all(&mut *tx).await.map_err(map_err)?);
            }
            out
        };
        let on_record = |current: &HashMap<String, (ContentHash, String, String)>, key: &DocKey, expected: &ContentHash| {
            !busy.contains(key.as_str()) && current.get(key.as_str()).is_some_and(|(h, ..)| h == expected)
        };
        let mut report = ApplyReport::default();

        // 1. Deletions.
        let mut deletions = Vec::new();
        for ch in &changes {
            if let FileChange::Deleted { key, expected } = ch {
                let mut ok = on_record(&current, key, expected);
                if ok {
                    // The file may have been written again since the scan (a put finishing): then it stays.
                    let path = paths.get(key.as_str()).map_or(key.as_str(), String::as_str);
                    ok = match files.stat(collection, path).await {
                        Ok(None) | Err(FilesError::RootMissing { .. } | FilesError::NotFound { .. }) => true,
                        Ok(Some(_)) | Err(_) => false,
                    };
                }
                if ok {
                    current.remove(key.as_str());
                    deletions.push(key.clone());
                } else {
                    report.conflicts.push(key.clone());
                }
            }
        }
        report.applied += delete_rows(&mut tx, cid, collection, deletions, now).await?.len() as u64;

        // 2. Renames.
        let mut stats: Vec<(&DocKey, &str, FileStat)> = Vec::new();
        for ch in &changes {
            if let FileChange::Renamed { from, to, path, expected, stat } = ch {
                if !on_record(&current, from, expected) || busy.contains(to.as_str()) || current.contains_key(to.as_str()) {
                    report.conflicts.push(to.clone());
                    continue;
                }
                // The file_state row follows the key (ON UPDATE CASCADE).
                sqlx::query("UPDATE documents SET key = ?, updated_at = ? WHERE collection_id = ? AND key = ?")
                    .bind(to.as_str().to_owned())
                    .bind(now)
                    .bind(cid)
                    .bind(from.as_str().to_owned())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sync::forget_or_mark_deleted(&mut tx, cid, &[from.as_str()], now).await.map_err(map_err)?;
                sync::touch(&mut tx, cid, &[to.as_str()], now).await.map_err(map_err)?;
                sync::enqueue_sync(&mut tx, collection, now).await.map_err(map_err)?;
                if let Some(entry) = current.remove(from.as_str()) {
                    current.insert(to.as_str().to_owned(), entry);
                }
                stats.push((to, path, *stat));
                report.applied += 1;
            }
        }

        // 3. Additions and modifications: puts of the new content.
        let empty = (Metadata::default().to_json(), Tags::default().to_json());
        let mut puts: Vec<(&DocKey, ContentHash, u64, String, String)> = Vec::new();
        for ch in &changes {
            match ch {
                FileChange::Added { key, path, hash, size, stat } => {
                    if busy.contains(key.as_str()) || current.contains_key(key.as_str()) {
                        report.conflicts.push(key.clone());
                        continue;
                    }
                    current.insert(key.as_str().to_owned(), (*hash, empty.0.clone(), empty.1.clone()));
                    puts.push((key, *hash, *size, empty.0.clone(), empty.1.clone()));
                    stats.push((key, path, *stat));
                }
                FileChange::Modified { key, path, expected, hash, size, stat } => {
                    if !on_record(&current, key, expected) {
                        report.conflicts.push(key.clone());
                        continue;
                    }
                    let (meta, tags) = current.get(key.as_str()).map(|(_, m, t)| (m.clone(), t.clone())).unwrap_or_default();
                    puts.push((key, *hash, *size, meta, tags));
                    stats.push((key, path, *stat));
                }
                _ => {}
            }
        }
        let rows: Vec<DocWrite<'_>> = puts
            .iter()
            .map(|(key, hash, size, meta_json, tags_json)| DocWrite { key, hash: *hash, size: *size, meta_json, tags_json })
            .collect();
        write_documents(&mut tx, cid, collection, &rows, now).await?;
        report.applied += rows.len() as u64;

        // 4. Touches.
        for ch in &changes {
            if let FileChange::Touched { key, path, expected, stat } = ch {
                if on_record(&current, key, expected) {
                    stats.push((key, path, *stat));
                    report.applied += 1;
                } else {
                    report.conflicts.push(key.clone());
                }
            }
        }
        for (key, path, stat) in stats {
            record_stat(&mut tx, cid, key, path, stat).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(report)
    }

    async fn recover(&self) -> Result<u64, RepoError> {
        let Some(files) = self.files.clone() else { return Ok(0) };
        let finished = self.finish_intents(&*files, Which::All, true).await?;
        // Staged files of writes that never committed are not writes to finish: they are cleaned up, not counted.
        let discarded = self.discard_leftovers(&*files).await?;
        if discarded > 0 {
            tracing::info!(files = discarded, "discarded staged files left by interrupted writes");
        }
        Ok(finished)
    }
}
