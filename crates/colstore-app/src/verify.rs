//! `col verify`: re-hash all content and collect every corrupt document, or (filesystem mode) every file that no
//! longer matches its record; and compare the full-text index with the documents ([`verify_text`]).

use std::sync::Arc;

use colstore_domain::CollectionName;
use colstore_domain::ports::{CollectionRepo, CorruptDocument, RepoError, TextCheck, TextIndex, VerifyEvent};
use futures::StreamExt;
use serde::Serialize;

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Documents whose content re-hashed correctly.
    pub documents_ok: u64,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Every corrupt document, sorted by collection and key.
    pub corrupt: Vec<CorruptDocument>,
    /// Whether the repository's contents are files people may edit (filesystem mode). A file that no longer matches
    /// its record was then edited or removed outside colstore: work for `col reconcile`, listed in `unreconciled`,
    /// not corruption.
    pub external_edits: bool,
    /// Filesystem mode: the documents whose file no longer matches its record, sorted by collection and key.
    pub unreconciled: Vec<CorruptDocument>,
}

impl VerifyReport {
    /// Whether nothing is corrupt.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
    }
}

/// Verifies one collection or the whole store. `progress` receives the running totals (documents, bytes).
///
/// # Errors
/// `CollectionNotFound` for a named collection that does not exist, or any error the repository reports mid-way.
#[tracing::instrument(skip_all)]
pub async fn verify(
    repo: &Arc<dyn CollectionRepo>,
    collection: Option<CollectionName>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<VerifyReport, RepoError> {
    let mut stream = repo.verify(collection).await?;
    let external_edits = repo.capabilities().external_edits;
    let mut report = VerifyReport { external_edits, ..VerifyReport::default() };
    while let Some(ev) = stream.next().await {
        match ev? {
            VerifyEvent::Checked { documents, bytes } => {
                report.documents_ok += documents;
                report.bytes_checked += bytes;
                progress(report.documents_ok, report.bytes_checked);
            }
            VerifyEvent::Corrupt(c) => report.corrupt.push(c),
        }
    }
    report.corrupt.sort_by(|a, b| (a.collection.as_str(), a.key.as_str()).cmp(&(b.collection.as_str(), b.key.as_str())));
    if external_edits {
        report.unreconciled = std::mem::take(&mut report.corrupt);
    }
    Ok(report)
}

/// One collection's full-text index compared with its documents, and what a repair did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextVerify {
    /// The collection.
    pub collection: CollectionName,
    /// What the check found (after the repair, when one ran: then clean unless the store changed meanwhile).
    pub check: TextCheck,
    /// What the check found before the repair, when one ran on a collection that was not clean.
    pub before_repair: Option<TextCheck>,
    /// Documents the repair marked and re-indexed from their content.
    pub repaired: u64,
}

/// `col verify`'s full-text part: checks each collection's full-text index against its documents and, with
/// `repair`, marks what drifted (or everything, when the index is damaged), re-indexes it from the documents, and
/// checks again.
///
/// # Errors
/// `CollectionNotFound`, or the store failing.
pub async fn verify_text(text: &dyn TextIndex, collections: &[CollectionName], repair: bool) -> Result<Vec<TextVerify>, RepoError> {
    let mut out = Vec::with_capacity(collections.len());
    for c in collections {
        let check = text.check(c).await?;
        if !repair || check.is_clean() {
            out.push(TextVerify { collection: c.clone(), check, before_repair: None, repaired: 0 });
            continue;
        }
        let marked = text.repair(c).await?;
        text.catch_up(c).await?;
        out.push(TextVerify { collection: c.clone(), check: text.check(c).await?, before_repair: Some(check), repaired: marked });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use colstore_domain::ports::{MockCollectionRepo, RepoCapabilities};
    use colstore_domain::{ContentHash, DocKey};

    #[tokio::test]
    async fn aggregates_events_and_sorts_corruption() {
        let mut repo = MockCollectionRepo::new();
        let bad = |k: &str| {
            VerifyEvent::Corrupt(CorruptDocument {
                collection: CollectionName::parse("c").unwrap(),
                key: DocKey::parse(k).unwrap(),
                expected: ContentHash::of(b"x"),
                actual: None,
                problem: "p".into(),
            })
        };
        let events = vec![
            Ok(VerifyEvent::Checked { documents: 2, bytes: 10 }),
            Ok(bad("z")),
            Ok(bad("a")),
            Ok(VerifyEvent::Checked { documents: 1, bytes: 5 }),
        ];
        repo.expect_verify().times(1).withf(|c| c.is_none()).return_once(move |_| Ok(futures::stream::iter(events).boxed()));
        repo.expect_capabilities().return_const(caps(false));
        let repo: Arc<dyn CollectionRepo> = Arc::new(repo);
        let calls = std::sync::Mutex::new(Vec::new());
        let r = verify(&repo, None, &|d, b| calls.lock().unwrap().push((d, b))).await.unwrap();
        assert_eq!((r.documents_ok, r.bytes_checked), (3, 15));
        assert_eq!(r.corrupt.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["a", "z"]);
        assert!(!r.is_clean());
        assert!(r.unreconciled.is_empty());
        assert_eq!(*calls.lock().unwrap(), [(2, 10), (3, 15)]);
    }

    fn caps(external_edits: bool) -> RepoCapabilities {
        RepoCapabilities { content_addressed: !external_edits, compression: !external_edits, external_edits }
    }

    #[tokio::test]
    async fn in_filesystem_mode_a_mismatch_is_unreconciled_not_corrupt() {
        let mut repo = MockCollectionRepo::new();
        let changed = VerifyEvent::Corrupt(CorruptDocument {
            collection: CollectionName::parse("c").unwrap(),
            key: DocKey::parse("a.md").unwrap(),
            expected: ContentHash::of(b"x"),
            actual: Some(ContentHash::of(b"y")),
            problem: "the file was changed".into(),
        });
        repo.expect_verify().return_once(move |_| Ok(futures::stream::iter(vec![Ok(changed)]).boxed()));
        repo.expect_capabilities().return_const(caps(true));
        let repo: Arc<dyn CollectionRepo> = Arc::new(repo);
        let r = verify(&repo, None, &|_, _| {}).await.unwrap();
        assert!(r.external_edits && r.is_clean(), "{r:?}");
        assert_eq!(r.unreconciled.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["a.md"]);
    }

    #[tokio::test]
    async fn a_mid_stream_error_is_returned() {
        let mut repo = MockCollectionRepo::new();
        repo.expect_verify().return_once(|_| Ok(futures::stream::iter(vec![Err(RepoError::Busy("x".into()))]).boxed()));
        repo.expect_capabilities().return_const(caps(false));
        let repo: Arc<dyn CollectionRepo> = Arc::new(repo);
        assert!(matches!(verify(&repo, None, &|_, _| {}).await, Err(RepoError::Busy(_))));
    }

    #[tokio::test]
    async fn a_text_repair_marks_then_reindexes_then_checks_again() {
        use colstore_domain::ports::MockTextIndex;
        let c = CollectionName::parse("notes").unwrap();
        let drifted = TextCheck { indexed: 1, drift: vec![DocKey::parse("a.md").unwrap()], ..TextCheck::default() };
        let clean = TextCheck { indexed: 2, ..TextCheck::default() };
        let mut seq = mockall::Sequence::new();
        let mut text = MockTextIndex::new();
        let first = drifted.clone();
        text.expect_check().times(1).in_sequence(&mut seq).returning(move |_| Ok(first.clone()));
        text.expect_repair().times(1).in_sequence(&mut seq).returning(|_| Ok(1));
        text.expect_catch_up().times(1).in_sequence(&mut seq).returning(|_| Ok(1));
        let after = clean.clone();
        text.expect_check().times(1).in_sequence(&mut seq).returning(move |_| Ok(after.clone()));
        let out = verify_text(&text, std::slice::from_ref(&c), true).await.unwrap();
        assert_eq!(out, [TextVerify { collection: c.clone(), check: clean, before_repair: Some(drifted.clone()), repaired: 1 }]);

        // Without --repair: only the check.
        let mut text = MockTextIndex::new();
        let found = drifted.clone();
        text.expect_check().times(1).returning(move |_| Ok(found.clone()));
        text.expect_repair().never();
        let out = verify_text(&text, std::slice::from_ref(&c), false).await.unwrap();
        assert_eq!(out[0].check, drifted);
        assert_eq!((out[0].repaired, out[0].before_repair.is_none()), (0, true));
    }
}
