//! `col backup list | show | verify | delete | prune`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use colstore_domain::ContentHash;
use colstore_domain::ports::{BackupId, BackupStore, Clock, LockKind};
use futures::StreamExt;
use serde::Serialize;

use super::format::{self, DocRecord, LedgerRecord, Manifest};
use super::pack::{BlobReader, KnownBlobs};
use super::{BackupFailure, HeldLock, LockOwner, civil_from_days, read_manifest};

/// One backup in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    /// Its id.
    pub id: String,
    /// When it was taken (ms since the epoch).
    pub created_at: colstore_domain::Timestamp,
    /// Its collections (by name).
    pub collections: Vec<String>,
    /// Whether it holds only definitions and settings.
    pub schema_only: bool,
    /// Tags.
    pub tags: Vec<String>,
    /// Documents.
    pub documents: u64,
    /// Logical bytes of its documents.
    pub bytes: u64,
    /// Bytes it added to the repository (objects written, before compression).
    pub new_bytes: u64,
    /// Why it cannot be read, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BackupSummary {
    fn of(m: &Manifest) -> Self {
        Self {
            id: m.id.to_string(),
            created_at: m.created_at,
            collections: m.collections.iter().map(|c| c.name.to_string()).collect(),
            schema_only: m.scope.schema_only,
            tags: m.tags.clone(),
            documents: m.stats.documents,
            bytes: m.stats.logical_bytes,
            new_bytes: m.stats.new_object_bytes,
            error: None,
        }
    }
}

/// Every backup, oldest first. Unreadable manifests are listed with their error.
///
/// # Errors
/// When the repository cannot be listed.
pub async fn list_backups(store: &dyn BackupStore) -> Result<Vec<BackupSummary>, BackupFailure> {
    let mut out = Vec::new();
    for info in store.list_manifests().await.map_err(BackupFailure::Store)? {
        match read_manifest(store, &info.id).await {
            Ok(m) => out.push(BackupSummary::of(&m)),
            Err(e) => out.push(BackupSummary {
                id: info.id.to_string(),
                created_at: info.written_at,
                collections: Vec::new(),
                schema_only: false,
                tags: Vec::new(),
                documents: 0,
                bytes: 0,
                new_bytes: 0,
                error: Some(e.to_string()),
            }),
        }
    }
    // Ids sort by second; within a second, by the snapshot's millisecond.
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// One backup's manifest.
///
/// # Errors
/// `NotFound`, or an unreadable manifest.
pub async fn show_backup(store: &dyn BackupStore, id: &BackupId) -> Result<Manifest, BackupFailure> {
    read_manifest(store, id).await
}

/// A problem `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyFinding {
    /// The object (pack, index, or blob) concerned.
    pub object: String,
    /// What is wrong.
    pub problem: String,
}

/// What `verify` checked.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyReport {
    /// The backup.
    pub id: String,
    /// Whether every pack's data was read and re-hashed.
    pub read_data: bool,
    /// Objects checked (present, and with `read_data` read and re-hashed).
    pub objects: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Blobs checked.
    pub blobs: u64,
    /// Documents listed in its records.
    pub documents: u64,
    /// Problems; empty means the backup is intact.
    pub problems: Vec<VerifyFinding>,
}

/// Checks a backup: its manifest, that every object exists, that its records parse and name only blobs its indexes
/// know, and with `read_data` that every pack reads back with the right hash and every blob in it too.
///
/// # Errors
/// `NotFound`, or a repository failure that stops the check (problems with objects are findings, not errors).
pub async fn verify_backup(
    store: Arc<dyn BackupStore>,
    id: &BackupId,
    read_data: bool,
    on_progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<VerifyReport, BackupFailure> {
    let m = read_manifest(&*store, id).await?;
    let mut report = VerifyReport { id: id.to_string(), read_data, ..VerifyReport::default() };
    let mut problems: Vec<VerifyFinding> = Vec::new();
    let mut present: HashSet<ContentHash> = HashSet::new();
    let mut listing = store.list_objects().await.map_err(BackupFailure::Store)?;
    while let Some(o) = listing.next().await {
        present.insert(o.map_err(BackupFailure::Store)?.id);
    }
    for (what, ids) in [("pack index", &m.indexes), ("pack", &m.packs)] {
        for o in ids {
            report.objects += 1;
            if !present.contains(o) {
                problems.push(VerifyFinding { object: o.to_string(), problem: format!("the {what} is missing") });
            }
        }
    }
    // The indexes: a damaged one is a finding; the blobs it lists are then unknown.
    let mut known = KnownBlobs::default();
    for o in &m.indexes {
        if !present.contains(o) {
            continue;
        }
        match KnownBlobs::load(&*store, [*o]).await {
            Ok(k) => known.blobs.extend(k.blobs),
            Err(e) => problems.push(VerifyFinding { object: o.to_string(), problem: e.to_string() }),
        }
    }
    let packs: HashSet<ContentHash> = m.packs.iter().copied().collect();
    known.blobs.retain(|_, (loc, _)| packs.contains(&loc.pack));
    let mut reader = BlobReader::new(Arc::clone(&store), known, 2);

    // Every blob the records name must be known; the records themselves must read and parse.
    let mut needed: BTreeSet<ContentHash> = BTreeSet::new();
    for c in &m.collections {
        for rid in c.document_records.iter().chain(c.ledger_records.iter()) {
            needed.insert(*rid);
        }
        for rid in &c.document_records {
            match reader.blob(rid, "record chunk").await {
                Ok(bytes) => match format::parse_lines::<DocRecord>(rid, &bytes) {
                    Ok(records) => {
                        for r in records {
                            report.documents += 1;
                            needed.insert(r.hash);
                            if let Some(v) = r.vectors {
                                needed.insert(v);
                            }
                        }
                    }
                    Err(e) => problems.push(VerifyFinding { object: rid.to_string(), problem: e.to_string() }),
                },
                Err(e) => problems.push(finding(rid, e)),
            }
        }
        for rid in &c.ledger_records {
            if let Ok(bytes) = reader.blob(rid, "record chunk").await
                && let Err(e) = format::parse_lines::<LedgerRecord>(rid, &bytes)
            {
                problems.push(VerifyFinding { object: rid.to_string(), problem: e.to_string() });
            }
        }
    }
    for b in &needed {
        report.blobs += 1;
        if !reader.knows(b) {
            problems.push(VerifyFinding { object: b.to_string(), problem: "no pack index of the backup lists this blob".into() });
        }
    }
    if read_data {
        // Read each pack once (the store re-hashes it), then check every blob in it.
        let mut by_pack: HashMap<ContentHash, Vec<(ContentHash, format::BlobLocation)>> = HashMap::new();
        for (b, loc) in reader.entries() {
            by_pack.entry(loc.pack).or_default().push((*b, *loc));
        }
        let mut order: Vec<&ContentHash> = m.packs.iter().filter(|p| present.contains(*p)).collect();
        order.sort_unstable();
        for p in order {
            match store.get_object(p).await {
                Ok(bytes) => {
                    report.bytes_read += bytes.len() as u64;
                    on_progress(report.bytes_read, bytes.len() as u64);
                    for (b, loc) in by_pack.get(p).map(Vec::as_slice).unwrap_or_default() {
                        let slice = usize::try_from(loc.offset)
                            .ok()
                            .zip(usize::try_from(loc.offset + loc.len).ok())
                            .and_then(|(s, e)| bytes.get(s..e));
                        match slice {
                            Some(s) if ContentHash::of(s) == *b => {}
                            _ => problems.push(VerifyFinding {
                                object: p.to_string(),
                                problem: format!("blob {} in it does not match its hash", b.short()),
                            }),
                        }
                    }
                }
                Err(e) => problems.push(finding(p, BackupFailure::object(p, "pack", e))),
            }
        }
    }
    report.problems = problems;
    Ok(report)
}

fn finding(id: &ContentHash, e: BackupFailure) -> VerifyFinding {
    let object = match &e {
        BackupFailure::Corrupt { id, .. } | BackupFailure::Missing { id, .. } => id.to_string(),
        _ => id.to_string(),
    };
    VerifyFinding { object, problem: e.to_string() }
}

/// Maps a backup's time to its day, week or month.
type Bucket = fn(&colstore_domain::Timestamp) -> i64;

fn day_of(t: &colstore_domain::Timestamp) -> i64 {
    t.as_millis().div_euclid(86_400_000)
}

/// ISO weeks start on Monday; 1970-01-01 was a Thursday.
fn week_of(t: &colstore_domain::Timestamp) -> i64 {
    (day_of(t) + 3).div_euclid(7)
}

fn month_of(t: &colstore_domain::Timestamp) -> i64 {
    let (y, m, _) = civil_from_days(day_of(t));
    y * 12 + i64::from(m)
}

/// Which backups `prune` keeps (restic's policy): the last N, and the newest of each of the last N days, weeks, months.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct KeepPolicy {
    /// The newest N.
    pub last: Option<u32>,
    /// The newest of each of the last N days that have one.
    pub daily: Option<u32>,
    /// Of each of the last N ISO weeks.
    pub weekly: Option<u32>,
    /// Of each of the last N months.
    pub monthly: Option<u32>,
}

impl KeepPolicy {
    fn is_empty(&self) -> bool {
        self.last.is_none() && self.daily.is_none() && self.weekly.is_none() && self.monthly.is_none()
    }

    /// The ids to keep among `backups` (oldest first).
    fn keep(&self, backups: &[(BackupId, colstore_domain::Timestamp)]) -> BTreeSet<BackupId> {
        let mut keep = BTreeSet::new();
        let newest_first: Vec<_> = backups.iter().rev().collect();
        if let Some(n) = self.last {
            keep.extend(newest_first.iter().take(n as usize).map(|(id, _)| id.clone()));
        }
        let buckets: [(Option<u32>, Bucket); 3] = [(self.daily, day_of), (self.weekly, week_of), (self.monthly, month_of)];
        for (n, bucket) in buckets {
            let Some(n) = n else { continue };
            let mut seen = HashSet::new();
            for (id, t) in &newest_first {
                if seen.len() >= n as usize {
                    break;
                }
                if seen.insert(bucket(t)) {
                    keep.insert(id.clone());
                }
            }
        }
        keep
    }
}

/// What a prune (or delete) removed, or with `dry_run` would remove.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PruneReport {
    /// Backups kept.
    pub kept: Vec<String>,
    /// Backups removed.
    pub removed: Vec<String>,
    /// Objects removed (no kept backup needs them).
    pub objects_removed: u64,
    /// Their bytes at rest.
    pub bytes_removed: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Removes the backups `policy` does not keep, then every object no remaining backup needs.
///
/// # Errors
/// An empty policy, a lock held by a running backup or prune, or a repository failure.
pub async fn prune_backups(
    store: &dyn BackupStore,
    clock: &dyn Clock,
    owner: &LockOwner,
    policy: KeepPolicy,
    dry_run: bool,
) -> Result<PruneReport, BackupFailure> {
    if policy.is_empty() {
        return Err(BackupFailure::Invalid("a prune needs a policy: --keep-last, --keep-daily, --keep-weekly or --keep-monthly".into()));
    }
    let infos = store.list_manifests().await.map_err(BackupFailure::Store)?;
    let mut dated = Vec::new();
    for info in &infos {
        let t = match read_manifest(store, &info.id).await {
            Ok(m) => m.created_at,
            Err(_) => info.written_at,
        };
        dated.push((info.id.clone(), t));
    }
    dated.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let keep = policy.keep(&dated);
    let remove: Vec<BackupId> = dated.iter().map(|(id, _)| id.clone()).filter(|id| !keep.contains(id)).collect();
    remove_and_collect(store, clock, owner, &remove, dry_run).await
}

/// Removes one backup, then every object no remaining backup needs.
///
/// # Errors
/// `NotFound`, a lock held by a running backup or prune, or a repository failure.
pub async fn delete_backup(
    store: &dyn BackupStore,
    clock: &dyn Clock,
    owner: &LockOwner,
    id: &BackupId,
    dry_run: bool,
) -> Result<PruneReport, BackupFailure> {
    store.get_manifest(id).await.map_err(|e| match e {
        colstore_domain::ports::BackupError::NotFound(_) => BackupFailure::NotFound(id.clone()),
        other => BackupFailure::Store(other),
    })?;
    remove_and_collect(store, clock, owner, std::slice::from_ref(id), dry_run).await
}

async fn remove_and_collect(
    store: &dyn BackupStore,
    clock: &dyn Clock,
    owner: &LockOwner,
    remove: &[BackupId],
    dry_run: bool,
) -> Result<PruneReport, BackupFailure> {
    let lock = if dry_run { None } else { Some(HeldLock::take(store, clock, owner, LockKind::Prune).await?) };
    let outcome = async {
        let all = store.list_manifests().await.map_err(BackupFailure::Store)?;
        let mut report = PruneReport { dry_run, ..PruneReport::default() };
        // What the kept backups need. A manifest that cannot be read keeps everything (never delete blindly).
        let mut needed: HashSet<ContentHash> = HashSet::new();
        for info in all.iter().filter(|i| !remove.contains(&i.id)) {
            report.kept.push(info.id.to_string());
            let m = read_manifest(store, &info.id)
                .await
                .map_err(|e| BackupFailure::Invalid(format!("backup {} cannot be read ({e}); fix or delete it before pruning", info.id)))?;
            needed.extend(m.packs.iter().copied());
            needed.extend(m.indexes.iter().copied());
        }
        // Manifests first: from here on the removed backups no longer exist, whatever happens next.
        for id in remove {
            report.removed.push(id.to_string());
            if !dry_run {
                store.delete_manifest(id).await.map_err(BackupFailure::Store)?;
            }
        }
        let mut listing = store.list_objects().await.map_err(BackupFailure::Store)?;
        let mut garbage = Vec::new();
        while let Some(o) = listing.next().await {
            let o = o.map_err(BackupFailure::Store)?;
            if !needed.contains(&o.id) {
                garbage.push(o);
            }
        }
        drop(listing);
        for o in garbage {
            report.objects_removed += 1;
            report.bytes_removed += o.size;
            if !dry_run {
                store.delete_object(&o.id).await.map_err(BackupFailure::Store)?;
            }
        }
        Ok(report)
    }
    .await;
    if let Some(l) = lock {
        l.release(store).await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use colstore_domain::Timestamp;

    fn at(day: i64, hour: i64) -> Timestamp {
        Timestamp::from_millis((day * 24 + hour) * 3_600_000)
    }

    #[test]
    fn keep_policies_follow_restic() {
        let ids: Vec<(BackupId, Timestamp)> =
            (0..10).map(|i| (BackupId::parse(&format!("b{i:02}")).unwrap(), at(20_000 + i / 2, i % 2))).collect();
        let names = |k: BTreeSet<BackupId>| k.into_iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(names(KeepPolicy { last: Some(3), ..KeepPolicy::default() }.keep(&ids)), ["b07", "b08", "b09"]);
        // Two per day: the newest of each of the last 2 days.
        assert_eq!(names(KeepPolicy { daily: Some(2), ..KeepPolicy::default() }.keep(&ids)), ["b07", "b09"]);
        assert_eq!(names(KeepPolicy { last: Some(1), daily: Some(2), ..KeepPolicy::default() }.keep(&ids)), ["b07", "b09"]);
        assert_eq!(names(KeepPolicy { monthly: Some(5), ..KeepPolicy::default() }.keep(&ids)), ["b09"]);
    }
}
