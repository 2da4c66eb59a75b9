//! The export file as bytes: the zstd frame around the JSON lines (written by [`export_to`], read through
//! [`decode_export`]), and [`run_import`], the whole of `col import` once its plan is accepted.
//!
//! Where the bytes go (a file replaced atomically, standard output, an HTTP body) is the shell's business; what they
//! are is decided here, next to the lines they frame, so the format of docs/EXPORT-FORMAT.md is written and read in
//! this one crate.

use std::io::{BufRead, BufReader, Read, Write};

use colstore_domain::ports::{CollectionRepo, SafetyCopy, SafetyError, SafetyNet, SyncStore};
use colstore_domain::{StoreId, Timestamp};

use super::{ExportError, ExportReport, ImportPlan, export, import};
use crate::backup::{RestoreMode, overwritten};

/// The zstd level of an export: fast, and about 3× smaller than the JSON lines for text.
const ZSTD_LEVEL: i32 = 3;

/// Writes an export of `scope` to `out` as the file format has it (zstd-compressed JSON
/// lines), and returns `out` once the compressed stream is complete, for the caller to make durable.
///
/// # Errors
/// As [`export`], and failures to write `out`.
pub async fn export_to<W: Write + Send>(
    repo: &dyn CollectionRepo,
    scope: &super::ExportScope,
    store_id: StoreId,
    tool_version: &str,
    now: Timestamp,
    out: W,
    on_progress: &(dyn Fn(u64) + Sync),
) -> Result<(ExportReport, W), ExportError> {
    let mut encoder = zstd::Encoder::new(std::io::BufWriter::new(out), ZSTD_LEVEL)?;
    let report = export(repo, scope, store_id, tool_version, now, &mut encoder, on_progress).await?;
    let out = encoder.finish()?.into_inner().map_err(std::io::IntoInnerError::into_error)?;
    Ok((report, out))
}

/// The JSON lines of an export file whose bytes `input` reads, for [`plan_import`](super::plan_import) and
/// [`run_import`].
///
/// # Errors
/// The zstd decoder cannot start (out of memory).
pub fn decode_export<R: Read>(input: R) -> Result<impl BufRead, ExportError> {
    Ok(BufReader::new(zstd::Decoder::new(input)?))
}

/// What [`run_import`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Documents written.
    pub written: u64,
    /// The safety backup taken first, if any.
    pub safety: Option<SafetyCopy>,
}

/// Why [`run_import`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportRunError {
    /// No safety backup could be taken: nothing was imported.
    #[error(transparent)]
    Safety(#[from] SafetyError),
    /// The import failed (after the safety backup, if one was taken).
    #[error(transparent)]
    Import(#[from] ExportError),
}

/// Imports the JSON lines `input` reads (from [`decode_export`]) whose `plan` the user accepted: first, when the plan
/// overwrites or deletes documents of existing collections and `safety` is given, a backup of those collections
/// (`on_kept` hears of it before anything changes); then [`import`].
///
/// # Errors
/// A failed safety backup (nothing imported), or a failed import.
pub async fn run_import<R: BufRead>(
    repo: &dyn CollectionRepo,
    ledger: &dyn SyncStore,
    safety: Option<&dyn SafetyNet>,
    plan: &ImportPlan,
    input: R,
    on_kept: &(dyn Fn(&SafetyCopy) + Sync),
    on_progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportOutcome, ImportRunError> {
    let touched = overwritten(&plan.collections);
    crate::commit_log::began("import", None);
    let safety = match safety {
        Some(net) if !touched.is_empty() => {
            let copy = net.backup(&touched, "import").await?;
            on_kept(&copy);
            Some(copy)
        }
        _ => None,
    };
    let mode: RestoreMode = plan.mode;
    let written = import(repo, ledger, input, mode, on_progress).await?;
    Ok(ImportOutcome { written, safety })
}
