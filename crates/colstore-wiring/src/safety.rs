//! Safety copies: a verified copy of the database taken before a destructive command.
//!
//! Until backups (PRODUCT §7) land, destructive commands (`col rm`, `col collection delete`) copy the database to
//! `.colstore/safety/<time>-<reason>.db` with `VACUUM INTO`, check the copy, and keep the newest
//! [`SAFETY_COPIES_KEPT`].

use std::path::PathBuf;

use crate::{Store, WiringError};

/// How many safety copies are kept; older ones are removed after a new one is verified.
pub const SAFETY_COPIES_KEPT: usize = 5;

impl Store {
    /// The folder holding safety copies.
    pub fn safety_dir(&self) -> PathBuf {
        self.dir().root().join("safety")
    }

    /// Takes a verified copy of the database before a destructive command and returns its path.
    ///
    /// # Errors
    /// [`WiringError::ReadOnly`] or [`WiringError::Io`] when the safety folder cannot be written;
    /// [`WiringError::Repo`] when the copy fails or does not check out (then nothing destructive may follow).
    pub async fn safety_copy(&self, reason: &str) -> Result<PathBuf, WiringError> {
        let dir = self.safety_dir();
        std::fs::create_dir_all(&dir).map_err(|e| WiringError::io(&dir, e))?;
        let stamp: String = self.clock().now().to_string().chars().filter(char::is_ascii_alphanumeric).collect();
        let reason: String = reason.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(60).collect();
        let dest = dir.join(format!("{stamp}-{}-{reason}.db", std::process::id()));
        self.sqlite().copy_to(&dest).await?;
        prune(&dir);
        tracing::info!(path = %dest.display(), "took a safety copy of the database");
        Ok(dest)
    }
}

/// Keeps the newest copies (names start with a sortable timestamp).
fn prune(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut copies: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "db")).collect();
    copies.sort();
    let excess = copies.len().saturating_sub(SAFETY_COPIES_KEPT);
    for old in &copies[..excess] {
        let _ = std::fs::remove_file(old);
    }
}
