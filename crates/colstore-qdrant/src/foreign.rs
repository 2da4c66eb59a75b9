//! [`QdrantForeign`]: a Qdrant collection colstore did not create, read for `col import qdrant://HOST:6333/NAME`.
//!
//! Reads only (collection info, exact count, scroll). One unnamed dense vector per point is supported; a collection
//! with named vectors is refused with the names it holds.

use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{Clock, ForeignCollection, ForeignInfo, ForeignObject, ForeignPage, IndexError};
use colstore_domain::{Dimension, IndexName, Vector};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{CollectionInfo, CountResult, QdrantConfig, QdrantIndex, Scope, backend, distance_of};

/// A Qdrant collection to adopt.
#[derive(Debug)]
pub struct QdrantForeign {
    index: QdrantIndex,
    name: IndexName,
}

#[derive(Deserialize)]
struct RawScroll {
    points: Vec<RawPoint>,
    next_page_offset: Option<Value>,
}

/// The payload of a point being adopted: any map, or none.
type AnyPayload = Option<serde_json::Map<String, Value>>;

#[derive(Deserialize)]
struct RawPoint {
    id: Value,
    #[serde(default)]
    payload: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    vector: Option<Value>,
}

impl QdrantForeign {
    /// Collection `name` on the server of `config`.
    ///
    /// # Errors
    /// `IndexError::Backend` for a name colstore cannot address (`[A-Za-z0-9_-]`, as Qdrant's own rules allow more)
    /// or an unusable URL or key.
    pub fn new(config: QdrantConfig, name: &str, clock: Arc<dyn Clock>) -> Result<Self, IndexError> {
        let name = IndexName::parse(name).map_err(|e| backend(format!("cannot read the Qdrant collection {name:?}: {e}")))?;
        Ok(Self { index: QdrantIndex::new(config, clock)?, name })
    }
}

/// A point's id as text (Qdrant ids are unsigned integers or UUIDs).
fn id_text(v: &Value) -> Result<String, IndexError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        other => Err(backend(format!("a point id that is neither an integer nor a UUID: {other}"))),
    }
}

fn vector_of(id: &str, v: Value) -> Result<Option<Vector>, IndexError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(|| backend(format!("point {id} has a vector that is not a list of numbers"))))
            .collect::<Result<Vector, _>>()
            .map(Some),
        Value::Object(named) => Err(backend(format!(
            "point {id} has named vectors ({}); colstore adopts collections with one unnamed vector per point",
            named.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
        other => Err(backend(format!("point {id} has a vector colstore cannot read: {other}"))),
    }
}

#[async_trait]
impl ForeignCollection for QdrantForeign {
    fn describe(&self) -> String {
        let host = self.index.base_display.split_once("://").map_or(self.index.base_display.as_str(), |(_, h)| h);
        let scheme = if self.index.base_display.starts_with("https://") { "qdrant+https" } else { "qdrant" };
        format!("{scheme}://{host}/{}", self.name)
    }

    async fn info(&self) -> Result<ForeignInfo, IndexError> {
        let name = &self.name;
        let info: CollectionInfo = self.index.call(Method::GET, &format!("collections/{name}"), None, Scope::Collection(name)).await?;
        let vectors = &info.config.params.vectors;
        let (Some(size), Some(distance)) = (vectors.get("size").and_then(Value::as_u64), vectors.get("distance").and_then(Value::as_str))
        else {
            let names = vectors.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default();
            return Err(backend(format!(
                "the Qdrant collection {name} has named vectors ({names}); colstore adopts collections with one unnamed vector per point"
            )));
        };
        let distance = distance_of(distance).ok_or_else(|| {
            backend(format!(
                "the Qdrant collection {name} uses the distance {distance}, which colstore does not support (Cosine, Dot, Euclid)"
            ))
        })?;
        let dimension = u32::try_from(size)
            .ok()
            .and_then(|d| Dimension::new(d).ok())
            .ok_or_else(|| backend(format!("the Qdrant collection {name} has vectors of {size} dimensions, outside 1..=65536")))?;
        let count: CountResult = self
            .index
            .call(Method::POST, &format!("collections/{name}/points/count"), Some(&json!({"exact": true})), Scope::Collection(name))
            .await?;
        Ok(ForeignInfo { dimension, distance, count: count.count })
    }

    async fn page(&self, cursor: Option<String>, limit: usize, with_vectors: bool) -> Result<ForeignPage, IndexError> {
        let name = &self.name;
        let mut body = json!({"limit": limit.max(1), "with_payload": true, "with_vector": with_vectors});
        if let Some(c) = cursor {
            body["offset"] = serde_json::from_str(&c).map_err(|e| backend(format!("a scroll cursor that is not JSON ({c}): {e}")))?;
        }
        let path = format!("collections/{name}/points/scroll");
        let (_, bytes) = self.index.exchange(Method::POST, &path, Some(&body), Scope::Collection(name), &[]).await?;
        if let Ok(typed) = serde_json::from_slice::<crate::Envelope<crate::TypedScroll<AnyPayload>>>(&bytes) {
            let objects = typed
                .result
                .points
                .into_iter()
                .map(|p| {
                    Ok(ForeignObject {
                        id: id_text(&p.id)?,
                        vector: p.vector.filter(|_| with_vectors),
                        payload: p.payload.unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>, IndexError>>()?;
            let next = typed.result.next_page_offset.filter(|v| !v.is_null()).map(|v| v.to_string());
            return Ok(ForeignPage { objects, next });
        }
        // Not that shape (named vectors, odd values): read loosely, for an error that says what is wrong.
        let raw: RawScroll = self.index.parse(&bytes, &Method::POST, &path)?;
        let objects = raw
            .points
            .into_iter()
            .map(|p| {
                let id = id_text(&p.id)?;
                let vector = if with_vectors { vector_of(&id, p.vector.unwrap_or(Value::Null))? } else { None };
                Ok(ForeignObject { id, vector, payload: p.payload.unwrap_or_default() })
            })
            .collect::<Result<Vec<_>, IndexError>>()?;
        let next = match raw.next_page_offset {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.to_string()),
        };
        Ok(ForeignPage { objects, next })
    }
}

#[cfg(test)]
mod tests {
    /// A vector is read as the `f32`s written: `7.038531e-26` is the shortest text of the `f32` 0x15ae43fd, which an
    /// `f64` narrowed to `f32` misses by one step (double rounding); read straight into `f32` (serde_json's
    /// `float_roundtrip`), it is exact.
    #[test]
    fn vectors_are_read_as_the_exact_f32s() {
        let exact = f32::from_bits(0x15ae_43fd);
        assert_eq!(serde_json::to_string(&exact).unwrap(), "7.038531e-26");
        let typed: crate::TypedPoint<super::AnyPayload> =
            serde_json::from_str(r#"{"id": 1, "payload": null, "vector": [7.038531e-26]}"#).unwrap();
        assert_eq!(typed.vector.unwrap()[0].to_bits(), 0x15ae_43fd);
        let through_f64 = serde_json::from_str::<f64>("7.038531e-26").unwrap() as f32;
        assert_ne!(through_f64.to_bits(), 0x15ae_43fd, "the trap this reading avoids");
    }
}
