//! `reconcile`: the plan (classification, fast path, renames, safety) on the fakes, and its interaction with the
//! ports on mocks.

use std::sync::Arc;

use colstore_app::{ReconcileError, ReconcileOptions, Refusal, plan_reconcile, reconcile};
use colstore_domain::ports::{
    ApplyReport, CatalogEntry, CollectionRepo, DocumentFiles, FileCatalog, FileChange, FileStat, MockDocumentFiles, MockFileCatalog, Scan,
    ScannedFile, SyncStore,
};
use colstore_domain::{CollectionName, ContentHash, DocKey};
use colstore_testkit::repo::{create, key, plain, put};
use colstore_testkit::{InMemoryFiles, InMemoryRepo, ManualClock};
use rstest::rstest;

struct World {
    files: Arc<InMemoryFiles>,
    dyn_files: Arc<dyn DocumentFiles>,
    repo: Arc<InMemoryRepo>,
    c: CollectionName,
}

async fn world(docs: &[(&str, &str)]) -> World {
    let files = Arc::new(InMemoryFiles::new());
    let dyn_files: Arc<dyn DocumentFiles> = files.clone();
    let repo = Arc::new(InMemoryRepo::with_files(Arc::new(ManualClock::at_2024()), dyn_files.clone()));
    let c = create(&*repo, "notes").await;
    if !docs.is_empty() {
        put(&*repo, &c, docs.iter().map(|(k, v)| plain(k, v.as_bytes())).collect()).await;
    }
    World { files, dyn_files, repo, c }
}

impl World {
    async fn plan(&self) -> colstore_app::ReconcilePlan {
        plan_reconcile(&self.dyn_files, &*self.repo, &self.c, ReconcileOptions::default()).await.unwrap()
    }

    async fn run(&self, opts: ReconcileOptions) -> Result<colstore_app::ReconcileReport, ReconcileError> {
        reconcile(&self.dyn_files, &*self.repo, &self.c, opts).await
    }

    async fn keys(&self) -> Vec<String> {
        self.repo.catalog(&self.c).await.unwrap().into_iter().map(|e| e.key.to_string()).collect()
    }
}

fn kinds(plan: &colstore_app::ReconcilePlan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| match c {
            FileChange::Added { key, .. } => format!("+{key}"),
            FileChange::Modified { key, .. } => format!("~{key}"),
            FileChange::Deleted { key, .. } => format!("-{key}"),
            FileChange::Renamed { from, to, .. } => format!(">{from}>{to}"),
            FileChange::Touched { key, .. } => format!("={key}"),
        })
        .collect()
}

#[tokio::test]
async fn an_unchanged_folder_is_judged_by_stat_alone() {
    let w = world(&[("a.md", "alpha"), ("b/c.md", "gamma")]).await;
    w.files.reset_content_reads();
    let plan = w.plan().await;
    assert!(plan.is_clean(), "{plan:?}");
    assert_eq!((plan.unchanged, plan.hashed_files, plan.hashed_bytes), (2, 0, 0));
    assert_eq!(w.files.content_reads(), 0, "the fast path reads nothing");
}

#[rstest]
#[case::edit(&["edit a.md"], &["~a.md"])]
#[case::new_file(&["write n.md"], &["+n.md"])]
#[case::delete(&["rm a.md"], &["-a.md"])]
#[case::rename(&["mv a.md z/a2.md"], &[">a.md>z/a2.md"])]
#[case::touch(&["touch a.md"], &["=a.md"])]
#[case::edit_keeping_stat_is_not_seen(&["sneak a.md"], &[])]
#[case::rename_and_edit_is_delete_and_add(&["mv a.md q.md", "edit q.md"], &["-a.md", "+q.md"])]
#[tokio::test]
async fn each_kind_of_change_is_classified(#[case] actions: &[&str], #[case] expected: &[&str]) {
    let w = world(&[("a.md", "alpha"), ("b.md", "beta"), ("c.md", "gamma")]).await;
    for a in actions {
        let (verb, arg) = a.split_once(' ').unwrap();
        match verb {
            "edit" => w.files.external_write(&w.c, arg, "edited!"),
            "write" => w.files.external_write(&w.c, arg, "brand new"),
            "rm" => w.files.external_remove(&w.c, arg),
            "mv" => {
                let (from, to) = arg.split_once(' ').unwrap();
                w.files.external_rename(&w.c, from, to);
            }
            "touch" => w.files.touch(&w.c, arg),
            "sneak" => w.files.external_write_keeping_stat(&w.c, arg, "alphz"),
            other => panic!("{other}"),
        }
    }
    let mut got = kinds(&w.plan().await);
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn applying_records_changes_and_a_second_run_is_clean() {
    let w = world(&[("a.md", "alpha"), ("b.md", "beta"), ("c.md", "gamma"), ("d.md", "delta")]).await;
    w.files.external_write(&w.c, "a.md", "alpha 2");
    w.files.external_write(&w.c, "new.md", "fresh");
    w.files.external_remove(&w.c, "b.md");
    w.files.external_rename(&w.c, "c.md", "sub/c.md");
    let report = w.run(ReconcileOptions::default()).await.unwrap();
    assert_eq!(report.applied, Some(ApplyReport { applied: 4, conflicts: vec![] }));
    assert_eq!(w.keys().await, ["a.md", "d.md", "new.md", "sub/c.md"]);
    let doc = w.repo.document(&w.c, &key("a.md")).await.unwrap();
    assert_eq!((doc.version, doc.content_hash), (2, ContentHash::of(b"alpha 2")));
    let pending: Vec<String> = w.repo.pending(&w.c, true, None, 100).await.unwrap().into_iter().map(|e| e.key.to_string()).collect();
    for k in ["a.md", "new.md", "sub/c.md"] {
        assert!(pending.contains(&k.to_owned()), "{k} pending: {pending:?}");
    }
    assert!(w.plan().await.is_clean());
}

#[tokio::test]
async fn a_rename_prefers_the_same_inode_then_the_same_name() {
    // Two documents with the same content; the one renamed keeps its inode, so the pairing follows it.
    let w = world(&[("x/one.md", "same"), ("y/two.md", "same")]).await;
    w.files.external_rename(&w.c, "y/two.md", "z/renamed.md");
    let plan = w.plan().await;
    assert_eq!(kinds(&plan), [">y/two.md>z/renamed.md"]);
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let w = world(&[("a.md", "alpha")]).await;
    w.files.external_write(&w.c, "a.md", "changed");
    let report = w.run(ReconcileOptions { dry_run: true, ..ReconcileOptions::default() }).await.unwrap();
    assert_eq!(report.applied, None);
    assert_eq!(w.repo.document(&w.c, &key("a.md")).await.unwrap().version, 1);
}

#[rstest]
#[case::half_is_allowed(5, 0.5, false)]
#[case::more_than_half_is_refused(6, 0.5, true)]
#[case::threshold_is_configurable(6, 0.7, false)]
#[case::zero_means_no_deletion_without_force(1, 0.0, true)]
#[tokio::test]
async fn mass_deletion_is_refused_without_force(#[case] deleted: usize, #[case] ratio: f64, #[case] refused: bool) {
    let names: Vec<String> = (0..10).map(|i| format!("n{i}.md")).collect();
    let docs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), n.as_str())).collect();
    let w = world(&docs).await;
    for n in names.iter().take(deleted) {
        w.files.external_remove(&w.c, n);
    }
    let opts = ReconcileOptions { max_delete_ratio: ratio, ..ReconcileOptions::default() };
    match w.run(opts).await {
        Err(ReconcileError::Refused { refusal: Refusal::TooManyDeletions { deletions, documents, .. }, .. }) => {
            assert!(refused);
            assert_eq!((deletions, documents), (deleted as u64, 10));
            assert_eq!(w.keys().await.len(), 10, "nothing applied");
            let forced = w.run(ReconcileOptions { force: true, ..opts }).await.unwrap();
            assert!(forced.applied.is_some());
            assert_eq!(w.keys().await.len(), 10 - deleted);
        }
        Ok(r) => {
            assert!(!refused, "{r:?}");
            assert_eq!(w.keys().await.len(), 10 - deleted);
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_missing_or_empty_root_is_refused_and_an_unreadable_file_is_not_deleted() {
    let w = world(&[("a.md", "alpha"), ("b.md", "beta")]).await;
    w.files.set_unreadable(&w.c, "a.md");
    w.files.external_write(&w.c, "b.md", "beta 2");
    let plan = w.plan().await;
    assert_eq!(kinds(&plan), ["~b.md"]);

    w.files.external_remove_root(&w.c);
    let e = w.run(ReconcileOptions::default()).await.unwrap_err();
    assert!(matches!(e, ReconcileError::Refused { refusal: Refusal::RootMissing { documents: 2, .. }, .. }), "{e}");
    assert_eq!(w.keys().await.len(), 2);
}

/// The use case's interaction with the ports: one scan, one catalog read, hashes only for files the stat does not
/// vouch for, and one `apply_changes` with the plan.
#[tokio::test]
async fn only_changed_files_are_hashed_and_the_plan_is_applied_once() {
    let c = CollectionName::parse("notes").unwrap();
    let stat = |inode: u64, mtime_ns: i64| FileStat { size: 5, mtime_ns, inode };
    let entry = |k: &str, s: FileStat| CatalogEntry {
        key: DocKey::parse(k).unwrap(),
        path: k.to_owned(),
        content_hash: ContentHash::of(k.as_bytes()),
        size: 5,
        stat: Some(s),
    };
    let mut catalog = MockFileCatalog::new();
    catalog.expect_catalog().times(1).returning(move |_| Ok(vec![entry("same.md", stat(1, 10)), entry("touched.md", stat(2, 10))]));
    catalog
        .expect_apply_changes()
        .times(1)
        .withf(|_, changes| matches!(changes.as_slice(), [FileChange::Touched { key, .. }] if key.as_str() == "touched.md"))
        .returning(|_, _| Ok(ApplyReport { applied: 1, conflicts: vec![] }));
    let mut files = MockDocumentFiles::new();
    files.expect_location().returning(|_| "notes/".to_owned());
    files.expect_scan().times(1).returning(move |_| {
        Ok(Scan {
            files: vec![
                ScannedFile { key: DocKey::parse("same.md").unwrap(), path: "same.md".into(), stat: stat(1, 10) },
                ScannedFile { key: DocKey::parse("touched.md").unwrap(), path: "touched.md".into(), stat: stat(2, 99) },
            ],
            ..Scan::default()
        })
    });
    files
        .expect_hash()
        .times(1)
        .withf(|_, path| path == "touched.md")
        .returning(move |_, _| Ok((stat(2, 99), ContentHash::of(b"touched.md"), 5)));
    let files: Arc<dyn DocumentFiles> = Arc::new(files);
    let report = reconcile(&files, &catalog, &c, ReconcileOptions::default()).await.unwrap();
    assert_eq!((report.plan.unchanged, report.plan.hashed_files), (1, 1));
}

mod several_collections {
    //! `reconcile_collections`: every collection is planned before any is changed, and a forced run copies the
    //! database before it applies what the safety checks refused.

    use colstore_app::{FilePorts, ReconcileOutcome, reconcile_collections};
    use colstore_domain::ports::{MockSafetyNet, SafetyCopy};

    use super::*;

    /// Two collections: `notes` with one new file, `docs` with both its files deleted (more than half: refused).
    async fn two() -> (World, CollectionName, FilePorts) {
        let w = world(&[]).await;
        w.files.external_write(&w.c, "new.md", &b"fresh"[..]);
        let docs = create(&*w.repo, "docs").await;
        put(&*w.repo, &docs, vec![plain("x.md", b"x"), plain("y.md", b"y")]).await;
        w.files.external_remove(&docs, "x.md");
        w.files.external_remove(&docs, "y.md");
        let ports = FilePorts { files: w.dyn_files.clone(), catalog: w.repo.clone(), text: w.repo.clone() };
        (w, docs, ports)
    }

    async fn keys_of(w: &World, c: &CollectionName) -> Vec<String> {
        w.repo.catalog(c).await.unwrap().into_iter().map(|e| e.key.to_string()).collect()
    }

    #[tokio::test]
    async fn a_refused_plan_stops_every_collection_before_anything_changes() {
        let (w, docs, ports) = two().await;
        let mut net = MockSafetyNet::new();
        net.expect_copy_database().never();
        let out = reconcile_collections(&ports, Some(&net), &[w.c.clone(), docs.clone()], ReconcileOptions::default()).await.unwrap();
        let ReconcileOutcome::Refused(plans) = out else { panic!("expected a refusal, got {out:?}") };
        assert_eq!(plans.iter().map(|p| p.refusal.is_some()).collect::<Vec<_>>(), [false, true]);
        assert!(keys_of(&w, &w.c).await.is_empty(), "notes, planned first and fine, was not applied");
        assert_eq!(keys_of(&w, &docs).await, ["x.md", "y.md"]);
        let e = colstore_app::refusal_error(plans);
        assert!(e.to_string().starts_with("docs: "), "{e}");
    }

    #[tokio::test]
    async fn a_forced_run_copies_the_database_before_it_applies() {
        // (That the copy comes first is shown by `a_failed_copy_applies_nothing`.)
        let (w, docs, ports) = two().await;
        let mut net = MockSafetyNet::new();
        net.expect_copy_database().withf(|op| op == "reconcile-force").times(1).returning(|_| Ok(SafetyCopy::Database("copy.db".into())));
        let opts = ReconcileOptions { force: true, ..ReconcileOptions::default() };
        let out = reconcile_collections(&ports, Some(&net), &[w.c.clone(), docs.clone()], opts).await.unwrap();
        let ReconcileOutcome::Applied { safety, reports } = out else { panic!("expected applied, got {out:?}") };
        assert_eq!(safety, Some(SafetyCopy::Database("copy.db".into())));
        assert_eq!(reports.len(), 2);
        assert_eq!(keys_of(&w, &w.c).await, ["new.md"]);
        assert!(keys_of(&w, &docs).await.is_empty());
        use colstore_domain::ports::TextIndex;
        assert_eq!(w.repo.not_indexed(&w.c).await.unwrap(), 0, "the reconciled text is indexed by the reconcile");
        let hits = w.repo.keyword_search(&w.c, &colstore_domain::KeywordQuery::parse("fresh"), &Default::default(), 5).await.unwrap();
        assert_eq!(hits.len(), 1);
    }

    #[tokio::test]
    async fn a_failed_copy_applies_nothing() {
        let (w, docs, ports) = two().await;
        let mut net = MockSafetyNet::new();
        net.expect_copy_database().times(1).returning(|_| Err(colstore_domain::ports::SafetyError("disk full".into())));
        let opts = ReconcileOptions { force: true, ..ReconcileOptions::default() };
        let e = reconcile_collections(&ports, Some(&net), &[w.c.clone(), docs.clone()], opts).await.unwrap_err();
        assert!(matches!(e, colstore_app::ReconcileAllError::Safety(_)), "{e}");
        assert!(keys_of(&w, &w.c).await.is_empty());
        assert_eq!(keys_of(&w, &docs).await, ["x.md", "y.md"]);
    }

    #[tokio::test]
    async fn without_a_safety_net_a_refused_plan_is_never_applied_even_forced() {
        let (w, docs, ports) = two().await;
        let opts = ReconcileOptions { force: true, ..ReconcileOptions::default() };
        let out = reconcile_collections(&ports, None, &[w.c.clone(), docs.clone()], opts).await.unwrap();
        assert!(matches!(out, ReconcileOutcome::Refused(_)), "{out:?}");
        assert_eq!(keys_of(&w, &docs).await, ["x.md", "y.md"]);
    }

    #[tokio::test]
    async fn a_dry_run_plans_every_collection_and_changes_nothing() {
        let (w, docs, ports) = two().await;
        let opts = ReconcileOptions { dry_run: true, force: true, ..ReconcileOptions::default() };
        let out = reconcile_collections(&ports, None, &[w.c.clone(), docs.clone()], opts).await.unwrap();
        let ReconcileOutcome::Planned(plans) = out else { panic!("expected plans, got {out:?}") };
        assert_eq!(plans.iter().map(kinds).collect::<Vec<_>>(), [vec!["+new.md".to_owned()], vec!["-x.md".into(), "-y.md".into()]]);
        assert!(keys_of(&w, &w.c).await.is_empty());
    }

    #[tokio::test]
    async fn a_missing_collection_is_named() {
        let (w, _, ports) = two().await;
        let ghost = CollectionName::parse("ghost").unwrap();
        let e = reconcile_collections(&ports, None, &[w.c.clone(), ghost], ReconcileOptions::default()).await.unwrap_err();
        assert!(e.to_string().starts_with("ghost: "), "{e}");
        assert!(keys_of(&w, &w.c).await.is_empty(), "nothing applied before the failure");
    }
}

/// `store_status` (`col status`) lists the folders with unreconciled changes and counts the queue, changing nothing.
#[tokio::test]
async fn the_status_names_unreconciled_folders_and_counts_jobs() {
    use colstore_app::{FilePorts, SyncPorts, store_status};
    use colstore_domain::ports::MockEmbedder;
    use colstore_testkit::{InMemoryIndex, InMemoryQueue};

    let w = world(&[("a.md", "alpha")]).await;
    let mut embedder = MockEmbedder::new();
    embedder.expect_embed().never();
    let index: Arc<dyn colstore_domain::ports::VectorIndex> = Arc::new(InMemoryIndex::new());
    let ports = SyncPorts {
        repo: w.repo.clone(),
        ledger: w.repo.clone(),
        index: index.clone(),
        router: colstore_app::OneIndex::router(index),
        embedder: Arc::new(embedder),
        text: w.repo.clone(),
        store_id: colstore_domain::StoreId::random(),
    };
    let files = FilePorts { files: w.dyn_files.clone(), catalog: w.repo.clone(), text: w.repo.clone() };
    let queue = InMemoryQueue::new(Arc::new(ManualClock::at_2024()));
    let clean = store_status(&ports, Some(&files), &queue, None).await.unwrap();
    assert!(clean.unreconciled.is_empty(), "{:?}", clean.unreconciled);
    assert_eq!(clean.jobs.map(|j| (j.pending_or_running, j.dead)), Some((0, 0)));

    w.files.external_write(&w.c, "new.md", &b"fresh"[..]);
    let st = store_status(&ports, Some(&files), &queue, None).await.unwrap();
    assert_eq!(st.unreconciled.len(), 1);
    assert_eq!((st.unreconciled[0].0.as_str(), st.unreconciled[0].1.added), ("notes", 1));
    assert_eq!(st.status.collections.len(), 1);
    assert_eq!(w.keys().await, ["a.md"], "a status reconciles nothing");
    let sqlite_mode = store_status(&ports, None, &queue, None).await.unwrap();
    assert!(sqlite_mode.unreconciled.is_empty(), "no folders to compare in sqlite mode");
}
