//! Backups (PRODUCT §7): verified, deduplicated snapshots of the store in a [`BackupStore`], and the way back.
//!
//! - [`create_backup`] freezes the store ([`CollectionRepo::snapshot`]), writes every blob it lacks into packs,
//!   reads each new object back, and writes the manifest last (create-only). An interrupted backup leaves no manifest
//!   and so does not exist; its objects are garbage for the next prune.
//! - [`verify_backup`], [`list_backups`], [`show_backup`] read; [`prune_backups`] and [`delete_backup`] remove
//!   manifests first, then objects no remaining manifest needs.
//! - [`plan_restore`] / [`restore_backup`] compare a backup with a store and write it back verbatim
//!   ([`CollectionRepo::restore_documents`], [`SyncStore::restore_ledger`], the embedding cache).
//!
//! Concurrency: a backup holds a shared lock object in the repository and a prune an exclusive one, both written and
//! then checked against the others, so a prune never deletes an object a running backup relies on. Locks of a dead
//! process (on this host) or not refreshed for [`LOCK_STALE_AFTER_MS`] are ignored.
//!
//! [`CollectionRepo::snapshot`]: colstore_domain::ports::CollectionRepo::snapshot
//! [`CollectionRepo::restore_documents`]: colstore_domain::ports::CollectionRepo::restore_documents
//! [`SyncStore::restore_ledger`]: colstore_domain::ports::SyncStore::restore_ledger

pub(crate) mod create;
pub mod format;
mod maintain;
mod pack;
pub(crate) mod restore;
mod restore_run;

use std::sync::Arc;

use colstore_domain::ports::{BackupError, BackupId, BackupStore, Clock, LockKind, RepoError, RepoLock, SyncError};
use colstore_domain::{CollectionName, ContentHash, Timestamp};

pub use create::{BackupEvent, BackupOptions, BackupReport, create_backup};
pub use format::{BackupStats, Manifest, Scope};
pub use maintain::{
    BackupSummary, KeepPolicy, PruneReport, RotatedBackup, VerifyFinding, VerifyReport as BackupVerifyReport, backup_and_rotate,
    delete_backup, latest_backup, list_backups, prune_backups, show_backup, verify_backup,
};
pub use restore::{
    CollectionPlan, RestoreMode, RestoreOptions, RestorePlan, RestoreReport, plan_restore, plan_restore_into_empty, restore_backup,
};
pub use restore_run::{ReprojectFailure, Reprojected, RestoreOutcome, RestoreRunError, RestoreTarget, overwritten, run_restore};

/// A lock not refreshed for this long is stale.
pub const LOCK_STALE_AFTER_MS: i64 = 10 * 60 * 1000;
/// A running backup refreshes its lock this often.
const LOCK_REFRESH_MS: i64 = 60 * 1000;

/// Why a backup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupFailure {
    /// The backup repository failed.
    #[error("the backup repository failed: {0}")]
    Store(#[source] BackupError),
    /// The store failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The store's ledger or cache failed.
    #[error(transparent)]
    Ledger(#[from] SyncError),
    /// An object or blob the backup needs is missing.
    #[error("the {what} {id} is missing from the backup repository")]
    Missing {
        /// Which object or blob.
        id: ContentHash,
        /// What it is.
        what: String,
    },
    /// An object does not match its hash or does not parse.
    #[error("object {id} is corrupt: {detail}")]
    Corrupt {
        /// The object.
        id: ContentHash,
        /// What is wrong.
        detail: String,
    },
    /// What was written could not be read back identically.
    #[error("the backup could not be verified: object {id}: {detail}")]
    Unverified {
        /// The object.
        id: ContentHash,
        /// What is wrong.
        detail: String,
    },
    /// A manifest or object has the wrong format.
    #[error(transparent)]
    Format(#[from] format::FormatError),
    /// `latest` names no backup (none at all, none of this store, or several stores and no store to choose).
    #[error("{0}")]
    NoLatest(String),
    /// No backup with this id.
    #[error("there is no backup {0} in the repository")]
    NotFound(BackupId),
    /// A collection named in the scope does not exist in the store or the backup.
    #[error("collection {0} is not in the {1}")]
    NoSuchCollection(CollectionName, &'static str),
    /// Another process holds a conflicting lock.
    #[error("the backup repository is locked by {holder} ({kind}, refreshed {age_s} s ago)")]
    Locked {
        /// Who.
        holder: String,
        /// Backup or prune.
        kind: &'static str,
        /// Seconds since the lock was refreshed.
        age_s: i64,
    },
    /// The store's content does not match its recorded hash.
    #[error("document {collection}/{key} is corrupt in the store (its content does not match its hash)")]
    StoreCorrupt {
        /// The collection.
        collection: CollectionName,
        /// The key.
        key: String,
    },
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// A restore's result does not match the backup.
    #[error("the restore did not verify: {0}")]
    RestoreMismatch(String),
}

impl BackupFailure {
    pub(crate) fn object(id: &ContentHash, what: &str, e: BackupError) -> Self {
        pack::object_error(id, what, e)
    }
}

impl From<BackupError> for BackupFailure {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Corrupt { id, detail } => BackupFailure::Corrupt { id, detail },
            other => BackupFailure::Store(other),
        }
    }
}

/// Who takes repository locks, and how to tell a lock of a process that is gone.
#[derive(Clone)]
pub struct LockOwner {
    /// `host:pid`, shown to others.
    pub holder: String,
    /// True when the holder of a lock is known to be dead (e.g. same host, no such pid).
    pub is_dead: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl std::fmt::Debug for LockOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockOwner").field("holder", &self.holder).finish_non_exhaustive()
    }
}

/// A lock this process holds in the repository; released with [`HeldLock::release`] (a crash leaves it to go stale).
pub(crate) struct HeldLock {
    lock: RepoLock,
    last_refresh: Timestamp,
}

fn lock_kind_name(k: LockKind) -> &'static str {
    match k {
        LockKind::Backup => "backup",
        LockKind::Prune => "prune",
    }
}

impl HeldLock {
    /// Writes a lock of `kind`, then checks the others: a backup conflicts with a live prune, a prune with anything live.
    pub async fn take(store: &dyn BackupStore, clock: &dyn Clock, owner: &LockOwner, kind: LockKind) -> Result<Self, BackupFailure> {
        let now = clock.now();
        let id = format!("{}-{:016x}", lock_kind_name(kind), random_u64());
        let lock = RepoLock { id, kind, holder: owner.holder.clone(), refreshed_at: now };
        store.put_lock(&lock).await.map_err(BackupFailure::Store)?;
        let others = store.list_locks().await.map_err(BackupFailure::Store)?;
        for other in others.iter().filter(|o| o.id != lock.id) {
            let age = now.as_millis() - other.refreshed_at.as_millis();
            if age > LOCK_STALE_AFTER_MS || (owner.is_dead)(&other.holder) {
                continue;
            }
            if kind == LockKind::Prune || other.kind == LockKind::Prune {
                let _ = store.delete_lock(&lock.id).await;
                return Err(BackupFailure::Locked {
                    holder: other.holder.clone(),
                    kind: lock_kind_name(other.kind),
                    age_s: age.max(0) / 1000,
                });
            }
        }
        Ok(Self { lock, last_refresh: now })
    }

    /// Refreshes the lock when it is due.
    pub async fn refresh(&mut self, store: &dyn BackupStore, clock: &dyn Clock) -> Result<(), BackupFailure> {
        let now = clock.now();
        if now.as_millis() - self.last_refresh.as_millis() >= LOCK_REFRESH_MS {
            self.lock.refreshed_at = now;
            store.put_lock(&self.lock).await.map_err(BackupFailure::Store)?;
            self.last_refresh = now;
        }
        Ok(())
    }

    /// Removes the lock.
    pub async fn release(self, store: &dyn BackupStore) {
        let _ = store.delete_lock(&self.lock.id).await;
    }
}

/// A random u64 for ids, without a random-number crate.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

/// A new backup id for `now`: `YYYYMMDDTHHMMSSZ-xxxxxxxx`, sortable by time.
pub fn new_backup_id(now: Timestamp) -> BackupId {
    let secs = now.as_millis().div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let id = format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{:08x}", rem / 3600, rem % 3600 / 60, rem % 60, random_u64() as u32);
    BackupId::parse(&id).unwrap_or_else(|_| unreachable!("a generated id is valid"))
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Reads and parses one manifest.
pub(crate) async fn read_manifest(store: &dyn BackupStore, id: &BackupId) -> Result<Manifest, BackupFailure> {
    let bytes = store.get_manifest(id).await.map_err(|e| match e {
        BackupError::NotFound(_) => BackupFailure::NotFound(id.clone()),
        BackupError::TooLarge { size, limit, .. } => BackupFailure::Format(format::FormatError::Malformed(
            id.to_string(),
            format!(
                "it is {size} bytes, more than the limit of {} MiB; colstore never writes a manifest this large, so it is damaged or not colstore's",
                limit / (1024 * 1024)
            ),
        )),
        other => BackupFailure::Store(other),
    })?;
    Ok(Manifest::parse(id.as_str(), &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_parse() {
        let a = new_backup_id(Timestamp::from_millis(1_763_776_496_000));
        assert!(a.as_str().starts_with("20251122T015456Z-"), "{a}");
        let b = new_backup_id(Timestamp::from_millis(1_763_776_497_000));
        assert!(a < b);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
