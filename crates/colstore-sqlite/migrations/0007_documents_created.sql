-- colstore schema, version 7: listings filtered or sorted by creation time (`--where created:>=7d`,
-- `col ls --sort created`) use an index, as those by update time already do (issue 16).
CREATE INDEX documents_created ON documents (collection_id, created_at);
