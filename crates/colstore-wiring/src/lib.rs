//! colstore's composition root: finding, creating, configuring, locking and opening a store.
//!
//! Shells (the `col` CLI, later the HTTP server) call this crate and nothing below it to get a [`Store`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), colstore_wiring::WiringError> {
//! use colstore_wiring::{discover, process_env, Store};
//! let cwd = std::env::current_dir().expect("a working directory");
//! let dir = discover(None, &cwd, &process_env)?;
//! let store = Store::open(dir, &process_env).await?;
//! let _repo = store.repo();
//! # Ok(()) }
//! ```
//!
//! It owns:
//! - [`StoreConfig`], the store's `.colstore/config.toml`, its validation and its environment overrides ([`config`]);
//! - store discovery: `--store`, `COLSTORE_DIR`, upward search ([`discover()`], [`StoreDir`]);
//! - `col init` ([`init()`]), all or nothing;
//! - the store lock of PRODUCT §8 ([`StoreLock`]);
//! - choosing and building the adapters a config selects ([`Store`]), and the real [`SystemClock`];
//! - [`WiringError`], with a how-to-fix [`hint`](WiringError::hint) for every user-facing failure.
//!
//! Architecture invariant: this is the only crate that depends on every adapter crate. Use cases (`colstore-app`)
//! see ports only; shells see this crate and the use cases, never an adapter.

mod adapters;
mod backups;
pub mod config;
mod discover;
mod error;
mod indexes;
mod init;
mod lock;
mod migrate;
mod open;
mod safety;
mod watch;

pub use adapters::{OPENAI_DEFAULT_KEY_ENV, OPENAI_DEFAULT_URL};
pub use backups::{RepoAccess, StoreBackups, StoreIdentity, lock_holder, lock_holder_is_dead, open_repository, store_identity};
pub use config::{
    BackupConfig, CONFIG_FORMAT, EmbedderConfig, EmbedderKind, EnvOverride, StorageConfig, StorageMode, StoreConfig, UnknownChoice,
    VectorBackend, VectorsConfig, env_overridable, process_env,
};
pub use discover::{CONFIG_FILE, STORE_DIR_ENV, STORE_DIR_NAME, StoreDir, discover};
pub use error::{ConfigFix, WiringError};
pub use init::init;
pub use lock::{DEFAULT_SHARED_WAIT, LockInfo, LockMode, StoreLock};
pub use migrate::{MigrationPlan, MigrationRefused, StoreConversion};
pub use open::{Store, SystemClock, create_database};
pub use safety::{DamagedStore, Recreated, SAFETY_COPIES_KEPT};
pub use watch::ChangeSignals;
