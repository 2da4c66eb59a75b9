//! Converting a store between the storage modes (`col migrate`): copying every document's content from the blobs into
//! files, or from files into the blobs. Metadata, the ledger and the embedding cache stay as they are.
//!
//! Both directions work whatever mode the repository was opened in (the store's current one), take the target or
//! source files as an argument, verify every content they copy against its recorded hash, and leave the source in
//! place, so they can be interrupted and run again; the caller switches the store's mode only after one succeeded.
//! They expect the caller to hold the store exclusively (no concurrent writers).

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use colstore_domain::ports::{DocumentFiles, FileStat, FilesError, RepoError};
use colstore_domain::{CollectionName, ContentChanged, ContentHash, DocKey};
use futures::StreamExt;
use sqlx::Row;

use crate::content::{self, PART_SIZE};
use crate::files::{Which, files_err};
use crate::repo::{backend, hash_from, insert_inline_blobs, stored_hashes, write_streaming};
use crate::{SqliteRepo, map_err};

/// Documents read per page.
const PAGE: i64 = 256;

/// Files written at the same time.
const COPY_CONCURRENCY: usize = 4;

/// Small contents held in memory before they are written to the blobs in one transaction.
const BATCH_BYTES: usize = 32 * 1024 * 1024;

/// One document to copy.
struct Doc {
    key: String,
    hash: ContentHash,
    size: u64,
    path: String,
}

fn parse_key(s: &str) -> Result<DocKey, RepoError> {
    DocKey::parse(s).map_err(|e| backend(format!("bad key in database: {e}")))
}

impl SqliteRepo {
    async fn collections_by_name(&self) -> Result<Vec<(i64, CollectionName)>, RepoError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM collections ORDER BY name").fetch_all(&self.pool).await.map_err(map_err)?;
        rows.into_iter()
            .map(|(id, n)| Ok((id, CollectionName::parse(&n).map_err(|e| backend(format!("bad collection name in database: {e}")))?)))
            .collect()
    }

    async fn docs_page(&self, cid: i64, after: &str) -> Result<Vec<Doc>, RepoError> {
        let rows = sqlx::query(
            "SELECT d.key, d.hash, d.size, coalesce(fs.path, d.key) AS path FROM documents d \
             LEFT JOIN file_state fs ON fs.collection_id = d.collection_id AND fs.key = d.key \
             WHERE d.collection_id = ? AND d.key > ? ORDER BY d.key LIMIT ?",
        )
        .bind(cid)
        .bind(after.to_owned())
        .bind(PAGE)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(Doc {
                    key: r.try_get("key").map_err(map_err)?,
                    hash: hash_from(r.try_get("hash").map_err(map_err)?)?,
                    size: r.try_get::<i64, _>("size").map_err(map_err)? as u64,
                    path: r.try_get("path").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn count_documents(&self) -> Result<u64, RepoError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM documents").fetch_one(&self.pool).await.map_err(map_err)?;
        Ok(n as u64)
    }

    /// Converts to filesystem mode: writes every document's content, read from the blobs, to its file in `files`
    /// (atomically: stage, then rename over whatever is there), checks that each file reads back with the recorded
    /// hash, and records the files' stats, a page at a time. The blobs stay (in filesystem mode they are garbage for
    /// `gc`). `progress` gets (documents done, documents in all). Returns how many documents were written.
    ///
    /// Safe to interrupt and run again: every file is written again.
    ///
    /// # Errors
    /// `Corrupt` when a content is missing from the blobs or does not match its hash (run `col verify`); `Backend` or
    /// `ReadOnly` when a file cannot be written (for example a key that is both a file and a folder of another key).
    pub async fn copy_contents_to_files(
        &self,
        files: &dyn DocumentFiles,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<u64, RepoError> {
        let total = self.count_documents().await?;
        let mut done = 0;
        progress(done, total);
        for (cid, collection) in self.collections_by_name().await? {
            files.create_root(&collection).await.map_err(files_err)?;
            let mut after = String::new();
            loop {
                let page = self.docs_page(cid, &after).await?;
                let Some(last) = page.last() else { break };
                after = last.key.clone();
                let collection = &collection;
                let mut page = page.into_iter();
                let mut running = futures::stream::FuturesOrdered::new();
                let mut written: Vec<(Doc, FileStat)> = Vec::new();
                let mut first_error = None;
                loop {
                    while running.len() < COPY_CONCURRENCY {
                        let Some(doc) = page.next() else { break };
                        running.push_back(async move {
                            let stat = self.copy_one_to_file(files, collection, &doc).await;
                            (doc, stat)
                        });
                    }
                    let Some((doc, stat)) = running.next().await else { break };
                    match stat {
                        Ok(stat) => written.push((doc, stat)),
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                if let Some(e) = first_error {
                    return Err(e);
                }
                let mut tx = self.begin_write().await?;
                for (doc, stat) in &written {
                    // A key stored before keys were normalised lives at its NFC path.
                    let nfc = parse_key(&doc.key)?;
                    sqlx::query(
                        "INSERT INTO file_state (collection_id, key, path, size, mtime_ns, inode) VALUES (?, ?, ?, ?, ?, ?) \
                         ON CONFLICT (collection_id, key) DO UPDATE SET path = excluded.path, size = excluded.size, \
                         mtime_ns = excluded.mtime_ns, inode = excluded.inode",
                    )
                    .bind(cid)
                    .bind(doc.key.clone())
                    .bind((nfc.as_str() != doc.key).then(|| nfc.as_str().to_owned()))
                    .bind(i64::try_from(stat.size).unwrap_or(i64::MAX))
                    .bind(stat.mtime_ns)
                    .bind(stat.inode as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                done += written.len() as u64;
                progress(done, total);
            }
        }
        Ok(done)
    }

    async fn copy_one_to_file(&self, files: &dyn DocumentFiles, collection: &CollectionName, doc: &Doc) -> Result<FileStat, RepoError> {
        let key = parse_key(&doc.key)?;
        let corrupt = |detail: String| RepoError::Corrupt { key: key.clone(), detail };
        let stream = self.blob_stream(&doc.hash).await?.ok_or_else(|| corrupt("its content is missing from the database".into()))?;
        let staged = match files.stage(collection, stream).await {
            Ok(s) => s,
            Err(FilesError::ContentRead(e)) => return Err(corrupt(format!("its content cannot be read from the database: {e}"))),
            Err(e) => return Err(files_err(e)),
        };
        if staged.hash != doc.hash || staged.size != doc.size {
            let _ = files.discard(collection, &staged.token).await;
            return Err(corrupt("its content in the database does not match its recorded hash".into()));
        }
        if let Err(e) = files.commit(collection, &staged, &key).await {
            let _ = files.discard(collection, &staged.token).await;
            return Err(files_err(e));
        }
        let (stat, hash, size) = files.hash(collection, key.as_str()).await.map_err(files_err)?;
        if hash != doc.hash || size != doc.size {
            return Err(backend(format!(
                "the file written for \"{key}\" in {} does not read back as its content",
                files.location(collection)
            )));
        }
        Ok(stat)
    }

    /// Converts to sqlite mode: stores every document's content, read from its file in `files` (or from the staged
    /// file of a write a crash interrupted, which is finished first), in the blobs, in batches; contents already in
    /// the blobs are not read again. Then recomputes every blob's reference count and checks that every document's
    /// content is stored. The files stay. `progress` gets (documents done, documents in all). Returns how many
    /// documents were checked.
    ///
    /// Safe to interrupt and run again.
    ///
    /// # Errors
    /// `ContentRead` when a file is missing (`NotFound`) or does not hold its recorded content (edited outside
    /// colstore: a [`ContentChanged`] source); `Backend` when the database fails.
    pub async fn copy_contents_from_files(
        &self,
        files: &dyn DocumentFiles,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<u64, RepoError> {
        // Every file must hold its recorded content first.
        self.finish_intents(files, Which::All, true).await?;
        let total = self.count_documents().await?;
        let mut done = 0;
        progress(done, total);
        for (cid, collection) in self.collections_by_name().await? {
            let mut after = String::new();
            loop {
                let page = self.docs_page(cid, &after).await?;
                let Some(last) = page.last() else { break };
                after = last.key.clone();
                let n = page.len() as u64;
                self.copy_page_from_files(files, &collection, page).await?;
                done += n;
                progress(done, total);
            }
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE blobs SET refcount = (SELECT count(*) FROM documents d WHERE d.hash = blobs.hash) WHERE hash IS NOT NULL")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        let missing: Option<(String, String)> = sqlx::query_as(
            "SELECT c.name, d.key FROM documents d JOIN collections c ON c.id = d.collection_id \
             WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.hash = d.hash) LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        if let Some((c, k)) = missing {
            return Err(backend(format!("after copying, the content of \"{k}\" in collection \"{c}\" is still missing from the database")));
        }
        Ok(done)
    }

    /// Stores the contents of one page of documents that are not in the blobs yet.
    async fn copy_page_from_files(&self, files: &dyn DocumentFiles, collection: &CollectionName, page: Vec<Doc>) -> Result<(), RepoError> {
        let stored = {
            let mut conn = self.pool.acquire().await.map_err(map_err)?;
            stored_hashes(&mut conn, page.iter().map(|d| d.hash)).await?
        };
        let mut seen = HashSet::new();
        let todo: Vec<Doc> = page.into_iter().filter(|d| !stored.contains(&d.hash) && seen.insert(d.hash)).collect();
        let mut small: Vec<(ContentHash, Bytes)> = Vec::new();
        let mut small_bytes = 0usize;
        let mut large: Vec<Doc> = Vec::new();
        for d in todo {
            if d.size > PART_SIZE as u64 {
                large.push(d);
                continue;
            }
            let bytes = read_small(files, collection, &d).await?;
            small_bytes += bytes.len();
            small.push((d.hash, bytes));
            if small_bytes >= BATCH_BYTES {
                self.store_small(std::mem::take(&mut small)).await?;
                small_bytes = 0;
            }
        }
        self.store_small(small).await?;
        for d in large {
            let key = parse_key(&d.key)?;
            let (_, stream) = files.open(collection, &d.path).await.map_err(|e| file_problem(files, collection, &d, &key, e))?;
            let mut tx = self.begin_write().await?;
            let (hash, size) = write_streaming(&mut tx, &key, Bytes::new(), stream).await.map_err(|e| match e {
                RepoError::ContentRead { key, source } => RepoError::Corrupt {
                    key,
                    detail: format!("its file {}/{} cannot be read: {source}", files.location(collection), d.path),
                },
                other => other,
            })?;
            if hash != d.hash || size != d.size {
                // Dropping the transaction rolls the blob back.
                return Err(changed(&key));
            }
            tx.commit().await.map_err(map_err)?;
        }
        Ok(())
    }

    /// Compresses small contents off the async thread and stores them in one transaction.
    async fn store_small(&self, small: Vec<(ContentHash, Bytes)>) -> Result<(), RepoError> {
        if small.is_empty() {
            return Ok(());
        }
        let rows = tokio::task::spawn_blocking(move || {
            small
                .into_iter()
                .map(|(hash, raw)| {
                    let (codec, stored) = content::encode(&raw);
                    (hash, raw.len() as u64, codec, stored)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| backend(format!("encoding task failed: {e}")))?;
        let mut tx = self.begin_write().await?;
        insert_inline_blobs(&mut tx, rows).await?;
        tx.commit().await.map_err(map_err)
    }
}

/// A file that does not hold its recorded content: edited outside colstore since the last reconcile
/// ([`ContentChanged`], which the shells explain).
fn changed(key: &DocKey) -> RepoError {
    let source = std::io::Error::new(std::io::ErrorKind::InvalidData, ContentChanged { key: key.clone() });
    RepoError::ContentRead { key: key.clone(), source }
}

fn file_problem(files: &dyn DocumentFiles, collection: &CollectionName, d: &Doc, key: &DocKey, e: FilesError) -> RepoError {
    match e {
        FilesError::NotFound { .. } | FilesError::RootMissing { .. } => RepoError::ContentRead {
            key: key.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("its file {}/{} is missing", files.location(collection), d.path),
            ),
        },
        other => files_err(other),
    }
}

/// Reads a small file whole (never more than one byte beyond its recorded size) and checks it.
async fn read_small(files: &dyn DocumentFiles, collection: &CollectionName, d: &Doc) -> Result<Bytes, RepoError> {
    let key = parse_key(&d.key)?;
    let (_, mut stream) = files.open(collection, &d.path).await.map_err(|e| file_problem(files, collection, d, &key, e))?;
    let mut buf = BytesMut::with_capacity(d.size as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RepoError::Corrupt {
            key: key.clone(),
            detail: format!("its file {}/{} cannot be read: {e}", files.location(collection), d.path),
        })?;
        buf.extend_from_slice(&chunk);
        if buf.len() as u64 > d.size {
            return Err(changed(&key));
        }
    }
    if buf.len() as u64 != d.size || ContentHash::of(&buf) != d.hash {
        return Err(changed(&key));
    }
    Ok(buf.freeze())
}
