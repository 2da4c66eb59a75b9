-- colstore schema, version 9: indexes for the filter language (issue 16): tags, sync states, and the metadata fields
-- a user asks to index with `col collection index NAME FIELD` (the collection's `indexed_fields` setting).
--
-- `doc_terms` holds one row per scalar value of an indexed field (each element of an array, as the filter language
-- compares them) and one per tag, so `tag:x`, `field = v` and ranges on an indexed field are lookups in
-- `doc_terms_lookup` instead of a walk of every document of the collection. Triggers keep it in the transaction of
-- every write; `indexed_fields` follows the collections' settings (also through triggers, so create, `col collection
-- index`, restore and import need no code of their own), and filling or dropping a field's rows happens there too.
CREATE TABLE indexed_fields (
    collection_id INTEGER NOT NULL,       -- collections.id
    path          TEXT    NOT NULL,       -- the field's JSON path, `$."a"."b"` (as the filter translation writes it)
    PRIMARY KEY (collection_id, path)
) STRICT;

CREATE TABLE doc_terms (
    collection_id INTEGER NOT NULL,       -- collections.id
    path          TEXT    NOT NULL,       -- an indexed field's JSON path, or '#tag'
    type          TEXT    NOT NULL,       -- json_each's type: integer, real, text, true, false
    value         ANY,
    doc_id        INTEGER NOT NULL        -- documents.id
) STRICT;

-- Both covering: a lookup reads only the index (type before value, so a typed equality or range is one index range),
-- and `doc_terms_doc` answers "does this document have this value" for a condition that does not drive the query.
CREATE INDEX doc_terms_lookup ON doc_terms (collection_id, path, type, value, doc_id);
CREATE INDEX doc_terms_doc ON doc_terms (doc_id, path, type, value);

-- `state:failed` (and the other sync states) as a lookup: the few failed documents of a large collection.
CREATE INDEX sync_ledger_state ON sync_ledger (collection_id, state);

-- The JSON path of a field path `a.b`: segments are [A-Za-z0-9_-] (FieldPath validates), so quoting is safe.
-- (Written out in each trigger: SQLite has no functions of its own.)

CREATE TRIGGER documents_terms_insert AFTER INSERT ON documents BEGIN
    INSERT INTO doc_terms (collection_id, path, type, value, doc_id)
        SELECT new.collection_id, '#tag', 'text', jt.value, new.id FROM json_each(new.tags) jt;
    INSERT INTO doc_terms (collection_id, path, type, value, doc_id)
        SELECT new.collection_id, f.path, je.type, je.value, new.id
        FROM indexed_fields f, json_each(new.meta, f.path) je
        WHERE f.collection_id = new.collection_id AND je.type IN ('integer', 'real', 'text', 'true', 'false')
          AND coalesce(json_type(new.meta, f.path) <> 'object', 0);
END;

CREATE TRIGGER documents_terms_update AFTER UPDATE OF meta, tags ON documents
WHEN new.meta IS NOT old.meta OR new.tags IS NOT old.tags BEGIN
    DELETE FROM doc_terms WHERE doc_id = old.id;
    INSERT INTO doc_terms (collection_id, path, type, value, doc_id)
        SELECT new.collection_id, '#tag', 'text', jt.value, new.id FROM json_each(new.tags) jt;
    INSERT INTO doc_terms (collection_id, path, type, value, doc_id)
        SELECT new.collection_id, f.path, je.type, je.value, new.id
        FROM indexed_fields f, json_each(new.meta, f.path) je
        WHERE f.collection_id = new.collection_id AND je.type IN ('integer', 'real', 'text', 'true', 'false')
          AND coalesce(json_type(new.meta, f.path) <> 'object', 0);
END;

CREATE TRIGGER documents_terms_delete AFTER DELETE ON documents BEGIN
    DELETE FROM doc_terms WHERE doc_id = old.id;
END;

CREATE TRIGGER collections_fields_insert AFTER INSERT ON collections BEGIN
    INSERT INTO indexed_fields (collection_id, path)
        SELECT new.id, '$."' || replace(f.value, '.', '"."') || '"' FROM json_each(new.settings, '$.indexed_fields') f;
END;

CREATE TRIGGER collections_fields_update AFTER UPDATE OF settings ON collections
WHEN json_extract(new.settings, '$.indexed_fields') IS NOT json_extract(old.settings, '$.indexed_fields') BEGIN
    DELETE FROM doc_terms WHERE collection_id = new.id AND path <> '#tag' AND path NOT IN
        (SELECT '$."' || replace(f.value, '.', '"."') || '"' FROM json_each(new.settings, '$.indexed_fields') f);
    DELETE FROM indexed_fields WHERE collection_id = new.id AND path NOT IN
        (SELECT '$."' || replace(f.value, '.', '"."') || '"' FROM json_each(new.settings, '$.indexed_fields') f);
    INSERT INTO doc_terms (collection_id, path, type, value, doc_id)
        SELECT new.id, np.path, je.type, je.value, d.id
        FROM (SELECT '$."' || replace(f.value, '.', '"."') || '"' AS path FROM json_each(new.settings, '$.indexed_fields') f) np
        JOIN documents d ON d.collection_id = new.id
        JOIN json_each(d.meta, np.path) je
        WHERE np.path NOT IN (SELECT path FROM indexed_fields WHERE collection_id = new.id)
          AND je.type IN ('integer', 'real', 'text', 'true', 'false') AND coalesce(json_type(d.meta, np.path) <> 'object', 0);
    INSERT INTO indexed_fields (collection_id, path)
        SELECT new.id, np.path
        FROM (SELECT '$."' || replace(f.value, '.', '"."') || '"' AS path FROM json_each(new.settings, '$.indexed_fields') f) np
        WHERE np.path NOT IN (SELECT path FROM indexed_fields WHERE collection_id = new.id);
END;

CREATE TRIGGER collections_fields_delete AFTER DELETE ON collections BEGIN
    DELETE FROM indexed_fields WHERE collection_id = old.id;
    DELETE FROM doc_terms WHERE collection_id = old.id;
END;

INSERT INTO doc_terms (collection_id, path, type, value, doc_id)
    SELECT d.collection_id, '#tag', 'text', jt.value, d.id FROM documents d, json_each(d.tags) jt;
