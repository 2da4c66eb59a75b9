-- colstore schema, version 2: the durable job queue, the sync ledger and the embedding cache (PRODUCT §3, §5, §6).
--
-- All times are ms since the epoch, taken from the adapter's Clock (never from SQLite's own clock).

-- Jobs. A job is claimed by one atomic UPDATE ... RETURNING that sets `worker`, a new fencing `token` and
-- `lease_expires`; every later call of the worker must present the same worker and token.
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL,
    dedup_key     TEXT,                   -- at most one *pending* job per key (index below)
    payload       TEXT    NOT NULL,       -- JSON
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead', 'cancelled')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_after     INTEGER NOT NULL,       -- not claimable before this time
    worker        TEXT,                   -- the last claimant
    token         INTEGER NOT NULL DEFAULT 0,  -- fencing token: +1 on every claim
    lease_expires INTEGER,                -- set while running
    errors        TEXT    NOT NULL DEFAULT '[]',  -- JSON array of strings, oldest first
    progress      TEXT,                   -- JSON, reported by heartbeats
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX jobs_dedup_pending ON jobs (dedup_key) WHERE state = 'pending';
-- Claiming looks for due pending jobs (state, run_after) and expired running ones (state; few at any time), so done
-- jobs piling up never slow it down.
CREATE INDEX jobs_claim ON jobs (state, run_after, id);

-- The sync ledger: per document, what the vector index holds for it and whether that is current.
-- A row exists for every document, plus one per deleted document whose deletion is not yet projected.
CREATE TABLE sync_ledger (
    collection_id    INTEGER NOT NULL REFERENCES collections (id),
    key              TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'synced', 'failed')),
    projected_hash   BLOB,                -- content hash the index's chunks were made from; NULL: nothing projected
    projected_chunks INTEGER,             -- how many chunks (points) the index holds; NULL with projected_hash
    attempts         INTEGER NOT NULL DEFAULT 0,  -- failed attempts since the last success
    error            TEXT,                -- the last error, when failed
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (collection_id, key)
) STRICT, WITHOUT ROWID;

-- No index on `state`: the sync pages through a collection's rows in key order (the primary key) and so reads each
-- row once per pass whatever the mix of states, and `counts` reads them all anyway; an index would only slow ingest.

-- The embedding cache: an embedding is paid for once. `embedder` is the EmbedderId's display form (kind, model,
-- dimension); `vector` holds little-endian f32s. A rowid table (not WITHOUT ROWID): vectors are kilobytes, far
-- beyond the row size for which SQLite recommends WITHOUT ROWID.
CREATE TABLE embedding_cache (
    embedder   TEXT NOT NULL,
    chunk_hash BLOB NOT NULL,
    vector     BLOB NOT NULL,
    PRIMARY KEY (embedder, chunk_hash)
) STRICT;

-- Documents written before this version have never been projected: they start pending, and each collection that
-- has some gets its sync job, as a put would have enqueued.
INSERT INTO sync_ledger (collection_id, key, state, attempts, updated_at)
SELECT collection_id, key, 'pending', 0, updated_at FROM documents;

INSERT INTO jobs (kind, dedup_key, payload, state, attempts, max_attempts, run_after, created_at, updated_at)
SELECT 'sync', 'sync:' || c.name, json_object('collection', c.name), 'pending', 0, 10, 0, m.t, m.t
FROM collections c
JOIN (SELECT collection_id, max(updated_at) AS t FROM documents GROUP BY collection_id) m ON m.collection_id = c.id
ORDER BY c.name;
