//! [`Embedder`](colstore_domain::ports::Embedder) adapters.
//!
//! - [`HashEmbedder`] (`hash`): the built-in default; offline, deterministic lexical embedding of hashed words and
//!   word pairs.
//! - [`OpenAiEmbedder`] (`openai`): any OpenAI-compatible `/v1/embeddings` API (OpenAI, Ollama, TEI, vLLM,
//!   LM Studio), with batching, timeouts and retries that honour `Retry-After`.
//!
//! This crate knows HTTP and the embeddings wire format; it knows nothing about collections, caches or storage.

mod hash;
mod openai;

pub use hash::{HASH_KIND, HASH_MODEL, HashEmbedder};
pub use openai::{OPENAI_KIND, OpenAiConfig, OpenAiEmbedder};
