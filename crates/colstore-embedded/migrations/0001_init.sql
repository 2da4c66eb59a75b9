-- colstore embedded vector index, schema version 1.
--
-- One row per index collection and one per point. Vectors are little-endian f32 BLOBs (cosine vectors already
-- normalised), payloads the JSON of `colstore_domain::Payload`. `version` is bumped by every write to a collection in
-- the write's own transaction; a process compares (id, version) with what its in-memory copy was loaded at, so it sees
-- writes made by any other process. `id` is AUTOINCREMENT so a dropped and re-created collection never reuses an id,
-- and a stale in-memory copy of the old one can never pass for the new one.

CREATE TABLE index_collections (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name      TEXT    NOT NULL UNIQUE,
    dimension INTEGER NOT NULL CHECK (dimension BETWEEN 1 AND 65536),
    distance  TEXT    NOT NULL CHECK (distance IN ('cosine', 'dot', 'euclid')),
    version   INTEGER NOT NULL DEFAULT 0
) STRICT;

-- The primary key orders points by the bytes of their UUID, which is the order of the lowercase hyphenated strings,
-- so scrolling is an index range scan. The payload comes before the vector so scans that only need payloads
-- (filtered count, delete by filter) stop reading each row before the vector.
CREATE TABLE points (
    collection_id INTEGER NOT NULL REFERENCES index_collections (id) ON DELETE CASCADE,
    id            BLOB    NOT NULL CHECK (length(id) = 16),
    payload       TEXT    NOT NULL,
    vector        BLOB    NOT NULL,
    PRIMARY KEY (collection_id, id)
) STRICT;

-- Filters that pin the document key (`key = "a.md"`, `key in [...]`) read only that document's rows through this
-- index, so per-document reads and deletes cost O(chunks) instead of O(collection). The whole filter is still
-- evaluated on those rows, so results are exactly `Filter::matches`.
CREATE INDEX points_by_key ON points (collection_id, json_extract(payload, '$.key'));
