-- colstore embedded vector index, schema version 2: a random stamp beside each collection's version.
--
-- Every write to a collection sets `stamp` to a fresh random number in the same transaction that bumps `version`
-- (and creating a collection picks one). A snapshot file (`<database stem>/<collection id>.snap`, see the crate docs)
-- is labelled with the (id, version, stamp) it was built from and used only while all three match. The id and version
-- alone could repeat: a database deleted and created anew restarts its ids at 1, and a database restored from a copy
-- goes back to an older version and may then reach the same version with other contents. The stamp tells those apart.

ALTER TABLE index_collections ADD COLUMN stamp INTEGER NOT NULL DEFAULT 0;
UPDATE index_collections SET stamp = random();
