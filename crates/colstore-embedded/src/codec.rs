//! How ids, vectors and payloads are stored in the database, and how its errors become [`IndexError`]s.

use colstore_domain::ports::IndexError;
use colstore_domain::{Filter, Payload, PointId};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::index::BACKEND;

pub(crate) fn backend(msg: impl Into<String>) -> IndexError {
    IndexError::Backend { backend: BACKEND, source: msg.into().into() }
}

/// Maps sqlx errors: a busy database is `Unavailable` (retrying helps), anything else `Backend`.
pub(crate) fn db_err(e: sqlx::Error) -> IndexError {
    if let sqlx::Error::Database(db) = &e
        && let Some(code) = db.code().and_then(|c| c.parse::<i32>().ok())
        && matches!(code & 0xff, 5 | 6)
    {
        return IndexError::Unavailable(format!("the embedded index database is busy ({})", db.message()));
    }
    IndexError::Backend { backend: BACKEND, source: Box::new(e) }
}

pub(crate) fn dimension_mismatch(expected: usize, got: usize) -> IndexError {
    let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
    IndexError::DimensionMismatch { expected: n(expected), got: n(got) }
}

pub(crate) fn id_bytes(id: &PointId) -> &[u8; 16] {
    id.0.as_bytes()
}

pub(crate) fn id_from(bytes: &[u8]) -> Result<PointId, IndexError> {
    <[u8; 16]>::try_from(bytes)
        .map(|b| PointId(Uuid::from_bytes(b)))
        .map_err(|_| backend(format!("a point id has {} bytes, not 16", bytes.len())))
}

pub(crate) fn encode_vector(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

pub(crate) fn decode_vector_into(bytes: &[u8], dim: usize, id: &PointId, out: &mut Vec<f32>) -> Result<(), IndexError> {
    let (floats, rest) = bytes.as_chunks::<4>();
    if floats.len() != dim || !rest.is_empty() {
        return Err(backend(format!("the vector of point {id} has {} bytes, expected {}", bytes.len(), dim * 4)));
    }
    out.extend(floats.iter().map(|b| f32::from_le_bytes(*b)));
    Ok(())
}

pub(crate) fn parse_payload_map(json: &str, id: &PointId) -> Result<Map<String, Value>, IndexError> {
    match serde_json::from_str(json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(backend(format!("the payload of point {id} is not a JSON object"))),
        Err(e) => Err(backend(format!("the payload of point {id} is not valid JSON: {e}"))),
    }
}

pub(crate) fn payload_from_map(map: Map<String, Value>, id: &PointId) -> Result<Payload, IndexError> {
    serde_json::from_value(Value::Object(map)).map_err(|e| backend(format!("the payload of point {id} is not a colstore payload: {e}")))
}

/// A filter worth evaluating: `None` for no filter or one without conditions (which matches everything).
pub(crate) fn effective(filter: Option<Filter>) -> Option<Filter> {
    filter.filter(|f| !f.is_empty())
}
