//! The batched statements of the hot paths (sync, restore, re-projection) must stay index lookups: one of them
//! planned as a scan of `documents` makes a sync of 20 000 documents take minutes instead of seconds. SQLite's
//! planner may choose either loop order for a join against `json_each`, so the plans are checked here.

use std::sync::Arc;

use sqlx::Row;

use crate::{SqliteOptions, SqliteRepo};

/// The query plan of `sql` on the store's schema, one line per step.
async fn plan(repo: &SqliteRepo, sql: &str) -> Vec<String> {
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"))).fetch_all(&repo.pool).await.expect("explain");
    rows.iter().map(|r| r.get::<String, _>("detail")).collect()
}

/// A new store's database in `dir`.
async fn fresh(dir: &std::path::Path) -> SqliteRepo {
    let clock = Arc::new(colstore_testkit::ManualClock::at_2024());
    SqliteRepo::open(&dir.join("colstore.db"), SqliteOptions { create: true, ..SqliteOptions::default() }, clock).await.expect("open")
}

#[tokio::test]
async fn batched_statements_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = fresh(dir.path()).await;
    let statements = [
        ("mark_synced_batch (projections)", crate::sync::MARK_SYNCED.to_owned()),
        ("mark_synced_batch (deletions present)", crate::sync::STILL_THERE.to_owned()),
        ("mark_synced_batch (deletions)", crate::sync::FORGET_DELETED.to_owned()),
        ("read_documents (blobs)", crate::repo::read_documents_sql()),
        ("read_documents (files)", crate::files::read_documents_files_sql()),
    ];
    for (what, sql) in statements {
        let steps = plan(&repo, &sql).await;
        let scans: Vec<&String> = steps.iter().filter(|s| s.starts_with("SCAN") && !s.contains("VIRTUAL TABLE")).collect();
        assert!(scans.is_empty(), "{what} scans a table: {steps:#?}");
        // By key, not a walk of the whole collection (`collection_id=?` alone) with the items inside.
        let documents: Vec<&String> = steps.iter().filter(|s| s.starts_with("SEARCH d ")).collect();
        assert!(!documents.is_empty(), "{what} reads documents: {steps:#?}");
        assert!(documents.iter().all(|s| s.contains("key=?")), "{what} looks each document up by its key: {steps:#?}");
    }
    // `col add` looks its source stamps up, and records them, by key.
    for (what, sql) in [("source_stamps", crate::stamps::LOOKUP), ("record_source_stamps", crate::stamps::RECORD)] {
        let steps = plan(&repo, sql).await;
        let scans: Vec<&String> = steps.iter().filter(|s| s.starts_with("SCAN") && !s.contains("VIRTUAL TABLE")).collect();
        assert!(scans.is_empty(), "{what} scans a table: {steps:#?}");
        assert!(steps.iter().any(|s| s.starts_with("SEARCH d ") && s.contains("key=?")), "{what}: {steps:#?}");
    }
    // `put_batch` asks which contents are stored before compressing any: one lookup in the hash index per hash.
    let steps = plan(&repo, &crate::repo::stored_hashes_sql(3)).await;
    assert!(steps.iter().all(|s| !s.starts_with("SCAN")), "stored_hashes scans: {steps:#?}");
    assert!(steps.iter().any(|s| s.starts_with("SEARCH blobs") && s.contains("hash=?")), "stored_hashes: {steps:#?}");
}

/// `col ls --where` and `col export --where`: the common shapes of the filter language (a key prefix, a time range)
/// are index ranges, also inside an `and` with metadata conditions, never a walk of the whole collection.
#[tokio::test]
async fn listings_by_key_and_time_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = fresh(dir.path()).await;
    let now = colstore_domain::Timestamp::from_millis(1_800_000_000_000);
    let cases = [
        ("key:notes/", "sqlite_autoindex_documents_1 (collection_id=? AND key>? AND key<?)"),
        ("key:notes/ and lang=en and year>2000", "sqlite_autoindex_documents_1 (collection_id=? AND key>? AND key<?)"),
        ("updated:>=7d", "documents_updated (collection_id=? AND updated_at>?)"),
        (
            "lang=en and updated:2026-01-01..2026-02-01 and not draft=true",
            "documents_updated (collection_id=? AND updated_at>? AND updated_at<?)",
        ),
        ("created:<7d", "documents_created (collection_id=? AND created_at<?)"),
        ("created:>=2026-01-01 and author exists", "documents_created (collection_id=? AND created_at>?)"),
    ];
    for (expr, index) in cases {
        let q = colstore_domain::ListQuery {
            expr: colstore_domain::DocFilter::parse(expr, now).unwrap(),
            limit: Some(20),
            ..colstore_domain::ListQuery::default()
        };
        let w = crate::filter_sql::page_where_clause(crate::filter_sql::Terms { cid: 1, indexed: &[], drive: None }, &q);
        let sql = format!("SELECT d.* FROM documents d WHERE {} ORDER BY {} LIMIT 20", w.sql, crate::filter_sql::order_by(&q));
        let steps = plan(&repo, &sql).await;
        assert!(steps.iter().any(|s| s.starts_with("SEARCH d USING INDEX") && s.ends_with(index)), "{expr}: {steps:#?}");
    }
}

/// Tags, and the fields a user indexes (`col collection index`), are lookups in `doc_terms_lookup`: a 3-condition
/// filter on them starts from the ids a lookup lists (never a walk of the collection's documents, which the planner
/// chooses without statistics unless kept from it), and `or` or `in` over them are lookups too.
#[tokio::test]
async fn tags_and_indexed_fields_are_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let repo = fresh(dir.path()).await;
    let now = colstore_domain::Timestamp::from_millis(1_800_000_000_000);
    let indexed: Vec<String> =
        ["year", "lang"].iter().map(|f| crate::filter_sql::json_path(&colstore_domain::FieldPath::parse(f).unwrap())).collect();
    // (expression, conditions answered from doc_terms, whether the query starts from a lookup's ids rather than the
    // collection)
    let cases = [
        ("tag:home", 1, true),
        ("year>=2020 and lang=en and tag:t3", 3, true),
        ("lang in en,de", 1, true),
        ("key:notes/ and year>2000", 1, true),
        ("tag:a or year<1990", 2, false),
    ];
    for (expr, lookups, driven) in cases {
        let q = colstore_domain::ListQuery {
            expr: colstore_domain::DocFilter::parse(expr, now).unwrap(),
            limit: Some(50),
            ..colstore_domain::ListQuery::default()
        };
        let base = crate::filter_sql::Terms { cid: 1, indexed: &indexed, drive: None };
        let drive = crate::filter_sql::lookups(&q.expr, &base).first().copied();
        let w = crate::filter_sql::page_where_clause(crate::filter_sql::Terms { drive, ..base }, &q);
        let sql = format!("SELECT d.* FROM documents d WHERE {} ORDER BY {} LIMIT 50", w.sql, crate::filter_sql::order_by(&q));
        let steps = plan(&repo, &sql).await;
        let scans: Vec<&String> = steps.iter().filter(|s| s.starts_with("SCAN") && !s.contains("VIRTUAL TABLE")).collect();
        assert!(scans.is_empty(), "{expr} scans: {steps:#?}");
        // The driving lookup reads `doc_terms_lookup`; every other condition on a tag or an indexed field probes the
        // document's own terms in `doc_terms_doc`: both covering, never the table.
        let driving =
            steps.iter().filter(|s| s.contains("USING COVERING INDEX doc_terms_lookup (collection_id=? AND path=? AND type=?")).count();
        let probes = steps.iter().filter(|s| s.contains("USING COVERING INDEX doc_terms_doc (doc_id=? AND path=? AND type=?")).count();
        assert_eq!((driving, driving + probes), (usize::from(driven), lookups), "{expr}: {steps:#?}");
        if driven {
            // Started from the ids a lookup lists: never a walk of the collection's documents by `collection_id`.
            assert!(steps.iter().any(|s| s == "SEARCH d USING INTEGER PRIMARY KEY (rowid=?)"), "{expr}: {steps:#?}");
            assert!(!steps.iter().any(|s| s.contains("(collection_id=?)")), "{expr}: {steps:#?}");
        }
    }
}

/// `sync_ledger_state` makes `state:failed` a lookup; indexing a field fills `doc_terms` from the documents there are,
/// every write keeps it, and dropping the field empties it (so the conformance suite's answers on indexed fields
/// really come from `doc_terms`).
#[tokio::test]
async fn states_are_lookups_and_field_terms_follow_the_settings() {
    use colstore_domain::ports::CollectionRepo;
    let dir = tempfile::tempdir().unwrap();
    let repo = fresh(dir.path()).await;
    let now = colstore_domain::Timestamp::from_millis(1_800_000_000_000);
    let q = colstore_domain::ListQuery { expr: colstore_domain::DocFilter::parse("state:failed", now).unwrap(), ..Default::default() };
    let w = crate::filter_sql::page_where_clause(crate::filter_sql::Terms { cid: 1, indexed: &[], drive: None }, &q);
    let steps = plan(&repo, &format!("SELECT d.* FROM documents d WHERE {} ORDER BY d.key", w.sql)).await;
    assert!(steps.iter().any(|s| s.contains("INDEX sync_ledger_state (collection_id=? AND state=?)")), "{steps:#?}");
    assert!(steps.iter().all(|s| !s.starts_with("SCAN")), "{steps:#?}");

    let c = colstore_testkit::repo::create(&repo, "notes").await;
    let terms = |path: &'static str| {
        let repo = repo.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM doc_terms WHERE path = ?").bind(path).fetch_one(&repo.pool).await.unwrap()
        }
    };
    let docs = vec![
        colstore_testkit::repo::doc("a.md", "a", r#"{"year":2020,"labels":["x","y"]}"#, &["t1", "t2"]),
        colstore_testkit::repo::doc("b.md", "b", r#"{"year":{"nested":1},"labels":"z"}"#, &[]),
    ];
    colstore_testkit::repo::put(&repo, &c, docs).await;
    assert_eq!((terms("#tag").await, terms("$.\"year\"").await), (2, 0), "tags always, fields only once indexed");
    let mut settings = repo.collection(&c).await.unwrap().settings;
    settings.indexed_fields = ["labels", "year"].iter().map(|f| colstore_domain::FieldPath::parse(f).unwrap()).collect();
    repo.update_settings(&c, settings.clone()).await.unwrap();
    assert_eq!((terms("$.\"labels\"").await, terms("$.\"year\"").await), (3, 1), "array elements each; nothing under an object");
    colstore_testkit::repo::put_one(&repo, &c, colstore_testkit::repo::doc("b.md", "b", r#"{"year":1999}"#, &["t3"])).await;
    assert_eq!((terms("$.\"labels\"").await, terms("$.\"year\"").await, terms("#tag").await), (2, 2, 3), "a write keeps them");
    settings.indexed_fields.retain(|f| f.as_str() == "year");
    repo.update_settings(&c, settings).await.unwrap();
    assert_eq!((terms("$.\"labels\"").await, terms("$.\"year\"").await), (0, 2), "a dropped field's terms go");
    repo.delete_documents(&c, vec![colstore_testkit::repo::key("a.md")]).await.unwrap();
    assert_eq!((terms("$.\"year\"").await, terms("#tag").await), (1, 1), "a deleted document's terms go");
}

/// `flush` leaves the database file complete on its own: the write-ahead log is checkpointed and truncated.
#[tokio::test]
async fn flush_truncates_the_write_ahead_log() {
    use colstore_domain::ports::CollectionRepo;
    let dir = tempfile::tempdir().unwrap();
    let repo = fresh(dir.path()).await;
    let c = colstore_testkit::repo::create(&repo, "notes").await;
    colstore_testkit::repo::put(&repo, &c, vec![colstore_testkit::repo::plain("a.md", "alpha")]).await;
    let wal = dir.path().join("colstore.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0, "the put is in the log");
    let steps = repo.flush().await.unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0, "{steps:?}");
    assert!(steps[0].starts_with("checkpointed the write-ahead log of"), "{steps:?}");
}
