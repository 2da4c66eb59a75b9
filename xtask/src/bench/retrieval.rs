//! The retrieval benchmark (`--only retrieval`): known-item search on text nobody here wrote, the machine's man pages.
//!
//! Each page is rendered to text with `man`; its one-line description (the NAME section, after " - ") is a query, and
//! the page with its NAME section removed is the one right answer. The pages go into a store through the real `col`
//! (`add`, then `sync` with the default `hash` embedder); the queries run in process through `colstore_app::search`,
//! the function `col search` calls, in each mode. Reported per mode: recall@1, recall@10 and MRR@10 over documents
//! (a page's chunks count once, at its best rank), and the query latency percentiles.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use colstore_app::{SearchMode, SearchOptions};
use colstore_domain::CollectionName;
use colstore_wiring::Store;

use super::report::{Figure, percentile};

/// Pages in the corpus: spread evenly over the sorted list of section 1 and 8 pages.
pub(crate) const PAGES: usize = 500;
/// Chunks asked per query: enough for 10 distinct pages in nearly every answer.
const CHUNKS_ASKED: usize = 40;
/// Where man pages are.
const MAN_DIR: &str = "/usr/share/man";

/// One mode's figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModeFigures {
    pub(crate) mode: &'static str,
    pub(crate) recall_1: f64,
    pub(crate) recall_10: f64,
    pub(crate) mrr_10: f64,
    pub(crate) latencies: Vec<Duration>,
}

/// What the retrieval area measured, or why it could not.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RetrievalBench {
    /// No man pages or no `man` on this machine.
    Skipped(String),
    /// The figures.
    Measured { pages: usize, queries: usize, modes: Vec<ModeFigures>, calibration: Vec<Calibration> },
}

/// MRR@10 of hybrid search with other fusion settings, computed from the same keyword and vector rankings: how the
/// defaults were chosen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Calibration {
    pub(crate) rrf_k: u32,
    pub(crate) vector_weight: f64,
    pub(crate) mrr_10: f64,
}

impl RetrievalBench {
    pub(crate) fn figures(&self) -> Vec<Figure> {
        let Self::Measured { modes, calibration, .. } = self else { return Vec::new() };
        let mut out: Vec<Figure> = modes
            .iter()
            .map(|m| {
                Figure::info(
                    format!("Retrieval, man pages (known item): `{}`", m.mode),
                    format!(
                        "recall@1 {:.3}, recall@10 {:.3}, MRR@10 {:.3}; latency p50 {:.1} ms, p95 {:.1} ms (in process)",
                        m.recall_1,
                        m.recall_10,
                        m.mrr_10,
                        ms(percentile(&m.latencies, 50)),
                        ms(percentile(&m.latencies, 95))
                    ),
                )
            })
            .collect();
        if let Some(best) = calibration.iter().max_by(|a, b| a.mrr_10.total_cmp(&b.mrr_10)) {
            out.push(Figure::info(
                "Retrieval: the best fusion on this corpus (keyword weight 1)".into(),
                format!("rrf_k {}, vector weight {}: MRR@10 {:.3}", best.rrf_k, best.vector_weight, best.mrr_10),
            ));
        }
        let find = |name: &str| modes.iter().find(|m| m.mode == name);
        if let (Some(k), Some(v), Some(h)) = (find("keyword"), find("vector"), find("hybrid")) {
            let better = k.mrr_10.max(v.mrr_10);
            let ratio = if better > 0.0 { h.mrr_10 / better } else { 1.0 };
            out.push(Figure::against(
                "Retrieval: hybrid MRR@10 against the better of keyword and vector".into(),
                format!("{:.3} vs {:.3}", h.mrr_10, better),
                "≥ 0.99× the better side".into(),
                ratio,
                ratio >= 0.99,
            ));
            let best_recall = k.recall_10.max(v.recall_10);
            out.push(Figure::against(
                "Retrieval: hybrid recall@10 against both sides".into(),
                format!("{:.3} vs {:.3}", h.recall_10, best_recall),
                "above both".into(),
                if best_recall > 0.0 { h.recall_10 / best_recall } else { 1.0 },
                h.recall_10 > best_recall,
            ));
        }
        out
    }

    pub(crate) fn context(&self) -> (&'static str, String) {
        match self {
            Self::Skipped(why) => ("Retrieval data", format!("not measured: {why}")),
            Self::Measured { pages, queries, .. } => (
                "Retrieval data",
                format!(
                    "{pages} man pages of this machine ({MAN_DIR}, sections 1 and 8, rendered with `man`), {queries} queries \
                     (each page's NAME description; pages sharing a description are left out), `hash` embedder, default \
                     fusion, top 10 distinct pages of {CHUNKS_ASKED} chunks"
                ),
            ),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Renders a man page to plain text, or `None` when `man` cannot.
fn render(page: &Path) -> Option<String> {
    let out = Command::new("man")
        .args(["-E", "UTF-8", "-P", "cat", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env_remove("MAN_KEEP_FORMATTING")
        .env_remove("MANPAGER")
        .env_remove("PAGER")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // Overstrikes (bold `x\bx`, underline `_\bx`) keep their last character.
    let mut text = String::with_capacity(out.stdout.len());
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    Some(text)
}

/// The page's description (its NAME section after the first " - ") and its text without the NAME section.
pub(crate) fn split_name(text: &str) -> Option<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim() == "NAME")?;
    let end =
        lines[start + 1..].iter().position(|l| !l.is_empty() && !l.starts_with(char::is_whitespace)).map_or(lines.len(), |i| start + 1 + i);
    let name = lines[start + 1..end].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    let (_, description) = name.split_once(" - ").or_else(|| name.split_once(" — "))?;
    let description = description.trim().to_owned();
    if description.split_whitespace().count() < 2 {
        return None;
    }
    let body: Vec<&str> = lines[..start].iter().chain(&lines[end..]).copied().collect();
    Some((description, body.join("\n")))
}

/// Section 1 and 8 pages, sorted, `PAGES` of them spread evenly.
fn pick_pages() -> Vec<PathBuf> {
    let mut all = Vec::new();
    for section in ["man1", "man8"] {
        if let Ok(entries) = std::fs::read_dir(Path::new(MAN_DIR).join(section)) {
            all.extend(entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    all.sort();
    if all.len() <= PAGES {
        return all;
    }
    let step = all.len() as f64 / PAGES as f64;
    (0..PAGES).map(|i| all[(i as f64 * step) as usize].clone()).collect()
}

/// Writes the corpus into `corpus` and returns the queries with their right answers (file names).
fn corpus(corpus: &Path) -> Result<Vec<(String, String)>, String> {
    let mut seen_queries = HashSet::new();
    let mut seen_bodies = HashSet::new();
    let mut duplicate_queries = HashSet::new();
    let mut pages = Vec::new();
    for page in pick_pages() {
        let Some(text) = render(&page) else { continue };
        let Some((query, body)) = split_name(&text) else { continue };
        if !seen_bodies.insert(body.clone()) {
            continue;
        }
        if !seen_queries.insert(query.to_lowercase()) {
            duplicate_queries.insert(query.to_lowercase());
        }
        let stem = page.file_name().and_then(|n| n.to_str()).unwrap_or("page").trim_end_matches(".gz").replace(['/', '\\'], "_");
        pages.push((query, format!("{stem}.txt"), body));
    }
    let mut queries = Vec::new();
    for (query, file, body) in pages {
        std::fs::write(corpus.join(&file), body).map_err(|err| format!("cannot write {file}: {err}"))?;
        if !duplicate_queries.contains(&query.to_lowercase()) {
            queries.push((query, file));
        }
    }
    Ok(queries)
}

/// The best rank (from 1) of `answer` among the first 10 distinct documents of `keys`.
pub(crate) fn rank_of(keys: &[String], answer: &str) -> Option<usize> {
    let mut distinct: Vec<&str> = Vec::new();
    for k in keys {
        if !distinct.contains(&k.as_str()) {
            distinct.push(k);
            if distinct.len() == 10 {
                break;
            }
        }
    }
    distinct.iter().position(|k| *k == answer).map(|i| i + 1)
}

/// Runs the benchmark in `dir` with the `col` binary `bin` (through `col`, a closure running it on the store).
pub(crate) fn retrieval(dir: &Path, col: &dyn Fn(&[&std::ffi::OsStr]) -> Result<(), String>) -> Result<RetrievalBench, String> {
    if !Path::new(MAN_DIR).is_dir() || Command::new("man").arg("--version").output().is_err() {
        return Ok(RetrievalBench::Skipped(format!("no {MAN_DIR} or no `man` program on this machine")));
    }
    let corpus_dir = dir.join("man-corpus");
    std::fs::create_dir_all(&corpus_dir).map_err(|err| format!("cannot create {}: {err}", corpus_dir.display()))?;
    super::step(&format!("rendering up to {PAGES} man pages into {}", corpus_dir.display()));
    let queries = corpus(&corpus_dir)?;
    if queries.len() < 20 {
        return Ok(RetrievalBench::Skipped(format!("only {} usable man pages on this machine", queries.len())));
    }
    let pages = std::fs::read_dir(&corpus_dir).map(|d| d.count()).unwrap_or(0);
    super::step(&format!("col init; col collection create man; col add man ({pages} pages); col sync"));
    col(&["init".as_ref()])?;
    col(&["collection".as_ref(), "create".as_ref(), "man".as_ref()])?;
    col(&["add".as_ref(), "man".as_ref(), corpus_dir.as_os_str(), "-q".as_ref()])?;
    col(&["sync".as_ref(), "-q".as_ref()])?;

    super::step(&format!("{} known-item queries in each mode, in process", queries.len()));
    let store_path = dir.join("retrieval-store");
    let store_dir = colstore_wiring::StoreDir::at(&store_path).ok_or_else(|| format!("no store in {}", store_path.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|err| format!("no tokio runtime: {err}"))?;
    let modes = runtime.block_on(async {
        let store = Store::open(store_dir, &|_| None).await.map_err(|err| format!("cannot open {}: {err}", store_path.display()))?;
        let ports = store.sync_ports(&|_| None).await.map_err(|err| format!("cannot build the search ports: {err}"))?;
        let collection = CollectionName::parse("man").map_err(|err| err.to_string())?;
        let mut modes = Vec::new();
        let mut rankings: Vec<Vec<Vec<(String, u32)>>> = Vec::new();
        for (name, mode) in [("keyword", SearchMode::Keyword), ("vector", SearchMode::Vector), ("hybrid", SearchMode::Hybrid)] {
            let opts = SearchOptions { mode, k: CHUNKS_ASKED, filter: None };
            // One untimed query loads what a long-running process keeps loaded.
            colstore_app::search(&ports, &collection, "warm up", &opts).await.map_err(|err| format!("{name} search: {err}"))?;
            let (mut at_1, mut at_10, mut reciprocal) = (0usize, 0usize, 0f64);
            let mut latencies = Vec::with_capacity(queries.len());
            let mut lists = Vec::with_capacity(queries.len());
            for (query, answer) in &queries {
                let started = Instant::now();
                let found = colstore_app::search(&ports, &collection, query, &opts)
                    .await
                    .map_err(|err| format!("{name} search {query:?}: {err}"))?;
                latencies.push(started.elapsed());
                lists.push(found.hits.iter().map(|h| (h.key.clone(), h.chunk)).collect::<Vec<_>>());
                let keys: Vec<String> = found.hits.into_iter().map(|h| h.key).collect();
                if let Some(rank) = rank_of(&keys, answer) {
                    at_1 += usize::from(rank == 1);
                    at_10 += 1;
                    reciprocal += 1.0 / rank as f64;
                }
            }
            let n = queries.len() as f64;
            rankings.push(lists);
            modes.push(ModeFigures {
                mode: name,
                recall_1: at_1 as f64 / n,
                recall_10: at_10 as f64 / n,
                mrr_10: reciprocal / n,
                latencies,
            });
        }
        Ok::<_, String>((modes, rankings))
    })?;
    let (modes, rankings) = modes;
    let calibration = calibrate(&queries, &rankings[0], &rankings[1]);
    Ok(RetrievalBench::Measured { pages, queries: queries.len(), modes, calibration })
}

/// MRR@10 of reciprocal rank fusion of the keyword and vector rankings over a grid of settings.
fn calibrate(queries: &[(String, String)], keyword: &[Vec<(String, u32)>], vector: &[Vec<(String, u32)>]) -> Vec<Calibration> {
    let mut out = Vec::new();
    for rrf_k in [1u32, 5, 10, 20, 40, 60] {
        for vector_weight in [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0] {
            let mut reciprocal = 0.0;
            for (i, (_, answer)) in queries.iter().enumerate() {
                let keys = fused(&keyword[i], &vector[i], rrf_k, vector_weight);
                if let Some(rank) = rank_of(&keys, answer) {
                    reciprocal += 1.0 / rank as f64;
                }
            }
            out.push(Calibration { rrf_k, vector_weight, mrr_10: reciprocal / queries.len().max(1) as f64 });
        }
    }
    out
}

/// The keys of `keyword` and `vector` fused as `col search` fuses them (keyword weight 1), best first.
pub(crate) fn fused(keyword: &[(String, u32)], vector: &[(String, u32)], rrf_k: u32, vector_weight: f64) -> Vec<String> {
    let mut scores: std::collections::BTreeMap<(String, u32), f64> = std::collections::BTreeMap::new();
    for (weight, list) in [(1.0, keyword), (vector_weight, vector)] {
        for (i, hit) in list.iter().enumerate() {
            *scores.entry(hit.clone()).or_default() += weight / (f64::from(rrf_k) + i as f64 + 1.0);
        }
    }
    let mut ranked: Vec<((String, u32), f64)> = scores.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.into_iter().map(|((key, _), _)| key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_section_becomes_the_query_and_leaves_the_page() {
        let page = "LS(1)                 User Commands                LS(1)\n\nNAME\n       ls - list directory\n       contents\n\nSYNOPSIS\n       ls [OPTION]...\n";
        let (query, body) = split_name(page).unwrap();
        assert_eq!(query, "list directory contents");
        assert!(!body.contains("list directory") && body.contains("SYNOPSIS") && body.contains("LS(1)"), "{body}");
        assert!(split_name("NAME\n       x - y\n").is_none(), "a one-word description is no query");
        assert!(split_name("no sections at all").is_none());
    }

    #[test]
    fn ranks_count_documents_not_chunks() {
        let keys: Vec<String> = ["a", "a", "b", "c", "b", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(rank_of(&keys, "a"), Some(1));
        assert_eq!(rank_of(&keys, "c"), Some(3));
        assert_eq!(rank_of(&keys, "d"), Some(4));
        assert_eq!(rank_of(&keys, "z"), None);
        let many: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
        assert_eq!(rank_of(&many, "k10"), None, "only the first 10 documents count");
    }
}
