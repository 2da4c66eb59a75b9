//! [`FolderWatcher`]: "something changed under these folders" signals for `col watch`, from file-system
//! notifications (inotify on Linux) or, when those are unavailable (network file systems, watch limits) or asked
//! for, from polling.

use std::path::{Path, PathBuf};
use std::time::Duration;

use colstore_domain::ports::STAGING_PREFIX;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// How a [`FolderWatcher`] learns about changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMethod {
    /// File-system notifications.
    Notify,
    /// A signal every interval; the reconcile that follows is what re-reads the folders (stat only), so nothing
    /// is missed between a baseline and the first poll.
    Poll(Duration),
}

/// Watches folders recursively and sends one `()` per relevant change (staging files and reads are ignored).
pub struct FolderWatcher {
    /// The notification watcher; `None` when polling (a timer thread sends the signals and stops with the receiver).
    _watcher: Option<Box<dyn Watcher + Send>>,
    method: WatchMethod,
    rx: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl std::fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatcher").field("method", &self.method).finish_non_exhaustive()
    }
}

impl FolderWatcher {
    /// Starts watching `folders` (each must exist). With `poll: None` it uses notifications and falls back to polling
    /// every `fallback_poll` when notifications cannot be set up; with `poll: Some(d)` it polls every `d`.
    ///
    /// # Errors
    /// When neither notifications nor polling can watch a folder (for example, it does not exist).
    pub fn start(folders: &[PathBuf], poll: Option<Duration>, fallback_poll: Duration) -> std::io::Result<Self> {
        if poll.is_none() {
            match Self::with_notify(folders) {
                Ok(w) => return Ok(w),
                Err(e) => tracing::warn!(error = %e, "file-system notifications are unavailable; polling instead"),
            }
        }
        Self::with_poll(folders, poll.unwrap_or(fallback_poll))
    }

    fn with_notify(folders: &[PathBuf]) -> std::io::Result<Self> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut w = RecommendedWatcher::new(handler(tx), notify::Config::default()).map_err(to_io)?;
        for f in folders {
            w.watch(f, RecursiveMode::Recursive).map_err(|e| with_path(to_io(e), f))?;
        }
        Ok(Self { _watcher: Some(Box::new(w)), method: WatchMethod::Notify, rx })
    }

    fn with_poll(folders: &[PathBuf], every: Duration) -> std::io::Result<Self> {
        for f in folders {
            if !f.is_dir() {
                return Err(with_path(std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"), f));
            }
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("colstore-poll".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| std::io::Error::other(format!("cannot start the polling thread: {e}")))?;
        Ok(Self { _watcher: None, method: WatchMethod::Poll(every), rx })
    }

    /// How this watcher learns about changes.
    pub fn method(&self) -> WatchMethod {
        self.method
    }

    /// Waits for the next change; `None` when the watcher stopped.
    pub async fn changed(&mut self) -> Option<()> {
        self.rx.recv().await
    }

    /// The changes as a stream (ends when the watcher stops).
    pub fn into_stream(self) -> impl futures::Stream<Item = ()> + Send + Unpin {
        let FolderWatcher { _watcher, mut rx, .. } = self;
        Box::pin(futures::stream::poll_fn(move |cx| {
            let _keep = &_watcher;
            rx.poll_recv(cx)
        }))
    }
}

fn handler(tx: tokio::sync::mpsc::UnboundedSender<()>) -> impl Fn(notify::Result<notify::Event>) + Send + 'static {
    move |event| match event {
        Ok(e) if relevant(&e) => {
            let _ = tx.send(());
        }
        Ok(_) => {}
        // An error (for example, the kernel's event queue overflowed) may hide changes: reconcile to be sure.
        Err(e) => {
            tracing::debug!(error = %e, "watch error");
            let _ = tx.send(());
        }
    }
}

/// Whether an event may change what reconcile sees: not a read, and not our own staging files.
fn relevant(e: &notify::Event) -> bool {
    if matches!(e.kind, EventKind::Access(_)) {
        return false;
    }
    !e.paths.iter().all(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(STAGING_PREFIX)))
}

fn to_io(e: notify::Error) -> std::io::Error {
    match e.kind {
        notify::ErrorKind::Io(io) => io,
        notify::ErrorKind::PathNotFound => std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        other => std::io::Error::other(format!("{other:?}")),
    }
}

fn with_path(e: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot watch {}: {e}", path.display()))
}
