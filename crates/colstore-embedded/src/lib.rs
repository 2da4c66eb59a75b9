//! The embedded [`VectorIndex`]: in-process, exact, persisted in its own SQLite database inside the store
//! (`.colstore/index/embedded.db`).
//!
//! - **Storage.** One SQLite database through sqlx (bundled SQLite, WAL, `synchronous = FULL`, a busy timeout,
//!   migrations in `migrations/` embedded in the binary). Table `index_collections` holds each collection's name,
//!   dimension, distance, a version counter and a write stamp; table `points` one row per point: the 16 bytes of its
//!   UUID, its payload as JSON text and its vector as little-endian `f32`s.
//! - **Writes.** Every write is one `BEGIN IMMEDIATE` transaction that also bumps the collection's version (and
//!   draws a new random write stamp), and is durable when the call returns (it survives `kill -9` and power loss). A
//!   batch is all-or-nothing. Cosine vectors are normalised on write, as Qdrant does.
//! - **Search.** Exact top-k over an in-memory copy of the collection: every vector in one contiguous `Vec<f32>`,
//!   scanned by auto-vectorised kernels on up to [`std::thread::available_parallelism`] threads. Cosine and dot
//!   collections also keep int8 codes with rigorous error bounds, so a search reads a quarter of the bytes and
//!   rescores in `f32` only the points that can still be in the top k: the result is bit-for-bit the full scan's.
//!   Scores are higher-is-closer (Euclidean distances negated), ties are broken by id. The copy is loaded on first
//!   use and labelled with the collection's row id and version; each search compares that label with the database
//!   (one indexed read), so writes made by another process or another handle are always seen. Writes made through
//!   the same handle are applied to the copy in place instead of forcing a reload.
//! - **Snapshot files.** Each `col search` is a new process, and decoding a large collection from SQLite and
//!   quantising it again takes seconds. So the prepared copy is also kept in a file beside the database, one per
//!   collection: `.colstore/index/embedded/<collection row id>.snap` (in general `DIR/NAME/<id>.snap` for the database
//!   `DIR/NAME.db`). It holds the ids, payload texts, vectors, int8 codes and their bounds in a versioned
//!   little-endian format with a header (magic `colsnap\0`, format version, dimension, distance, count, and the
//!   collection's row id, version and write stamp it was built from) and XXH64 checksums of the header and of the
//!   body; the layout is documented in `src/sidecar.rs`. A load maps the file and uses it when its label equals the
//!   collection's row in the database and both checksums hold (otherwise it loads from the database): the vectors
//!   and int8 codes are then read in place, where the page cache holds them, until the first write through the copy
//!   copies them out (`src/mapped.rs`; sound because no file is ever changed in place, only replaced by a rename). The
//!   database stays the source of truth: the write stamp (a random number every write replaces, with the version;
//!   schema version 2) tells apart states that share an id and a version, as after the database was deleted and
//!   created anew or restored from a copy. [`EmbeddedIndex::load_stats`] says which path the loads took.
//! - **When files are written.** After every load from the database of a collection of at least 65 536 floats (for
//!   smaller ones the database is as fast): the first search after another process changed the collection pays the
//!   database load and the write. Writes through a handle do not rewrite the file (the copy in memory is updated in
//!   place; the file goes stale and is rebuilt by the next process that loads the collection), nor does dropping the
//!   handle. A file is written to `.<id>.snap.<pid>-<n>.tmp` in the same folder, synced, renamed over the old file,
//!   and the folder synced, so `kill -9` or a power loss leaves the old file, the new one, or a temporary file that
//!   no reader looks at; a torn or damaged file fails its checksum and is replaced. `drop_collection` removes the
//!   collection's file; writing a file also removes the files of collections dropped by other means and temporary
//!   files older than 15 minutes. Failing to write a file (e.g. a read-only folder) only costs time and is logged.
//! - **Filters** are evaluated with [`Filter::matches`], the reference semantics, so every filter is supported.
//!   Searches use a per-filter mask remembered until the next write; `count` and `delete_by_filter` use it too when
//!   the copy is current, and otherwise read payloads from the database. A filter that pins the document key
//!   (`key = …`, `key in […]`) reads only that document's rows, through an index on the payload's key.
//! - **Scroll** reads the database in id order (UUID byte order = order of the lowercase hyphenated strings), with
//!   Qdrant's paging: `from` inclusive, `next` = the first id of the next page; a `limit` of 0 is an error.
//!
//! The code: `index.rs` (the handle, its database, its in-memory copies), `port.rs` (the `VectorIndex` methods),
//! `rows.rs` (which rows a filtered read visits), `codec.rs` (ids, vectors and payloads in the database),
//! `snapshot.rs` (the in-memory copy and its search), `kernel.rs` (the scoring loops), `sidecar.rs` (snapshot files),
//! `mapped.rs` (mapped files and the arrays that may live in one),
//! `colstore_durable::xxh64` (their checksum). `bench.rs` (test builds only) times the search and the cold load.

#[cfg(test)]
mod bench;
mod codec;
mod index;
mod kernel;
mod mapped;
mod port;
mod rows;
mod sidecar;
mod snapshot;

pub use index::{EmbeddedIndex, LoadStats};

/// Entry points for the fuzz targets in `fuzz/` (`cargo xtask fuzz snapshot`); not a stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use crate::sidecar::{Label, file_around, path_for, read};

    /// The label every fuzzed file is read for (collection 7, five dimensions, cosine).
    const LABEL: Label = Label { collection_id: 7, version: 42, stamp: -3, dim: 5, distance: colstore_domain::Distance::Cosine };

    fn read_file(file: &[u8]) -> bool {
        let dir = std::env::temp_dir().join(format!("colstore-fuzz-snapshot-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = path_for(&dir, 7);
        std::fs::write(&path, file).is_ok() && read(&path, &LABEL).is_ok()
    }

    /// Reads `bytes` as a whole snapshot file; whether it was accepted.
    pub fn read_snapshot_file(bytes: &[u8]) -> bool {
        read_file(bytes)
    }

    /// Reads `body` behind a header made right for it (label, row count from `rows`, sizes and checksums), so the
    /// body's decoding is reached; whether it was accepted.
    pub fn read_snapshot_body(rows: u8, body: &[u8]) -> bool {
        let per_row = 20 + 5 * 4 + 12 + 5;
        let count = u64::from(rows) % (body.len() as u64 / per_row + 1);
        read_file(&file_around(body, count, LABEL))
    }
}
