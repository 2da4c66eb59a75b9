//! `col backup list | show | verify | delete | prune`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use colstore_domain::ports::{BackupId, BackupStore, Clock, LockKind};
use colstore_domain::{CollectionName, ContentHash, StoreId};
use futures::StreamExt;
use serde::Serialize;

use super::format::{self, DocRecord, LedgerRecord, Manifest};
use super::pack::KnownBlobs;
use super::{BackupFailure, HeldLock, LockOwner, civil_from_days, read_manifest};

/// One backup in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    /// Its id.
    pub id: String,
    /// When it was taken (ms since the epoch).
    pub created_at: colstore_domain::Timestamp,
    /// Its collections (by name).
    pub collections: Vec<CollectionName>,
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
    /// The store it was taken from; `None` for a manifest that does not say (an unknown store) or cannot be read.
    pub store_id: Option<StoreId>,
    /// Where that store was, when the manifest says.
    pub store_path: Option<String>,
    /// Why it cannot be read, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BackupSummary {
    fn of(m: &Manifest) -> Self {
        Self {
            id: m.id.to_string(),
            created_at: m.created_at,
            collections: m.collections.iter().map(|c| c.name.clone()).collect(),
            schema_only: m.scope.schema_only,
            tags: m.tags.clone(),
            documents: m.stats.documents,
            bytes: m.stats.logical_bytes,
            new_bytes: m.stats.new_object_bytes,
            store_id: m.store_id,
            store_path: m.store_path.clone(),
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
                store_id: None,
                store_path: None,
                error: Some(e.to_string()),
            }),
        }
    }
    // Ids sort by second; within a second, by the snapshot's millisecond.
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// What `latest` means (as in `col restore latest`): the newest readable backup of `store`, never another store's
/// (restoring another store's backup takes its id). Without a store (a command run outside any store, e.g. with
/// `--repo`), the newest readable backup when the repository holds backups of one store only. Backups whose manifest
/// names no store are never `latest`.
///
/// `list` is oldest first, as [`list_backups`] returns it.
///
/// # Errors
/// [`BackupFailure::NoLatest`] saying why no backup qualifies.
pub fn latest_backup(list: &[BackupSummary], store: Option<StoreId>) -> Result<&BackupSummary, BackupFailure> {
    let readable = || list.iter().rev().filter(|b| b.error.is_none());
    if readable().next().is_none() {
        return Err(BackupFailure::NoLatest("the backup repository holds no backups".into()));
    }
    let mut stores: Vec<StoreId> = Vec::new();
    for id in readable().filter_map(|b| b.store_id) {
        if !stores.contains(&id) {
            stores.push(id);
        }
    }
    match store {
        Some(this) => readable().find(|b| b.store_id == Some(this)).ok_or_else(|| {
            let others = readable().count();
            BackupFailure::NoLatest(format!(
                "the backup repository holds no backups of this store (store {this}); its {others} backup(s) are of other or unknown stores"
            ))
        }),
        None if stores.len() == 1 => readable().find(|b| b.store_id == Some(stores[0])).ok_or_else(|| unreachable!("a store was seen")),
        None if stores.is_empty() => {
            Err(BackupFailure::NoLatest("the backup repository holds only backups that do not name their store".into()))
        }
        None => Err(BackupFailure::NoLatest(format!(
            "the backup repository holds backups of {} stores, so `latest` does not say which",
            stores.len()
        ))),
    }
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
    /// Bytes of packs read: every pack with `read_data`, else only those holding record chunks.
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
            Ok(k) => known.merge(k),
            Err(e) => problems.push(VerifyFinding { object: o.to_string(), problem: e.to_string() }),
        }
    }
    let packs: HashSet<ContentHash> = m.packs.iter().copied().collect();
    let index: HashMap<ContentHash, format::BlobLocation> = known.locations().filter(|(_, loc)| packs.contains(&loc.pack)).collect();
    drop(known);

    // The record chunks, which name every other blob; those no index lists cannot be read.
    let mut needed: BTreeSet<ContentHash> = BTreeSet::new();
    let mut records: HashMap<ContentHash, RecordKind> = HashMap::new();
    for c in &m.collections {
        records.extend(c.document_records.iter().map(|r| (*r, RecordKind::Documents)));
        records.extend(c.ledger_records.iter().map(|r| (*r, RecordKind::Ledger)));
    }
    // Per pack, the blobs to check: with `read_data` every blob, else only the record chunks.
    let mut by_pack: HashMap<ContentHash, Vec<BlobToCheck>> = HashMap::new();
    for (b, loc) in &index {
        let kind = records.get(b).copied();
        if read_data || kind.is_some() {
            by_pack.entry(loc.pack).or_default().push((*b, *loc, kind));
        }
    }
    let mut order: Vec<(ContentHash, Vec<BlobToCheck>)> = by_pack.into_iter().filter(|(p, _)| present.contains(p)).collect();
    if read_data {
        // A pack no index lists a blob of is still read and re-hashed.
        let listed: HashSet<ContentHash> = order.iter().map(|(p, _)| *p).collect();
        order.extend(m.packs.iter().filter(|p| present.contains(*p) && !listed.contains(*p)).map(|p| (*p, Vec::new())));
    }
    order.sort_unstable_by_key(|(p, _)| *p);
    let mut record_ids: Vec<ContentHash> = records.keys().copied().collect();
    record_ids.sort_unstable();
    for rid in &record_ids {
        needed.insert(*rid);
        match index.get(rid) {
            None => problems.push(VerifyFinding { object: rid.to_string(), problem: "the record chunk is missing".into() }),
            Some(loc) if !present.contains(&loc.pack) => problems.push(VerifyFinding {
                object: rid.to_string(),
                problem: format!("the record chunk cannot be read: its pack {} is missing", loc.pack.short()),
            }),
            Some(_) => {}
        }
    }

    // Each pack read once (the store re-hashes it), two at a time, its blobs checked and its record chunks parsed on
    // a blocking thread.
    let mut checked = futures::stream::iter(order)
        .map(|(pack, blobs)| {
            let store = Arc::clone(&store);
            async move {
                let bytes = match store.get_object(&pack).await {
                    Ok(b) => b,
                    Err(e) => return (pack, Err(finding(&pack, BackupFailure::object(&pack, "pack", e))), 0),
                };
                let len = bytes.len() as u64;
                let outcome = tokio::task::spawn_blocking(move || check_pack(&pack, &bytes, &blobs))
                    .await
                    .map_err(|e| VerifyFinding { object: pack.to_string(), problem: format!("checking the pack failed: {e}") });
                (pack, outcome, len)
            }
        })
        .buffered(2);
    while let Some((pack, outcome, len)) = checked.next().await {
        report.bytes_read += len;
        on_progress(report.bytes_read, len);
        match outcome {
            Ok(found) => {
                report.documents += found.documents;
                needed.extend(found.needed);
                problems.extend(found.problems);
            }
            Err(f) => {
                problems.push(f);
                for rid in record_ids.iter().filter(|r| index.get(*r).is_some_and(|l| l.pack == pack)) {
                    problems.push(VerifyFinding {
                        object: rid.to_string(),
                        problem: format!("the record chunk cannot be read: its pack {} is damaged", pack.short()),
                    });
                }
            }
        }
    }
    drop(checked);
    for b in &needed {
        report.blobs += 1;
        if !index.contains_key(b) {
            problems.push(VerifyFinding { object: b.to_string(), problem: "no pack index of the backup lists this blob".into() });
        }
    }
    report.problems = problems;
    Ok(report)
}

/// What a record chunk lists.
#[derive(Debug, Clone, Copy)]
enum RecordKind {
    Documents,
    Ledger,
}

/// A blob of a pack to check: its id, where it is, and what it lists when it is a record chunk.
type BlobToCheck = (ContentHash, format::BlobLocation, Option<RecordKind>);

/// What checking one pack found.
#[derive(Default)]
struct PackFindings {
    documents: u64,
    needed: Vec<ContentHash>,
    problems: Vec<VerifyFinding>,
}

/// Checks the given blobs of a pack against their hashes and parses its record chunks.
fn check_pack(pack: &ContentHash, bytes: &[u8], blobs: &[BlobToCheck]) -> PackFindings {
    let mut out = PackFindings::default();
    for (b, loc, kind) in blobs {
        let slice = usize::try_from(loc.offset).ok().zip(usize::try_from(loc.offset + loc.len).ok()).and_then(|(s, e)| bytes.get(s..e));
        let Some(slice) = slice.filter(|s| ContentHash::of(s) == *b) else {
            out.problems
                .push(VerifyFinding { object: pack.to_string(), problem: format!("blob {} in it does not match its hash", b.short()) });
            continue;
        };
        let parsed = match kind {
            None => Ok(()),
            Some(RecordKind::Documents) => format::parse_lines::<DocRecord>(b, slice).map(|records| {
                for r in records {
                    out.documents += 1;
                    if r.parts.is_empty() {
                        out.needed.push(r.hash);
                    }
                    out.needed.extend(r.parts);
                    out.needed.extend(r.vectors);
                }
            }),
            Some(RecordKind::Ledger) => format::parse_lines::<LedgerRecord>(b, slice).map(drop),
        };
        if let Err(e) = parsed {
            out.problems.push(VerifyFinding { object: b.to_string(), problem: e.to_string() });
        }
    }
    out
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

/// A backup and its time.
type Dated = (BackupId, colstore_domain::Timestamp);

/// Removes the backups `policy` does not keep, then every object no remaining backup needs.
///
/// The policy applies per store: the backups of each store (and those naming no store or unreadable, as one more
/// group) are kept or removed among themselves, so a store's backups never count against another's. With `only`,
/// just that store's backups are pruned and every other backup is kept.
///
/// # Errors
/// An empty policy, a lock held by a running backup or prune, or a repository failure.
pub async fn prune_backups(
    store: &dyn BackupStore,
    clock: &dyn Clock,
    owner: &LockOwner,
    policy: KeepPolicy,
    only: Option<StoreId>,
    dry_run: bool,
) -> Result<PruneReport, BackupFailure> {
    if policy.is_empty() {
        return Err(BackupFailure::Invalid("a prune needs a policy: --keep-last, --keep-daily, --keep-weekly or --keep-monthly".into()));
    }
    let infos = store.list_manifests().await.map_err(BackupFailure::Store)?;
    let mut groups: Vec<(Option<StoreId>, Vec<Dated>)> = Vec::new();
    for info in &infos {
        let (t, of) = match read_manifest(store, &info.id).await {
            Ok(m) => (m.created_at, m.store_id),
            Err(_) => (info.written_at, None),
        };
        if only.is_some() && of != only {
            continue;
        }
        match groups.iter_mut().find(|(s, _)| *s == of) {
            Some((_, g)) => g.push((info.id.clone(), t)),
            None => groups.push((of, vec![(info.id.clone(), t)])),
        }
    }
    let mut remove: Vec<BackupId> = Vec::new();
    for (_, mut dated) in groups {
        dated.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let keep = policy.keep(&dated);
        remove.extend(dated.iter().map(|(id, _)| id.clone()).filter(|id| !keep.contains(id)));
    }
    remove.sort();
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
    if lock.is_some() {
        crate::commit_log::began("prune", None);
    }
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
                crate::commit_log::durable_step("prune", &format!("removed {id}"));
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

/// What [`backup_and_rotate`] did.
#[derive(Debug)]
pub struct RotatedBackup {
    /// The backup.
    pub report: super::BackupReport,
    /// The rotation after it: `None` for a dry run; an error does not undo the backup, which is complete.
    pub rotation: Option<Result<PruneReport, BackupFailure>>,
}

/// `col backup`: a backup of the store, then its rotation: this store's backups beyond the newest `keep_last` are
/// pruned, never another store's. A failed rotation is reported with the (complete) backup, not as a failure.
///
/// # Errors
/// As [`create_backup`](super::create_backup).
pub async fn backup_and_rotate(
    repo: &dyn colstore_domain::ports::CollectionRepo,
    store: std::sync::Arc<dyn BackupStore>,
    clock: &dyn Clock,
    owner: &LockOwner,
    opts: &super::BackupOptions,
    keep_last: u32,
    on_event: &(dyn Fn(super::BackupEvent) + Sync),
) -> Result<RotatedBackup, BackupFailure> {
    let report = super::create_backup(repo, std::sync::Arc::clone(&store), clock, owner, opts, on_event).await?;
    let rotation = if opts.dry_run {
        None
    } else {
        let policy = KeepPolicy { last: Some(keep_last), ..KeepPolicy::default() };
        Some(prune_backups(&*store, clock, owner, policy, Some(opts.store_id), false).await)
    };
    Ok(RotatedBackup { report, rotation })
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
