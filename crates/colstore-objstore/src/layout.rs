//! Where things live in a repository, relative to its root (a folder, a bucket prefix, or a fresh in-memory store).
//!
//! ```text
//! objects/<first 2 hex>/<64 hex>   zstd-compressed content, named by the SHA-256 of the uncompressed content
//! manifests/<backup id>.json       manifests, stored exactly as given
//! locks/<lock id>.json             lock objects: a serialised `RepoLock`
//! ```
//!
//! Names that do not parse back (temporary files such as object_store's `#1` staging files, foreign files,
//! upper-case hex, an object in the wrong fan-out folder) are not part of the repository and are ignored by listings.

use colstore_domain::ContentHash;
use colstore_domain::ports::BackupId;

/// The folder of objects.
pub const OBJECTS: &str = "objects";
/// The folder of manifests.
pub const MANIFESTS: &str = "manifests";
/// The folder of locks.
pub const LOCKS: &str = "locks";

/// The key of an object: `objects/ab/ab…` (lowercase hex).
pub fn object_key(id: &ContentHash) -> String {
    let hex = id.to_hex();
    format!("{OBJECTS}/{}/{hex}", &hex[..2])
}

/// The key of a manifest: `manifests/<id>.json`.
pub fn manifest_key(id: &BackupId) -> String {
    format!("{MANIFESTS}/{id}.json")
}

/// The key of a lock: `locks/<id>.json`. The id must be valid (see [`valid_lock_id`]).
pub fn lock_key(id: &str) -> String {
    format!("{LOCKS}/{id}.json")
}

/// Whether `id` is a valid lock id: 1–64 characters of `[A-Za-z0-9_-]`.
pub fn valid_lock_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The object a key names, if it is exactly an object key (canonical lowercase hex in the right fan-out folder).
pub fn parse_object_key(key: &str) -> Option<ContentHash> {
    let rest = key.strip_prefix(OBJECTS)?.strip_prefix('/')?;
    let (fan, hex) = rest.split_once('/')?;
    if fan.len() != 2 || !hex.starts_with(fan) {
        return None;
    }
    let id = ContentHash::parse(hex).ok()?;
    (id.to_hex() == hex).then_some(id)
}

/// The manifest a key names, if it is exactly a manifest key.
pub fn parse_manifest_key(key: &str) -> Option<BackupId> {
    let name = key.strip_prefix(MANIFESTS)?.strip_prefix('/')?.strip_suffix(".json")?;
    BackupId::parse(name).ok()
}

/// The lock id a key names, if it is exactly a lock key.
pub fn parse_lock_key(key: &str) -> Option<&str> {
    let id = key.strip_prefix(LOCKS)?.strip_prefix('/')?.strip_suffix(".json")?;
    valid_lock_id(id).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_names_do_not_parse() {
        let id = ContentHash::of(b"x");
        let key = object_key(&id);
        assert_eq!(key, format!("objects/{}/{}", &id.to_hex()[..2], id.to_hex()));
        assert_eq!(parse_object_key(&key), Some(id));
        assert_eq!(parse_object_key(&format!("{key}#1")), None, "staging file");
        assert_eq!(parse_object_key(&key.to_uppercase()), None);
        assert_eq!(parse_object_key(&format!("objects/zz/{}", id.to_hex())), None, "wrong fan-out folder");
        assert_eq!(parse_object_key(&format!("objects/{}", id.to_hex())), None);
        assert_eq!(parse_object_key(&format!("{}/{}", &key, "x")), None);
        let upper = format!("objects/{}/{}", &id.to_hex()[..2], id.to_hex().to_uppercase());
        assert_eq!(parse_object_key(&upper), None, "only canonical lowercase names");

        let b = BackupId::parse("20240101T000000Z-0a1b2c3d").unwrap();
        assert_eq!(parse_manifest_key(&manifest_key(&b)), Some(b));
        assert_eq!(parse_manifest_key("manifests/x.json.tmp"), None);
        assert_eq!(parse_manifest_key("manifests/a b.json"), None);
        assert_eq!(parse_lock_key(&lock_key("host-1_2")), Some("host-1_2"));
        assert_eq!(parse_lock_key("locks/.json"), None);
        assert_eq!(parse_lock_key("locks/a.json#3"), None);
    }

    #[test]
    fn lock_ids_are_validated() {
        assert!(valid_lock_id("a"));
        assert!(valid_lock_id(&"x".repeat(64)));
        assert!(!valid_lock_id(&"x".repeat(65)));
        for bad in ["", "a/b", "..", "a.b", "a b", "é"] {
            assert!(!valid_lock_id(bad), "{bad:?}");
        }
    }
}
