//! The class we create for an index, and how a point's payload becomes an object's properties and back.
//!
//! Fixed properties: `key`, `collection`, `contentHash`, `chunkHash` (text, `field` tokenization), `chunk` (int),
//! `metadata` (the whole metadata as JSON text, not indexed: it is what reads return, so metadata round-trips
//! exactly) and `metaPresent` (text[]: every metadata path whose value is present, not `null` and not `[]`, which is
//! how `is_empty` is asked).
//!
//! Typed metadata properties, added with `POST /v1/schema/{class}/properties` the first time a value of their kind
//! appears: for every metadata path reachable through objects (`author.name`) whose segments a `FieldPath` can name,
//! the strings, `i64` integers, booleans and numbers of its value (of its elements, for an array) go to one property
//! per kind (`mt_`, `mi_`, `mb_`, `mn_`/`ma_`; [`Kind`](crate::names::Kind)). A path that holds a string in one
//! document and a number in another therefore has two properties, and a match on `1` never finds `"1"`, as in
//! [`Filter::matches`](colstore_domain::Filter::matches).
//!
//! The vector dimension and distance live in the class description (`colstore:{json}`): Weaviate keeps the
//! dimension only implicitly, and the marker also tells our classes from someone else's.

use std::collections::{BTreeMap, BTreeSet};

use colstore_domain::{Distance, IndexName, Payload, VectorSettings};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::names::{Kind, property};

/// The marker in our classes' descriptions.
const MARKER: &str = "colstore:";

/// Property names of the fixed properties.
pub(crate) const KEY: &str = "key";
pub(crate) const COLLECTION: &str = "collection";
pub(crate) const CONTENT_HASH: &str = "contentHash";
pub(crate) const CHUNK_HASH: &str = "chunkHash";
pub(crate) const CHUNK: &str = "chunk";
pub(crate) const METADATA: &str = "metadata";
pub(crate) const PRESENT: &str = "metaPresent";
/// A marker property, never written: some key has leading or trailing whitespace (see [`Kind::Padded`]).
pub(crate) const KEY_PADDED: &str = "keyPadded";

/// What our class description records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marker {
    /// The index name the class stands for.
    pub index: String,
    /// The vectors' dimension.
    pub dimension: u32,
    /// `cosine`, `dot` or `euclid`.
    pub distance: Distance,
}

/// A class as `GET /v1/schema/{class}` describes it.
#[derive(Debug, Clone)]
pub(crate) struct ClassInfo {
    /// Our marker, when the description holds one.
    pub marker: Option<Marker>,
    /// Its property names.
    pub properties: BTreeSet<String>,
}

#[derive(Deserialize)]
struct RawClass {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    properties: Vec<RawProperty>,
}

#[derive(Deserialize)]
struct RawProperty {
    name: String,
}

impl ClassInfo {
    /// Reads a class definition.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, String> {
        let raw: RawClass = serde_json::from_slice(body).map_err(|e| format!("not a class definition: {e}"))?;
        let marker = raw.description.as_deref().and_then(|d| d.strip_prefix(MARKER)).and_then(|m| serde_json::from_str(m).ok());
        Ok(Self { marker, properties: raw.properties.into_iter().map(|p| p.name).collect() })
    }

    /// Whether the class has property `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.properties.contains(name)
    }
}

/// Weaviate's name of a distance.
pub(crate) fn distance_name(d: Distance) -> &'static str {
    match d {
        Distance::Cosine => "cosine",
        Distance::Dot => "dot",
        Distance::Euclid => "l2-squared",
    }
}

fn text_property(name: &str, filterable: bool) -> Value {
    json!({"name": name, "dataType": ["text"], "tokenization": "field", "indexFilterable": filterable, "indexSearchable": false})
}

/// The body of `POST /v1/schema` for index `index` with `settings`.
pub(crate) fn class_body(class: &str, index: &IndexName, settings: &VectorSettings) -> Value {
    let marker = Marker { index: index.as_str().to_owned(), dimension: settings.embedder.dimension.get(), distance: settings.distance };
    let description = format!("{MARKER}{}", serde_json::to_string(&marker).unwrap_or_default());
    json!({
        "class": class,
        "description": description,
        "vectorizer": "none",
        "vectorIndexType": "hnsw",
        "vectorIndexConfig": {"distance": distance_name(settings.distance)},
        "properties": [
            text_property(KEY, true),
            text_property(COLLECTION, true),
            text_property(CONTENT_HASH, true),
            text_property(CHUNK_HASH, true),
            {"name": CHUNK, "dataType": ["int"], "indexFilterable": true},
            {"name": METADATA, "dataType": ["text"], "indexFilterable": false, "indexSearchable": false},
            {"name": PRESENT, "dataType": ["text[]"], "tokenization": "field", "indexFilterable": true, "indexSearchable": false},
        ],
    })
}

/// The body of `POST /v1/schema/{class}/properties` for a typed metadata property.
pub(crate) fn property_body(name: &str, kind: Kind) -> Value {
    // A marker is never written, so it needs no index.
    let mut p = json!({"name": name, "dataType": [kind.data_type()], "indexFilterable": kind != Kind::Padded});
    if matches!(kind, Kind::Text | Kind::Padded) {
        p["tokenization"] = json!("field");
        p["indexSearchable"] = json!(false);
    }
    // Ranges run on the filterable index; `indexRangeFilters` is left alone, as Weaviate may not take it for arrays.
    p
}

/// Whether Weaviate's `field` tokenization would change `s` (it trims Unicode whitespace), or drop it (empty).
pub(crate) fn padded(s: &str) -> bool {
    s.is_empty() || s.trim() != s
}

/// An object's properties for `payload`, and the typed properties (name, kind) they use, including markers.
pub(crate) fn object_properties(payload: &Payload) -> (Map<String, Value>, BTreeMap<String, Kind>) {
    let mut props = Map::new();
    let mut uses = BTreeMap::new();
    props.insert(KEY.into(), json!(payload.key.as_str()));
    if padded(payload.key.as_str()) {
        uses.insert(KEY_PADDED.to_owned(), Kind::Padded);
    }
    props.insert(COLLECTION.into(), json!(payload.collection.as_str()));
    props.insert(CONTENT_HASH.into(), json!(payload.content_hash.to_string()));
    props.insert(CHUNK_HASH.into(), json!(payload.chunk_hash.to_string()));
    props.insert(CHUNK.into(), json!(payload.chunk));
    props.insert(METADATA.into(), json!(Value::Object(payload.metadata.clone()).to_string()));
    let mut present = Vec::new();
    let mut typed: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    flatten(&payload.metadata, "", &mut present, &mut typed, &mut uses);
    props.insert(PRESENT.into(), json!(present));
    for (name, values) in typed {
        props.insert(name, Value::Array(values));
    }
    (props, uses)
}

fn addressable(segment: &str) -> bool {
    !segment.is_empty() && segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn flatten(
    object: &Map<String, Value>,
    prefix: &str,
    present: &mut Vec<String>,
    typed: &mut BTreeMap<String, Vec<Value>>,
    uses: &mut BTreeMap<String, Kind>,
) {
    for (k, v) in object {
        // A `FieldPath` cannot name this key, so no filter can ask about it (or anything below it).
        if !addressable(k) {
            continue;
        }
        let path = format!("{prefix}{k}");
        if path.len() > 256 {
            continue;
        }
        let empty = v.is_null() || v.as_array().is_some_and(Vec::is_empty);
        if !empty {
            present.push(path.clone());
        }
        let elements: &[Value] = match v {
            Value::Array(items) => items,
            other => std::slice::from_ref(other),
        };
        let numbers = elements.iter().filter(|e| e.is_number()).count();
        if elements.iter().any(|e| e.as_str().is_some_and(padded))
            && let Some(name) = property(Kind::Padded, &path)
        {
            uses.insert(name, Kind::Padded);
        }
        let mut add = |kind: Kind, value: Value| {
            if let Some(name) = property(kind, &path) {
                uses.insert(name.clone(), kind);
                typed.entry(name).or_default().push(value);
            }
        };
        for e in elements {
            match e {
                // Weaviate indexes no token for an empty string: such a value is left to the `Padded` marker.
                Value::String(s) if !s.is_empty() => add(Kind::Text, json!(s)),
                Value::Bool(b) => add(Kind::Bool, json!(b)),
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        add(Kind::Int, json!(i));
                    }
                    if let Some(x) = n.as_f64() {
                        add(if numbers > 1 { Kind::Numbers } else { Kind::Number }, json!(x));
                    }
                }
                _ => {}
            }
        }
        if let Value::Object(inner) = v {
            flatten(inner, &format!("{path}."), present, typed, uses);
        }
    }
}

/// The payload stored in an object's properties.
pub(crate) fn payload_from_properties(props: &Map<String, Value>) -> Result<Payload, String> {
    let text = |name: &str| props.get(name).and_then(Value::as_str).ok_or_else(|| format!("property {name:?} is missing or not text"));
    let chunk = props
        .get(CHUNK)
        .and_then(|c| c.as_u64().or_else(|| c.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)))
        .and_then(|c| u32::try_from(c).ok())
        .ok_or("property \"chunk\" is missing or not a chunk number")?;
    let metadata: Value = serde_json::from_str(text(METADATA)?).map_err(|e| format!("property \"metadata\" is not JSON: {e}"))?;
    let raw = json!({
        "collection": text(COLLECTION)?,
        "key": text(KEY)?,
        "chunk": chunk,
        "content_hash": text(CONTENT_HASH)?,
        "chunk_hash": text(CHUNK_HASH)?,
        "metadata": metadata,
    });
    serde_json::from_value(raw).map_err(|e| format!("the properties are not a colstore payload: {e}"))
}
