//! The command line: clap definitions only, no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// colstore keeps collections of documents, their metadata and their vectors consistent, searchable and safe.
///
/// A store is a `.colstore/` directory, found like git finds `.git/`: `--store DIR`, else `COLSTORE_DIR`,
/// else the working directory or its nearest parent that has one.
#[derive(Debug, Parser)]
#[command(name = "col", version, propagate_version = true, max_term_width = 110)]
#[command(after_help = "Examples:\n  col demo\n  col init && col collection create notes && col add notes ~/notes\n  \
col sync && col search notes \"how do backups work\"\n\n\
Start with `col demo` to see everything on a throw-away store, or `col init` to make your own.\n\
The same program is installed as `colstore` too, for systems where `col` is util-linux's column filter.\n\
Exit codes: 0 ok, 1 error, 2 usage error, 3 verification failure.")]
pub struct Cli {
    /// Use the store in DIR (the directory holding .colstore/, or .colstore/ itself)
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// Print machine-readable JSON on stdout (shapes are documented in docs/CLI.md)
    #[arg(long, global = true)]
    pub json: bool,

    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Print more about what happens (-vv for debug logs; RUST_LOG is honoured too)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new store in DIR (default: the working directory)
    #[command(
        after_help = "Examples:\n  col init\n  col init ~/notes-store\n  col init --mode filesystem\n  col init --mode filesystem --docs-dir ~/notes\n  \
col init --vectors qdrant://127.0.0.1:6333\n  QDRANT_API_KEY=... col init --vectors qdrant+https://xyz.cloud.qdrant.io\n  col init --vectors weaviate://localhost:8080\n\n\
The store goes in DIR/.colstore/: config.toml and the SQLite database. In filesystem mode the documents are plain\n\
files in DOCS-DIR/<collection>/ that you may edit with any tool; `col reconcile` (and `col sync`) pick up the edits.\n\
Vectors go to the embedded index in the store unless --vectors names a Qdrant or Weaviate server; its collections\n\
are named cs_<short store id>_<collection>, so many stores can share one server. API keys are read from\n\
QDRANT_API_KEY / WEAVIATE_API_KEY (or the variable [vectors] api_key_env names), never from the config file."
    )]
    Init(InitArgs),

    /// Create, list, show or delete collections
    #[command(
        subcommand,
        after_help = "Examples:\n  col collection create notes\n  col collection list\n  col collection show notes\n  \
col collection set notes --chunk-size 800\n  col collection delete notes --dry-run"
    )]
    Collection(CollectionCommand),

    /// Write one document from a file, stdin or --text
    #[command(after_help = "Examples:\n  col put notes ideas.md ./ideas.md\n  echo hello | col put notes hello.txt -\n  \
col put notes todo.md --text '- buy milk' --meta '{\"lang\":\"en\"}' --tag home")]
    Put(PutArgs),

    /// Print a document's content (or its description with --meta-only / --json)
    #[command(after_help = "Examples:\n  col get notes ideas.md\n  col get notes ideas.md -o ideas.md\n  col get notes ideas.md --meta-only\n  \
col get notes ideas.md --json\n\n\
-o FILE writes through a symbolic link (the link stays) and straight into a device or FIFO; `-o -` is stdout.")]
    Get(GetArgs),

    /// Delete documents (a safety copy of the database is taken first)
    #[command(after_help = "Examples:\n  col rm notes ideas.md\n  col rm notes drafts/a.md drafts/b.md --dry-run")]
    Rm(RmArgs),

    /// List documents without loading their content
    #[command(
        after_help = "Examples:\n  col ls notes\n  col ls notes --where 'lang=en and (tag:home or year>=2020)'\n  \
col ls notes --where 'key:drafts/ and not author exists' --sort updated --desc --limit 20\n  \
col ls notes --limit 100 --json   (then: col ls notes --limit 100 --after NEXT)\n\n\
The filter language (--where; repeated --where must all hold):\n  \
metadata:   lang=en  lang!=en  year>2000  year>=2000  year<2000  year<=2000\n              \
author.name=Ann  'lang in en,fr'  'author exists'  'author missing'\n              \
title=\"two words\" (quote values with spaces)  year=\"2021\" (a string)\n  \
qualifiers: tag:home  key:drafts/ (key prefix)  created:>=7d  updated:<2026-01-01\n              \
updated:2026-01-01..2026-02-01 (from, until)\n  \
combine:    and  or  not  ( )   e.g. 'lang=en and not (tag:draft or year<2000)'\n\
Times: 2024-05-01, 2024-05-01T12:00:00Z, or an age: 30m, 2h, 7d (created:>=7d: the last 7 days).\n\
Quote the whole expression for the shell. --after pages by cursor: stable while others write,\n\
unlike --offset."
    )]
    Ls(LsArgs),

    /// Add files and folders recursively (key = path relative to each PATH)
    #[command(after_help = "Examples:\n  col add notes ~/notes\n  col add notes ./docs --include '**/*.md' --exclude 'drafts/**'\n  \
col add notes README.md --prefix imported/\n\n.colstore, .git, .hg and .svn folders and symbolic links are skipped.\n\
The YAML front matter of Markdown files (.md, .markdown, .mdx: a block between `---` lines at the top) becomes their \
metadata, so `title: Ideas` and `lang: en` are found by `col ls notes --where lang=en`; --meta wins for keys in both, \
and --no-front-matter turns it off. Ctrl-C stops after the batches being written and says what was added (exit 130).")]
    Add(AddArgs),

    /// Show document counts and storage figures (dedup and compression ratios)
    #[command(after_help = "Examples:\n  col stats\n  col stats notes\n  col stats --json")]
    Stats(StatsArgs),

    /// Re-hash all content (exit code 3 names every corrupt document) and check the full-text index against the
    /// documents; --index checks the vector index instead
    #[command(after_help = "Examples:\n  col verify\n  col verify notes\n  col verify --repair        re-index full-text drift from the documents\n  col verify --index\n  col verify --index --repair")]
    Verify(VerifyArgs),

    /// Remove stored content that no document references any more
    #[command(after_help = "Examples:\n  col gc --dry-run\n  col gc")]
    Gc(GcArgs),

    /// Make the store's files complete on disk (database log checkpointed, each vector index flushed), step by step
    #[command(after_help = "Examples:\n  col flush\n  col flush --collection notes --json\n\n\
Everything colstore acknowledged is already durable; after `col flush` the store's directory can also be copied file\n\
by file (no write-ahead log needed beside the database). The embedded index checkpoints its database; a Qdrant\n\
collection is flushed by creating a snapshot and deleting it again. Safe while other commands run: a step that a\n\
concurrent reader cuts short says so.")]
    Flush(FlushArgs),

    /// Project pending documents into the vector index (chunk, embed once, upsert, retire stale points)
    #[command(
        after_help = "Examples:\n  col sync\n  col sync notes\n\nEvery chunk is embedded once: vectors are cached in the store, so re-syncs, retries,\n\
crashes and `col reindex` reuse them. Failed documents are retried; see `col status`."
    )]
    Sync(SyncArgs),

    /// Show sync status: storage mode, index backend and health, pending/synced/failed counts, last errors
    #[command(after_help = "Examples:\n  col status\n  col status notes\n  col status --json")]
    Status(StatusArgs),

    /// Search a collection by meaning (embeds the query and asks the vector index)
    #[command(after_help = "Examples:\n  col search notes \"how do backups work\"\n  col search notes wal -k 3 --where 'lang=en and not tag:draft'\n  \
col search notes '\"write ahead log\" checkpoint*' --mode keyword\n  col search notes -- '-v flag'   (a query starting with -)\n\n\
Modes: hybrid (the default) asks full-text search and the vector index and fuses their rankings (reciprocal rank\n\
fusion; each hit says which side found it and its rank there); keyword ranks chunks by BM25 over their words\n\
(\"exact phrases\", prefix* words; any word may match, more and rarer words rank higher; case and accents do not\n\
matter); vector asks the vector index for the nearest chunks. Keyword search works before the first `col sync`;\n\
vector search needs it. --where takes the filter language of `col ls --where` (see `col ls --help`).\n\
Scores: hybrid, the fused score; keyword, BM25; vector, the collection's distance (cosine similarity by default).")]
    Search(SearchArgs),

    /// Rebuild a collection's projection from the embedding cache, or move it into another vector index
    #[command(after_help = "Examples:\n  col reindex notes\n  col reindex notes --to qdrant://127.0.0.1:6333\n  \
col reindex notes --to weaviate://localhost:8080 --keep-old\n  col reindex notes --to embedded\n\n\
Without --to, the collection's projection is dropped and rebuilt in the same index (vectors from the cache).\n\
With --to, the collection is projected into the new index from the embedding cache with no embedder call, the new\n\
projection is checked against the ledger (every point, with its content hash), and only then does the collection\n\
switch to it; the old projection is dropped after the switch unless --keep-old. Searches keep working throughout.\n\
Documents whose vectors are not in the cache are left for the next `col sync`.")]
    Reindex(ReindexArgs),

    /// List, show, retry or cancel background jobs (default: list)
    #[command(after_help = "Examples:\n  col jobs\n  col jobs list --state dead\n  col jobs show 12\n  col jobs retry 12\n  col jobs cancel 12")]
    Jobs(JobsArgs),

    /// Back up the store (verified, deduplicated); list, show, verify, prune or delete backups
    #[command(
        after_help = "Examples:\n  col backup\n  col backup --collection notes --tag before-upgrade\n  col backup --to s3://my-bucket/colstore\n  \
col backup list\n  col backup verify 20261122T101500Z-1a2b3c4d --read-data\n  col backup prune --keep-last 5 --keep-daily 7 --dry-run\n\n\
The repository is [backup] repository in .colstore/config.toml (default file://backups, i.e. .colstore/backups/),\n\
or COLSTORE_BACKUP_REPOSITORY. s3:// uses AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL.\n\
After each backup, the newest [backup] keep_last backups are kept (default 10)."
    )]
    Backup(BackupArgs),

    /// Restore a backup: print the plan, take a safety backup, write it back, verify
    #[command(
        after_help = "Examples:\n  col restore 20261122T101500Z-1a2b3c4d --dry-run\n  col restore 20261122T101500Z-1a2b3c4d --collection notes --yes\n  \
col restore 20261122T101500Z-1a2b3c4d --mode merge --yes\n  col restore 20261122T101500Z-1a2b3c4d --to-store ./copy --yes\n\n\
replace (default): each restored collection becomes exactly the backup's; a safety backup is taken first.\n\
merge: adds what is missing; a document in both takes the backup's version unless the store's copy changed later."
    )]
    Restore(RestoreArgs),

    /// Delete every document of a collection (or with --drop, the collection itself), after a safety backup
    #[command(after_help = "Examples:\n  col clear notes --dry-run\n  col clear notes --yes\n  col clear --all --drop --yes")]
    Clear(ClearArgs),

    /// Write collections (settings, documents, metadata, tags, vectors) to one portable file
    #[command(after_help = "Examples:\n  col export -o all.colstore\n  col export --collection notes -o notes.colstore\n  \
col export --collection notes --where 'tag:published and updated:>=30d' -o recent.colstore\n  \
col export -o - | col --store ../copy import - --yes\n\n\
--where takes the filter language of `col ls --where`. A filtered file holds only the matching documents and says so:\n\
importing it adds and updates those documents and never deletes the ones it lacks, even in replace mode.\n\
The file is zstd-compressed JSON lines, versioned; the format is in docs/EXPORT-FORMAT.md. A regular file is replaced\n\
atomically when complete; a symbolic link is written through (it stays a link); a device or FIFO is written\n\
straight; `-o -` writes to stdout (the summary then goes to stderr).")]
    Export(ExportArgs),

    /// Read a file written by `col export`, or adopt a collection that lives in Qdrant or Weaviate
    #[command(after_help = "Examples:\n  col import notes.colstore --dry-run\n  col import notes.colstore --mode merge --yes\n  \
col export -o - | col --store ../copy import - --yes\n  \
col import qdrant://localhost:6333/articles --into articles --text-field body --embedder openai:text-embedding-3-small --dry-run\n  \
col import weaviate://localhost:8080/Article --into articles --text-field body --key-field url --embedder hash:v1\n\n\
A file: `-` reads standard input (copied to a temporary file first, since the file is checked whole before it is\n\
written). replace (default): each collection in the file becomes exactly the file's; merge: adds what is missing\n\
and, for a document in both, takes the file's version unless the store's copy changed later.\n\n\
A remote collection (qdrant://HOST:6333/NAME, weaviate://HOST:8080/Class, +https for TLS; API key from\n\
QDRANT_API_KEY / WEAVIATE_API_KEY): every object becomes one document (text from --text-field, the rest of the\n\
payload as metadata, the source id under --id-field) and its vector goes into the embedding cache under --embedder,\n\
which must be the store's [embedder]: `col sync` then projects it with no embedder call. The source is only read.\n\
Objects without the text field (or a vector) are skipped and listed; --strict refuses the whole import instead.\n\
Running it again resumes or refreshes (unchanged documents are not written).")]
    Import(ImportArgs),

    /// Filesystem mode: find files added, edited, moved or deleted in the collections' folders and record them
    #[command(after_help = "Examples:\n  col reconcile --dry-run\n  col reconcile notes\n  col reconcile notes --force\n\n\
Files whose size, modification time and inode are unchanged are not read; others are hashed. A file with the same\n\
content under a new name is a rename: the document keeps its metadata and no text is embedded again.\n\
Refused without --force: a missing or empty folder, or deleting more than [storage] reconcile_max_delete_percent\n\
(default 50) of a collection. Unreadable files are reported and their documents left as they are.\n\
`col sync` reconciles first; `col status` shows what is not reconciled.")]
    Reconcile(ReconcileArgs),

    /// Filesystem mode: reconcile and sync whenever files change in the collections' folders, until Ctrl-C
    #[command(after_help = "Examples:\n  col watch\n  col watch notes --debounce-ms 500\n  col watch --poll 5\n\n\
Uses file-system notifications (inotify), or polling when those are unavailable (network file systems) or with\n\
--poll. A burst of changes (an editor's save, a git checkout) is reconciled once, after --debounce-ms of quiet.\n\
Ctrl-C stops after the current round; a second Ctrl-C stops at once (every step is crash-safe).")]
    Watch(WatchArgs),

    /// Move the store's content between the storage modes (after a safety backup; verified before the switch)
    #[command(
        after_help = "Examples:\n  col migrate --to filesystem --dry-run\n  col migrate --to filesystem --docs-dir ~/notes\n  col migrate --to sqlite\n\n\
Metadata, tags, the sync ledger and the embedding cache stay in the database; only the content moves. The copy is\n\
verified in the new mode before config.toml switches, so an interrupted migration leaves the store in its old mode\n\
(run it again to finish). To sqlite, the folders must be reconciled first, and the files are left in place."
    )]
    Migrate(MigrateArgs),

    /// Run the main job on a throw-away store: init, add, ls, stats, verify, sync, search, backup, clear, restore
    #[command(after_help = "Examples:\n  col demo\n  col demo --keep /tmp/colstore-demo")]
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    #[command(flatten)]
    pub create: BackupCreateArgs,
}

#[derive(Debug, Args)]
pub struct BackupCreateArgs {
    /// Only this collection (repeatable; default: every collection)
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Only collection definitions and settings, no documents
    #[arg(long)]
    pub schema_only: bool,
    /// Show what would be stored, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Back up to this repository instead of the configured one
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// Record a tag with the backup (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// List backups, oldest first: time, age, scope, size and new bytes
    #[command(alias = "ls", after_help = "Examples:\n  col backup list\n  col backup list --repo s3://my-bucket/colstore")]
    List {
        /// Repository (default: the configured one)
        #[arg(long, value_name = "URL")]
        repo: Option<String>,
    },
    /// Show one backup's manifest
    #[command(after_help = "Examples:\n  col backup show 20261122T101500Z-1a2b3c4d\n  col backup show 20261122T101500Z-1a2b3c4d --json")]
    Show {
        /// The backup id
        id: String,
        /// Repository (default: the configured one)
        #[arg(long, value_name = "URL")]
        repo: Option<String>,
    },
    /// Check a backup (exit code 3 names every damaged object)
    #[command(after_help = "Examples:\n  col backup verify\n  col backup verify 20261122T101500Z-1a2b3c4d --read-data")]
    Verify {
        /// The backup id (default: the newest)
        id: Option<String>,
        /// Also read every object and re-hash every blob
        #[arg(long)]
        read_data: bool,
        /// Repository (default: the configured one)
        #[arg(long, value_name = "URL")]
        repo: Option<String>,
    },
    /// Remove backups a keep policy does not keep, then unreferenced objects
    #[command(after_help = "Examples:\n  col backup prune --keep-last 5 --dry-run\n  col backup prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12")]
    Prune {
        /// Keep the newest N backups
        #[arg(long, value_name = "N")]
        keep_last: Option<u32>,
        /// Keep the newest backup of each of the last N days
        #[arg(long, value_name = "N")]
        keep_daily: Option<u32>,
        /// Keep the newest backup of each of the last N weeks
        #[arg(long, value_name = "N")]
        keep_weekly: Option<u32>,
        /// Keep the newest backup of each of the last N months
        #[arg(long, value_name = "N")]
        keep_monthly: Option<u32>,
        /// Show what would be removed, change nothing
        #[arg(long)]
        dry_run: bool,
        /// Repository (default: the configured one)
        #[arg(long, value_name = "URL")]
        repo: Option<String>,
    },
    /// Delete one backup, then objects no other backup needs
    #[command(alias = "rm", after_help = "Examples:\n  col backup delete 20261122T101500Z-1a2b3c4d --dry-run\n  col backup delete 20261122T101500Z-1a2b3c4d")]
    Delete {
        /// The backup id
        id: String,
        /// Show what would be removed, change nothing
        #[arg(long)]
        dry_run: bool,
        /// Repository (default: the configured one)
        #[arg(long, value_name = "URL")]
        repo: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestoreModeArg {
    Replace,
    Merge,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup id (`col backup list`); `latest` for the newest
    pub id: String,
    /// Only this collection (repeatable; default: every collection in the backup)
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// replace: collections become exactly the backup's; merge: upsert, keep newer store copies
    #[arg(long, value_enum, default_value_t = RestoreModeArg::Replace)]
    pub mode: RestoreModeArg,
    /// Print the plan, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before a restore overwrites or deletes documents (it asks only then, and refuses without a terminal)
    #[arg(short, long)]
    pub yes: bool,
    /// Restore into the store in DIR (created if missing) instead of this one
    #[arg(long, value_name = "DIR")]
    pub to_store: Option<PathBuf>,
    /// Repository (default: the configured one)
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// Skip the safety backup before a replace (not recommended)
    #[arg(long)]
    pub no_backup: bool,
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    /// The collection to clear
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub collection: Option<String>,
    /// Clear every collection
    #[arg(long)]
    pub all: bool,
    /// Delete the collection itself too, not only its documents
    #[arg(long)]
    pub drop: bool,
    /// Show what would be deleted, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,
    /// Skip the safety backup (not recommended)
    #[arg(long)]
    pub no_backup: bool,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Only this collection (default: every collection)
    pub collection: Option<String>,
    /// Leave documents that failed before alone
    #[arg(long)]
    pub skip_failed: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this collection
    pub collection: Option<String>,
}

/// How hybrid search fuses keyword and vector ranks (`col collection set`).
#[derive(Debug, Args, Default)]
pub struct FusionArgs {
    /// Hybrid search: the rank constant of reciprocal rank fusion (0–10000; larger flattens rank differences)
    #[arg(long, value_name = "N")]
    pub rrf_k: Option<u32>,
    /// Hybrid search: the weight of keyword ranks (0–100)
    #[arg(long, value_name = "W")]
    pub keyword_weight: Option<f64>,
    /// Hybrid search: the weight of vector ranks (0–100)
    #[arg(long, value_name = "W")]
    pub vector_weight: Option<f64>,
    /// Hybrid search: back to the defaults of the collection's embedder
    #[arg(long, conflicts_with_all = ["rrf_k", "keyword_weight", "vector_weight"])]
    pub default_fusion: bool,
}

impl FusionArgs {
    pub fn given(&self) -> bool {
        self.rrf_k.is_some() || self.keyword_weight.is_some() || self.vector_weight.is_some() || self.default_fusion
    }
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The collection
    pub collection: String,
    /// What to look for
    pub query: String,
    /// How many results
    #[arg(short, long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub k: u16,
    /// Only chunks of documents that match EXPR, in the filter language of `col ls --where` (repeatable)
    #[arg(long = "where", value_name = "EXPR")]
    pub filters: Vec<String>,
    /// hybrid (keyword + vector, fused), keyword (full text) or vector (nearest chunks)
    #[arg(long, value_enum, default_value_t = SearchModeArg::Hybrid)]
    pub mode: SearchModeArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchModeArg {
    Hybrid,
    Keyword,
    Vector,
}

#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// The collection
    pub collection: String,
    /// Move the collection into another vector index: embedded, qdrant://HOST[:6333], weaviate://HOST[:8080], or
    /// qdrant+https://… / weaviate+https://… (default: rebuild it where it is)
    #[arg(long, value_name = "TARGET")]
    pub to: Option<String>,
    /// With --to: keep the old projection instead of dropping it after the switch
    #[arg(long, requires = "to")]
    pub keep_old: bool,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first
    #[command(alias = "ls", after_help = "Examples:\n  col jobs list\n  col jobs list --state dead --limit 10")]
    List {
        /// Only jobs in this state (pending, running, done, dead, cancelled)
        #[arg(long)]
        state: Option<String>,
        /// At most N jobs
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Show one job with its error history
    #[command(after_help = "Examples:\n  col jobs show 12\n  col jobs show 12 --json")]
    Show {
        /// The job id
        id: i64,
    },
    /// Make a dead or cancelled job pending again
    #[command(after_help = "Examples:\n  col jobs retry 12\n  col jobs list --state dead")]
    Retry {
        /// The job id
        id: i64,
    },
    /// Cancel a pending or running job
    #[command(after_help = "Examples:\n  col jobs cancel 12\n  col jobs list --state running")]
    Cancel {
        /// The job id
        id: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Content in the SQLite database, content-addressed and compressed (default)
    Sqlite,
    /// Content as plain files you can edit (one folder per collection), metadata in SQLite
    Filesystem,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Only this collection (default: all)
    pub collection: Option<String>,
    /// Print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Apply even a plan the safety checks refuse (missing or empty folder, too many deletions)
    #[arg(long)]
    pub force: bool,
    /// Refuse plans deleting more than this percentage of a collection (default: [storage] reconcile_max_delete_percent)
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub max_delete: Option<u8>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only this collection (default: all)
    pub collection: Option<String>,
    /// Wait this long without changes before reconciling a burst
    #[arg(long, value_name = "MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub debounce_ms: u64,
    /// Poll every SECONDS instead of using file-system notifications
    #[arg(long, value_name = "SECONDS", value_parser = parse_poll)]
    pub poll: Option<f64>,
}

fn parse_poll(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.05..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a polling interval; give seconds between 0.05 and 3600, e.g. --poll 2")),
    }
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The storage mode to move to
    #[arg(long, value_enum)]
    pub to: ModeArg,
    /// To filesystem mode: the folder to hold one folder of files per collection (default: .colstore/docs)
    #[arg(long, value_name = "PATH")]
    pub docs_dir: Option<PathBuf>,
    /// Print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Skip the safety backup
    #[arg(long)]
    pub no_backup: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create the store (default: the working directory)
    pub dir: Option<PathBuf>,
    /// Storage mode (default: COLSTORE_STORAGE_MODE or COLLECTION_STORAGE_MODE, else sqlite)
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Filesystem mode: the folder holding one folder of files per collection, e.g. an existing notes folder
    /// (default: COLSTORE_FILESYSTEM_PATH or COLLECTION_FILESYSTEM_PATH, else .colstore/docs)
    #[arg(long, value_name = "PATH")]
    pub docs_dir: Option<PathBuf>,
    /// Where the vectors go: embedded (the default), qdrant://HOST[:6333], weaviate://HOST[:8080], or
    /// qdrant+https://… / weaviate+https://… for TLS
    #[arg(long, value_name = "TARGET")]
    pub vectors: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Create a collection (name: a-z, 0-9, '_' and '-', up to 63 characters)
    #[command(after_help = "Examples:\n  col collection create notes\n  col collection create papers --chunk-size 2000 --chunk-overlap 300 --distance dot\n  \
col collection create big --vectors qdrant://127.0.0.1:6333\n\n\
--vectors projects this collection into another index than the store's ([vectors] in config.toml). Its API key comes\n\
from QDRANT_API_KEY / WEAVIATE_API_KEY. To move an existing collection, use `col reindex NAME --to TARGET`.")]
    Create {
        /// The new collection's name
        name: String,
        #[command(flatten)]
        settings: SettingsArgs,
        /// The vector index for this collection when not the store's: embedded, qdrant://HOST[:6333],
        /// weaviate://HOST[:8080], or qdrant+https://… / weaviate+https://…
        #[arg(long, value_name = "TARGET")]
        vectors: Option<String>,
    },
    /// Change a collection's chunking, distance, vector index or hybrid search fusion; vectors come from the cache
    #[command(after_help = "Examples:\n  col collection set notes --chunk-size 800\n  col collection set notes --distance cosine && col sync notes\n  \
col collection set notes --vectors weaviate://127.0.0.1:8080\n  col collection set notes --vector-weight 0.5 --rrf-k 20\n  \
col collection set notes --default-fusion\n\n\
Chunking and distance: the next `col sync` re-projects the collection. --vectors moves it to another index now, as\n\
`col reindex NOTES --to TARGET` does: written from the embedding cache, verified, then switched; the old projection\n\
is dropped. --vectors is given alone (change the other settings in a second call). Fusion settings change how hybrid\n\
`col search` ranks, at once, and need no sync; values not given are kept (or taken from the embedder's defaults).")]
    Set {
        /// The collection
        name: String,
        #[command(flatten)]
        settings: SettingsArgs,
        /// Move the collection to this vector index: embedded, qdrant://HOST[:6333], weaviate://HOST[:8080], or
        /// qdrant+https://… / weaviate+https://…
        #[arg(long, value_name = "TARGET")]
        vectors: Option<String>,
        #[command(flatten)]
        fusion: FusionArgs,
    },
    /// Index a metadata field so `--where` filters on it are lookups, not a walk of every document
    #[command(after_help = "Examples:\n  col collection index notes year\n  col collection index notes author.name\n  \
col collection index notes year --drop\n\n\
Only speed changes: `col ls --where`, `col search --where` and `col export --where` give the same documents with or\n\
without the index. Indexing reads every document's metadata once, in one transaction; afterwards each write keeps\n\
it. Tags (`tag:x`), keys (`key:prefix`) and times (`updated:>=7d`) are always indexed. `col collection show` lists\n\
the indexed fields.")]
    Index {
        /// The collection
        name: String,
        /// The metadata field (a dotted path like `author.name`; letters, digits, '_' and '-' per segment)
        field: String,
        /// Drop the field's index instead
        #[arg(long)]
        drop: bool,
    },
    /// List collections with their document counts
    #[command(alias = "ls", after_help = "Examples:\n  col collection list\n  col collection list --json")]
    List,
    /// Show one collection's settings and figures
    #[command(after_help = "Examples:\n  col collection show notes\n  col collection show notes --json")]
    Show {
        /// The collection
        name: String,
    },
    /// Delete a collection and all its documents (a safety copy of the database is taken first)
    #[command(alias = "rm", after_help = "Examples:\n  col collection delete notes --dry-run\n  col collection delete notes --yes")]
    Delete {
        /// The collection
        name: String,
        /// Show what would be deleted, change nothing
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation
        #[arg(short, long)]
        yes: bool,
        /// Skip the safety copy (not recommended)
        #[arg(long)]
        no_backup: bool,
    },
}

/// Per-collection settings.
#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    /// Chunk size in characters (default 1200)
    #[arg(long, value_name = "CHARS")]
    pub chunk_size: Option<u32>,
    /// Characters shared by consecutive chunks (default 200)
    #[arg(long, value_name = "CHARS")]
    pub chunk_overlap: Option<u32>,
    /// Vector distance: cosine (default), dot or euclid
    #[arg(long)]
    pub distance: Option<String>,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The collection
    pub collection: String,
    /// The document key: a relative path like notes/a.md
    pub key: String,
    /// Read content from FILE ('-' reads stdin)
    #[arg(conflicts_with = "text")]
    pub file: Option<PathBuf>,
    /// Use TEXT as the content
    #[arg(long, allow_hyphen_values = true)]
    pub text: Option<String>,
    /// Metadata as a JSON object, e.g. '{"lang":"en"}'
    #[arg(long, value_name = "JSON")]
    pub meta: Option<String>,
    /// A tag (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The collection
    pub collection: String,
    /// The document key
    pub key: String,
    /// Print the description (key, hash, size, metadata, tags, version, times) instead of the content
    #[arg(long)]
    pub meta_only: bool,
    /// Write the content to FILE instead of stdout (through a symbolic link; `-` is stdout)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The collection
    pub collection: String,
    /// Keys to delete
    #[arg(required = true)]
    pub keys: Vec<String>,
    /// Show what would be deleted, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Skip the safety copy of the database (not recommended)
    #[arg(long)]
    pub no_backup: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    Key,
    Updated,
    Created,
    Size,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// The collection
    pub collection: String,
    /// Only documents with this tag (repeatable: all must be present)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only documents that match EXPR, in the filter language below (repeatable: all must hold)
    #[arg(long = "where", value_name = "EXPR")]
    pub filters: Vec<String>,
    /// Only documents whose key starts with PREFIX
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only documents updated at or after TIME
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only documents updated before TIME
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Sort by
    #[arg(long, value_enum, default_value_t = SortArg::Key)]
    pub sort: SortArg,
    /// Reverse the order (largest, newest or last key first)
    #[arg(long)]
    pub desc: bool,
    /// At most N documents
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Skip the first N matching documents
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offset: u64,
    /// Continue after CURSOR: the `next` of a previous `--json` listing with the same filters and sort
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The collection
    pub collection: String,
    /// Files and folders to add
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Only add files whose relative path matches GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files whose relative path matches GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Prepend PREFIX to every key
    #[arg(long)]
    pub prefix: Option<String>,
    /// Metadata (JSON object) for every added document
    #[arg(long, value_name = "JSON")]
    pub meta: Option<String>,
    /// A tag for every added document (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Do not read the YAML front matter of Markdown files into their metadata
    #[arg(long)]
    pub no_front_matter: bool,
    /// Create the collection if it does not exist
    #[arg(long)]
    pub create: bool,
    /// Show what would be added, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this collection (default: the whole store)
    pub collection: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only this collection (default: the whole store)
    pub collection: Option<String>,
    /// Compare the sync ledger with what the vector index holds (missing, stale and orphan points)
    #[arg(long)]
    pub index: bool,
    /// Fix what was found: the full-text index from the documents; with --index, the vector index from the embedding
    /// cache (no embedder calls). Corrupt contents are never "repaired": restore them from a backup
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
pub struct FlushArgs {
    /// Only this collection's vector index (repeatable; default: every collection). The store's database is always
    /// flushed
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Show what would be removed, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo store in DIR instead of a temporary directory
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this collection (repeatable; default: every collection)
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// The file to write (a regular file is replaced atomically when complete; `-` is stdout)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Only documents that match EXPR, in the filter language of `col ls --where` (repeatable: all must hold)
    #[arg(long = "where", value_name = "EXPR")]
    pub filters: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A file written by `col export` (`-` reads stdin), or a remote collection: qdrant://HOST:6333/NAME,
    /// weaviate://HOST:8080/Class
    #[arg(value_name = "SOURCE")]
    pub file: PathBuf,
    /// replace (default): collections become exactly the file's; merge: upsert, keep newer store copies (files only)
    #[arg(long, value_enum)]
    pub mode: Option<RestoreModeArg>,
    /// Check the source and print the plan (for a remote collection: counts and a sample), change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before an import overwrites or deletes documents (it asks only then, and refuses without a terminal)
    #[arg(short, long)]
    pub yes: bool,
    /// Skip the safety backup (not recommended)
    #[arg(long)]
    pub no_backup: bool,
    /// Remote: the collection of this store to write (created when missing)
    #[arg(long, value_name = "COLLECTION")]
    pub into: Option<String>,
    /// Remote: the payload field holding each object's text
    #[arg(long, value_name = "FIELD")]
    pub text_field: Option<String>,
    /// Remote: the payload field holding each document's key (default: the source id)
    #[arg(long, value_name = "FIELD")]
    pub key_field: Option<String>,
    /// Remote: the metadata field that keeps the source id
    #[arg(long, value_name = "FIELD", default_value = "source_id")]
    pub id_field: String,
    /// Remote: the embedder that made the vectors, KIND:MODEL (e.g. openai:text-embedding-3-small, hash:v1); it must
    /// be the store's [embedder]
    #[arg(long, value_name = "KIND:MODEL")]
    pub embedder: Option<String>,
    /// Remote: refuse the whole import (writing nothing) when any object cannot be adopted
    #[arg(long)]
    pub strict: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The README's quick start, `cargo run --release -p colstore-cli -- demo`, needs cargo to know which of the
    /// package's two binaries (`col`, `colstore`) to run: without `default-run` it refuses.
    #[test]
    fn cargo_run_of_this_package_runs_col() {
        let manifest = include_str!("../Cargo.toml");
        let bins = manifest.matches("[[bin]]").count();
        let default_run = manifest.lines().find_map(|l| l.trim().strip_prefix("default-run = ")).map(|v| v.trim_matches('"'));
        assert!(bins < 2 || default_run == Some("col"), "{bins} binaries and default-run {default_run:?}: set default-run = \"col\"");
    }

    /// Every command and subcommand's --help ends with examples (the README promises them).
    #[test]
    fn every_command_has_examples() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let has = cmd.get_after_help().or(cmd.get_after_long_help()).is_some_and(|h| h.to_string().contains("Examples:\n  col "));
            if !has {
                missing.push(path.to_owned());
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let cmd = Cli::command();
        walk(&cmd, "col", &mut missing);
        assert!(missing.is_empty(), "commands without an \"Examples:\" section in --help: {missing:?}");
        Cli::command().debug_assert();
    }
}
