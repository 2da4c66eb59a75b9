//! Backup and restore support: [`SqliteSnapshot`] (one read transaction held open) and the verbatim restore writes.
//!
//! A snapshot is a deferred transaction on a dedicated pool connection whose first read fixes the moment (WAL readers
//! see the database as of their first read, and never block writers). Every method of the snapshot runs on that
//! connection, so a backup that reads for minutes still shows one moment. While it is open, checkpoints cannot pass
//! it, so the WAL may grow until the snapshot is dropped.
//!
//! In filesystem mode the snapshot's rows are one moment, and so are the contents as far as this process writes them:
//! a write that replaces or removes a file while the snapshot is open keeps a copy for it (see `files.rs`). Otherwise
//! `content` reads the file of a document that had the hash in the snapshot and checks the hash, so a file written by
//! another process or edited since fails clearly rather than giving other bytes.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;

use colstore_domain::ports::{DocumentFiles, LedgerEntry, RepoError, StoreSnapshot, SyncError};
use colstore_domain::{
    Collection, CollectionName, CollectionSettings, ContentHash, ContentStream, DocKey, DocumentMeta, EmbedderId, Timestamp, Vector,
};
use futures::StreamExt;
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::Mutex;

use crate::content::{self, PART_SIZE};
use crate::repo::{
    COLLECTION_SELECT, DOC_COLUMNS, backend, collection_from_row, collection_id, doc_from_row, insert_inline_blobs, write_streaming,
};
use crate::{SqliteRepo, map_err, sync};

/// Rows per multi-row document statement (9 parameters each).
const DOCS_PER_STATEMENT: usize = 200;

fn from_sync(e: SyncError) -> RepoError {
    match e {
        SyncError::CollectionNotFound(c) => RepoError::CollectionNotFound(c),
        other => RepoError::Backend { backend: "sqlite", source: Box::new(other) },
    }
}

/// A snapshot's read transaction, shared by its methods and its content streams.
pub(crate) type SharedTx = Arc<Mutex<sqlx::Transaction<'static, sqlx::Sqlite>>>;

/// The store at one moment: a read transaction kept open until dropped.
pub struct SqliteSnapshot {
    /// Shared with the content streams handed out, which read a part at a time on it.
    tx: SharedTx,
    /// Filesystem mode: where the contents are, and the copies of those that writes of this process displaced since
    /// the snapshot was registered.
    files: Option<(Arc<dyn DocumentFiles>, Arc<crate::files::Displaced>)>,
}

impl std::fmt::Debug for SqliteSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSnapshot").finish_non_exhaustive()
    }
}

impl SqliteRepo {
    pub(crate) async fn open_snapshot(&self) -> Result<SqliteSnapshot, RepoError> {
        // Registered before the transaction starts, so every write that commits after its moment keeps what it
        // displaces for it.
        let files = self.files.clone().map(|f| (f, self.snapshots.register()));
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The first read starts the read transaction: from here on this connection sees this moment.
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM collections").fetch_one(&mut *tx).await.map_err(map_err)?;
        Ok(SqliteSnapshot { tx: Arc::new(Mutex::new(tx)), files })
    }

    pub(crate) async fn restore_collection_impl(
        &self,
        name: &CollectionName,
        settings: CollectionSettings,
        created_at: Timestamp,
    ) -> Result<(), RepoError> {
        let json = serde_json::to_string(&settings).map_err(|e| backend(format!("cannot encode settings: {e}")))?;
        if let Some(files) = &self.files {
            files.create_root(name).await.map_err(crate::files::files_err)?;
        }
        let mut tx = self.begin_immediate().await.map_err(map_err)?;
        sqlx::query("INSERT INTO collections (name, settings, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET settings = excluded.settings")
            .bind(name.as_str().to_owned())
            .bind(json)
            .bind(created_at.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    pub(crate) async fn restore_documents_impl(
        &self,
        collection: &CollectionName,
        docs: Vec<(DocumentMeta, Bytes)>,
    ) -> Result<(), RepoError> {
        let mut seen = std::collections::HashSet::with_capacity(docs.len());
        for (d, _) in &docs {
            if !seen.insert(d.key.clone()) {
                return Err(RepoError::DuplicateKey(d.key.clone()));
            }
        }
        if let Some(files) = &self.files {
            return self.restore_documents_files(&**files, collection, docs).await;
        }
        // Check and encode outside the write transaction.
        let (docs, inline) = tokio::task::spawn_blocking(move || {
            let mut inline = Vec::new();
            for (d, bytes) in &docs {
                if bytes.len() as u64 != d.size || ContentHash::of(bytes) != d.content_hash {
                    return Err(restore_mismatch(d));
                }
                if bytes.len() <= PART_SIZE {
                    let (codec, stored) = content::encode(bytes);
                    inline.push((d.content_hash, d.size, codec, stored));
                }
            }
            Ok((docs, inline))
        })
        .await
        .map_err(|e| backend(format!("encoding task failed: {e}")))??;
        let now = self.clock.now().as_millis();
        let mut tx = self.begin_immediate().await.map_err(map_err)?;
        let cid = collection_id(&mut tx, collection).await?;
        insert_inline_blobs(&mut tx, inline).await?;
        for (d, bytes) in &docs {
            if bytes.len() > PART_SIZE {
                write_streaming(&mut tx, &d.key, Bytes::new(), futures::stream::iter([Ok(bytes.clone())]).boxed()).await?;
            }
        }
        let metas: Vec<&DocumentMeta> = docs.iter().map(|(d, _)| d).collect();
        restore_rows(&mut tx, cid, collection, &metas, now).await?;
        tx.commit().await.map_err(map_err)
    }
}

impl SqliteRepo {
    /// [`CollectionRepo::restore_document_stream`](colstore_domain::ports::CollectionRepo::restore_document_stream):
    /// the content is written a part at a time inside the write transaction (filesystem mode: into its staged file),
    /// and the transaction is dropped, writing nothing, when it does not match the description.
    pub(crate) async fn restore_document_stream_impl(
        &self,
        collection: &CollectionName,
        doc: DocumentMeta,
        content: ContentStream,
    ) -> Result<(), RepoError> {
        if let Some(files) = &self.files {
            return self.restore_streams_files(&**files, collection, vec![(doc, content)]).await;
        }
        let now = self.clock.now().as_millis();
        let mut tx = self.begin_immediate().await.map_err(map_err)?;
        let cid = collection_id(&mut tx, collection).await?;
        let (hash, size) = write_streaming(&mut tx, &doc.key, Bytes::new(), content).await?;
        if hash != doc.content_hash || size != doc.size {
            return Err(restore_mismatch(&doc));
        }
        restore_rows(&mut tx, cid, collection, &[&doc], now).await?;
        tx.commit().await.map_err(map_err)
    }
}

/// The error of a restored content that does not match its description.
pub(crate) fn restore_mismatch(d: &DocumentMeta) -> RepoError {
    RepoError::Corrupt {
        key: d.key.clone(),
        detail: format!("the restored content does not match its recorded size {} and hash {}", d.size, d.content_hash),
    }
}

/// Writes documents verbatim (replacing same keys) and marks them pending, inside the caller's transaction; shared by
/// both storage modes.
pub(crate) async fn restore_rows(
    conn: &mut sqlx::SqliteConnection,
    cid: i64,
    collection: &CollectionName,
    docs: &[&DocumentMeta],
    now: i64,
) -> Result<(), RepoError> {
    for chunk in docs.chunks(DOCS_PER_STATEMENT) {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(",");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO documents (collection_id, key, hash, size, meta, tags, version, created_at, updated_at) VALUES {values} \
             ON CONFLICT (collection_id, key) DO UPDATE SET hash = excluded.hash, size = excluded.size, meta = excluded.meta, \
             tags = excluded.tags, version = excluded.version, created_at = excluded.created_at, updated_at = excluded.updated_at"
        )));
        for d in chunk {
            q = q
                .bind(cid)
                .bind(d.key.as_str().to_owned())
                .bind(d.content_hash.as_bytes().to_vec())
                .bind(i64::try_from(d.size).unwrap_or(i64::MAX))
                .bind(d.metadata.to_json())
                .bind(d.tags.to_json())
                .bind(i64::try_from(d.version).unwrap_or(i64::MAX))
                .bind(d.created_at.as_millis())
                .bind(d.updated_at.as_millis());
        }
        q.execute(&mut *conn).await.map_err(map_err)?;
    }
    if !docs.is_empty() {
        let keys: Vec<&str> = docs.iter().map(|d| d.key.as_str()).collect();
        sync::touch(&mut *conn, cid, &keys, now).await.map_err(map_err)?;
        sync::enqueue_sync(&mut *conn, collection, now).await.map_err(map_err)?;
    }
    Ok(())
}

/// The whole content of `hash` from the blobs, read on `conn`; `None` when no blob has it.
pub(crate) async fn blob_bytes(conn: &mut sqlx::SqliteConnection, hash: &ContentHash) -> Result<Option<Bytes>, RepoError> {
    let Some(row) = sqlx::query(
        "SELECT b.id, b.size, b.codec, b.parts, bd.data FROM blobs b LEFT JOIN blob_data bd ON bd.blob_id = b.id WHERE b.hash = ?",
    )
    .bind(hash.as_bytes().to_vec())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?
    else {
        return Ok(None);
    };
    let size = usize::try_from(row.try_get::<i64, _>("size").map_err(map_err)?).unwrap_or(0);
    let parts: i64 = row.try_get("parts").map_err(map_err)?;
    if parts == 0 {
        let data: Option<Vec<u8>> = row.try_get("data").map_err(map_err)?;
        let data = data.ok_or_else(|| backend(format!("the bytes of content {hash} are missing from the database")))?;
        return content::decode(row.try_get("codec").map_err(map_err)?, data, size)
            .map(Some)
            .map_err(|e| backend(format!("content {hash} cannot be decoded: {e}")));
    }
    let blob_id: i64 = row.try_get("id").map_err(map_err)?;
    let mut out = BytesMut::with_capacity(size);
    let mut parts_rows = sqlx::query("SELECT codec, data FROM blob_parts WHERE blob_id = ? ORDER BY seq").bind(blob_id).fetch(&mut *conn);
    while let Some(r) = parts_rows.next().await {
        let r = r.map_err(map_err)?;
        let part = content::decode(r.try_get(0).map_err(map_err)?, r.try_get(1).map_err(map_err)?, PART_SIZE)
            .map_err(|e| backend(format!("a part of content {hash} cannot be decoded: {e}")))?;
        out.extend_from_slice(&part);
    }
    Ok(Some(out.freeze()))
}

/// The content of `hash` from the blobs as a stream read on the snapshot's transaction: an inline blob in one piece,
/// a parted one a part (1 MiB) at a time, so memory stays bounded whatever its size; `None` when no blob has it.
pub(crate) async fn blob_stream(shared: &SharedTx, hash: &ContentHash) -> Result<Option<ContentStream>, RepoError> {
    let row = {
        let mut tx = shared.lock().await;
        sqlx::query(
            "SELECT b.id, b.size, b.codec, b.parts, bd.data FROM blobs b LEFT JOIN blob_data bd ON bd.blob_id = b.id WHERE b.hash = ?",
        )
        .bind(hash.as_bytes().to_vec())
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?
    };
    let Some(row) = row else { return Ok(None) };
    let parts: i64 = row.try_get("parts").map_err(map_err)?;
    if parts == 0 {
        let size = usize::try_from(row.try_get::<i64, _>("size").map_err(map_err)?).unwrap_or(0);
        let data: Option<Vec<u8>> = row.try_get("data").map_err(map_err)?;
        let data = data.ok_or_else(|| backend(format!("the bytes of content {hash} are missing from the database")))?;
        let bytes = content::decode(row.try_get("codec").map_err(map_err)?, data, size)
            .map_err(|e| backend(format!("content {hash} cannot be decoded: {e}")))?;
        return Ok(Some(futures::stream::iter([Ok(bytes)]).boxed()));
    }
    let blob_id: i64 = row.try_get("id").map_err(map_err)?;
    let (shared, hash) = (Arc::clone(shared), *hash);
    let stream = futures::stream::try_unfold(0i64, move |seq| {
        let shared = Arc::clone(&shared);
        async move {
            if seq >= parts {
                return Ok(None);
            }
            let part = {
                let mut tx = shared.lock().await;
                sqlx::query("SELECT codec, data FROM blob_parts WHERE blob_id = ? AND seq = ?")
                    .bind(blob_id)
                    .bind(seq)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(std::io::Error::other)?
            };
            let part = part.ok_or_else(|| std::io::Error::other(format!("part {seq} of content {hash} is missing from the database")))?;
            let codec: i64 = part.try_get(0).map_err(std::io::Error::other)?;
            let data: Vec<u8> = part.try_get(1).map_err(std::io::Error::other)?;
            let bytes = content::decode(codec, data, PART_SIZE)
                .map_err(|e| std::io::Error::other(format!("part {seq} of content {hash} cannot be decoded: {e}")))?;
            Ok(Some((bytes, seq + 1)))
        }
    });
    Ok(Some(stream.boxed()))
}

/// Distinct hashes per statement of [`many_blob_bytes`].
const CONTENTS_PER_STATEMENT: usize = 256;

/// The contents of `hashes` (in that order) from the blobs, read on `conn`: inline blobs a statement per
/// [`CONTENTS_PER_STATEMENT`] hashes and decoded on a blocking thread, parted blobs one by one.
pub(crate) async fn many_blob_bytes(conn: &mut sqlx::SqliteConnection, hashes: Vec<ContentHash>) -> Result<Vec<Bytes>, RepoError> {
    let mut distinct = hashes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // (hash, size, codec, stored bytes) of inline blobs; the hashes of parted ones.
    let mut inline: Vec<(ContentHash, usize, i64, Vec<u8>)> = Vec::with_capacity(distinct.len());
    let mut parted = Vec::new();
    for group in distinct.chunks(CONTENTS_PER_STATEMENT) {
        let marks = vec!["?"; group.len()].join(",");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT b.hash, b.size, b.codec, b.parts, bd.data FROM blobs b LEFT JOIN blob_data bd ON bd.blob_id = b.id WHERE b.hash IN ({marks})"
        )));
        for h in group {
            q = q.bind(h.as_bytes().to_vec());
        }
        for row in q.fetch_all(&mut *conn).await.map_err(map_err)? {
            let raw: Vec<u8> = row.try_get("hash").map_err(map_err)?;
            let hash = ContentHash::from_slice(&raw).map_err(|e| backend(format!("a stored content hash is malformed: {e}")))?;
            if row.try_get::<i64, _>("parts").map_err(map_err)? != 0 {
                parted.push(hash);
                continue;
            }
            let size = usize::try_from(row.try_get::<i64, _>("size").map_err(map_err)?).unwrap_or(0);
            let data: Option<Vec<u8>> = row.try_get("data").map_err(map_err)?;
            let data = data.ok_or_else(|| backend(format!("the bytes of content {hash} are missing from the database")))?;
            inline.push((hash, size, row.try_get("codec").map_err(map_err)?, data));
        }
    }
    let decoded = tokio::task::spawn_blocking(move || {
        inline
            .into_iter()
            .map(|(hash, size, codec, data)| {
                content::decode(codec, data, size).map(|b| (hash, b)).map_err(|e| backend(format!("content {hash} cannot be decoded: {e}")))
            })
            .collect::<Result<std::collections::HashMap<ContentHash, Bytes>, RepoError>>()
    })
    .await
    .map_err(|e| backend(format!("decoding task failed: {e}")))?;
    let mut found = decoded?;
    for hash in parted {
        if let Some(bytes) = blob_bytes(&mut *conn, &hash).await? {
            found.insert(hash, bytes);
        }
    }
    hashes.iter().map(|h| found.get(h).cloned().ok_or_else(|| backend(format!("content {h} is missing from the database")))).collect()
}

#[async_trait]
impl StoreSnapshot for SqliteSnapshot {
    async fn collections(&self) -> Result<Vec<Collection>, RepoError> {
        let mut tx = self.tx.lock().await;
        let rows =
            sqlx::query(AssertSqlSafe(format!("{COLLECTION_SELECT} ORDER BY c.name"))).fetch_all(&mut **tx).await.map_err(map_err)?;
        rows.iter().map(collection_from_row).collect()
    }

    async fn documents(&self, collection: &CollectionName, after: Option<DocKey>, limit: usize) -> Result<Vec<DocumentMeta>, RepoError> {
        let mut tx = self.tx.lock().await;
        let cid = collection_id(&mut tx, collection).await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS} FROM documents d WHERE d.collection_id = ? AND d.key > ? ORDER BY d.key LIMIT ?"
        )))
        .bind(cid)
        .bind(after.map(String::from).unwrap_or_default())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        rows.iter().map(|r| doc_from_row(collection, r)).collect()
    }

    async fn content(&self, hash: &ContentHash) -> Result<Bytes, RepoError> {
        let mut tx = self.tx.lock().await;
        if let Some((files, displaced)) = &self.files {
            return crate::files::snapshot_content(&mut tx, &**files, displaced, hash).await;
        }
        blob_bytes(&mut tx, hash).await?.ok_or_else(|| backend(format!("content {hash} is missing from the database")))
    }

    async fn content_stream(&self, hash: &ContentHash) -> Result<ContentStream, RepoError> {
        if let Some((files, displaced)) = &self.files {
            return crate::files::snapshot_content_stream(&self.tx, files, displaced, hash).await;
        }
        blob_stream(&self.tx, hash).await?.ok_or_else(|| backend(format!("content {hash} is missing from the database")))
    }

    async fn contents(&self, hashes: Vec<ContentHash>) -> Result<Vec<Bytes>, RepoError> {
        let mut tx = self.tx.lock().await;
        if let Some((files, displaced)) = &self.files {
            let mut out = Vec::with_capacity(hashes.len());
            for h in &hashes {
                out.push(crate::files::snapshot_content(&mut tx, &**files, displaced, h).await?);
            }
            return Ok(out);
        }
        many_blob_bytes(&mut tx, hashes).await
    }

    async fn ledger(&self, collection: &CollectionName, after: Option<DocKey>, limit: usize) -> Result<Vec<LedgerEntry>, RepoError> {
        let mut tx = self.tx.lock().await;
        let cid = collection_id(&mut tx, collection).await?;
        sync::ledger_page(&mut tx, cid, after, limit).await.map_err(from_sync)
    }

    async fn cached_vectors(&self, embedder: &EmbedderId, chunks: Vec<ContentHash>) -> Result<Vec<Option<Vector>>, RepoError> {
        let mut tx = self.tx.lock().await;
        sync::cached_vectors_on(&mut tx, embedder, chunks).await.map_err(from_sync)
    }
}
