-- colstore schema, version 6: what `col add` saw of each source file when it last wrote the file's document
-- (issue 14), so that adding an unchanged tree again reads no file (see `SourceStamp` in the domain).
--
-- A stamp belongs to one state of its document: it is recorded with the document's version, hash and update time
-- and answered only while the document still has all three (any later write, by any command, makes it stale; so does
-- a restore that writes another state with the same version). The foreign key deletes it with its
-- document and carries a key change over. Only `col add` writes here; a store that is never added to from files keeps
-- this table empty.
CREATE TABLE source_stamps (
    collection_id INTEGER NOT NULL,
    key           TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    hash          BLOB    NOT NULL,
    updated_at    INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    ctime_ns      INTEGER NOT NULL,
    inode         INTEGER NOT NULL,       -- the u64 inode number's bits
    options       INTEGER NOT NULL,       -- the u64 options digest's bits
    seen_at_ns    INTEGER NOT NULL,
    PRIMARY KEY (collection_id, key),
    FOREIGN KEY (collection_id, key) REFERENCES documents (collection_id, key) ON DELETE CASCADE ON UPDATE CASCADE
) STRICT, WITHOUT ROWID;
