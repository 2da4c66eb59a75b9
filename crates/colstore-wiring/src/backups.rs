//! The backup repository a store uses (PRODUCT §7), the store's identity in backups, and the identity of this
//! process in repository locks.
//!
//! Reading a repository ([`RepoAccess::Read`]: list, show, verify, restore, prune, delete) never creates it and never
//! needs the store's database: [`StoreBackups::find`] reads only `config.toml`, so a store whose database is damaged
//! or missing can still be restored. Only writing a backup ([`RepoAccess::Write`]) creates a missing folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use colstore_domain::StoreId;
use colstore_domain::ports::BackupStore;
use colstore_objstore::{ObjectBackupStore, OpenError};

use crate::{Store, StoreConfig, StoreDir, WiringError};

/// Whether a repository is opened to write a backup (a missing `file://` folder is created) or only to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoAccess {
    /// List, show, verify, restore, prune, delete: the repository must exist.
    Read,
    /// Take a backup: a missing folder is created.
    Write,
}

/// Who a store is in its backups: the id its backups carry, and where it is (for display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreIdentity {
    /// The store's id (`store_id` in `config.toml`, written by `col init`).
    pub id: StoreId,
    /// The directory holding `.colstore` (the project), as shown to users.
    pub path: PathBuf,
}

/// The identity of the store in `dir` with `config`. The one place that says which id a store's backups carry, so a
/// store id kept elsewhere later (e.g. also in the database) changes only this function.
pub fn store_identity(dir: &StoreDir, config: &StoreConfig) -> StoreIdentity {
    StoreIdentity { id: config.store_id, path: dir.parent().unwrap_or(dir.root()).to_owned() }
}

/// A store's backup side, found from `config.toml` alone (the database is never opened).
#[derive(Clone)]
pub struct StoreBackups {
    /// The store.
    pub dir: StoreDir,
    /// Its effective configuration (file plus environment).
    pub config: StoreConfig,
    /// Its identity in backups.
    pub identity: StoreIdentity,
}

impl StoreBackups {
    /// Reads the store's `config.toml` (with the environment overrides of `env`), without opening its database.
    ///
    /// # Errors
    /// [`WiringError::Config`] or [`WiringError::Env`].
    pub fn find(dir: StoreDir, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, WiringError> {
        let config = StoreConfig::load(&dir.config_path())?.effective(env)?;
        let identity = store_identity(&dir, &config);
        Ok(Self { dir, config, identity })
    }

    /// The repository at `url`, or when `None`, the configured one (`[backup] repository`).
    ///
    /// # Errors
    /// As [`open_repository`].
    pub fn repository(&self, url: Option<&str>, access: RepoAccess) -> Result<Arc<dyn BackupStore>, WiringError> {
        open_repository(self.dir.root(), url.unwrap_or(&self.config.backup.repository), access)
    }
}

impl Store {
    /// The backup repository at `url`, or when `None`, the configured one (`[backup] repository`, default
    /// `file://backups`, i.e. `.colstore/backups/`), opened to write a backup (a missing folder is created). A
    /// relative `file://DIR` is relative to the `.colstore` directory.
    ///
    /// # Errors
    /// [`WiringError::BackupRepository`] for a URL that is not supported or a folder that cannot be created.
    pub fn backup_store(&self, url: Option<&str>) -> Result<Arc<dyn BackupStore>, WiringError> {
        let url = url.unwrap_or(&self.config().backup.repository);
        open_repository(self.dir().root(), url, RepoAccess::Write)
    }

    /// This store's identity in backups.
    pub fn identity(&self) -> StoreIdentity {
        store_identity(self.dir(), self.config())
    }

    /// The database's schema version (recorded in backup manifests).
    pub async fn schema_version(&self) -> i64 {
        self.sqlite().schema_version().await.unwrap_or(0)
    }
}

/// Opens a backup repository URL; relative `file://` URLs are resolved against `base`. With [`RepoAccess::Read`] a
/// missing `file://` folder is an error and is not created.
///
/// # Errors
/// [`WiringError::BackupRepository`]; [`WiringError::BackupRepositoryMissing`] when reading a folder that does not
/// exist.
pub fn open_repository(base: &Path, url: &str, access: RepoAccess) -> Result<Arc<dyn BackupStore>, WiringError> {
    let err = |message: String| WiringError::BackupRepository { url: url.to_owned(), message };
    let store = match (url.strip_prefix("file://"), access) {
        (Some(rest), _) if !rest.starts_with('/') => {
            if rest.is_empty() {
                return Err(err("the folder is missing".into()));
            }
            match access {
                RepoAccess::Write => ObjectBackupStore::open_dir(&base.join(rest)),
                RepoAccess::Read => ObjectBackupStore::open_dir_existing(&base.join(rest)),
            }
        }
        (_, RepoAccess::Write) => ObjectBackupStore::open(url),
        (_, RepoAccess::Read) => ObjectBackupStore::open_existing(url),
    }
    .map_err(|e| match e {
        OpenError::NotFound { path } => WiringError::BackupRepositoryMissing { url: url.to_owned(), path },
        e => err(e.to_string()),
    })?;
    Ok(Arc::new(store))
}

/// This process as a repository lock holder: `host:pid`.
pub fn lock_holder() -> String {
    format!("{}:{}", crate::lock::host_name(), std::process::id())
}

/// Whether the process holding a repository lock (`host:pid`) is certainly gone: same host, no such process.
pub fn lock_holder_is_dead(holder: &str) -> bool {
    let Some((host, pid)) = holder.rsplit_once(':') else { return false };
    let proc_dir = Path::new("/proc");
    if host != crate::lock::host_name() || !proc_dir.join("self").exists() || pid.parse::<u32>().is_err() {
        return false;
    }
    !proc_dir.join(pid).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_bogus_pid_is_dead() {
        assert!(!lock_holder_is_dead(&lock_holder()));
        if Path::new("/proc/self").exists() {
            assert!(lock_holder_is_dead(&format!("{}:4294967", crate::lock::host_name())));
        }
        assert!(!lock_holder_is_dead("other-host:1"));
        assert!(!lock_holder_is_dead("garbage"));
    }

    #[test]
    fn relative_file_urls_resolve_against_the_store() {
        let t = tempfile::tempdir().unwrap();
        let e = open_repository(t.path(), "file://backups", RepoAccess::Read).err().unwrap();
        assert!(matches!(e, WiringError::BackupRepositoryMissing { .. }), "{e}");
        assert!(!t.path().join("backups").exists(), "reading never creates the folder");
        open_repository(t.path(), "file://backups", RepoAccess::Write).unwrap();
        assert!(t.path().join("backups").is_dir());
        open_repository(t.path(), "file://backups", RepoAccess::Read).unwrap();
        let e = open_repository(t.path(), "ftp://x", RepoAccess::Write).err().unwrap();
        assert!(e.to_string().contains("ftp://x"), "{e}");
        assert!(matches!(e, WiringError::BackupRepository { .. }), "{e:?}");
    }

    #[test]
    fn reading_a_missing_absolute_folder_names_it_and_creates_nothing() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("nonexistent");
        let url = format!("file://{}", missing.display());
        let e = open_repository(t.path(), &url, RepoAccess::Read).err().unwrap();
        assert_eq!(e.to_string(), format!("backup repository not found: {}", missing.display()));
        assert!(matches!(e, WiringError::BackupRepositoryMissing { .. }), "{e:?}");
        assert!(!missing.exists());
    }
}
