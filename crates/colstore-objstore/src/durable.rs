//! fsync helpers for `file://` repositories (blocking; call them on a blocking thread).

use std::fs::File;
use std::io;
use std::path::Path;

/// Creates `dir` and any missing parents, then fsyncs every folder whose entries changed, so the new folders
/// survive a crash.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut first_existing = dir;
    while !first_existing.exists() {
        match first_existing.parent() {
            Some(p) => first_existing = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    if first_existing == dir {
        return Ok(());
    }
    let mut d = dir;
    loop {
        sync_dir(d)?;
        if d == first_existing {
            return Ok(());
        }
        match d.parent() {
            Some(p) => d = p,
            None => return Ok(()),
        }
    }
}

/// fsyncs `path` (when `file_too`) and every folder from its parent up to and including `root`.
///
/// # Errors
/// The first failure, naming the path.
pub fn sync_chain(root: &Path, path: &Path, file_too: bool) -> io::Result<()> {
    let named = |p: &Path, e: io::Error| io::Error::new(e.kind(), format!("cannot fsync {}: {e}", p.display()));
    if file_too {
        File::open(path).and_then(|f| f.sync_all()).map_err(|e| named(path, e))?;
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        sync_dir(d).map_err(|e| named(d, e))?;
        if d == root || !d.starts_with(root) {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// fsyncs a folder, so changes to its entries are durable (a no-op where folders cannot be opened, i.e. Windows).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_syncs_nested_folders() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("repo");
        let deep = tmp.join("a").join("b");
        create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all(&deep).unwrap();
        let file = deep.join("f");
        std::fs::write(&file, b"x").unwrap();
        sync_chain(&tmp, &file, true).unwrap();
        sync_chain(&tmp, &deep.join("gone"), false).unwrap();
        let err = sync_chain(&tmp, &deep.join("missing"), true).unwrap_err();
        assert!(err.to_string().starts_with("cannot fsync "), "{err}");
    }
}
