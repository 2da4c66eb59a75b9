//! `col put`, `col get` and `col gc`: one document written, one read and checked against its hash, and the contents
//! no document references removed.

use std::io::Write;

use colstore_domain::ports::{CollectionRepo, GcReport, RepoError};
use colstore_domain::{CollectionName, ContentChanged, ContentHasher, ContentStream, DocKey, DocumentMeta, NewDocument, PutOutcome};
use futures::StreamExt;

/// Writes one document (created, updated, or unchanged when identical) in one transaction.
///
/// # Errors
/// `CollectionNotFound`, `ContentRead` when its stream fails (nothing written), or a store failure.
pub async fn put_document(repo: &dyn CollectionRepo, collection: &CollectionName, doc: NewDocument) -> Result<PutOutcome, RepoError> {
    let key = doc.key.clone();
    crate::commit_log::began("put", Some(collection));
    let outcome = repo.put_batch(collection, vec![doc]).await?.pop().ok_or_else(|| RepoError::Backend {
        backend: "store",
        source: format!("the store returned no outcome for {collection}/{key}").into(),
    })?;
    crate::commit_log::durable("put", collection, u64::from(outcome.status != colstore_domain::PutStatus::Unchanged));
    Ok(outcome)
}

/// Removes the contents no document references any more (`dry_run`: only counts them).
///
/// # Errors
/// A store failure.
pub async fn collect_garbage(repo: &dyn CollectionRepo, dry_run: bool) -> Result<GcReport, RepoError> {
    repo.gc(dry_run).await
}

/// Up to this size [`ReadMode::CheckedFirst`] holds a document in memory between checking and writing it; larger ones
/// are read twice.
pub const CHECK_IN_MEMORY: u64 = 8 * 1024 * 1024;

/// How [`read_document`] hands the content to its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Written as it is read, checked at the end: for an output the caller discards when the read fails (a file
    /// written under a temporary name and renamed only on success).
    Streamed,
    /// Nothing reaches the output before the content is checked (standard output, which cannot be taken back): a
    /// document up to [`CHECK_IN_MEMORY`] is read into memory, checked and written; a larger one is read once to check
    /// it and again to write it.
    CheckedFirst,
}

/// What [`read_document`] read.
#[derive(Debug, Clone)]
pub struct ReadReport {
    /// The document.
    pub meta: DocumentMeta,
    /// Filesystem mode: the file was edited outside colstore, so what was written is the file as it is now, which
    /// the recorded hash does not describe (`col reconcile` records it).
    pub changed_on_disk: bool,
}

/// Why [`read_document`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The document or collection does not exist, or the store failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// Reading the content failed part-way.
    #[error("reading {collection}/{key} failed: {source}")]
    Read {
        /// The collection.
        collection: CollectionName,
        /// The document.
        key: DocKey,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The content read does not hash to the document's recorded hash.
    #[error("{collection}/{key} is corrupt: its content does not match its hash")]
    Corrupt {
        /// The collection.
        collection: CollectionName,
        /// The document.
        key: DocKey,
    },
    /// Writing to the output failed.
    #[error("{0}")]
    Write(#[source] std::io::Error),
}

/// Reads the content of document `key` of `collection` into `out` and checks it against the recorded hash
/// (see [`ReadMode`] for when bytes reach `out`).
///
/// # Errors
/// `DocumentNotFound` / `CollectionNotFound`, a failed read, a corrupt content ([`ReadError::Corrupt`]), or a
/// failed write to `out`.
pub async fn read_document(
    repo: &dyn CollectionRepo,
    collection: &CollectionName,
    key: &DocKey,
    out: &mut (dyn Write + Send),
    mode: ReadMode,
) -> Result<ReadReport, ReadError> {
    let (meta, mut stream) = repo.read_content(collection, key).await?;
    let mut hasher = ContentHasher::new();
    let read = |e| ReadError::Read { collection: collection.clone(), key: key.clone(), source: e };
    let mut kept =
        (mode == ReadMode::CheckedFirst).then(|| Vec::with_capacity(usize::try_from(meta.size.min(CHECK_IN_MEMORY)).unwrap_or(0)));
    let changed = read_checked(&mut stream, &mut hasher, |chunk| {
        if mode == ReadMode::Streamed {
            return out.write_all(chunk).map_err(ReadError::Write);
        }
        if kept.as_ref().is_some_and(|k| (k.len() + chunk.len()) as u64 > CHECK_IN_MEMORY) {
            kept = None;
        }
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(chunk);
        }
        Ok(())
    })
    .await
    .map_err(|e| match e {
        ReadCheckedError::Read(e) => read(e),
        ReadCheckedError::Sink(e) => e,
    })?;
    if !changed && hasher.finish() != meta.content_hash {
        return Err(ReadError::Corrupt { collection: collection.clone(), key: key.clone() });
    }
    if mode == ReadMode::CheckedFirst {
        match kept {
            Some(bytes) => out.write_all(&bytes).map_err(ReadError::Write)?,
            None => {
                let (_, mut again) = repo.read_content(collection, key).await?;
                while let Some(chunk) = again.next().await {
                    match chunk {
                        Ok(c) => out.write_all(&c).map_err(ReadError::Write)?,
                        Err(e) if changed && ContentChanged::of(&e).is_some() => {}
                        Err(e) => return Err(read(e)),
                    }
                }
            }
        }
    }
    Ok(ReadReport { meta, changed_on_disk: changed })
}

/// Why [`read_checked`] stopped: the stream failed, or the sink did.
enum ReadCheckedError {
    Read(std::io::Error),
    Sink(ReadError),
}

/// Reads `stream` into `sink` and the hasher. Returns whether the bytes were edited outside colstore (filesystem
/// mode: a [`ContentChanged`] error in the stream; the bytes read are then the file as it is now).
async fn read_checked(
    stream: &mut ContentStream,
    hasher: &mut ContentHasher,
    mut sink: impl FnMut(&[u8]) -> Result<(), ReadError>,
) -> Result<bool, ReadCheckedError> {
    let mut changed = false;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) if ContentChanged::of(&e).is_some() => {
                changed = true;
                continue;
            }
            Err(e) => return Err(ReadCheckedError::Read(e)),
        };
        hasher.update(&chunk);
        sink(&chunk).map_err(ReadCheckedError::Sink)?;
    }
    Ok(changed)
}
