//! `col import qdrant://HOST:6333/NAME` / `weaviate://HOST:8080/Class`: adopting a collection that already lives in a
//! remote engine, so that colstore keeps it from then on (backups, restore, clear, export, reindex, verify).
//!
//! Every object becomes one document: its content is the text field, the rest of its payload is its metadata (with
//! the source id under [`AdoptOptions::id_field`]), its key is the key field or the source id. The collection chunks
//! whole documents, so each document is exactly one chunk, and the object's vector goes into the embedding cache
//! under the embedder the user named, which must be the store's: `col sync` then projects the collection with no
//! embedder call, and documents added later are embedded by the same model.
//!
//! Objects are read a page at a time (memory stays one page, plus the keys seen when keys come from a field, to refuse
//! a key used twice). Each page is written as the batched `col add` path writes: vectors into the cache in one
//! transaction, then the documents with one `put_batch` (versions, `Unchanged` for equal documents, `pending` in the
//! ledger). An interrupted adoption is resumed by running it again.

use std::collections::HashSet;

use bytes::Bytes;
use colstore_domain::ports::{
    CollectionRepo, ForeignCollection, ForeignInfo, ForeignObject, IndexError, RepoError, SafetyCopy, SafetyError, SafetyNet, SyncError,
    SyncStore,
};
use colstore_domain::{
    ChunkingSettings, CollectionName, CollectionSettings, CollectionSpec, Content, ContentHash, DocKey, EmbedderId, Metadata, NewDocument,
    PutStatus, Tags, Vector, VectorSettings, chunk_text,
};
use serde::Serialize;
use serde_json::Value;

/// Objects read per request and written per transaction.
pub const ADOPT_PAGE: usize = 256;
/// Skipped objects listed by id in a report (the rest are counted).
pub const MAX_LISTED_SKIPS: usize = 20;
/// Documents shown by a dry run.
const SAMPLE: usize = 3;
/// Characters of text a sample shows.
const SAMPLE_CHARS: usize = 80;

/// What to adopt, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptOptions {
    /// The collection of this store the objects go into (created when missing).
    pub into: CollectionName,
    /// The payload field holding each object's text.
    pub text_field: String,
    /// The payload field holding each document's key; `None`: the source id.
    pub key_field: Option<String>,
    /// The metadata field that keeps the source id (`source_id`).
    pub id_field: String,
    /// The embedder that made the vectors, `(kind, model)`; the dimension is the source's.
    pub embedder: (String, String),
    /// Refuse the whole adoption, before writing anything, when any object cannot be adopted.
    pub strict: bool,
}

/// An object that was not adopted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdoptSkip {
    /// Its id in the source.
    pub id: String,
    /// Why, for humans.
    pub reason: String,
}

/// One document as it would be adopted (dry runs show a few).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdoptSample {
    /// Its key.
    pub key: DocKey,
    /// Its source id.
    pub source_id: String,
    /// The start of its text.
    pub text: String,
    /// Its metadata fields.
    pub metadata_fields: Vec<String>,
}

/// What an adoption did, or would do (`dry_run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdoptReport {
    /// The source, without credentials.
    pub source: String,
    /// Dimension, distance and count of the source.
    pub info: ForeignInfo,
    /// The collection written.
    pub collection: CollectionName,
    /// Whether the collection was (or would be) created.
    pub created_collection: bool,
    /// The embedder the vectors are cached under.
    pub embedder: EmbedderId,
    /// Objects read.
    pub read: u64,
    /// Documents created (dry run: that would be adopted).
    pub created: u64,
    /// Documents that existed and changed.
    pub updated: u64,
    /// Documents that existed unchanged.
    pub unchanged: u64,
    /// Objects not adopted.
    pub skipped: u64,
    /// The first [`MAX_LISTED_SKIPS`] of them.
    pub skips: Vec<AdoptSkip>,
    /// A dry run's first documents.
    pub sample: Vec<AdoptSample>,
    /// Vectors written into the embedding cache.
    pub vectors: u64,
    /// Whether nothing was written.
    pub dry_run: bool,
}

impl AdoptReport {
    fn skip(&mut self, s: AdoptSkip) {
        self.skipped += 1;
        if self.skips.len() < MAX_LISTED_SKIPS {
            self.skips.push(s);
        }
    }
}

/// Why an adoption failed.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The source could not be read.
    #[error("cannot read {source_name}: {error}")]
    Source {
        /// The source, without credentials.
        source_name: String,
        /// What went wrong.
        #[source]
        error: IndexError,
    },
    /// The embedder named is not the store's, so new documents would be embedded by another model.
    #[error(
        "the vectors of {source_name} are {named}, but this store embeds with {store}: cached vectors and new documents' vectors would come from different models"
    )]
    EmbedderMismatch {
        /// The source, without credentials.
        source_name: String,
        /// The embedder named, with the source's dimension.
        named: EmbedderId,
        /// The store's embedder.
        store: EmbedderId,
    },
    /// The target collection exists with settings an adoption cannot write into.
    #[error("collection \"{collection}\" exists {reason}")]
    Incompatible {
        /// The collection.
        collection: CollectionName,
        /// What differs.
        reason: String,
    },
    /// `--strict` and some objects cannot be adopted; nothing was written.
    #[error("{skipped} of {read} objects of {source_name} cannot be adopted (first: {first_id}: {first_reason}); nothing was written")]
    Strict {
        /// The source, without credentials.
        source_name: String,
        /// Objects read.
        read: u64,
        /// Objects that cannot be adopted.
        skipped: u64,
        /// The first one's id.
        first_id: String,
        /// Why it cannot.
        first_reason: String,
    },
    /// No safety backup could be taken; nothing was written.
    #[error(transparent)]
    Safety(#[from] SafetyError),
    /// A store failure.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// An embedding cache failure.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// Progress: objects read so far, of about `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdoptProgress {
    /// Objects read.
    pub read: u64,
    /// The source's count when the adoption started.
    pub total: u64,
}

/// One object, ready to write.
struct Adopted {
    doc: NewDocument,
    chunk: ContentHash,
    vector: Vector,
    source_id: String,
    text: String,
}

/// The document `o` becomes, or why it cannot. `seen` holds the keys used so far when keys come from a field.
fn convert(o: ForeignObject, opts: &AdoptOptions, dimension: u32, seen: &mut Option<HashSet<DocKey>>) -> Result<Adopted, AdoptSkip> {
    let skip = |reason: String| AdoptSkip { id: o.id.clone(), reason };
    let text = match o.payload.get(&opts.text_field) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(skip(format!("it has no `{}` field", opts.text_field))),
        Some(other) => return Err(skip(format!("its `{}` field is {}, not text", opts.text_field, kind(other)))),
    };
    let chunks = chunk_text(&text, &ChunkingSettings::WHOLE_DOCUMENT);
    let Some(chunk) = chunks.first() else { return Err(skip(format!("its `{}` field is empty", opts.text_field))) };
    let key_text = match &opts.key_field {
        None => o.id.clone(),
        Some(f) => match o.payload.get(f) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            None | Some(Value::Null) => return Err(skip(format!("it has no `{f}` field for its key"))),
            Some(other) => return Err(skip(format!("its `{f}` field is {}, not a key", kind(other)))),
        },
    };
    let key = DocKey::parse(&key_text).map_err(|e| skip(format!("{e}")))?;
    let vector = match o.vector {
        None => return Err(skip("it has no vector".into())),
        Some(v) if v.len() != dimension as usize => {
            return Err(skip(format!("its vector has {} dimensions, the collection's have {dimension}", v.len())));
        }
        Some(v) => v,
    };
    let mut payload = o.payload;
    payload.remove(&opts.text_field);
    match payload.get(&opts.id_field) {
        Some(Value::String(s)) if *s == o.id => {}
        Some(_) => {
            return Err(AdoptSkip {
                id: o.id,
                reason: format!("its payload has a `{}` field already (name another with --id-field)", opts.id_field),
            });
        }
        None => {}
    }
    payload.insert(opts.id_field.clone(), Value::String(o.id.clone()));
    if let Some(seen) = seen
        && !seen.insert(key.clone())
    {
        return Err(AdoptSkip { id: o.id, reason: format!("its key {key} is used by an earlier object") });
    }
    let chunk_hash = chunk.hash;
    let doc = NewDocument {
        key,
        content: Content::Bytes(Bytes::from(text.clone().into_bytes())),
        metadata: Metadata(payload),
        tags: Tags::default(),
    };
    Ok(Adopted { doc, chunk: chunk_hash, vector, source_id: o.id, text })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The settings an adopted collection has.
fn settings_for(embedder: &EmbedderId, info: &ForeignInfo) -> CollectionSettings {
    CollectionSettings {
        vectors: Some(VectorSettings { embedder: embedder.clone(), distance: info.distance }),
        chunking: ChunkingSettings::WHOLE_DOCUMENT,
        index: None,
        fusion: None,
        indexed_fields: Vec::new(),
    }
}

/// Adopts `source` into the store (or, with `dry_run`, reads all of it and reports what would be adopted, writing
/// nothing). `store_embedder` is the identity of the store's embedder, which must be the one `opts` names. When the
/// collection exists with documents and `safety` is given, they are backed up first (`on_kept` hears of it).
///
/// # Errors
/// See [`AdoptError`]. A failure after some pages were written leaves them written (each page is one transaction);
/// running the adoption again finishes it.
#[allow(clippy::too_many_arguments)]
pub async fn adopt(
    repo: &dyn CollectionRepo,
    cache: &dyn SyncStore,
    source: &dyn ForeignCollection,
    opts: &AdoptOptions,
    store_embedder: &EmbedderId,
    safety: Option<&dyn SafetyNet>,
    dry_run: bool,
    on_kept: &(dyn Fn(&SafetyCopy) + Sync),
    progress: &(dyn Fn(AdoptProgress) + Sync),
) -> Result<AdoptReport, AdoptError> {
    let source_name = source.describe();
    let read_error = |error: IndexError| AdoptError::Source { source_name: source_name.clone(), error };
    let info = source.info().await.map_err(read_error)?;
    let named = EmbedderId { kind: opts.embedder.0.clone(), model: opts.embedder.1.clone(), dimension: info.dimension };
    if named != *store_embedder {
        return Err(AdoptError::EmbedderMismatch { source_name, named, store: store_embedder.clone() });
    }
    let wanted = settings_for(&named, &info);
    let existing = match repo.collection(&opts.into).await {
        Ok(c) => Some(c),
        Err(RepoError::CollectionNotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(c) = &existing {
        if !c.settings.chunking.is_whole_document() {
            return Err(AdoptError::Incompatible {
                collection: opts.into.clone(),
                reason: format!("and chunks documents ({}); adopted objects are one chunk each", c.settings.chunking),
            });
        }
        if c.settings.vectors != wanted.vectors {
            let has =
                c.settings.vectors.as_ref().map_or("no vector settings".to_owned(), |v| format!("vectors {} ({})", v.embedder, v.distance));
            return Err(AdoptError::Incompatible {
                collection: opts.into.clone(),
                reason: format!("with {has}, and {source_name} holds {named} ({})", info.distance),
            });
        }
    }
    let mut report = AdoptReport {
        source: source_name.clone(),
        info: info.clone(),
        collection: opts.into.clone(),
        created_collection: existing.is_none(),
        embedder: named.clone(),
        read: 0,
        created: 0,
        updated: 0,
        unchanged: 0,
        skipped: 0,
        skips: Vec::new(),
        sample: Vec::new(),
        vectors: 0,
        dry_run,
    };
    if dry_run {
        walk(source, opts, &info, &mut report, None, progress).await?;
        return Ok(report);
    }
    if opts.strict {
        // A first pass writes nothing, so a refusal leaves the store as it was.
        let mut plan = report.clone();
        walk(source, opts, &info, &mut plan, None, progress).await?;
        if let Some(first) = plan.skips.first() {
            return Err(AdoptError::Strict {
                source_name,
                read: plan.read,
                skipped: plan.skipped,
                first_id: first.id.clone(),
                first_reason: first.reason.clone(),
            });
        }
    }
    crate::commit_log::began("import", Some(&opts.into));
    match &existing {
        Some(c) if c.document_count > 0 => {
            if let Some(net) = safety {
                on_kept(&net.backup(std::slice::from_ref(&opts.into), "import").await?);
            }
        }
        Some(_) => {}
        None => {
            repo.create_collection(CollectionSpec { name: opts.into.clone(), settings: wanted }).await?;
        }
    }
    let writer = Writer { repo, cache, embedder: &named };
    walk(source, opts, &info, &mut report, Some(&writer), progress).await?;
    Ok(report)
}

/// Where a walk writes.
struct Writer<'a> {
    repo: &'a dyn CollectionRepo,
    cache: &'a dyn SyncStore,
    embedder: &'a EmbedderId,
}

/// Reads every object of `source` once, page by page, counting into `report`; writes each page through `writer`
/// (a dry run has none, and collects a sample instead).
async fn walk(
    source: &dyn ForeignCollection,
    opts: &AdoptOptions,
    info: &ForeignInfo,
    report: &mut AdoptReport,
    writer: Option<&Writer<'_>>,
    progress: &(dyn Fn(AdoptProgress) + Sync),
) -> Result<(), AdoptError> {
    let mut seen = opts.key_field.as_ref().map(|_| HashSet::new());
    let mut cursor = None;
    loop {
        let page = source
            .page(cursor.take(), ADOPT_PAGE, true)
            .await
            .map_err(|error| AdoptError::Source { source_name: report.source.clone(), error })?;
        let mut docs = Vec::with_capacity(page.objects.len());
        let mut vectors = Vec::with_capacity(page.objects.len());
        for o in page.objects {
            report.read += 1;
            match convert(o, opts, info.dimension.get(), &mut seen) {
                Err(s) => report.skip(s),
                Ok(a) => {
                    if writer.is_none() {
                        report.created += 1;
                        if report.sample.len() < SAMPLE {
                            let mut fields: Vec<String> = a.doc.metadata.0.keys().cloned().collect();
                            fields.sort();
                            report.sample.push(AdoptSample {
                                key: a.doc.key.clone(),
                                source_id: a.source_id.clone(),
                                text: a.text.chars().take(SAMPLE_CHARS).collect(),
                                metadata_fields: fields,
                            });
                        }
                    }
                    vectors.push((a.chunk, a.vector));
                    docs.push(a.doc);
                }
            }
        }
        if let Some(w) = writer
            && !docs.is_empty()
        {
            // The vectors first: the cache is keyed by content, so vectors of documents an interruption leaves
            // unwritten are only unused.
            report.vectors += vectors.len() as u64;
            w.cache.cache_vectors(w.embedder, vectors).await?;
            let outcomes = w.repo.put_batch(&opts.into, docs).await?;
            let mut changed = 0;
            for o in outcomes {
                match o.status {
                    PutStatus::Created => report.created += 1,
                    PutStatus::Updated => report.updated += 1,
                    PutStatus::Unchanged => {
                        report.unchanged += 1;
                        continue;
                    }
                }
                changed += 1;
            }
            crate::commit_log::durable("import", &opts.into, changed);
        }
        progress(AdoptProgress { read: report.read, total: info.count });
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn opts(key_field: Option<&str>) -> AdoptOptions {
        AdoptOptions {
            into: CollectionName::parse("docs").unwrap(),
            text_field: "text".into(),
            key_field: key_field.map(str::to_owned),
            id_field: "source_id".into(),
            embedder: ("hash".into(), "v1".into()),
            strict: false,
        }
    }

    fn object(id: &str, payload: Value, vector: Option<Vector>) -> ForeignObject {
        ForeignObject { id: id.into(), vector, payload: payload.as_object().unwrap().clone() }
    }

    #[test]
    fn an_object_becomes_a_document_with_its_payload_as_metadata_and_its_id_kept() {
        let o = object("7", json!({"text": "  hello world ", "lang": "en", "n": 3}), Some(vec![0.5, 0.5]));
        let a = convert(o, &opts(None), 2, &mut None).unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!(a.doc.key.as_str(), "7");
        assert_eq!(a.doc.metadata.0, *json!({"lang": "en", "n": 3, "source_id": "7"}).as_object().unwrap());
        assert_eq!(a.chunk, ContentHash::of(b"hello world"), "one chunk: the trimmed text, as chunk_text makes it");
        assert_eq!(a.vector, vec![0.5, 0.5]);
    }

    #[rstest::rstest]
    #[case::no_text(json!({"body": "x"}), Some(vec![1.0]), None, "it has no `text` field")]
    #[case::text_not_a_string(json!({"text": 5}), Some(vec![1.0]), None, "its `text` field is a number, not text")]
    #[case::empty_text(json!({"text": " \n"}), Some(vec![1.0]), None, "its `text` field is empty")]
    #[case::no_vector(json!({"text": "a"}), None, None, "it has no vector")]
    #[case::wrong_dimension(json!({"text": "a"}), Some(vec![1.0, 2.0]), None, "its vector has 2 dimensions, the collection's have 1")]
    #[case::no_key_field(json!({"text": "a"}), Some(vec![1.0]), Some("path"), "it has no `path` field for its key")]
    #[case::bad_key(json!({"text": "a", "path": "/etc/passwd"}), Some(vec![1.0]), Some("path"), "absolute path")]
    #[case::id_field_taken(json!({"text": "a", "source_id": "other"}), Some(vec![1.0]), None, "has a `source_id` field already")]
    fn objects_that_cannot_be_adopted_say_why(
        #[case] payload: Value,
        #[case] vector: Option<Vector>,
        #[case] key_field: Option<&str>,
        #[case] reason: &str,
    ) {
        let Err(skip) = convert(object("9", payload, vector), &opts(key_field), 1, &mut key_field.map(|_| HashSet::new())) else {
            panic!("adopted")
        };
        assert_eq!(skip.id, "9");
        assert!(skip.reason.contains(reason), "{}", skip.reason);
    }

    #[test]
    fn a_key_field_used_twice_is_refused_the_second_time() {
        let mut seen = Some(HashSet::new());
        let o = |id| object(id, json!({"text": "t", "path": "a.md"}), Some(vec![1.0]));
        assert!(convert(o("1"), &opts(Some("path")), 1, &mut seen).is_ok());
        let Err(skip) = convert(o("2"), &opts(Some("path")), 1, &mut seen) else { panic!("adopted twice") };
        assert_eq!(skip.reason, "its key a.md is used by an earlier object");
    }
}
