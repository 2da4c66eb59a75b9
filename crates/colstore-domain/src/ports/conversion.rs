//! `StorageConversion`: moving a store's content between the storage modes (`col migrate`).
//!
//! The use case (in `colstore-app`) decides the steps and their order: a safety backup, the copy, a check of the
//! copy through the store as it will be opened after the switch, the switch, the clean-up. The implementation, in
//! `colstore-wiring`, knows how for the two modes (blobs in SQLite, files in a folder) and where the config lives.

use std::sync::Arc;

use async_trait::async_trait;

use crate::ports::{CollectionRepo, DocumentFiles, FileCatalog};

/// The store as it will be opened after the switch.
pub struct Converted {
    /// Its documents, read from their new place.
    pub repo: Arc<dyn CollectionRepo>,
    /// To filesystem mode: the new folder and its catalog, to check the folder holds exactly the documents.
    pub files: Option<(Arc<dyn DocumentFiles>, Arc<dyn FileCatalog>)>,
}

/// Why a step of a conversion failed; the store is then still in its old mode. The source is the implementation's
/// own error, for the shell to explain.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ConversionError(pub Box<dyn std::error::Error + Send + Sync>);

/// Moves a store's content to the other storage mode, one step at a time.
///
/// # Contract
/// - [`copy_contents`](Self::copy_contents) MUST leave the old place untouched, so the store still works in its old
///   mode after it and an interrupted copy can simply run again.
/// - Until [`switch`](Self::switch) returns, the store MUST open in its old mode; after it, in the new one; never half
///   (one atomic write of its config).
#[async_trait]
pub trait StorageConversion: Send + Sync {
    /// Copies every document's content to its place in the new mode; `progress` hears (contents done, total).
    /// Returns how many contents were copied.
    async fn copy_contents(&self, progress: &mut (dyn FnMut(u64, u64) + Send)) -> Result<u64, ConversionError>;

    /// Opens the store as it will be opened after the switch (reading the contents from their new place).
    async fn open_converted(&self) -> Result<Converted, ConversionError>;

    /// Makes the new mode the store's.
    async fn switch(&self) -> Result<(), ConversionError>;
}
