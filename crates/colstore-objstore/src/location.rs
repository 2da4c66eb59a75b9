//! Repository URLs: `file:///absolute/path`, `s3://bucket/optional/prefix`, `memory://`.

use std::path::PathBuf;

/// The accepted forms, appended to every URL error.
pub const ACCEPTED: &str = "use file:///path, s3://bucket/prefix or memory://";

/// Why a repository could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Not a URL of a supported kind (unknown scheme, or not a URL at all).
    #[error("backup repository URL `{url}` is not supported; {ACCEPTED}")]
    Unsupported {
        /// The URL as given.
        url: String,
    },
    /// A supported scheme, but the rest is wrong (relative path, missing or invalid bucket, …).
    #[error("backup repository URL `{url}` is invalid: {reason}; {ACCEPTED}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository folder (file://) could not be created or opened.
    #[error("cannot create the backup folder {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A repository opened for reading (`file://`) does not exist; reading never creates it.
    #[error("backup repository not found: {}", path.display())]
    NotFound {
        /// The folder.
        path: PathBuf,
    },
    /// The object_store backend refused its configuration.
    #[error("cannot open the backup repository `{url}`: {source}")]
    Backend {
        /// The URL as given.
        url: String,
        /// The cause.
        source: object_store::Error,
    },
}

/// What a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A local folder (absolute).
    File(PathBuf),
    /// A bucket and a prefix (no leading or trailing `/`, possibly empty).
    S3 { bucket: String, prefix: String },
    /// A fresh in-memory store.
    Memory,
}

/// Parses a repository URL.
pub(crate) fn parse(url: &str) -> Result<Location, OpenError> {
    let unsupported = || OpenError::Unsupported { url: url.to_owned() };
    let invalid = |reason: &str| OpenError::Invalid { url: url.to_owned(), reason: reason.to_owned() };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(unsupported());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "memory" if rest.is_empty() => Ok(Location::Memory),
        "memory" => Err(invalid("memory:// takes nothing after the scheme")),
        "file" => parse_file(url, rest).map_err(|r| invalid(&r)),
        "s3" => parse_s3(rest).map_err(|r| invalid(&r)),
        _ => Err(unsupported()),
    }
}

fn parse_file(url: &str, rest: &str) -> Result<Location, String> {
    if !rest.starts_with('/') {
        return Err("the path must be absolute, as in file:///path (three slashes)".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("a file URL takes no query (`?`) or fragment (`#`)".into());
    }
    if parsed.path() == "/" {
        return Err("the path must name a folder, not the file system root".into());
    }
    let path = parsed.to_file_path().map_err(|()| "the path must be absolute, as in file:///path (three slashes)".to_owned())?;
    Ok(Location::File(path))
}

fn parse_s3(rest: &str) -> Result<Location, String> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err("the bucket name is missing, as in s3://bucket/prefix".into());
    }
    if authority.contains(['@', ':', '?', '#']) || path.contains(['?', '#']) {
        return Err("an s3 URL takes only a bucket and a prefix, as in s3://bucket/prefix (no credentials, port, query or fragment)".into());
    }
    if !valid_bucket(authority) {
        return Err(format!("`{authority}` is not a valid bucket name (3-63 lowercase letters, digits, '.' and '-')"));
    }
    let decoded = percent_decode(path.trim_end_matches('/')).ok_or_else(|| format!("bad percent-encoding in `{path}`"))?;
    let bad_segment = |seg: &str| seg.is_empty() || seg == "." || seg == ".." || seg.chars().any(char::is_control);
    if !decoded.is_empty() && (decoded.split('/').any(bad_segment) || object_store::path::Path::parse(&decoded).is_err()) {
        return Err(format!("the prefix `{decoded}` is not a valid object path (no empty, `.` or `..` segments, no control characters)"));
    }
    Ok(Location::S3 { bucket: authority.to_owned(), prefix: decoded })
}

/// S3's bucket naming rules: 3–63 characters of lowercase letters, digits, `.` and `-`, starting and ending with a
/// letter or digit.
fn valid_bucket(b: &str) -> bool {
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| ok_char(c) || c == b'.' || c == b'-')
        && b.bytes().next().is_some_and(ok_char)
        && b.bytes().last().is_some_and(ok_char)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b/c").as_deref(), Some("a b/c"));
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.v2", &"a".repeat(63)] {
            assert!(valid_bucket(ok), "{ok}");
        }
        for bad in ["ab", "Bucket", "-abc", "abc-", "a_b", &"a".repeat(64)] {
            assert!(!valid_bucket(bad), "{bad}");
        }
    }
}
