//! `col verify`: re-hash all content and collect every corrupt document.

use std::sync::Arc;

use colstore_domain::CollectionName;
use colstore_domain::ports::{CollectionRepo, CorruptDocument, RepoError, VerifyEvent};
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
    let mut report = VerifyReport::default();
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
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use colstore_domain::ports::MockCollectionRepo;
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
        let repo: Arc<dyn CollectionRepo> = Arc::new(repo);
        let calls = std::sync::Mutex::new(Vec::new());
        let r = verify(&repo, None, &|d, b| calls.lock().unwrap().push((d, b))).await.unwrap();
        assert_eq!((r.documents_ok, r.bytes_checked), (3, 15));
        assert_eq!(r.corrupt.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["a", "z"]);
        assert!(!r.is_clean());
        assert_eq!(*calls.lock().unwrap(), [(2, 10), (3, 15)]);
    }

    #[tokio::test]
    async fn a_mid_stream_error_is_returned() {
        let mut repo = MockCollectionRepo::new();
        repo.expect_verify().return_once(|_| Ok(futures::stream::iter(vec![Err(RepoError::Busy("x".into()))]).boxed()));
        let repo: Arc<dyn CollectionRepo> = Arc::new(repo);
        assert!(matches!(verify(&repo, None, &|_, _| {}).await, Err(RepoError::Busy(_))));
    }
}
