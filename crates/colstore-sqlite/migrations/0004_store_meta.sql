-- colstore schema, version 4: facts about the store itself (issue 11).
--
-- `store_id` is the store's identity, the same UUID as `store_id` in `.colstore/config.toml`: `col init` writes it in
-- both places, and every open compares them, so a database that belongs to another store (copied over this one) is
-- refused instead of being used. A store created before this version has no row; the first open with write access
-- adopts the config's id.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
