//! `col import qdrant://HOST:6333/NAME` / `weaviate://HOST:8080/Class`: adopting a remote collection
//! (`colstore_app::adopt`).

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use colstore_app::{AdoptError, AdoptOptions, AdoptProgress, AdoptReport};
use colstore_domain::ports::SafetyCopy;
use colstore_wiring::process_env;
use serde_json::json;

use super::collection::confirm;
use super::safety::{SafetyProgress, announce_safety, safety_label};
use super::{Ctx, collection_name, io};
use crate::cli::ImportArgs;
use crate::error::{CliError, CliResult};
use crate::output::{count, to_value};

/// The schemes of remote collections.
const SCHEMES: [&str; 4] = ["qdrant://", "qdrant+https://", "weaviate://", "weaviate+https://"];

/// `source` when it names a remote collection rather than a file.
pub fn remote_source(source: &Path) -> Option<String> {
    let s = source.to_str()?;
    // Bytes, not a string slice: a file name's multi-byte character may straddle the scheme's length.
    SCHEMES.iter().any(|scheme| s.as_bytes().get(..scheme.len()).is_some_and(|p| p.eq_ignore_ascii_case(scheme.as_bytes()))).then(|| s.to_owned())
}

/// A file import given a flag only a remote collection takes.
pub fn refuse_remote_flags(a: &ImportArgs) -> CliResult {
    let given = [
        ("--into", a.into.is_some()),
        ("--text-field", a.text_field.is_some()),
        ("--key-field", a.key_field.is_some()),
        ("--embedder", a.embedder.is_some()),
        ("--strict", a.strict),
        ("--id-field", a.id_field != "source_id"),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(CliError::new(format!("{flag} is for adopting a remote collection, and {} is a file", a.file.display()))
            .code(2)
            .hint("name the collection as qdrant://HOST:6333/NAME or weaviate://HOST:8080/Class, or drop the flag to import the file")),
        None => Ok(()),
    }
}

/// `KIND:MODEL`.
fn parse_embedder(s: &str) -> CliResult<(String, String)> {
    match s.split_once(':') {
        Some((kind, model)) if !kind.trim().is_empty() && !model.trim().is_empty() => {
            Ok((kind.trim().to_ascii_lowercase(), model.trim().to_owned()))
        }
        _ => Err(CliError::new(format!("--embedder {s:?} is not KIND:MODEL"))
            .code(2)
            .hint("name the embedder that made the vectors, e.g. --embedder openai:text-embedding-3-small or --embedder hash:v1")),
    }
}

fn required<'a>(value: &'a Option<String>, flag: &str, what: &str) -> CliResult<&'a str> {
    value.as_deref().filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        CliError::new(format!("adopting a remote collection needs {flag}: {what}"))
            .code(2)
            .hint("e.g. col import qdrant://localhost:6333/articles --into articles --text-field body --embedder openai:text-embedding-3-small")
    })
}

fn adopt_error(e: AdoptError, a: &ImportArgs) -> CliError {
    match e {
        AdoptError::Source { .. } => CliError::new(e.to_string())
            .hint("check the URL and the collection name, that the server is reachable, and QDRANT_API_KEY / WEAVIATE_API_KEY"),
        AdoptError::EmbedderMismatch { ref named, .. } => {
            let model = if named.model.is_empty() || named.kind == "hash" { String::new() } else { format!(", model = \"{}\"", named.model) };
            CliError::new(e.to_string()).hint(format!(
                "set [embedder] kind = \"{}\"{model}, dimension = {} in .colstore/config.toml (the model that made these vectors), or name it with --embedder",
                named.kind,
                named.dimension.get()
            ))
        }
        AdoptError::Incompatible { .. } => CliError::new(e.to_string())
            .hint("adopt into a new collection: --into NEW_NAME (it is created with whole-document chunks and the source's vectors)"),
        AdoptError::Strict { .. } => CliError::new(e.to_string()).hint(format!(
            "run `col import {} ... --dry-run` to list the objects, or drop --strict to skip them",
            a.file.display()
        )),
        AdoptError::Safety(e) => e.into(),
        AdoptError::Repo(e) => e.into(),
        AdoptError::Sync(e) => e.into(),
    }
}

pub async fn run(ctx: &Ctx, source: &str, a: ImportArgs) -> CliResult {
    if a.mode.is_some() {
        return Err(CliError::new("--mode is for importing a file; adopting a remote collection adds and updates, never deletes")
            .code(2)
            .hint("drop --mode"));
    }
    let into = collection_name(required(&a.into, "--into", "the collection of this store to write")?)?;
    let text_field = required(&a.text_field, "--text-field", "the payload field holding each object's text")?.to_owned();
    let embedder = parse_embedder(required(&a.embedder, "--embedder", "the embedder that made the vectors (KIND:MODEL)")?)?;
    if a.id_field.trim().is_empty() {
        return Err(CliError::new("--id-field is empty").code(2).hint("name the metadata field that keeps the source id, e.g. --id-field source_id"));
    }
    let opts = AdoptOptions {
        into: into.clone(),
        text_field,
        key_field: a.key_field.clone(),
        id_field: a.id_field.clone(),
        embedder,
        strict: a.strict,
    };
    let store = ctx.open().await?;
    let foreign = store.foreign_collection(source)?;
    let store_embedder = store.embedder(&process_env)?.identity();
    let existing = match store.repo().collection(&into).await {
        Ok(c) => Some(c.document_count),
        Err(colstore_domain::ports::RepoError::CollectionNotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if !a.dry_run && !a.yes && existing.is_some_and(|n| n > 0) {
        confirm(&format!(
            "Import {} into {into}, which holds {} (same keys are replaced, after a safety backup)?",
            foreign.describe(),
            count(existing.unwrap_or(0), "document", "documents")
        ))?;
    }
    let _lock = if a.dry_run { ctx.shared_lock(&store).await? } else { ctx.exclusive_lock(&store, "import").await? };
    let safety_progress = SafetyProgress::new(ctx);
    let on_event = |e| safety_progress.on_event(e);
    let net = store.safety_net(&on_event);
    let on_kept = |copy: &SafetyCopy| {
        safety_progress.finish();
        announce_safety(ctx, copy);
    };
    let kept: OnceLock<String> = OnceLock::new();
    let on_kept_and_remember = |copy: &SafetyCopy| {
        let _ = kept.set(safety_label(copy).to_owned());
        on_kept(copy);
    };
    let bar = OnceLock::new();
    let what = if a.dry_run { "reading" } else { "importing" };
    let started = Instant::now();
    let safety_net = if a.no_backup { None } else { Some(&net as &dyn colstore_domain::ports::SafetyNet) };
    let result = colstore_app::adopt(
        &**store.repo(),
        &*store.sync_store(),
        &*foreign,
        &opts,
        &store_embedder,
        safety_net,
        a.dry_run,
        &on_kept_and_remember,
        &|p: AdoptProgress| {
            let b = bar.get_or_init(|| crate::progress::bar(p.total, false, ctx.hide_progress, what));
            b.set_length(p.total.max(p.read));
            b.set_position(p.read);
        },
    )
    .await;
    safety_progress.finish();
    if let Some(b) = bar.get() {
        b.finish_and_clear();
    }
    let r = result.map_err(|e| adopt_error(e, &a))?;
    render(ctx, &r, kept.get().map(String::as_str), started.elapsed().as_secs_f64())
}

fn render(ctx: &Ctx, r: &AdoptReport, safety: Option<&str>, secs: f64) -> CliResult {
    ctx.out.json_value(&json!({ "adopt": to_value(r), "safety_backup": safety })).map_err(io)?;
    let mut lines = vec![format!(
        "{}: {} ({}, {}) into {} collection {}, vectors cached as {}.",
        r.source,
        count(r.info.count, "object", "objects"),
        r.info.distance,
        count(u64::from(r.info.dimension.get()), "dimension", "dimensions"),
        if r.created_collection { "new" } else { "existing" },
        r.collection,
        r.embedder,
    )];
    if r.dry_run {
        lines.push(format!(
            "Would import {} of {} read; {} would be skipped.",
            count(r.created, "document", "documents"),
            r.read,
            r.skipped
        ));
        for s in &r.sample {
            lines.push(format!("  {} (source id {}): {:?}  metadata: {}", s.key, s.source_id, s.text, s.metadata_fields.join(", ")));
        }
    } else {
        lines.push(format!(
            "Imported {} new, {} changed, {} unchanged; {} vectors into the embedding cache ({secs:.1}s).",
            r.created, r.updated, r.unchanged, r.vectors
        ));
    }
    if r.skipped > 0 {
        lines.push(format!("Skipped {}:", count(r.skipped, "object", "objects")));
        for s in &r.skips {
            lines.push(format!("  {}: {}", s.id, s.reason));
        }
        if r.skipped > r.skips.len() as u64 {
            lines.push(format!("  … and {} more (--json lists the first {})", r.skipped - r.skips.len() as u64, r.skips.len()));
        }
    }
    if r.dry_run {
        lines.push("Dry run: nothing was changed.".into());
    } else {
        lines.push(format!("Run `col sync {}` to project it; its vectors are cached, so no embedder call is made.", r.collection));
        if let Some(s) = safety {
            lines.push(format!("Undo with `col restore {s}`."));
        }
    }
    for l in lines {
        ctx.out.line(l).map_err(io)?;
    }
    Ok(())
}
