//! Safety copies before destructive commands: the store's `SafetyNet` with a progress bar, and how a copy is reported.

use colstore_app::backup::BackupEvent;
use colstore_domain::ports::SafetyCopy;

use super::Ctx;

/// The progress bar of a safety backup, drawn once a backup starts (a sqlite-mode copy of the database draws none).
pub(crate) struct SafetyProgress {
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    hidden: bool,
}

impl SafetyProgress {
    pub(crate) fn new(ctx: &Ctx) -> Self {
        Self { bar: std::sync::Mutex::new(None), hidden: ctx.hide_progress }
    }

    /// Follows a safety backup's events.
    pub(crate) fn on_event(&self, e: BackupEvent) {
        let mut bar = self.bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match e {
            BackupEvent::Started { bytes, .. } => *bar = Some(crate::progress::bar(bytes, true, self.hidden, "safety backup")),
            BackupEvent::Document { bytes } => {
                if let Some(b) = bar.as_ref() {
                    b.inc(bytes);
                }
            }
            BackupEvent::ObjectWritten { .. } => {}
        }
    }

    /// Clears the bar, if one was drawn.
    pub(crate) fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            b.finish_and_clear();
        }
    }
}

/// Says that a safety backup was taken and how to undo with it (a copy of the database is reported by the command).
pub(crate) fn announce_safety(ctx: &Ctx, copy: &SafetyCopy) {
    if let SafetyCopy::Backup(id) = copy {
        // A closed stdout is noticed by the command's next line.
        let _ = ctx.out.line(format!("Took safety backup {id} (restore it with `col restore {id}`)."));
    }
}

/// The JSON fields of a safety copy: `safety_copy` (a copy of the database: its path) and `safety_backup` (its id).
pub(crate) fn safety_fields(copy: Option<&SafetyCopy>) -> (Option<&str>, Option<&str>) {
    match copy {
        Some(SafetyCopy::Database(path)) => (Some(path), None),
        Some(SafetyCopy::Backup(id)) => (None, Some(id)),
        None => (None, None),
    }
}

/// How a safety copy is named to the user: a backup by its id, a copy of the database by its path.
pub(crate) fn safety_label(copy: &SafetyCopy) -> &str {
    match copy {
        SafetyCopy::Backup(id) => id,
        SafetyCopy::Database(path) => path,
    }
}
