//! Snapshot files: a collection's in-memory copy ([`Snapshot`]) persisted beside the database, already decoded and
//! quantised, so a new process loads it with a few large sequential reads instead of decoding every row from SQLite
//! and quantising every vector again.
//!
//! # Layout
//!
//! The files of the database `DIR/NAME.db` live in `DIR/NAME/` (for the store: `.colstore/index/embedded/`), one per
//! collection, named by the collection's row id: `<id>.snap`. A file being written is `.<id>.snap.<pid>-<n>.tmp` in
//! the same folder; readers never look at those.
//!
//! Every number is little-endian. The 80-byte header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `colsnap\0` |
//! | 8 | 4 | format version, `u32` (1) |
//! | 12 | 4 | distance, `u32`: 0 cosine, 1 dot, 2 euclid |
//! | 16 | 4 | dimension `d`, `u32` |
//! | 20 | 4 | reserved, 0 |
//! | 24 | 8 | point count `n`, `u64` |
//! | 32 | 8 | the collection's row id, `i64` |
//! | 40 | 8 | the collection's version, `i64` |
//! | 48 | 8 | the collection's write stamp, `i64` |
//! | 56 | 8 | payload bytes `p`, `u64` |
//! | 64 | 8 | XXH64 (seed 0) of the body |
//! | 72 | 8 | XXH64 (seed 0) of header bytes 0..72 |
//!
//! The body follows, rows in the same order in every section (the in-memory positions), `q = n` for cosine and dot
//! collections and `q = 0` for Euclidean ones:
//!
//! | section | size |
//! |---|---|
//! | point ids, the UUIDs' bytes | `16 n` |
//! | payload lengths in bytes, `u32` | `4 n` |
//! | payloads, JSON text (UTF-8), concatenated | `p` |
//! | zero bytes, so that the vectors start at a file offset that is a multiple of 64 | `0..=63` |
//! | vectors, `f32` (normalised for cosine) | `4 d n` |
//! | int8 code scale, error bound and L1 bound of each row, `f32` × 3 | `12 q` |
//! | int8 codes | `d q` |
//!
//! Format version 1 had no padding; its files are stale to this code and replaced by the next load.
//!
//! # Loading
//!
//! A load maps the file ([`crate::mapped`]), checks the header and the body's checksum over the mapping, and keeps the
//! vectors and the int8 codes where the mapping holds them (on little-endian machines; elsewhere they are decoded
//! into memory of the copy's own): a large collection then costs its page-cache pages, not a second copy. Ids, the
//! row bounds are copied out; the payloads stay in the mapping too (checked UTF-8 once, split by their lengths). The id → position map the copy needs for writes
//! is built on the first write, not at load; the first write also copies the mapped arrays out.
//!
//! # Validity
//!
//! A file is used only when its magic and format version are known, its header checksum holds, its label (row id,
//! version, stamp, dimension, distance) equals the collection's row in the database, its length is exactly the header
//! plus the body the header describes, and its body checksum holds. Anything else is ignored (and replaced by the
//! caller). Files are written to a temporary name, synced, renamed over the old one and the folder synced, so a crash
//! leaves the old file, the new one, or a temporary file no reader looks at; a file is never changed in place, which
//! is what makes mapping it sound.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use colstore_domain::{Distance, PointId};
use uuid::Uuid;

use crate::kernel::Quantised;
use crate::mapped::{MappedSlice, MappedStr, Mapping, Payloads, Rows};
use crate::snapshot::{Parts, Snapshot};
use colstore_durable::xxh64::Xxh64;

/// The first bytes of every snapshot file.
const MAGIC: [u8; 8] = *b"colsnap\0";

/// The layout this code writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// The vectors start at a file offset that is a multiple of this (so they can be read in place as `f32`s).
const VECTOR_ALIGN: u64 = 64;

/// Bytes before the body.
pub(crate) const HEADER_LEN: usize = 80;

/// Bytes moved per write call.
const BLOCK: usize = 1 << 20;

/// A temporary file older than this is left over from a crashed writer (writing even a large collection takes
/// seconds) and removed by the next cleanup.
pub(crate) const TEMP_MAX_AGE: Duration = Duration::from_secs(15 * 60);

const SUFFIX: &str = ".snap";
const TEMP_SUFFIX: &str = ".tmp";

/// Distinguishes the temporary files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What a file describes: which state of which collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label {
    /// The collection's row id (never reused within one database).
    pub(crate) collection_id: i64,
    /// Its version (bumped by every write).
    pub(crate) version: i64,
    /// Its write stamp (a random number every write replaces; tells apart databases whose ids and versions meet).
    pub(crate) stamp: i64,
    pub(crate) dim: usize,
    pub(crate) distance: Distance,
}

/// Why a file was not used.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// There is no file.
    Missing,
    /// A sound file of another state of the collection, or of another format version.
    Stale(String),
    /// Not a snapshot file, damaged, or unreadable.
    Invalid(String),
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("no snapshot file"),
            Self::Stale(why) => write!(f, "stale snapshot file: {why}"),
            Self::Invalid(why) => write!(f, "invalid snapshot file: {why}"),
        }
    }
}

/// The folder of the snapshot files of the database at `database`: `DIR/NAME.db` → `DIR/NAME`.
pub(crate) fn dir_for(database: &Path) -> PathBuf {
    let parent = database.parent().unwrap_or_else(|| Path::new(""));
    match (database.file_stem(), database.extension()) {
        (Some(stem), Some(_)) => parent.join(stem),
        // No extension: the stem is the database's own name.
        _ => {
            let mut name = database.file_name().unwrap_or_default().to_owned();
            name.push(".snapshots");
            parent.join(name)
        }
    }
}

/// The snapshot file of a collection, by row id.
pub(crate) fn path_for(dir: &Path, collection_id: i64) -> PathBuf {
    dir.join(format!("{collection_id}{SUFFIX}"))
}

fn distance_code(d: Distance) -> u32 {
    match d {
        Distance::Cosine => 0,
        Distance::Dot => 1,
        Distance::Euclid => 2,
    }
}

fn distance_from(code: u32) -> Option<Distance> {
    match code {
        0 => Some(Distance::Cosine),
        1 => Some(Distance::Dot),
        2 => Some(Distance::Euclid),
        _ => None,
    }
}

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    label: Label,
    count: u64,
    payload_bytes: u64,
    body_hash: u64,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&distance_code(self.label.distance).to_le_bytes());
        h[16..20].copy_from_slice(&u32::try_from(self.label.dim).unwrap_or(u32::MAX).to_le_bytes());
        h[24..32].copy_from_slice(&self.count.to_le_bytes());
        h[32..40].copy_from_slice(&self.label.collection_id.to_le_bytes());
        h[40..48].copy_from_slice(&self.label.version.to_le_bytes());
        h[48..56].copy_from_slice(&self.label.stamp.to_le_bytes());
        h[56..64].copy_from_slice(&self.payload_bytes.to_le_bytes());
        h[64..72].copy_from_slice(&self.body_hash.to_le_bytes());
        let check = Xxh64::digest(0, &h[..72]);
        h[72..80].copy_from_slice(&check.to_le_bytes());
        h
    }

    fn decode(h: &[u8; HEADER_LEN]) -> Result<Self, Rejected> {
        if h[0..8] != MAGIC {
            return Err(Rejected::Invalid("not a snapshot file (wrong magic bytes)".into()));
        }
        let format = le_u32(h, 8);
        if format != FORMAT_VERSION {
            return Err(Rejected::Stale(format!("format version {format}, this colstore writes {FORMAT_VERSION}")));
        }
        if Xxh64::digest(0, &h[..72]) != le_u64(h, 72) {
            return Err(Rejected::Invalid("the header checksum does not match".into()));
        }
        let code = le_u32(h, 12);
        let distance = distance_from(code).ok_or_else(|| Rejected::Invalid(format!("unknown distance code {code}")))?;
        Ok(Self {
            label: Label {
                collection_id: le_u64(h, 32).cast_signed(),
                version: le_u64(h, 40).cast_signed(),
                stamp: le_u64(h, 48).cast_signed(),
                dim: le_u32(h, 16) as usize,
                distance,
            },
            count: le_u64(h, 24),
            payload_bytes: le_u64(h, 56),
            body_hash: le_u64(h, 64),
        })
    }

    /// Rows with int8 codes.
    fn quantised_rows(&self) -> u64 {
        if self.label.distance == Distance::Euclid { 0 } else { self.count }
    }

    /// Zero bytes between the payloads and the vectors, `None` on overflow.
    fn padding(&self) -> Option<u64> {
        let end = (HEADER_LEN as u64).checked_add(self.count.checked_mul(20)?)?.checked_add(self.payload_bytes)?;
        Some((VECTOR_ALIGN - end % VECTOR_ALIGN) % VECTOR_ALIGN)
    }

    /// The body's length as this header describes it, `None` on overflow.
    fn body_len(&self) -> Option<u64> {
        let n = self.count;
        let d = self.label.dim as u64;
        let q = self.quantised_rows();
        n.checked_mul(20)?
            .checked_add(self.payload_bytes)?
            .checked_add(self.padding()?)?
            .checked_add(n.checked_mul(d)?.checked_mul(4)?)?
            .checked_add(q.checked_mul(12)?)?
            .checked_add(q.checked_mul(d)?)
    }
}

/// A snapshot file whose header (for `label`, `count` rows) and checksums are right for `body`, whatever `body` holds:
/// the fuzz target `snapshot` uses it to reach the body's decoding past the checksums.
#[cfg(feature = "fuzzing")]
pub(crate) fn file_around(body: &[u8], count: u64, label: Label) -> Vec<u8> {
    let probe = Header { label, count, payload_bytes: 0, body_hash: 0 };
    let rows = probe.body_len().unwrap_or(u64::MAX);
    let header = Header { label, count, payload_bytes: (body.len() as u64).saturating_sub(rows), body_hash: Xxh64::digest(0, body) };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(body);
    out
}

fn invalid(e: impl std::fmt::Display) -> Rejected {
    Rejected::Invalid(e.to_string())
}

/// Takes the sections of a mapped body in order.
struct Sections<'a> {
    bytes: &'a [u8],
    /// Offset in the file of the next section.
    at: usize,
}

impl<'a> Sections<'a> {
    /// The next `len` bytes. The header's lengths were checked against the file's, so they are there.
    fn take(&mut self, len: usize) -> Result<&'a [u8], Rejected> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| invalid("the body is shorter than its header says"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }
}

/// `count` values of `T` at the next section: read in place when the machine stores them as the file does and the
/// section is aligned for them, else decoded (from `W` little-endian bytes each).
fn rows<T: crate::mapped::Plain, const W: usize>(
    map: &std::sync::Arc<Mapping>,
    sections: &mut Sections<'_>,
    count: usize,
    decode: impl Fn([u8; W]) -> T,
) -> Result<Rows<T>, Rejected> {
    let at = sections.at;
    let bytes = sections.take(count.checked_mul(W).ok_or_else(|| invalid("the collection does not fit in memory"))?)?;
    if cfg!(target_endian = "little")
        && let Some(mapped) = MappedSlice::new(map, at, count)
    {
        return Ok(Rows::Mapped(mapped));
    }
    Ok(Rows::Owned(bytes.as_chunks::<W>().0.iter().map(|b| decode(*b)).collect()))
}

/// Loads the snapshot file at `path` if it shows the collection as `expected` describes it.
///
/// # Errors
/// Why the file cannot be used: [`Rejected::Missing`], [`Rejected::Stale`] or [`Rejected::Invalid`].
pub(crate) fn read(path: &Path, expected: &Label) -> Result<Snapshot, Rejected> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Rejected::Missing),
        Err(e) => return Err(Rejected::Invalid(format!("cannot open it: {e}"))),
    };
    let len = file.metadata().map_err(invalid)?.len();
    if len < HEADER_LEN as u64 {
        return Err(Rejected::Invalid(format!("{len} bytes, shorter than the header")));
    }
    let map = Mapping::of(&file).map_err(|e| invalid(format!("cannot map it: {e}")))?;
    let bytes = map.bytes();
    let head: &[u8; HEADER_LEN] = bytes.first_chunk().ok_or_else(|| invalid("the file shrank while it was opened"))?;
    let header = Header::decode(head)?;
    if header.label != *expected {
        return Err(Rejected::Stale(format!("built from {:?}, the database is at {expected:?}", header.label)));
    }
    let body_len = header.body_len().ok_or_else(|| invalid("the header describes an impossible size"))?;
    let mapped_len = bytes.len() as u64;
    if mapped_len.checked_sub(HEADER_LEN as u64) != Some(body_len) {
        return Err(Rejected::Invalid(format!("{mapped_len} bytes, the header describes {}", body_len.saturating_add(HEADER_LEN as u64))));
    }
    if Xxh64::digest(0, &bytes[HEADER_LEN..]) != header.body_hash {
        return Err(invalid("the body checksum does not match"));
    }
    let too_big = || invalid("the collection does not fit in memory");
    let n = usize::try_from(header.count).map_err(|_| too_big())?;
    let dim = expected.dim;
    let floats = n.checked_mul(dim).ok_or_else(too_big)?;
    let q = usize::try_from(header.quantised_rows()).map_err(|_| too_big())?;
    let mut sections = Sections { bytes, at: HEADER_LEN };

    let ids = sections.take(n * 16)?.as_chunks::<16>().0.iter().map(|b| PointId(Uuid::from_bytes(*b))).collect();
    let lengths = sections.take(n * 4)?.as_chunks::<4>().0.iter().map(|b| u32::from_le_bytes(*b) as usize);
    let payload_bytes = usize::try_from(header.payload_bytes).map_err(|_| too_big())?;
    let text = MappedStr::new(&map, sections.at, payload_bytes).map_err(Rejected::Invalid)?;
    sections.take(payload_bytes)?;
    let payloads = Payloads::mapped(text, lengths).map_err(Rejected::Invalid)?;
    let padding = usize::try_from(header.padding().ok_or_else(too_big)?).map_err(|_| too_big())?;
    if sections.take(padding)?.iter().any(|b| *b != 0) {
        return Err(invalid("the padding before the vectors is not zero"));
    }
    let vectors = rows::<f32, 4>(&map, &mut sections, floats, f32::from_le_bytes)?;
    let quantised = sections
        .take(q.checked_mul(12).ok_or_else(too_big)?)?
        .as_chunks::<12>()
        .0
        .iter()
        .map(|b| Quantised {
            scale: f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            error: f32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            l1: f32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        })
        .collect();
    let codes = rows::<i8, 1>(&map, &mut sections, q.checked_mul(dim).ok_or_else(too_big)?, i8::from_le_bytes)?;
    let parts = Parts { ids, payloads, vectors, codes, quantised };
    Snapshot::from_parts(expected.collection_id, expected.version, dim, expected.distance, parts).map_err(Rejected::Invalid)
}

/// Writes the body through a buffer, hashing every byte written.
struct BodyWriter {
    file: File,
    hasher: Xxh64,
    buf: Vec<u8>,
    written: u64,
}

impl BodyWriter {
    fn flush(&mut self) -> io::Result<()> {
        self.hasher.update(&self.buf);
        self.file.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// `n` zeroed bytes at the end of the buffer to fill in (`n <= BLOCK`).
    fn room(&mut self, n: usize) -> io::Result<&mut [u8]> {
        if self.buf.len() + n > BLOCK {
            self.flush()?;
        }
        let start = self.buf.len();
        self.buf.resize(start + n, 0);
        Ok(&mut self.buf[start..])
    }

    fn bytes(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let k = bytes.len().min(BLOCK);
            self.room(k)?.copy_from_slice(&bytes[..k]);
            bytes = &bytes[k..];
        }
        Ok(())
    }

    /// Writes each item as the `W` bytes `encode` makes of it.
    fn records<T, const W: usize>(&mut self, items: &[T], encode: impl Fn(&T) -> [u8; W]) -> io::Result<()> {
        for block in items.chunks(BLOCK / W) {
            let out = self.room(block.len() * W)?;
            for (dst, item) in out.as_chunks_mut::<W>().0.iter_mut().zip(block) {
                *dst = encode(item);
            }
        }
        Ok(())
    }
}

/// Writes `snap` (whose rows the database holds at `stamp`) as the snapshot file of its collection in `dir`,
/// atomically: a temporary file, synced, renamed over the old file, then the folder synced. Returns the file's size.
///
/// # Errors
/// Any I/O error (the temporary file is removed), or a payload longer than 4 GiB.
pub(crate) fn write(dir: &Path, snap: &Snapshot, stamp: i64) -> io::Result<u64> {
    fs::create_dir_all(dir)?;
    let id = snap.collection_id;
    let temp = dir.join(format!(".{id}{SUFFIX}.{}-{}{TEMP_SUFFIX}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = write_temp(&temp, snap, stamp).and_then(|size| {
        fs::rename(&temp, path_for(dir, id))?;
        colstore_durable::sync_dir(dir)?;
        Ok(size)
    });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_temp(temp: &Path, snap: &Snapshot, stamp: i64) -> io::Result<u64> {
    let parts = snap.parts();
    let lengths = parts
        .payloads
        .iter()
        .map(|p| u32::try_from(p.len()))
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a payload is longer than 4 GiB"))?;
    let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    file.write_all(&[0; HEADER_LEN])?;
    let mut body = BodyWriter { file, hasher: Xxh64::new(0), buf: Vec::with_capacity(BLOCK), written: 0 };
    body.records(parts.ids, |id| *id.0.as_bytes())?;
    body.records(&lengths, |l| l.to_le_bytes())?;
    for p in parts.payloads.iter() {
        body.bytes(p.as_bytes())?;
    }
    let payload_bytes: u64 = lengths.iter().map(|l| u64::from(*l)).sum();
    let count = parts.ids.len() as u64;
    let label = Label { collection_id: snap.collection_id, version: snap.version, stamp, dim: snap.dim, distance: snap.distance };
    let shape = Header { label, count, payload_bytes, body_hash: 0 };
    let padding = shape.padding().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the collection is too large"))?;
    body.bytes(&[0; VECTOR_ALIGN as usize][..padding as usize])?;
    body.records(parts.vectors, |x| x.to_le_bytes())?;
    body.records(parts.quantised, |q| {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&q.scale.to_le_bytes());
        b[4..8].copy_from_slice(&q.error.to_le_bytes());
        b[8..12].copy_from_slice(&q.l1.to_le_bytes());
        b
    })?;
    body.records(parts.codes, |c| c.to_le_bytes())?;
    body.flush()?;
    let header = Header { body_hash: body.hasher.finish(), ..shape };
    debug_assert_eq!(header.body_len(), Some(body.written));
    let mut file = body.file;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header.encode())?;
    file.sync_all()?;
    Ok(HEADER_LEN as u64 + body.written)
}

/// Removes the snapshot file of a collection, if any.
pub(crate) fn remove(dir: &Path, collection_id: i64) -> io::Result<()> {
    match fs::remove_file(path_for(dir, collection_id)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes from `dir` the snapshot files of dropped collections (row ids up to `last_id`, the largest id handed out
/// when `live` was read, that are not in `live`; later ids may belong to collections created since) and temporary
/// files older than [`TEMP_MAX_AGE`] (left by writers that died); other files are left alone. Returns how many were
/// removed.
pub(crate) fn clean(dir: &Path, live: &[i64], last_id: i64) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let dead = if let Some(id) = name.strip_suffix(SUFFIX).and_then(|s| s.parse::<i64>().ok().filter(|id| id.to_string() == s)) {
            id <= last_id && !live.contains(&id)
        } else if name.starts_with('.') && name.contains(SUFFIX) && name.ends_with(TEMP_SUFFIX) {
            entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > TEMP_MAX_AGE))
        } else {
            false
        };
        if dead && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(distance: Distance) -> Label {
        Label { collection_id: 7, version: 42, stamp: -3, dim: 5, distance }
    }

    fn sample(distance: Distance, n: usize) -> Snapshot {
        let l = label(distance);
        let mut s = Snapshot::new(l.collection_id, l.version, l.dim, distance);
        for i in 0..n {
            let v: Vec<f32> = (0..l.dim).map(|j| (i * 31 + j * 7) as f32 % 11.0 - 5.0).collect();
            let payload = if i % 3 == 0 { format!("{{\"n\":{i},\"t\":\"é{}\"}}", "x".repeat(i)) } else { "{}".to_owned() };
            s.upsert(PointId(Uuid::from_u128(i as u128 * 977)), &v, payload.into_boxed_str(), None);
        }
        s
    }

    #[test]
    fn a_written_file_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for distance in [Distance::Cosine, Distance::Dot, Distance::Euclid] {
            for n in [0, 1, 100, 1001] {
                let snap = sample(distance, n);
                let size = write(dir.path(), &snap, -3).expect("write");
                let path = path_for(dir.path(), 7);
                assert_eq!(fs::metadata(&path).unwrap().len(), size);
                let back = read(&path, &label(distance)).expect("read");
                assert!(snap.same_rows(&back), "{distance:?}, {n} points");
                assert_eq!((back.collection_id, back.version), (7, 42));
                assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
            }
        }
    }

    #[test]
    fn a_copy_loaded_from_a_file_takes_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut reference = sample(Distance::Cosine, 300);
        write(dir.path(), &reference, -3).unwrap();
        let path = path_for(dir.path(), 7);
        let file_before = fs::read(&path).unwrap();
        let mut loaded = read(&path, &label(Distance::Cosine)).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(loaded.is_mapped(), (true, true), "vectors and codes are read in place");
        }
        for snap in [&mut reference, &mut loaded] {
            snap.upsert(PointId(Uuid::from_u128(5 * 977)), &[1.0, 0.0, 0.0, 0.0, 0.0], "{\"new\":1}".into(), None);
            snap.upsert(PointId(Uuid::from_u128(1)), &[0.0, 1.0, 0.0, 0.0, 0.0], "{}".into(), None);
            snap.remove(&PointId(Uuid::from_u128(0)));
            snap.remove(&PointId(Uuid::from_u128(299 * 977)));
        }
        assert_eq!(loaded.len(), 299, "one replaced, one added, two removed");
        assert!(reference.same_rows(&loaded));
        assert_eq!(loaded.is_mapped(), (false, false), "a write copies the mapped arrays out");
        assert_eq!(fs::read(&path).unwrap(), file_before, "writes to a loaded copy never reach its file");
    }

    /// Files of format version 1 (no padding before the vectors) are stale: the next load rebuilds them.
    #[test]
    fn files_of_the_first_format_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &sample(Distance::Dot, 3), -3).unwrap();
        let path = path_for(dir.path(), 7);
        let mut bytes = fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let check = Xxh64::digest(0, &bytes[..72]);
        bytes[72..80].copy_from_slice(&check.to_le_bytes());
        fs::write(&path, &bytes).unwrap();
        let e = read(&path, &label(Distance::Dot)).expect_err("stale");
        assert!(matches!(&e, Rejected::Stale(why) if why.contains("format version 1")), "{e}");
    }

    /// The vectors start at a file offset that is a multiple of 64, whatever the payloads' length, and the bytes
    /// before them are zero.
    #[test]
    fn the_vectors_are_aligned_for_every_payload_length() {
        let dir = tempfile::tempdir().unwrap();
        for extra in 0..70 {
            let mut snap = Snapshot::new(7, 42, 5, Distance::Euclid);
            snap.upsert(
                PointId(Uuid::from_u128(1)),
                &[1.0, 2.0, 3.0, 4.0, 5.0],
                format!("{{\"t\":\"{}\"}}", "y".repeat(extra)).into(),
                None,
            );
            write(dir.path(), &snap, -3).unwrap();
            let bytes = fs::read(path_for(dir.path(), 7)).unwrap();
            let payload = le_u64(&bytes, 56) as usize;
            let end = HEADER_LEN + 20 + payload;
            let start = end.next_multiple_of(64);
            assert!(bytes[end..start].iter().all(|b| *b == 0), "padding of {extra}");
            assert_eq!(f32::from_le_bytes(bytes[start..start + 4].try_into().unwrap()), 1.0, "payload of {extra} more bytes");
            let back = read(&path_for(dir.path(), 7), &Label { distance: Distance::Euclid, ..label(Distance::Euclid) }).unwrap();
            assert!(snap.same_rows(&back));
        }
    }

    #[test]
    fn the_header_is_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let snap = sample(Distance::Dot, 4);
        let size = write(dir.path(), &snap, 99).unwrap();
        let bytes = fs::read(path_for(dir.path(), 7)).unwrap();
        assert_eq!(&bytes[..8], b"colsnap\0");
        assert_eq!(le_u32(&bytes, 8), FORMAT_VERSION);
        assert_eq!((le_u32(&bytes, 12), le_u32(&bytes, 16), le_u32(&bytes, 20)), (1, 5, 0));
        assert_eq!((le_u64(&bytes, 24), le_u64(&bytes, 32), le_u64(&bytes, 40), le_u64(&bytes, 48)), (4, 7, 42, 99));
        let payload_bytes = snap.parts().payloads.iter().map(|p| p.len() as u64).sum::<u64>();
        assert_eq!(le_u64(&bytes, 56), payload_bytes);
        assert_eq!(le_u64(&bytes, 64), Xxh64::digest(0, &bytes[HEADER_LEN..]));
        assert_eq!(le_u64(&bytes, 72), Xxh64::digest(0, &bytes[..72]));
        let padding = (HEADER_LEN as u64 + 4 * 20 + payload_bytes).next_multiple_of(64) - (HEADER_LEN as u64 + 4 * 20 + payload_bytes);
        assert_eq!(size, (HEADER_LEN + 4 * (16 + 4 + 5 * 4 + 12 + 5)) as u64 + payload_bytes + padding);
        assert_eq!(size, bytes.len() as u64);
        let ids = snap.parts().ids.iter().flat_map(|id| *id.0.as_bytes()).collect::<Vec<_>>();
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 64], ids, "the ids come first");
        let codes = snap.parts().codes.iter().map(|c| c.to_le_bytes()[0]).collect::<Vec<_>>();
        assert_eq!(&bytes[bytes.len() - 20..], codes, "the codes come last");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..proptest::prelude::ProptestConfig::default() })]

        /// Any damage to a snapshot file (a flipped bit, a removed range, a cut, bytes appended) is rejected, never
        /// loaded and never a panic: both checksums cover every byte. Arbitrary bytes are rejected too.
        #[test]
        fn damaged_or_arbitrary_files_are_rejected(at in 0usize..100_000, how in 0u8..4, len in 1usize..64, junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let dir = tempfile::tempdir().unwrap();
            let path = path_for(dir.path(), 7);
            write(dir.path(), &sample(Distance::Cosine, 40), -3).unwrap();
            let mut bytes = fs::read(&path).unwrap();
            let at = at % bytes.len();
            match how {
                0 => bytes[at] ^= 1 << (len % 8),
                1 => { bytes.drain(at..(at + len).min(bytes.len())); }
                2 => bytes.truncate(at),
                _ => {
                    bytes.extend_from_slice(&junk[..junk.len().min(len)]);
                    bytes.push(0);
                }
            }
            fs::write(&path, &bytes).unwrap();
            proptest::prop_assert!(read(&path, &label(Distance::Cosine)).is_err(), "damage {how} at {at} was loaded");
            fs::write(&path, &junk).unwrap();
            proptest::prop_assert!(read(&path, &label(Distance::Cosine)).is_err());
        }
    }

    #[test]
    fn damage_and_other_states_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), 7);
        assert!(matches!(read(&path, &label(Distance::Cosine)), Err(Rejected::Missing)));
        write(dir.path(), &sample(Distance::Cosine, 50), -3).unwrap();
        let good = fs::read(&path).unwrap();
        for other in [
            Label { version: 43, ..label(Distance::Cosine) },
            Label { stamp: 0, ..label(Distance::Cosine) },
            Label { collection_id: 8, ..label(Distance::Cosine) },
            Label { dim: 4, ..label(Distance::Cosine) },
            label(Distance::Dot),
        ] {
            assert!(matches!(read(&path, &other), Err(Rejected::Stale(_))), "{other:?}");
        }
        // Every single flipped byte, anywhere, is caught.
        for at in (0..good.len()).step_by(3).chain([good.len() - 1]) {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            assert!(matches!(read(&path, &label(Distance::Cosine)), Err(Rejected::Invalid(_) | Rejected::Stale(_))), "byte {at}");
        }
        for cut in [0, 10, HEADER_LEN, HEADER_LEN + 1, good.len() / 2, good.len() - 1] {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(matches!(read(&path, &label(Distance::Cosine)), Err(Rejected::Invalid(_))), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        fs::write(&path, &longer).unwrap();
        assert!(matches!(read(&path, &label(Distance::Cosine)), Err(Rejected::Invalid(_))));
        fs::write(&path, &good).unwrap();
        assert!(read(&path, &label(Distance::Cosine)).is_ok());
    }

    #[test]
    fn clean_removes_dropped_collections_and_old_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["1.snap", "2.snap", "4.snap", "01.snap", "x.snap", "notes.txt", ".2.snap.1-0.tmp", ".3.snap.1-1.tmp"] {
            fs::write(d.join(name), b"x").unwrap();
        }
        let old = SystemTime::now() - TEMP_MAX_AGE - Duration::from_secs(60);
        File::options().write(true).open(d.join(".3.snap.1-1.tmp")).unwrap().set_modified(old).unwrap();
        assert_eq!(clean(d, &[2], 3), 2, "1.snap and the old temporary file; 4 may be a collection created since");
        let mut left: Vec<_> = fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [".2.snap.1-0.tmp", "01.snap", "2.snap", "4.snap", "notes.txt", "x.snap"]);
        remove(d, 2).unwrap();
        remove(d, 2).unwrap();
        assert!(!d.join("2.snap").exists());
    }

    #[test]
    fn the_folder_is_named_after_the_database() {
        assert_eq!(dir_for(Path::new("/s/.colstore/index/embedded.db")), Path::new("/s/.colstore/index/embedded"));
        assert_eq!(dir_for(Path::new("idx")), Path::new("idx.snapshots"));
    }
}
