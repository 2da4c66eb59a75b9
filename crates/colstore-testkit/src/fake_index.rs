//! `InMemoryIndex`: a faithful in-memory [`VectorIndex`] with the semantics of the embedded index and Qdrant.
//!
//! Points live in a `BTreeMap` per collection, so scrolling is in id order (UUID byte order) by construction.
//! Filters are evaluated with [`Filter::matches`] over the payload serialised flat, cosine vectors are normalised on
//! write, search is exact with ties broken by id, and every write is validated whole before anything is applied,
//! under one mutex that is never held across an `.await`. It passes the same conformance suite as the real adapters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use colstore_domain::ports::{
    IndexCapabilities, IndexError, IndexHealth, ScrollPage, ScrollRequest, SearchRequest, StoredPoint, VectorIndex,
};
use colstore_domain::{Distance, Filter, IndexName, Payload, Point, PointId, ScoredPoint, Vector, VectorSettings};
use serde_json::{Map, Value};

/// A [`VectorIndex`] kept in memory, for use-case tests.
///
/// [`InMemoryIndex::set_unavailable`] makes every call fail with [`IndexError::Unavailable`], to test retries.
#[derive(Default)]
pub struct InMemoryIndex {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    collections: HashMap<IndexName, Collection>,
    unavailable: Option<String>,
}

struct Collection {
    dim: usize,
    distance: Distance,
    points: BTreeMap<PointId, Stored>,
}

struct Stored {
    vector: Vector,
    payload: Payload,
    /// The payload serialised flat, as filters see it.
    object: Map<String, Value>,
}

fn mismatch(expected: usize, got: usize) -> IndexError {
    let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
    IndexError::DimensionMismatch { expected: n(expected), got: n(got) }
}

fn object_of(p: &Payload) -> Map<String, Value> {
    match serde_json::to_value(p) {
        Ok(Value::Object(m)) => m,
        // A `Payload` is a struct of serialisable fields: it always becomes an object.
        _ => Map::new(),
    }
}

/// Scales to unit length, as Qdrant does for cosine collections; (near) zero vectors stay as they are.
fn normalised(mut v: Vector) -> Vector {
    let length = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if length >= f32::EPSILON && length.is_finite() {
        for x in &mut v {
            *x /= length;
        }
    }
    v
}

fn score(distance: Distance, query: &[f32], v: &[f32]) -> f32 {
    let s = match distance {
        Distance::Cosine | Distance::Dot => query.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(),
        Distance::Euclid => -query.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt(),
    };
    if s.is_nan() { f32::NEG_INFINITY } else { s }
}

impl InMemoryIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `Some(reason)`, every call fails with [`IndexError::Unavailable`]; `None` heals the index.
    pub fn set_unavailable(&self, reason: Option<&str>) {
        self.lock().unavailable = reason.map(str::to_owned);
    }

    /// The names of the collections it holds, sorted.
    pub fn collection_names(&self) -> Vec<IndexName> {
        let mut names: Vec<IndexName> = self.lock().collections.keys().cloned().collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        names
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, unless the index plays unavailable.
    fn available(&self) -> Result<MutexGuard<'_, State>, IndexError> {
        let st = self.lock();
        match &st.unavailable {
            Some(reason) => Err(IndexError::Unavailable(reason.clone())),
            None => Ok(st),
        }
    }
}

impl State {
    fn collection(&mut self, name: &IndexName) -> Result<&mut Collection, IndexError> {
        self.collections.get_mut(name).ok_or_else(|| IndexError::CollectionNotFound(name.clone()))
    }
}

#[async_trait]
impl VectorIndex for InMemoryIndex {
    fn capabilities(&self) -> IndexCapabilities {
        IndexCapabilities {
            max_batch_points: 1024,
            max_request_bytes: 256 * 1024 * 1024,
            filter_should: true,
            exact_count: true,
            snapshots: false,
        }
    }

    async fn health(&self) -> Result<IndexHealth, IndexError> {
        let st = self.lock();
        Ok(IndexHealth { backend: "fake".into(), version: None, ok: st.unavailable.is_none(), detail: st.unavailable.clone() })
    }

    async fn ensure_collection(&self, name: &IndexName, settings: &VectorSettings) -> Result<(), IndexError> {
        let mut st = self.available()?;
        let dim = settings.embedder.dimension.get() as usize;
        if let Some(c) = st.collections.get(name) {
            // Another dimension or distance: the port's "exists with other settings".
            if c.dim != dim || c.distance != settings.distance {
                return Err(mismatch(c.dim, dim));
            }
            return Ok(());
        }
        st.collections.insert(name.clone(), Collection { dim, distance: settings.distance, points: BTreeMap::new() });
        Ok(())
    }

    async fn drop_collection(&self, name: &IndexName) -> Result<bool, IndexError> {
        Ok(self.available()?.collections.remove(name).is_some())
    }

    async fn upsert(&self, name: &IndexName, points: Vec<Point>) -> Result<(), IndexError> {
        let mut st = self.available()?;
        let c = st.collection(name)?;
        if let Some(bad) = points.iter().find(|p| p.vector.len() != c.dim) {
            return Err(mismatch(c.dim, bad.vector.len()));
        }
        for p in points {
            let vector = if c.distance == Distance::Cosine { normalised(p.vector) } else { p.vector };
            let object = object_of(&p.payload);
            c.points.insert(p.id, Stored { vector, payload: p.payload, object });
        }
        Ok(())
    }

    async fn delete(&self, name: &IndexName, ids: Vec<PointId>) -> Result<(), IndexError> {
        let mut st = self.available()?;
        let c = st.collection(name)?;
        for id in &ids {
            c.points.remove(id);
        }
        Ok(())
    }

    async fn delete_by_filter(&self, name: &IndexName, filter: &Filter) -> Result<Option<u64>, IndexError> {
        let mut st = self.available()?;
        let c = st.collection(name)?;
        let before = c.points.len();
        c.points.retain(|_, p| !filter.matches(&p.object));
        Ok(Some((before - c.points.len()) as u64))
    }

    async fn scroll(&self, name: &IndexName, request: ScrollRequest) -> Result<ScrollPage, IndexError> {
        let mut st = self.available()?;
        if request.limit == 0 {
            return Err(IndexError::Backend { backend: "fake", source: "the scroll limit must be at least 1".into() });
        }
        let c = st.collection(name)?;
        let start = request.from.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included);
        let mut matching = c
            .points
            .range((start, std::ops::Bound::Unbounded))
            .filter(|(_, p)| request.filter.as_ref().is_none_or(|f| f.matches(&p.object)));
        let points = matching
            .by_ref()
            .take(request.limit)
            .map(|(id, p)| StoredPoint { id: *id, payload: p.payload.clone(), vector: request.with_vectors.then(|| p.vector.clone()) })
            .collect();
        let next = matching.next().map(|(id, _)| *id);
        Ok(ScrollPage { points, next })
    }

    async fn count(&self, name: &IndexName, filter: Option<Filter>) -> Result<u64, IndexError> {
        let mut st = self.available()?;
        let c = st.collection(name)?;
        Ok(c.points.values().filter(|p| filter.as_ref().is_none_or(|f| f.matches(&p.object))).count() as u64)
    }

    async fn search(&self, name: &IndexName, request: SearchRequest) -> Result<Vec<ScoredPoint>, IndexError> {
        let mut st = self.available()?;
        let c = st.collection(name)?;
        if request.vector.len() != c.dim {
            return Err(mismatch(c.dim, request.vector.len()));
        }
        let query = if c.distance == Distance::Cosine { normalised(request.vector) } else { request.vector };
        let mut hits: Vec<(f32, PointId, &Stored)> = c
            .points
            .iter()
            .filter(|(_, p)| request.filter.as_ref().is_none_or(|f| f.matches(&p.object)))
            .map(|(id, p)| (score(c.distance, &query, &p.vector), *id, p))
            .collect();
        // Best first; equal scores by id (the map is in id order and the sort is stable, but say it anyway).
        hits.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
        Ok(hits.into_iter().take(request.limit).map(|(score, id, p)| ScoredPoint { id, score, payload: p.payload.clone() }).collect())
    }

    async fn flush(&self, name: &IndexName) -> Result<Vec<String>, IndexError> {
        let mut st = self.available()?;
        st.collection(name)?;
        Ok(vec![format!("nothing to flush for {name}: the in-memory index keeps no files")])
    }
}
