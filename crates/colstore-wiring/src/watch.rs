//! Change signals for `col watch`: the filesystem adapter's folder watcher behind a plain stream.

use std::time::Duration;

use colstore_domain::CollectionName;
use futures::stream::BoxStream;

use crate::{Store, WiringError};

/// How long the fallback polling waits between scans when notifications are unavailable.
const FALLBACK_POLL: Duration = Duration::from_secs(2);

/// A stream with one `()` per change under the watched folders, and how the changes are found.
pub struct ChangeSignals {
    /// The signals; the stream ends when the watcher stops.
    pub stream: BoxStream<'static, ()>,
    /// For humans: "file-system notifications" or "polling every 2.0 s".
    pub method: String,
}

impl std::fmt::Debug for ChangeSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeSignals").field("method", &self.method).finish_non_exhaustive()
    }
}

impl Store {
    /// Watches the folders of `collections` (filesystem mode), creating missing ones. `poll` forces polling at that
    /// interval; otherwise notifications are used, falling back to polling when they cannot be set up.
    ///
    /// # Errors
    /// [`WiringError::Io`] when a folder can be neither created nor watched; [`WiringError::NotYetAvailable`] in
    /// sqlite mode.
    pub async fn watch_changes(&self, collections: &[CollectionName], poll: Option<Duration>) -> Result<ChangeSignals, WiringError> {
        let Some(files) = self.files() else { return Err(WiringError::NotYetAvailable("watching a sqlite-mode store")) };
        let mut folders = Vec::with_capacity(collections.len());
        for c in collections {
            let folder = self.docs_dir().join(c.as_str());
            files
                .create_root(c)
                .await
                .map_err(|e| WiringError::Io { path: folder.clone(), source: std::io::Error::other(e.to_string()) })?;
            folders.push(folder);
        }
        let watcher = colstore_fs::watch::FolderWatcher::start(&folders, poll, FALLBACK_POLL)
            .map_err(|source| WiringError::Io { path: self.docs_dir(), source })?;
        let method = match watcher.method() {
            colstore_fs::watch::WatchMethod::Notify => "file-system notifications".to_owned(),
            colstore_fs::watch::WatchMethod::Poll(d) => format!("polling every {:.1} s", d.as_secs_f64()),
        };
        Ok(ChangeSignals { stream: Box::pin(watcher.into_stream()), method })
    }
}
