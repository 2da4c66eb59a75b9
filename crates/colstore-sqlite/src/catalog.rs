//! The `FileCatalog` implementation: what the database records about a filesystem-mode collection's files, and the
//! application of reconciliation's changes, with the same metadata code as puts and deletes.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use colstore_domain::ports::{ApplyReport, CatalogEntry, FileCatalog, FileChange, FileStat, FilesError, RepoError};
use colstore_domain::{CollectionName, ContentHash, DocKey, Metadata, Tags};
use sqlx::{Row, SqliteConnection};

use crate::files::Which;
use crate::repo::{DocWrite, backend, collection_id, delete_rows, hash_from, write_documents};
use crate::{SqliteRepo, map_err, sync};

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

/// The metadata side of the filesystem mode.
///
/// - `catalog` reads one snapshot (a read transaction), joining each document with its `file_state` row.
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let cid = collection_id(&mut tx, collection).await?;
        let rows = sqlx::query(
            "SELECT d.key, d.hash, d.size, coalesce(fs.path, d.key) AS path, fs.size AS file_size, fs.mtime_ns, fs.inode \
             FROM documents d LEFT JOIN file_state fs ON fs.collection_id = d.collection_id AND fs.key = d.key \
             WHERE d.collection_id = ? ORDER BY d.key",
        )
        .bind(cid)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let key: String = r.try_get("key").map_err(map_err)?;
                let file_size: Option<i64> = r.try_get("file_size").map_err(map_err)?;
                let stat = match file_size {
                    Some(size) => Some(FileStat {
                        size: size as u64,
                        mtime_ns: r.try_get("mtime_ns").map_err(map_err)?,
                        inode: r.try_get::<i64, _>("inode").map_err(map_err)? as u64,
                    }),
                    None => None,
                };
                Ok(CatalogEntry {
                    key: DocKey::parse(&key).map_err(|e| backend(format!("bad key in database: {e}")))?,
                    path: r.try_get("path").map_err(map_err)?,
                    content_hash: hash_from(r.try_get("hash").map_err(map_err)?)?,
                    size: r.try_get::<i64, _>("size").map_err(map_err)? as u64,
                    stat,
                })
            })
            .collect()
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
