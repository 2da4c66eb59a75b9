//! The fake's state and REST routes.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::Reply;
use super::filter::QFilter;

/// A point id: an unsigned integer or a UUID; integers sort before UUIDs, UUIDs by their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Pid {
    Num(u64),
    Uuid(u128),
}

impl Pid {
    fn parse(v: &Value) -> Result<Self, String> {
        let bad = |shown: String| format!("value {shown} is not a valid point ID, valid values are either an unsigned integer or a UUID");
        match v {
            Value::Number(n) => n.as_u64().map(Pid::Num).ok_or_else(|| bad(n.to_string())),
            Value::String(s) => parse_uuid(s).map(Pid::Uuid).ok_or_else(|| bad(s.clone())),
            other => Err(bad(other.to_string())),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Pid::Num(n) => json!(n),
            Pid::Uuid(u) => Value::String(format_uuid(u)),
        }
    }
}

impl<'de> Deserialize<'de> for Pid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Pid::parse(&v).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pid::Num(n) => write!(f, "{n}"),
            Pid::Uuid(u) => f.write_str(&format_uuid(*u)),
        }
    }
}

/// A UUID in hyphenated (any case) or simple form.
fn parse_uuid(s: &str) -> Option<u128> {
    let hex: String = if s.len() == 36 {
        let b = s.as_bytes();
        if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
            return None;
        }
        s.chars().filter(|c| *c != '-').collect()
    } else if s.len() == 32 {
        s.to_owned()
    } else {
        return None;
    };
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

fn format_uuid(u: u128) -> String {
    let h = format!("{u:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// One vector's parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorParams {
    size: u64,
    distance: DistanceKind,
    #[serde(default)]
    on_disk: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum DistanceKind {
    Cosine,
    Euclid,
    Dot,
    Manhattan,
}

impl DistanceKind {
    fn name(self) -> &'static str {
        match self {
            DistanceKind::Cosine => "Cosine",
            DistanceKind::Euclid => "Euclid",
            DistanceKind::Dot => "Dot",
            DistanceKind::Manhattan => "Manhattan",
        }
    }

    /// Whether a larger score is better (Euclid and Manhattan scores are distances).
    fn higher_is_better(self) -> bool {
        matches!(self, DistanceKind::Cosine | DistanceKind::Dot)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum VectorsConfig {
    Single(VectorParams),
    Multi(BTreeMap<String, VectorParams>),
}

impl VectorsConfig {
    fn to_json(&self) -> Value {
        let one = |p: &VectorParams| json!({"size": p.size, "distance": p.distance.name()});
        match self {
            VectorsConfig::Single(p) => one(p),
            VectorsConfig::Multi(m) => Value::Object(m.iter().map(|(k, p)| (k.clone(), one(p))).collect()),
        }
    }

    /// Qdrant's Debug rendering, as in its "not compatible" message.
    fn debug(&self) -> String {
        let one = |p: &VectorParams| {
            format!(
                "VectorParams {{ size: {}, distance: {:?}, hnsw_config: None, quantization_config: None, on_disk: None, datatype: None, multivector_config: None }}",
                p.size, p.distance
            )
        };
        match self {
            VectorsConfig::Single(p) => format!("Single({})", one(p)),
            VectorsConfig::Multi(m) => {
                format!("Multi({{{}}})", m.iter().map(|(k, p)| format!("{k:?}: {}", one(p))).collect::<Vec<_>>().join(", "))
            }
        }
    }

    fn same(&self, other: &VectorsConfig) -> bool {
        let key = |c: &VectorsConfig| c.to_json();
        key(self) == key(other)
    }
}

#[derive(Debug, Clone, Deserialize)]
struct CreateCollection {
    vectors: VectorsConfig,
}

#[derive(Debug, Clone)]
struct StoredPoint {
    vector: Vec<f32>,
    payload: Map<String, Value>,
    version: u64,
    /// Insertion order: Qdrant orders equal scores by internal offsets, not by id.
    seq: u64,
}

#[derive(Debug, Clone)]
struct Snapshot {
    name: String,
    creation_time: String,
    data: Vec<u8>,
    checksum: String,
}

#[derive(Debug, Clone)]
struct Collection {
    vectors: VectorsConfig,
    points: BTreeMap<Pid, StoredPoint>,
    schema: Map<String, Value>,
    snapshots: Vec<Snapshot>,
}

/// Everything the fake holds.
#[derive(Debug)]
pub(crate) struct State {
    collections: BTreeMap<String, Collection>,
    operation: u64,
    seq: u64,
    snapshot_seq: u64,
}

pub(crate) fn envelope(status: u16, result: Value, started: Instant) -> Reply {
    let body = json!({"result": result, "status": "ok", "time": started.elapsed().as_secs_f64()});
    Reply { status, content_type: Some("application/json"), body: body.to_string().into_bytes(), headers: Vec::new() }
}

/// Qdrant's JSON error.
pub(crate) fn error(status: u16, message: &str) -> Reply {
    let body = json!({"status": {"error": message}, "time": 0.0});
    Reply { status, content_type: Some("application/json"), body: body.to_string().into_bytes(), headers: Vec::new() }
}

/// A plain-text answer (401).
pub(crate) fn plain(status: u16, text: &str) -> Reply {
    Reply { status, content_type: None, body: text.as_bytes().to_vec(), headers: Vec::new() }
}

/// The answer to a point or index operation: `wait` defaults to false, which answers before applying ("acknowledged").
fn op_reply(operation: u64, query: &str, started: Instant) -> Reply {
    let wait = query_flag(query, "wait").is_some_and(|w| w == "true");
    envelope(200, json!({"operation_id": operation, "status": if wait { "completed" } else { "acknowledged" }}), started)
}

fn format_error(e: impl fmt::Display) -> Reply {
    error(400, &format!("Format error in JSON body: {e}"))
}

fn not_found(name: &str) -> Reply {
    error(404, &format!("Not found: Collection `{name}` doesn't exist!"))
}

fn dim_error(expected: u64, got: usize) -> Reply {
    error(400, &format!("Wrong input: Vector dimension error: expected dim: {expected}, got {got}"))
}

fn query_flag(query: &str, name: &str) -> Option<String> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_owned())
}

fn parse_json(body: &[u8]) -> Result<Value, Reply> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(format_error)
}

/// The `filter` of a request body. Qdrant reads the whole body before the filter, so its errors point at the end
/// of the body (`at line 1 column 40`): the fake does the same.
fn parse_filter(body: &[u8]) -> Result<Option<QFilter>, Reply> {
    if body.is_empty() {
        return Ok(None);
    }
    let whole: Value = serde_json::from_slice(body).map_err(format_error)?;
    match whole.get("filter") {
        None | Some(Value::Null) => Ok(None),
        Some(f) => QFilter::deserialize(f).map(Some).map_err(|e| format_error(format!("{e} at {}", end_position(body)))),
    }
}

/// `line L column C` of the last non-blank character of `text`.
fn end_position(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let text = text.trim_end();
    let line = text.matches('\n').count() + 1;
    let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count());
    format!("line {line} column {column}")
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > f32::EPSILON {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// `{"points": [{"id", "vector": [floats], "payload"}]}`, the shape colstore sends.
#[derive(serde::Deserialize)]
struct TypedUpsert {
    points: Vec<TypedPoint>,
}

#[derive(serde::Deserialize)]
struct TypedPoint {
    id: Value,
    vector: Vec<f32>,
    #[serde(default)]
    payload: Option<Map<String, Value>>,
}

fn floats(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()
}

/// The payload selection of `with_payload`: true/false, a list of keys, or `{"include": [...]}` / `{"exclude": [...]}`.
fn select_payload(payload: &Map<String, Value>, with: &Value) -> Option<Value> {
    match with {
        Value::Bool(true) => Some(Value::Object(payload.clone())),
        Value::Array(keys) => {
            let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
            Some(Value::Object(payload.iter().filter(|(k, _)| keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()))
        }
        Value::Object(o) => {
            let list = |k: &str| {
                o.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>())
            };
            let (inc, exc) = (list("include"), list("exclude"));
            Some(Value::Object(
                payload
                    .iter()
                    .filter(|(k, _)| inc.as_ref().is_none_or(|i| i.contains(k)) && exc.as_ref().is_none_or(|e| !e.contains(k)))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ))
        }
        _ => None,
    }
}

impl State {
    pub(crate) fn new() -> Self {
        Self { collections: BTreeMap::new(), operation: 0, seq: 0, snapshot_seq: 0 }
    }

    pub(crate) fn point_count(&self, name: &str) -> Option<usize> {
        self.collections.get(name).map(|c| c.points.len())
    }

    pub(crate) fn collection_names(&self) -> Vec<String> {
        self.collections.keys().cloned().collect()
    }

    fn operation(&mut self, query: &str, started: Instant) -> Reply {
        self.operation += 1;
        op_reply(self.operation, query, started)
    }

    /// Routes one request (authentication is checked before).
    pub(crate) fn route(
        &mut self,
        method: &str,
        route: &str,
        query: &str,
        headers: &hyper::HeaderMap,
        body: &[u8],
        started: Instant,
    ) -> Reply {
        let segs: Vec<&str> = route.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let r = match (method, segs.as_slice()) {
            ("GET", []) => Ok(Reply {
                status: 200,
                content_type: Some("application/json"),
                body: json!({"title": "qdrant - vector search engine", "version": "1.18.3", "commit": "0000000000000000000000000000000000000000"})
                    .to_string()
                    .into_bytes(),
                headers: Vec::new(),
            }),
            ("GET", ["healthz"]) | ("GET", ["livez"]) => {
                Ok(Reply { status: 200, content_type: Some("text/plain; charset=utf-8"), body: b"healthz check passed".to_vec(), headers: Vec::new() })
            }
            ("GET", ["readyz"]) => {
                Ok(Reply { status: 200, content_type: Some("text/plain; charset=utf-8"), body: b"all shards are ready".to_vec(), headers: Vec::new() })
            }
            ("GET", ["collections"]) => {
                let list: Vec<Value> = self.collections.keys().map(|n| json!({"name": n})).collect();
                Ok(envelope(200, json!({"collections": list}), started))
            }
            ("PUT", ["collections", c]) => self.create(c, body, started),
            ("GET", ["collections", c]) => self.info(c, started),
            ("DELETE", ["collections", c]) => Ok(envelope(200, json!(self.collections.remove(*c).is_some()), started)),
            ("GET", ["collections", c, "exists"]) => Ok(envelope(200, json!({"exists": self.collections.contains_key(*c)}), started)),
            ("PUT", ["collections", c, "points"]) => self.upsert(c, query, body, started),
            ("POST", ["collections", c, "points"]) => self.retrieve(c, body, started),
            ("GET", ["collections", c, "points", id]) => self.get_point(c, id, started),
            ("POST", ["collections", c, "points", "scroll"]) => self.scroll(c, body, started),
            ("POST", ["collections", c, "points", "count"]) => self.count(c, body, started),
            ("POST", ["collections", c, "points", "query"]) => self.query(c, body, started, false),
            ("POST", ["collections", c, "points", "search"]) => self.query(c, body, started, true),
            ("POST", ["collections", c, "points", "delete"]) => self.delete(c, query, body, started),
            ("POST", ["collections", c, "points", "payload"]) => self.set_payload(c, query, body, started),
            ("PUT", ["collections", c, "index"]) => self.create_index(c, query, body, started),
            ("POST", ["collections", c, "snapshots"]) => self.snapshot_create(c, query, started),
            ("GET", ["collections", c, "snapshots"]) => self.snapshot_list(c, started),
            ("GET", ["collections", c, "snapshots", name]) => self.snapshot_download(c, name),
            ("DELETE", ["collections", c, "snapshots", name]) => self.snapshot_delete(c, name, started),
            ("POST", ["collections", c, "snapshots", "upload"]) => self.snapshot_upload(c, headers, body, started),
            ("PUT", ["collections", c, "snapshots", "recover"]) => self.snapshot_recover(c, body, started),
            _ => Err(Reply { status: 404, content_type: None, body: Vec::new(), headers: Vec::new() }),
        };
        r.unwrap_or_else(|e| e)
    }

    fn coll(&mut self, name: &str) -> Result<&mut Collection, Reply> {
        self.collections.get_mut(name).ok_or_else(|| not_found(name))
    }

    fn create(&mut self, name: &str, body: &[u8], started: Instant) -> Result<Reply, Reply> {
        let req: CreateCollection = serde_json::from_slice(body).map_err(format_error)?;
        let sizes: Vec<u64> = match &req.vectors {
            VectorsConfig::Single(p) => vec![p.size],
            VectorsConfig::Multi(m) => m.values().map(|p| p.size).collect(),
        };
        if sizes.contains(&0) {
            return Err(error(422, "Validation error in JSON body: [vectors.size: value 0 invalid, must be 1 or larger]"));
        }
        if self.collections.contains_key(name) {
            return Err(error(409, &format!("Wrong input: Collection `{name}` already exists!")));
        }
        self.collections.insert(
            name.to_owned(),
            Collection { vectors: req.vectors, points: BTreeMap::new(), schema: Map::new(), snapshots: Vec::new() },
        );
        Ok(envelope(200, json!(true), started))
    }

    fn info(&mut self, name: &str, started: Instant) -> Result<Reply, Reply> {
        let c = self.coll(name)?;
        let result = json!({
            "status": "green",
            "optimizer_status": "ok",
            "indexed_vectors_count": 0,
            "points_count": c.points.len(),
            "segments_count": 2,
            "config": {
                "params": {
                    "vectors": c.vectors.to_json(),
                    "shard_number": 1,
                    "replication_factor": 1,
                    "write_consistency_factor": 1,
                    "on_disk_payload": true
                },
                "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "max_indexing_threads": 0, "on_disk": false},
                "optimizer_config": {
                    "deleted_threshold": 0.2,
                    "vacuum_min_vector_number": 1000,
                    "default_segment_number": 0,
                    "max_segment_size": null,
                    "memmap_threshold": null,
                    "indexing_threshold": 10000,
                    "flush_interval_sec": 5,
                    "max_optimization_threads": null,
                    "prevent_unoptimized": null
                },
                "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0, "wal_retain_closed": 1},
                "quantization_config": null
            },
            "payload_schema": c.schema,
            "update_queue": {"length": 0}
        });
        Ok(envelope(200, result, started))
    }

    fn single_params(c: &Collection, name: &str) -> Result<(u64, DistanceKind), Reply> {
        match &c.vectors {
            VectorsConfig::Single(p) => Ok((p.size, p.distance)),
            VectorsConfig::Multi(_) => {
                Err(error(400, &format!("Wrong input: the fake holds named vectors for `{name}` but serves only unnamed-vector points")))
            }
        }
    }

    fn upsert(&mut self, name: &str, query: &str, body: &[u8], started: Instant) -> Result<Reply, Reply> {
        // The common shape first, read straight into floats (as Qdrant's typed deserialiser does): through a `Value`
        // every float of every vector would be a node of its own, and the fake, not colstore, would set the pace of
        // `cargo xtask bench --only remote`. Anything else takes the general path, which gives Qdrant's errors.
        if let Ok(typed) = serde_json::from_slice::<TypedUpsert>(body) {
            let parsed = typed
                .points
                .into_iter()
                .map(|p| Ok((Pid::parse(&p.id).map_err(format_error)?, p.vector, p.payload.unwrap_or_default())))
                .collect::<Result<Vec<_>, Reply>>()?;
            return self.store_points(name, query, parsed, started);
        }
        let req = parse_json(body)?;
        // Parse every point before touching the collection: a bad one fails the whole request.
        let mut parsed: Vec<(Pid, Vec<f32>, Map<String, Value>)> = Vec::new();
        let payload_of = |v: Option<&Value>| -> Result<Map<String, Value>, Reply> {
            match v {
                None | Some(Value::Null) => Ok(Map::new()),
                Some(Value::Object(o)) => Ok(o.clone()),
                Some(other) => Err(format_error(format!("invalid type: {other}, expected a map"))),
            }
        };
        if let Some(points) = req.get("points") {
            for p in points.as_array().ok_or_else(|| format_error("invalid type: expected a sequence for `points`"))? {
                let id = Pid::parse(p.get("id").unwrap_or(&Value::Null)).map_err(format_error)?;
                let vector = p
                    .get("vector")
                    .and_then(floats)
                    .ok_or_else(|| format_error("data did not match any variant of untagged enum VectorStruct"))?;
                parsed.push((id, vector, payload_of(p.get("payload"))?));
            }
        } else if let Some(batch) = req.get("batch") {
            let ids = batch.get("ids").and_then(Value::as_array).ok_or_else(|| format_error("missing field `ids`"))?;
            let vectors = batch.get("vectors").and_then(Value::as_array).ok_or_else(|| format_error("missing field `vectors`"))?;
            let payloads = batch.get("payloads").and_then(Value::as_array);
            if vectors.len() != ids.len() || payloads.is_some_and(|p| p.len() != ids.len()) {
                return Err(error(400, "Wrong input: number of ids and vectors must be equal"));
            }
            for (i, id) in ids.iter().enumerate() {
                let id = Pid::parse(id).map_err(format_error)?;
                let vector =
                    floats(&vectors[i]).ok_or_else(|| format_error("data did not match any variant of untagged enum BatchVectorStruct"))?;
                parsed.push((id, vector, payload_of(payloads.and_then(|p| p.get(i)))?));
            }
        } else {
            return Err(format_error("data did not match any variant of untagged enum PointInsertOperations"));
        }
        self.store_points(name, query, parsed, started)
    }

    /// Writes points parsed whole (a bad one failed the request before anything was written).
    fn store_points(
        &mut self,
        name: &str,
        query: &str,
        parsed: Vec<(Pid, Vec<f32>, Map<String, Value>)>,
        started: Instant,
    ) -> Result<Reply, Reply> {
        let c = self.coll(name)?;
        let (size, distance) = Self::single_params(c, name)?;
        if let Some((_, v, _)) = parsed.iter().find(|(_, v, _)| v.len() as u64 != size) {
            return Err(dim_error(size, v.len()));
        }
        self.operation += 1;
        let version = self.operation;
        for (id, mut vector, payload) in parsed {
            if distance == DistanceKind::Cosine {
                normalise(&mut vector);
            }
            self.seq += 1;
            let seq = self.seq;
            if let Some(c) = self.collections.get_mut(name) {
                c.points.insert(id, StoredPoint { vector, payload, version, seq });
            }
        }
        Ok(op_reply(version, query, started))
    }

    fn point_json(id: Pid, p: &StoredPoint, with_payload: &Value, with_vector: bool) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), id.to_json());
        if let Some(payload) = select_payload(&p.payload, with_payload) {
            o.insert("payload".into(), payload);
        }
        if with_vector {
            o.insert("vector".into(), json!(p.vector));
        }
        Value::Object(o)
    }

    fn retrieve(&mut self, name: &str, body: &[u8], started: Instant) -> Result<Reply, Reply> {
        let req = parse_json(body)?;
        let ids = req.get("ids").and_then(Value::as_array).ok_or_else(|| format_error("missing field `ids`"))?;
        let ids = ids.iter().map(Pid::parse).collect::<Result<Vec<_>, _>>().map_err(format_error)?;
        let with_payload = req.get("with_payload").cloned().unwrap_or(json!(true));
        let with_vector = req.get("with_vector").and_then(Value::as_bool).unwrap_or(false);
        let c = self.coll(name)?;
        let out: Vec<Value> =
            ids.iter().filter_map(|id| c.points.get(id).map(|p| Self::point_json(*id, p, &with_payload, with_vector))).collect();
        Ok(envelope(200, Value::Array(out), started))
    }

    fn get_point(&mut self, name: &str, id: &str, started: Instant) -> Result<Reply, Reply> {
        let pid = id.parse::<u64>().map(Pid::Num).ok().or_else(|| parse_uuid(id).map(Pid::Uuid)).ok_or_else(|| {
            error(
                400,
                &format!("Format error in path: value {id} is not a valid point ID, valid values are either an unsigned integer or a UUID"),
            )
        })?;
        let c = self.coll(name)?;
        let p = c.points.get(&pid).ok_or_else(|| error(404, &format!("Not found: Point with id {pid} does not exists!")))?;
        Ok(envelope(200, Self::point_json(pid, p, &json!(true), true), started))
    }

    fn scroll(&mut self, name: &str, body: &[u8], started: Instant) -> Result<Reply, Reply> {
        let req = parse_json(body)?;
        let limit = match req.get("limit") {
            None | Some(Value::Null) => 10,
            Some(v) => v.as_u64().ok_or_else(|| format_error(format!("invalid type: {v}, expected u64")))?,
        };
        if limit == 0 {
            return Err(error(422, "Validation error in JSON body: [scroll_request.limit: value 0 invalid, must be 1 or larger]"));
        }
        let offset = match req.get("offset") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Pid::parse(v).map_err(format_error)?),
        };
        let filter = parse_filter(body)?;
        let with_payload = req.get("with_payload").cloned().unwrap_or(json!(true));
        let with_vector = req.get("with_vector").and_then(Value::as_bool).unwrap_or(false);
        let c = self.coll(name)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut matching = c
            .points
            .range(offset.unwrap_or(Pid::Num(0))..)
            .filter(|(id, p)| filter.as_ref().is_none_or(|f| f.check(id, &p.payload)))
            .take(limit.saturating_add(1));
        let page: Vec<Value> = matching.by_ref().take(limit).map(|(id, p)| Self::point_json(*id, p, &with_payload, with_vector)).collect();
        let next = matching.next().map_or(Value::Null, |(id, _)| id.to_json());
        Ok(envelope(200, json!({"points": page, "next_page_offset": next}), started))
    }

    fn count(&mut self, name: &str, body: &[u8], started: Instant) -> Result<Reply, Reply> {
        let filter = parse_filter(body)?;
        let c = self.coll(name)?;
        let n = c.points.iter().filter(|(id, p)| filter.as_ref().is_none_or(|f| f.check(id, &p.payload))).count();
        Ok(envelope(200, json!({"count": n}), started))
    }

    fn query(&mut self, name: &str, body: &[u8], started: Instant, deprecated: bool) -> Result<Reply, Reply> {
        let req = parse_json(body)?;
        let vector_field = if deprecated { "vector" } else { "query" };
        let raw = req.get(vector_field).map(|q| q.get("nearest").unwrap_or(q));
        let mut query =
            raw.and_then(floats).ok_or_else(|| format_error(format!("`{vector_field}` must be a list of numbers in the fake")))?;
        let limit = req.get("limit").and_then(Value::as_u64).unwrap_or(10);
        if limit == 0 {
            return Err(error(422, "Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]"));
        }
        let offset = req.get("offset").and_then(Value::as_u64).unwrap_or(0);
        let filter = parse_filter(body)?;
        let with_payload = req.get("with_payload").cloned().unwrap_or(json!(false));
        let with_vector = req.get("with_vector").and_then(Value::as_bool).unwrap_or(false);
        let threshold = req.get("score_threshold").and_then(Value::as_f64).map(|t| t as f32);
        let c = self.coll(name)?;
        let (size, distance) = Self::single_params(c, name)?;
        if query.len() as u64 != size {
            return Err(dim_error(size, query.len()));
        }
        if distance == DistanceKind::Cosine {
            normalise(&mut query);
        }
        let score = |v: &[f32]| -> f32 {
            match distance {
                DistanceKind::Cosine | DistanceKind::Dot => v.iter().zip(&query).map(|(a, b)| a * b).sum(),
                DistanceKind::Euclid => v.iter().zip(&query).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt(),
                DistanceKind::Manhattan => v.iter().zip(&query).map(|(a, b)| (a - b).abs()).sum(),
            }
        };
        let better = distance.higher_is_better();
        let mut hits: Vec<(f32, u64, Pid, &StoredPoint)> = c
            .points
            .iter()
            .filter(|(id, p)| filter.as_ref().is_none_or(|f| f.check(id, &p.payload)))
            .map(|(id, p)| (score(&p.vector), p.seq, *id, p))
            .filter(|(s, ..)| threshold.is_none_or(|t| if better { *s >= t } else { *s <= t }))
            .collect();
        // Equal scores come in insertion order (Qdrant: internal offsets), not in id order.
        hits.sort_by(|a, b| if better { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) }.then(a.1.cmp(&b.1)));
        let out: Vec<Value> = hits
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(s, _, id, p)| {
                let mut o = Map::new();
                o.insert("id".into(), id.to_json());
                o.insert("version".into(), json!(p.version));
                o.insert("score".into(), json!(s));
                if let Some(payload) = select_payload(&p.payload, &with_payload) {
                    o.insert("payload".into(), payload);
                }
                if with_vector {
                    o.insert("vector".into(), json!(p.vector));
                }
                Value::Object(o)
            })
            .collect();
        Ok(envelope(200, if deprecated { Value::Array(out) } else { json!({"points": out}) }, started))
    }

    fn selected(c: &Collection, req: &Value, body: &[u8]) -> Result<Vec<Pid>, Reply> {
        if let Some(points) = req.get("points") {
            let ids = points.as_array().ok_or_else(|| format_error("invalid type: expected a sequence for `points`"))?;
            return ids.iter().map(Pid::parse).collect::<Result<Vec<_>, _>>().map_err(format_error);
        }
        let filter = parse_filter(body)?.ok_or_else(|| format_error("data did not match any variant of untagged enum PointsSelector"))?;
        Ok(c.points.iter().filter(|(id, p)| filter.check(id, &p.payload)).map(|(id, _)| *id).collect())
    }

    fn delete(&mut self, name: &str, query: &str, body: &[u8], started: Instant) -> Result<Reply, Reply> {
        let req = parse_json(body)?;
        let c = self.coll(name)?;
        for id in Self::selected(c, &req, body)? {
            c.points.remove(&id);
        }
        Ok(self.operation(query, started))
    }

    fn set_payload(&mut self, name: &str, query: &str, body: &[u8], started: Instant) -> Result<Reply, Reply> {
        let req = parse_json(body)?;
        let payload = req.get("payload").and_then(Value::as_object).cloned().ok_or_else(|| format_error("missing field `payload`"))?;
        let c = self.coll(name)?;
        for id in Self::selected(c, &req, body)? {
            if let Some(p) = c.points.get_mut(&id) {
                p.payload.extend(payload.clone());
            }
        }
        Ok(self.operation(query, started))
    }

    fn create_index(&mut self, name: &str, query: &str, body: &[u8], started: Instant) -> Result<Reply, Reply> {
        let req = parse_json(body)?;
        let field = req.get("field_name").and_then(Value::as_str).ok_or_else(|| format_error("missing field `field_name`"))?.to_owned();
        let schema = match req.get("field_schema") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(o)) => o.get("type").and_then(Value::as_str).unwrap_or("keyword").to_owned(),
            _ => return Err(format_error("missing field `field_schema`")),
        };
        let c = self.coll(name)?;
        let count = c.points.values().filter(|p| p.payload.contains_key(&field)).count();
        c.schema.insert(field, json!({"data_type": schema, "points": count}));
        Ok(self.operation(query, started))
    }

    fn snapshot_create(&mut self, name: &str, query: &str, started: Instant) -> Result<Reply, Reply> {
        self.snapshot_seq += 1;
        let seq = self.snapshot_seq;
        let c = self.coll(name)?;
        let points: Vec<Value> = c
            .points
            .iter()
            .map(|(id, p)| json!({"id": id.to_json(), "vector": p.vector, "payload": p.payload, "version": p.version}))
            .collect();
        let data =
            json!({"format": "colstore qdrant fake snapshot 1", "vectors": c.vectors.to_json(), "schema": c.schema, "points": points})
                .to_string()
                .into_bytes();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        // `2024-02-29T12:30:05`, as Qdrant writes creation times; its snapshot names use `2024-02-29-12-30-05`.
        let created = colstore_domain::Timestamp::from_millis(i64::try_from(now).unwrap_or(i64::MAX)).to_string()[..19].to_owned();
        let snapshot = Snapshot {
            name: format!("{name}-{:016}-{}.snapshot", 1_000_000_000_000_000u64 + seq, created.replace(['T', ':'], "-")),
            creation_time: created,
            checksum: Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect(),
            data,
        };
        let info = Self::snapshot_json(&snapshot);
        c.snapshots.push(snapshot);
        if query_flag(query, "wait").is_some_and(|w| w == "false") {
            let body = json!({"status": "accepted", "time": started.elapsed().as_secs_f64()});
            return Ok(Reply {
                status: 202,
                content_type: Some("application/json"),
                body: body.to_string().into_bytes(),
                headers: Vec::new(),
            });
        }
        Ok(envelope(200, info, started))
    }

    fn snapshot_json(s: &Snapshot) -> Value {
        json!({"name": s.name, "creation_time": s.creation_time, "size": s.data.len(), "checksum": s.checksum})
    }

    fn snapshot_list(&mut self, name: &str, started: Instant) -> Result<Reply, Reply> {
        let c = self.coll(name)?;
        Ok(envelope(200, Value::Array(c.snapshots.iter().map(Self::snapshot_json).collect()), started))
    }

    fn snapshot_missing(name: &str) -> Reply {
        error(404, &format!("Not found: Snapshot file `{name}` does not exist!"))
    }

    fn snapshot_download(&mut self, name: &str, snapshot: &str) -> Result<Reply, Reply> {
        let c = self.coll(name)?;
        let s = c.snapshots.iter().find(|s| s.name == snapshot).ok_or_else(|| Self::snapshot_missing(snapshot))?;
        Ok(Reply { status: 200, content_type: Some("application/octet-stream"), body: s.data.clone(), headers: Vec::new() })
    }

    fn snapshot_delete(&mut self, name: &str, snapshot: &str, started: Instant) -> Result<Reply, Reply> {
        let c = self.coll(name)?;
        let before = c.snapshots.len();
        c.snapshots.retain(|s| s.name != snapshot);
        if c.snapshots.len() == before {
            return Err(Self::snapshot_missing(snapshot));
        }
        Ok(envelope(200, json!(true), started))
    }

    /// Replaces or creates `name` from snapshot bytes.
    fn recover(&mut self, name: &str, data: &[u8], started: Instant) -> Result<Reply, Reply> {
        let bad = || error(400, "Wrong input: the uploaded file is not a snapshot of this fake (it makes its own snapshots only)");
        let snap: Value = serde_json::from_slice(data).map_err(|_| bad())?;
        let vectors: VectorsConfig = serde_json::from_value(snap.get("vectors").cloned().unwrap_or(Value::Null)).map_err(|_| bad())?;
        if let Some(existing) = self.collections.get(name)
            && !existing.vectors.same(&vectors)
        {
            return Err(error(
                400,
                &format!(
                    "Wrong input: Snapshot is not compatible with existing collection: Collection vectors: {} Snapshot Vectors: {}",
                    existing.vectors.debug(),
                    vectors.debug()
                ),
            ));
        }
        let mut points = BTreeMap::new();
        for p in snap.get("points").and_then(Value::as_array).ok_or_else(bad)? {
            let id = Pid::parse(p.get("id").unwrap_or(&Value::Null)).map_err(|_| bad())?;
            self.seq += 1;
            points.insert(
                id,
                StoredPoint {
                    vector: p.get("vector").and_then(floats).ok_or_else(bad)?,
                    payload: p.get("payload").and_then(Value::as_object).cloned().unwrap_or_default(),
                    version: p.get("version").and_then(Value::as_u64).unwrap_or(0),
                    seq: self.seq,
                },
            );
        }
        let schema = snap.get("schema").and_then(Value::as_object).cloned().unwrap_or_default();
        let snapshots = self.collections.remove(name).map(|c| c.snapshots).unwrap_or_default();
        self.collections.insert(name.to_owned(), Collection { vectors, points, schema, snapshots });
        Ok(envelope(200, json!(true), started))
    }

    fn snapshot_upload(&mut self, name: &str, headers: &hyper::HeaderMap, body: &[u8], started: Instant) -> Result<Reply, Reply> {
        let boundary = headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| ct.split(';').find_map(|p| p.trim().strip_prefix("boundary=")))
            .map(|b| b.trim_matches('"').to_owned())
            .ok_or_else(|| error(400, "Bad request: expected a multipart/form-data body with a boundary"))?;
        let data = multipart_field(body, &boundary, "snapshot")
            .ok_or_else(|| error(400, "Bad request: the multipart body has no field `snapshot`"))?;
        self.recover(name, &data, started)
    }

    fn snapshot_recover(&mut self, name: &str, body: &[u8], started: Instant) -> Result<Reply, Reply> {
        let req = parse_json(body)?;
        let location = req.get("location").and_then(Value::as_str).ok_or_else(|| format_error("missing field `location`"))?;
        let scheme = location.split_once("://").map_or("", |(s, _)| s);
        match scheme {
            "file" => {
                let file = location.rsplit('/').next().unwrap_or_default();
                let data = self
                    .collections
                    .values()
                    .flat_map(|c| &c.snapshots)
                    .find(|s| s.name == file)
                    .map(|s| s.data.clone())
                    .ok_or_else(|| error(404, &format!("Not found: Snapshot file {location} does not exist")))?;
                self.recover(name, &data, started)
            }
            "http" | "https" => Err(error(400, "Bad request: the fake cannot download snapshots; upload them or use file://")),
            other => Err(error(400, &format!("Bad request: URL {location} with scheme {other} is not supported"))),
        }
    }
}

/// The content of field `name` of a multipart/form-data body.
fn multipart_field(body: &[u8], boundary: &str, name: &str) -> Option<Vec<u8>> {
    let delimiter = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from);
    let mut at = find(body, &delimiter, 0)?;
    loop {
        let start = at + delimiter.len();
        let next = find(body, &delimiter, start)?;
        let part = &body[start..next];
        let head_end = find(part, b"\r\n\r\n", 0)?;
        let head = String::from_utf8_lossy(&part[..head_end]);
        if head.contains(&format!("name=\"{name}\"")) {
            let content = &part[head_end + 4..];
            let content = content.strip_suffix(b"\r\n").unwrap_or(content);
            return Some(content.to_vec());
        }
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_qdrant() {
        assert_eq!(Pid::parse(&json!(7)), Ok(Pid::Num(7)));
        assert!(Pid::parse(&json!("42")).unwrap_err().contains("value 42 is not a valid point ID"));
        assert!(Pid::parse(&json!(-1)).is_err());
        let upper = Pid::parse(&json!("AE05B567-8228-5D7E-A6DE-45F0A8CF1327")).unwrap();
        assert_eq!(upper.to_json(), json!("ae05b567-8228-5d7e-a6de-45f0a8cf1327"));
        assert!(Pid::Num(u64::MAX) < Pid::Uuid(0), "integers sort before UUIDs");
    }

    #[test]
    fn multipart_fields_are_found() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nno\r\n--XX\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"a\"\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\nMORE\r\n--XX--\r\n";
        assert_eq!(multipart_field(body, "XX", "snapshot").as_deref(), Some(&b"DATA\r\nMORE"[..]));
        assert_eq!(multipart_field(body, "XX", "nope"), None);
    }
}
