//! `col reconcile`: find out what people did to a filesystem-mode collection's folder while colstore was not
//! looking, and bring the metadata in line (PRODUCT §4).
//!
//! 1. Walk the folder ([`DocumentFiles::scan`], stat only) and read the catalog ([`FileCatalog::catalog`]).
//! 2. Merge both in key order. Fast path: a file whose (size, mtime, inode) equals the recorded stat is unchanged and
//!    is not read. Every other file is hashed: same hash ⇒ `Touched` (stat refreshed), else `Modified`.
//! 3. Files with no document are `Added`; documents with no file are `Deleted`, unless an unreadable entry may hide
//!    the file (then nothing happens to them). An added and a deleted with the same content hash pair up as `Renamed`
//!    (preferring the same inode, then the same file name), so the key changes without re-embedding.
//! 4. Safety: a missing or empty folder, or a plan deleting more than `max_delete_ratio` of the collection, is
//!    refused unless forced.
//! 5. Unless it is a dry run, apply the plan in one transaction ([`FileCatalog::apply_changes`]), which marks what
//!    needs sync as pending.
//!
//! Memory: one catalog entry and one scanned entry per file (about 200 bytes each), so 100k files use ~20 MB.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use colstore_domain::ports::{
    ApplyReport, CatalogEntry, DocumentFiles, FileCatalog, FileChange, FilesError, RepoError, Scan, ScanIssue, ScannedFile,
};
use colstore_domain::{CollectionName, ContentHash, DocKey};
use futures::StreamExt;
use serde::Serialize;

/// Default share of a collection a reconcile may delete without `--force`.
pub const DEFAULT_MAX_DELETE_RATIO: f64 = 0.5;

/// Files hashed at the same time.
const HASH_CONCURRENCY: usize = 4;

/// How to reconcile.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileOptions {
    /// Plan only; change nothing.
    pub dry_run: bool,
    /// Apply even what the safety checks refuse.
    pub force: bool,
    /// The share of the collection's documents (0.0–1.0) a reconcile may delete without `force`.
    pub max_delete_ratio: f64,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self { dry_run: false, force: false, max_delete_ratio: DEFAULT_MAX_DELETE_RATIO }
    }
}

/// Why a plan was not applied without `--force`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// The collection's folder does not exist (unmounted, moved, deleted).
    RootMissing {
        /// The folder.
        root: String,
        /// Documents that would be deleted.
        documents: u64,
    },
    /// The collection's folder is empty but the collection has documents (an unmounted mount point looks like this).
    RootEmpty {
        /// The folder.
        root: String,
        /// Documents that would be deleted.
        documents: u64,
    },
    /// The plan deletes more than the allowed share of the collection.
    TooManyDeletions {
        /// Documents the plan deletes.
        deletions: u64,
        /// Documents in the collection.
        documents: u64,
        /// The allowed share.
        max_ratio: f64,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RootMissing { root, documents } => {
                write!(
                    f,
                    "the folder {root} does not exist (is a disk unmounted, or was it moved?); reconciling would delete all {documents} documents"
                )
            }
            Self::RootEmpty { root, documents } => {
                write!(f, "the folder {root} is empty (is a disk unmounted?); reconciling would delete all {documents} documents")
            }
            Self::TooManyDeletions { deletions, documents, max_ratio } => {
                write!(f, "reconciling would delete {deletions} of {documents} documents, more than the allowed {:.0} %", max_ratio * 100.0)
            }
        }
    }
}

/// What reconciling one collection finds (and, unless a dry run, did).
#[derive(Debug, Clone, Serialize)]
pub struct ReconcilePlan {
    /// The collection.
    pub collection: CollectionName,
    /// Its folder.
    pub root: String,
    /// Changes, in key order (renames by their new key).
    pub changes: Vec<FileChange>,
    /// Files found unchanged.
    pub unchanged: u64,
    /// Files read and hashed (the rest were judged by their stat alone).
    pub hashed_files: u64,
    /// Bytes read to hash them.
    pub hashed_bytes: u64,
    /// Entries skipped on purpose, with the reason (unsafe names, symlinks leaving the folder, FIFOs, devices).
    pub skipped: Vec<ScanIssue>,
    /// Files and folders that could not be read; their documents are left as they are.
    pub unreadable: Vec<ScanIssue>,
    /// Why the plan is not applied without `--force`, if it is not.
    pub refusal: Option<Refusal>,
}

/// Counts of a plan's changes by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChangeCounts {
    /// New files.
    pub added: u64,
    /// Changed files.
    pub modified: u64,
    /// Removed files.
    pub deleted: u64,
    /// Moved or renamed files.
    pub renamed: u64,
    /// Files whose stat changed but not their content.
    pub touched: u64,
}

impl ChangeCounts {
    /// Changes that alter documents (everything but touches).
    pub fn effective(&self) -> u64 {
        self.added + self.modified + self.deleted + self.renamed
    }
}

impl ReconcilePlan {
    /// A plan of `collection` (folder `root`) with nothing found yet.
    pub fn empty(collection: CollectionName, root: String) -> Self {
        Self {
            collection,
            root,
            changes: Vec::new(),
            unchanged: 0,
            hashed_files: 0,
            hashed_bytes: 0,
            skipped: Vec::new(),
            unreadable: Vec::new(),
            refusal: None,
        }
    }

    /// The changes counted by kind.
    pub fn counts(&self) -> ChangeCounts {
        let mut c = ChangeCounts::default();
        for ch in &self.changes {
            match ch {
                FileChange::Added { .. } => c.added += 1,
                FileChange::Modified { .. } => c.modified += 1,
                FileChange::Deleted { .. } => c.deleted += 1,
                FileChange::Renamed { .. } => c.renamed += 1,
                FileChange::Touched { .. } => c.touched += 1,
            }
        }
        c
    }

    /// Whether the folder and the metadata agree (touches aside).
    pub fn is_clean(&self) -> bool {
        self.counts().effective() == 0
    }
}

/// The outcome of [`reconcile`].
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileReport {
    /// What was found.
    pub plan: ReconcilePlan,
    /// What was applied; `None` for a dry run, a refused plan, or a plan with nothing to do.
    pub applied: Option<ApplyReport>,
}

/// Errors of [`reconcile`].
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The folder failed in a way that is not about single files.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The safety checks refused the plan; `--force` applies it anyway.
    #[error("{refusal}")]
    Refused {
        /// Why.
        refusal: Refusal,
        /// The plan that was refused.
        plan: Box<ReconcilePlan>,
    },
}

/// Reconciles one collection: plans, checks safety, and (unless `dry_run`) applies.
///
/// # Errors
/// [`ReconcileError::Refused`] when a safety check fails without `force` (nothing applied); store or folder failures.
pub async fn reconcile(
    files: &Arc<dyn DocumentFiles>,
    catalog: &dyn FileCatalog,
    collection: &CollectionName,
    options: ReconcileOptions,
) -> Result<ReconcileReport, ReconcileError> {
    let plan = plan(files, catalog, collection, options).await?;
    apply_plan(catalog, collection, plan, options).await
}

/// Applies a plan made by [`plan`] (unless `dry_run`), with the same safety checks as [`reconcile`]. Files that
/// changed after the plan was made are caught by the expected hashes: those changes are skipped as conflicts and the
/// next reconcile picks them up.
///
/// # Errors
/// As [`reconcile`].
pub async fn apply_plan(
    catalog: &dyn FileCatalog,
    collection: &CollectionName,
    plan: ReconcilePlan,
    options: ReconcileOptions,
) -> Result<ReconcileReport, ReconcileError> {
    if let Some(refusal) = &plan.refusal
        && !options.force
    {
        if options.dry_run {
            return Ok(ReconcileReport { plan, applied: None });
        }
        return Err(ReconcileError::Refused { refusal: refusal.clone(), plan: Box::new(plan) });
    }
    if options.dry_run || plan.changes.is_empty() {
        return Ok(ReconcileReport { plan, applied: None });
    }
    crate::commit_log::began("reconcile", Some(collection));
    let applied = catalog.apply_changes(collection, plan.changes.clone()).await?;
    crate::commit_log::durable("reconcile", collection, applied.applied);
    Ok(ReconcileReport { plan, applied: Some(applied) })
}

/// Compares the folder with the catalog and returns what would change (nothing is written).
///
/// # Errors
/// `CollectionNotFound` and store or folder failures.
pub async fn plan(
    files: &Arc<dyn DocumentFiles>,
    catalog: &dyn FileCatalog,
    collection: &CollectionName,
    options: ReconcileOptions,
) -> Result<ReconcilePlan, ReconcileError> {
    // The catalog (a database read) and the scan (stat calls) do not wait for each other.
    let (known, scanned) = futures::join!(catalog.catalog(collection), files.scan(collection));
    let known = known?;
    let root = files.location(collection);
    let scan = match scanned {
        Ok(scan) => scan,
        Err(FilesError::RootMissing { .. }) => {
            let documents = known.len() as u64;
            let changes: Vec<FileChange> =
                known.into_iter().map(|e| FileChange::Deleted { key: e.key, expected: e.content_hash }).collect();
            let refusal = (documents > 0).then(|| Refusal::RootMissing { root: root.clone(), documents });
            return Ok(ReconcilePlan { changes, refusal, ..ReconcilePlan::empty(collection.clone(), root) });
        }
        Err(e) => return Err(e.into()),
    };

    let mut plan = ReconcilePlan {
        skipped: scan.skipped.clone(),
        unreadable: scan.unreadable.clone(),
        ..ReconcilePlan::empty(collection.clone(), root)
    };
    let documents = known.len() as u64;
    let empty_root = scan.files.is_empty() && scan.unreadable.is_empty();

    // Merge-join in key order: both lists are sorted by key.
    let mut to_hash: Vec<(ScannedFile, Option<CatalogEntry>)> = Vec::new();
    let mut gone: Vec<CatalogEntry> = Vec::new();
    let mut known = known.into_iter().peekable();
    for file in scan.files {
        // One key comparison per step (a reconcile of 100 000 unchanged files is mostly this loop's comparisons).
        let mut entry = None;
        while let Some(e) = known.peek() {
            match e.key.cmp(&file.key) {
                std::cmp::Ordering::Less => gone.extend(known.next()),
                std::cmp::Ordering::Equal => {
                    entry = known.next();
                    break;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        match entry {
            Some(entry) if entry.stat == Some(file.stat) && entry.path == file.path => plan.unchanged += 1,
            Some(entry) => to_hash.push((file, Some(entry))),
            None => to_hash.push((file, None)),
        }
    }
    gone.extend(known);
    // Documents an unreadable entry may hide are left as they are.
    let probe = Scan { unreadable: plan.unreadable.clone(), ..Scan::default() };
    gone.retain(|e| !probe.may_hide(&e.path));

    // Hash what the stat could not vouch for, a few files at a time.
    let hashed: Vec<_> = futures::stream::iter(to_hash)
        .map(|(file, entry)| {
            let files = Arc::clone(files);
            let collection = collection.clone();
            async move {
                let result = files.hash(&collection, &file.path).await;
                (file, entry, result)
            }
        })
        .buffered(HASH_CONCURRENCY)
        .collect()
        .await;

    let mut added: Vec<(ScannedFile, ContentHash, u64)> = Vec::new();
    for (file, entry, result) in hashed {
        let (stat, hash, size) = match result {
            Ok(h) => h,
            Err(e @ (FilesError::Io { .. } | FilesError::Unsafe { .. } | FilesError::NotFound { .. })) => {
                // Unreadable now: the document (if any) stays as it is.
                plan.unreadable.push(ScanIssue { path: file.path.clone(), reason: unreadable_reason(&e) });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        plan.hashed_files += 1;
        plan.hashed_bytes += size;
        match entry {
            Some(entry) if entry.content_hash == hash => {
                plan.changes.push(FileChange::Touched { key: file.key, path: file.path, expected: hash, stat });
            }
            Some(entry) => {
                plan.changes.push(FileChange::Modified { key: file.key, path: file.path, expected: entry.content_hash, hash, size, stat })
            }
            None => added.push((ScannedFile { stat, ..file }, hash, size)),
        }
    }

    pair_renames(&mut plan.changes, added, gone);
    plan.changes.sort_by(|a, b| change_key(a).cmp(change_key(b)));

    let counts = plan.counts();
    plan.refusal = if empty_root && documents > 0 {
        Some(Refusal::RootEmpty { root: plan.root.clone(), documents })
    } else if documents > 0 && counts.deleted as f64 > options.max_delete_ratio * documents as f64 {
        Some(Refusal::TooManyDeletions { deletions: counts.deleted, documents, max_ratio: options.max_delete_ratio })
    } else {
        None
    };
    Ok(plan)
}

fn unreadable_reason(e: &FilesError) -> String {
    match e {
        FilesError::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// The key a change is sorted and reported by.
pub fn change_key(c: &FileChange) -> &DocKey {
    match c {
        FileChange::Added { key, .. }
        | FileChange::Modified { key, .. }
        | FileChange::Deleted { key, .. }
        | FileChange::Touched { key, .. } => key,
        FileChange::Renamed { to, .. } => to,
    }
}

/// Pairs new files with vanished documents of the same content as renames; the rest become `Added` and `Deleted`.
/// Among several candidates, the same inode wins, then the same file name, then the first key.
fn pair_renames(changes: &mut Vec<FileChange>, added: Vec<(ScannedFile, ContentHash, u64)>, gone: Vec<CatalogEntry>) {
    let mut by_hash: HashMap<ContentHash, BTreeMap<DocKey, CatalogEntry>> = HashMap::new();
    for e in gone {
        by_hash.entry(e.content_hash).or_default().insert(e.key.clone(), e);
    }
    for (file, hash, size) in added {
        let candidates = by_hash.get_mut(&hash);
        let from = candidates.and_then(|c| {
            let pick = c
                .values()
                .find(|e| e.stat.is_some_and(|s| s.inode != 0 && s.inode == file.stat.inode))
                .or_else(|| c.values().find(|e| file_name(e.key.as_str()) == file_name(file.key.as_str())))
                .or_else(|| c.values().next())
                .map(|e| e.key.clone())?;
            c.remove(&pick)
        });
        changes.push(match from {
            Some(from) => FileChange::Renamed { from: from.key, to: file.key, path: file.path, expected: hash, stat: file.stat },
            None => FileChange::Added { key: file.key, path: file.path, hash, size, stat: file.stat },
        });
    }
    for rest in by_hash.into_values() {
        changes.extend(rest.into_values().map(|e| FileChange::Deleted { key: e.key, expected: e.content_hash }));
    }
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}
