//! [`StoreConfig`]: the store's `.colstore/config.toml`, its validation, and the environment overrides of PRODUCT §4.
//!
//! The file is written by hand-formatted text ([`StoreConfig::to_toml`]) so it stays commented and friendly to edit,
//! and read with serde (`deny_unknown_fields` everywhere), so a typo is an error that names the line, not a silently
//! ignored key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use colstore_domain::{Dimension, StoreId, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{ConfigFix, WiringError};

/// The config format this version of colstore reads and writes.
pub const CONFIG_FORMAT: u32 = 1;

/// A value that is not one of an enum's choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {value:?}, expected {expected}")]
pub struct UnknownChoice {
    /// What was given.
    pub value: String,
    /// The accepted values, for humans (`sqlite or filesystem`).
    pub expected: &'static str,
}

/// Defines a config enum with lowercase names, `as_str`, `Display` and a case-insensitive `FromStr`.
macro_rules! config_enum {
    ($(#[$doc:meta])* $name:ident, $expected:literal, { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in the order the docs list them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The accepted values, for messages.
            pub const EXPECTED: &'static str = $expected;

            /// The name used in config files and environment variables.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownChoice;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let t = s.trim();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(t))
                    .ok_or_else(|| UnknownChoice { value: s.to_owned(), expected: $expected })
            }
        }
    };
}

config_enum!(
    /// Where document content lives (PRODUCT §4).
    StorageMode, "sqlite or filesystem", {
        /// Content in SQLite, content-addressed and compressed (the default).
        Sqlite = "sqlite",
        /// Content as plain files under a folder, metadata in SQLite.
        Filesystem = "filesystem",
    }
);

config_enum!(
    /// Which vector index holds the store's points.
    VectorBackend, "embedded, qdrant or weaviate", {
        /// The in-process index (the default; needs no service).
        Embedded = "embedded",
        /// A Qdrant server over REST.
        Qdrant = "qdrant",
        /// A Weaviate server over REST.
        Weaviate = "weaviate",
    }
);

config_enum!(
    /// Which embedder turns text into vectors.
    EmbedderKind, "hash or openai", {
        /// The built-in, offline hash embedder (the default).
        Hash = "hash",
        /// An OpenAI-compatible HTTP embeddings API (OpenAI, Ollama, vLLM, ...).
        Openai = "openai",
    }
);

/// The store configuration, as stored in `.colstore/config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The file format; always [`CONFIG_FORMAT`] after a successful load.
    #[serde(deserialize_with = "de_format")]
    pub format: u32,
    /// The store's random identity.
    pub store_id: StoreId,
    /// When `col init` created the store.
    pub created_at: Timestamp,
    /// The absolute path of the `.colstore` directory when the store was created, to detect copied or moved stores.
    #[serde(deserialize_with = "de_path")]
    pub store_path: PathBuf,
    /// Where content and metadata live.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The vector index.
    #[serde(default)]
    pub vectors: VectorsConfig,
    /// The embedder.
    #[serde(default)]
    pub embedder: EmbedderConfig,
    /// Backups.
    #[serde(default)]
    pub backup: BackupConfig,
}

/// `[storage]`: where content and metadata live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The storage mode.
    #[serde(default = "default_mode")]
    pub mode: StorageMode,
    /// The SQLite database, relative to `.colstore` unless absolute.
    #[serde(default = "default_metadata_db", deserialize_with = "de_path")]
    pub metadata_db: PathBuf,
    /// Filesystem mode only: where document files live, relative to `.colstore` unless absolute (default `docs`).
    #[serde(default, deserialize_with = "de_opt_path", skip_serializing_if = "Option::is_none")]
    pub filesystem_path: Option<PathBuf>,
    /// Filesystem mode only: `col reconcile` refuses (without `--force`) to delete more than this percentage of a
    /// collection's documents (0–100, default 50).
    #[serde(default = "default_max_delete", deserialize_with = "de_percent")]
    pub reconcile_max_delete_percent: u8,
}

/// `[vectors]`: the vector index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorsConfig {
    /// Which backend.
    #[serde(default = "default_backend")]
    pub backend: VectorBackend,
    /// The server's URL (qdrant and weaviate).
    #[serde(default, deserialize_with = "de_opt_url", skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The name of the environment variable holding the API key (never the key itself).
    #[serde(default, deserialize_with = "de_opt_env_name", skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

/// `[embedder]`: how text becomes vectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderConfig {
    /// Which embedder.
    #[serde(default = "default_kind")]
    pub kind: EmbedderKind,
    /// The vector dimension it produces.
    #[serde(default = "default_dimension")]
    pub dimension: Dimension,
    /// The model name (openai).
    #[serde(default, deserialize_with = "de_opt_text", skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The API's base URL (openai).
    #[serde(default, deserialize_with = "de_opt_url", skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The name of the environment variable holding the API key (never the key itself).
    #[serde(default, deserialize_with = "de_opt_env_name", skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

/// `[backup]`: where backups go and how many are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// The backup repository: `file://DIR` (relative to `.colstore` unless absolute) or `s3://bucket/prefix`.
    #[serde(default = "default_repository", deserialize_with = "de_repository")]
    pub repository: String,
    /// How many backups retention keeps (at least 1).
    #[serde(default = "default_keep_last", deserialize_with = "de_keep_last")]
    pub keep_last: u32,
}

fn default_mode() -> StorageMode {
    StorageMode::Sqlite
}
fn default_backend() -> VectorBackend {
    VectorBackend::Embedded
}
fn default_kind() -> EmbedderKind {
    EmbedderKind::Hash
}
fn default_metadata_db() -> PathBuf {
    PathBuf::from("colstore.db")
}
fn default_dimension() -> Dimension {
    Dimension::new(384).expect("384 is a valid dimension")
}
fn default_repository() -> String {
    "file://backups".to_owned()
}
fn default_max_delete() -> u8 {
    50
}
fn de_percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let v = i64::deserialize(d)?;
    u8::try_from(v).ok().filter(|p| *p <= 100).ok_or_else(|| serde::de::Error::custom(format!("{v} is not a percentage; use 0 to 100")))
}
fn default_keep_last() -> u32 {
    10
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            mode: default_mode(),
            metadata_db: default_metadata_db(),
            filesystem_path: None,
            reconcile_max_delete_percent: default_max_delete(),
        }
    }
}

impl VectorBackend {
    /// The port a server of this backend listens on by default (Qdrant's REST port 6333, Weaviate's 8080).
    pub fn default_port(self) -> Option<u16> {
        match self {
            Self::Embedded => None,
            Self::Qdrant => Some(6333),
            Self::Weaviate => Some(8080),
        }
    }

    /// The environment variable read for the API key when `api_key_env` is not set.
    pub fn default_key_env(self) -> Option<&'static str> {
        match self {
            Self::Embedded => None,
            Self::Qdrant => Some("QDRANT_API_KEY"),
            Self::Weaviate => Some("WEAVIATE_API_KEY"),
        }
    }
}

impl VectorsConfig {
    /// Reads a vector target as `col init --vectors` takes it: `embedded`; `qdrant://HOST[:PORT]` or
    /// `weaviate://HOST[:PORT]` (plain HTTP, default ports 6333 and 8080); `qdrant+https://…` or `weaviate+https://…`
    /// for TLS. An optional path (a reverse proxy's prefix) is kept. The API key is never part of the target: it comes
    /// from `QDRANT_API_KEY` / `WEAVIATE_API_KEY` or the variable `api_key_env` names.
    ///
    /// # Errors
    /// A message saying what is wrong and showing the accepted forms.
    pub fn from_target(target: &str) -> Result<Self, String> {
        let t = target.trim();
        let forms = "use embedded, qdrant://HOST:6333, weaviate://HOST:8080, or qdrant+https://… / weaviate+https://… for TLS";
        if t.eq_ignore_ascii_case("embedded") {
            return Ok(Self::default());
        }
        let Some((scheme, rest)) = t.split_once("://") else {
            return Err(format!("{target:?} is not a vector target; {forms}"));
        };
        let (backend, tls) = match scheme.to_ascii_lowercase().as_str() {
            "qdrant" => (VectorBackend::Qdrant, false),
            "qdrant+https" => (VectorBackend::Qdrant, true),
            "weaviate" => (VectorBackend::Weaviate, false),
            "weaviate+https" => (VectorBackend::Weaviate, true),
            "http" | "https" => {
                return Err(format!("{target:?} does not say which engine it is; write qdrant://… or weaviate://… ({forms})"));
            }
            other => return Err(format!("{other:?} is not a vector backend; {forms}")),
        };
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            return Err(format!("{target:?} names no host; {forms}"));
        }
        if authority.contains('@') {
            // Not echoed: it holds a secret.
            return Err(format!(
                "the vector target holds credentials; put the API key in {} (or the variable [vectors] api_key_env names), never in the URL",
                backend.default_key_env().unwrap_or("an environment variable")
            ));
        }
        let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
        let port = if has_port { String::new() } else { format!(":{}", backend.default_port().unwrap_or(80)) };
        let path = path.trim_end_matches('/');
        let url = format!("{}://{authority}{port}{}{path}", if tls { "https" } else { "http" }, if path.is_empty() { "" } else { "/" });
        let parsed = url::Url::parse(&url).map_err(|e| format!("{target:?} is not a valid URL: {e}"))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(format!("{target:?} must not have a query or fragment"));
        }
        Ok(Self { backend, url: Some(url), api_key_env: None })
    }

    /// The target in the form `--vectors` takes (`embedded`, `qdrant://HOST:PORT`, `weaviate+https://…`), for messages.
    pub fn target(&self) -> String {
        match (&self.url, self.backend) {
            (_, VectorBackend::Embedded) | (None, _) => self.backend.as_str().to_owned(),
            (Some(url), backend) => match url.split_once("://") {
                Some(("https", rest)) => format!("{backend}+https://{rest}"),
                Some((_, rest)) => format!("{backend}://{rest}"),
                None => url.clone(),
            },
        }
    }

    /// The environment variable holding the API key: `api_key_env`, else the backend's default (`QDRANT_API_KEY`,
    /// `WEAVIATE_API_KEY`); `None` for the embedded index.
    pub fn key_env(&self) -> Option<&str> {
        self.api_key_env.as_deref().or(self.backend.default_key_env())
    }
}

impl Default for VectorsConfig {
    fn default() -> Self {
        Self { backend: default_backend(), url: None, api_key_env: None }
    }
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self { kind: default_kind(), dimension: default_dimension(), model: None, url: None, api_key_env: None }
    }
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self { repository: default_repository(), keep_last: default_keep_last() }
    }
}

// Validators shared by serde (where toml attaches the value's position) and the environment overrides.

fn check_format(format: i64) -> Result<u32, String> {
    match u32::try_from(format) {
        Ok(CONFIG_FORMAT) => Ok(CONFIG_FORMAT),
        Ok(f) if f > CONFIG_FORMAT => Err(format!("format {f} was written by a newer colstore; this one reads format {CONFIG_FORMAT}")),
        _ => Err(format!("format {format} is not a colstore config format (expected {CONFIG_FORMAT})")),
    }
}

fn check_path(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() { Err("the path is empty".to_owned()) } else { Ok(PathBuf::from(s)) }
}

fn check_url(s: &str) -> Result<String, String> {
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not an http:// or https:// URL"))
    }
}

fn check_env_name(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(s.to_owned())
    } else {
        // Do not echo the value: people paste the key itself here.
        Err("api_key_env must name an environment variable (like \"QDRANT_API_KEY\"), not hold the key itself".to_owned())
    }
}

fn check_repository(s: &str) -> Result<String, String> {
    let rest = s.strip_prefix("file://").or_else(|| s.strip_prefix("s3://"));
    match rest {
        Some(r) if !r.trim().is_empty() => Ok(s.to_owned()),
        _ => Err(format!("{s:?} is not a backup repository URL; use file://DIR (like \"file://backups\") or s3://bucket/prefix")),
    }
}

fn de_format<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    check_format(i64::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn de_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    check_path(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn de_opt_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    de_path(d).map(Some)
}

fn de_opt_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    check_url(&String::deserialize(d)?).map(Some).map_err(serde::de::Error::custom)
}

fn de_opt_env_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    check_env_name(&String::deserialize(d)?).map(Some).map_err(serde::de::Error::custom)
}

fn de_opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() { Err(serde::de::Error::custom("the value is empty")) } else { Ok(Some(s)) }
}

fn de_repository<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_repository(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn de_keep_last<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = i64::deserialize(d)?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| serde::de::Error::custom(format!("keep_last = {n} is out of range; keep at least 1 backup")))
}

/// Only the `format` key, read before anything else so a newer file says "newer colstore" rather than "unknown key".
#[derive(Deserialize)]
struct FormatProbe {
    #[serde(default)]
    format: Option<toml::Spanned<toml::Value>>,
}

impl StoreConfig {
    /// A fresh configuration with every default, as `col init` writes it.
    pub fn new(store_id: StoreId, created_at: Timestamp, store_path: PathBuf, mode: StorageMode) -> Self {
        Self {
            format: CONFIG_FORMAT,
            store_id,
            created_at,
            store_path,
            storage: StorageConfig { mode, ..StorageConfig::default() },
            vectors: VectorsConfig::default(),
            embedder: EmbedderConfig::default(),
            backup: BackupConfig::default(),
        }
    }

    /// Reads and validates the config file at `path`.
    ///
    /// # Errors
    /// [`WiringError::ConfigUnreadable`] when the file cannot be read; [`WiringError::Config`] (with line, column and hint) when it is invalid.
    pub fn load(path: &Path) -> Result<Self, WiringError> {
        let bytes = std::fs::read(path).map_err(|source| WiringError::ConfigUnreadable {
            path: path.to_owned(),
            reason: match source.kind() {
                std::io::ErrorKind::NotFound => "it is missing".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => source.to_string(),
            },
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let (line, column) = line_col(std::str::from_utf8(valid).unwrap_or_default(), usize::MAX);
            WiringError::Config {
                path: path.to_owned(),
                line,
                column,
                message: "the file is not valid UTF-8".to_owned(),
                fix: Some(ConfigFix::SaveAsUtf8),
            }
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is only used in errors.
    ///
    /// # Errors
    /// [`WiringError::Config`] with line, column and a hint.
    pub fn parse(text: &str, path: &Path) -> Result<Self, WiringError> {
        let probe: FormatProbe = toml::from_str(text).map_err(|e| config_error(text, path, &e, true))?;
        if let Some(f) = probe.format {
            let problem = match f.get_ref() {
                toml::Value::Integer(n) => check_format(*n).err(),
                other => Some(format!("format must be an integer, found {}", other.type_str())),
            };
            if let Some(message) = problem {
                let (line, column) = line_col(text, f.span().start);
                let fix = config_fix(&message, None);
                return Err(WiringError::Config { path: path.to_owned(), line, column, message, fix });
            }
        }
        toml::from_str(text).map_err(|e| config_error(text, path, &e, false))
    }

    /// Writes the config to `path` atomically (temp file, fsync, rename, directory fsync).
    ///
    /// # Errors
    /// [`WiringError::ReadOnly`] or [`WiringError::Io`].
    pub fn write(&self, path: &Path) -> Result<(), WiringError> {
        colstore_durable::atomic_write(path, self.to_toml().as_bytes()).map_err(|e| WiringError::io(path, e))
    }

    /// The commented, human-friendly text of the file. [`StoreConfig::parse`] reads it back to an equal value.
    ///
    /// Paths that are not valid UTF-8 are written lossily (TOML files are UTF-8).
    pub fn to_toml(&self) -> String {
        let path = |p: &Path| q(&p.to_string_lossy());
        let line = |key: &str, value: Option<String>, example: &str, comment: &str| -> String {
            let kv = match value {
                Some(v) => format!("{key} = {v}"),
                None => format!("# {key} = {example}"),
            };
            if comment.is_empty() { format!("{kv}\n") } else { format!("{kv:<30} # {comment}\n") }
        };
        let s = &self.storage;
        let v = &self.vectors;
        let e = &self.embedder;
        let b = &self.backup;
        let mut out = String::new();
        out.push_str("# colstore store configuration — `col` validates it on every command.\n");
        out.push_str("# Environment variables override some keys: COLSTORE_STORAGE_MODE, COLSTORE_FILESYSTEM_PATH,\n");
        out.push_str("# COLSTORE_METADATA_DB_PATH, COLSTORE_BACKUP_REPOSITORY, COLSTORE_VECTOR_BACKEND, COLSTORE_VECTOR_URL.\n");
        out.push_str(&format!("format = {}\n", self.format));
        out.push_str("# The store's identity, written by `col init`. Do not edit by hand.\n");
        out.push_str(&format!("store_id = {}\n", q(&self.store_id.to_string())));
        out.push_str(&format!("created_at = {}\n", q(&self.created_at.to_string())));
        out.push_str("# Where this .colstore directory was created; used to detect copied or moved stores.\n");
        out.push_str(&format!("store_path = {}\n", path(&self.store_path)));
        out.push_str("\n[storage]\n");
        out.push_str(&line("mode", Some(q(s.mode.as_str())), "", "sqlite | filesystem"));
        out.push_str(&line("metadata_db", Some(path(&s.metadata_db)), "", "relative to .colstore unless absolute"));
        out.push_str(&line(
            "filesystem_path",
            s.filesystem_path.as_deref().map(path),
            "\"docs\"",
            "filesystem mode only: where document files live (default: .colstore/docs)",
        ));
        out.push_str(&line(
            "reconcile_max_delete_percent",
            Some(s.reconcile_max_delete_percent.to_string()),
            "",
            "filesystem mode: reconcile refuses to delete more without --force",
        ));
        out.push_str("\n[vectors]\n");
        out.push_str(&line("backend", Some(q(v.backend.as_str())), "", "embedded | qdrant | weaviate"));
        out.push_str(&line("url", v.url.as_deref().map(q), "\"http://127.0.0.1:6333\"", ""));
        out.push_str(&line(
            "api_key_env",
            v.api_key_env.as_deref().map(q),
            "\"QDRANT_API_KEY\"",
            "the variable's name, not the key (default QDRANT_API_KEY / WEAVIATE_API_KEY)",
        ));
        out.push_str("\n[embedder]\n");
        out.push_str(&line("kind", Some(q(e.kind.as_str())), "", "hash | openai"));
        out.push_str(&line("dimension", Some(e.dimension.get().to_string()), "", ""));
        out.push_str(&line("model", e.model.as_deref().map(q), "\"text-embedding-3-small\"", ""));
        out.push_str(&line("url", e.url.as_deref().map(q), "\"http://127.0.0.1:11434/v1\"", ""));
        out.push_str(&line("api_key_env", e.api_key_env.as_deref().map(q), "\"OPENAI_API_KEY\"", "the variable's name, not the key"));
        out.push_str("\n[backup]\n");
        out.push_str(&line(
            "repository",
            Some(q(&b.repository)),
            "",
            "relative file:// URLs are relative to .colstore; s3://bucket/prefix later",
        ));
        out.push_str(&line("keep_last", Some(b.keep_last.to_string()), "", ""));
        out
    }

    /// This configuration with the environment overrides of PRODUCT §4 applied.
    ///
    /// # Errors
    /// [`WiringError::Env`] naming the variable when one holds an invalid value.
    pub fn effective(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<StoreConfig, WiringError> {
        self.with_env(env).map(|(config, _)| config)
    }

    /// Like [`StoreConfig::effective`], also listing the overrides that were applied (for `col status` and `--verbose`).
    ///
    /// A variable set to the empty string counts as unset. When both a `COLSTORE_` variable and its seed alias
    /// (`COLLECTION_`) are set, the `COLSTORE_` one wins and the alias is not looked at.
    ///
    /// # Errors
    /// [`WiringError::Env`] naming the variable when one holds an invalid value.
    pub fn with_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(StoreConfig, Vec<EnvOverride>), WiringError> {
        let mut config = self.clone();
        let mut applied = Vec::new();
        for o in ENV_OVERRIDES {
            let found = o.vars.iter().find_map(|var| env(var).filter(|v| !v.is_empty()).map(|v| (*var, v)));
            let Some((var, value)) = found else { continue };
            (o.apply)(&mut config, &value).map_err(|message| WiringError::Env { var, value: value.clone(), message })?;
            tracing::debug!(var, key = o.key, "config overridden by the environment");
            applied.push(EnvOverride { var, key: o.key, value });
        }
        Ok((config, applied))
    }
}

/// One environment variable that overrode a config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOverride {
    /// The variable that was used (`COLSTORE_STORAGE_MODE` or its alias).
    pub var: &'static str,
    /// The config key it overrode (`storage.mode`).
    pub key: &'static str,
    /// Its value.
    pub value: String,
}

struct EnvKey {
    /// The variable, then its aliases, in order of precedence.
    vars: &'static [&'static str],
    key: &'static str,
    apply: fn(&mut StoreConfig, &str) -> Result<(), String>,
}

const ENV_OVERRIDES: &[EnvKey] = &[
    EnvKey {
        vars: &["COLSTORE_STORAGE_MODE", "COLLECTION_STORAGE_MODE"],
        key: "storage.mode",
        apply: |c, v| {
            c.storage.mode = v.parse().map_err(|e: UnknownChoice| format!("expected {}", e.expected))?;
            Ok(())
        },
    },
    EnvKey {
        vars: &["COLSTORE_FILESYSTEM_PATH", "COLLECTION_FILESYSTEM_PATH"],
        key: "storage.filesystem_path",
        apply: |c, v| {
            c.storage.filesystem_path = Some(check_path(v)?);
            Ok(())
        },
    },
    EnvKey {
        vars: &["COLSTORE_METADATA_DB_PATH", "COLLECTION_METADATA_DB_PATH"],
        key: "storage.metadata_db",
        apply: |c, v| {
            c.storage.metadata_db = check_path(v)?;
            Ok(())
        },
    },
    EnvKey {
        vars: &["COLSTORE_BACKUP_REPOSITORY"],
        key: "backup.repository",
        apply: |c, v| {
            c.backup.repository = check_repository(v)?;
            Ok(())
        },
    },
    EnvKey {
        vars: &["COLSTORE_VECTOR_BACKEND"],
        key: "vectors.backend",
        apply: |c, v| {
            c.vectors.backend = v.parse().map_err(|e: UnknownChoice| format!("expected {}", e.expected))?;
            Ok(())
        },
    },
    EnvKey {
        vars: &["COLSTORE_VECTOR_URL"],
        key: "vectors.url",
        apply: |c, v| {
            c.vectors.url = Some(check_url(v)?);
            Ok(())
        },
    },
];

/// Every environment variable that can override the config, with the key it overrides (for docs and `col status`).
pub fn env_overridable() -> impl Iterator<Item = (&'static str, &'static str)> {
    ENV_OVERRIDES.iter().flat_map(|o| o.vars.iter().map(move |v| (*v, o.key)))
}

/// Reads the process environment; pass it where an environment lookup is expected.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A TOML basic string (quoted and escaped).
fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// The `[table]` whose keys line `line` (1-based) holds, if any. A header line names a key of its parent table.
fn section_at(text: &str, line: usize) -> Option<String> {
    let header = |l: &str| {
        let t = l.trim();
        t.strip_prefix('[').and_then(|r| r.split(']').next()).map(|s| s.trim().trim_start_matches('[').to_owned())
    };
    let lines: Vec<&str> = text.lines().take(line).collect();
    match lines.split_last() {
        Some((last, _)) if header(last).is_some() => header(last)?.rsplit_once('.').map(|(parent, _)| parent.to_owned()),
        _ => lines.iter().rev().find_map(|l| header(l)),
    }
}

fn config_error(text: &str, path: &Path, e: &toml::de::Error, syntax: bool) -> WiringError {
    let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
    // serde speaks of fields and variants; a config file has keys and values.
    let message = e
        .message()
        .trim()
        .replace("unknown field", "unknown key")
        .replace("unknown variant", "unknown value")
        .replace("missing field", "missing key");
    let fix = if syntax { Some(ConfigFix::Syntax) } else { config_fix(&message, section_at(text, line)) };
    WiringError::Config { path: path.to_owned(), line, column, message, fix }
}

/// The accepted choices in a serde message ("... expected one of `a`, `b`" → "a, b").
fn expected_list(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("expected ")?;
    Some(rest.trim_start_matches("one of ").replace('`', ""))
}

/// What the parser's `message` about a value in `section` asks the user to fix.
fn config_fix(message: &str, section: Option<String>) -> Option<ConfigFix> {
    if message.starts_with("unknown key") {
        Some(ConfigFix::UnknownKey { section, allowed: expected_list(message)? })
    } else if message.starts_with("unknown value") {
        Some(ConfigFix::UnknownValue { choices: expected_list(message)? })
    } else if message.contains("UUID") {
        Some(ConfigFix::StoreId)
    } else if message.starts_with("missing key") {
        Some(ConfigFix::MissingKey { section })
    } else if message.contains("newer colstore") {
        Some(ConfigFix::NewerColstore)
    } else if message.contains("invalid dimension") {
        Some(ConfigFix::Dimension)
    } else if message.contains("format") && message.contains("expected 1") {
        Some(ConfigFix::Format)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::embedded("embedded", VectorBackend::Embedded, None)]
    #[case::qdrant_default_port("qdrant://127.0.0.1", VectorBackend::Qdrant, Some("http://127.0.0.1:6333"))]
    #[case::qdrant_port("qdrant://db.example:7000", VectorBackend::Qdrant, Some("http://db.example:7000"))]
    #[case::qdrant_tls("qdrant+https://xyz.cloud.qdrant.io", VectorBackend::Qdrant, Some("https://xyz.cloud.qdrant.io:6333"))]
    #[case::weaviate("weaviate://localhost", VectorBackend::Weaviate, Some("http://localhost:8080"))]
    #[case::weaviate_tls_path("Weaviate+HTTPS://h:443/proxy/", VectorBackend::Weaviate, Some("https://h:443/proxy"))]
    #[case::ipv6("qdrant://[::1]", VectorBackend::Qdrant, Some("http://[::1]:6333"))]
    #[case::ipv6_port("qdrant://[::1]:7", VectorBackend::Qdrant, Some("http://[::1]:7"))]
    fn vector_targets_are_read(#[case] target: &str, #[case] backend: VectorBackend, #[case] url: Option<&str>) {
        let v = VectorsConfig::from_target(target).unwrap();
        assert_eq!((v.backend, v.url.as_deref()), (backend, url));
        assert_eq!(VectorsConfig::from_target(&v.target()).unwrap(), v, "target() reads back");
    }

    #[rstest]
    #[case::bare_host("localhost:6333", "is not a vector target")]
    #[case::plain_http("http://localhost:6333", "does not say which engine")]
    #[case::other_engine("pinecone://x", "is not a vector backend")]
    #[case::no_host("qdrant://", "names no host")]
    #[case::credentials("qdrant://user:secret@h", "never in the URL")]
    #[case::query("qdrant://h?x=1", "query or fragment")]
    fn bad_vector_targets_say_what_is_wrong(#[case] target: &str, #[case] says: &str) {
        let e = VectorsConfig::from_target(target).unwrap_err();
        assert!(e.contains(says), "{e}");
        assert!(!e.contains("secret"), "credentials are not echoed: {e}");
    }

    #[test]
    fn api_keys_come_from_the_backends_variable_unless_one_is_named() {
        let q = VectorsConfig::from_target("qdrant://h").unwrap();
        assert_eq!(q.key_env(), Some("QDRANT_API_KEY"));
        assert_eq!(VectorsConfig::from_target("weaviate://h").unwrap().key_env(), Some("WEAVIATE_API_KEY"));
        assert_eq!(VectorsConfig { api_key_env: Some("MY_KEY".into()), ..q }.key_env(), Some("MY_KEY"));
        assert_eq!(VectorsConfig::default().key_env(), None);
    }

    fn sample() -> StoreConfig {
        StoreConfig::new(
            "0b6c6f4e-1d0c-4b8e-9a0e-2d7a8f1f3c11".parse().unwrap(),
            Timestamp::from_millis(1_714_564_800_123),
            PathBuf::from("/home/u/proj/.colstore"),
            StorageMode::Sqlite,
        )
    }

    fn parse(text: &str) -> Result<StoreConfig, WiringError> {
        StoreConfig::parse(text, Path::new("/s/.colstore/config.toml"))
    }

    /// The sample file with one line replaced (or a line appended when `old` is empty).
    fn edited(old: &str, new: &str) -> String {
        let text = sample().to_toml();
        if old.is_empty() {
            return format!("{text}{new}\n");
        }
        assert!(text.contains(old), "{old:?} not in the sample");
        text.replacen(old, new, 1)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn written_file_is_commented_and_looks_like_the_docs() {
        let text = sample().to_toml();
        let expected = r#"# colstore store configuration — `col` validates it on every command.
# Environment variables override some keys: COLSTORE_STORAGE_MODE, COLSTORE_FILESYSTEM_PATH,
# COLSTORE_METADATA_DB_PATH, COLSTORE_BACKUP_REPOSITORY, COLSTORE_VECTOR_BACKEND, COLSTORE_VECTOR_URL.
format = 1
# The store's identity, written by `col init`. Do not edit by hand.
store_id = "0b6c6f4e-1d0c-4b8e-9a0e-2d7a8f1f3c11"
created_at = "2024-05-01T12:00:00.123Z"
# Where this .colstore directory was created; used to detect copied or moved stores.
store_path = "/home/u/proj/.colstore"

[storage]
mode = "sqlite"                # sqlite | filesystem
metadata_db = "colstore.db"    # relative to .colstore unless absolute
# filesystem_path = "docs"     # filesystem mode only: where document files live (default: .colstore/docs)
reconcile_max_delete_percent = 50 # filesystem mode: reconcile refuses to delete more without --force

[vectors]
backend = "embedded"           # embedded | qdrant | weaviate
# url = "http://127.0.0.1:6333"
# api_key_env = "QDRANT_API_KEY" # the variable's name, not the key (default QDRANT_API_KEY / WEAVIATE_API_KEY)

[embedder]
kind = "hash"                  # hash | openai
dimension = 384
# model = "text-embedding-3-small"
# url = "http://127.0.0.1:11434/v1"
# api_key_env = "OPENAI_API_KEY" # the variable's name, not the key

[backup]
repository = "file://backups"  # relative file:// URLs are relative to .colstore; s3://bucket/prefix later
keep_last = 10
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn defaults_round_trip() {
        let c = sample();
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn every_optional_key_round_trips() {
        let mut c = sample();
        c.storage.mode = StorageMode::Filesystem;
        c.storage.metadata_db = PathBuf::from("/var/lib/colstore/meta \"x\".db");
        c.storage.filesystem_path = Some(PathBuf::from("C:\\notes\\ünï"));
        c.vectors = VectorsConfig {
            backend: VectorBackend::Qdrant,
            url: Some("http://127.0.0.1:6333".into()),
            api_key_env: Some("QDRANT_API_KEY".into()),
        };
        c.embedder = EmbedderConfig {
            kind: EmbedderKind::Openai,
            dimension: Dimension::new(1536).unwrap(),
            model: Some("text-embedding-3-small".into()),
            url: Some("https://api.openai.com/v1".into()),
            api_key_env: Some("OPENAI_API_KEY".into()),
        };
        c.backup = BackupConfig { repository: "s3://bucket/prefix".into(), keep_last: 3 };
        c.store_path = PathBuf::from("/tmp/with 'quotes' and \\ backslash/.colstore");
        let text = c.to_toml();
        assert!(text.contains("\nfilesystem_path = "), "{text}");
        assert_eq!(parse(&text).unwrap(), c);
    }

    #[test]
    fn missing_sections_take_defaults() {
        let text = "format = 1\nstore_id = \"0b6c6f4e-1d0c-4b8e-9a0e-2d7a8f1f3c11\"\ncreated_at = \"2024-05-01T12:00:00.123Z\"\nstore_path = \"/home/u/proj/.colstore\"\n";
        assert_eq!(parse(text).unwrap(), sample());
    }

    #[rstest]
    #[case::unknown_key(
        "mode = \"sqlite\"",
        "mdoe = \"sqlite\"",
        12,
        1,
        "unknown key `mdoe`",
        |f: &Option<ConfigFix>| matches!(f, Some(ConfigFix::UnknownKey { section: Some(s), allowed }) if s == "storage" && allowed.starts_with("mode, metadata_db, filesystem_path"))
    )]
    #[case::unknown_top_key("format = 1", "format = 1\nname = \"x\"", 5, 1, "unknown key `name`", |f: &Option<ConfigFix>| matches!(f, Some(ConfigFix::UnknownKey { section: None, .. })))]
    #[case::unknown_section("[backup]", "[backups]", 29, 2, "unknown key `backups`", |f: &Option<ConfigFix>| matches!(f, Some(ConfigFix::UnknownKey { section: None, allowed }) if allowed.contains("storage, vectors, embedder, backup")))]
    #[case::bad_mode("mode = \"sqlite\"", "mode = \"mongo\"", 12, 8, "unknown value `mongo`", |f: &Option<ConfigFix>| matches!(f, Some(ConfigFix::UnknownValue { choices }) if choices == "sqlite or filesystem"))]
    #[case::bad_backend(
        "backend = \"embedded\"",
        "backend = \"pinecone\"",
        18,
        11,
        "unknown value",
        |f: &Option<ConfigFix>| matches!(f, Some(ConfigFix::UnknownValue { choices }) if choices == "embedded, qdrant, weaviate")
    )]
    #[case::zero_dimension("dimension = 384", "dimension = 0", 24, 13, "invalid dimension", |f: &Option<ConfigFix>| f == &Some(ConfigFix::Dimension))]
    #[case::newer_format("format = 1", "format = 2", 4, 10, "written by a newer colstore", |f: &Option<ConfigFix>| f == &Some(ConfigFix::NewerColstore))]
    #[case::format_zero("format = 1", "format = 0", 4, 10, "not a colstore config format", |f: &Option<ConfigFix>| f == &Some(ConfigFix::Format))]
    #[case::format_string("format = 1", "format = \"1\"", 4, 10, "format must be an integer", |f: &Option<ConfigFix>| f.is_none())]
    #[case::keep_zero("keep_last = 10", "keep_last = 0", 31, 13, "keep at least 1 backup", |f: &Option<ConfigFix>| f.is_none())]
    #[case::bad_repository("repository = \"file://backups\"", "repository = \"backups\"", 30, 14, "file://DIR", |f: &Option<ConfigFix>| f.is_none())]
    #[case::bad_uuid("store_id = \"0b6c6f4e-1d0c-4b8e-9a0e-2d7a8f1f3c11\"", "store_id = \"nope\"", 6, 12, "UUID", |f: &Option<ConfigFix>| f == &Some(ConfigFix::StoreId))]
    #[case::bad_time("created_at = \"2024-05-01T12:00:00.123Z\"", "created_at = \"yesterday\"", 7, 14, "RFC 3339", |f: &Option<ConfigFix>| f.is_none())]
    #[case::pasted_key("# api_key_env = \"QDRANT_API_KEY\"", "api_key_env = \"sk-abc-123\"", 20, 15, "not hold the key itself", |f: &Option<ConfigFix>| f.is_none())]
    #[case::bad_url("# url = \"http://127.0.0.1:6333\"", "url = \"127.0.0.1:6333\"", 19, 7, "not an http:// or https:// URL", |f: &Option<ConfigFix>| f.is_none())]
    #[case::missing_key("store_id = \"0b6c6f4e-1d0c-4b8e-9a0e-2d7a8f1f3c11\"\n", "", 0, 0, "missing key `store_id`", |f: &Option<ConfigFix>| matches!(f, Some(ConfigFix::MissingKey { section: None })))]
    #[case::bad_percent("reconcile_max_delete_percent = 50", "reconcile_max_delete_percent = 150", 15, 32, "not a percentage", |f: &Option<ConfigFix>| f.is_none())]
    #[case::syntax("mode = \"sqlite\"", "mode = sqlite", 12, 8, "", |f: &Option<ConfigFix>| f == &Some(ConfigFix::Syntax))]
    #[case::duplicate("keep_last = 10", "keep_last = 10\nkeep_last = 11", 32, 1, "duplicate", |f: &Option<ConfigFix>| f == &Some(ConfigFix::Syntax))]
    fn invalid_files_name_the_position_and_how_to_fix(
        #[case] old: &str,
        #[case] new: &str,
        #[case] line: usize,
        #[case] column: usize,
        #[case] in_message: &str,
        #[case] fix_is: impl Fn(&Option<ConfigFix>) -> bool,
    ) {
        let text = edited(old, new);
        let e = parse(&text).unwrap_err();
        let WiringError::Config { path, line: l, column: c, message, fix } = &e else { panic!("{e:?}") };
        assert_eq!(path, Path::new("/s/.colstore/config.toml"));
        assert!(message.contains(in_message), "{message:?} lacks {in_message:?}");
        if line != 0 {
            assert_eq!((*l, *c), (line, column), "{message}\n{text}");
            assert!(e.to_string().contains(&format!("/s/.colstore/config.toml:{line}:{column}: ")), "{e}");
        }
        assert!(fix_is(fix), "unexpected fix {fix:?} for {message:?}");
    }

    #[test]
    fn load_reports_missing_and_non_utf8_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.toml");
        assert!(matches!(StoreConfig::load(&p), Err(WiringError::ConfigUnreadable { ref reason, .. }) if reason == "it is missing"));
        std::fs::write(&p, b"format = 1\n# \xff\n").unwrap();
        let e = StoreConfig::load(&p).unwrap_err();
        assert!(matches!(e, WiringError::Config { line: 2, .. }), "{e:?}");
        sample().write(&p).unwrap();
        assert_eq!(StoreConfig::load(&p).unwrap(), sample());
    }

    #[rstest]
    #[case::none(&[], None)]
    #[case::mode(&[("COLSTORE_STORAGE_MODE", "filesystem")], Some("COLSTORE_STORAGE_MODE"))]
    #[case::mode_alias(&[("COLLECTION_STORAGE_MODE", "Filesystem")], Some("COLLECTION_STORAGE_MODE"))]
    #[case::colstore_name_wins(&[("COLSTORE_STORAGE_MODE", "filesystem"), ("COLLECTION_STORAGE_MODE", "bogus")], Some("COLSTORE_STORAGE_MODE"))]
    #[case::empty_is_unset(&[("COLSTORE_STORAGE_MODE", ""), ("COLLECTION_STORAGE_MODE", "filesystem")], Some("COLLECTION_STORAGE_MODE"))]
    fn storage_mode_overrides(#[case] vars: &[(&str, &str)], #[case] used: Option<&str>) {
        let env = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
        let (c, applied) = sample().with_env(&env).unwrap();
        match used {
            None => {
                assert_eq!(c, sample());
                assert!(applied.is_empty());
            }
            Some(var) => {
                assert_eq!(c.storage.mode, StorageMode::Filesystem);
                assert_eq!(applied.len(), 1);
                assert_eq!((applied[0].var, applied[0].key), (var, "storage.mode"));
            }
        }
    }

    #[test]
    fn every_override_lands_on_its_key() {
        let vars = [
            ("COLLECTION_FILESYSTEM_PATH", "/notes"),
            ("COLSTORE_METADATA_DB_PATH", "meta/x.db"),
            ("COLLECTION_METADATA_DB_PATH", "ignored.db"),
            ("COLSTORE_BACKUP_REPOSITORY", "s3://b/p"),
            ("COLSTORE_VECTOR_BACKEND", "weaviate"),
        ];
        let env = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
        let (c, applied) = sample().with_env(&env).unwrap();
        assert_eq!(c.storage.filesystem_path.as_deref(), Some(Path::new("/notes")));
        assert_eq!(c.storage.metadata_db, Path::new("meta/x.db"));
        assert_eq!(c.backup.repository, "s3://b/p");
        assert_eq!(c.vectors.backend, VectorBackend::Weaviate);
        let keys: Vec<_> = applied.iter().map(|o| (o.var, o.key)).collect();
        assert_eq!(
            keys,
            [
                ("COLLECTION_FILESYSTEM_PATH", "storage.filesystem_path"),
                ("COLSTORE_METADATA_DB_PATH", "storage.metadata_db"),
                ("COLSTORE_BACKUP_REPOSITORY", "backup.repository"),
                ("COLSTORE_VECTOR_BACKEND", "vectors.backend"),
            ]
        );
        assert_eq!(sample().effective(&no_env).unwrap(), sample());
    }

    #[rstest]
    #[case("COLSTORE_STORAGE_MODE", "mongo", "sqlite or filesystem")]
    #[case("COLLECTION_STORAGE_MODE", "mongo", "sqlite or filesystem")]
    #[case("COLSTORE_VECTOR_BACKEND", "pinecone", "embedded, qdrant or weaviate")]
    #[case("COLSTORE_BACKUP_REPOSITORY", "/backups", "file://DIR")]
    #[case("COLSTORE_METADATA_DB_PATH", "  ", "empty")]
    fn invalid_overrides_name_the_variable(#[case] var: &str, #[case] value: &str, #[case] expected: &str) {
        let env = |name: &str| (name == var).then(|| value.to_owned());
        let e = sample().effective(&env).unwrap_err();
        let WiringError::Env { var: v, value: val, message } = &e else { panic!("{e:?}") };
        assert_eq!((*v, val.as_str()), (var, value));
        assert!(message.contains(expected), "{message}");
        assert!(e.to_string().starts_with(&format!("invalid {var}=")), "{e}");
    }

    #[test]
    fn enums_parse_case_insensitively_and_list_choices() {
        assert_eq!("SQLite".parse::<StorageMode>().unwrap(), StorageMode::Sqlite);
        assert_eq!(" qdrant ".parse::<VectorBackend>().unwrap(), VectorBackend::Qdrant);
        assert_eq!("openai".parse::<EmbedderKind>().unwrap().to_string(), "openai");
        let e = "x".parse::<EmbedderKind>().unwrap_err();
        assert_eq!(e.to_string(), "unknown value \"x\", expected hash or openai");
        assert_eq!(env_overridable().count(), 9);
    }
}
