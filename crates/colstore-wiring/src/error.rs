//! [`WiringError`]: everything that can go wrong while finding, creating, configuring, locking or opening a store.
//!
//! Messages say what went wrong and where (lowercase, no trailing period, with the path). How to fix it is the
//! shell's to say (the CLI's hints are in `crates/colstore-cli/src/error.rs`), from the variant and its fields.

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
        /// What kind of fix it needs, when there is something more specific to say than "edit the file there".
        fix: Option<ConfigFix>,
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
    /// `col migrate` cannot start (nothing was changed).
    #[error("cannot migrate the store: {0}")]
    Migration(#[from] crate::MigrationRefused),
    /// Any other I/O failure, with the path it happened on.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What a config problem needs, for the shell to say how (the CLI's words are in `crates/colstore-cli/src/error.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigFix {
    /// The file is not UTF-8.
    SaveAsUtf8,
    /// The TOML syntax is wrong at the position.
    Syntax,
    /// A key that does not exist there: remove it or fix its spelling.
    UnknownKey {
        /// The section it is in (`None`: the top level).
        section: Option<String>,
        /// The keys allowed there, as the parser lists them.
        allowed: String,
    },
    /// A value that is not one of the choices.
    UnknownValue {
        /// The choices, as the parser lists them.
        choices: String,
    },
    /// `store_id` is not the UUID `col init` wrote.
    StoreId,
    /// A required key is missing.
    MissingKey {
        /// The section it belongs in (`None`: the top level).
        section: Option<String>,
    },
    /// The file was written by a newer colstore.
    NewerColstore,
    /// The embedding dimension is out of range.
    Dimension,
    /// The `format` line is not one this colstore writes.
    Format,
    /// `[embedder] kind = "openai"` without a model.
    EmbedderModel,
    /// `[vectors] backend = "qdrant"` or `"weaviate"` without a server URL.
    VectorsUrl {
        /// The backend.
        backend: crate::VectorBackend,
    },
}

fn position(path: &Path, line: usize, column: usize) -> String {
    if line == 0 { path.display().to_string() } else { format!("{}:{line}:{column}", path.display()) }
}

impl WiringError {
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
    #[case(WiringError::NoStore { searched_from: p("/home/u/proj") }, "/home/u/proj")]
    #[case(WiringError::NotAStore { path: p("/x"), source_of_path: "--store" }, "given by --store")]
    #[case(WiringError::NotAStore { path: p("/x"), source_of_path: "COLSTORE_DIR" }, "given by COLSTORE_DIR")]
    #[case(WiringError::AlreadyInitialised { path: p("/x/.colstore") }, "/x/.colstore is already a colstore store")]
    #[case(WiringError::Config { path: p("/c.toml"), line: 3, column: 7, message: "bad".into(), fix: None }, "/c.toml:3:7: bad")]
    #[case(WiringError::Config { path: p("/c.toml"), line: 0, column: 0, message: "bad".into(), fix: Some(ConfigFix::Syntax) }, "config /c.toml: bad")]
    #[case(WiringError::Env { var: "COLSTORE_STORAGE_MODE", value: "mongo".into(), message: "expected sqlite or filesystem".into() }, "COLSTORE_STORAGE_MODE=\"mongo\"")]
    #[case(WiringError::NotYetAvailable("per-collection backends"), "per-collection backends is not available yet")]
    #[case(WiringError::ReadOnly { path: p("/ro") }, "cannot write to /ro")]
    #[case(WiringError::Busy { holder: Some("pid 7 (gc)".into()), path: p("/s/lock") }, "pid 7 (gc) holds its lock /s/lock")]
    #[case(WiringError::Busy { holder: None, path: p("/s/lock") }, "another colstore command holds")]
    #[case(WiringError::DatabaseMissing { path: p("/s/colstore.db") }, "/s/colstore.db is missing")]
    #[case(WiringError::Repo(RepoError::ReadOnly("x".into())), "read-only")]
    fn messages_name_the_thing(#[case] e: WiringError, #[case] in_message: &str) {
        let msg = e.to_string();
        assert!(msg.contains(in_message), "{msg:?} lacks {in_message:?}");
        assert!(!msg.ends_with('.'), "{msg:?} ends with a period");
        assert!(msg.starts_with(|c: char| !c.is_uppercase()), "{msg:?} starts uppercase");
    }

    #[test]
    fn permission_errors_become_read_only() {
        let e = WiringError::io("/x", std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(matches!(e, WiringError::ReadOnly { .. }));
        let e = WiringError::io("/x", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(matches!(e, WiringError::Io { .. }));
    }
}
