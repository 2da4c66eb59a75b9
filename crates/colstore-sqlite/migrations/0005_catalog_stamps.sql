-- colstore schema, version 5: a stamp per collection that changes with its file catalog (issue 14).
--
-- Reconciling a filesystem-mode collection compares a walk of its folder with the catalog (every document's key, hash,
-- size, path and recorded stat). Reading 100 000 entries out of SQLite costs more than the walk itself, so the
-- catalog is also kept in a file beside the database (`catalog-cache/`, see `src/catalog_cache.rs`), labelled with
-- this stamp. The file is used only while its label equals the stamp on record; every change to a field of the
-- catalog sets a new random stamp in the same transaction, through the triggers below, so no write path can forget.
--
-- A collection has a row only once its catalog was cached: until then the triggers update nothing (a sqlite-mode
-- store pays one empty lookup per changed row). The row goes with its collection.
CREATE TABLE catalog_stamps (
    collection_id INTEGER PRIMARY KEY REFERENCES collections (id) ON DELETE CASCADE,
    stamp         INTEGER NOT NULL
) STRICT;

CREATE TRIGGER catalog_stamp_document_insert AFTER INSERT ON documents BEGIN
    UPDATE catalog_stamps SET stamp = random() WHERE collection_id = NEW.collection_id;
END;

CREATE TRIGGER catalog_stamp_document_delete AFTER DELETE ON documents BEGIN
    UPDATE catalog_stamps SET stamp = random() WHERE collection_id = OLD.collection_id;
END;

CREATE TRIGGER catalog_stamp_document_update AFTER UPDATE OF collection_id, key, hash, size ON documents BEGIN
    UPDATE catalog_stamps SET stamp = random() WHERE collection_id IN (OLD.collection_id, NEW.collection_id);
END;

CREATE TRIGGER catalog_stamp_file_insert AFTER INSERT ON file_state BEGIN
    UPDATE catalog_stamps SET stamp = random() WHERE collection_id = NEW.collection_id;
END;

CREATE TRIGGER catalog_stamp_file_delete AFTER DELETE ON file_state BEGIN
    UPDATE catalog_stamps SET stamp = random() WHERE collection_id = OLD.collection_id;
END;

CREATE TRIGGER catalog_stamp_file_update AFTER UPDATE ON file_state BEGIN
    UPDATE catalog_stamps SET stamp = random() WHERE collection_id IN (OLD.collection_id, NEW.collection_id);
END;
