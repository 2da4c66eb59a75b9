//! The backup repository a store uses (PRODUCT §7) and the identity of this process in repository locks.

use std::path::Path;
use std::sync::Arc;

use colstore_domain::ports::BackupStore;
use colstore_objstore::ObjectBackupStore;

use crate::{Store, WiringError};

impl Store {
    /// The backup repository at `url`, or when `None`, the configured one (`[backup] repository`, default
    /// `file://backups`, i.e. `.colstore/backups/`). A relative `file://DIR` is relative to the `.colstore` directory.
    ///
    /// # Errors
    /// [`WiringError::BackupRepository`] for a URL that is not supported or a folder that cannot be created.
    pub fn backup_store(&self, url: Option<&str>) -> Result<Arc<dyn BackupStore>, WiringError> {
        let url = url.unwrap_or(&self.config().backup.repository);
        open_repository(self.dir().root(), url)
    }

    /// The database's schema version (recorded in backup manifests).
    pub async fn schema_version(&self) -> i64 {
        self.sqlite().schema_version().await.unwrap_or(0)
    }
}

/// Opens a backup repository URL; relative `file://` URLs are resolved against `base`.
///
/// # Errors
/// [`WiringError::BackupRepository`].
pub fn open_repository(base: &Path, url: &str) -> Result<Arc<dyn BackupStore>, WiringError> {
    let err = |message: String| WiringError::BackupRepository { url: url.to_owned(), message };
    let store = match url.strip_prefix("file://") {
        Some(rest) if !rest.starts_with('/') => {
            if rest.is_empty() {
                return Err(err("the folder is missing".into()));
            }
            ObjectBackupStore::open_dir(&base.join(rest))
        }
        _ => ObjectBackupStore::open(url),
    }
    .map_err(|e| err(e.to_string()))?;
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
        open_repository(t.path(), "file://backups").unwrap();
        assert!(t.path().join("backups").is_dir());
        let e = open_repository(t.path(), "ftp://x").err().unwrap();
        assert!(e.to_string().contains("ftp://x"), "{e}");
        assert!(e.hint().unwrap().contains("s3://"));
    }
}
