-- colstore schema, version 3: the filesystem storage mode (PRODUCT §4, §8).
--
-- In filesystem mode a document's bytes live in a plain file (`<collection folder>/<key>`) and everything else stays
-- in `documents`, `sync_ledger` and `jobs` exactly as in sqlite mode; `blobs` is not used (rows left by a store that
-- was converted from sqlite mode are garbage for `gc`). Both tables start empty, so a sqlite-mode store migrates
-- without a change in behaviour.

-- What colstore knows about each document's file: its path on disk when that differs from the key (a name stored in
-- another Unicode normalisation form than the key's NFC), and its stat when it was last written or reconciled, which
-- lets reconciliation skip files whose (size, mtime, inode) did not change. No row: the stat is unknown (reconcile
-- hashes the file) and the path is the key.
--
-- The row belongs to its document: the foreign key deletes it with the document and carries a key change (a
-- reconciled rename) over, inside the transaction that changes the document. A sqlite-mode put never changes a
-- document's key, so it pays nothing for this; a delete looks the (empty) table up once per document.
CREATE TABLE file_state (
    collection_id INTEGER NOT NULL,
    key           TEXT    NOT NULL,
    path          TEXT,                   -- NULL: the path is the key
    size          INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,       -- nanoseconds since the epoch
    inode         INTEGER NOT NULL,       -- the u64 inode number's bits (0 where the platform has none)
    PRIMARY KEY (collection_id, key),
    FOREIGN KEY (collection_id, key) REFERENCES documents (collection_id, key) ON DELETE CASCADE ON UPDATE CASCADE
) STRICT, WITHOUT ROWID;

-- The intent log of file writes, for crash safety. A write is recorded here in the same transaction as the document
-- change it belongs to, and the row is deleted once the file is in place (or removed). After a crash, the rows left
-- say exactly which files to finish:
--   'put':    the new content was staged (written and fsynced under a temporary name, `token`) before the
--             transaction; it still has to be renamed over the key's path. Readers read the staged file meanwhile.
--             `path`, when set, is an old file of the document under another name (another Unicode form) to remove
--             once the new one is in place.
--   'remove': the document was deleted; its file `path` (NULL: the key) still has to be removed, and a recovery
--             removes it only while it still holds `hash` (anything else is a new file someone put there).
-- A newer intent for the same (collection, key) replaces an older one in the writer's transaction, so files are put
-- in place in the order their documents were committed. The collection is named, not referenced: deleting a
-- collection deletes its row before its files are gone.
CREATE TABLE file_writes (
    id         INTEGER PRIMARY KEY,
    collection TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    op         TEXT    NOT NULL CHECK (op IN ('put', 'remove')),
    token      TEXT,                      -- put: the staged file's name in the collection's folder
    path       TEXT,                      -- see above
    hash       BLOB    NOT NULL,          -- put: the staged content's SHA-256; remove: the deleted content's
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL           -- ms since the epoch
) STRICT;

CREATE INDEX file_writes_key ON file_writes (collection, key);
