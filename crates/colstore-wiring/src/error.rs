//! [`WiringError`]: everything that can go wrong while finding, creating, configuring, locking or opening a store.
//!
//! Messages say what went wrong and where (lowercase, no trailing period, with the path). The "how to fix" sentence is
//! kept apart in [`WiringError::hint`], so shells choose how to show it.

use std::path::{Path, PathBuf};

use colstore_domain::ports::{EmbedError, IndexError, RepoError};

/// Why a store could not be found, created, configured, locked or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WiringError {
    /// No `--store`, no `COLSTORE_DIR`, and no `.colstore/config.toml` in the working directory or any parent.
    #[error("no colstore store found in {} or any parent directory", searched_from.display())]
    NoStore {
        /// Where the upward search started (the working directory).
        searched_from: PathBuf,
    },
    /// `--store` or `COLSTORE_DIR` named a directory that holds no store.
    #[error("no colstore store at {} (given by {source_of_path})", path.display())]
    NotAStore {
        /// The path as given (made absolute).
        path: PathBuf,
        /// Who named it: `"--store"` or `"COLSTORE_DIR"`.
        source_of_path: &'static str,
    },
    /// `col init` on a directory that already holds a store.
    #[error("{} is already a colstore store", path.display())]
    AlreadyInitialised {
        /// The existing store's `.colstore` directory.
        path: PathBuf,
    },
    /// `col init` found a `.colstore` directory with content but without `config.toml`, and will not mix into it.
    #[error("{} exists and is not empty, but holds no config.toml", path.display())]
    NotEmpty {
        /// The `.colstore` directory.
        path: PathBuf,
    },
    /// The store's `config.toml` cannot be parsed or holds an invalid value.
    #[error("invalid store config {}: {message}", position(path, *line, *column))]
    Config {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the problem; 0 when the problem has no position.
        line: usize,
        /// 1-based column (in characters) of the problem; 0 when the problem has no position.
        column: usize,
        /// What is wrong.
        message: String,
        /// How to fix it, when there is something more specific to say than the message.
        hint: Option<String>,
    },
    /// An environment variable that overrides the config holds an invalid value.
    #[error("invalid {var}={value:?}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong, with the accepted values.
        message: String,
    },
    /// The backup repository URL is not usable.
    #[error("cannot open the backup repository {url}: {message}")]
    BackupRepository {
        /// The URL (from `--to`/`--repo`, the config, or `COLSTORE_BACKUP_REPOSITORY`).
        url: String,
        /// What is wrong.
        message: String,
    },
    /// A backup repository opened for reading (list, show, verify, restore, prune, delete) does not exist.
    #[error("backup repository not found: {}", path.display())]
    BackupRepositoryMissing {
        /// The URL as given.
        url: String,
        /// The folder that does not exist.
        path: PathBuf,
    },
    /// A configuration this version of colstore knows about but cannot serve yet.
    #[error("{0} is not available yet in this version of colstore")]
    NotYetAvailable(&'static str),
    /// The store (or the directory it should be created in) cannot be written.
    #[error("cannot write to {}: permission denied or read-only file system", path.display())]
    ReadOnly {
        /// The directory or file that refused the write.
        path: PathBuf,
    },
    /// Another process holds the store lock and did not release it in time.
    #[error("the store is busy: {} holds its lock {}", holder.as_deref().unwrap_or("another colstore command"), path.display())]
    Busy {
        /// Who holds the lock, when known (`pid 123 (gc) on host since ...`).
        holder: Option<String>,
        /// The lock file.
        path: PathBuf,
    },
    /// An environment variable tries to give an existing store another storage mode, documents folder or database.
    /// Those come from the store's `config.toml`; the variables choose them only at `col init`.
    #[error("{var}={env_value:?} disagrees with this store: its {key} is {store_value:?} (in {})", config.display())]
    EnvDisagrees {
        /// The variable.
        var: &'static str,
        /// The config key it would override (`storage.mode`).
        key: &'static str,
        /// The variable's value.
        env_value: String,
        /// What the store's config says (paths resolved).
        store_value: String,
        /// The store's `config.toml`.
        config: PathBuf,
    },
    /// The config names a database file that does not exist.
    #[error("the store database {} is missing", path.display())]
    DatabaseMissing {
        /// Where the database should be.
        path: PathBuf,
    },
    /// The store's database exists but cannot be this store's: empty, a directory, not a colstore database, or
    /// damaged. Only `col init` creates a database; this is never repaired by creating a new one silently.
    #[error("the store database {} {problem}", path.display())]
    DatabaseUnusable {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it (`is empty (0 bytes)`, `is a directory, not a file`, ...).
        problem: String,
    },
    /// The database belongs to another store: its recorded store id differs from `config.toml`'s.
    #[error("the store database {} belongs to another store: it records store id {db_id}, config.toml has {config_id}", path.display())]
    ForeignDatabase {
        /// The database file.
        path: PathBuf,
        /// The store id the database records.
        db_id: String,
        /// The store id of `config.toml`.
        config_id: String,
    },
    /// The store's `config.toml` exists (or its `.colstore` directory does) but cannot be read.
    #[error("cannot read the store config {}: {reason}", path.display())]
    ConfigUnreadable {
        /// The config file.
        path: PathBuf,
        /// Why (`it is missing`, `permission denied`, ...).
        reason: String,
    },
    /// The repository failed to open.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The vector index failed to open.
    #[error("the vector index cannot be opened: {0}")]
    Index(#[from] IndexError),
    /// The embedder cannot be built.
    #[error("the embedder cannot be set up: {0}")]
    Embedder(#[from] EmbedError),
    /// `col migrate` cannot convert the store (nothing was switched).
    #[error("cannot migrate the store: {message}")]
    Migration {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// Any other I/O failure, with the path it happened on.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn position(path: &Path, line: usize, column: usize) -> String {
    if line == 0 { path.display().to_string() } else { format!("{}:{line}:{column}", path.display()) }
}

impl WiringError {
    /// The sentence that tells a user how to fix the problem, when there is one.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::NoStore { .. } => "run `col init` here, or pass --store DIR / set COLSTORE_DIR".to_owned(),
            Self::Migration { hint, .. } => hint.clone(),
            Self::NotAStore { source_of_path: "COLSTORE_DIR", .. } => {
                "point COLSTORE_DIR at a directory holding .colstore/ (or unset it), or run `col init` there".to_owned()
            }
            Self::NotAStore { .. } => "pass --store a directory holding .colstore/, or run `col init` there first".to_owned(),
            Self::AlreadyInitialised { .. } => "use the existing store, or run `col init` in another directory".to_owned(),
            Self::NotEmpty { path } => {
                format!("move {} away (it may hold data) and run `col init` again, or choose another directory", path.display())
            }
            Self::Config { hint: Some(h), .. } => h.clone(),
            Self::Config { path, .. } => format!("edit {} and fix the value at that position", path.display()),
            Self::Env { var, .. } => format!("set {var} to one of the accepted values, or unset it to use the config file"),
            Self::NotYetAvailable(_) => "use the defaults of `col init` for now".to_owned(),
            Self::ReadOnly { path } => {
                format!("check the permissions of {} and that its file system is mounted read-write", path.display())
            }
            Self::Busy { .. } => "wait for the other command to finish and try again; \
                a lock left by a process that died is released automatically"
                .to_owned(),
            Self::EnvDisagrees { var, key: "storage.mode", env_value, .. } => format!(
                "unset {var}: environment variables choose the storage mode only at `col init`; \
                to convert this store, run `col migrate --to {}`",
                env_value.trim().to_lowercase()
            ),
            Self::EnvDisagrees { var, key, .. } => format!(
                "unset {var}: environment variables choose the {} only at `col init`; \
                to move it, move the files and edit {key} in config.toml",
                if *key == "storage.metadata_db" { "database" } else { "documents folder" }
            ),
            Self::DatabaseMissing { .. } => {
                "if metadata_db in config.toml points to the wrong place, fix it; otherwise restore the store from its \
                backup repository with `col restore latest`, or move .colstore away and start over with `col init`"
                    .to_owned()
            }
            Self::DatabaseUnusable { .. } | Self::ForeignDatabase { .. } => {
                "restore the store from its backup repository with `col restore latest` (the damaged database is moved \
                aside, not deleted), or move .colstore away and start over with `col init`"
                    .to_owned()
            }
            Self::ConfigUnreadable { path, .. } => format!(
                "check that {} exists and that you may read it; a store without config.toml cannot be opened \
                (restore it from a copy, or move .colstore away and run `col init`)",
                path.display()
            ),
            Self::Repo(RepoError::ReadOnly(_)) => "check the permissions of the store directory and its files".to_owned(),
            Self::Repo(RepoError::Busy(_)) => "another process is writing to the store; try again when it has finished".to_owned(),
            Self::BackupRepository { .. } => "use file:///absolute/path, file://DIR (relative to .colstore) or s3://bucket/prefix \
                (with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and, for other S3 servers, AWS_ENDPOINT_URL)"
                .to_owned(),
            Self::BackupRepositoryMissing { url, .. } => format!(
                "check the repository URL {url} (--repo, [backup] repository in config.toml, COLSTORE_BACKUP_REPOSITORY) and \
                 that its disk is mounted; reading a repository never creates it: if no backup was taken yet, take one with \
                 `col backup`"
            ),
            Self::Index(_) => "check [vectors] in .colstore/config.toml; for the embedded index, check .colstore/index/".to_owned(),
            Self::Embedder(_) => "check [embedder] in .colstore/config.toml (kind, model, url, api_key_env)".to_owned(),
            Self::Repo(_) | Self::Io { .. } => return None,
        })
    }

    /// Wraps an I/O error on `path`, turning "permission denied" and "read-only file system" into [`WiringError::ReadOnly`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => Self::ReadOnly { path },
            _ => Self::Io { path, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[rstest]
    #[case(WiringError::NoStore { searched_from: p("/home/u/proj") }, "/home/u/proj", "col init")]
    #[case(WiringError::NotAStore { path: p("/x"), source_of_path: "--store" }, "given by --store", "pass --store")]
    #[case(WiringError::NotAStore { path: p("/x"), source_of_path: "COLSTORE_DIR" }, "given by COLSTORE_DIR", "COLSTORE_DIR")]
    #[case(WiringError::AlreadyInitialised { path: p("/x/.colstore") }, "/x/.colstore is already a colstore store", "existing")]
    #[case(WiringError::Config { path: p("/c.toml"), line: 3, column: 7, message: "bad".into(), hint: None }, "/c.toml:3:7: bad", "edit /c.toml")]
    #[case(WiringError::Config { path: p("/c.toml"), line: 0, column: 0, message: "bad".into(), hint: Some("do x".into()) }, "config /c.toml: bad", "do x")]
    #[case(WiringError::Env { var: "COLSTORE_STORAGE_MODE", value: "mongo".into(), message: "expected sqlite or filesystem".into() }, "COLSTORE_STORAGE_MODE=\"mongo\"", "unset it")]
    #[case(WiringError::NotYetAvailable("the qdrant vector backend"), "the qdrant vector backend is not available yet", "defaults")]
    #[case(WiringError::ReadOnly { path: p("/ro") }, "cannot write to /ro", "permissions of /ro")]
    #[case(WiringError::Busy { holder: Some("pid 7 (gc)".into()), path: p("/s/lock") }, "pid 7 (gc) holds its lock /s/lock", "wait")]
    #[case(WiringError::Busy { holder: None, path: p("/s/lock") }, "another colstore command holds", "wait")]
    #[case(WiringError::DatabaseMissing { path: p("/s/colstore.db") }, "/s/colstore.db is missing", "col restore")]
    #[case(WiringError::Repo(RepoError::ReadOnly("x".into())), "read-only", "permissions")]
    fn messages_name_the_thing_and_hints_say_how_to_fix(#[case] e: WiringError, #[case] in_message: &str, #[case] in_hint: &str) {
        let msg = e.to_string();
        assert!(msg.contains(in_message), "{msg:?} lacks {in_message:?}");
        assert!(!msg.ends_with('.'), "{msg:?} ends with a period");
        assert!(msg.starts_with(|c: char| !c.is_uppercase()), "{msg:?} starts uppercase");
        let hint = e.hint().expect("a hint");
        assert!(hint.contains(in_hint), "{hint:?} lacks {in_hint:?}");
    }

    #[test]
    fn permission_errors_become_read_only() {
        let e = WiringError::io("/x", std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(matches!(e, WiringError::ReadOnly { .. }));
        let e = WiringError::io("/x", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(matches!(e, WiringError::Io { .. }));
        assert!(e.hint().is_none());
    }
}
