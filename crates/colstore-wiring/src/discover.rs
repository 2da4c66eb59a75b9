//! Finding the store (PRODUCT §11): `--store DIR`, then `COLSTORE_DIR`, then an upward search from the working
//! directory for `.colstore/config.toml`, like git looks for `.git`.

use std::path::{Path, PathBuf};

use crate::{StoreConfig, WiringError};

/// The name of the directory that holds a store.
pub const STORE_DIR_NAME: &str = ".colstore";
/// The config file inside it.
pub const CONFIG_FILE: &str = "config.toml";

/// The environment variable naming the store directory.
pub const STORE_DIR_ENV: &str = "COLSTORE_DIR";

/// A store's `.colstore` directory: absolute and canonical, holding a `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreDir(PathBuf);

impl StoreDir {
    /// The store at `dir`, which may be a directory holding `.colstore/` or the `.colstore` directory itself.
    /// `None` when neither holds a `config.toml`. A relative `dir` is relative to the working directory.
    pub fn at(dir: &Path) -> Option<StoreDir> {
        let itself = dir.file_name().is_some_and(|n| n == STORE_DIR_NAME).then(|| dir.to_owned());
        [itself, Some(dir.join(STORE_DIR_NAME))]
            .into_iter()
            .flatten()
            .find(|c| c.join(CONFIG_FILE).is_file())
            .and_then(|c| Self::from_root(&c).ok())
    }

    /// Like [`StoreDir::at`], but a `.colstore` directory that is clearly a store whose `config.toml` is missing or
    /// cannot be read is an error saying so, instead of "no store here". An empty `.colstore` is not a store.
    ///
    /// # Errors
    /// [`WiringError::ConfigUnreadable`].
    pub fn find_at(dir: &Path) -> Result<Option<StoreDir>, WiringError> {
        let itself = dir.file_name().is_some_and(|n| n == STORE_DIR_NAME).then(|| dir.to_owned());
        for candidate in [itself, Some(dir.join(STORE_DIR_NAME))].into_iter().flatten() {
            if let Some(found) = probe(&candidate)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The `.colstore` directory `root` as is (canonicalised), without checking that it holds a config.
    /// `col init` uses it for a store it is about to create.
    ///
    /// # Errors
    /// The I/O error of canonicalising (the directory must exist).
    pub fn from_root(root: &Path) -> std::io::Result<StoreDir> {
        root.canonicalize().map(StoreDir)
    }

    /// The `.colstore` directory.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// The directory holding `.colstore` (the project), when there is one.
    pub fn parent(&self) -> Option<&Path> {
        self.0.parent()
    }

    /// `.colstore/config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.0.join(CONFIG_FILE)
    }

    /// `.colstore/lock`, the file the store lock is taken on.
    pub fn lock_path(&self) -> PathBuf {
        self.0.join("lock")
    }

    /// `.colstore/lock.info`, who holds the exclusive lock.
    pub fn lock_info_path(&self) -> PathBuf {
        self.0.join("lock.info")
    }

    /// The SQLite database of `config` (`metadata_db`, relative to `.colstore` unless absolute).
    pub fn db_path(&self, config: &StoreConfig) -> PathBuf {
        self.resolve(&config.storage.metadata_db)
    }

    /// Where filesystem-mode documents live: `filesystem_path` resolved, or `.colstore/docs`.
    pub fn filesystem_path(&self, config: &StoreConfig) -> PathBuf {
        self.resolve(config.storage.filesystem_path.as_deref().unwrap_or(Path::new("docs")))
    }

    /// `path` relative to `.colstore` unless it is absolute.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.0.join(path)
    }
}

/// Whether `root` is a store: `Some` when it holds `config.toml`; `None` when it is not a directory or is empty; an
/// error when it is a `.colstore` directory with content whose `config.toml` is missing or unreadable.
fn probe(root: &Path) -> Result<Option<StoreDir>, WiringError> {
    let config = root.join(CONFIG_FILE);
    let unreadable = |reason: String| WiringError::ConfigUnreadable { path: config.clone(), reason };
    match std::fs::metadata(&config) {
        Ok(m) if m.is_file() => return Ok(StoreDir::from_root(root).ok()),
        Ok(_) => return Err(unreadable("it is not a file".to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(unreadable(format!("the directory {} cannot be read (permission denied)", root.display())));
        }
        Err(_) => {}
    }
    if !root.is_dir() {
        return Ok(None);
    }
    match std::fs::read_dir(root) {
        Ok(mut entries) => match entries.next() {
            None => Ok(None),
            Some(_) => Err(unreadable(format!("it is missing, but {} holds other store files", root.display()))),
        },
        Err(e) => Err(unreadable(format!("the directory {} cannot be read ({e})", root.display()))),
    }
}

/// Finds the store: `store_flag` (`--store DIR`) first, then `COLSTORE_DIR` from `env`, then upward from `cwd`.
///
/// An empty `COLSTORE_DIR` counts as unset. Relative paths are relative to `cwd`.
///
/// # Errors
/// [`WiringError::NotAStore`] when `--store` or `COLSTORE_DIR` names a directory without a store (no fallback to the
/// search: an explicit choice that is wrong must not silently pick another store); [`WiringError::NoStore`] when the
/// upward search finds nothing.
pub fn discover(store_flag: Option<&Path>, cwd: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<StoreDir, WiringError> {
    let explicit = match (store_flag, env(STORE_DIR_ENV).filter(|v| !v.is_empty())) {
        (Some(dir), _) => Some((dir.to_owned(), "--store")),
        (None, Some(dir)) => Some((PathBuf::from(dir), STORE_DIR_ENV)),
        (None, None) => None,
    };
    if let Some((dir, source_of_path)) = explicit {
        let dir = cwd.join(dir);
        tracing::debug!(dir = %dir.display(), source_of_path, "looking for the store");
        return StoreDir::find_at(&dir)?.ok_or(WiringError::NotAStore { path: dir, source_of_path });
    }
    for a in cwd.ancestors() {
        if let Some(found) = probe(&a.join(STORE_DIR_NAME))? {
            return Ok(found);
        }
    }
    Err(WiringError::NoStore { searched_from: cwd.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use colstore_domain::Timestamp;
    use rstest::rstest;
    use std::fs;

    /// `<tmp>/proj/.colstore/config.toml`, `<tmp>/proj/sub/deep`, `<tmp>/other/.colstore/config.toml`, `<tmp>/empty`.
    fn layout() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        for store in ["proj", "other"] {
            fs::create_dir_all(base.join(store).join(STORE_DIR_NAME)).unwrap();
            fs::write(base.join(store).join(STORE_DIR_NAME).join(CONFIG_FILE), "format = 1\n").unwrap();
        }
        fs::create_dir_all(base.join("proj/sub/deep")).unwrap();
        fs::create_dir_all(base.join("empty/.colstore")).unwrap(); // a .colstore without config is not a store
        (t, base)
    }

    #[rstest]
    #[case::flag_project(Some("other"), None, "proj/sub", Ok("other"))]
    #[case::flag_store_dir_itself(Some("other/.colstore"), None, "proj", Ok("other"))]
    #[case::flag_beats_env(Some("other"), Some("proj"), "empty", Ok("other"))]
    #[case::env(None, Some("other"), "proj/sub/deep", Ok("other"))]
    #[case::env_store_dir_itself(None, Some("other/.colstore"), "empty", Ok("other"))]
    #[case::empty_env_is_unset(None, Some(""), "proj/sub/deep", Ok("proj"))]
    #[case::upward_here(None, None, "proj", Ok("proj"))]
    #[case::upward_from_deep(None, None, "proj/sub/deep", Ok("proj"))]
    #[case::upward_from_inside_store(None, None, "proj/.colstore", Ok("proj"))]
    #[case::flag_without_store(Some("empty"), None, "proj", Err("--store"))]
    #[case::flag_missing_dir(Some("nope"), None, "proj", Err("--store"))]
    #[case::env_without_store(None, Some("empty"), "proj", Err("COLSTORE_DIR"))]
    #[case::nothing_upward(None, None, "empty", Err("upward"))]
    fn discovery_order(#[case] flag: Option<&str>, #[case] env_dir: Option<&str>, #[case] cwd: &str, #[case] expected: Result<&str, &str>) {
        let (_t, base) = layout();
        let env_value = env_dir.map(|d| if d.is_empty() { String::new() } else { base.join(d).display().to_string() });
        let env = |name: &str| if name == STORE_DIR_ENV { env_value.clone() } else { None };
        let flag = flag.map(|f| base.join(f));
        let result = discover(flag.as_deref(), &base.join(cwd), &env);
        match (expected, result) {
            (Ok(project), Ok(dir)) => {
                assert_eq!(dir.root(), base.join(project).join(STORE_DIR_NAME));
                assert_eq!(dir.parent(), Some(base.join(project).as_path()));
            }
            (Err("upward"), Err(e @ WiringError::NoStore { .. })) => {
                assert!(e.to_string().contains(&base.join(cwd).display().to_string()), "{e}");
            }
            (Err(source), Err(e @ WiringError::NotAStore { .. })) => {
                let WiringError::NotAStore { source_of_path, path } = &e else { unreachable!() };
                assert_eq!(*source_of_path, source);
                assert!(path.starts_with(&base));
                assert!(e.to_string().contains(&path.display().to_string()));
            }
            (expected, got) => panic!("expected {expected:?}, got {got:?}"),
        }
    }

    #[test]
    fn relative_flag_is_relative_to_cwd() {
        let (_t, base) = layout();
        let dir = discover(Some(Path::new("../other")), &base.join("proj"), &|_| None).unwrap();
        assert_eq!(dir.root(), base.join("other/.colstore"));
    }

    #[test]
    fn paths_inside_the_store() {
        let (_t, base) = layout();
        let dir = StoreDir::at(&base.join("proj")).unwrap();
        let root = base.join("proj/.colstore");
        assert_eq!(dir.config_path(), root.join("config.toml"));
        assert_eq!(dir.lock_path(), root.join("lock"));
        assert_eq!(dir.lock_info_path(), root.join("lock.info"));
        let mut config = StoreConfig::new(colstore_domain::StoreId::random(), Timestamp::EPOCH, root.clone(), crate::StorageMode::Sqlite);
        assert_eq!(dir.db_path(&config), root.join("colstore.db"));
        assert_eq!(dir.filesystem_path(&config), root.join("docs"));
        config.storage.metadata_db = PathBuf::from("/elsewhere/meta.db");
        config.storage.filesystem_path = Some(PathBuf::from("../notes"));
        assert_eq!(dir.db_path(&config), Path::new("/elsewhere/meta.db"));
        assert_eq!(dir.filesystem_path(&config), root.join("../notes"));
    }
}
