//! The file catalog of a filesystem-mode collection, kept in one file beside the database so that reconciling an
//! unchanged folder reads it in one go, as `git status` reads git's index, instead of 100 000 rows out of SQLite.
//!
//! - **Never stale.** A file is labelled with the collection's stamp (`catalog_stamps`, migration 0005) at the moment
//!   its entries were read, in the same read transaction. Triggers set a new random stamp in every transaction that
//!   changes a catalog field (a document's key, hash or size; a `file_state` row), so a file whose label is not the
//!   stamp on record is never used. A label that matches describes exactly the catalog of that moment.
//! - **Never trusted when damaged.** The file ends with the XXH64 of everything before it (SHA-256 took a tenth of
//!   an unchanged reconcile's time at 100 000 files); a file that is torn,
//!   truncated, of another format or of another collection is ignored (and rewritten), and the catalog is read from
//!   the database as before. Every key is validated again on the way in.
//! - **Only a cache.** It is written without fsync (a crash can leave a torn file, which the checksum refuses) and
//!   replaced by a rename, so a reader sees a whole file or none. Losing it costs one slower reconcile.
//!
//! Format (little-endian): `COLCATv1`, stamp `i64`, collection id `i64`, entries `u64`; then per entry the key's
//! length `u32` and bytes, the path's length `u32` (0: the path is the key) and bytes, the 32-byte content hash, the
//! size `u64`, a stat flag `u8` (1: known) and the stat's size `u64`, mtime `i64`, inode `u64` (zeros when unknown);
//! then the XXH64 (seed 0) of all the bytes before it, `u64`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use colstore_domain::ports::{CatalogEntry, FileStat};
use colstore_domain::{ContentHash, DocKey};
use colstore_durable::xxh64::Xxh64;

const MAGIC: &[u8; 8] = b"COLCATv1";
const HEADER: usize = 8 + 8 + 8 + 8;
const DIGEST: usize = 8;
/// A temporary file left by a writer that was killed is removed by the next write once it is this old.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// The folder of the cache files, beside the database file.
pub(crate) fn dir_beside(db: &Path) -> PathBuf {
    db.parent().unwrap_or_else(|| Path::new(".")).join("catalog-cache")
}

/// The cache file of collection `cid` in `dir`.
pub(crate) fn file_of(dir: &Path, cid: i64) -> PathBuf {
    dir.join(format!("catalog-{cid}.bin"))
}

/// Encodes a collection's catalog, labelled with its stamp.
pub(crate) fn encode(stamp: i64, cid: i64, entries: &[CatalogEntry]) -> Vec<u8> {
    let body: usize = entries.iter().map(|e| 4 + e.key.as_str().len() + 4 + e.path.len() + 32 + 8 + 1 + 24).sum();
    let mut out = Vec::with_capacity(HEADER + body + DIGEST);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&stamp.to_le_bytes());
    out.extend_from_slice(&cid.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        let key = e.key.as_str().as_bytes();
        out.extend_from_slice(&len_u32(key.len()).to_le_bytes());
        out.extend_from_slice(key);
        let path: &[u8] = if e.path == e.key.as_str() { b"" } else { e.path.as_bytes() };
        out.extend_from_slice(&len_u32(path.len()).to_le_bytes());
        out.extend_from_slice(path);
        out.extend_from_slice(e.content_hash.as_bytes());
        out.extend_from_slice(&e.size.to_le_bytes());
        let stat = e.stat.unwrap_or(FileStat { size: 0, mtime_ns: 0, inode: 0 });
        out.push(u8::from(e.stat.is_some()));
        out.extend_from_slice(&stat.size.to_le_bytes());
        out.extend_from_slice(&stat.mtime_ns.to_le_bytes());
        out.extend_from_slice(&stat.inode.to_le_bytes());
    }
    let digest = Xxh64::digest(0, &out);
    out.extend_from_slice(&digest.to_le_bytes());
    out
}

/// Keys and paths are file names under a folder, far below 4 GiB; a longer one cannot be a document.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Decodes a cache file's bytes when they are whole and labelled `(stamp, cid)`; `None` otherwise.
pub(crate) fn decode(bytes: &[u8], stamp: i64, cid: i64) -> Option<Vec<CatalogEntry>> {
    let signed = bytes.len().checked_sub(DIGEST).filter(|&n| n >= HEADER)?;
    let (content, digest) = bytes.split_at(signed);
    if content.get(..8)? != MAGIC || Xxh64::digest(0, content).to_le_bytes() != digest {
        return None;
    }
    let mut r = Reader { bytes: &content[8..] };
    if r.i64()? != stamp || r.i64()? != cid {
        return None;
    }
    let count = usize::try_from(r.u64()?).ok()?;
    // Each entry takes at least 73 bytes: a count larger than the body allows is damage, not a reason to allocate.
    if count > r.bytes.len() / 73 {
        return None;
    }
    let mut out: Vec<CatalogEntry> = Vec::with_capacity(count);
    for _ in 0..count {
        let key = DocKey::parse(r.str()?).ok()?;
        let path = match r.str()? {
            "" => key.as_str().to_owned(),
            p => p.to_owned(),
        };
        let content_hash = ContentHash::from_bytes(r.take(32)?.try_into().ok()?);
        let size = r.u64()?;
        let known = r.take(1)?[0];
        let stat = FileStat { size: r.u64()?, mtime_ns: r.i64()?, inode: r.u64()? };
        let stat = match known {
            0 => None,
            1 => Some(stat),
            _ => return None,
        };
        // The catalog's contract: sorted by key, keys unique.
        if out.last().is_some_and(|last| last.key >= key) {
            return None;
        }
        out.push(CatalogEntry { key, path, content_hash, size, stat });
    }
    r.bytes.is_empty().then_some(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        std::str::from_utf8(self.take(usize::try_from(n).ok()?)?).ok()
    }
}

/// Reads collection `cid`'s cache file in `dir` when it holds the catalog of `stamp`. Blocks.
pub(crate) fn read(dir: &Path, cid: i64, stamp: i64) -> Option<Vec<CatalogEntry>> {
    let path = file_of(dir, cid);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let entries = decode(&bytes, stamp, cid);
            if entries.is_none() {
                tracing::debug!(path = %path.display(), "catalog cache is stale or damaged; reading the database");
            }
            entries
        }
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::debug!(path = %path.display(), error = %e, "catalog cache unreadable; reading the database");
            }
            None
        }
    }
}

/// Replaces collection `cid`'s cache file in `dir` with `entries`, labelled `stamp`: a temporary file renamed over
/// it, without fsync (see the module documentation). Blocks.
///
/// # Errors
/// The folder or the file cannot be written.
pub(crate) fn write(dir: &Path, cid: i64, stamp: i64, entries: &[CatalogEntry]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    remove_stale_temporaries(dir);
    let tmp = dir.join(format!("catalog-{cid}.bin.tmp-{}", std::process::id()));
    let result = std::fs::write(&tmp, encode(stamp, cid, entries)).and_then(|()| std::fs::rename(&tmp, file_of(dir, cid)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes collection `cid`'s cache file (its collection was deleted). Blocks; a failure only leaves a file that
/// no stamp will ever match.
pub(crate) fn remove(dir: &Path, cid: i64) {
    if let Err(e) = std::fs::remove_file(file_of(dir, cid))
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::debug!(error = %e, "could not remove a deleted collection's catalog cache");
    }
}

fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_str().is_some_and(|n| n.contains(".bin.tmp-"))
            && entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_TEMPORARY));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, path: &str, stat: Option<FileStat>) -> CatalogEntry {
        CatalogEntry {
            key: DocKey::parse(key).unwrap(),
            path: path.to_owned(),
            content_hash: ContentHash::of(key.as_bytes()),
            size: key.len() as u64 * 7,
            stat,
        }
    }

    fn sample() -> Vec<CatalogEntry> {
        vec![
            entry("a/caf\u{e9}.md", "a/cafe\u{301}.md", Some(FileStat { size: 5, mtime_ns: -3, inode: u64::MAX })),
            entry("b.txt", "b.txt", None),
            entry("c/d/e.txt", "c/d/e.txt", Some(FileStat { size: 0, mtime_ns: 1_700_000_000_123_456_789, inode: 42 })),
        ]
    }

    #[test]
    fn round_trips_paths_stats_and_unknown_stats() {
        let bytes = encode(-7, 3, &sample());
        assert_eq!(decode(&bytes, -7, 3), Some(sample()));
        assert_eq!(decode(&encode(1, 1, &[]), 1, 1), Some(vec![]));
    }

    #[test]
    fn another_label_is_refused() {
        let bytes = encode(5, 3, &sample());
        assert_eq!(decode(&bytes, 6, 3), None, "other stamp");
        assert_eq!(decode(&bytes, 5, 4), None, "other collection");
    }

    #[test]
    fn every_damaged_byte_and_every_truncation_is_refused() {
        let bytes = encode(5, 3, &sample());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert_eq!(decode(&bad, 5, 3), None, "byte {i} flipped");
            assert_eq!(decode(&bytes[..i], 5, 3), None, "cut at {i}");
        }
    }

    #[test]
    fn a_well_signed_file_that_breaks_the_contract_is_refused() {
        // Signed correctly but unsorted, or with an invalid key: still refused, the checksum is not the only guard.
        let unsorted = encode(1, 1, &[entry("b", "b", None), entry("a", "a", None)]);
        assert_eq!(decode(&unsorted, 1, 1), None);
        let mut bytes = encode(1, 1, &[entry("ab", "ab", None)]);
        let at = HEADER + 4;
        bytes[at..at + 2].copy_from_slice(b"..");
        let n = bytes.len() - DIGEST;
        let digest = Xxh64::digest(0, &bytes[..n]);
        bytes[n..].copy_from_slice(&digest.to_le_bytes());
        assert_eq!(decode(&bytes, 1, 1), None);
    }

    #[test]
    fn write_replaces_and_read_checks_the_label() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("catalog-cache");
        assert_eq!(read(&dir, 3, 5), None, "no file yet");
        write(&dir, 3, 5, &sample()).unwrap();
        assert_eq!(read(&dir, 3, 5), Some(sample()));
        assert_eq!(read(&dir, 3, 6), None);
        write(&dir, 3, 6, &sample()[..1]).unwrap();
        assert_eq!(read(&dir, 3, 6).map(|e| e.len()), Some(1));
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("catalog-3.bin")], "no temporary file is left");
        remove(&dir, 3);
        assert_eq!(read(&dir, 3, 6), None);
    }
}
