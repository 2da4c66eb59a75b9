-- colstore schema, version 8: the full-text index of every document's chunks (issue 16, `TextIndex`).
--
-- `chunk_fts` is contentless (the text lives once, in the document): it holds only FTS5's inverted index, so a
-- snippet is cut from the document's current text. Row ids name chunks: document id * 2^20 + chunk number.
-- `fts_docs` says which content each indexed document's rows were made from. `fts_pending` lists documents to
-- (re)index; triggers fill it in the transaction of every change (a new or changed document, a collection whose
-- chunking changes), and remove a deleted document's rows, so no write path can leave the index behind.
-- `TextIndex::catch_up` indexes what is pending; a keyword search catches up first.
CREATE VIRTUAL TABLE chunk_fts USING fts5 (
    text,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TABLE fts_docs (
    doc_id INTEGER PRIMARY KEY,           -- documents.id
    hash   BLOB    NOT NULL,              -- the content the rows were made from
    chunks INTEGER NOT NULL               -- rows doc_id * 2^20 + 0 .. chunks - 1
) STRICT;

CREATE TABLE fts_pending (
    doc_id INTEGER PRIMARY KEY            -- documents.id
) STRICT;

INSERT INTO fts_pending (doc_id) SELECT id FROM documents;

-- `WHERE NOT EXISTS`, not `INSERT OR IGNORE`: a trigger's conflict clause gives way to the firing statement's (an
-- upsert's is ABORT), so a document written twice before it is indexed would fail its write.
CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN
    INSERT INTO fts_pending (doc_id) SELECT new.id WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE doc_id = new.id);
END;

CREATE TRIGGER documents_fts_update AFTER UPDATE OF hash ON documents WHEN new.hash IS NOT old.hash BEGIN
    INSERT INTO fts_pending (doc_id) SELECT new.id WHERE NOT EXISTS (SELECT 1 FROM fts_pending WHERE doc_id = new.id);
END;

CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN
    DELETE FROM fts_pending WHERE doc_id = old.id;
    DELETE FROM chunk_fts WHERE rowid >= old.id * 1048576 AND rowid < (old.id + 1) * 1048576;
    DELETE FROM fts_docs WHERE doc_id = old.id;
END;

CREATE TRIGGER collections_fts_rechunk AFTER UPDATE OF settings ON collections
WHEN json_extract(new.settings, '$.chunking') IS NOT json_extract(old.settings, '$.chunking') BEGIN
    INSERT INTO fts_pending (doc_id) SELECT d.id FROM documents d
    WHERE d.collection_id = new.id AND NOT EXISTS (SELECT 1 FROM fts_pending p WHERE p.doc_id = d.id);
END;
