//! `col put`, `col get`, `col rm`, `col ls`.

use std::path::Path;

use bytes::BytesMut;
use colstore_domain::{
    Content, ContentStream, Cursor, DocumentMeta, ListQuery, Metadata, NewDocument, SortField, SortOrder, Tags,
    TimeRange, Timestamp,
};
use futures::StreamExt;
use colstore_app::{ReadError, ReadMode};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::safety::{SafetyProgress, announce_safety, safety_fields};
use super::{Ctx, collection_name, display, doc_key, io, now, where_filter};
use colstore_domain::ports::SafetyNet;
use crate::cli::{GetArgs, LsArgs, PutArgs, RmArgs, SortArg};
use crate::error::{CliError, CliResult};
use crate::output::{RawOut, doc_json, human_bytes, human_time, table};

/// Reads a file or stdin as a stream, so large inputs are never held whole.
fn reader_stream<R: AsyncRead + Unpin + Send + 'static>(r: R) -> ContentStream {
    futures::stream::unfold(Some(r), |state| async move {
        let mut r = state?;
        let mut buf = BytesMut::with_capacity(256 * 1024);
        match r.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(r))),
            Err(e) => Some((Err(e), None)),
        }
    })
    .boxed()
}

pub fn parse_meta(meta: Option<&str>) -> CliResult<Metadata> {
    Ok(match meta {
        None => Metadata::default(),
        Some(m) => Metadata::parse_json(m)?,
    })
}

async fn open_input(path: &Path) -> CliResult<Content> {
    let file = tokio::fs::File::open(path).await.map_err(|e| {
        let err = CliError::new(format!("cannot read {}: {e}", display(path)));
        if e.kind() == std::io::ErrorKind::NotFound { err.hint("check the path; it is relative to the working directory") } else { err }
    })?;
    let meta = file.metadata().await?;
    if meta.is_dir() {
        return Err(CliError::new(format!("{} is a directory", display(path))).hint("use `col add COLLECTION DIR` to add a folder"));
    }
    Ok(Content::Stream(reader_stream(file)))
}

pub async fn put(ctx: &Ctx, a: PutArgs) -> CliResult {
    let collection = collection_name(&a.collection)?;
    let key = doc_key(&a.key)?;
    let metadata = parse_meta(a.meta.as_deref())?;
    let tags = Tags::parse_all(&a.tags)?;
    let content = match (&a.text, &a.file) {
        (Some(t), _) => Content::Bytes(t.clone().into_bytes().into()),
        (None, Some(p)) if p.as_os_str() == "-" => Content::Stream(reader_stream(tokio::io::stdin())),
        (None, Some(p)) => open_input(p).await?,
        (None, None) => {
            return Err(CliError::new("no content given").code(2).hint("give a FILE, '-' to read stdin, or --text TEXT"));
        }
    };
    let store = ctx.open().await?;
    let _lock = ctx.shared_lock(&store).await?;
    let o = colstore_app::put_document(&**store.repo(), &collection, NewDocument { key, content, metadata, tags }).await?;
    ctx.out
        .json_value(&json!({ "collection": collection, "key": o.key, "status": o.status, "version": o.version, "content_hash": o.content_hash, "size": o.size }))
        .map_err(io)?;
    let verb = match o.status {
        colstore_domain::PutStatus::Created => "created",
        colstore_domain::PutStatus::Updated => "updated",
        colstore_domain::PutStatus::Unchanged => "unchanged",
    };
    ctx.out
        .line(format!("{collection}/{}: {verb} (version {}, {}, sha256 {})", o.key, o.version, human_bytes(o.size), o.content_hash.short()))
        .map_err(io)?;
    Ok(())
}

fn describe(d: &DocumentMeta) -> String {
    let tags: Vec<&str> = d.tags.0.iter().map(|t| t.as_str()).collect();
    format!(
        "collection: {}\nkey:        {}\nsize:       {} ({} bytes)\nsha256:     {}\nversion:    {}\ncreated:    {}\nupdated:    {}\ntags:       {}\nmetadata:   {}",
        d.collection,
        d.key,
        human_bytes(d.size),
        d.size,
        d.content_hash,
        d.version,
        human_time(d.created_at),
        human_time(d.updated_at),
        if tags.is_empty() { "-".to_owned() } else { tags.join(", ") },
        d.metadata.to_json()
    )
}

pub async fn get(ctx: &Ctx, a: GetArgs) -> CliResult {
    let collection = collection_name(&a.collection)?;
    let key = doc_key(&a.key)?;
    let store = ctx.open().await?;
    if a.meta_only || ctx.out.json {
        let d = store.repo().document(&collection, &key).await?;
        ctx.out.json_value(&doc_json(&d)).map_err(io)?;
        ctx.out.data(describe(&d)).map_err(io)?;
        return Ok(());
    }
    let report = match a.output.as_deref().filter(|p| !crate::outfile::is_stdout(p)) {
        Some(path) => {
            // A regular file is written next to the target and renamed, so a failed read never leaves a half-written
            // file; a symbolic link is followed (it stays a link), a device or FIFO is written straight.
            let mut out = crate::outfile::OutputFile::create(path)?;
            let report = colstore_app::read_document(&**store.repo(), &collection, &key, &mut out, ReadMode::Streamed)
                .await
                .map_err(|e| match e {
                    ReadError::Write(e) => CliError::new(format!("cannot write {}: {e}", display(path))),
                    e => e.into(),
                })?;
            out.commit()?;
            report
        }
        // Nothing reaches standard output before the content is checked.
        None => colstore_app::read_document(&**store.repo(), &collection, &key, &mut RawOut(&ctx.out), ReadMode::CheckedFirst)
            .await
            .map_err(|e| match e {
                ReadError::Write(e) => io(e),
                e => e.into(),
            })?,
    };
    if report.changed_on_disk {
        warn_changed(&collection, &key);
    }
    Ok(())
}

/// Filesystem mode: `col get` gives the file as it is now, like `cat`, and says that the store has not recorded it.
fn warn_changed(collection: &colstore_domain::CollectionName, key: &colstore_domain::DocKey) {
    eprintln!(
        "warning: {collection}/{key} was changed outside colstore since the last reconcile; this is the file as it is now, \
         not the recorded version (run `col reconcile {collection}` to record it)"
    );
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> CliResult {
    let collection = collection_name(&a.collection)?;
    let keys = a.keys.iter().map(|k| doc_key(k)).collect::<CliResult<Vec<_>>>()?;
    let store = ctx.open().await?;
    if a.dry_run {
        let plan = colstore_app::plan_remove(&**store.repo(), &collection, &keys).await?;
        ctx.out
            .json_value(
                &json!({ "collection": collection, "deleted": plan.present, "missing": plan.missing, "safety_copy": null, "dry_run": true }),
            )
            .map_err(io)?;
        for k in &plan.present {
            ctx.out.line(format!("would delete {collection}/{k}")).map_err(io)?;
        }
        for k in &plan.missing {
            ctx.out.line(format!("not found: {collection}/{k}")).map_err(io)?;
        }
        ctx.out.line("Dry run: nothing was changed.").map_err(io)?;
        return Ok(());
    }
    let _lock = ctx.shared_lock(&store).await?;
    let progress = SafetyProgress::new(ctx);
    let on_event = |e| progress.on_event(e);
    let net = store.safety_net(&on_event);
    let safety = (!a.no_backup).then_some(&net as &dyn SafetyNet);
    let report = colstore_app::remove_documents(&**store.repo(), safety, &collection, keys, &|copy| announce_safety(ctx, copy)).await;
    progress.finish();
    let report = report?;
    let (copy, backup) = safety_fields(report.safety.as_ref());
    let mut doc = json!({ "collection": collection, "deleted": report.deleted, "missing": report.missing, "safety_copy": copy, "dry_run": false });
    if let Some(id) = backup {
        doc["safety_backup"] = json!(id);
    }
    ctx.out.json_value(&doc).map_err(io)?;
    for k in &report.deleted {
        ctx.out.line(format!("deleted {collection}/{k}")).map_err(io)?;
    }
    if !report.missing.is_empty() {
        let list = report.missing.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
        return Err(CliError::new(format!("not found in collection \"{collection}\": {list}"))
            .hint(format!("list the collection's documents with `col ls {collection}`")));
    }
    Ok(())
}

pub async fn ls(ctx: &Ctx, a: LsArgs) -> CliResult {
    let collection = collection_name(&a.collection)?;
    let now = now();
    let expr = where_filter(&a.filters)?;
    let updated = TimeRange {
        since: a.since.as_deref().map(|s| Timestamp::parse_user(s, now)).transpose()?,
        until: a.until.as_deref().map(|s| Timestamp::parse_user(s, now)).transpose()?,
    };
    let mut query = ListQuery {
        tags: Tags::parse_all(&a.tags)?.0.into_iter().collect(),
        expr,
        created: TimeRange::default(),
        updated,
        key_prefix: a.prefix.clone(),
        sort: match a.sort {
            SortArg::Key => SortField::Key,
            SortArg::Updated => SortField::UpdatedAt,
            SortArg::Created => SortField::CreatedAt,
            SortArg::Size => SortField::Size,
        },
        order: if a.desc { SortOrder::Desc } else { SortOrder::Asc },
        // One more than asked: whether it comes back says if there is a next page.
        limit: a.limit.map(|l| l.saturating_add(1)),
        offset: a.offset,
        ..ListQuery::default()
    };
    if let Some(token) = &a.after {
        let cursor = Cursor::decode(token)?;
        cursor.check_fits(&query)?;
        query.after = Some(cursor);
    }
    let store = ctx.open().await?;
    let mut page = store.repo().list_documents(&collection, &query).await?;
    let more = a.limit.is_some_and(|l| page.items.len() as u64 > l);
    if more {
        page.items.pop();
    }
    let next = if more { page.items.last().map(|d| query.cursor_after(d).encode()) } else { None };
    ctx.out
        .json_value(&json!({
            "collection": collection,
            "total": page.total,
            "offset": a.offset,
            "limit": a.limit,
            "after": a.after,
            "next": next,
            "documents": page.items.iter().map(doc_json).collect::<Vec<_>>(),
        }))
        .map_err(io)?;
    if page.items.is_empty() {
        ctx.out.line(if page.total == 0 { "No documents match." } else { "No documents on this page." }).map_err(io)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|d| {
            vec![
                d.key.to_string(),
                human_bytes(d.size),
                d.version.to_string(),
                human_time(d.updated_at),
                d.tags.0.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(","),
            ]
        })
        .collect();
    ctx.out.data(table(&["KEY", "SIZE", "VERSION", "UPDATED", "TAGS"], &rows)).map_err(io)?;
    let shown = page.items.len() as u64;
    if let Some(next) = next {
        let how = if a.offset > 0 { "replace --offset with" } else { "add" };
        ctx.out.line(format!("({shown} of {} shown; the next page: {how} --after {next})", page.total)).map_err(io)?;
    } else if shown < page.total && a.after.is_none() {
        ctx.out.line(format!("({shown} of {} shown; use --limit/--offset to page)", page.total)).map_err(io)?;
    }
    Ok(())
}
