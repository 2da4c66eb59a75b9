//! The fake's state and the semantics of each endpoint: schema rules, objects, batch results, batch delete with its
//! cap, the listing cursor, `where` filters, the GraphQL `Get`/`Aggregate` shapes and backups.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::graphql::{self, Field};

/// The server version the fake claims.
pub(crate) const VERSION: &str = "1.39.0";
/// `QUERY_MAXIMUM_RESULTS`: the largest result window.
pub(crate) const MAX_RESULTS: usize = 10_000;

/// An answer: status and body (`None` = empty body).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self { status: 200, body: Some(body) }
    }
    fn empty(status: u16) -> Self {
        Self { status, body: None }
    }
    /// `{"error":[{"message"}]}`, the application error shape.
    pub(crate) fn error(status: u16, message: impl Into<String>) -> Self {
        Self { status, body: Some(json!({"error": [{"message": message.into()}]})) }
    }
    /// 422 `{"code","message"}`, the request-validation shape.
    fn invalid(message: impl Into<String>) -> Self {
        Self { status: 422, body: Some(json!({"code": 606, "message": message.into()})) }
    }
    /// A GraphQL error: status 200 with `errors`.
    fn graphql_error(message: impl Into<String>) -> Self {
        Self::ok(json!({"errors": [{"message": message.into(), "locations": [{"line": 1, "column": 1}], "path": []}]}))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Prop {
    name: String,
    data_type: String,
    tokenization: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Object {
    properties: Map<String, Value>,
    vector: Vec<f32>,
    created: u64,
    updated: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Class {
    /// The class definition as answered (names normalised, defaults filled in).
    definition: Value,
    props: Vec<Prop>,
    distance: String,
    /// Set by the first vector written; Weaviate's HNSW index keeps it.
    dimension: Option<usize>,
    objects: BTreeMap<Uuid, Object>,
}

impl Class {
    fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone)]
struct Backup {
    backend: String,
    classes: BTreeMap<String, Class>,
    /// Status polls so far: STARTED, then TRANSFERRING, then SUCCESS.
    polls: usize,
    restore: Option<(Vec<String>, usize)>,
}

const PROGRESSION: [&str; 3] = ["STARTED", "TRANSFERRING", "SUCCESS"];

/// Everything the fake holds.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub classes: BTreeMap<String, Class>,
    pub delete_cap: usize,
    /// Ids whose next batch write fails per object.
    pub fail_ids: HashSet<Uuid>,
    backups: HashMap<String, Backup>,
    clock: u64,
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or_default()
}

fn valid_class(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.len() <= 255 && b[0].is_ascii_uppercase() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn valid_property(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 231
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

const DATA_TYPES: [&str; 8] = ["text", "text[]", "int", "int[]", "number", "number[]", "boolean", "boolean[]"];
const RESERVED: [&str; 4] = ["id", "_id", "_additional", "vector"];

fn object_json(class: &str, id: &Uuid, o: &Object, with_vector: bool) -> Value {
    let mut v = json!({
        "class": class,
        "id": id.hyphenated().to_string(),
        "properties": o.properties,
        "creationTimeUnix": o.created,
        "lastUpdateTimeUnix": o.updated,
    });
    if with_vector {
        v["vector"] = json!(o.vector);
    }
    v
}

fn tokens(s: &str, tokenization: &str) -> Vec<String> {
    match tokenization {
        "field" => {
            let t = s.trim();
            if t.is_empty() { vec![] } else { vec![t.to_owned()] }
        }
        "whitespace" => s.split_whitespace().map(str::to_owned).collect(),
        "lowercase" => s.split_whitespace().map(str::to_lowercase).collect(),
        // "word", the default: alphanumeric runs, lowercased.
        _ => s.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect(),
    }
}

/// A checked `where` filter, ready to evaluate.
enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Id { op: String, values: Vec<String> },
    Prop { prop: Prop, op: String, values: Vec<Value> },
}

fn check_where(class: &str, c: &Class, w: &Value) -> Result<Cond, String> {
    let o = w.as_object().ok_or("where: a filter must be an object")?;
    let op = o.get("operator").and_then(Value::as_str).ok_or("where: operator is required")?.to_owned();
    for k in o.keys() {
        let known = matches!(k.as_str(), "operator" | "operands" | "path")
            || matches!(k.as_str(), "valueText" | "valueString" | "valueInt" | "valueNumber" | "valueBoolean")
            || matches!(k.as_str(), "valueTextArray" | "valueStringArray" | "valueIntArray" | "valueNumberArray" | "valueBooleanArray");
        if !known {
            return Err(format!("where: the fake does not understand {k:?}"));
        }
    }
    match op.as_str() {
        "And" | "Or" | "Not" => {
            let operands = o.get("operands").and_then(Value::as_array).ok_or(format!("where: operator {op} needs operands"))?;
            if operands.is_empty() || (op == "Not" && operands.len() != 1) {
                return Err(format!("where: operator {op} has {} operands", operands.len()));
            }
            let mut inner = operands.iter().map(|x| check_where(class, c, x)).collect::<Result<Vec<_>, _>>()?;
            return Ok(match op.as_str() {
                "And" => Cond::And(inner),
                "Or" => Cond::Or(inner),
                _ => Cond::Not(Box::new(inner.remove(0))),
            });
        }
        "Equal" | "NotEqual" | "GreaterThan" | "GreaterThanEqual" | "LessThan" | "LessThanEqual" | "ContainsAny" | "ContainsAll" => {}
        other => return Err(format!("where: operator {other} is not supported by the fake")),
    }
    let path: Vec<&str> =
        o.get("path").and_then(Value::as_array).ok_or("where: path is required")?.iter().filter_map(Value::as_str).collect();
    let [name] = path.as_slice() else { return Err(format!("where: the fake supports paths of one property, not {path:?}")) };
    let values: Vec<(&str, Value)> = o.iter().filter(|(k, _)| k.starts_with("value")).map(|(k, v)| (k.as_str(), v.clone())).collect();
    let [(value_key, value)] = values.as_slice() else { return Err("where: exactly one value is required".to_owned()) };
    let array = value_key.ends_with("Array");
    if array != op.starts_with("Contains") {
        return Err(format!("where: operator {op} cannot take {value_key}"));
    }
    let values: Vec<Value> =
        if array { value.as_array().cloned().ok_or(format!("where: {value_key} must be a list"))? } else { vec![value.clone()] };
    let base = value_key.trim_start_matches("value").trim_end_matches("Array");
    if *name == "id" || *name == "_id" {
        if base != "Text" && base != "String" || !matches!(op.as_str(), "Equal" | "NotEqual" | "ContainsAny") {
            return Err(format!("where: invalid filter on id: {op} with {value_key}"));
        }
        let values =
            values.iter().map(|v| v.as_str().map(str::to_owned).ok_or("where: id values must be strings")).collect::<Result<_, _>>()?;
        return Ok(Cond::Id { op, values });
    }
    let prop = c.prop(name).ok_or_else(|| format!("no such prop with name '{name}' found in class '{class}' in the schema"))?.clone();
    let want = match prop.data_type.trim_end_matches("[]") {
        "text" => ["Text", "String"].contains(&base),
        "int" => base == "Int",
        "number" => base == "Number",
        "boolean" => base == "Boolean",
        _ => false,
    };
    let typed = values.iter().all(|v| match base {
        "Text" | "String" => v.is_string(),
        "Int" => v.is_i64(),
        "Number" => v.is_number(),
        _ => v.is_boolean(),
    });
    if !want || !typed {
        return Err(format!("data type filter cannot use {value_key:?} on type {:?}", prop.data_type));
    }
    if prop.data_type.starts_with("text") && op.contains("Than") {
        return Err("where: the fake does not compare text by order".to_owned());
    }
    Ok(Cond::Prop { prop, op, values })
}

fn eval(c: &Cond, id: &Uuid, o: &Object) -> bool {
    match c {
        Cond::And(items) => items.iter().all(|x| eval(x, id, o)),
        Cond::Or(items) => items.iter().any(|x| eval(x, id, o)),
        Cond::Not(x) => !eval(x, id, o),
        Cond::Id { op, values } => {
            let hit = values.iter().any(|v| Uuid::parse_str(v).is_ok_and(|u| u == *id));
            if op == "NotEqual" { !hit } else { hit }
        }
        Cond::Prop { prop, op, values } => {
            let stored: Vec<&Value> = match o.properties.get(&prop.name) {
                None | Some(Value::Null) => vec![],
                Some(Value::Array(items)) => items.iter().collect(),
                Some(v) => vec![v],
            };
            let equal = |q: &Value| -> bool {
                if let Some(qs) = q.as_str() {
                    let want = tokens(qs, &prop.tokenization);
                    let have: HashSet<String> =
                        stored.iter().filter_map(|s| s.as_str()).flat_map(|s| tokens(s, &prop.tokenization)).collect();
                    !want.is_empty() && want.iter().all(|t| have.contains(t))
                } else if let Some(qn) = q.as_f64() {
                    stored.iter().any(|s| s.as_f64() == Some(qn))
                } else {
                    stored.contains(&q)
                }
            };
            match op.as_str() {
                "Equal" => equal(&values[0]),
                "NotEqual" => !equal(&values[0]),
                "ContainsAny" => values.iter().any(equal),
                "ContainsAll" => values.iter().all(equal),
                _ => {
                    let q = values[0].as_f64().unwrap_or(f64::NAN);
                    stored.iter().filter_map(|s| s.as_f64()).any(|x| match op.as_str() {
                        "GreaterThan" => x > q,
                        "GreaterThanEqual" => x >= q,
                        "LessThan" => x < q,
                        _ => x <= q,
                    })
                }
            }
        }
    }
}

fn check_value(p: &Prop, v: &Value) -> bool {
    let scalar = |x: &Value| match p.data_type.trim_end_matches("[]") {
        "text" => x.is_string(),
        "int" => x.is_i64() || x.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => x.is_number(),
        "boolean" => x.is_boolean(),
        _ => false,
    };
    if v.is_null() {
        return true;
    }
    if p.data_type.ends_with("[]") { v.as_array().is_some_and(|items| items.iter().all(scalar)) } else { scalar(v) }
}

fn distance(kind: &str, a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    match kind {
        "dot" => -dot,
        "l2-squared" => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum(),
        "manhattan" => a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum(),
        _ => {
            let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            if na == 0.0 || nb == 0.0 { 1.0 } else { 1.0 - dot / (na * nb) }
        }
    }
}

impl Store {
    pub(crate) fn new(delete_cap: usize) -> Self {
        Self { delete_cap, ..Self::default() }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        1_700_000_000_000 + self.clock
    }

    /// Answers one authenticated request.
    pub(crate) fn handle(&mut self, method: &str, path: &str, query: &HashMap<String, String>, body: &[u8]) -> Reply {
        let json: Option<Value> = if body.is_empty() { None } else { serde_json::from_slice(body).ok() };
        if !body.is_empty() && json.is_none() {
            return Reply::invalid("the request body is not JSON");
        }
        let segs: Vec<&str> = path.trim_start_matches("/v1").trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let body = json.unwrap_or(Value::Null);
        match (method, segs.as_slice()) {
            ("GET", ["meta"]) => Reply::ok(json!({"hostname": "http://[::]:8080", "version": VERSION, "modules": {}})),
            ("GET", [".well-known", "ready" | "live"]) => Reply::empty(200),
            ("GET", ["schema"]) => Reply::ok(json!({"classes": self.classes.values().map(|c| c.definition.clone()).collect::<Vec<_>>()})),
            ("POST", ["schema"]) => self.create_class(&body),
            ("GET", ["schema", class]) => match self.classes.get(&capitalise(class)) {
                Some(c) => Reply::ok(c.definition.clone()),
                None => Reply::empty(404),
            },
            ("DELETE", ["schema", class]) => {
                self.classes.remove(&capitalise(class));
                Reply::empty(200)
            }
            ("POST", ["schema", class, "properties"]) => self.add_property(&capitalise(class), &body),
            ("POST", ["batch", "objects"]) => self.batch_objects(&body),
            ("DELETE", ["batch", "objects"]) => self.batch_delete(&body),
            ("GET", ["objects"]) => self.list(query),
            ("GET" | "DELETE", ["objects", class, id]) => {
                let Ok(id) = Uuid::parse_str(id) else { return Reply::invalid(format!("id in path must be of type uuid: {id:?}")) };
                let class = capitalise(class);
                let Some(c) = self.classes.get_mut(&class) else { return Reply::empty(404) };
                if method == "DELETE" {
                    return if c.objects.remove(&id).is_some() { Reply::empty(204) } else { Reply::empty(404) };
                }
                match c.objects.get(&id) {
                    Some(o) => Reply::ok(object_json(&class, &id, o, query.get("include").is_some_and(|i| i.contains("vector")))),
                    None => Reply::empty(404),
                }
            }
            ("POST", ["graphql"]) => match body.get("query").and_then(Value::as_str) {
                Some(q) => self.graphql(q),
                None => Reply::invalid("query is required"),
            },
            ("POST", ["backups", backend]) => self.backup_create(backend, &body),
            ("GET", ["backups", backend, id]) => self.backup_status(backend, id),
            ("POST", ["backups", backend, id, "restore"]) => self.restore_create(backend, id, &body),
            ("GET", ["backups", backend, id, "restore"]) => self.restore_status(backend, id),
            _ => Reply::empty(404),
        }
    }

    fn check_props(props: &[Value], existing: &[Prop]) -> Result<Vec<(Prop, Value)>, String> {
        let mut out: Vec<(Prop, Value)> = Vec::new();
        for p in props {
            let name = p.get("name").and_then(Value::as_str).ok_or("property name is required")?;
            let name = lower_first(name);
            if !valid_property(&name) {
                return Err(format!(
                    "'{name}' is not a valid property name. Property names in Weaviate are restricted to valid GraphQL names, which must be \"/[_A-Za-z][_0-9A-Za-z]{{0,230}}/\"."
                ));
            }
            if RESERVED.contains(&name.as_str()) {
                return Err(format!("'{name}' is a reserved property name"));
            }
            if existing.iter().chain(out.iter().map(|(p, _)| p)).any(|q| q.name.eq_ignore_ascii_case(&name)) {
                return Err(format!("property with name '{name}' already exists"));
            }
            let dt = p
                .get("dataType")
                .and_then(Value::as_array)
                .and_then(|d| d.first())
                .and_then(Value::as_str)
                .ok_or("dataType is required")?;
            if !DATA_TYPES.contains(&dt) {
                return Err(format!("the fake does not support data type {dt:?}"));
            }
            let tok = p.get("tokenization").and_then(Value::as_str);
            if tok.is_some() && !dt.starts_with("text") {
                return Err(format!("tokenization is not allowed for data type '{dt}'"));
            }
            let tokenization = if dt.starts_with("text") { tok.unwrap_or("word").to_owned() } else { String::new() };
            if !["word", "lowercase", "whitespace", "field", ""].contains(&tokenization.as_str()) {
                return Err(format!("the fake does not support tokenization {tokenization:?}"));
            }
            let mut def = p.clone();
            def["name"] = json!(name);
            if dt.starts_with("text") {
                def["tokenization"] = json!(tokenization);
            }
            for (k, d) in [("indexFilterable", true), ("indexSearchable", dt.starts_with("text")), ("indexRangeFilters", false)] {
                if def.get(k).is_none() {
                    def[k] = json!(d);
                }
            }
            out.push((Prop { name, data_type: dt.to_owned(), tokenization }, def));
        }
        Ok(out)
    }

    fn create_class(&mut self, body: &Value) -> Reply {
        let Some(name) = body.get("class").and_then(Value::as_str) else { return Reply::error(422, "class name is required") };
        let name = capitalise(name);
        if !valid_class(&name) {
            return Reply::error(422, format!("'{name}' is not a valid class name: it must match /^[A-Z][_0-9A-Za-z]{{0,254}}$/"));
        }
        if let Some(existing) = self.classes.keys().find(|k| k.eq_ignore_ascii_case(&name)) {
            return Reply::error(422, format!("class name {name:?} already exists as {existing:?}"));
        }
        if body.get("vectorizer").and_then(Value::as_str).is_some_and(|v| v != "none") {
            return Reply::error(422, "the fake has no vectorizer modules; use \"vectorizer\": \"none\"");
        }
        let distance = body.pointer("/vectorIndexConfig/distance").and_then(Value::as_str).unwrap_or("cosine").to_owned();
        if !["cosine", "dot", "l2-squared", "manhattan", "hamming"].contains(&distance.as_str()) {
            return Reply::error(422, format!("invalid hnsw config: distance {distance:?} is not supported"));
        }
        let props = match Self::check_props(body.get("properties").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default(), &[]) {
            Ok(p) => p,
            Err(e) => return Reply::error(422, e),
        };
        let mut definition = body.clone();
        definition["class"] = json!(name);
        definition["vectorizer"] = json!("none");
        definition["vectorIndexType"] = json!(body.get("vectorIndexType").and_then(Value::as_str).unwrap_or("hnsw"));
        definition["vectorIndexConfig"] = json!({"distance": distance, "ef": -1, "efConstruction": 128, "maxConnections": 32});
        definition["properties"] = json!(props.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>());
        let class = Class {
            definition: definition.clone(),
            props: props.into_iter().map(|(p, _)| p).collect(),
            distance,
            dimension: None,
            objects: BTreeMap::new(),
        };
        self.classes.insert(name, class);
        Reply::ok(definition)
    }

    fn add_property(&mut self, class: &str, body: &Value) -> Reply {
        let Some(c) = self.classes.get_mut(class) else { return Reply::error(422, format!("class {class:?} not found")) };
        match Self::check_props(std::slice::from_ref(body), &c.props) {
            Ok(mut p) => {
                let (prop, def) = p.remove(0);
                c.props.push(prop);
                if let Some(list) = c.definition.get_mut("properties").and_then(Value::as_array_mut) {
                    list.push(def.clone());
                }
                Reply::ok(def)
            }
            Err(e) => Reply::error(422, e),
        }
    }

    fn batch_objects(&mut self, body: &Value) -> Reply {
        let Some(objects) = body.get("objects").and_then(Value::as_array) else { return Reply::invalid("objects is required") };
        // Validation of the whole request first, as go-swagger does: a non-UUID id refuses the request.
        for (i, o) in objects.iter().enumerate() {
            if let Some(id) = o.get("id")
                && id.as_str().is_none_or(|s| Uuid::parse_str(s).is_err())
            {
                return Reply::invalid(format!("objects.{i}.id in body must be of type uuid: {id}"));
            }
        }
        let mut results = Vec::with_capacity(objects.len());
        for o in objects {
            let now = self.tick();
            let class = capitalise(o.get("class").and_then(Value::as_str).unwrap_or_default());
            let id = o.get("id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok()).unwrap_or_else(Uuid::new_v4);
            let vector: Option<Vec<f32>> =
                o.get("vector").and_then(Value::as_array).map(|v| v.iter().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect());
            let props = o.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
            let outcome: Result<(), String> = (|| {
                if self.fail_ids.remove(&id) {
                    return Err("injected failure".to_owned());
                }
                let c = self
                    .classes
                    .get_mut(&class)
                    .ok_or_else(|| format!("class {class:?} not present in the schema (the fake has no autoschema)"))?;
                let vector = vector.ok_or("the fake needs a vector for every object (vectorizer none)")?;
                match c.dimension {
                    Some(d) if d != vector.len() => {
                        return Err(format!(
                            "new node has a vector with length {}. Existing nodes have vectors with length {d}",
                            vector.len()
                        ));
                    }
                    _ => {}
                }
                for (k, v) in &props {
                    let p = c.prop(k).ok_or_else(|| format!("no such prop with name '{k}' found in class '{class}' in the schema. Check your schema files for which properties in this class are available"))?;
                    if !check_value(p, v) {
                        return Err(format!("invalid {} property '{k}' on class '{class}'", p.data_type));
                    }
                }
                c.dimension = Some(vector.len());
                let created = c.objects.get(&id).map_or(now, |old| old.created);
                c.objects.insert(id, Object { properties: props.clone(), vector, created, updated: now });
                Ok(())
            })();
            let mut r = json!({"class": class, "id": id.hyphenated().to_string(), "properties": props, "creationTimeUnix": now, "lastUpdateTimeUnix": now});
            r["result"] = match outcome {
                Ok(()) => json!({"status": "SUCCESS"}),
                Err(e) => json!({"status": "FAILED", "errors": {"error": [{"message": e}]}}),
            };
            results.push(r);
        }
        Reply::ok(Value::Array(results))
    }

    fn batch_delete(&mut self, body: &Value) -> Reply {
        let Some(class) = body.pointer("/match/class").and_then(Value::as_str) else {
            return Reply::error(422, "validate: match.class is required");
        };
        let Some(w) = body.pointer("/match/where") else { return Reply::error(422, "validate: match.where is required") };
        let class = capitalise(class);
        let Some(c) = self.classes.get_mut(&class) else { return Reply::error(422, format!("validate: class {class:?} not found")) };
        let cond = match check_where(&class, c, w) {
            Ok(cond) => cond,
            Err(e) => return Reply::error(422, format!("validate: {e}")),
        };
        let dry = body.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
        let verbose = body.get("output").and_then(Value::as_str) == Some("verbose");
        let hits: Vec<Uuid> = c.objects.iter().filter(|(id, o)| eval(&cond, id, o)).map(|(id, _)| *id).take(self.delete_cap).collect();
        if !dry {
            for id in &hits {
                c.objects.remove(id);
            }
        }
        let objects: Vec<Value> = if verbose {
            hits.iter().map(|id| json!({"id": id.hyphenated().to_string(), "status": if dry { "DRYRUN" } else { "SUCCESS" }})).collect()
        } else {
            vec![]
        };
        Reply::ok(json!({
            "match": body.get("match").cloned().unwrap_or(Value::Null),
            "output": if verbose { "verbose" } else { "minimal" },
            "dryRun": dry,
            "results": {"matches": hits.len(), "limit": self.delete_cap, "successful": if dry { 0 } else { hits.len() }, "failed": 0, "objects": objects},
        }))
    }

    fn list(&self, query: &HashMap<String, String>) -> Reply {
        let Some(class) = query.get("class").map(|c| capitalise(c)) else { return Reply::ok(json!({"objects": [], "totalResults": 0})) };
        let Some(c) = self.classes.get(&class) else { return Reply::empty(404) };
        let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
            None => 25,
            Some(Ok(l)) if l <= MAX_RESULTS => l,
            Some(_) => return Reply::error(422, format!("limit must be an integer up to {MAX_RESULTS}")),
        };
        let vectors = query.get("include").is_some_and(|i| i.split(',').any(|x| x == "vector"));
        let objects: Vec<Value> = match query.get("after") {
            Some(after) => {
                if query.contains_key("offset") || query.contains_key("sort") {
                    return Reply::error(422, "cursor api: invalid 'after' parameter: offset and sort cannot be set with after");
                }
                let start = if after.is_empty() {
                    None
                } else {
                    match Uuid::parse_str(after) {
                        Ok(u) => Some(u),
                        Err(_) => return Reply::error(422, format!("cursor api: invalid 'after' parameter: {after:?} is not a uuid")),
                    }
                };
                c.objects
                    .iter()
                    .filter(|(id, _)| start.is_none_or(|s| **id > s))
                    .take(limit)
                    .map(|(id, o)| object_json(&class, id, o, vectors))
                    .collect()
            }
            None => {
                // Without a cursor: newest first, with offset paging.
                let offset = query.get("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
                let mut all: Vec<(&Uuid, &Object)> = c.objects.iter().collect();
                all.sort_by(|a, b| b.1.created.cmp(&a.1.created).then(b.0.cmp(a.0)));
                all.into_iter().skip(offset).take(limit).map(|(id, o)| object_json(&class, id, o, vectors)).collect()
            }
        };
        Reply::ok(json!({"totalResults": objects.len(), "objects": objects}))
    }

    fn graphql(&self, query: &str) -> Reply {
        match graphql::parse(query).and_then(|fields| self.run_graphql(&fields)) {
            Ok(data) => Reply::ok(json!({ "data": data })),
            Err(e) => Reply::graphql_error(e),
        }
    }

    fn run_graphql(&self, fields: &[Field]) -> Result<Value, String> {
        let [top] = fields else { return Err("the fake answers one operation (Get or Aggregate) per query".to_owned()) };
        let [class_field] = top.selection.as_slice() else { return Err("the fake answers one class per query".to_owned()) };
        if !top.args.is_empty() {
            return Err(format!("Unknown argument on field \"{}\"", top.name));
        }
        let class = &class_field.name;
        let Some(c) = self.classes.get(class) else {
            let ty = if top.name == "Get" { "GetObjectsObj" } else { "AggregateObjectsObj" };
            return Err(format!("Cannot query field \"{class}\" on type \"{ty}\"."));
        };
        let mut near: Option<Vec<f32>> = None;
        let mut cond: Option<Cond> = None;
        let mut limit: Option<usize> = None;
        let mut after: Option<Uuid> = None;
        for (name, v) in &class_field.args {
            match (top.name.as_str(), name.as_str()) {
                ("Get", "nearVector") => {
                    let o = v.as_object().ok_or("nearVector must be an object")?;
                    if let Some(k) = o.keys().find(|k| *k != "vector") {
                        return Err(format!("the fake does not understand nearVector.{k}"));
                    }
                    let vector = o.get("vector").and_then(Value::as_array).ok_or("nearVector.vector is required")?;
                    near = Some(
                        vector
                            .iter()
                            .map(|x| x.as_f64().map(|f| f as f32).ok_or("nearVector.vector must hold numbers"))
                            .collect::<Result<_, _>>()?,
                    );
                }
                ("Get" | "Aggregate", "where") => cond = Some(check_where(class, c, v)?),
                ("Get", "limit") => limit = Some(v.as_u64().ok_or("limit must be a non-negative integer")? as usize),
                ("Get", "after") => after = Some(v.as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or("after must be a uuid")?),
                (_, other) => return Err(format!("Unknown argument \"{other}\" on field \"{class}\" of type \"{}ObjectsObj\".", top.name)),
            }
        }
        if after.is_some() && (cond.is_some() || near.is_some()) {
            return Err("cursor api: invalid 'after' parameter: where and near<Media> cannot be set with after".to_owned());
        }
        let matching: Vec<(&Uuid, &Object)> = c.objects.iter().filter(|(id, o)| cond.as_ref().is_none_or(|w| eval(w, id, o))).collect();
        match top.name.as_str() {
            "Aggregate" => {
                let [meta] = class_field.selection.as_slice() else {
                    return Err("the fake answers Aggregate { meta { count } } only".to_owned());
                };
                if meta.name != "meta" || meta.selection.len() != 1 || meta.selection[0].name != "count" {
                    return Err("the fake answers Aggregate { meta { count } } only".to_owned());
                }
                Ok(json!({"Aggregate": {class: [{"meta": {"count": matching.len()}}]}}))
            }
            "Get" => {
                let limit = limit.unwrap_or(10);
                if limit > MAX_RESULTS {
                    return Err(format!("query maximum results exceeded: {limit} > {MAX_RESULTS}"));
                }
                let mut hits: Vec<(Option<f32>, &Uuid, &Object)> = match &near {
                    Some(q) => {
                        if let Some(d) = c.dimension.filter(|d| *d != q.len()) {
                            return Err(format!("vector search: knn search: vector lengths don't match: {} vs {d}", q.len()));
                        }
                        let mut h: Vec<_> =
                            matching.into_iter().map(|(id, o)| (Some(distance(&c.distance, q, &o.vector)), id, o)).collect();
                        // Ties in an order of the fake's choosing (descending ids): callers must not rely on it.
                        h.sort_by(|a, b| a.0.unwrap_or(0.0).total_cmp(&b.0.unwrap_or(0.0)).then(b.1.cmp(a.1)));
                        h
                    }
                    None => matching.into_iter().filter(|(id, _)| after.is_none_or(|a| **id > a)).map(|(id, o)| (None, id, o)).collect(),
                };
                hits.truncate(limit);
                let mut out = Vec::with_capacity(hits.len());
                for (d, id, o) in hits {
                    let mut item = Map::new();
                    for f in &class_field.selection {
                        if f.name == "_additional" {
                            let mut add = Map::new();
                            for a in &f.selection {
                                let v = match a.name.as_str() {
                                    "id" => json!(id.hyphenated().to_string()),
                                    "distance" => json!(d),
                                    "vector" => json!(o.vector),
                                    other => return Err(format!("Cannot query field \"{other}\" on type \"{class}AdditionalFields\".")),
                                };
                                add.insert(a.name.clone(), v);
                            }
                            item.insert("_additional".into(), Value::Object(add));
                        } else if c.prop(&f.name).is_some() && f.selection.is_empty() {
                            item.insert(f.name.clone(), o.properties.get(&f.name).cloned().unwrap_or(Value::Null));
                        } else {
                            return Err(format!("Cannot query field \"{}\" on type \"{class}\".", f.name));
                        }
                    }
                    out.push(Value::Object(item));
                }
                Ok(json!({"Get": {class: out}}))
            }
            other => Err(format!("Cannot query field \"{other}\" on type \"WeaviateObj\".")),
        }
    }

    fn backup_create(&mut self, backend: &str, body: &Value) -> Reply {
        if backend != "filesystem" {
            return Reply::error(422, format!("backup {backend:?} not found: the fake enables the filesystem backend only"));
        }
        let Some(id) = body.get("id").and_then(Value::as_str) else { return Reply::error(422, "id is required") };
        if self.backups.values().any(|b| b.polls < 2 || b.restore.as_ref().is_some_and(|r| r.1 < 2)) {
            return Reply::error(422, "backup or restore already in progress");
        }
        if self.backups.contains_key(id) {
            return Reply::error(422, format!("backup {id:?} already exists"));
        }
        let include: Option<BTreeSet<String>> =
            body.get("include").and_then(Value::as_array).map(|i| i.iter().filter_map(Value::as_str).map(capitalise).collect());
        let classes: BTreeMap<String, Class> = self
            .classes
            .iter()
            .filter(|(n, _)| include.as_ref().is_none_or(|i| i.contains(*n)))
            .map(|(n, c)| (n.clone(), c.clone()))
            .collect();
        let names: Vec<String> = classes.keys().cloned().collect();
        self.backups.insert(id.to_owned(), Backup { backend: backend.to_owned(), classes, polls: 0, restore: None });
        Reply::ok(
            json!({"id": id, "backend": backend, "classes": names, "path": format!("/var/lib/weaviate/backups/{id}"), "status": "STARTED"}),
        )
    }

    fn backup_status(&mut self, backend: &str, id: &str) -> Reply {
        let Some(b) = self.backups.get_mut(id).filter(|b| b.backend == backend) else {
            return Reply::error(404, format!("backup {id:?} not found"));
        };
        let status = PROGRESSION[b.polls.min(2)];
        b.polls += 1;
        Reply::ok(json!({"id": id, "backend": backend, "path": format!("/var/lib/weaviate/backups/{id}"), "status": status}))
    }

    fn restore_create(&mut self, backend: &str, id: &str, body: &Value) -> Reply {
        let Some(b) = self.backups.get(id).filter(|b| b.backend == backend) else {
            return Reply::error(404, format!("backup {id:?} not found"));
        };
        if b.polls < 3 {
            return Reply::error(422, format!("backup {id:?} is not finished"));
        }
        let include: Option<BTreeSet<String>> =
            body.get("include").and_then(Value::as_array).map(|i| i.iter().filter_map(Value::as_str).map(capitalise).collect());
        let names: Vec<String> = b.classes.keys().filter(|n| include.as_ref().is_none_or(|i| i.contains(*n))).cloned().collect();
        let existing: Vec<&String> = names.iter().filter(|n| self.classes.keys().any(|k| k.eq_ignore_ascii_case(n))).collect();
        if !existing.is_empty() {
            return Reply::error(422, format!("restore class {existing:?}: already exists"));
        }
        if let Some(b) = self.backups.get_mut(id) {
            b.restore = Some((names.clone(), 0));
        }
        Reply::ok(
            json!({"id": id, "backend": backend, "classes": names, "path": format!("/var/lib/weaviate/backups/{id}"), "status": "STARTED"}),
        )
    }

    fn restore_status(&mut self, backend: &str, id: &str) -> Reply {
        let Some(b) = self.backups.get_mut(id).filter(|b| b.backend == backend) else {
            return Reply::error(404, format!("backup {id:?} not found"));
        };
        let Some((names, polls)) = b.restore.as_mut() else { return Reply::error(404, format!("no restore of backup {id:?}")) };
        let status = PROGRESSION[(*polls).min(2)];
        *polls += 1;
        if *polls == 3 {
            // The classes appear when the restore succeeds.
            let restored: Vec<(String, Class)> = names.iter().filter_map(|n| b.classes.get(n).map(|c| (n.clone(), c.clone()))).collect();
            self.classes.extend(restored);
        }
        Reply::ok(json!({"id": id, "backend": backend, "path": format!("/var/lib/weaviate/backups/{id}"), "status": status}))
    }

    /// Objects per class.
    pub(crate) fn counts(&self) -> BTreeMap<String, usize> {
        self.classes.iter().map(|(n, c)| (n.clone(), c.objects.len())).collect()
    }
}
