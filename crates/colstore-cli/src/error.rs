//! The one place that turns errors into messages, hints and exit codes (PRODUCT §11).

use std::fmt;

use colstore_app::AddError;
use colstore_domain::ValidationError;
use colstore_domain::ports::RepoError;
use colstore_wiring::WiringError;

/// Exit codes.
pub mod exit {
    /// Something failed.
    pub const ERROR: i32 = 1;
    /// Verification found corruption or drift.
    pub const VERIFY: i32 = 3;
}

/// An error as the user sees it: what went wrong, how to fix it, and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub code: i32,
    /// Standard output was closed by its reader (`col ls | head`): the command stops, and exits 0 saying nothing, as
    /// `cat` and `git log` do. Kept through wrapping (`CliError { message, ..e }`), unlike a message would be.
    pub closed_output: bool,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, code: exit::ERROR, closed_output: false }
    }

    /// Standard output was closed by its reader.
    pub fn closed_output() -> Self {
        Self { closed_output: true, ..Self::new("standard output was closed") }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

impl From<ValidationError> for CliError {
    fn from(e: ValidationError) -> Self {
        let hint = match e.what {
            "collection name" => {
                Some("collection names use a-z, 0-9, '_' and '-', start with a letter or digit, and have at most 63 characters")
            }
            "document key" => Some("keys are relative paths like \"notes/a.md\": no leading '/', no '..' or '.' segments, no NUL"),
            "metadata" => Some("pass a JSON object, quoted for your shell: --meta '{\"lang\":\"en\",\"year\":2024}'"),
            "tag" => Some("tags are 1-64 characters without spaces or commas"),
            "filter" => Some("examples: --where lang=en, --where 'year>=2000', --where 'lang in en,fr', --where 'author exists'"),
            "time" => Some("examples: --since 2024-05-01, --since 2024-05-01T12:00:00Z, --since 7d"),
            _ => None,
        };
        let err = CliError::new(e.to_string());
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

pub fn repo_hint(e: &RepoError) -> Option<String> {
    Some(match e {
        RepoError::CollectionNotFound(c) => format!("create it with `col collection create {c}`, or see `col collection list`"),
        RepoError::CollectionExists(c) => format!("choose another name, or use the existing collection (`col collection show {c}`)"),
        RepoError::DocumentNotFound { collection, .. } => format!("list the collection's documents with `col ls {collection}`"),
        RepoError::DuplicateKey(_) => "give each document a distinct key".into(),
        RepoError::ContentRead { .. } => "check that the file is readable and not being changed, then try again".into(),
        RepoError::Corrupt { .. } => "run `col verify` to find every damaged document, then restore them from a backup".into(),
        RepoError::ReadOnly(_) => {
            "check the permissions of the store directory and its files, and that the disk is mounted read-write".into()
        }
        RepoError::Busy(_) => "another process is using the store; wait for it to finish and try again".into(),
        _ => return None,
    })
}

impl From<RepoError> for CliError {
    fn from(e: RepoError) -> Self {
        let hint = repo_hint(&e);
        let mut err = CliError::new(e.to_string());
        err.hint = hint;
        err
    }
}

impl From<WiringError> for CliError {
    fn from(e: WiringError) -> Self {
        let hint = match &e {
            WiringError::Repo(r) => e.hint().or_else(|| repo_hint(r)),
            _ => e.hint(),
        };
        let mut err = CliError::new(e.to_string());
        err.hint = hint;
        err
    }
}

impl From<AddError> for CliError {
    fn from(e: AddError) -> Self {
        match e {
            AddError::Repo(r) => r.into(),
            AddError::PathNotFound(p) => {
                CliError::new(format!("{} does not exist", p.display())).hint("check the path; it is relative to the working directory")
            }
            AddError::BadGlob { .. } => {
                CliError::new(e.to_string()).hint("globs look like '**/*.md' or 'drafts/**'; quote them for your shell")
            }
            AddError::BadPrefix(_) => CliError::new(e.to_string()).hint("use a relative path such as 'imported/'"),
            other => CliError::new(other.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(e.to_string())
    }
}
