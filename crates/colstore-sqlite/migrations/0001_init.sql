-- colstore schema, version 1.
--
-- Content is content-addressed: one `blobs` row per distinct SHA-256, shared by every document (in any collection)
-- with that content. Reference counts are maintained by triggers on `documents`, inside the same transaction as the
-- document change, so they can never drift from the truth. `blobs` rows stay small (the triggers rewrite them on
-- every reference change); the bytes live in `blob_data` (contents up to 1 MiB, one row) or `blob_parts` (larger
-- contents in 1 MiB parts, so they can be written and read as streams).

CREATE TABLE collections (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    settings   TEXT    NOT NULL,          -- JSON CollectionSettings
    created_at INTEGER NOT NULL           -- ms since the epoch
) STRICT;

CREATE TABLE blobs (
    id          INTEGER PRIMARY KEY,
    hash        BLOB UNIQUE,              -- SHA-256; NULL only inside the transaction that streams it in
    size        INTEGER NOT NULL,         -- logical bytes
    stored_size INTEGER NOT NULL,         -- bytes at rest (after compression)
    codec       INTEGER NOT NULL,         -- blob_data: 0 raw, 1 zstd
    parts       INTEGER NOT NULL,         -- 0: one row in blob_data; n: n rows in blob_parts
    refcount    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE blob_data (
    blob_id INTEGER PRIMARY KEY REFERENCES blobs (id),
    data    BLOB NOT NULL
) STRICT;

CREATE INDEX blobs_garbage ON blobs (refcount) WHERE refcount <= 0;

CREATE TABLE blob_parts (
    blob_id INTEGER NOT NULL REFERENCES blobs (id),
    seq     INTEGER NOT NULL,
    codec   INTEGER NOT NULL,             -- 0 raw, 1 zstd
    data    BLOB    NOT NULL,
    UNIQUE (blob_id, seq)
) STRICT;

CREATE TABLE documents (
    id            INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections (id),
    key           TEXT    NOT NULL,       -- BINARY collation: byte order
    hash          BLOB    NOT NULL,
    size          INTEGER NOT NULL,
    meta          TEXT    NOT NULL,       -- JSON object
    tags          TEXT    NOT NULL,       -- JSON array of strings, sorted
    version       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (collection_id, key)
) STRICT;

CREATE INDEX documents_hash ON documents (hash);
CREATE INDEX documents_updated ON documents (collection_id, updated_at);

CREATE TRIGGER documents_ref_insert AFTER INSERT ON documents BEGIN
    UPDATE blobs SET refcount = refcount + 1 WHERE hash = NEW.hash;
END;

CREATE TRIGGER documents_ref_delete AFTER DELETE ON documents BEGIN
    UPDATE blobs SET refcount = refcount - 1 WHERE hash = OLD.hash;
END;

CREATE TRIGGER documents_ref_update AFTER UPDATE OF hash ON documents WHEN OLD.hash IS NOT NEW.hash BEGIN
    UPDATE blobs SET refcount = refcount - 1 WHERE hash = OLD.hash;
    UPDATE blobs SET refcount = refcount + 1 WHERE hash = NEW.hash;
END;
