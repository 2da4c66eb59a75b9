//! `col export` / `col import`: one portable, versioned, streamable file with collections, settings, documents,
//! metadata, tags and vectors (format in `docs/EXPORT-FORMAT.md`).
//!
//! The file is a zstd stream of JSON lines: a header, then per collection a `collection` line followed by its
//! `document` lines (content in base64, chunk vectors when the embedding cache has them), and an `end` line with the
//! counts, so a truncated file is told apart from a complete one. Import reads the file twice: the first pass checks
//! everything (format, version, every line, every content hash, the trailer) and computes the plan without writing; the
//! second pass writes in transactions of bounded size. A document over 32 MiB is written and read as a stream of
//! `part` lines of 4 MiB. Memory stays bounded by one batch (32 MiB of documents) and a piece.

mod file;

use std::collections::HashSet;

use crate::backup::restore::StoreDocs;
use std::io::{BufRead, Write};

use bytes::Bytes;
use colstore_domain::ports::{CollectionRepo, RepoError, StoreSnapshot, SyncStore};
use colstore_domain::{
    CollectionName, CollectionSettings, ContentHash, ContentHasher, DocFilter, DocKey, DocumentMeta, Metadata, StoreId, Tags, Timestamp,
    Vector,
};
use futures::{SinkExt, StreamExt};

use crate::backup::format::{LARGE_CONTENT, PIECE};
use crate::backup::restore::{PieceSender, restore_fed};
use serde::{Deserialize, Serialize};

use crate::backup::{CollectionPlan, RestoreMode};

pub use file::{ImportOutcome, ImportRunError, decode_export, export_to, run_import};

/// The header's `format`.
pub const EXPORT_FORMAT: &str = "colstore-export";
/// The newest version this build writes; it reads this one and the ones before, and refuses newer ones. Version 2
/// added `part` lines: a document larger than [`LARGE_CONTENT`](crate::backup::format::LARGE_CONTENT) has an empty
/// `content` and `parts: n`, and its content follows in `n` lines of at most
/// [`PIECE`](crate::backup::format::PIECE) bytes each, so it is written and read with bounded memory. Version 3 added
/// the end line's `sha256`. Version 4 added `filter` on collection lines (`col export --where`): such a collection
/// holds only the documents the filter matched, and an import never deletes the documents it lacks. Only a filtered
/// export is written as version 4, so a whole export still reads in builds that know version 3 (and a build that
/// does not know `filter` refuses the file instead of deleting what it lacks).
pub const EXPORT_VERSION: u32 = 4;
/// The version of an export without a filter.
const UNFILTERED_VERSION: u32 = 3;
/// Documents per import transaction (and at most [`IMPORT_BATCH_BYTES`]).
const IMPORT_BATCH: usize = 256;
const IMPORT_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// The longest line an export writes and an import reads (256 MiB, newline excluded). A line holds one document of
/// up to 32 MiB (its content in base64, a third larger) with its vectors, or one 4 MiB piece of a larger one; a
/// longer line is refused as soon as the limit is passed, so a damaged or hostile file (a few KB of zstd can expand
/// to gigabytes) cannot exhaust memory.
pub const MAX_LINE_BYTES: u64 = 256 * 1024 * 1024;

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        version: u32,
        created_at: Timestamp,
        store_id: StoreId,
        tool_version: String,
    },
    Collection {
        name: CollectionName,
        settings: CollectionSettings,
        created_at: Timestamp,
        documents: u64,
        /// The `--where` expression the documents were chosen by (version 4): the collection is partial.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<String>,
    },
    Document(Box<DocLine>),
    /// A piece of the content of the document before, in base64 (a large document's `parts` lines).
    Part(String),
    End {
        collections: u64,
        documents: u64,
        /// The SHA-256 of every byte before the end line (version 3 on): damage anywhere, in a key or in metadata as
        /// much as in content, is found before anything is imported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<ContentHash>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct DocLine {
    key: DocKey,
    hash: ContentHash,
    size: u64,
    metadata: Metadata,
    tags: Tags,
    version: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// The content, base64 (standard alphabet, padded); empty when the content is in `part` lines.
    #[serde(default)]
    content: String,
    /// How many `part` lines follow with the content (a large document); 0: the content is `content`.
    #[serde(default, skip_serializing_if = "is_zero")]
    parts: u64,
    /// `(chunk hash, vector)` of every chunk, when the cache had them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vectors: Option<Vec<(ContentHash, Vector)>>,
}

impl DocLine {
    /// The line of document `d` with its content (base64, or empty with `parts` part lines following) and vectors.
    fn of(d: DocumentMeta, content: String, parts: u64, vectors: Option<Vec<(ContentHash, Vector)>>) -> Self {
        Self {
            key: d.key,
            hash: d.content_hash,
            size: d.size,
            metadata: d.metadata,
            tags: d.tags,
            version: d.version,
            created_at: d.created_at,
            updated_at: d.updated_at,
            content,
            parts,
            vectors,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The ledger or cache failed.
    #[error(transparent)]
    Ledger(#[from] colstore_domain::ports::SyncError),
    /// The file is not a colstore export, or is damaged or truncated.
    #[error("line {line}: {detail}")]
    Malformed {
        /// 1-based line of the problem (0: the file as a whole).
        line: u64,
        /// What is wrong.
        detail: String,
    },
    /// A line of the file is longer than [`MAX_LINE_BYTES`] (import), or a document would need one (export).
    #[error("line {line}{} is longer than the limit of {} MiB ({limit} bytes)", what.as_deref().map(|w| format!(" ({w})")).unwrap_or_default(), limit / (1024 * 1024))]
    LineTooLong {
        /// 1-based line.
        line: u64,
        /// The limit in bytes.
        limit: u64,
        /// What the line holds, when known (export: the document).
        what: Option<String>,
    },
    /// The file was written by a newer colstore.
    #[error("the file has export format version {0}, newer than this colstore reads ({EXPORT_VERSION}); upgrade colstore")]
    TooNew(u32),
    /// A collection asked for is not in the file or the store.
    #[error("collection {0} is not in the {1}")]
    NoSuchCollection(CollectionName, &'static str),
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Collections.
    pub collections: u64,
    /// Documents.
    pub documents: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Chunk vectors.
    pub vectors: u64,
}

/// What an export holds: some collections (all when empty), and of each only the documents a filter matches.
#[derive(Debug, Clone, Default)]
pub struct ExportScope {
    /// The collections; every collection when empty.
    pub collections: Vec<CollectionName>,
    /// Only the documents this `--where` expression matches (the text as the user wrote it, and parsed).
    pub filter: Option<(String, DocFilter)>,
}

impl ExportScope {
    /// Whole collections.
    pub fn collections(collections: Vec<CollectionName>) -> Self {
        Self { collections, filter: None }
    }

    /// The documents of `collections` (all when empty) that `filter` (parsed from `text`) matches.
    ///
    /// # Errors
    /// A filter with a `state:` condition: an export holds documents, not their sync state.
    pub fn filtered(collections: Vec<CollectionName>, text: String, filter: DocFilter) -> Result<Self, colstore_domain::ValidationError> {
        if filter.has_state() {
            return Err(colstore_domain::ValidationError::new(
                "--where",
                &text,
                "`state:` cannot choose what to export (an export holds documents, not their sync state); list such documents with \
                 `col ls --where state:failed` and export them by key or tag",
            ));
        }
        Ok(Self { collections, filter: Some((text, filter)) })
    }
}

/// Writes the chosen collections (all when empty) of one snapshot of the store to `out` as an export stream
/// (uncompressed JSON lines; the caller compresses). With a filter, each collection holds only the documents it
/// matches (counted in a first walk of the snapshot, so the collection line can say how many follow) and is marked
/// partial, so an import of the file never deletes what it lacks.
///
/// # Errors
/// A store failure, a collection that does not exist, or a write error.
pub async fn export(
    repo: &dyn CollectionRepo,
    scope: &ExportScope,
    store_id: StoreId,
    tool_version: &str,
    now: Timestamp,
    out: &mut (dyn Write + Send),
    on_progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportReport, ExportError> {
    let collections = &scope.collections;
    let snap = repo.snapshot().await?;
    let all = snap.collections().await?;
    for want in collections {
        if !all.iter().any(|c| &c.name == want) {
            return Err(ExportError::NoSuchCollection(want.clone(), "store"));
        }
    }
    // Everything before the end line is hashed on its way out; the end line carries the digest.
    let mut hashing = Hashing { out, hasher: ContentHasher::new() };
    let out: &mut (dyn Write + Send) = &mut hashing;
    let mut report = ExportReport { collections: 0, documents: 0, bytes: 0, vectors: 0 };
    // Lines written so far (the header is line 1).
    let mut lines = 1u64;
    write_line(
        out,
        &Line::Header {
            format: EXPORT_FORMAT.into(),
            version: if scope.filter.is_some() { EXPORT_VERSION } else { UNFILTERED_VERSION },
            created_at: now,
            store_id,
            tool_version: tool_version.into(),
        },
    )?;
    let matches = |d: &DocumentMeta| scope.filter.as_ref().is_none_or(|(_, f)| f.matches(d));
    for c in all.into_iter().filter(|c| collections.is_empty() || collections.contains(&c.name)) {
        let documents = match &scope.filter {
            None => c.document_count,
            Some(_) => {
                let (mut n, mut after) = (0u64, None);
                loop {
                    let page = snap.documents(&c.name, after.clone(), 1024).await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.key.clone());
                    n += page.iter().filter(|d| matches(d)).count() as u64;
                }
                n
            }
        };
        let filter = scope.filter.as_ref().map(|(text, _)| text.clone());
        write_line(
            out,
            &Line::Collection { name: c.name.clone(), settings: c.settings.clone(), created_at: c.created_at, documents, filter },
        )?;
        lines += 1;
        report.collections += 1;
        let mut after = None;
        loop {
            let page = snap.documents(&c.name, after.clone(), 256).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            let page: Vec<DocumentMeta> = page.into_iter().filter(|d| matches(d)).collect();
            // A group's contents in one request (about 32 MiB at most), their vectors in one cache lookup.
            for page in crate::backup::create::by_bytes(page, crate::backup::create::CONTENT_GROUP_BYTES) {
                // A large document is alone in its group: its content is streamed into `part` lines.
                if let [d] = &page[..]
                    && d.size > LARGE_CONTENT
                {
                    lines += export_in_parts(&*snap, d, lines, out).await?;
                    report.documents += 1;
                    report.bytes += d.size;
                    on_progress(report.documents);
                    continue;
                }
                let contents = snap.contents(page.iter().map(|d| d.content_hash).collect()).await?;
                for (d, content) in page.iter().zip(&contents) {
                    if ContentHash::of(content) != d.content_hash {
                        return Err(RepoError::Corrupt { key: d.key.clone(), detail: "its content does not match its hash".into() }.into());
                    }
                }
                let texts: Vec<&[u8]> = contents.iter().map(|b| &b[..]).collect();
                let all_vectors = crate::backup::create::documents_vectors(&*snap, &c, &texts).await?;
                for ((d, content), vectors) in page.into_iter().zip(contents).zip(all_vectors) {
                    report.vectors += vectors.as_ref().map_or(0, |v| v.len() as u64);
                    report.documents += 1;
                    report.bytes += d.size;
                    lines += 1;
                    let line = lines;
                    let what = format!("document {}/{}", c.name, d.key);
                    write_bounded_line(out, line, what, &Line::Document(Box::new(DocLine::of(d, base64_encode(&content), 0, vectors))))?;
                    on_progress(report.documents);
                }
            }
        }
    }
    out.flush()?;
    let sha256 = Some(std::mem::take(&mut hashing.hasher).finish());
    write_line(hashing.out, &Line::End { collections: report.collections, documents: report.documents, sha256 })?;
    hashing.out.flush()?;
    Ok(report)
}

/// A writer that hashes what passes through it.
struct Hashing<'a> {
    out: &'a mut (dyn Write + Send),
    hasher: ContentHasher,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

// A group of documents read whole holds at most CONTENT_GROUP_BYTES, and a document larger than that is alone in
// its group: so a large document is never read whole as long as this holds.
const _: () = assert!(crate::backup::create::CONTENT_GROUP_BYTES <= LARGE_CONTENT);

/// Writes a large document: its line with `parts: n`, then its content read from the snapshot as a stream, in `n`
/// `part` lines of [`PIECE`] bytes (the last one shorter), checking the whole content's hash and size at the end.
/// Returns how many lines it wrote. Its vectors are not written: the next `col sync` after an import embeds it again.
async fn export_in_parts(
    snap: &dyn StoreSnapshot,
    d: &DocumentMeta,
    before: u64,
    out: &mut (dyn Write + Send),
) -> Result<u64, ExportError> {
    let parts = d.size.div_ceil(PIECE as u64);
    let line = Line::Document(Box::new(DocLine::of(d.clone(), String::new(), parts, None)));
    write_bounded_line(out, before + 1, format!("document {}/{}", d.collection, d.key), &line)?;
    let mut stream = snap.content_stream(&d.content_hash).await?;
    let mut hasher = ContentHasher::new();
    let (mut size, mut written) = (0u64, 0u64);
    let mut piece: Vec<u8> = Vec::with_capacity(PIECE);
    let corrupt = || RepoError::Corrupt { key: d.key.clone(), detail: "its content does not match its hash".into() };
    loop {
        let chunk = stream.next().await.transpose().map_err(|source| RepoError::ContentRead { key: d.key.clone(), source })?;
        let end = chunk.is_none();
        let mut rest = chunk.as_deref().unwrap_or_default();
        hasher.update(rest);
        size += rest.len() as u64;
        while !rest.is_empty() || (end && !piece.is_empty()) {
            let take = (PIECE - piece.len()).min(rest.len());
            piece.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if piece.len() == PIECE || (end && rest.is_empty()) {
                if written == parts {
                    return Err(corrupt().into());
                }
                write_line(out, &Line::Part(base64_encode(&piece)))?;
                written += 1;
                piece.clear();
            }
        }
        if end {
            break;
        }
    }
    if size != d.size || written != parts || hasher.finish() != d.content_hash {
        return Err(corrupt().into());
    }
    Ok(1 + parts)
}

fn write_line(out: &mut (dyn Write + Send), line: &Line) -> Result<(), ExportError> {
    serde_json::to_writer(&mut *out, line).map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes a line that may be long (a document), refusing one longer than an import reads ([`MAX_LINE_BYTES`]), so an
/// export never writes a file that import refuses.
fn write_bounded_line(out: &mut (dyn Write + Send), n: u64, what: String, line: &Line) -> Result<(), ExportError> {
    struct Bounded<'a> {
        out: &'a mut (dyn Write + Send),
        written: u64,
        exceeded: bool,
    }
    impl Write for Bounded<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.written + buf.len() as u64 > MAX_LINE_BYTES {
                self.exceeded = true;
                return Err(std::io::Error::other("the line is too long"));
            }
            let k = self.out.write(buf)?;
            self.written += k as u64;
            Ok(k)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.out.flush()
        }
    }
    let mut bounded = Bounded { out, written: 0, exceeded: false };
    match serde_json::to_writer(&mut bounded, line) {
        Ok(()) => {}
        Err(_) if bounded.exceeded => return Err(ExportError::LineTooLong { line: n, limit: MAX_LINE_BYTES, what: Some(what) }),
        Err(e) => return Err(std::io::Error::other(e).into()),
    }
    bounded.out.write_all(b"\n")?;
    Ok(())
}

/// What an import does (or did).
#[derive(Debug, Clone, Serialize)]
pub struct ImportPlan {
    /// The mode.
    pub mode: RestoreMode,
    /// Per collection, as for a restore.
    pub collections: Vec<CollectionPlan>,
    /// Documents in the file.
    pub documents: u64,
    /// Chunk vectors in the file.
    pub vectors: u64,
}

/// Reads lines from `input`, numbered, parsed; never more than [`MAX_LINE_BYTES`] of one line.
struct Lines<R> {
    input: R,
    n: u64,
    buf: Vec<u8>,
    /// The SHA-256 of every line read so far, up to the end line.
    hasher: ContentHasher,
    /// That digest, once the end line is read.
    before_end: Option<ContentHash>,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R) -> Self {
        Self { input, n: 0, buf: Vec::new(), hasher: ContentHasher::new(), before_end: None }
    }

    fn next_line(&mut self) -> Result<Option<Line>, ExportError> {
        self.buf.clear();
        // At most the limit and its newline: a longer line stops here, before it is held whole.
        let read = std::io::Read::take(&mut self.input, MAX_LINE_BYTES + 1).read_until(b'\n', &mut self.buf).map_err(|e| {
            ExportError::Malformed {
                line: self.n + 1,
                detail: format!("cannot read the file ({e}); is it a colstore export (zstd-compressed JSON lines)?"),
            }
        })?;
        if read == 0 {
            return Ok(None);
        }
        self.n += 1;
        let text = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        if text.len() as u64 > MAX_LINE_BYTES {
            self.buf = Vec::new();
            return Err(ExportError::LineTooLong { line: self.n, limit: MAX_LINE_BYTES, what: None });
        }
        let line: Line = serde_json::from_slice(text).map_err(|e| ExportError::Malformed { line: self.n, detail: e.to_string() })?;
        if matches!(line, Line::End { .. }) {
            self.before_end = Some(std::mem::take(&mut self.hasher).finish());
        } else {
            self.hasher.update(&self.buf);
        }
        Ok(Some(line))
    }

    /// The next line as a piece of the content of `key` (a `part` line), decoded.
    fn next_part(&mut self, key: &DocKey) -> Result<Vec<u8>, ExportError> {
        match self.next_line()? {
            Some(Line::Part(b64)) => base64_decode(&b64).ok_or_else(|| ExportError::Malformed {
                line: self.n,
                detail: format!("a part of the content of {key} is not valid base64"),
            }),
            _ => Err(ExportError::Malformed { line: self.n, detail: format!("document {key} declares more parts than follow it") }),
        }
    }

    /// Whether anything follows (without reading it).
    fn at_end(&mut self) -> bool {
        self.input.fill_buf().map(|b| b.is_empty()).unwrap_or(true)
    }
}

/// Where an import is in one collection: the store's documents (in key order, a page at a time) walked beside the
/// file's (in key order, as the format requires), so memory does not grow with either.
struct Beside<'a> {
    store: StoreDocs<'a>,
    /// The last key of the file seen in this collection.
    last: Option<DocKey>,
    /// Documents of the file seen in this collection.
    seen: u64,
}

impl<'a> Beside<'a> {
    fn new(repo: &'a dyn CollectionRepo, name: &CollectionName) -> Self {
        Self { store: StoreDocs::new(repo, name), last: None, seen: 0 }
    }

    /// Checks that `key` comes after the previous document of the file, then passes the store's documents before it
    /// to `only_in_store` and returns the store's document of `key`, if any.
    async fn step(
        &mut self,
        key: &DocKey,
        line: u64,
        mut only_in_store: impl FnMut(DocumentMeta),
    ) -> Result<Option<DocumentMeta>, ExportError> {
        if let Some(last) = &self.last {
            match last.as_str().as_bytes().cmp(key.as_str().as_bytes()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(ExportError::Malformed { line, detail: format!("document {key} appears twice") });
                }
                std::cmp::Ordering::Greater => {
                    return Err(ExportError::Malformed {
                        line,
                        detail: format!("document {key} comes after {last}: the format lists a collection's documents in key order"),
                    });
                }
            }
        }
        self.last = Some(key.clone());
        self.seen += 1;
        loop {
            let order = match self.store.peek().await? {
                None => return Ok(None),
                Some(d) => d.key.as_str().as_bytes().cmp(key.as_str().as_bytes()),
            };
            if order == std::cmp::Ordering::Greater {
                return Ok(None);
            }
            let d = self.store.next().await?.expect("peeked");
            if order == std::cmp::Ordering::Equal {
                return Ok(Some(d));
            }
            only_in_store(d);
        }
    }

    /// Passes the store's documents after the file's last to `only_in_store`.
    async fn rest(&mut self, mut only_in_store: impl FnMut(DocumentMeta)) -> Result<(), ExportError> {
        while let Some(d) = self.store.next().await? {
            only_in_store(d);
        }
        Ok(())
    }
}

fn same(d: &DocumentMeta, l: &DocLine) -> bool {
    d.content_hash == l.hash
        && d.size == l.size
        && d.metadata == l.metadata
        && d.tags == l.tags
        && d.version == l.version
        && d.updated_at == l.updated_at
}

/// Whether the import writes this document, per the mode's rule (as restore's).
fn writes(mode: RestoreMode, current: Option<&DocumentMeta>, l: &DocLine) -> bool {
    match current {
        None => true,
        Some(d) if same(d, l) => false,
        Some(d) => !(mode == RestoreMode::Merge && d.updated_at > l.updated_at),
    }
}

/// Pass one: checks the whole file and computes the plan; changes nothing.
///
/// # Errors
/// [`ExportError::Malformed`] naming the line, [`ExportError::TooNew`], or a store failure.
pub async fn plan_import<R: BufRead>(repo: &dyn CollectionRepo, input: R, mode: RestoreMode) -> Result<ImportPlan, ExportError> {
    let mut lines = Lines::new(input);
    let bad = |line: u64, detail: &str| ExportError::Malformed { line, detail: detail.into() };
    let version = match lines.next_line() {
        Ok(Some(Line::Header { format, version, .. })) => {
            if format != EXPORT_FORMAT {
                return Err(bad(1, &format!("the format is {format:?}, not {EXPORT_FORMAT:?}")));
            }
            if version > EXPORT_VERSION {
                return Err(ExportError::TooNew(version));
            }
            version
        }
        Err(ExportError::Malformed { detail, .. }) if detail.starts_with("cannot read") => return Err(bad(1, &detail)),
        Ok(_) | Err(ExportError::Malformed { .. }) => {
            return Err(bad(1, "this is not a colstore export: it does not start with a colstore-export header"));
        }
        Err(e) => return Err(e),
    };
    let mut plan = ImportPlan { mode, collections: Vec::new(), documents: 0, vectors: 0 };
    let mut cur: Option<(Beside<'_>, u64)> = None;
    let mut seen_collections = HashSet::new();
    async fn finish(plan: &mut ImportPlan, cur: &mut Option<(Beside<'_>, u64)>, mode: RestoreMode, line: u64) -> Result<(), ExportError> {
        if let Some((mut beside, declared)) = cur.take() {
            let partial = plan.collections.last().is_some_and(|p| p.filter.is_some());
            let p = plan.collections.last_mut().expect("a collection is open");
            if beside.seen != declared {
                return Err(ExportError::Malformed {
                    line,
                    detail: format!("collection {} declares {declared} documents but holds {}", p.name, beside.seen),
                });
            }
            if mode == RestoreMode::Replace && !partial {
                beside.rest(|_| p.delete += 1).await?;
            }
        }
        Ok(())
    }
    loop {
        let line = lines.next_line()?;
        let n = lines.n;
        match line {
            None => return Err(bad(n, "the file ends without its end line: it is truncated")),
            Some(Line::Header { .. }) => return Err(bad(n, "a second header")),
            Some(Line::Collection { name, settings, documents, filter, .. }) => {
                finish(&mut plan, &mut cur, mode, n).await?;
                if filter.is_some() && version < 4 {
                    return Err(bad(
                        n,
                        &format!("collection {name} has a filter, which version {version} files do not have: the file is damaged"),
                    ));
                }
                if !seen_collections.insert(name.clone()) {
                    return Err(bad(n, &format!("collection {name} appears twice")));
                }
                let (exists, settings_change) = match repo.collection(&name).await {
                    Ok(c) => (true, c.settings != settings),
                    Err(_) => (false, false),
                };
                plan.collections.push(CollectionPlan { exists, settings_change, filter, ..CollectionPlan::new(name.clone()) });
                cur = Some((Beside::new(repo, &name), documents));
            }
            Some(Line::Document(d)) => {
                let Some((beside, _)) = cur.as_mut() else { return Err(bad(n, "a document before any collection line")) };
                let damaged = |line| bad(line, &format!("the content of {} does not match its size and hash: the file is damaged", d.key));
                if d.parts > 0 {
                    // A large document: its content follows in part lines, checked a piece at a time.
                    if !d.content.is_empty() {
                        return Err(bad(n, &format!("document {} has both a content and part lines", d.key)));
                    }
                    let (mut hasher, mut size) = (ContentHasher::new(), 0u64);
                    for _ in 0..d.parts {
                        let piece = lines.next_part(&d.key)?;
                        hasher.update(&piece);
                        size += piece.len() as u64;
                    }
                    if size != d.size || hasher.finish() != d.hash {
                        return Err(damaged(lines.n));
                    }
                } else {
                    let content =
                        base64_decode(&d.content).ok_or_else(|| bad(n, &format!("the content of {} is not valid base64", d.key)))?;
                    if content.len() as u64 != d.size || ContentHash::of(&content) != d.hash {
                        return Err(damaged(n));
                    }
                }
                plan.documents += 1;
                plan.vectors += d.vectors.as_ref().map_or(0, |v| v.len() as u64);
                let p = plan.collections.last_mut().expect("a collection is open");
                let replace = mode == RestoreMode::Replace && p.filter.is_none();
                let existing = beside.step(&d.key, n, |_| p.delete += u64::from(replace)).await?;
                match existing.as_ref() {
                    None => p.add += 1,
                    Some(e) if same(e, &d) => p.unchanged += 1,
                    Some(e) if mode == RestoreMode::Merge && e.updated_at > d.updated_at => p.kept_newer += 1,
                    Some(_) => p.update += 1,
                }
            }
            Some(Line::Part(_)) => return Err(bad(n, "a part line that follows no document with parts")),
            Some(Line::End { collections, documents, sha256 }) => {
                finish(&mut plan, &mut cur, mode, n).await?;
                if collections != plan.collections.len() as u64 || documents != plan.documents {
                    return Err(bad(n, "the end line's counts do not match the file: it is damaged"));
                }
                match sha256 {
                    None if version >= 3 => return Err(bad(n, "the end line has no sha256 of the file: it is damaged")),
                    Some(want) if Some(want) != lines.before_end => {
                        return Err(bad(
                            n,
                            "the file's SHA-256 does not match its end line: it is damaged (a key, metadata or content changed)",
                        ));
                    }
                    _ => {}
                }
                if !lines.at_end() {
                    return Err(bad(n + 1, "data after the end line"));
                }
                return Ok(plan);
            }
        }
    }
}

/// The collection an import is writing: name, settings, where the walk beside the store is, and whether it deletes
/// the documents the file lacks (replace mode, a whole collection).
type OpenCollection<'a> = (CollectionName, CollectionSettings, Beside<'a>, bool);

/// Pass two: writes a file that [`plan_import`] accepted. Documents keep their versions and times; vectors go into the
/// embedding cache (so `col sync` needs no embedder call for them); written documents are pending in the ledger.
///
/// # Errors
/// As [`plan_import`] (the file changed between the passes), or a store failure.
pub async fn import<R: BufRead>(
    repo: &dyn CollectionRepo,
    ledger: &dyn SyncStore,
    input: R,
    mode: RestoreMode,
    on_progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, ExportError> {
    let mut lines = Lines::new(input);
    lines.next_line()?;
    let mut written = 0u64;
    let mut done = 0u64;
    let mut batch: Vec<(DocumentMeta, Bytes)> = Vec::new();
    let mut batch_bytes = 0usize;
    // The vectors of the batch's documents, written into the cache in one transaction before the batch.
    let mut vectors: Vec<(ContentHash, Vector)> = Vec::new();
    let mut coll: Option<OpenCollection<'_>> = None;
    // Replace: documents only the store has, deleted a thousand at a time.
    let mut gone: Vec<DocKey> = Vec::new();
    loop {
        let line = lines.next_line()?;
        let is_end = matches!(line, None | Some(Line::End { .. }) | Some(Line::Collection { .. }));
        if is_end && let Some((name, settings, mut beside, replace)) = coll.take() {
            cache_vectors(ledger, &settings, &mut vectors).await?;
            if !batch.is_empty() {
                written += batch.len() as u64;
                let k = batch.len() as u64;
                repo.restore_documents(&name, std::mem::take(&mut batch)).await?;
                crate::commit_log::durable("import", &name, k);
                batch_bytes = 0;
            }
            if replace {
                beside.rest(|d| gone.push(d.key)).await?;
            }
            delete_gone(repo, &name, &mut gone, 0).await?;
        }
        match line {
            None | Some(Line::End { .. }) => return Ok(written),
            Some(Line::Header { .. }) => return Err(ExportError::Malformed { line: lines.n, detail: "a second header".into() }),
            Some(Line::Part(_)) => {
                return Err(ExportError::Malformed { line: lines.n, detail: "a part line that follows no document with parts".into() });
            }
            Some(Line::Collection { name, settings, created_at, filter, .. }) => {
                repo.restore_collection(&name, settings.clone(), created_at).await?;
                let beside = Beside::new(repo, &name);
                coll = Some((name, settings, beside, mode == RestoreMode::Replace && filter.is_none()));
            }
            Some(Line::Document(mut d)) => {
                let Some((name, settings, beside, replace)) = coll.as_mut() else {
                    return Err(ExportError::Malformed { line: lines.n, detail: "a document before any collection line".into() });
                };
                let replace = *replace;
                let existing = beside
                    .step(&d.key, lines.n, |g| {
                        if replace {
                            gone.push(g.key)
                        }
                    })
                    .await?;
                delete_gone(repo, name, &mut gone, 1000).await?;
                done += 1;
                on_progress(done);
                if !writes(mode, existing.as_ref(), &d) {
                    for _ in 0..d.parts {
                        lines.next_part(&d.key)?;
                    }
                    continue;
                }
                if let (Some(_), Some(vs)) = (&settings.vectors, d.vectors.take()) {
                    vectors.extend(vs);
                }
                if d.parts > 0 {
                    // A large document: streamed from its part lines into its own transaction.
                    cache_vectors(ledger, settings, &mut vectors).await?;
                    let (key, parts) = (d.key.clone(), d.parts);
                    restore_fed(repo, name, doc_meta(name, *d), |tx| feed_parts(&mut lines, &key, parts, tx)).await?;
                    crate::commit_log::durable("import", name, 1);
                    written += 1;
                    continue;
                }
                let content =
                    base64_decode(&d.content).ok_or_else(|| ExportError::Malformed { line: lines.n, detail: "bad base64".into() })?;
                batch_bytes += content.len();
                batch.push((doc_meta(name, *d), Bytes::from(content)));
                if batch.len() >= IMPORT_BATCH || batch_bytes >= IMPORT_BATCH_BYTES || vectors.len() >= IMPORT_BATCH_VECTORS {
                    cache_vectors(ledger, settings, &mut vectors).await?;
                    written += batch.len() as u64;
                    let k = batch.len() as u64;
                    repo.restore_documents(name, std::mem::take(&mut batch)).await?;
                    crate::commit_log::durable("import", name, k);
                    batch_bytes = 0;
                }
            }
        }
    }
}

/// Vectors held for one cache write (about 6 MiB at 384 dimensions).
const IMPORT_BATCH_VECTORS: usize = 4096;

/// Writes the held vectors into the embedding cache in one transaction (before the documents they belong to: the
/// cache is keyed by content, so vectors of documents an interruption leaves unwritten are only unused).
async fn cache_vectors(
    ledger: &dyn SyncStore,
    settings: &CollectionSettings,
    vectors: &mut Vec<(ContentHash, Vector)>,
) -> Result<(), ExportError> {
    if let Some(v) = &settings.vectors
        && !vectors.is_empty()
    {
        ledger.cache_vectors(&v.embedder, std::mem::take(vectors)).await?;
    }
    vectors.clear();
    Ok(())
}

/// The document a line describes, in collection `name`.
fn doc_meta(name: &CollectionName, d: DocLine) -> DocumentMeta {
    DocumentMeta {
        collection: name.clone(),
        key: d.key,
        content_hash: d.hash,
        size: d.size,
        metadata: d.metadata,
        tags: d.tags,
        version: d.version,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

/// Sends the `parts` part lines of document `key`, decoded, down `tx`; a line that fails sends an error first, so
/// the repository writes nothing.
async fn feed_parts<R: BufRead>(lines: &mut Lines<R>, key: &DocKey, parts: u64, mut tx: PieceSender) -> Result<(), ExportError> {
    for _ in 0..parts {
        match lines.next_part(key) {
            Ok(piece) => {
                if tx.send(Ok(Bytes::from(piece))).await.is_err() {
                    // The repository stopped reading: its own error says why.
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Deletes the keys in `gone` once there are at least `min` of them (all that are there with 0).
async fn delete_gone(repo: &dyn CollectionRepo, name: &CollectionName, gone: &mut Vec<DocKey>, min: usize) -> Result<(), ExportError> {
    if !gone.is_empty() && gone.len() >= min {
        let n = repo.delete_documents(name, std::mem::take(gone)).await?.len() as u64;
        crate::commit_log::durable("import", name, n);
    }
    Ok(())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(B64[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, q) in s.chunks(4).enumerate() {
        let last = i + 1 == s.len() / 4;
        let pad = q.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        for n in 0..40usize {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).as_deref(), Some(&data[..]), "{n}");
        }
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        for bad in ["a", "ab=c", "a===", "ab*d", "aGVs=G8="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }
}
