//! `col add PATH…`: put files and folders into a collection, recursively, in batches.
//!
//! A blocking thread walks and reads files while the async side hashes, compresses and writes the previous batch,
//! so disk reads, CPU work and SQLite writes overlap. Each batch is one transaction: a crash leaves every file
//! either entirely added or absent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use colstore_domain::ports::{CollectionRepo, RepoError, SourceRecord, SourceStamp};
use colstore_domain::{CollectionName, Content, ContentHash, ContentStream, DocKey, Metadata, NewDocument, PutStatus, Tags};
use futures::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;
use tokio::io::AsyncReadExt;

/// Files above this size are streamed instead of read whole.
const STREAM_ABOVE: u64 = 1024 * 1024;

/// Directory names never descended into: the store itself and VCS metadata.
const SKIP_DIRS: [&str; 4] = [".colstore", ".git", ".hg", ".svn"];

/// How to add.
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// Only files whose key matches one of these globs (all files when empty).
    pub include: Vec<String>,
    /// Files whose key matches one of these globs are skipped.
    pub exclude: Vec<String>,
    /// Prepended to every key (e.g. `imported/`).
    pub prefix: Option<String>,
    /// Metadata given to every document.
    pub metadata: Metadata,
    /// Tags given to every document.
    pub tags: Tags,
    /// Only report what would happen.
    pub dry_run: bool,
    /// Documents per transaction.
    pub batch_docs: usize,
    /// Bytes per transaction (approximate).
    pub batch_bytes: u64,
    /// Read the YAML front matter of Markdown files into their metadata (`metadata` wins for keys in both).
    pub front_matter: bool,
}

impl Default for AddOptions {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            exclude: Vec::new(),
            prefix: None,
            metadata: Metadata::default(),
            tags: Tags::default(),
            dry_run: false,
            batch_docs: 2000,
            batch_bytes: 32 * 1024 * 1024,
            front_matter: true,
        }
    }
}

/// A file found by the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Where it is.
    pub path: PathBuf,
    /// Its key.
    pub key: DocKey,
    /// Its size when scanned.
    pub size: u64,
    /// What the scan saw of it (`None` where the platform gives no inode and status-change time): with the stamp
    /// recorded when its document was last written, the next add of an unchanged file does not read it.
    pub seen: Option<SourceStamp>,
}

/// A file that was not added, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
    /// Whether this is an error (unreadable file) rather than a deliberate skip (symlink, excluded).
    pub error: bool,
}

/// A file added with a caveat (its front matter could not be read, so it was added without it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddWarning {
    /// The file.
    pub path: PathBuf,
    /// What happened.
    pub message: String,
}

/// Progress of an add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddEvent {
    /// The scan found this many files and bytes to add.
    Scanned {
        /// Files.
        files: u64,
        /// Bytes.
        bytes: u64,
    },
    /// A batch was committed (or, in a dry run, classified).
    Batch {
        /// Files in it.
        files: u64,
        /// Bytes in it.
        bytes: u64,
    },
}

/// What an add did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AddReport {
    /// Files found.
    pub files: u64,
    /// Bytes in those files.
    pub bytes: u64,
    /// New documents.
    pub created: u64,
    /// Changed documents.
    pub updated: u64,
    /// Documents already up to date.
    pub unchanged: u64,
    /// Of those, files not even read: their stamp, recorded when they were last added, vouched that they did not
    /// change.
    pub unchanged_unread: u64,
    /// Files not added.
    pub skipped: Vec<Skipped>,
    /// Files added with a caveat.
    pub warnings: Vec<AddWarning>,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Whether the add was stopped (Ctrl-C) before every file was handled: the counts say what was written, each
    /// batch whole; the files not reached are not in the store.
    pub interrupted: bool,
}

impl AddReport {
    /// Files that could not be read.
    pub fn errors(&self) -> usize {
        self.skipped.iter().filter(|s| s.error).count()
    }

    /// Documents written or found up to date so far.
    pub fn handled(&self) -> u64 {
        self.created + self.updated + self.unchanged
    }
}

/// Errors that stop an add before or while writing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// A path given on the command line does not exist.
    #[error("{} does not exist", .0.display())]
    PathNotFound(PathBuf),
    /// A glob does not parse.
    #[error("invalid glob {glob:?}: {reason}")]
    BadGlob {
        /// The glob.
        glob: String,
        /// Why.
        reason: String,
    },
    /// The key prefix is not a valid key start.
    #[error("invalid key prefix {0:?}: it must be a relative path like \"imported/\"")]
    BadPrefix(String),
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

fn globset(globs: &[String]) -> Result<Option<GlobSet>, AddError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g).map_err(|e| AddError::BadGlob { glob: g.clone(), reason: e.kind().to_string() })?);
    }
    b.build().map(Some).map_err(|e| AddError::BadGlob { glob: globs.join(" "), reason: e.to_string() })
}

fn make_key(prefix: &str, rel: &Path) -> Result<DocKey, String> {
    let mut s = String::from(prefix);
    for (i, c) in rel.components().enumerate() {
        let part = c.as_os_str().to_str().ok_or("its name is not valid UTF-8")?;
        if i > 0 {
            s.push('/');
        }
        s.push_str(part);
    }
    DocKey::parse(&s).map_err(|e| e.reason)
}

/// Scans the given paths: which files would be added under which keys, and which are skipped.
///
/// # Errors
/// `PathNotFound` when a given path does not exist; `BadGlob`; `BadPrefix`.
pub fn plan_sources(paths: &[PathBuf], opts: &AddOptions) -> Result<(Vec<Source>, Vec<Skipped>), AddError> {
    let include = globset(&opts.include)?;
    let exclude = globset(&opts.exclude)?;
    let prefix = opts.prefix.clone().unwrap_or_default();
    if !prefix.is_empty() && DocKey::parse(prefix.trim_end_matches('/')).is_err() {
        return Err(AddError::BadPrefix(prefix));
    }
    let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix } else { format!("{prefix}/") };
    let mut sources: Vec<Source> = Vec::new();
    let mut skipped = Vec::new();
    let mut keys = std::collections::HashMap::new();
    // The system clock, not the store's `Clock`: the stamp's "had the file settled?" compares it with file times,
    // which the kernel takes from this clock. Read before any file is looked at.
    let seen_at_ns =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let options = options_digest(opts);
    for root in paths {
        let meta = std::fs::symlink_metadata(root).map_err(|_| AddError::PathNotFound(root.clone()))?;
        let mut consider = |path: &Path,
                            rel: &Path,
                            ft: std::fs::FileType,
                            md: Option<&std::fs::Metadata>,
                            sources: &mut Vec<Source>,
                            skipped: &mut Vec<Skipped>| {
            let skip = |reason: &str, error: bool| Skipped { path: path.to_owned(), reason: reason.into(), error };
            if ft.is_symlink() {
                return skipped.push(skip("symbolic link (not followed)", false));
            }
            if !ft.is_file() {
                return skipped.push(skip("not a regular file", false));
            }
            let key = match make_key(&prefix, rel) {
                Ok(k) => k,
                Err(reason) => return skipped.push(skip(&format!("cannot be a document key: {reason}"), true)),
            };
            if include.as_ref().is_some_and(|g| !g.is_match(rel)) {
                return;
            }
            if exclude.as_ref().is_some_and(|g| g.is_match(rel)) {
                return;
            }
            if let Some(first) = keys.insert(key.clone(), path.to_owned()) {
                return skipped.push(skip(&format!("same key {:?} as {}", key.as_str(), first.display()), true));
            }
            let size = md.map_or(0, std::fs::Metadata::len);
            let seen = md.and_then(|md| stamp_of(md, options, seen_at_ns));
            sources.push(Source { path: path.to_owned(), key, size, seen });
        };
        if meta.is_dir() {
            let walker = walkdir::WalkDir::new(root)
                .follow_links(false)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| !(e.depth() > 0 && e.file_type().is_dir() && SKIP_DIRS.iter().any(|d| e.file_name() == *d)));
            for entry in walker {
                match entry {
                    Ok(e) if e.file_type().is_dir() => {}
                    Ok(e) => {
                        let rel = e.path().strip_prefix(root).unwrap_or(e.path()).to_owned();
                        let md = e.metadata().ok();
                        consider(e.path(), &rel, e.file_type(), md.as_ref(), &mut sources, &mut skipped);
                    }
                    Err(err) => skipped.push(Skipped {
                        path: err.path().map(Path::to_owned).unwrap_or_else(|| root.clone()),
                        reason: format!("cannot be read: {}", err.io_error().map_or_else(|| err.to_string(), ToString::to_string)),
                        error: true,
                    }),
                }
            }
        } else {
            let name = root.file_name().map(PathBuf::from).unwrap_or_else(|| root.clone());
            consider(root, &name, meta.file_type(), Some(&meta), &mut sources, &mut skipped);
        }
    }
    Ok((sources, skipped))
}

/// A digest of the options that shape a document besides its bytes: the same file added with other metadata, tags or
/// front-matter handling makes another document, so its stamp must not vouch for it.
fn options_digest(opts: &AddOptions) -> u64 {
    let shape = serde_json::json!({ "metadata": opts.metadata.0, "tags": opts.tags, "front_matter": opts.front_matter });
    let digest = ContentHash::of(shape.to_string().as_bytes());
    u64::from_le_bytes(digest.as_bytes()[..8].try_into().unwrap_or_default())
}

/// What a file's metadata says about it now, as a stamp.
fn stamp_of(md: &std::fs::Metadata, options: u64, seen_at_ns: i64) -> Option<SourceStamp> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Some(SourceStamp {
            size: md.len(),
            mtime_ns: ns(md.mtime(), md.mtime_nsec()),
            ctime_ns: ns(md.ctime(), md.ctime_nsec()),
            inode: md.ino(),
            options,
            seen_at_ns,
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (md, options, seen_at_ns);
        None
    }
}

/// A file read (or opened, when large) by the reader thread.
enum Loaded {
    Whole(Bytes),
    Large(PathBuf),
}

fn file_stream(file: tokio::fs::File) -> ContentStream {
    futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = BytesMut::with_capacity(256 * 1024);
        match file.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(file))),
            Err(e) => Some((Err(e), None)),
        }
    })
    .boxed()
}

/// Adds files and folders to a collection. Each batch is one transaction; files that cannot be read are reported
/// in `skipped` (with `error: true`) and the rest are still added.
///
/// # Errors
/// Scan errors ([`plan_sources`]) before anything is written; repository errors (the batches before stay written).
pub async fn add_paths(
    repo: &Arc<dyn CollectionRepo>,
    collection: &CollectionName,
    paths: &[PathBuf],
    opts: &AddOptions,
    progress: &(dyn Fn(AddEvent) + Sync),
) -> Result<AddReport, AddError> {
    add_paths_until(repo, collection, paths, opts, progress, &crate::CancelToken::new()).await
}

/// Batches of at most this many documents when every document costs its own fsync and rename (filesystem mode):
/// the transaction per batch is then negligible, and an interrupted add stops within a fraction of a second.
const FILE_BATCH_DOCS: usize = 200;

/// [`add_paths`] that asks `checkpoint` before each batch whether to stop. A stop lets the batches being written
/// finish (each is one transaction, so nothing is half-written and no staged file is left), writes no more, and
/// returns the report with `interrupted` set.
///
/// # Errors
/// As [`add_paths`].
#[tracing::instrument(skip_all, fields(collection = %collection))]
pub async fn add_paths_until(
    repo: &Arc<dyn CollectionRepo>,
    collection: &CollectionName,
    paths: &[PathBuf],
    opts: &AddOptions,
    progress: &(dyn Fn(AddEvent) + Sync),
    checkpoint: &dyn crate::Checkpoint,
) -> Result<AddReport, AddError> {
    // Fail early and clearly when the collection does not exist, before scanning a large tree.
    repo.collection(collection).await?;
    let scan_started = std::time::Instant::now();
    let (sources, skipped) = plan_sources(paths, opts)?;
    tracing::info!(files = sources.len(), elapsed_ms = scan_started.elapsed().as_millis() as u64, "scanned");
    let mut report = AddReport {
        files: sources.len() as u64,
        bytes: sources.iter().map(|s| s.size).sum(),
        skipped,
        dry_run: opts.dry_run,
        ..AddReport::default()
    };
    progress(AddEvent::Scanned { files: report.files, bytes: report.bytes });

    // Files whose stamp, recorded when their document was last written, vouches that they did not change since are
    // neither read nor written: adding an unchanged tree again costs a walk and one lookup per thousand files.
    let sources = {
        let keys: Vec<DocKey> = sources.iter().map(|s| s.key.clone()).collect();
        let recorded = repo.source_stamps(collection, &keys).await?;
        let (mut files, mut bytes) = (0u64, 0u64);
        let mut rest = Vec::with_capacity(sources.len());
        for (source, recorded) in sources.into_iter().zip(recorded) {
            match (recorded, &source.seen) {
                (Some(recorded), Some(seen)) if recorded.vouches_for(seen) => {
                    files += 1;
                    bytes += source.size;
                }
                _ => rest.push(source),
            }
        }
        if files > 0 {
            report.unchanged += files;
            report.unchanged_unread += files;
            progress(AddEvent::Batch { files, bytes });
        }
        rest
    };

    // The reader thread sends batches; a small channel bound keeps memory to a few batches.
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<(Source, Result<Loaded, String>)>>(2);
    let mut batch_docs = opts.batch_docs.max(1);
    if repo.capabilities().external_edits {
        batch_docs = batch_docs.min(FILE_BATCH_DOCS);
    }
    let batch_bytes = opts.batch_bytes.max(1);
    let reader = std::thread::spawn(move || {
        let mut batch = Vec::new();
        let mut bytes = 0u64;
        for s in sources {
            let loaded = if s.size > STREAM_ABOVE {
                Ok(Loaded::Large(s.path.clone()))
            } else {
                std::fs::read(&s.path).map(|b| Loaded::Whole(b.into())).map_err(|e| e.to_string())
            };
            bytes += s.size.min(STREAM_ABOVE);
            batch.push((s, loaded));
            if batch.len() >= batch_docs || bytes >= batch_bytes {
                if tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                    return;
                }
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
    });

    // Two batches in flight: while one is in its write transaction, the next one is hashed and compressed.
    let batches = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    // Asked before a batch starts: a stop lets the batches in flight finish and starts no other.
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let stopped = &stopped;
    let batches = batches.take_while(move |_| {
        let stop = checkpoint.should_stop();
        async move {
            let stop = stop.await;
            if stop {
                stopped.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            !stop
        }
    });
    // Boxed (not pinned on the stack) so dropping it below really drops the receiver and unblocks the reader thread.
    let mut written = Box::pin(batches.map(|batch| write_batch(repo, collection, batch, opts, progress)).buffer_unordered(2));
    let mut result = Ok(());
    let mut records: Vec<SourceRecord> = Vec::new();
    while let Some(done) = written.next().await {
        match done {
            Ok(mut part) => {
                tracing::debug!(elapsed_ms = scan_started.elapsed().as_millis() as u64, "batch written");
                records.append(&mut part.records);
                report.absorb(part)
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(written);
    let _ = reader.join();
    report.interrupted = stopped.load(std::sync::atomic::Ordering::SeqCst);
    // The stamps of what was written, in one transaction at the end (every batch written is whole, so this holds
    // after an error or a stop too). They are only a cache: failing to record them costs the next add a read.
    if !records.is_empty()
        && let Err(e) = repo.record_source_stamps(collection, records).await
    {
        tracing::warn!(error = %e, "could not record what was seen of the added files; the next add reads them again");
    }
    result.map(|()| report)
}

/// What one batch did.
#[derive(Default)]
struct BatchOutcome {
    created: u64,
    updated: u64,
    unchanged: u64,
    skipped: Vec<Skipped>,
    warnings: Vec<AddWarning>,
    /// Stamps to record for the documents written.
    records: Vec<SourceRecord>,
}

impl AddReport {
    fn absorb(&mut self, b: BatchOutcome) {
        self.created += b.created;
        self.updated += b.updated;
        self.unchanged += b.unchanged;
        self.skipped.extend(b.skipped);
        self.warnings.extend(b.warnings);
    }
}

impl BatchOutcome {
    fn count(&mut self, s: PutStatus) {
        match s {
            PutStatus::Created => self.created += 1,
            PutStatus::Updated => self.updated += 1,
            PutStatus::Unchanged => self.unchanged += 1,
        }
    }
}

async fn write_batch(
    repo: &Arc<dyn CollectionRepo>,
    collection: &CollectionName,
    batch: Vec<(Source, Result<Loaded, String>)>,
    opts: &AddOptions,
    progress: &(dyn Fn(AddEvent) + Sync),
) -> Result<BatchOutcome, AddError> {
    let mut report = BatchOutcome::default();
    let mut docs = Vec::with_capacity(batch.len());
    let mut seen = Vec::with_capacity(batch.len());
    let (mut files, mut bytes) = (0u64, 0u64);
    for (src, loaded) in batch {
        let mut metadata = opts.metadata.clone();
        if opts.front_matter && crate::front_matter::is_markdown(&src.path) {
            let found = match &loaded {
                Ok(Loaded::Whole(b)) => Some(crate::front_matter::parse_front_matter(b)),
                Ok(Loaded::Large(p)) => read_prefix(p, crate::front_matter::MAX_FRONT_MATTER + 8)
                    .await
                    .ok()
                    .map(|b| crate::front_matter::parse_front_matter(&b)),
                Err(_) => None,
            };
            match found {
                Some(Ok(Some(Metadata(mut from_file)))) => {
                    // Explicit `--meta` values win over the file's.
                    from_file.extend(metadata.0);
                    metadata = Metadata(from_file);
                }
                Some(Err(e)) => report.warnings.push(AddWarning {
                    path: src.path.clone(),
                    message: format!("its front matter was not read ({e}); the file was added without it"),
                }),
                Some(Ok(None)) | None => {}
            }
        }
        let content = match loaded {
            Ok(Loaded::Whole(b)) => Content::Bytes(b),
            Ok(Loaded::Large(p)) => match tokio::fs::File::open(&p).await {
                Ok(f) => Content::Stream(file_stream(f)),
                Err(e) => {
                    report.skipped.push(Skipped { path: p, reason: format!("cannot be read: {e}"), error: true });
                    continue;
                }
            },
            Err(e) => {
                report.skipped.push(Skipped { path: src.path, reason: format!("cannot be read: {e}"), error: true });
                continue;
            }
        };
        files += 1;
        bytes += src.size;
        seen.push(src.seen);
        docs.push(NewDocument { key: src.key, content, metadata, tags: opts.tags.clone() });
    }
    if opts.dry_run {
        for d in docs {
            report.count(classify(repo, collection, d).await?);
        }
    } else if !docs.is_empty() {
        crate::commit_log::began("add", Some(collection));
        let outcomes = repo.put_batch(collection, docs).await?;
        let changed = outcomes.iter().filter(|o| o.status != PutStatus::Unchanged).count();
        crate::commit_log::durable("add", collection, changed as u64);
        // Outcomes come in input order, one per document.
        for (o, seen) in outcomes.into_iter().zip(seen) {
            report.count(o.status);
            if let Some(stamp) = seen {
                report.records.push(SourceRecord { key: o.key, version: o.version, content_hash: o.content_hash, stamp });
            }
        }
    }
    progress(AddEvent::Batch { files, bytes });
    Ok(report)
}

/// The first `n` bytes of a file (fewer when it is shorter).
async fn read_prefix(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    tokio::fs::File::open(path).await?.take(n as u64).read_to_end(&mut buf).await?;
    Ok(buf)
}

/// What a put of `doc` would do, without writing.
async fn classify(repo: &Arc<dyn CollectionRepo>, collection: &CollectionName, doc: NewDocument) -> Result<PutStatus, AddError> {
    let hash = match doc.content {
        Content::Bytes(b) => ContentHash::of(&b),
        Content::Stream(mut s) => {
            let mut h = colstore_domain::ContentHasher::new();
            while let Some(chunk) = s.next().await {
                h.update(&chunk.map_err(|source| RepoError::ContentRead { key: doc.key.clone(), source })?);
            }
            h.finish()
        }
    };
    match repo.document(collection, &doc.key).await {
        Ok(m) if m.content_hash == hash && m.metadata == doc.metadata && m.tags == doc.tags => Ok(PutStatus::Unchanged),
        Ok(_) => Ok(PutStatus::Updated),
        Err(RepoError::DocumentNotFound { .. }) => Ok(PutStatus::Created),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colstore_domain::ports::MockCollectionRepo;
    use colstore_domain::{Collection, CollectionSettings, PutOutcome, Timestamp};

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("notes/sub")).unwrap();
        std::fs::create_dir_all(p.join(".git")).unwrap();
        std::fs::create_dir_all(p.join(".colstore")).unwrap();
        std::fs::write(p.join("notes/a.md"), "alpha").unwrap();
        std::fs::write(p.join("notes/sub/b.txt"), "beta").unwrap();
        std::fs::write(p.join("notes/c.md"), "alpha").unwrap();
        std::fs::write(p.join(".git/config"), "x").unwrap();
        std::fs::write(p.join(".colstore/config.toml"), "x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", p.join("notes/link")).unwrap();
        d
    }

    fn keys(s: &[Source]) -> Vec<&str> {
        s.iter().map(|s| s.key.as_str()).collect()
    }

    #[test]
    fn keys_are_relative_paths_and_store_and_vcs_dirs_are_skipped() {
        let d = tree();
        let (src, skipped) = plan_sources(&[d.path().to_owned()], &AddOptions::default()).unwrap();
        assert_eq!(keys(&src), ["notes/a.md", "notes/c.md", "notes/sub/b.txt"]);
        assert!(skipped.iter().any(|s| s.reason.contains("symbolic link") && !s.error), "{skipped:?}");
    }

    #[test]
    fn globs_prefix_and_single_files() {
        let d = tree();
        let opts = AddOptions {
            include: vec!["**/*.md".into()],
            exclude: vec!["**/c.md".into()],
            prefix: Some("imp".into()),
            ..AddOptions::default()
        };
        let (src, _) = plan_sources(&[d.path().join("notes")], &opts).unwrap();
        assert_eq!(keys(&src), ["imp/a.md"]);
        let (src, _) = plan_sources(&[d.path().join("notes/sub/b.txt")], &AddOptions::default()).unwrap();
        assert_eq!(keys(&src), ["b.txt"]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(plan_sources(&["/definitely/not/here".into()], &AddOptions::default()), Err(AddError::PathNotFound(_))));
        let bad = AddOptions { include: vec!["a[".into()], ..AddOptions::default() };
        assert!(matches!(plan_sources(&[".".into()], &bad), Err(AddError::BadGlob { .. })));
        let bad = AddOptions { prefix: Some("../x".into()), ..AddOptions::default() };
        assert!(matches!(plan_sources(&[".".into()], &bad), Err(AddError::BadPrefix(_))));
    }

    #[test]
    fn the_same_key_from_two_roots_is_reported() {
        let d = tree();
        let (src, skipped) = plan_sources(&[d.path().join("notes/a.md"), d.path().join("notes/a.md")], &AddOptions::default()).unwrap();
        assert_eq!(src.len(), 1);
        assert!(skipped[0].reason.contains("same key"));
    }

    /// A repository that remembers no source stamp (the trait's default); `recorded` counts the stamps recorded.
    fn no_stamps(repo: &mut MockCollectionRepo, recorded: Arc<std::sync::atomic::AtomicUsize>) {
        repo.expect_source_stamps().returning(|_, keys| Ok(vec![None; keys.len()]));
        repo.expect_record_source_stamps().returning(move |_, records| {
            recorded.fetch_add(records.len(), std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
    }

    fn collection() -> Collection {
        Collection {
            name: CollectionName::parse("c").unwrap(),
            settings: CollectionSettings::default(),
            created_at: Timestamp::EPOCH,
            document_count: 0,
            logical_bytes: 0,
        }
    }

    #[tokio::test]
    async fn batches_respect_the_batch_size_and_report_outcomes() {
        let d = tree();
        let mut repo = MockCollectionRepo::new();
        repo.expect_collection().times(1).returning(|_| Ok(collection()));
        repo.expect_capabilities().returning(|| colstore_domain::ports::RepoCapabilities {
            content_addressed: true,
            compression: true,
            external_edits: false,
        });
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        repo.expect_put_batch().times(2).returning(move |_, docs| {
            seen2.lock().unwrap().push(docs.iter().map(|d| d.key.to_string()).collect::<Vec<_>>());
            Ok(docs
                .into_iter()
                .map(|d| PutOutcome { key: d.key, status: PutStatus::Created, version: 1, content_hash: ContentHash::of(b""), size: 0 })
                .collect())
        });
        let recorded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        no_stamps(&mut repo, recorded.clone());
        let repo: Arc<dyn CollectionRepo> = Arc::new(repo);
        let opts = AddOptions { batch_docs: 2, ..AddOptions::default() };
        let c = CollectionName::parse("c").unwrap();
        let events = std::sync::Mutex::new(Vec::new());
        let r = add_paths(&repo, &c, &[d.path().join("notes")], &opts, &|e| events.lock().unwrap().push(e)).await.unwrap();
        assert_eq!((r.files, r.created), (3, 3));
        assert_eq!(*seen.lock().unwrap(), [vec!["a.md", "c.md"], vec!["sub/b.txt"]]);
        assert_eq!(events.lock().unwrap()[0], AddEvent::Scanned { files: 3, bytes: 14 });
        assert_eq!(recorded.load(std::sync::atomic::Ordering::SeqCst), 3, "a stamp recorded for every file written");
    }

    #[tokio::test]
    async fn front_matter_becomes_metadata_and_explicit_metadata_wins() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.md"), "---\nlang: en\ntitle: A\n---\nbody").unwrap();
        std::fs::write(d.path().join("b.md"), "---\nlang: [en\n---\nbody").unwrap();
        std::fs::write(d.path().join("c.txt"), "---\nlang: en\n---\n").unwrap();
        let mut repo = MockCollectionRepo::new();
        repo.expect_collection().returning(|_| Ok(collection()));
        repo.expect_capabilities().returning(|| colstore_domain::ports::RepoCapabilities {
            content_addressed: false,
            compression: false,
            external_edits: true,
        });
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        repo.expect_put_batch().returning(move |_, docs| {
            seen2.lock().unwrap().extend(docs.iter().map(|d| (d.key.to_string(), d.metadata.to_json())));
            Ok(docs
                .into_iter()
                .map(|d| PutOutcome { key: d.key, status: PutStatus::Created, version: 1, content_hash: ContentHash::of(b""), size: 0 })
                .collect())
        });
        no_stamps(&mut repo, Arc::default());
        let repo: Arc<dyn CollectionRepo> = Arc::new(repo);
        let c = CollectionName::parse("c").unwrap();
        let opts = AddOptions { metadata: Metadata::parse_json(r#"{"title":"mine"}"#).unwrap(), ..AddOptions::default() };
        let r = add_paths(&repo, &c, &[d.path().to_owned()], &opts, &|_| {}).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [
                ("a.md".to_owned(), r#"{"lang":"en","title":"mine"}"#.to_owned()),
                ("b.md".to_owned(), r#"{"title":"mine"}"#.to_owned()),
                ("c.txt".to_owned(), r#"{"title":"mine"}"#.to_owned()),
            ]
        );
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].path.ends_with("b.md") && r.warnings[0].message.contains("line "), "{:?}", r.warnings);
    }

    #[tokio::test]
    async fn a_stop_before_a_batch_writes_nothing_more() {
        let d = tree();
        let mut repo = MockCollectionRepo::new();
        repo.expect_collection().returning(|_| Ok(collection()));
        repo.expect_capabilities().returning(|| colstore_domain::ports::RepoCapabilities {
            content_addressed: true,
            compression: true,
            external_edits: false,
        });
        repo.expect_put_batch().never();
        no_stamps(&mut repo, Arc::default());
        let repo: Arc<dyn CollectionRepo> = Arc::new(repo);
        let c = CollectionName::parse("c").unwrap();
        let stop = crate::CancelToken::new();
        stop.cancel();
        let r = add_paths_until(&repo, &c, &[d.path().join("notes")], &AddOptions::default(), &|_| {}, &stop).await.unwrap();
        assert!(r.interrupted);
        assert_eq!((r.files, r.handled()), (3, 0));
    }

    #[tokio::test]
    async fn a_missing_collection_stops_before_scanning() {
        let mut repo = MockCollectionRepo::new();
        repo.expect_collection().returning(|n| Err(RepoError::CollectionNotFound(n.clone())));
        repo.expect_put_batch().never();
        let repo: Arc<dyn CollectionRepo> = Arc::new(repo);
        let c = CollectionName::parse("c").unwrap();
        let r = add_paths(&repo, &c, &["/definitely/not/here".into()], &AddOptions::default(), &|_| {}).await;
        assert!(matches!(r, Err(AddError::Repo(RepoError::CollectionNotFound(_)))));
    }
}
