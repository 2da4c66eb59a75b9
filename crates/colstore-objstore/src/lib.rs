//! The [`BackupStore`](colstore_domain::ports::BackupStore) adapter over [`object_store`]: backup repositories in a
//! local folder (`file:///path`), an S3 bucket or S3-compatible server (`s3://bucket/prefix`), or memory
//! (`memory://`, for tests). Open one with [`ObjectBackupStore::open`] (or [`ObjectBackupStore::open_s3_with`] to
//! configure S3 without environment variables).
//!
//! # Layout
//!
//! Under the folder, the bucket prefix, or the root of the in-memory store (see [`layout`]):
//!
//! ```text
//! objects/<first 2 hex>/<64 hex>   content, zstd-compressed (level 2, one frame with size and checksum)
//! manifests/<backup id>.json       manifests, exactly the bytes given (uncompressed JSON)
//! locks/<lock id>.json             lock objects: a serialised RepoLock
//! ```
//!
//! Anything else (object_store's `#N` staging files left by a crash, foreign files, names that do not parse) is
//! ignored by the listings.
//!
//! # Guarantees
//!
//! - **Content addressing.** An object's name is the SHA-256 of its uncompressed content. `put_object` checks the
//!   id against the data (`Corrupt` if the caller got it wrong), then never rewrites an existing object: a `HEAD`
//!   finds it (`AlreadyPresent`, nothing uploaded), and the write itself is create-only, so two writers racing on
//!   one id store it once.
//! - **Reads are verified.** `get_object` decompresses with a hard cap of 1 GiB and re-hashes; a truncated,
//!   garbled or swapped object is `Corrupt { id, detail }` (detail: what failed), never wrong bytes.
//! - **Create-only manifests.** `put_manifest` fails with `AlreadyExists` rather than replace a manifest.
//! - **Atomic creates** (`capabilities().atomic_create`): enforced by the backend on every backend here: hard links
//!   on `file://`, `If-None-Match: *` on S3, the map's own check in memory. With S3 conditional writes disabled
//!   ([`S3Options::disable_conditional_put`] or `AWS_CONDITIONAL_PUT=disabled`, for servers that reject them),
//!   creates check with a `HEAD` first and `atomic_create` is `false`.
//! - **Durability** (`capabilities().durable_writes`, `file://` only): every write goes to a staging file that is
//!   fsynced before it is linked or renamed into place (object_store's `with_fsync`), then the file and each folder
//!   up to the repository root are fsynced again, so an acknowledged write survives a crash and a crash never leaves
//!   a partial object under its final name. Removing a manifest is made durable too; removing an object or a lock
//!   is not (one that reappears is harmless).
//! - Locks are overwritten in place (a refresh); unreadable lock objects are skipped with a warning, not an error.
//! - Errors: object_store's `NotFound` is `NotFound(<key>)`, `AlreadyExists` is `AlreadyExists(<key>)` (or
//!   `AlreadyPresent` for objects), anything else `Backend { backend: "file" | "s3" | "memory", .. }`. Bad data
//!   never panics.

mod codec;
pub mod layout;
mod location;
mod store;

pub use codec::MAX_OBJECT_SIZE;
pub use location::OpenError;
pub use store::{ObjectBackupStore, S3Options};
