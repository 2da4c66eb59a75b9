//! `col collection create|list|show|delete`.

use std::io::IsTerminal;

use colstore_domain::{ChunkingSettings, Distance};
use serde_json::json;

use super::safety::{SafetyProgress, announce_safety, safety_fields};
use super::{Ctx, collection_name, io};
use colstore_domain::ports::SafetyNet;
use crate::cli::{CollectionCommand, SettingsArgs};
use crate::error::{CliError, CliResult};
use crate::output::{collection_json, human_bytes, human_time, table, to_value};

pub async fn run(ctx: &Ctx, cmd: CollectionCommand) -> CliResult {
    match cmd {
        CollectionCommand::Create { name, settings: args, vectors: target } => {
            let name = collection_name(&name)?;
            let (chunking, distance) = parse_settings(&args, ChunkingSettings::default())?;
            let store = ctx.open().await?;
            let index = target.as_deref().map(|t| vector_target(&store, t)).transpose()?.flatten();
            let _lock = ctx.shared_lock(&store).await?;
            let vectors = match distance {
                Some(d) => Some((store.embedder(&colstore_wiring::process_env)?.identity(), d)),
                None => None,
            };
            let c = colstore_app::create_collection(&**store.repo(), name, chunking, vectors, index).await?;
            ctx.out.json_value(&collection_json(&c)).map_err(io)?;
            ctx.out.line(format!("Created collection {}", c.name)).map_err(io)?;
            ctx.out.line(format!("Next: `col add {} PATH…` or `col put {} KEY FILE`", c.name, c.name)).map_err(io)?;
        }
        CollectionCommand::Set { name, settings: args, vectors: Some(target), fusion } => {
            let name = collection_name(&name)?;
            if args.chunk_size.is_some() || args.chunk_overlap.is_some() || args.distance.is_some() || fusion.given() {
                return Err(CliError::new("--vectors moves the collection and is given alone")
                    .code(2)
                    .hint(format!("change chunking or distance in a second call: `col collection set {name} --chunk-size …`")));
            }
            let store = ctx.open().await?;
            let to = canonical_target(&store, "collection set", "--vectors", &target)?;
            let current = store.repo().collection(&name).await?.settings.index.unwrap_or_else(|| store.indexes().default_target());
            if to == current {
                ctx.out.json_value(&json!({ "collection": name, "to": to, "moved": false })).map_err(io)?;
                ctx.out.line(format!("Collection {name} already projects into {to}; nothing to do.")).map_err(io)?;
                return Ok(());
            }
            super::index::move_index(ctx, &store, &name, &to, false).await?;
        }
        CollectionCommand::Set { name, settings: args, vectors: None, fusion } if fusion.given() && args.chunk_size.is_none() && args.chunk_overlap.is_none() && args.distance.is_none() => {
            let name = collection_name(&name)?;
            let store = ctx.open().await?;
            let _lock = ctx.shared_lock(&store).await?;
            let change = colstore_app::FusionChange {
                rrf_k: fusion.rrf_k,
                keyword_weight: fusion.keyword_weight,
                vector_weight: fusion.vector_weight,
                reset: fusion.default_fusion,
            };
            let c = colstore_app::change_fusion(&**store.repo(), &name, change).await.map_err(|e| match e {
                colstore_app::FusionError::Invalid(v) => CliError::from(v).code(2),
                colstore_app::FusionError::Repo(r) => CliError::from(r),
            })?;
            ctx.out.json_value(&json!({ "collection": collection_json(&c), "change": { "fusion": c.settings.fusion } })).map_err(io)?;
            let kind = c.settings.vectors.as_ref().map(|v| v.embedder.kind.as_str());
            let now = match c.settings.fusion {
                Some(f) => format!("{f}"),
                None => format!("the defaults ({})", colstore_domain::FusionSettings::default_for(kind)),
            };
            ctx.out.line(format!("Updated collection {name}: hybrid search fuses with {now}.")).map_err(io)?;
        }
        CollectionCommand::Set { name, settings: args, vectors: None, fusion } => {
            let name = collection_name(&name)?;
            if fusion.given() {
                return Err(CliError::new("fusion settings are given alone")
                    .code(2)
                    .hint(format!("change chunking or distance in a second call: `col collection set {name} --chunk-size …`")));
            }
            let store = ctx.open().await?;
            let current = store.repo().collection(&name).await?;
            let (chunking, distance) = parse_settings(&args, current.settings.chunking)?;
            if chunking.is_none() && distance.is_none() {
                return Err(CliError::new("nothing to change").code(2).hint(
                    "pass --chunk-size, --chunk-overlap, --distance, --vectors, or the fusion settings (--rrf-k, --keyword-weight, \
                     --vector-weight, --default-fusion)",
                ));
            }
            let _lock = ctx.shared_lock(&store).await?;
            let ports = Ctx::sync_ports(&store).await?;
            let change = colstore_app::change_settings(&ports, &name, chunking, distance).await?;
            let c = store.repo().collection(&name).await?;
            ctx.out.json_value(&json!({ "collection": collection_json(&c), "change": to_value(&change) })).map_err(io)?;
            ctx.out.line(format!("Updated collection {name}.")).map_err(io)?;
            if change.marked_pending > 0 {
                ctx.out
                    .line(format!(
                        "{} documents are pending; run `col sync {name}` to re-project them (cached vectors are reused).",
                        change.marked_pending
                    ))
                    .map_err(io)?;
            }
        }
        CollectionCommand::List => {
            let store = ctx.open().await?;
            let cs = store.repo().list_collections().await?;
            ctx.out.json_value(&json!({ "collections": cs.iter().map(collection_json).collect::<Vec<_>>() })).map_err(io)?;
            if cs.is_empty() {
                ctx.out.line("No collections yet. Create one with `col collection create NAME`.").map_err(io)?;
            } else {
                let rows: Vec<Vec<String>> = cs
                    .iter()
                    .map(|c| vec![c.name.to_string(), c.document_count.to_string(), human_bytes(c.logical_bytes), human_time(c.created_at)])
                    .collect();
                ctx.out.data(table(&["NAME", "DOCUMENTS", "SIZE", "CREATED"], &rows)).map_err(io)?;
            }
        }
        CollectionCommand::Index { name, field, drop } => {
            let name = collection_name(&name)?;
            let field = colstore_domain::FieldPath::parse(&field).map_err(|e| {
                CliError::new(format!("invalid field {:?}: {}", field, e.reason))
                    .hint("a field is a dotted path of letters, digits, '_' and '-', like `year` or `author.name`")
            })?;
            let store = ctx.open().await?;
            let (c, change) = colstore_app::index_field(&**store.repo(), &name, &field, drop).await?;
            ctx.out
                .json_value(&json!({ "collection": c.name, "field": field.as_str(), "change": change, "indexed_fields": c.settings.indexed_fields }))
                .map_err(io)?;
            let line = match change {
                colstore_app::IndexChange::Added => format!("Indexed {name}.{field}: `--where` filters on it are now index lookups."),
                colstore_app::IndexChange::AlreadyIndexed => format!("{name}.{field} is indexed already; nothing changed."),
                colstore_app::IndexChange::Dropped => format!("Dropped the index of {name}.{field} (filters on it still work, by reading each document)."),
                colstore_app::IndexChange::NotIndexed => format!("{name}.{field} is not indexed; nothing changed."),
            };
            ctx.out.line(line).map_err(io)?;
        }
        CollectionCommand::Show { name } => {
            let name = collection_name(&name)?;
            let store = ctx.open().await?;
            let c = store.repo().collection(&name).await?;
            ctx.out.json_value(&collection_json(&c)).map_err(io)?;
            let s = &c.settings;
            let vectors = match &s.vectors {
                None => "not configured (set when the collection is first synced)".to_owned(),
                Some(v) => format!("{} ({})", v.embedder, v.distance),
            };
            let index = match &s.index {
                Some(target) => target.clone(),
                None => format!("{} (the store's default)", store.indexes().default_target()),
            };
            let fusion = match s.fusion {
                Some(f) => f.to_string(),
                None => format!(
                    "{} (the defaults)",
                    colstore_domain::FusionSettings::default_for(s.vectors.as_ref().map(|v| v.embedder.kind.as_str()))
                ),
            };
            let indexed = if s.indexed_fields.is_empty() {
                "tags, keys, times and sync states (index a metadata field with `col collection index`)".to_owned()
            } else {
                format!("tags, keys, times, sync states and {}", s.indexed_fields.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", "))
            };
            ctx.out
                .data(format!(
                    "name:       {}\ndocuments:  {}\nsize:       {} ({} bytes)\ncreated:    {}\nchunking:   {}\nvectors:    {}\nindex:      {}\nfusion:     {fusion}\nindexed:    {indexed}",
                    c.name,
                    c.document_count,
                    human_bytes(c.logical_bytes),
                    c.logical_bytes,
                    human_time(c.created_at),
                    s.chunking,
                    vectors,
                    index
                ))
                .map_err(io)?;
        }
        CollectionCommand::Delete { name, dry_run, yes, no_backup } => {
            let name = collection_name(&name)?;
            let store = ctx.open().await?;
            let c = store.repo().collection(&name).await?;
            if dry_run {
                ctx.out.json_value(&json!({ "collection": c.name, "documents": c.document_count, "dry_run": true })).map_err(io)?;
                ctx.out
                    .line(format!(
                        "Would delete collection {} and its {} documents ({}). Nothing was changed.",
                        c.name,
                        c.document_count,
                        human_bytes(c.logical_bytes)
                    ))
                    .map_err(io)?;
                return Ok(());
            }
            if !yes {
                confirm(&format!("Delete collection {} and its {} documents?", c.name, c.document_count))?;
            }
            let _lock = ctx.exclusive_lock(&store, "collection delete").await?;
            let indexes = store.indexes();
            let progress = SafetyProgress::new(ctx);
            let on_event = |e| progress.on_event(e);
            let net = store.safety_net(&on_event);
            let report = colstore_app::delete_collection(
                &**store.repo(),
                Some(&*indexes),
                store.store_id(),
                (!no_backup).then_some(&net as &dyn SafetyNet),
                &name,
                &|copy| announce_safety(ctx, copy),
            )
            .await;
            progress.finish();
            let report = report?;
            if let Some(problem) = &report.index_problem {
                eprintln!("warning: the collection's vector index could not be dropped: {problem}");
            }
            let n = report.documents_deleted;
            let (copy, backup) = safety_fields(report.safety.as_ref());
            let mut doc = json!({ "collection": name, "documents_deleted": n, "safety_copy": copy, "dry_run": false });
            if let Some(id) = backup {
                doc["safety_backup"] = json!(id);
            }
            ctx.out.json_value(&doc).map_err(io)?;
            ctx.out.line(format!("Deleted collection {name} ({n} documents).")).map_err(io)?;
            if let Some(path) = copy {
                ctx.out.line(format!("A safety copy of the database before the delete is at {path}")).map_err(io)?;
            }
        }
    }
    Ok(())
}

/// Reads chunking and distance flags; chunking is `None` when neither chunk flag is given.
fn parse_settings(a: &SettingsArgs, base: ChunkingSettings) -> CliResult<(Option<ChunkingSettings>, Option<Distance>)> {
    let chunking = if a.chunk_size.is_some() || a.chunk_overlap.is_some() {
        let size = a.chunk_size.unwrap_or(base.max_chars());
        let overlap = a.chunk_overlap.unwrap_or(base.overlap_chars().min(size.saturating_sub(1)));
        Some(
            ChunkingSettings::new(size, overlap)
                .map_err(|e| CliError::from(e).hint("use a chunk size above 0 and an overlap smaller than it"))?,
        )
    } else {
        None
    };
    let distance = a.distance.as_deref().map(Distance::parse).transpose()?;
    Ok((chunking, distance))
}

/// Asks on the terminal; refuses when there is none.
pub fn confirm(question: &str) -> CliResult {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(CliError::new(format!("refusing to go on without confirmation (stdin is not a terminal): {question}"))
            .hint("pass --yes to confirm, or --dry-run to see what would change"));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") { Ok(()) } else { Err(CliError::new("cancelled; nothing was changed")) }
}

/// A `--vectors` target in canonical form, or `None` when it is the store's default index.
fn vector_target(store: &colstore_wiring::Store, target: &str) -> CliResult<Option<String>> {
    let canonical = canonical_target(store, "collection create", "--vectors", target)?;
    Ok((canonical != store.indexes().default_target()).then_some(canonical))
}

/// The canonical form of a vector target given with `flag` to `command` (`qdrant://h` → `qdrant://h:6333`), or a
/// usage error pointing at that command's help.
pub(crate) fn canonical_target(store: &colstore_wiring::Store, command: &str, flag: &str, target: &str) -> CliResult<String> {
    store
        .indexes()
        .canonical(target)
        .map_err(|e| CliError::new(format!("{flag}: {}", source_message(&e))).hint(format!("see `col {command} --help`")).code(2))
}

/// The message of an index error without its wrapper (`config error: …`).
fn source_message(e: &colstore_domain::ports::IndexError) -> String {
    match e {
        colstore_domain::ports::IndexError::Backend { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}
