//! The `CollectionRepo` implementation.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use colstore_domain::ports::{
    CollectionRepo, CorruptDocument, GcReport, ReadDocument, RepoCapabilities, RepoError, SourceRecord, SourceStamp, StorageStats,
    StoreSnapshot, VerifyEvent, VerifyStream,
};
use colstore_domain::{
    Collection, CollectionName, CollectionSettings, CollectionSpec, Content, ContentHash, ContentHasher, ContentStream, DocKey,
    DocumentMeta, ListQuery, NewDocument, Page, PutOutcome, PutStatus, Timestamp,
};
use futures::StreamExt;
use sqlx::{AssertSqlSafe, Row, SqliteConnection, sqlite::SqliteRow};

use crate::content::{self, PART_SIZE};
use crate::filter_sql::{self, Arg};
use crate::{SqliteRepo, map_err, sync};

/// Rows per multi-row statement: well under SQLite's 32 766 bound parameters.
const ROWS_PER_STATEMENT: usize = 200;

pub(crate) fn backend(msg: impl Into<String>) -> RepoError {
    RepoError::Backend { backend: "sqlite", source: msg.into().into() }
}

/// Small content, hashed and encoded for storage.
pub(crate) struct Encoded {
    pub hash: ContentHash,
    pub size: u64,
    pub codec: i64,
    pub stored: Vec<u8>,
}

/// Content ready to be written.
enum Prepared {
    /// Small content, read whole, not yet hashed or encoded.
    Raw(Bytes),
    /// Small content, hashed and encoded before the transaction starts.
    Inline(Encoded),
    /// Small content, hashed, whose content the store already held before the transaction (not encoded).
    Known { hash: ContentHash, raw: Bytes },
    /// Large content: its first part is read; the rest streams inside the transaction.
    Streaming { first: Bytes, rest: ContentStream },
}

struct Staged {
    key: DocKey,
    content: Prepared,
    meta_json: String,
    tags_json: String,
}

pub(crate) struct Existing {
    pub hash: ContentHash,
    pub meta_json: String,
    pub tags_json: String,
    pub version: i64,
}

pub(crate) fn bind_args<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    args: &[Arg],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(*i),
            Arg::Real(r) => q.bind(*r),
            Arg::Text(s) => q.bind(s.clone()),
        };
    }
    q
}

/// Reads up to one part from a stream; returns the bytes and whether the stream ended.
async fn read_part(stream: &mut ContentStream, key: &DocKey, carry: &mut BytesMut) -> Result<(Bytes, bool), RepoError> {
    while carry.len() < PART_SIZE {
        match stream.next().await {
            Some(Ok(chunk)) => carry.extend_from_slice(&chunk),
            Some(Err(source)) => return Err(RepoError::ContentRead { key: key.clone(), source }),
            None => return Ok((carry.split().freeze(), true)),
        }
    }
    Ok((carry.split_to(PART_SIZE).freeze(), false))
}

async fn prepare(key: &DocKey, content: Content) -> Result<Prepared, RepoError> {
    let inline = Prepared::Raw;
    match content {
        Content::Bytes(b) if b.len() <= PART_SIZE => Ok(inline(b)),
        Content::Bytes(b) => Ok(Prepared::Streaming { first: Bytes::new(), rest: futures::stream::iter([Ok(b)]).boxed() }),
        Content::Stream(mut s) => {
            let mut carry = BytesMut::new();
            let (first, ended) = read_part(&mut s, key, &mut carry).await?;
            if ended {
                Ok(inline(first))
            } else {
                // Whatever was read beyond the first part goes back in front of the rest.
                let rest = futures::stream::iter([Ok(carry.freeze())]).chain(s).boxed();
                Ok(Prepared::Streaming { first, rest })
            }
        }
    }
}

/// Streams a large content into a new blob row (or finds it already stored). Returns (hash, size).
pub(crate) async fn write_streaming(
    conn: &mut SqliteConnection,
    key: &DocKey,
    first: Bytes,
    mut rest: ContentStream,
) -> Result<(ContentHash, u64), RepoError> {
    let blob_id: i64 =
        sqlx::query_scalar("INSERT INTO blobs (hash, size, stored_size, codec, parts, refcount) VALUES (NULL, 0, 0, 0, 0, 0) RETURNING id")
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
    let mut hasher = ContentHasher::new();
    let (mut size, mut stored_size, mut seq) = (0u64, 0u64, 0i64);
    let mut carry = BytesMut::from(&first[..]);
    loop {
        let (part, ended) = read_part(&mut rest, key, &mut carry).await?;
        if !part.is_empty() {
            hasher.update(&part);
            size += part.len() as u64;
            let (codec, stored) = content::encode(&part);
            stored_size += stored.len() as u64;
            sqlx::query("INSERT INTO blob_parts (blob_id, seq, codec, data) VALUES (?, ?, ?, ?)")
                .bind(blob_id)
                .bind(seq)
                .bind(codec)
                .bind(stored)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            seq += 1;
        }
        if ended {
            break;
        }
    }
    let hash = hasher.finish();
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM blobs WHERE hash = ?")
        .bind(hash.as_bytes().to_vec())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    if exists.is_some() {
        sqlx::query("DELETE FROM blob_parts WHERE blob_id = ?").bind(blob_id).execute(&mut *conn).await.map_err(map_err)?;
        sqlx::query("DELETE FROM blobs WHERE id = ?").bind(blob_id).execute(&mut *conn).await.map_err(map_err)?;
    } else if seq == 0 {
        // An empty stream that only looked large cannot happen (prepare inlines it), but stay correct anyway.
        sqlx::query("UPDATE blobs SET hash = ?, size = 0, stored_size = 0, codec = 0, parts = 0 WHERE id = ?")
            .bind(hash.as_bytes().to_vec())
            .bind(blob_id)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        sqlx::query("INSERT INTO blob_data (blob_id, data) VALUES (?, x'')").bind(blob_id).execute(&mut *conn).await.map_err(map_err)?;
    } else {
        sqlx::query("UPDATE blobs SET hash = ?, size = ?, stored_size = ?, parts = ? WHERE id = ?")
            .bind(hash.as_bytes().to_vec())
            .bind(size as i64)
            .bind(stored_size as i64)
            .bind(seq)
            .bind(blob_id)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    Ok((hash, size))
}

/// Inserts small contents (hash, size, codec, stored bytes) as inline blobs, skipping those already stored, in
/// multi-row statements inside the caller's transaction.
pub(crate) async fn insert_inline_blobs(
    conn: &mut SqliteConnection,
    mut inline_rows: Vec<(ContentHash, u64, i64, Vec<u8>)>,
) -> Result<(), RepoError> {
    let mut inserted_hashes = HashSet::new();
    inline_rows.retain(|(h, ..)| inserted_hashes.insert(*h));
    for chunk in inline_rows.chunks(ROWS_PER_STATEMENT) {
        // Small blob rows first; only the ones actually inserted (new contents) get their bytes written.
        let values = vec!["(?, ?, ?, ?, 0, 0)"; chunk.len()].join(",");
        let sql = format!(
            "INSERT INTO blobs (hash, size, stored_size, codec, parts, refcount) VALUES {values} ON CONFLICT (hash) DO NOTHING RETURNING id, hash"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (hash, size, codec, stored) in chunk {
            q = q.bind(hash.as_bytes().to_vec()).bind(*size as i64).bind(stored.len() as i64).bind(*codec);
        }
        let mut new_ids: HashMap<Vec<u8>, i64> = HashMap::new();
        for r in q.fetch_all(&mut *conn).await.map_err(map_err)? {
            new_ids.insert(r.try_get("hash").map_err(map_err)?, r.try_get("id").map_err(map_err)?);
        }
        if new_ids.is_empty() {
            continue;
        }
        let values = vec!["(?, ?)"; new_ids.len()].join(",");
        let mut q = sqlx::query(AssertSqlSafe(format!("INSERT INTO blob_data (blob_id, data) VALUES {values}")));
        for (hash, _, _, stored) in chunk {
            if let Some(id) = new_ids.get(hash.as_bytes().as_slice()) {
                q = q.bind(*id).bind(stored.clone());
            }
        }
        q.execute(&mut *conn).await.map_err(map_err)?;
    }

    Ok(())
}

pub(crate) async fn collection_id(conn: &mut SqliteConnection, name: &CollectionName) -> Result<i64, RepoError> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM collections WHERE name = ?")
        .bind(name.as_str().to_owned())
        .fetch_optional(conn)
        .await
        .map_err(map_err)?
        .ok_or_else(|| RepoError::CollectionNotFound(name.clone()))
}

/// Which of `hashes` the store holds a content for.
pub(crate) async fn stored_hashes(
    conn: &mut SqliteConnection,
    hashes: impl IntoIterator<Item = ContentHash>,
) -> Result<HashSet<ContentHash>, RepoError> {
    let hashes: Vec<ContentHash> = hashes.into_iter().collect();
    let mut found = HashSet::new();
    for chunk in hashes.chunks(STORED_HASHES_PER_STATEMENT) {
        let mut q = sqlx::query_scalar::<_, Vec<u8>>(AssertSqlSafe(stored_hashes_sql(chunk.len())));
        for h in chunk {
            q = q.bind(h.as_bytes().to_vec());
        }
        for h in q.fetch_all(&mut *conn).await.map_err(map_err)? {
            found.insert(hash_from(h)?);
        }
    }
    Ok(found)
}

/// The statement of [`stored_hashes`] for `n` hashes.
pub(crate) fn stored_hashes_sql(n: usize) -> String {
    format!("SELECT hash FROM blobs WHERE hash IN ({})", vec!["?"; n].join(","))
}

/// Hashes per [`stored_hashes`] statement.
const STORED_HASHES_PER_STATEMENT: usize = 500;

pub(crate) fn hash_from(v: Vec<u8>) -> Result<ContentHash, RepoError> {
    ContentHash::from_slice(&v).map_err(|e| backend(format!("bad hash in database: {e}")))
}

pub(crate) fn doc_from_row(collection: &CollectionName, r: &SqliteRow) -> Result<DocumentMeta, RepoError> {
    let get_i = |c: &str| r.try_get::<i64, _>(c).map_err(map_err);
    let key: String = r.try_get("key").map_err(map_err)?;
    let key = DocKey::parse(&key).map_err(|e| backend(format!("bad key in database: {e}")))?;
    let meta: String = r.try_get("meta").map_err(map_err)?;
    let tags: String = r.try_get("tags").map_err(map_err)?;
    Ok(DocumentMeta {
        collection: collection.clone(),
        content_hash: hash_from(r.try_get("hash").map_err(map_err)?)?,
        size: get_i("size")? as u64,
        metadata: serde_json::from_str(&meta).map_err(|e| backend(format!("bad metadata of {key} in database: {e}")))?,
        tags: serde_json::from_str(&tags).map_err(|e| backend(format!("bad tags of {key} in database: {e}")))?,
        version: get_i("version")? as u64,
        created_at: Timestamp::from_millis(get_i("created_at")?),
        updated_at: Timestamp::from_millis(get_i("updated_at")?),
        key,
    })
}

pub(crate) fn collection_from_row(r: &SqliteRow) -> Result<Collection, RepoError> {
    let name: String = r.try_get("name").map_err(map_err)?;
    let settings: String = r.try_get("settings").map_err(map_err)?;
    Ok(Collection {
        name: CollectionName::parse(&name).map_err(|e| backend(format!("bad collection name in database: {e}")))?,
        settings: serde_json::from_str::<CollectionSettings>(&settings).map_err(|e| backend(format!("bad settings of {name}: {e}")))?,
        created_at: Timestamp::from_millis(r.try_get("created_at").map_err(map_err)?),
        document_count: r.try_get::<i64, _>("n").map_err(map_err)? as u64,
        logical_bytes: r.try_get::<i64, _>("bytes").map_err(map_err)? as u64,
    })
}

pub(crate) const COLLECTION_SELECT: &str = "SELECT c.name, c.settings, c.created_at, \
     (SELECT count(*) FROM documents d WHERE d.collection_id = c.id) AS n, \
     (SELECT coalesce(sum(d.size), 0) FROM documents d WHERE d.collection_id = c.id) AS bytes \
     FROM collections c";

/// Bytes of stored content handed to one verification task.
const VERIFY_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The verdict on one inline content: `Ok((documents, bytes))` or `Err((expected, actual, problem))`.
type Checked = Result<(u64, u64), (ContentHash, Option<ContentHash>, String)>;

fn check_inline((expected, size, n, codec, data): (ContentHash, u64, u64, i64, Vec<u8>)) -> Checked {
    match content::decode(codec, data, size as usize) {
        Ok(raw) => {
            let actual = ContentHash::of(&raw);
            if actual == expected && raw.len() as u64 == size {
                Ok((n, size))
            } else {
                Err((expected, Some(actual), "content does not match its hash".into()))
            }
        }
        Err(e) => Err((expected, None, format!("content cannot be decoded: {e}"))),
    }
}

/// Sends the good verdicts as one `Checked` event and keeps the bad ones; false when the receiver is gone.
async fn report_checked(
    verdicts: Vec<Checked>,
    tx: &tokio::sync::mpsc::Sender<Result<VerifyEvent, RepoError>>,
    bad: &mut Vec<(ContentHash, Option<ContentHash>, String)>,
) -> bool {
    let (mut documents, mut bytes) = (0, 0);
    for v in verdicts {
        match v {
            Ok((n, b)) => {
                documents += n;
                bytes += b;
            }
            Err(b) => bad.push(b),
        }
    }
    documents == 0 || tx.send(Ok(VerifyEvent::Checked { documents, bytes })).await.is_ok()
}

/// Streams the parts of a multi-part blob, one query per part, on the given (read) transaction, which the stream owns.
pub(crate) fn parts_stream(tx: sqlx::Transaction<'static, sqlx::Sqlite>, blob_id: i64, parts: i64) -> ContentStream {
    futures::stream::unfold((tx, 0i64), move |(mut tx, seq)| async move {
        if seq >= parts {
            return None;
        }
        let item = match sqlx::query("SELECT codec, data FROM blob_parts WHERE blob_id = ? AND seq = ?")
            .bind(blob_id)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await
        {
            Ok(Some(r)) => match (r.try_get::<i64, _>(0), r.try_get::<Vec<u8>, _>(1)) {
                (Ok(codec), Ok(data)) => content::decode(codec, data, PART_SIZE).map_err(std::io::Error::other),
                (Err(e), _) | (_, Err(e)) => Err(std::io::Error::other(e)),
            },
            Ok(None) => Err(std::io::Error::other(format!("part {seq} of the content is missing"))),
            Err(e) => Err(std::io::Error::other(e)),
        };
        let next = if item.is_ok() { seq + 1 } else { parts };
        Some((item, (tx, next)))
    })
    .boxed()
}

/// Keys per statement of a batched read (bound as one JSON array).
pub(crate) const KEYS_PER_READ: usize = 500;

/// `read_documents` in blob mode: the descriptions and inline content of the keys ?3 (a JSON array) of collection ?2,
/// content only for documents of at most ?1 bytes.
pub(crate) fn read_documents_sql() -> String {
    format!(
        "SELECT {DOC_COLUMNS}, b.id AS blob_id, b.codec, b.parts, CASE WHEN d.size <= ? THEN bd.data END AS data \
         FROM documents d LEFT JOIN blobs b ON b.hash = d.hash LEFT JOIN blob_data bd ON bd.blob_id = b.id \
         WHERE d.collection_id = ? AND d.key IN (SELECT value FROM json_each(?))"
    )
}

/// A group of keys as the JSON array `json_each` reads.
pub(crate) fn keys_json(keys: &[DocKey]) -> String {
    serde_json::Value::Array(keys.iter().map(|k| serde_json::Value::String(k.as_str().to_owned())).collect()).to_string()
}

/// An answer of `read_documents` for a key given twice (the bytes are shared, not copied).
pub(crate) fn clone_answer(a: &Result<ReadDocument, RepoError>) -> Result<ReadDocument, RepoError> {
    match a {
        Ok(d) => Ok(d.clone()),
        Err(RepoError::Corrupt { key, detail }) => Err(RepoError::Corrupt { key: key.clone(), detail: detail.clone() }),
        Err(RepoError::ContentRead { key, source }) => {
            Err(RepoError::ContentRead { key: key.clone(), source: std::io::Error::new(source.kind(), source.to_string()) })
        }
        Err(e) => Err(backend(e.to_string())),
    }
}

/// The whole content of a document read by `read_documents` (blob mode), from its row (inline data) or, for content
/// stored in parts, from its parts on the same transaction. Failures of this one document are its answer.
async fn whole_from_row(
    conn: &mut SqliteConnection,
    meta: DocumentMeta,
    row: &SqliteRow,
) -> Result<Result<ReadDocument, RepoError>, RepoError> {
    let key = meta.key.clone();
    let corrupt = |detail: &str| Ok(Err(RepoError::Corrupt { key: key.clone(), detail: detail.into() }));
    let Some(blob_id) = row.try_get::<Option<i64>, _>("blob_id").map_err(map_err)? else {
        return corrupt("its content is missing from the database");
    };
    let parts: i64 = row.try_get("parts").map_err(map_err)?;
    let unreadable = |e: std::io::Error| Ok(Err(RepoError::ContentRead { key: key.clone(), source: e }));
    if parts == 0 {
        let Some(data) = row.try_get::<Option<Vec<u8>>, _>("data").map_err(map_err)? else {
            return corrupt("its content bytes are missing from the database");
        };
        return match content::decode(row.try_get("codec").map_err(map_err)?, data, meta.size as usize) {
            Ok(bytes) => Ok(Ok(ReadDocument::Whole(meta, bytes))),
            Err(e) => unreadable(std::io::Error::other(e)),
        };
    }
    let mut out = BytesMut::with_capacity(meta.size as usize);
    for seq in 0..parts {
        let part = sqlx::query("SELECT codec, data FROM blob_parts WHERE blob_id = ? AND seq = ?")
            .bind(blob_id)
            .bind(seq)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
        let Some(part) = part else { return unreadable(std::io::Error::other(format!("part {seq} of the content is missing"))) };
        match content::decode(part.try_get(0).map_err(map_err)?, part.try_get(1).map_err(map_err)?, PART_SIZE) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(e) => return unreadable(std::io::Error::other(e)),
        }
    }
    Ok(Ok(ReadDocument::Whole(meta, out.freeze())))
}

impl SqliteRepo {
    /// The content of `hash` as stored in the blobs (whatever the repository's mode), streamed from one read
    /// transaction; `None` when no blob has it.
    pub(crate) async fn blob_stream(&self, hash: &ContentHash) -> Result<Option<ContentStream>, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let Some(row) = sqlx::query(
            "SELECT b.id, b.size, b.codec, b.parts, bd.data FROM blobs b LEFT JOIN blob_data bd ON bd.blob_id = b.id WHERE b.hash = ?",
        )
        .bind(hash.as_bytes().to_vec())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?
        else {
            return Ok(None);
        };
        let parts: i64 = row.try_get("parts").map_err(map_err)?;
        if parts > 0 {
            return Ok(Some(parts_stream(tx, row.try_get("id").map_err(map_err)?, parts)));
        }
        let size = usize::try_from(row.try_get::<i64, _>("size").map_err(map_err)?).unwrap_or(0);
        let item = match row.try_get::<Option<Vec<u8>>, _>("data").map_err(map_err)? {
            Some(data) => content::decode(row.try_get("codec").map_err(map_err)?, data, size).map_err(std::io::Error::other),
            None => Err(std::io::Error::other(format!("the bytes of content {hash} are missing from the database"))),
        };
        Ok(Some(futures::stream::iter([item]).boxed()))
    }
}

/// One document of a put whose content is already stored (sqlite mode) or staged (filesystem mode).
pub(crate) struct DocWrite<'a> {
    pub key: &'a DocKey,
    pub hash: ContentHash,
    pub size: u64,
    pub meta_json: &'a str,
    pub tags_json: &'a str,
}

/// The metadata side of a put, shared by both storage modes, inside the caller's write transaction: compares with
/// the existing rows to classify Created/Updated/Unchanged, upserts the changed documents with multi-row statements,
/// marks them pending in the ledger and enqueues the collection's sync job. Returns one outcome per row (in order) and
/// each row's previous content hash (`None` when created).
pub(crate) async fn write_documents(
    conn: &mut SqliteConnection,
    cid: i64,
    collection: &CollectionName,
    rows: &[DocWrite<'_>],
    now: i64,
) -> Result<(Vec<PutOutcome>, Vec<Option<ContentHash>>), RepoError> {
    let keys: Vec<&DocKey> = rows.iter().map(|r| r.key).collect();
    let existing = SqliteRepo::existing_docs(&mut *conn, cid, &keys).await?;
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut previous = Vec::with_capacity(rows.len());
    let mut writes: Vec<usize> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let old = existing.get(r.key.as_str());
        let (status, version) = match old {
            None => (PutStatus::Created, 1),
            Some(e) if e.hash == r.hash && e.meta_json == r.meta_json && e.tags_json == r.tags_json => {
                (PutStatus::Unchanged, e.version as u64)
            }
            Some(e) => (PutStatus::Updated, e.version as u64 + 1),
        };
        if status != PutStatus::Unchanged {
            writes.push(i);
        }
        previous.push(old.map(|e| e.hash));
        outcomes.push(PutOutcome { key: r.key.clone(), status, version, content_hash: r.hash, size: r.size });
    }
    for chunk in writes.chunks(ROWS_PER_STATEMENT) {
        let values = vec!["(?, ?, ?, ?, ?, ?, 1, ?, ?)"; chunk.len()].join(",");
        let sql = format!(
            "INSERT INTO documents (collection_id, key, hash, size, meta, tags, version, created_at, updated_at) VALUES {values} \
             ON CONFLICT (collection_id, key) DO UPDATE SET hash = excluded.hash, size = excluded.size, meta = excluded.meta, \
             tags = excluded.tags, version = documents.version + 1, updated_at = excluded.updated_at"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for &i in chunk {
            let r = &rows[i];
            q = q
                .bind(cid)
                .bind(r.key.as_str().to_owned())
                .bind(r.hash.as_bytes().to_vec())
                .bind(r.size as i64)
                .bind(r.meta_json.to_owned())
                .bind(r.tags_json.to_owned())
                .bind(now)
                .bind(now);
        }
        q.execute(&mut *conn).await.map_err(map_err)?;
    }
    // The ledger follows in the same transaction: what changed must reach the vector index, even after a crash.
    if !writes.is_empty() {
        let keys: Vec<&str> = writes.iter().map(|&i| rows[i].key.as_str()).collect();
        sync::touch(&mut *conn, cid, &keys, now).await.map_err(map_err)?;
        sync::enqueue_sync(&mut *conn, collection, now).await.map_err(map_err)?;
    }
    Ok((outcomes, previous))
}

/// Deletes documents by key inside the caller's write transaction, shared by both storage modes: the ledger rows of
/// the deleted ones become pending deletions (or go, when nothing was projected) and the sync job is enqueued when
/// there is something to project. Returns the keys that existed, in input order.
pub(crate) async fn delete_rows(
    conn: &mut SqliteConnection,
    cid: i64,
    collection: &CollectionName,
    keys: Vec<DocKey>,
    now: i64,
) -> Result<Vec<DocKey>, RepoError> {
    let mut deleted = Vec::new();
    for k in keys {
        let n = sqlx::query("DELETE FROM documents WHERE collection_id = ? AND key = ?")
            .bind(cid)
            .bind(k.as_str().to_owned())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?
            .rows_affected();
        if n > 0 {
            deleted.push(k);
        }
    }
    if !deleted.is_empty() {
        let keys: Vec<&str> = deleted.iter().map(DocKey::as_str).collect();
        if sync::forget_or_mark_deleted(&mut *conn, cid, &keys, now).await.map_err(map_err)? > 0 {
            sync::enqueue_sync(&mut *conn, collection, now).await.map_err(map_err)?;
        }
    }
    Ok(deleted)
}

/// How many ids of a lookup are counted, at most, to choose the one a listing starts from.
const DRIVE_COUNT_CAP: i64 = 5000;

pub(crate) const DOC_COLUMNS: &str = "d.key, d.hash, d.size, d.meta, d.tags, d.version, d.created_at, d.updated_at";

impl SqliteRepo {
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, RepoError> {
        self.begin_immediate().await.map_err(map_err)
    }

    pub(crate) async fn existing_docs(
        conn: &mut SqliteConnection,
        cid: i64,
        keys: &[&DocKey],
    ) -> Result<HashMap<String, Existing>, RepoError> {
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT key, hash, meta, tags, version FROM documents WHERE collection_id = ? AND key IN ({marks})");
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(cid);
            for k in chunk {
                q = q.bind(k.as_str().to_owned());
            }
            for r in q.fetch_all(&mut *conn).await.map_err(map_err)? {
                out.insert(
                    r.try_get("key").map_err(map_err)?,
                    Existing {
                        hash: hash_from(r.try_get("hash").map_err(map_err)?)?,
                        meta_json: r.try_get("meta").map_err(map_err)?,
                        tags_json: r.try_get("tags").map_err(map_err)?,
                        version: r.try_get("version").map_err(map_err)?,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Documents that reference `hash` within the scope, for corruption reports.
    async fn docs_with_hash(&self, hash: &ContentHash, scope: Option<i64>) -> Result<Vec<(CollectionName, DocKey)>, RepoError> {
        let rows = sqlx::query("SELECT c.name, d.key FROM documents d JOIN collections c ON c.id = d.collection_id WHERE d.hash = ? AND (? IS NULL OR d.collection_id = ?) ORDER BY c.name, d.key")
            .bind(hash.as_bytes().to_vec())
            .bind(scope)
            .bind(scope)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let c: String = r.try_get(0).map_err(map_err)?;
                let k: String = r.try_get(1).map_err(map_err)?;
                Ok((CollectionName::parse(&c).map_err(|e| backend(e.to_string()))?, DocKey::parse(&k).map_err(|e| backend(e.to_string()))?))
            })
            .collect()
    }

    async fn scope_id(&self, collection: Option<&CollectionName>) -> Result<Option<i64>, RepoError> {
        match collection {
            None => Ok(None),
            Some(c) => {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                Ok(Some(collection_id(&mut conn, c).await?))
            }
        }
    }

    /// Re-hashes every blob referenced in scope; sends events; runs as a background task.
    async fn verify_task(self, scope: Option<i64>, tx: tokio::sync::mpsc::Sender<Result<VerifyEvent, RepoError>>) -> Result<(), RepoError> {
        let mut conn = self.pool.begin().await.map_err(map_err)?;
        // How many documents in scope stand behind each hash.
        let counts: HashMap<Vec<u8>, u64> =
            sqlx::query("SELECT hash, count(*) FROM documents WHERE (? IS NULL OR collection_id = ?) GROUP BY hash")
                .bind(scope)
                .bind(scope)
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)?
                .into_iter()
                .map(|r| Ok((r.try_get::<Vec<u8>, _>(0)?, r.try_get::<i64, _>(1)? as u64)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(map_err)?;
        let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(counts.len());
        let mut bad: Vec<(ContentHash, Option<ContentHash>, String)> = Vec::new();
        let mut multipart: Vec<(i64, Vec<u8>, u64)> = Vec::new();
        {
            let mut rows = sqlx::query(
                "SELECT b.id, b.hash, b.size, b.codec, b.parts, bd.data FROM blobs b LEFT JOIN blob_data bd ON bd.blob_id = b.id \
                 WHERE b.refcount > 0 AND b.hash IS NOT NULL",
            )
            .fetch(&mut *conn);
            // Rows are decoded and re-hashed on a blocking thread, a few MiB at a time, while the next rows are read.
            let mut pending: Option<tokio::task::JoinHandle<Vec<Checked>>> = None;
            let mut batch: Vec<(ContentHash, u64, u64, i64, Vec<u8>)> = Vec::new();
            let mut batch_bytes = 0usize;
            loop {
                let next = rows.next().await;
                let flush = next.is_none() || batch_bytes >= VERIFY_BATCH_BYTES;
                if flush && !batch.is_empty() {
                    let work = std::mem::take(&mut batch);
                    batch_bytes = 0;
                    let handle = tokio::task::spawn_blocking(move || work.into_iter().map(check_inline).collect::<Vec<_>>());
                    if let Some(prev) = pending.replace(handle)
                        && !report_checked(prev.await.map_err(|e| backend(e.to_string()))?, &tx, &mut bad).await
                    {
                        return Ok(());
                    }
                }
                let Some(r) = next else { break };
                let r = r.map_err(map_err)?;
                let hash_bytes: Vec<u8> = r.try_get("hash").map_err(map_err)?;
                let Some(&n) = counts.get(&hash_bytes) else { continue };
                seen.insert(hash_bytes.clone());
                let size = r.try_get::<i64, _>("size").map_err(map_err)? as u64;
                if r.try_get::<i64, _>("parts").map_err(map_err)? > 0 {
                    multipart.push((r.try_get("id").map_err(map_err)?, hash_bytes, n));
                    continue;
                }
                let expected = hash_from(hash_bytes)?;
                let Some(data) = r.try_get::<Option<Vec<u8>>, _>("data").map_err(map_err)? else {
                    bad.push((expected, None, "content bytes are missing from the database".into()));
                    continue;
                };
                batch_bytes += data.len();
                batch.push((expected, size, n, r.try_get("codec").map_err(map_err)?, data));
            }
            if let Some(prev) = pending
                && !report_checked(prev.await.map_err(|e| backend(e.to_string()))?, &tx, &mut bad).await
            {
                return Ok(());
            }
        }
        for (blob_id, hash_bytes, n) in multipart {
            let expected = hash_from(hash_bytes)?;
            let mut hasher = ContentHasher::new();
            let mut bytes = 0u64;
            let mut problem = None;
            let mut parts =
                sqlx::query("SELECT codec, data FROM blob_parts WHERE blob_id = ? ORDER BY seq").bind(blob_id).fetch(&mut *conn);
            while let Some(r) = parts.next().await {
                let r = r.map_err(map_err)?;
                match content::decode(r.try_get("codec").map_err(map_err)?, r.try_get("data").map_err(map_err)?, PART_SIZE) {
                    Ok(raw) => {
                        hasher.update(&raw);
                        bytes += raw.len() as u64;
                    }
                    Err(e) => {
                        problem = Some(format!("content cannot be decoded: {e}"));
                        break;
                    }
                }
            }
            drop(parts);
            match problem {
                Some(p) => bad.push((expected, None, p)),
                None => {
                    let actual = hasher.finish();
                    if actual == expected {
                        if tx.send(Ok(VerifyEvent::Checked { documents: n, bytes })).await.is_err() {
                            return Ok(());
                        }
                    } else {
                        bad.push((expected, Some(actual), "content does not match its hash".into()));
                    }
                }
            }
        }
        // Documents whose content row is missing altogether.
        for h in counts.keys().filter(|h| !seen.contains(*h)) {
            bad.push((hash_from(h.clone())?, None, "content is missing from the database".into()));
        }
        drop(conn);
        for (expected, actual, problem) in bad {
            for (collection, key) in self.docs_with_hash(&expected, scope).await? {
                let ev = VerifyEvent::Corrupt(CorruptDocument { collection, key, expected, actual, problem: problem.clone() });
                if tx.send(Ok(ev)).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl CollectionRepo for SqliteRepo {
    fn capabilities(&self) -> RepoCapabilities {
        if self.files.is_some() {
            RepoCapabilities { content_addressed: false, compression: false, external_edits: true }
        } else {
            RepoCapabilities { content_addressed: true, compression: true, external_edits: false }
        }
    }

    async fn create_collection(&self, spec: CollectionSpec) -> Result<Collection, RepoError> {
        let settings = serde_json::to_string(&spec.settings).map_err(|e| backend(e.to_string()))?;
        if let Some(files) = &self.files {
            // The folder first: an empty folder left by a failed insert is harmless, a collection without one is not.
            files.create_root(&spec.name).await.map_err(crate::files::files_err)?;
        }
        let now = self.clock.now();
        let mut tx = self.begin_write().await?;
        let res = sqlx::query("INSERT INTO collections (name, settings, created_at) VALUES (?, ?, ?)")
            .bind(spec.name.as_str().to_owned())
            .bind(settings)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await;
        match res {
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => return Err(RepoError::CollectionExists(spec.name)),
            other => other.map_err(map_err)?,
        };
        tx.commit().await.map_err(map_err)?;
        Ok(Collection { name: spec.name, settings: spec.settings, created_at: now, document_count: 0, logical_bytes: 0 })
    }

    async fn collection(&self, name: &CollectionName) -> Result<Collection, RepoError> {
        let row = sqlx::query(AssertSqlSafe(format!("{COLLECTION_SELECT} WHERE c.name = ?")))
            .bind(name.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| RepoError::CollectionNotFound(name.clone()))?;
        collection_from_row(&row)
    }

    async fn update_settings(&self, name: &CollectionName, settings: CollectionSettings) -> Result<Collection, RepoError> {
        let json = serde_json::to_string(&settings).map_err(|e| backend(e.to_string()))?;
        let mut tx = self.begin_write().await?;
        let cid = collection_id(&mut tx, name).await?;
        sqlx::query("UPDATE collections SET settings = ? WHERE id = ?").bind(json).bind(cid).execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        self.collection(name).await
    }

    async fn list_collections(&self) -> Result<Vec<Collection>, RepoError> {
        let rows =
            sqlx::query(AssertSqlSafe(format!("{COLLECTION_SELECT} ORDER BY c.name"))).fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(collection_from_row).collect()
    }

    async fn delete_collection(&self, name: &CollectionName) -> Result<u64, RepoError> {
        let mut tx = self.begin_write().await?;
        let cid = collection_id(&mut tx, name).await?;
        if self.files.is_some() {
            // Every file becomes a 'remove' intent in this transaction (replacing any pending one for the key).
            crate::files::intend_collection_removal(&mut tx, cid, name, self.clock.now().as_millis()).await?;
        }
        sqlx::query("DELETE FROM sync_ledger WHERE collection_id = ?").bind(cid).execute(&mut *tx).await.map_err(map_err)?;
        let n = sqlx::query("DELETE FROM documents WHERE collection_id = ?")
            .bind(cid)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        sqlx::query("DELETE FROM collections WHERE id = ?").bind(cid).execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        if let Some(files) = &self.files {
            crate::catalog_cache::remove(&crate::catalog_cache::dir_beside(&self.path), cid);
            self.finish_intents(&**files, crate::files::Which::Collection(name.to_string()), false).await?;
            files.remove_root(name).await.map_err(crate::files::files_err)?;
        }
        Ok(n)
    }

    #[tracing::instrument(skip_all, fields(collection = %collection, docs = docs.len()))]
    async fn put_batch(&self, collection: &CollectionName, docs: Vec<NewDocument>) -> Result<Vec<PutOutcome>, RepoError> {
        // Report a missing collection before anything else (and before reading any stream); the write transaction
        // checks again, in case the collection is deleted meanwhile.
        {
            let mut conn = self.pool.acquire().await.map_err(map_err)?;
            collection_id(&mut conn, collection).await?;
        }
        let mut seen = HashSet::with_capacity(docs.len());
        for d in &docs {
            if !seen.insert(d.key.clone()) {
                return Err(RepoError::DuplicateKey(d.key.clone()));
            }
        }
        if let Some(files) = &self.files {
            return self.put_batch_files(&**files, collection, docs).await;
        }
        // Hash and compress outside the write transaction, so the write lock is held only for the writes.
        let mut staged = Vec::with_capacity(docs.len());
        for d in docs {
            let content = prepare(&d.key, d.content).await?;
            staged.push(Staged { content, meta_json: d.metadata.to_json(), tags_json: d.tags.to_json(), key: d.key });
        }
        let t0 = std::time::Instant::now();
        // Hash small contents in parallel, off the async thread, and compress only those the store lacks: an
        // unchanged document (every one of a re-run of `col add`) or a duplicate costs a hash, not a compression.
        let raw_at: Vec<usize> = staged.iter().enumerate().filter(|(_, s)| matches!(s.content, Prepared::Raw(_))).map(|(i, _)| i).collect();
        // The text of each content held in memory, for the full-text index written in the same transaction.
        let mut texts: Vec<Option<Bytes>> = vec![None; staged.len()];
        if !raw_at.is_empty() {
            let raws: Vec<Bytes> = raw_at
                .iter()
                .map(|&i| match &staged[i].content {
                    Prepared::Raw(b) => b.clone(),
                    _ => Bytes::new(),
                })
                .collect();
            let hashed = tokio::task::spawn_blocking(move || content::par_map(raws, |raw| (ContentHash::of(&raw), raw)))
                .await
                .map_err(|e| backend(format!("hashing task failed: {e}")))?;
            let known = {
                let mut conn = self.pool.acquire().await.map_err(map_err)?;
                stored_hashes(&mut conn, hashed.iter().map(|(h, _)| *h)).await?
            };
            let mut to_encode = Vec::new();
            for (i, (hash, raw)) in raw_at.into_iter().zip(hashed) {
                texts[i] = Some(raw.clone());
                if known.contains(&hash) {
                    staged[i].content = Prepared::Known { hash, raw };
                } else {
                    to_encode.push((i, hash, raw));
                }
            }
            let (at, items): (Vec<usize>, Vec<(ContentHash, Bytes)>) = to_encode.into_iter().map(|(i, h, raw)| (i, (h, raw))).unzip();
            let encoded = tokio::task::spawn_blocking(move || content::encode_all(items))
                .await
                .map_err(|e| backend(format!("encoding task failed: {e}")))?;
            for (i, enc) in at.into_iter().zip(encoded) {
                staged[i].content = Prepared::Inline(enc);
            }
        }
        let t_enc = t0.elapsed();
        let now = self.clock.now().as_millis();
        let mut tx = self.begin_write().await?;
        let t_begin = t0.elapsed();
        let cid = collection_id(&mut tx, collection).await?;

        // Resolve content: inline blobs are inserted in multi-row statements; large ones stream in now.
        let mut resolved: Vec<(ContentHash, u64)> = Vec::with_capacity(staged.len());
        let mut inline_rows: Vec<(ContentHash, u64, i64, Vec<u8>)> = Vec::new();
        let mut known_rows: Vec<(ContentHash, Bytes)> = Vec::new();
        for s in &mut staged {
            match std::mem::replace(&mut s.content, Prepared::Streaming { first: Bytes::new(), rest: futures::stream::empty().boxed() }) {
                Prepared::Inline(Encoded { hash, size, codec, stored }) => {
                    resolved.push((hash, size));
                    inline_rows.push((hash, size, codec, stored));
                }
                Prepared::Known { hash, raw } => {
                    resolved.push((hash, raw.len() as u64));
                    known_rows.push((hash, raw));
                }
                Prepared::Raw(raw) => {
                    let (codec, stored) = content::encode(&raw);
                    let hash = ContentHash::of(&raw);
                    resolved.push((hash, raw.len() as u64));
                    inline_rows.push((hash, raw.len() as u64, codec, stored));
                }
                Prepared::Streaming { first, rest } => resolved.push(write_streaming(&mut tx, &s.key, first, rest).await?),
            }
        }
        // Contents found stored before the transaction began may have been collected since (`col gc`): those are
        // encoded and stored now, inside it.
        if !known_rows.is_empty() {
            let still = stored_hashes(&mut tx, known_rows.iter().map(|(h, _)| *h)).await?;
            for (hash, raw) in known_rows.into_iter().filter(|(h, _)| !still.contains(h)) {
                let (codec, stored) = content::encode(&raw);
                inline_rows.push((hash, raw.len() as u64, codec, stored));
            }
        }
        insert_inline_blobs(&mut tx, inline_rows).await?;

        let t_blobs = t0.elapsed();
        let rows: Vec<DocWrite<'_>> = staged
            .iter()
            .zip(&resolved)
            .map(|(s, &(hash, size))| DocWrite { key: &s.key, hash, size, meta_json: &s.meta_json, tags_json: &s.tags_json })
            .collect();
        let (outcomes, previous) = write_documents(&mut tx, cid, collection, &rows, now).await?;
        let t_docs = t0.elapsed();
        // Full-text rows of every changed content, in this transaction (a streamed one stays pending for catch-up).
        let written: Vec<(DocKey, ContentHash, Bytes)> = (0..rows.len())
            .filter(|&i| outcomes[i].status != PutStatus::Unchanged && previous[i] != Some(rows[i].hash))
            .filter_map(|i| texts[i].take().map(|b| (rows[i].key.clone(), rows[i].hash, b)))
            .collect();
        crate::text::index_written(&mut tx, cid, written).await?;
        let t_text = t0.elapsed();
        tx.commit().await.map_err(map_err)?;
        tracing::debug!(?t_enc, ?t_begin, ?t_blobs, ?t_docs, ?t_text, t_commit = ?t0.elapsed(), "put_batch phases");
        Ok(outcomes)
    }

    async fn document(&self, collection: &CollectionName, key: &DocKey) -> Result<DocumentMeta, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let cid = collection_id(&mut tx, collection).await?;
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {DOC_COLUMNS} FROM documents d WHERE d.collection_id = ? AND d.key = ?")))
            .bind(cid)
            .bind(key.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or_else(|| RepoError::DocumentNotFound { collection: collection.clone(), key: key.clone() })?;
        doc_from_row(collection, &row)
    }

    async fn read_content(&self, collection: &CollectionName, key: &DocKey) -> Result<(DocumentMeta, ContentStream), RepoError> {
        if let Some(files) = &self.files {
            return self.read_content_files(&**files, collection, key).await;
        }
        // One read transaction: the description and every part come from the same snapshot, even if a writer
        // replaces the document and gc runs while the caller is still reading.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let cid = collection_id(&mut tx, collection).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DOC_COLUMNS}, b.id AS blob_id, b.codec, b.parts, bd.data FROM documents d LEFT JOIN blobs b ON b.hash = d.hash \
             LEFT JOIN blob_data bd ON bd.blob_id = b.id \
             WHERE d.collection_id = ? AND d.key = ?"
        )))
        .bind(cid)
        .bind(key.as_str().to_owned())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?
        .ok_or_else(|| RepoError::DocumentNotFound { collection: collection.clone(), key: key.clone() })?;
        let meta = doc_from_row(collection, &row)?;
        let Some(blob_id) = row.try_get::<Option<i64>, _>("blob_id").map_err(map_err)? else {
            return Err(RepoError::Corrupt { key: key.clone(), detail: "its content is missing from the database".into() });
        };
        let parts: i64 = row.try_get("parts").map_err(map_err)?;
        if parts == 0 {
            let Some(data) = row.try_get::<Option<Vec<u8>>, _>("data").map_err(map_err)? else {
                return Err(RepoError::Corrupt { key: key.clone(), detail: "its content bytes are missing from the database".into() });
            };
            let item = content::decode(row.try_get("codec").map_err(map_err)?, data, meta.size as usize).map_err(std::io::Error::other);
            return Ok((meta, futures::stream::iter([item]).boxed()));
        }
        Ok((meta, parts_stream(tx, blob_id, parts)))
    }

    async fn read_documents(
        &self,
        collection: &CollectionName,
        keys: Vec<DocKey>,
        max_bytes: u64,
    ) -> Result<Vec<Result<ReadDocument, RepoError>>, RepoError> {
        if let Some(files) = &self.files {
            return self.read_documents_files(&**files, collection, keys, max_bytes).await;
        }
        // One read transaction (one snapshot) and one statement per group of keys: the descriptions and the inline
        // content together. Only a document stored in parts (larger than a part) costs a statement per part.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let cid = collection_id(&mut tx, collection).await?;
        let mut found: HashMap<String, Result<ReadDocument, RepoError>> = HashMap::with_capacity(keys.len());
        for group in keys.chunks(KEYS_PER_READ) {
            let rows = sqlx::query(AssertSqlSafe(read_documents_sql()))
                .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
                .bind(cid)
                .bind(keys_json(group))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            for row in rows {
                let meta = doc_from_row(collection, &row)?;
                let key = meta.key.as_str().to_owned();
                let answer =
                    if meta.size > max_bytes { Ok(ReadDocument::TooLarge(meta)) } else { whole_from_row(&mut tx, meta, &row).await? };
                found.insert(key, answer);
            }
        }
        Ok(keys.iter().map(|k| found.get(k.as_str()).map_or(Ok(ReadDocument::Missing), clone_answer)).collect())
    }

    async fn delete_documents(&self, collection: &CollectionName, keys: Vec<DocKey>) -> Result<Vec<DocKey>, RepoError> {
        if let Some(files) = &self.files {
            return self.delete_documents_files(&**files, collection, keys).await;
        }
        let mut tx = self.begin_write().await?;
        let cid = collection_id(&mut tx, collection).await?;
        let deleted = delete_rows(&mut tx, cid, collection, keys, self.clock.now().as_millis()).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(deleted)
    }

    async fn list_documents(&self, collection: &CollectionName, query: &ListQuery) -> Result<Page<DocumentMeta>, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let cid = collection_id(&mut tx, collection).await?;
        let indexed = filter_sql::indexed_paths(&mut tx, cid).await.map_err(map_err)?;
        let base = filter_sql::Terms { cid, indexed: &indexed, drive: None };
        // Of several lookups every match is in, the query starts from the one listing the fewest ids (counted up to a
        // cap, in the covering index): starting from `lang=en` of half the collection instead of a rare tag costs
        // a walk of half the collection.
        let candidates = filter_sql::lookups(&query.expr, &base);
        let mut drive = candidates.first().copied();
        if candidates.len() > 1 {
            let mut fewest = i64::MAX;
            for c in candidates {
                let mut args = Vec::new();
                let select = filter_sql::lookup_select(c, base, &mut args);
                let count_sql = format!("SELECT count(*) FROM ({select} LIMIT {DRIVE_COUNT_CAP})");
                let row = bind_args(sqlx::query(AssertSqlSafe(count_sql)), &args).fetch_one(&mut *tx).await.map_err(map_err)?;
                let n: i64 = row.try_get(0).map_err(map_err)?;
                if n < fewest {
                    (fewest, drive) = (n, Some(c));
                }
            }
        }
        let terms = filter_sql::Terms { drive, ..base };
        let limit = query.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let page = filter_sql::page_where_clause(terms, query);
        // A query started from a lookup reads every match to sort them: the total comes from the same pass (without a
        // cursor, whose page is not every match). Otherwise the count walks an index and the page stops at its limit.
        let windowed = page.driven && query.after.is_none();
        let total_column = if windowed { ", count(*) OVER () AS total_matches" } else { "" };
        let sql = format!(
            "SELECT {DOC_COLUMNS}{total_column} FROM documents d WHERE {} ORDER BY {} LIMIT ? OFFSET ?",
            page.sql,
            filter_sql::order_by(query)
        );
        let rows =
            bind_args(sqlx::query(AssertSqlSafe(sql)), &page.args).bind(limit).bind(offset).fetch_all(&mut *tx).await.map_err(map_err)?;
        let total: i64 = match rows.first() {
            Some(r) if windowed => r.try_get("total_matches").map_err(map_err)?,
            _ => {
                let w = filter_sql::where_clause(terms, query);
                let count_sql = format!("SELECT count(*) FROM documents d WHERE {}", w.sql);
                bind_args(sqlx::query(AssertSqlSafe(count_sql)), &w.args)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .try_get(0)
                    .map_err(map_err)?
            }
        };
        let items = rows.iter().map(|r| doc_from_row(collection, r)).collect::<Result<_, _>>()?;
        Ok(Page { items, total: total as u64 })
    }

    async fn stats(&self, collection: Option<CollectionName>) -> Result<StorageStats, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let scope = match &collection {
            Some(c) => Some(collection_id(&mut tx, c).await?),
            None => None,
        };
        let docs = sqlx::query("SELECT count(*), coalesce(sum(size), 0) FROM documents WHERE (? IS NULL OR collection_id = ?)")
            .bind(scope)
            .bind(scope)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        // Filesystem mode: every document has its own file, so the bytes at rest are the logical bytes; distinct
        // contents are still counted by hash. Blob rows there are leftovers of sqlite mode, all of them garbage.
        let (blobs_sql, garbage_sql) = if self.files.is_some() {
            (
                "SELECT count(*), coalesce(sum(size), 0), (SELECT coalesce(sum(size), 0) FROM documents WHERE (?1 IS NULL OR collection_id = ?1)) \
                 FROM (SELECT max(size) AS size FROM documents WHERE (?1 IS NULL OR collection_id = ?1) GROUP BY hash)",
                "SELECT count(*) FROM blobs WHERE hash IS NOT NULL",
            )
        } else {
            (
                "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(stored_size), 0) FROM blobs \
                 WHERE hash IN (SELECT hash FROM documents WHERE (?1 IS NULL OR collection_id = ?1))",
                "SELECT count(*) FROM blobs WHERE refcount <= 0 AND hash IS NOT NULL",
            )
        };
        let blobs = sqlx::query(blobs_sql).bind(scope).fetch_one(&mut *tx).await.map_err(map_err)?;
        let collections: i64 = if scope.is_some() {
            1
        } else {
            sqlx::query_scalar("SELECT count(*) FROM collections").fetch_one(&mut *tx).await.map_err(map_err)?
        };
        let garbage: i64 = sqlx::query_scalar(garbage_sql).fetch_one(&mut *tx).await.map_err(map_err)?;
        let g = |r: &SqliteRow, i: usize| r.try_get::<i64, _>(i).map(|v| v as u64).map_err(map_err);
        Ok(StorageStats {
            collections: collections as u64,
            documents: g(&docs, 0)?,
            logical_bytes: g(&docs, 1)?,
            distinct_contents: g(&blobs, 0)?,
            unique_bytes: g(&blobs, 1)?,
            stored_bytes: g(&blobs, 2)?,
            garbage_contents: garbage as u64,
        })
    }

    async fn verify(&self, collection: Option<CollectionName>) -> Result<VerifyStream, RepoError> {
        let scope = self.scope_id(collection.as_ref()).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let this = self.clone();
        tokio::spawn(async move {
            let err_tx = tx.clone();
            let done = match this.files.clone() {
                Some(files) => this.verify_files_task(files, scope, tx).await,
                None => this.verify_task(scope, tx).await,
            };
            if let Err(e) = done {
                let _ = err_tx.send(Err(e)).await;
            }
        });
        Ok(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|ev| (ev, rx)) }).boxed())
    }

    async fn snapshot(&self) -> Result<Box<dyn StoreSnapshot>, RepoError> {
        Ok(Box::new(self.open_snapshot().await?))
    }

    async fn restore_collection(
        &self,
        name: &CollectionName,
        settings: CollectionSettings,
        created_at: Timestamp,
    ) -> Result<(), RepoError> {
        self.restore_collection_impl(name, settings, created_at).await
    }

    async fn restore_documents(&self, collection: &CollectionName, docs: Vec<(DocumentMeta, Bytes)>) -> Result<(), RepoError> {
        self.restore_documents_impl(collection, docs).await
    }

    async fn restore_document_stream(
        &self,
        collection: &CollectionName,
        doc: DocumentMeta,
        content: ContentStream,
    ) -> Result<(), RepoError> {
        self.restore_document_stream_impl(collection, doc, content).await
    }

    async fn source_stamps(&self, collection: &CollectionName, keys: &[DocKey]) -> Result<Vec<Option<SourceStamp>>, RepoError> {
        self.source_stamps_impl(collection, keys).await
    }

    async fn record_source_stamps(&self, collection: &CollectionName, records: Vec<SourceRecord>) -> Result<(), RepoError> {
        self.record_source_stamps_impl(collection, records).await
    }

    async fn contents_at_rest(&self, collection: &CollectionName, keys: Vec<DocKey>) -> Result<Vec<Option<(ContentHash, u64)>>, RepoError> {
        if let Some(files) = &self.files {
            return self.contents_at_rest_files(&**files, collection, &keys).await;
        }
        // Sqlite mode: the bytes are the content rows named by the record, which only colstore writes.
        colstore_domain::ports::recorded_contents(self, collection, &keys).await
    }

    async fn flush(&self) -> Result<Vec<String>, RepoError> {
        if self.read_only {
            return Ok(vec![format!("{} is open read-only: nothing was written, nothing to flush", self.path().display())]);
        }
        // With `synchronous = FULL` a checkpoint syncs the database file before it truncates the log.
        let (busy, log, checkpointed): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.pool).await.map_err(map_err)?;
        let file = self.path().display();
        let mut steps = vec![if busy == 0 {
            format!("checkpointed the write-ahead log of {file} into the database file and truncated it")
        } else {
            format!(
                "checkpointed {checkpointed} of {log} write-ahead log pages of {file}; a reader kept the rest in the log, \
                 which is durable too (synchronous = FULL)"
            )
        }];
        if self.files.is_some() {
            steps.push("documents' files: each was synced when written; nothing left to write".into());
        }
        Ok(steps)
    }

    async fn gc(&self, dry_run: bool) -> Result<GcReport, RepoError> {
        // Filesystem mode: content lives in files and no document references a blob, so every blob row (left over
        // from sqlite mode) is garbage. A sqlite-mode put in progress is not a concern: this process writes files.
        let garbage = if self.files.is_some() { "hash IS NOT NULL" } else { "refcount <= 0 AND hash IS NOT NULL" };
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(AssertSqlSafe(format!("SELECT count(*), coalesce(sum(stored_size), 0) FROM blobs WHERE {garbage}")))
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let report = GcReport {
            contents_removed: row.try_get::<i64, _>(0).map_err(map_err)? as u64,
            bytes_freed: row.try_get::<i64, _>(1).map_err(map_err)? as u64,
        };
        if dry_run || report.contents_removed == 0 {
            return Ok(report);
        }
        sqlx::query(AssertSqlSafe(format!("DELETE FROM blob_parts WHERE blob_id IN (SELECT id FROM blobs WHERE {garbage})")))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(AssertSqlSafe(format!("DELETE FROM blob_data WHERE blob_id IN (SELECT id FROM blobs WHERE {garbage})")))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(AssertSqlSafe(format!("DELETE FROM blobs WHERE {garbage}"))).execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        // Give the freed pages back to the file system (auto_vacuum = INCREMENTAL).
        sqlx::query("PRAGMA incremental_vacuum").execute(&self.pool).await.map_err(map_err)?;
        Ok(report)
    }
}
