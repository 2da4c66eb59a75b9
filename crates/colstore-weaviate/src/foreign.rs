//! [`WeaviateForeign`]: a Weaviate class colstore did not create, read for `col import weaviate://HOST:8080/Class`.
//!
//! Reads only: the class definition (distance), an `Aggregate` count, and the REST listing with its exclusive
//! `after` cursor (UUID order), which is also the page cursor here. The dimension is that of the first vector read.
//! Classes with named vectors (`vectorConfig`) are refused.

use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{Clock, ForeignCollection, ForeignInfo, ForeignObject, ForeignPage, IndexError};
use colstore_domain::{Dimension, Distance, IndexName, Vector};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use crate::WeaviateConfig;
use crate::client::{Http, backend};

/// A Weaviate class to adopt.
pub struct WeaviateForeign {
    http: Http,
    class: String,
}

impl std::fmt::Debug for WeaviateForeign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeaviateForeign").field("url", &self.http.display()).field("class", &self.class).finish_non_exhaustive()
    }
}

impl WeaviateForeign {
    /// Class `class` on the server of `config`. Weaviate capitalises the first letter of class names, so `article`
    /// is `Article`.
    ///
    /// # Errors
    /// `IndexError::Backend` for a name that is not a Weaviate class name (`[A-Za-z][_0-9A-Za-z]*`) or an unusable
    /// URL or key.
    pub fn new(config: &WeaviateConfig, class: &str, clock: Arc<dyn Clock>) -> Result<Self, IndexError> {
        let mut chars = class.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || class.len() > 255 {
            return Err(backend(format!(
                "{class:?} is not a Weaviate class name: it starts with a letter and holds letters, digits and _ only"
            )));
        }
        let class = class[..1].to_ascii_uppercase() + &class[1..];
        Ok(Self { http: Http::new(config, clock)?, class })
    }

    /// One listing page after `after` (exclusive; empty: the start).
    async fn list(&self, after: &str, limit: usize, with_vectors: bool) -> Result<Vec<ForeignObject>, IndexError> {
        let limit_s = limit.to_string();
        // Always with `after` (empty at the start): without it the listing is newest first with offset paging.
        let mut query = vec![("class", self.class.as_str()), ("limit", limit_s.as_str()), ("after", after)];
        if with_vectors {
            query.push(("include", "vector"));
        }
        let answer = self.http.send(Method::GET, "/v1/objects", &query, None).await?;
        if answer.status != StatusCode::OK {
            return Err(self.http.unexpected(&format!("listing class {}", self.class), &answer));
        }
        // Straight into `f32`s: through a `Value` each number would be an `f64` first, and narrowing it rounds twice
        // (`7.038531e-26` would come back one step off). Anything else is read loosely, for an error that says why.
        if let Ok(typed) = serde_json::from_slice::<TypedListing>(&answer.body) {
            return Ok(typed
                .objects
                .into_iter()
                .map(|o| ForeignObject {
                    id: o.id,
                    vector: o.vector.filter(|v| with_vectors && !v.is_empty()),
                    payload: o.properties.unwrap_or_default(),
                })
                .collect());
        }
        let v = answer.json("a listing")?;
        let objects = v.get("objects").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        objects.iter().map(|o| object(o, with_vectors)).collect()
    }

    fn not_found(&self) -> IndexError {
        match IndexName::parse(&self.class) {
            Ok(name) => IndexError::CollectionNotFound(name),
            Err(_) => backend(format!("class {} not found", self.class)),
        }
    }
}

/// A listing read straight into its types.
#[derive(serde::Deserialize)]
struct TypedListing {
    #[serde(default)]
    objects: Vec<TypedObject>,
}

#[derive(serde::Deserialize)]
struct TypedObject {
    id: String,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
    #[serde(default)]
    vector: Option<Vec<f32>>,
}

fn object(o: &Value, with_vectors: bool) -> Result<ForeignObject, IndexError> {
    let id = o.get("id").and_then(Value::as_str).ok_or_else(|| backend("an object without an id"))?.to_owned();
    let payload = o.get("properties").and_then(Value::as_object).cloned().unwrap_or_else(Map::new);
    let vector = match o.get("vector") {
        Some(Value::Array(items)) if with_vectors && !items.is_empty() => Some(
            items
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(|| backend(format!("object {id} has a non-numeric vector"))))
                .collect::<Result<Vector, _>>()?,
        ),
        _ => None,
    };
    Ok(ForeignObject { id, vector, payload })
}

/// colstore's distance for Weaviate's name.
fn distance_of(name: &str) -> Option<Distance> {
    match name {
        "cosine" => Some(Distance::Cosine),
        "dot" => Some(Distance::Dot),
        "l2-squared" => Some(Distance::Euclid),
        _ => None,
    }
}

#[async_trait]
impl ForeignCollection for WeaviateForeign {
    fn describe(&self) -> String {
        let shown = self.http.display().trim_end_matches('/');
        let (scheme, host) = match shown.split_once("://") {
            Some(("https", h)) => ("weaviate+https", h),
            Some((_, h)) => ("weaviate", h),
            None => ("weaviate", shown),
        };
        format!("{scheme}://{host}/{}", self.class)
    }

    async fn info(&self) -> Result<ForeignInfo, IndexError> {
        let class = &self.class;
        let answer = self.http.send(Method::GET, &format!("/v1/schema/{class}"), &[], None).await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(self.not_found()),
            _ => return Err(self.http.unexpected(&format!("reading class {class}"), &answer)),
        }
        let definition = answer.json("a class definition")?;
        if let Some(named) = definition.get("vectorConfig").and_then(Value::as_object).filter(|m| !m.is_empty()) {
            return Err(backend(format!(
                "class {class} has named vectors ({}); colstore adopts classes with one vector per object",
                named.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let distance_name = definition.pointer("/vectorIndexConfig/distance").and_then(Value::as_str).unwrap_or("cosine");
        let distance = distance_of(distance_name).ok_or_else(|| {
            backend(format!("class {class} uses the distance {distance_name}, which colstore does not support (cosine, dot, l2-squared)"))
        })?;
        let data = self.http.graphql(&format!("{{ Aggregate {{ {class} {{ meta {{ count }} }} }} }}")).await?;
        let count = data
            .pointer(&format!("/Aggregate/{class}/0/meta/count"))
            .and_then(Value::as_f64)
            .ok_or_else(|| backend(format!("an Aggregate answer without a count for class {class}")))? as u64;
        // Weaviate keeps no dimension in the schema: the first vector tells it.
        let mut after = String::new();
        let dimension = loop {
            let page = self.list(&after, 100, true).await?;
            if let Some(v) = page.iter().find_map(|o| o.vector.as_ref()) {
                break Some(v.len());
            }
            match page.last() {
                Some(last) if page.len() == 100 => after = last.id.clone(),
                _ => break None,
            }
        };
        let dimension = match dimension {
            Some(d) => u32::try_from(d)
                .ok()
                .and_then(|d| Dimension::new(d).ok())
                .ok_or_else(|| backend(format!("class {class} has vectors of {d} dimensions, outside 1..=65536")))?,
            None => return Err(backend(format!("class {class} holds no object with a vector: there is nothing to adopt"))),
        };
        Ok(ForeignInfo { dimension, distance, count })
    }

    async fn page(&self, cursor: Option<String>, limit: usize, with_vectors: bool) -> Result<ForeignPage, IndexError> {
        let limit = limit.clamp(1, 10_000);
        let objects = self.list(cursor.as_deref().unwrap_or(""), limit, with_vectors).await?;
        let next = if objects.len() == limit { objects.last().map(|o| o.id.clone()) } else { None };
        Ok(ForeignPage { objects, next })
    }
}
