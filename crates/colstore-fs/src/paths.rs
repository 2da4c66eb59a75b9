//! Path safety: every path the port is given stays inside the collection's folder.
//!
//! Two checks. The syntax of the relative path follows the key rules ([`DocKey::parse`]: relative, `/`-separated, no
//! empty, `.` or `..` segments, no NUL, no `\`, no control characters), which normalising to NFC cannot change, so a
//! path stored in NFD passes as well. Then every component that already exists is looked at (`lstat`); a symlink
//! among them must resolve inside the canonical collection folder. Canonicalising happens only for symlinks, so the
//! common case costs one `lstat` per component.
//!
//! The check guards against mistakes and surprising folder layouts, not against a local attacker racing us: a folder
//! swapped for a symlink between the check and the use is not detected.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use colstore_domain::DocKey;
use colstore_domain::ports::{FilesError, STAGING_PREFIX};

/// `path` escaped for messages (NUL and control characters visible).
pub(crate) fn shown(path: &str) -> String {
    path.escape_debug().to_string()
}

fn unsafe_path(path: &str, reason: impl Into<String>) -> FilesError {
    FilesError::Unsafe { path: shown(path), reason: reason.into() }
}

/// Checks the syntax of a relative path argument.
pub(crate) fn check_syntax(path: &str) -> Result<(), FilesError> {
    DocKey::parse(path).map(|_| ()).map_err(|e| unsafe_path(path, e.reason))
}

/// Checks a staged file's token: a plain file name starting with [`STAGING_PREFIX`].
pub(crate) fn check_token(token: &str) -> Result<(), FilesError> {
    let plain = !token.contains(['/', '\\', '\0']) && token != "." && token != "..";
    if !token.starts_with(STAGING_PREFIX) || !plain {
        return Err(unsafe_path(
            token,
            format!(
                "is not a staged file's name (it must start with {STAGING_PREFIX:?} and name no folder); pass the token `stage` returned"
            ),
        ));
    }
    Ok(())
}

/// Checks `path` (relative to `root`) and returns the path to use. Existing symlinks among its components must stay
/// inside `root`; missing components end the check (nothing below them exists to follow).
pub(crate) fn resolve(root: &Path, path: &str) -> Result<PathBuf, FilesError> {
    check_syntax(path)?;
    let mut cur = root.to_path_buf();
    let mut canonical_root: Option<PathBuf> = None;
    let mut checking = true;
    for seg in path.split('/') {
        cur.push(seg);
        if !checking {
            continue;
        }
        let Ok(md) = fs::symlink_metadata(&cur) else {
            // Missing (or unreachable): the operation itself reports it; nothing further exists to follow.
            checking = false;
            continue;
        };
        if !md.file_type().is_symlink() {
            continue;
        }
        let canon_root = match &canonical_root {
            Some(c) => c,
            None => canonical_root.insert(fs::canonicalize(root).map_err(|e| io_error(root, e))?),
        };
        match fs::canonicalize(&cur) {
            Ok(target) if target.starts_with(canon_root) => {}
            Ok(target) => {
                let above = cur.strip_prefix(root).unwrap_or(&cur).display().to_string();
                return Err(unsafe_path(
                    path,
                    format!(
                        "{above} is a symlink to {}, outside the collection folder {}; colstore never follows links out of it",
                        target.display(),
                        root.display()
                    ),
                ));
            }
            // A dangling link: nothing exists behind it; the operation reports what it finds.
            Err(_) => checking = false,
        }
    }
    Ok(cur)
}

/// An I/O error about `path`.
pub(crate) fn io_error(path: &Path, source: io::Error) -> FilesError {
    FilesError::Io { path: path.display().to_string(), source }
}

/// An error of a write to `path`: permission problems and read-only file systems are `ReadOnly`.
pub(crate) fn write_error(path: &Path, source: io::Error) -> FilesError {
    match source.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            FilesError::ReadOnly { path: path.display().to_string(), source }
        }
        _ => io_error(path, source),
    }
}

/// The error for a file that is not there: `RootMissing` when the whole collection folder is gone.
pub(crate) fn not_found(root: &Path, path: &Path) -> FilesError {
    if root.is_dir() {
        FilesError::NotFound { path: path.display().to_string() }
    } else {
        FilesError::RootMissing { root: root.display().to_string() }
    }
}

/// Whether an error means "nothing there" (including a file where a folder was expected).
pub(crate) fn is_missing(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_follows_the_key_rules() {
        for bad in ["", "/abs", "../x", "a/../b", "a//b", "a\0b", "a\\b", ".", "a/", "x\ny"] {
            assert!(matches!(check_syntax(bad), Err(FilesError::Unsafe { .. })), "{bad:?}");
        }
        for good in ["a.md", "a/b/c.md", "cafe\u{301}.md", ".hidden", "a..b"] {
            check_syntax(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
    }

    #[test]
    fn tokens_are_plain_staging_names() {
        check_token(&format!("{STAGING_PREFIX}abc")).expect("valid");
        for bad in ["a.md", "../.colstore-tmp-x", ".colstore-tmp-x/y", ".colstore-tmp-\0"] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
    }
}
