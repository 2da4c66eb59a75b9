//! `run_migration` (`col migrate`): the order of its steps on a recording conversion, and that nothing is switched
//! when the safety backup, the copy or the check fails.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use colstore_app::{MigrationError, MigrationFailure, run_migration};
use colstore_domain::CollectionName;
use colstore_domain::ports::{
    CollectionRepo, ConversionError, Converted, DocumentFiles, FileCatalog, MockSafetyNet, SafetyCopy, SafetyError, StorageConversion,
};
use colstore_testkit::repo::{create, key, plain, put};
use colstore_testkit::{InMemoryFiles, InMemoryRepo, ManualClock};

type Steps = Arc<Mutex<Vec<&'static str>>>;

/// A conversion that records its steps and hands out `repo` (and `files`) as the converted store.
struct Recording {
    steps: Steps,
    repo: Arc<InMemoryRepo>,
    files: Option<Arc<InMemoryFiles>>,
    copy_fails: bool,
}

#[async_trait]
impl StorageConversion for Recording {
    async fn copy_contents(&self, progress: &mut (dyn FnMut(u64, u64) + Send)) -> Result<u64, ConversionError> {
        self.steps.lock().unwrap().push("copy");
        if self.copy_fails {
            return Err(ConversionError("disk full".into()));
        }
        progress(2, 2);
        Ok(2)
    }

    async fn open_converted(&self) -> Result<Converted, ConversionError> {
        self.steps.lock().unwrap().push("open");
        let files = self.files.clone().map(|f| (f as Arc<dyn DocumentFiles>, self.repo.clone() as Arc<dyn FileCatalog>));
        Ok(Converted { repo: self.repo.clone(), files })
    }

    async fn switch(&self) -> Result<(), ConversionError> {
        self.steps.lock().unwrap().push("switch");
        Ok(())
    }
}

fn notes() -> CollectionName {
    CollectionName::parse("notes").unwrap()
}

/// A converted store of two documents: in sqlite mode, or (`to_files`) in filesystem mode with their files.
async fn converted(to_files: bool) -> Recording {
    let clock = Arc::new(ManualClock::at_2024());
    let (repo, files) = if to_files {
        let files = Arc::new(InMemoryFiles::new());
        (Arc::new(InMemoryRepo::with_files(clock, files.clone())), Some(files))
    } else {
        (Arc::new(InMemoryRepo::new(clock)), None)
    };
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", b"alpha"), plain("b.md", b"beta")]).await;
    Recording { steps: Steps::default(), repo, files, copy_fails: false }
}

fn net(steps: &Steps) -> MockSafetyNet {
    let mut net = MockSafetyNet::new();
    let steps = steps.clone();
    net.expect_backup().withf(|c, op| c == [notes()] && op == "migrate").times(1).returning(move |_, _| {
        steps.lock().unwrap().push("safety");
        Ok(SafetyCopy::Backup("safe".into()))
    });
    net
}

#[tokio::test]
async fn the_steps_run_in_order_and_the_copy_is_checked_before_the_switch() {
    for to_files in [false, true] {
        let conv = converted(to_files).await;
        let net = net(&conv.steps);
        let kept = Mutex::new(None);
        let mut seen = Vec::new();
        let out = run_migration(&conv, Some(&net), &[notes()], &|c| *kept.lock().unwrap() = Some(c.clone()), &mut |d, t| seen.push((d, t)))
            .await
            .unwrap();
        assert_eq!(*conv.steps.lock().unwrap(), ["safety", "copy", "open", "switch"], "to files: {to_files}");
        assert_eq!((out.copied, out.verified), (2, 2));
        assert_eq!(out.safety, Some(SafetyCopy::Backup("safe".into())));
        assert_eq!(*kept.lock().unwrap(), out.safety);
        assert_eq!(seen, [(2, 2)]);
    }
}

#[tokio::test]
async fn without_a_safety_net_there_is_no_backup() {
    let conv = converted(false).await;
    let out = run_migration(&conv, None, &[notes()], &|_| panic!("no copy"), &mut |_, _| {}).await.unwrap();
    assert_eq!(out.safety, None);
    assert_eq!(*conv.steps.lock().unwrap(), ["copy", "open", "switch"]);
}

#[tokio::test]
async fn a_failed_safety_backup_does_nothing() {
    let conv = converted(false).await;
    let mut net = MockSafetyNet::new();
    net.expect_backup().times(1).returning(|_, _| Err(SafetyError("repository unreachable".into())));
    let e = run_migration(&conv, Some(&net), &[notes()], &|_| {}, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(e, MigrationError::Safety(_)), "{e}");
    assert!(conv.steps.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_copy_is_not_switched_and_names_the_safety_backup() {
    let conv = Recording { copy_fails: true, ..converted(false).await };
    let net = net(&conv.steps);
    let e = run_migration(&conv, Some(&net), &[notes()], &|_| {}, &mut |_, _| {}).await.unwrap_err();
    let MigrationError::Failed { source: MigrationFailure::Conversion(_), safety: Some(SafetyCopy::Backup(id)) } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(id, "safe");
    assert_eq!(*conv.steps.lock().unwrap(), ["safety", "copy"]);
}

#[tokio::test]
async fn a_copy_that_does_not_verify_is_not_switched() {
    let conv = converted(false).await;
    conv.repo.corrupt(&notes(), &key("b.md"));
    let e = run_migration(&conv, None, &[notes()], &|_| {}, &mut |_, _| {}).await.unwrap_err();
    let MigrationError::Failed { source: MigrationFailure::NotVerified { key, .. }, .. } = &e else { panic!("{e:?}") };
    assert_eq!(key.as_str(), "b.md");
    assert_eq!(*conv.steps.lock().unwrap(), ["copy", "open"], "no switch");
}

#[tokio::test]
async fn a_new_folder_holding_other_files_is_not_switched() {
    let conv = converted(true).await;
    conv.files.as_ref().unwrap().external_write(&notes(), "stray.md", &b"not a document"[..]);
    let e = run_migration(&conv, None, &[notes()], &|_| {}, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(&e, MigrationError::Failed { source: MigrationFailure::FolderDiffers { .. }, .. }), "{e:?}");
    assert_eq!(*conv.steps.lock().unwrap(), ["copy", "open"], "no switch");
    assert_eq!(conv.repo.list_collections().await.unwrap().len(), 1);
}
