//! [`WeaviateIndex`]: the `VectorIndex` port over Weaviate.
//!
//! Every point operation first reads the class (`GET /v1/schema/{class}`): it tells a missing collection
//! (`CollectionNotFound`), someone else's class (refused), the dimension and distance (from our marker, so a wrong
//! vector is refused before anything is written) and which typed metadata properties exist (which the filter
//! translation needs).
//!
//! Paging (`scroll`) uses the REST listing with its `after` cursor, which is exclusive and in UUID order, while the
//! port's `from` is inclusive and its `next` is the first id of the next page: the listing starts after the
//! predecessor of `from` (`from - 1` as a 128-bit number; it need not exist) and reads one point more than asked, which
//! becomes `next`. The listing takes no `where`, so a filtered scroll is checked on our side with `Filter::matches`,
//! reading pages until the page is full or the class ends.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{
    Clock, IndexCapabilities, IndexError, IndexHealth, ScrollPage, ScrollRequest, SearchRequest, StoredPoint, VectorIndex,
};
use colstore_domain::{Distance, Filter, IndexName, Payload, Point, PointId, ScoredPoint, Vector, VectorSettings};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::client::{Answer, Http, backend};
use crate::filter::{Translated, Where, graphql_literal, translate};
use crate::names::{Kind, class_name};
use crate::schema::{self, ClassInfo, Marker, class_body, object_properties, payload_from_properties, property_body};
use crate::{WEAVIATE_KIND, WeaviateConfig};

/// Weaviate's default `QUERY_MAXIMUM_RESULTS`: the largest result window of one query, and the most objects one
/// batch delete removes.
const MAX_RESULTS: usize = 10_000;
/// Ids per batch delete by id.
const DELETE_IDS_PER_CALL: usize = 1_000;
/// Objects per listing page when a filter is checked on our side.
const FILTERED_PAGE: usize = 500;
/// The properties every read asks for.
const READ_FIELDS: &str = "key collection contentHash chunkHash chunk metadata";

/// A `VectorIndex` on a Weaviate server.
pub struct WeaviateIndex {
    http: Http,
    max_batch: usize,
}

impl fmt::Debug for WeaviateIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeaviateIndex")
            .field("url", &self.http.display())
            .field("max_batch_objects", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// An object as a batch sends it. Serialised straight from the `f32`s: through a `serde_json::Value` every number
/// would be widened to `f64` and written with 17 digits, twice the bytes for the same `f32` on the server.
#[derive(serde::Serialize)]
struct WireObject<'a> {
    class: &'a str,
    id: String,
    vector: Vector,
    properties: Map<String, Value>,
}

#[derive(serde::Serialize)]
struct WireBatch<'a, 'b> {
    objects: &'b [WireObject<'a>],
}

/// A class of ours, as read.
struct Ours {
    class: String,
    info: ClassInfo,
    marker: Marker,
}

impl WeaviateIndex {
    /// An index on the server `config.url`; `clock` times retries.
    ///
    /// # Errors
    /// `IndexError::Backend` for an unusable URL or API key, or `max_batch_objects` of 0.
    pub fn new(config: WeaviateConfig, clock: Arc<dyn Clock>) -> Result<Self, IndexError> {
        if config.max_batch_objects == 0 {
            return Err(backend("max_batch_objects must be at least 1"));
        }
        Ok(Self { http: Http::new(&config, clock)?, max_batch: config.max_batch_objects })
    }

    /// The class of `name` and its definition, `None` when it does not exist.
    async fn read_class(&self, name: &IndexName) -> Result<(String, Option<ClassInfo>), IndexError> {
        let class = class_name(name)?;
        let answer = self.http.send(Method::GET, &format!("/v1/schema/{class}"), &[], None).await?;
        match answer.status {
            StatusCode::OK => {
                let info = ClassInfo::parse(&answer.body).map_err(|e| backend(format!("class {class}: {e}")))?;
                Ok((class, Some(info)))
            }
            StatusCode::NOT_FOUND => Ok((class, None)),
            _ => Err(self.http.unexpected(&format!("reading class {class}"), &answer)),
        }
    }

    /// Our class of `name`, or `CollectionNotFound`, or a refusal when the class is not ours.
    async fn ours(&self, name: &IndexName) -> Result<Ours, IndexError> {
        let (class, info) = self.read_class(name).await?;
        let info = info.ok_or_else(|| IndexError::CollectionNotFound(name.clone()))?;
        let marker = check_ours(&class, name, &info)?;
        Ok(Ours { class, info, marker })
    }

    /// Adds the typed properties `needed` that `class` lacks.
    async fn add_properties(&self, ours: &mut Ours, needed: Vec<(String, Kind)>) -> Result<(), IndexError> {
        for (prop, kind) in needed {
            if ours.info.has(&prop) {
                continue;
            }
            let path = format!("/v1/schema/{}/properties", ours.class);
            let answer = self.http.send(Method::POST, &path, &[], Some(&property_body(&prop, kind))).await?;
            match answer.status {
                StatusCode::OK => {}
                StatusCode::UNPROCESSABLE_ENTITY => {
                    // Another writer may have added it first; anything else is a real refusal.
                    let (_, info) = self.read_class(&index_of(&ours.marker)?).await?;
                    if !info.as_ref().is_some_and(|i| i.has(&prop)) {
                        return Err(self.http.unexpected(&format!("adding property {prop} to class {}", ours.class), &answer));
                    }
                }
                _ => return Err(self.http.unexpected(&format!("adding property {prop} to class {}", ours.class), &answer)),
            }
            ours.info.properties.insert(prop);
        }
        Ok(())
    }

    /// One batch delete: (matches, deleted, the server's per-call limit).
    async fn batch_delete(&self, class: &str, filter: &Value) -> Result<(u64, u64, u64), IndexError> {
        let body = json!({"match": {"class": class, "where": filter}, "output": "minimal", "dryRun": false});
        let answer = self.http.send(Method::DELETE, "/v1/batch/objects", &[], Some(&body)).await?;
        if answer.status != StatusCode::OK {
            return Err(self.http.unexpected(&format!("a batch delete in class {class}"), &answer));
        }
        let v = answer.json("a batch delete")?;
        let results = v.get("results").ok_or_else(|| backend("a batch delete answer without results"))?;
        let num = |k: &str| results.get(k).and_then(Value::as_f64).unwrap_or(0.0) as u64;
        if num("failed") > 0 {
            return Err(backend(format!("Weaviate failed to delete {} of {} objects in class {class}", num("failed"), num("matches"))));
        }
        Ok((num("matches"), num("successful"), num("limit")))
    }

    async fn delete_ids(&self, class: &str, ids: &[PointId]) -> Result<u64, IndexError> {
        let mut deleted = 0;
        for chunk in ids.chunks(DELETE_IDS_PER_CALL) {
            let values: Vec<String> = chunk.iter().map(ToString::to_string).collect();
            let w = json!({"path": ["id"], "operator": "ContainsAny", "valueTextArray": values});
            deleted += self.batch_delete(class, &w).await?.1;
        }
        Ok(deleted)
    }

    /// One listing page: up to `limit` objects after `after` (exclusive, UUID order).
    async fn list(&self, class: &str, after: &str, limit: usize, vectors: bool) -> Result<Vec<StoredPoint>, IndexError> {
        let limit_s = limit.to_string();
        let mut query = vec![("class", class), ("limit", limit_s.as_str()), ("after", after)];
        if vectors {
            query.push(("include", "vector"));
        }
        let answer = self.http.send(Method::GET, "/v1/objects", &query, None).await?;
        if answer.status != StatusCode::OK {
            return Err(self.http.unexpected(&format!("listing class {class}"), &answer));
        }
        let v = answer.json("a listing")?;
        let objects = v.get("objects").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        objects
            .iter()
            .map(|o| {
                let id = parse_id(o.get("id"))?;
                let payload = parse_payload(o.get("properties"), id)?;
                let vector = if vectors { Some(parse_vector(o.get("vector"), id)?) } else { None };
                Ok(StoredPoint { id, payload, vector })
            })
            .collect()
    }

    /// Visits the points in id order from `from` (inclusive) that `filter` accepts, page by page, until `visit`
    /// returns `false` or the class ends. Memory stays one page whatever the class holds.
    async fn scan(
        &self,
        class: &str,
        from: Option<PointId>,
        page: usize,
        filter: Option<&Filter>,
        vectors: bool,
        mut visit: impl FnMut(StoredPoint) -> bool,
    ) -> Result<(), IndexError> {
        let mut after = match from {
            Some(f) if f.0.as_u128() > 0 => Uuid::from_u128(f.0.as_u128() - 1).hyphenated().to_string(),
            _ => String::new(),
        };
        let page = page.clamp(1, MAX_RESULTS);
        loop {
            let points = self.list(class, &after, page, vectors).await?;
            let full = points.len() >= page;
            if let Some(last) = points.last() {
                after = last.id.to_string();
            }
            for p in points {
                if filter.is_none_or(|f| f.matches(&payload_object(&p.payload))) && !visit(p) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn aggregate_count(&self, class: &str, w: Option<&Value>) -> Result<u64, IndexError> {
        let args = w.map(|w| format!("(where: {})", graphql_literal(w))).unwrap_or_default();
        let data = self.http.graphql(&format!("{{ Aggregate {{ {class}{args} {{ meta {{ count }} }} }} }}")).await?;
        data.pointer(&format!("/Aggregate/{class}/0/meta/count"))
            .and_then(Value::as_f64)
            .map(|c| c as u64)
            .ok_or_else(|| backend(format!("an Aggregate answer without a count for class {class}")))
    }
}

fn index_of(marker: &Marker) -> Result<IndexName, IndexError> {
    IndexName::parse(&marker.index).map_err(|e| backend(format!("a class marker names an invalid index: {e}")))
}

fn check_ours(class: &str, name: &IndexName, info: &ClassInfo) -> Result<Marker, IndexError> {
    match &info.marker {
        Some(m) if m.index == name.as_str() => Ok(m.clone()),
        _ => Err(backend(format!("class {class} exists but was not created by colstore for index {name}; refusing to use it"))),
    }
}

fn dim_of(v: &[f32]) -> u32 {
    u32::try_from(v.len()).unwrap_or(u32::MAX)
}

fn normalised(v: &[f32]) -> Vector {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 0.0 { v.iter().map(|x| (f64::from(*x) / norm) as f32).collect() } else { v.to_vec() }
}

fn payload_object(p: &Payload) -> Map<String, Value> {
    match serde_json::to_value(p) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn parse_id(v: Option<&Value>) -> Result<PointId, IndexError> {
    let s = v.and_then(Value::as_str).ok_or_else(|| backend("an object without an id"))?;
    Uuid::parse_str(s).map(PointId).map_err(|e| backend(format!("an object id {s:?} is not a UUID: {e}")))
}

fn parse_payload(v: Option<&Value>, id: PointId) -> Result<Payload, IndexError> {
    let props = v.and_then(Value::as_object).ok_or_else(|| backend(format!("object {id} has no properties")))?;
    payload_from_properties(props).map_err(|e| backend(format!("object {id}: {e}")))
}

fn parse_vector(v: Option<&Value>, id: PointId) -> Result<Vector, IndexError> {
    let items = v.and_then(Value::as_array).ok_or_else(|| backend(format!("object {id} came without its vector")))?;
    items.iter().map(|x| x.as_f64().map(|f| f as f32).ok_or_else(|| backend(format!("object {id} has a non-numeric vector")))).collect()
}

/// The score (higher is closer) of a Weaviate distance.
fn score(distance: Distance, d: f64) -> f32 {
    (match distance {
        Distance::Cosine => 1.0 - d,
        // Weaviate's dot distance is the negated inner product.
        Distance::Dot => -d,
        // l2-squared: the score is the negated Euclidean distance.
        Distance::Euclid => -d.max(0.0).sqrt(),
    }) as f32
}

#[async_trait]
impl VectorIndex for WeaviateIndex {
    fn capabilities(&self) -> IndexCapabilities {
        IndexCapabilities {
            max_batch_points: self.max_batch,
            max_request_bytes: 32 * 1024 * 1024,
            filter_should: true,
            exact_count: true,
            snapshots: false,
        }
    }

    async fn health(&self) -> Result<IndexHealth, IndexError> {
        let meta = self.http.probe("/v1/meta").await?;
        if meta.status != StatusCode::OK {
            return Err(self.http.unexpected("GET /v1/meta", &meta));
        }
        let version = meta.json("GET /v1/meta")?.get("version").and_then(Value::as_str).map(str::to_owned);
        let ready = self.http.probe("/v1/.well-known/ready").await;
        let (ok, detail) = match ready {
            Ok(Answer { status, .. }) if status.is_success() => (true, None),
            Ok(a) => (false, Some(format!("{} is not ready ({})", self.http.display(), a.status))),
            Err(IndexError::Unavailable(why)) => (false, Some(why)),
            Err(e) => return Err(e),
        };
        Ok(IndexHealth { backend: WEAVIATE_KIND.to_owned(), version, ok, detail })
    }

    async fn ensure_collection(&self, name: &IndexName, settings: &VectorSettings) -> Result<(), IndexError> {
        let check = |class: &str, info: &ClassInfo| -> Result<(), IndexError> {
            let m = check_ours(class, name, info)?;
            let got = settings.embedder.dimension.get();
            if m.dimension != got || m.distance != settings.distance {
                return Err(IndexError::DimensionMismatch { expected: m.dimension, got });
            }
            Ok(())
        };
        let (class, info) = self.read_class(name).await?;
        if let Some(info) = info {
            return check(&class, &info);
        }
        let answer = self.http.send(Method::POST, "/v1/schema", &[], Some(&class_body(&class, name, settings))).await?;
        match answer.status {
            StatusCode::OK => Ok(()),
            StatusCode::UNPROCESSABLE_ENTITY => match self.read_class(name).await? {
                // Created meanwhile by another writer.
                (_, Some(info)) => check(&class, &info),
                _ => Err(backend(format!(
                    "Weaviate refused to create class {class} for index {name} ({}); a class whose name differs only in case may exist",
                    self.http.message(&answer.body)
                ))),
            },
            _ => Err(self.http.unexpected(&format!("creating class {class}"), &answer)),
        }
    }

    async fn drop_collection(&self, name: &IndexName) -> Result<bool, IndexError> {
        let (class, info) = self.read_class(name).await?;
        let Some(info) = info else { return Ok(false) };
        check_ours(&class, name, &info)?;
        let answer = self.http.send(Method::DELETE, &format!("/v1/schema/{class}"), &[], None).await?;
        if !answer.status.is_success() {
            return Err(self.http.unexpected(&format!("deleting class {class}"), &answer));
        }
        Ok(true)
    }

    async fn upsert(&self, name: &IndexName, points: Vec<Point>) -> Result<(), IndexError> {
        let mut ours = self.ours(name).await?;
        let expected = ours.marker.dimension;
        // Refused before anything is written, so a failed upsert leaves no half-written batch.
        if let Some(bad) = points.iter().find(|p| dim_of(&p.vector) != expected) {
            return Err(IndexError::DimensionMismatch { expected, got: dim_of(&bad.vector) });
        }
        let mut needed = std::collections::BTreeMap::new();
        let class = ours.class.clone();
        let mut objects = Vec::with_capacity(points.len());
        for p in &points {
            let (props, uses) = object_properties(&p.payload);
            needed.extend(uses.into_iter().filter(|(n, _)| !ours.info.has(n)));
            let vector = if ours.marker.distance == Distance::Cosine { normalised(&p.vector) } else { p.vector.clone() };
            objects.push(WireObject { class: &class, id: p.id.to_string(), vector, properties: props });
        }
        self.add_properties(&mut ours, needed.into_iter().collect()).await?;
        for (chunk, sent) in objects.chunks(self.max_batch).zip(points.chunks(self.max_batch)) {
            let body = serde_json::to_vec(&WireBatch { objects: chunk }).map_err(|e| backend(format!("cannot encode a batch: {e}")))?;
            let answer = self.http.send_bytes(Method::POST, "/v1/batch/objects", &[], Some(body.into())).await?;
            if answer.status != StatusCode::OK {
                return Err(self.http.unexpected(&format!("a batch of {} objects into class {class}", chunk.len()), &answer));
            }
            let v = answer.json("a batch upsert")?;
            let items = v.as_array().ok_or_else(|| backend("a batch upsert answer that is not a list"))?;
            if items.len() != chunk.len() {
                return Err(backend(format!("Weaviate answered a batch of {} objects with {} results", chunk.len(), items.len())));
            }
            let mut failures = Vec::new();
            for (item, point) in items.iter().zip(sent) {
                let status = item.pointer("/result/status").and_then(Value::as_str).unwrap_or("SUCCESS");
                let errors = item.pointer("/result/errors/error").and_then(Value::as_array).is_some_and(|e| !e.is_empty());
                if status != "SUCCESS" || errors {
                    let m =
                        self.http.message(&serde_json::to_vec(item.pointer("/result/errors").unwrap_or(&Value::Null)).unwrap_or_default());
                    failures.push(format!("{}: {m}", point.id));
                }
            }
            if !failures.is_empty() {
                return Err(backend(format!(
                    "Weaviate failed {} of {} objects of a batch into class {class}: {}",
                    failures.len(),
                    chunk.len(),
                    failures.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                )));
            }
        }
        Ok(())
    }

    async fn delete(&self, name: &IndexName, ids: Vec<PointId>) -> Result<(), IndexError> {
        let ours = self.ours(name).await?;
        self.delete_ids(&ours.class, &ids).await?;
        Ok(())
    }

    async fn delete_by_filter(&self, name: &IndexName, filter: &Filter) -> Result<Option<u64>, IndexError> {
        let ours = self.ours(name).await?;
        let Translated { hi, exact } = translate(filter, &ours.info);
        if !exact {
            // Weaviate cannot select exactly these: list, check each point here, delete by id. Deleting behind the
            // cursor does not disturb it.
            let mut doomed = Vec::new();
            self.scan(&ours.class, None, FILTERED_PAGE, Some(filter), false, |p| {
                doomed.push(p.id);
                true
            })
            .await?;
            return Ok(Some(self.delete_ids(&ours.class, &doomed).await?));
        }
        let w = match hi {
            Where::Nothing => return Ok(Some(0)),
            // `where` is required: every object has a chunk number ≥ 0.
            Where::All => json!({"path": [schema::CHUNK], "operator": "GreaterThanEqual", "valueInt": 0}),
            Where::Filter(w) => w,
        };
        let mut total = 0;
        loop {
            let (matches, successful, limit) = self.batch_delete(&ours.class, &w).await?;
            total += successful;
            // Weaviate deletes at most `limit` objects per call: repeat while a call hits the cap.
            if matches == 0 || successful == 0 || matches < limit {
                return Ok(Some(total));
            }
        }
    }

    async fn scroll(&self, name: &IndexName, request: ScrollRequest) -> Result<ScrollPage, IndexError> {
        if request.limit == 0 {
            return Err(backend("a scroll page size must be at least 1"));
        }
        let ours = self.ours(name).await?;
        // One more than asked: it becomes `next`.
        let want = request.limit.saturating_add(1);
        let page = if request.filter.is_some() { FILTERED_PAGE.max(want) } else { want };
        let mut points = Vec::new();
        self.scan(&ours.class, request.from, page, request.filter.as_ref(), request.with_vectors, |p| {
            points.push(p);
            points.len() < want
        })
        .await?;
        let next = if points.len() > request.limit { points.pop().map(|p| p.id) } else { None };
        Ok(ScrollPage { points, next })
    }

    async fn count(&self, name: &IndexName, filter: Option<Filter>) -> Result<u64, IndexError> {
        let ours = self.ours(name).await?;
        let Some(filter) = filter else { return self.aggregate_count(&ours.class, None).await };
        let Translated { hi, exact } = translate(&filter, &ours.info);
        if !exact {
            let mut n = 0u64;
            self.scan(&ours.class, None, FILTERED_PAGE, Some(&filter), false, |_| {
                n += 1;
                true
            })
            .await?;
            return Ok(n);
        }
        match hi {
            Where::Nothing => Ok(0),
            Where::All => self.aggregate_count(&ours.class, None).await,
            Where::Filter(w) => self.aggregate_count(&ours.class, Some(&w)).await,
        }
    }

    async fn search(&self, name: &IndexName, request: SearchRequest) -> Result<Vec<ScoredPoint>, IndexError> {
        let ours = self.ours(name).await?;
        let expected = ours.marker.dimension;
        if dim_of(&request.vector) != expected {
            return Err(IndexError::DimensionMismatch { expected, got: dim_of(&request.vector) });
        }
        let (w, exact) = match &request.filter {
            None => (Where::All, true),
            Some(f) => {
                let t = translate(f, &ours.info);
                (t.hi, t.exact)
            }
        };
        let where_arg = match &w {
            Where::Nothing => return Ok(Vec::new()),
            Where::All => String::new(),
            Where::Filter(w) => format!(", where: {}", graphql_literal(w)),
        };
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let vector = serde_json::to_string(&request.vector).map_err(|e| backend(format!("cannot encode the query vector: {e}")))?;
        let class = &ours.class;
        // Ask for more until every hit tied with the last one kept is in hand (Weaviate orders ties arbitrarily, we
        // by id) and, for a filter confirmed on our side, enough hits pass it.
        // One more than asked: when it is farther than the last one kept, no tie was cut off.
        let mut fetch = request.limit.saturating_add(1).min(MAX_RESULTS);
        loop {
            let query = format!(
                "{{ Get {{ {class}(nearVector: {{vector: {vector}}}{where_arg}, limit: {fetch}) {{ {READ_FIELDS} _additional {{ id distance }} }} }} }}"
            );
            let data = self.http.graphql(&query).await?;
            let items = data.pointer(&format!("/Get/{class}")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let mut hits: Vec<(f64, ScoredPoint)> = Vec::with_capacity(items.len());
            let mut last_distance = f64::NEG_INFINITY;
            for item in items {
                let id = parse_id(item.pointer("/_additional/id"))?;
                let d = item
                    .pointer("/_additional/distance")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| backend(format!("hit {id} has no distance")))?;
                last_distance = last_distance.max(d);
                let payload = parse_payload(Some(item), id)?;
                if exact || request.filter.as_ref().is_none_or(|f| f.matches(&payload_object(&payload))) {
                    hits.push((d, ScoredPoint { id, score: score(ours.marker.distance, d), payload }));
                }
            }
            hits.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
            let exhausted = items.len() < fetch;
            let settled = hits.len() >= request.limit && hits.get(request.limit - 1).is_some_and(|(d, _)| *d < last_distance);
            if exhausted || settled {
                let mut out: Vec<ScoredPoint> = hits.into_iter().map(|(_, h)| h).collect();
                out.truncate(request.limit);
                return Ok(out);
            }
            if fetch >= MAX_RESULTS {
                return Err(backend(format!(
                    "search in class {class} needs more than Weaviate's {MAX_RESULTS} results to rank ties or confirm the filter"
                )));
            }
            fetch = fetch.saturating_mul(2).min(MAX_RESULTS);
        }
    }

    async fn flush(&self, name: &IndexName) -> Result<Vec<String>, IndexError> {
        self.ours(name).await?;
        Ok(vec!["nothing to flush: Weaviate answers a write only once it is durable, and has no flush endpoint".to_owned()])
    }
}
