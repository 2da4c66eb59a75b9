//! `VectorIndex` over Weaviate (REST v1 and GraphQL, plain `reqwest` with hand-written serde types, no SDK).
//!
//! - [`names`]: index names as class names and metadata paths as property names, reversibly;
//! - `schema`: the class we create and the typed metadata properties that make filters possible;
//! - `filter`: our [`Filter`](colstore_domain::Filter) as a Weaviate `where`, exactly or as a superset that we narrow
//!   on our side;
//! - `client`: requests, retries (through `colstore_http::retrying` and the injected clock) and error classification;
//! - `index`: [`WeaviateIndex`], the port;
//! - `foreign`: [`WeaviateForeign`], a class colstore did not create, read for `col import`.

mod client;
mod config;
mod filter;
mod foreign;
mod index;
pub mod names;
mod schema;

pub use config::WeaviateConfig;
pub use foreign::WeaviateForeign;
pub use index::WeaviateIndex;
pub use names::class_name;

/// The backend kind, as configured and as reported by `health`.
pub const WEAVIATE_KIND: &str = "weaviate";
