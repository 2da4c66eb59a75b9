//! The one place that turns errors into messages, hints and exit codes (PRODUCT §11).

use std::fmt;

use colstore_app::backup::{BackupFailure, RestoreRunError};
use colstore_app::{AddError, SyncFailure};
use colstore_domain::ValidationError;
use colstore_domain::ports::{RepoError, SafetyError};
use colstore_wiring::WiringError;

/// Exit codes.
pub mod exit {
    /// Something failed.
    pub const ERROR: i32 = 1;
    /// Verification found corruption or drift.
    pub const VERIFY: i32 = 3;
}

/// An error as the user sees it: what went wrong, how to fix it, and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub code: i32,
    /// Standard output was closed by its reader (`col ls | head`): the command stops, and exits 0 saying nothing, as
    /// `cat` and `git log` do. Kept through wrapping (`CliError { message, ..e }`), unlike a message would be.
    pub closed_output: bool,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, code: exit::ERROR, closed_output: false }
    }

    /// Standard output was closed by its reader.
    pub fn closed_output() -> Self {
        Self { closed_output: true, ..Self::new("standard output was closed") }
    }

    /// After a failure that followed a safety copy: the hint goes on to say where the copy is (`sentence` of its
    /// label); without a copy the error is unchanged.
    fn naming_safety(self, safety: Option<&colstore_domain::ports::SafetyCopy>, sentence: impl Fn(&str) -> String) -> Self {
        match safety {
            Some(copy) => {
                let before = self.hint.clone().unwrap_or_default();
                let after = sentence(crate::commands::safety::safety_label(copy));
                self.hint(format!("{before} {after}"))
            }
            None => self,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

impl From<ValidationError> for CliError {
    fn from(e: ValidationError) -> Self {
        let hint = match e.what {
            "collection name" => {
                Some("collection names use a-z, 0-9, '_' and '-', start with a letter or digit, and have at most 63 characters")
            }
            "document key" => Some("keys are relative paths like \"notes/a.md\": no leading '/', no '..' or '.' segments, no NUL"),
            "metadata" => Some("pass a JSON object, quoted for your shell: --meta '{\"lang\":\"en\",\"year\":2024}'"),
            "tag" => Some("tags are 1-64 characters without spaces or commas"),
            "filter" => Some(
                "quote the whole expression for the shell, e.g. --where 'lang=en and (tag:home or year>=2020)' or \
                 --where 'key:drafts/ and not author exists'; `col ls --help` lists the filter language",
            ),
            "time" => Some("examples: --since 2024-05-01, --since 2024-05-01T12:00:00Z, --since 7d"),
            _ => None,
        };
        let err = CliError::new(e.to_string());
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

pub fn repo_hint(e: &RepoError) -> Option<String> {
    Some(match e {
        RepoError::CollectionNotFound(c) => format!("create it with `col collection create {c}`, or see `col collection list`"),
        RepoError::CollectionExists(c) => format!("choose another name, or use the existing collection (`col collection show {c}`)"),
        RepoError::DocumentNotFound { collection, .. } => format!("list the collection's documents with `col ls {collection}`"),
        RepoError::DuplicateKey(_) => "give each document a distinct key".into(),
        RepoError::ContentRead { source, .. } if colstore_domain::ContentChanged::of(source).is_some() => {
            "run `col reconcile` to record the file as it is now, then try again".into()
        }
        RepoError::ContentRead { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "run `col reconcile` to record that the file is gone, then try again".into()
        }
        RepoError::ContentRead { .. } => "check that the file is readable and not being changed, then try again".into(),
        RepoError::Corrupt { .. } => "run `col verify` to find every damaged document, then restore them from a backup".into(),
        RepoError::ReadOnly(_) => {
            "check the permissions of the store directory and its files, and that the disk is mounted read-write".into()
        }
        RepoError::Busy(_) => "another process is using the store; wait for it to finish and try again".into(),
        _ => return None,
    })
}

impl From<RepoError> for CliError {
    fn from(e: RepoError) -> Self {
        let hint = repo_hint(&e);
        let mut err = CliError::new(e.to_string());
        err.hint = hint;
        err
    }
}

/// How to fix a problem in `config.toml`.
fn config_hint(fix: &colstore_wiring::ConfigFix) -> String {
    use colstore_wiring::ConfigFix as F;
    let within = |section: &Option<String>| section.as_ref().map_or_else(|| "at the top level".to_owned(), |s| format!("in [{s}]"));
    match fix {
        F::SaveAsUtf8 => "save the file as UTF-8".to_owned(),
        F::Syntax => "fix the TOML syntax there (strings need quotes, like mode = \"sqlite\")".to_owned(),
        F::UnknownKey { section, allowed } => {
            format!("remove the key or fix its spelling; the keys allowed {} are: {allowed}", within(section))
        }
        F::UnknownValue { choices } => match choices.rsplit_once(", ") {
            Some((head, last)) => format!("set it to {head} or {last}"),
            None => format!("set it to {choices}"),
        },
        F::StoreId => {
            "store_id is the UUID `col init` wrote; if it was edited by accident, restore it from a copy of config.toml".to_owned()
        }
        F::MissingKey { section } => {
            format!("add the key {}; `col init` in an empty directory shows a complete config.toml", within(section))
        }
        F::NewerColstore => "upgrade colstore to open this store".to_owned(),
        F::Dimension => "set dimension to the vector size of the embedder, between 1 and 65536 (the hash embedder uses 384)".to_owned(),
        F::Format => format!("this file should start with format = {}", colstore_wiring::CONFIG_FORMAT),
        F::EmbedderModel => "add `model = \"text-embedding-3-small\"` (or your server's model name) under [embedder]".to_owned(),
        F::VectorsUrl { backend } => format!(
            "add `url = \"http://HOST:{}\"` under [vectors], or set COLSTORE_VECTOR_URL (or create the store with `col init --vectors {backend}://HOST`)",
            backend.default_port().unwrap_or(80)
        ),
        _ => "edit the file and fix the value at that position".to_owned(),
    }
}

/// How to get past a refused `col migrate`.
fn migration_hint(refused: &colstore_wiring::MigrationRefused) -> String {
    use colstore_wiring::MigrationRefused as R;
    match refused {
        R::AlreadyInMode(_) => "nothing to do".to_owned(),
        R::ModeFromEnv(var) => format!("unset {var} and run `col migrate` again; afterwards config.toml holds the mode"),
        R::DocsDirToSqlite => "drop --docs-dir".to_owned(),
        R::FolderUnchecked { .. } => "fix the folder, then try again".to_owned(),
        R::Unreconciled { collection, .. } => format!("run `col reconcile {collection}` (or `col sync`) first, then migrate"),
        _ => "see `col migrate --help`".to_owned(),
    }
}

/// How to fix a [`WiringError`], when there is something to say (the messages say what and where).
fn wiring_hint(e: &WiringError) -> Option<String> {
    use WiringError as W;
    Some(match e {
        W::NoStore { .. } => "run `col init` here, or pass --store DIR / set COLSTORE_DIR".to_owned(),
        W::Migration(refused) => migration_hint(refused),
        W::NotAStore { source_of_path: "COLSTORE_DIR", .. } => {
            "point COLSTORE_DIR at a directory holding .colstore/ (or unset it), or run `col init` there".to_owned()
        }
        W::NotAStore { .. } => "pass --store a directory holding .colstore/, or run `col init` there first".to_owned(),
        W::AlreadyInitialised { .. } => "use the existing store, or run `col init` in another directory".to_owned(),
        W::NotEmpty { path } => {
            format!("move {} away (it may hold data) and run `col init` again, or choose another directory", path.display())
        }
        W::Config { fix: Some(fix), .. } => config_hint(fix),
        W::Config { path, .. } => format!("edit {} and fix the value at that position", path.display()),
        W::Env { var, .. } => format!("set {var} to one of the accepted values, or unset it to use the config file"),
        W::NotYetAvailable(_) => "use the defaults of `col init` for now".to_owned(),
        W::ReadOnly { path } => {
            format!("check the permissions of {} and that its file system is mounted read-write", path.display())
        }
        W::Busy { .. } => "wait for the other command to finish and try again; \
            a lock left by a process that died is released automatically"
            .to_owned(),
        W::EnvDisagrees { var, key: "storage.mode", env_value, .. } => format!(
            "unset {var}: environment variables choose the storage mode only at `col init`; \
            to convert this store, run `col migrate --to {}`",
            env_value.trim().to_lowercase()
        ),
        W::EnvDisagrees { var, key, .. } => format!(
            "unset {var}: environment variables choose the {} only at `col init`; \
            to move it, move the files and edit {key} in config.toml",
            if *key == "storage.metadata_db" { "database" } else { "documents folder" }
        ),
        W::DatabaseMissing { .. } => {
            "if metadata_db in config.toml points to the wrong place, fix it; otherwise restore the store from its \
            backup repository with `col restore latest`, or move .colstore away and start over with `col init`"
                .to_owned()
        }
        W::DatabaseUnusable { .. } | W::ForeignDatabase { .. } => {
            "restore the store from its backup repository with `col restore latest` (the damaged database is moved \
            aside, not deleted), or move .colstore away and start over with `col init`"
                .to_owned()
        }
        W::ConfigUnreadable { path, .. } => format!(
            "check that {} exists and that you may read it; a store without config.toml cannot be opened \
            (restore it from a copy, or move .colstore away and run `col init`)",
            path.display()
        ),
        W::Repo(RepoError::ReadOnly(_)) => "check the permissions of the store directory and its files".to_owned(),
        W::Repo(RepoError::Busy(_)) => "another process is writing to the store; try again when it has finished".to_owned(),
        W::BackupRepository { .. } => "use file:///absolute/path, file://DIR (relative to .colstore) or s3://bucket/prefix \
            (with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and, for other S3 servers, AWS_ENDPOINT_URL)"
            .to_owned(),
        W::BackupRepositoryMissing { url, .. } => format!(
            "check the repository URL {url} (--repo, [backup] repository in config.toml, COLSTORE_BACKUP_REPOSITORY) and \
             that its disk is mounted; reading a repository never creates it: if no backup was taken yet, take one with \
             `col backup`"
        ),
        W::Index(_) => "check [vectors] in .colstore/config.toml; for the embedded index, check .colstore/index/".to_owned(),
        W::Embedder(_) => "check [embedder] in .colstore/config.toml (kind, model, url, api_key_env)".to_owned(),
        W::Repo(_) | W::Io { .. } => return None,
        _ => return None,
    })
}

impl From<WiringError> for CliError {
    fn from(e: WiringError) -> Self {
        let hint = match &e {
            WiringError::Repo(r) => wiring_hint(&e).or_else(|| repo_hint(r)),
            _ => wiring_hint(&e),
        };
        let mut err = CliError::new(e.to_string());
        err.hint = hint;
        err
    }
}

impl From<AddError> for CliError {
    fn from(e: AddError) -> Self {
        match e {
            AddError::Repo(r) => r.into(),
            AddError::PathNotFound(p) => {
                CliError::new(format!("{} does not exist", p.display())).hint("check the path; it is relative to the working directory")
            }
            AddError::BadGlob { .. } => {
                CliError::new(e.to_string()).hint("globs look like '**/*.md' or 'drafts/**'; quote them for your shell")
            }
            AddError::BadPrefix(_) => CliError::new(e.to_string()).hint("use a relative path such as 'imported/'"),
            other => CliError::new(other.to_string()),
        }
    }
}

impl From<colstore_app::ReadError> for CliError {
    fn from(e: colstore_app::ReadError) -> Self {
        use colstore_app::ReadError as E;
        match e {
            E::Repo(r) => r.into(),
            E::Read { .. } => CliError::new(e.to_string()).hint("run `col verify` to check the store"),
            E::Corrupt { .. } => CliError::new(e.to_string()).hint("run `col verify` to find every damaged document"),
            E::Write(_) => CliError::new(format!("cannot write output: {e}")),
        }
    }
}

impl From<colstore_app::MigrationError> for CliError {
    fn from(e: colstore_app::MigrationError) -> Self {
        use colstore_app::{MigrationError, MigrationFailure as F};
        let (source, safety) = match e {
            MigrationError::Safety(e) => return e.into(),
            MigrationError::Failed { source, safety } => (source, safety),
        };
        let err = match source {
            F::Conversion(c) => match c.0.downcast::<WiringError>() {
                Ok(w) => CliError::from(*w),
                Err(other) => CliError::new(format!("cannot migrate the store: {other}")),
            },
            F::Repo(r) => r.into(),
            e @ F::NotVerified { .. } => CliError::new(format!("cannot migrate the store: {e}"))
                .hint("nothing was switched; check the disk and run `col migrate` again"),
            e @ F::FolderUnchecked { .. } => {
                CliError::new(format!("cannot migrate the store: {e}")).hint("fix the folder and run `col migrate` again")
            }
            e @ F::FolderDiffers { .. } => CliError::new(format!("cannot migrate the store: {e}")).hint(
                "remove files that are not documents from the target folder (or choose an empty --docs-dir) and run `col migrate` again",
            ),
        };
        err.naming_safety(safety.as_ref(), |s| format!("The store was not switched; safety backup {s} holds it as it was."))
    }
}

impl From<RestoreRunError> for CliError {
    fn from(e: RestoreRunError) -> Self {
        match e {
            RestoreRunError::Safety(e) => e.into(),
            RestoreRunError::Restore { source, safety } => CliError::from(source)
                .naming_safety(safety.as_ref(), |s| format!("The store before the restore is in safety backup {s}.")),
        }
    }
}

impl From<BackupFailure> for CliError {
    fn from(e: BackupFailure) -> Self {
        match e {
            BackupFailure::Repo(r) => r.into(),
            BackupFailure::NotFound(_) => CliError::new(e.to_string()).hint("list the backups with `col backup list`"),
            BackupFailure::NoLatest(_) => CliError::new(e.to_string()).hint(
                "take a backup of this store with `col backup`; to restore another store's backup, name it by its id \
                 (`col backup list` shows every backup and its store)",
            ),
            BackupFailure::Locked { .. } => CliError::new(e.to_string()).hint(
                "wait for the other backup or prune to finish; a lock of a process that died on this host is ignored, others expire after 10 minutes",
            ),
            BackupFailure::NoSuchCollection(_, "backup") => {
                CliError::new(e.to_string()).hint("`col backup show ID` lists the collections a backup holds")
            }
            BackupFailure::NoSuchCollection(..) => CliError::new(e.to_string()).hint("see `col collection list`"),
            BackupFailure::Corrupt { .. } | BackupFailure::Missing { .. } | BackupFailure::Unverified { .. } => CliError::new(e.to_string())
                .hint("run `col backup verify ID --read-data` to see every damaged object; restore from another backup")
                .code(exit::VERIFY),
            BackupFailure::Store(_) => CliError::new(e.to_string()).hint(
                "check the repository URL (--to/--repo, [backup] repository, COLSTORE_BACKUP_REPOSITORY); for s3:// also \
                 AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL",
            ),
            BackupFailure::StoreCorrupt { .. } => CliError::new(e.to_string())
                .code(exit::VERIFY)
                .hint("run `col verify` to find every damaged document, then restore them from a backup"),
            BackupFailure::Format(_) => CliError::new(e.to_string()).code(exit::VERIFY),
            other => CliError::new(other.to_string()),
        }
    }
}

impl From<SafetyError> for CliError {
    fn from(e: SafetyError) -> Self {
        let source = e.0;
        let source = match source.downcast::<WiringError>() {
            Ok(w) => return (*w).into(),
            Err(other) => other,
        };
        let source = match source.downcast::<BackupFailure>() {
            Ok(b) => return (*b).into(),
            Err(other) => other,
        };
        CliError::new(format!("the safety copy failed: {source}"))
    }
}

impl From<colstore_app::RemoveError> for CliError {
    fn from(e: colstore_app::RemoveError) -> Self {
        match e {
            colstore_app::RemoveError::Repo(r) => r.into(),
            colstore_app::RemoveError::Safety(s) => s.into(),
        }
    }
}

impl From<colstore_app::ExportError> for CliError {
    fn from(e: colstore_app::ExportError) -> Self {
        use colstore_app::ExportError as E;
        match e {
            E::Repo(r) => r.into(),
            E::Ledger(l) => l.into(),
            E::Malformed { .. } => CliError::new(format!("the import file is not usable: {e}"))
                .hint("nothing was imported; check that the file was written by `col export` and copied whole"),
            E::LineTooLong { what: Some(_), .. } => CliError::new(format!("cannot export: {e}")).hint(format!(
                "nothing was written; one line holds one document with its vectors, so documents up to about {} MiB can be \
                 exported: leave this collection out (--collection) and move it with `col backup` and `col restore`",
                colstore_app::MAX_LINE_BYTES / (1024 * 1024) * 3 / 4
            )),
            E::LineTooLong { what: None, .. } => CliError::new(format!("the import file is not usable: {e}")).hint(
                "nothing was imported; `col export` never writes a line this long, so the file is damaged or not a colstore \
                 export (a few KB of zstd can expand to gigabytes: the line is refused before it is held in memory)",
            ),
            E::TooNew(_) => CliError::new(e.to_string()).hint("nothing was imported; upgrade colstore to read this file"),
            E::NoSuchCollection(..) => CliError::new(e.to_string()).hint("see `col collection list`"),
            E::Io(_) => CliError::new(e.to_string()),
        }
    }
}

impl From<SyncFailure> for CliError {
    fn from(e: SyncFailure) -> Self {
        match e {
            SyncFailure::Repo(r) => r.into(),
            SyncFailure::Ledger(l) => l.into(),
            SyncFailure::Embedder(err) => CliError::new(format!("the embedder failed: {err}"))
                .hint("check [embedder] in .colstore/config.toml and that the embedding service is reachable; failed documents are retried by the next `col sync`"),
            SyncFailure::Index(err) => CliError::new(format!("the vector index failed: {err}"))
                .hint("check [vectors] in .colstore/config.toml; `col status` shows the backend's health"),
            SyncFailure::NotSynced(c) => CliError::new(format!("collection \"{c}\" is not synced yet: run `col sync {c}`"))
                .hint(format!("vector search looks in the vector index, which `col sync {c}` fills (`col status {c}` shows what is pending); keyword search works now: --mode keyword")),
            other => CliError::new(other.to_string()),
        }
    }
}

impl From<colstore_domain::ports::SyncError> for CliError {
    fn from(e: colstore_domain::ports::SyncError) -> Self {
        match e {
            colstore_domain::ports::SyncError::CollectionNotFound(c) => colstore_domain::ports::RepoError::CollectionNotFound(c).into(),
            other => CliError::new(other.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use colstore_wiring::ConfigFix;
    use rstest::rstest;

    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[rstest]
    #[case(WiringError::NoStore { searched_from: p("/home/u/proj") }, "col init")]
    #[case(WiringError::NotAStore { path: p("/x"), source_of_path: "--store" }, "pass --store")]
    #[case(WiringError::NotAStore { path: p("/x"), source_of_path: "COLSTORE_DIR" }, "COLSTORE_DIR")]
    #[case(WiringError::AlreadyInitialised { path: p("/x/.colstore") }, "existing")]
    #[case(WiringError::Config { path: p("/c.toml"), line: 3, column: 7, message: "bad".into(), fix: None }, "edit /c.toml")]
    #[case(WiringError::Config { path: p("/c.toml"), line: 0, column: 0, message: "bad".into(), fix: Some(ConfigFix::Syntax) }, "TOML syntax")]
    #[case(WiringError::Config { path: p("/c"), line: 1, column: 1, message: "x".into(), fix: Some(ConfigFix::SaveAsUtf8) }, "UTF-8")]
    #[case(WiringError::Config { path: p("/c"), line: 1, column: 1, message: "x".into(), fix: Some(ConfigFix::UnknownKey { section: Some("storage".into()), allowed: "mode, filesystem_path".into() }) }, "allowed in [storage] are: mode, filesystem_path")]
    #[case(WiringError::Config { path: p("/c"), line: 1, column: 1, message: "x".into(), fix: Some(ConfigFix::UnknownValue { choices: "embedded, qdrant, weaviate".into() }) }, "set it to embedded, qdrant or weaviate")]
    #[case(WiringError::Config { path: p("/c"), line: 1, column: 1, message: "x".into(), fix: Some(ConfigFix::StoreId) }, "UUID `col init` wrote")]
    #[case(WiringError::Config { path: p("/c"), line: 0, column: 0, message: "x".into(), fix: Some(ConfigFix::MissingKey { section: None }) }, "add the key at the top level")]
    #[case(WiringError::Config { path: p("/c"), line: 1, column: 1, message: "x".into(), fix: Some(ConfigFix::NewerColstore) }, "upgrade colstore")]
    #[case(WiringError::Config { path: p("/c"), line: 1, column: 1, message: "x".into(), fix: Some(ConfigFix::Dimension) }, "between 1 and 65536")]
    #[case(WiringError::Config { path: p("/c"), line: 1, column: 1, message: "x".into(), fix: Some(ConfigFix::Format) }, "format = 1")]
    #[case(WiringError::Config { path: p("/c"), line: 0, column: 0, message: "x".into(), fix: Some(ConfigFix::EmbedderModel) }, "text-embedding-3-small")]
    #[case(WiringError::Config { path: p("/c"), line: 0, column: 0, message: "x".into(), fix: Some(ConfigFix::VectorsUrl { backend: colstore_wiring::VectorBackend::Qdrant }) }, "url = \"http://HOST:6333\"")]
    #[case(WiringError::Env { var: "COLSTORE_STORAGE_MODE", value: "mongo".into(), message: "expected sqlite or filesystem".into() }, "unset it")]
    #[case(WiringError::NotYetAvailable("the qdrant vector backend"), "defaults")]
    #[case(WiringError::ReadOnly { path: p("/ro") }, "permissions of /ro")]
    #[case(WiringError::Busy { holder: Some("pid 7 (gc)".into()), path: p("/s/lock") }, "wait")]
    #[case(WiringError::Busy { holder: None, path: p("/s/lock") }, "wait")]
    #[case(WiringError::DatabaseMissing { path: p("/s/colstore.db") }, "col restore")]
    #[case(WiringError::Repo(RepoError::ReadOnly("x".into())), "permissions")]
    fn every_wiring_error_says_how_to_fix_it(#[case] e: WiringError, #[case] in_hint: &str) {
        let hint = CliError::from(e).hint.expect("a hint");
        assert!(hint.contains(in_hint), "{hint:?} lacks {in_hint:?}");
    }

    #[test]
    fn a_file_changed_or_gone_behind_the_store_hints_reconcile() {
        let key = colstore_domain::DocKey::parse("a.md").unwrap();
        let changed = std::io::Error::new(std::io::ErrorKind::InvalidData, colstore_domain::ContentChanged { key: key.clone() });
        let gone = std::io::Error::new(std::io::ErrorKind::NotFound, "its file /d/a.md is missing");
        let other = std::io::Error::other("the disk failed");
        for (source, hint) in [(changed, "col reconcile"), (gone, "col reconcile"), (other, "not being changed")] {
            let e = CliError::from(RepoError::ContentRead { key: key.clone(), source });
            assert!(e.hint.as_deref().is_some_and(|h| h.contains(hint)), "{:?} lacks {hint:?}", e.hint);
        }
    }

    #[test]
    fn a_failure_after_a_safety_backup_names_it_in_the_hint() {
        use colstore_app::backup::RestoreRunError;
        use colstore_domain::ports::SafetyCopy;
        let failed = |safety| RestoreRunError::Restore { source: BackupFailure::NoLatest("x".into()), safety };
        let with = CliError::from(failed(Some(SafetyCopy::Backup("b1".into()))));
        let hint = with.hint.expect("a hint");
        assert!(hint.contains("col backup") && hint.ends_with("The store before the restore is in safety backup b1."), "{hint}");
        let without = CliError::from(failed(None)).hint.expect("a hint");
        assert!(!without.contains("safety backup"), "{without}");
    }

    #[test]
    fn an_io_error_has_no_hint() {
        let e = WiringError::Io { path: p("/x"), source: std::io::Error::from(std::io::ErrorKind::NotFound) };
        assert_eq!(CliError::from(e).hint, None);
    }
}
