//! YAML front matter of Markdown files, read into document metadata by `col add` (as note tools do: Obsidian, Hugo,
//! Jekyll). Pure code: bytes in, metadata out.
//!
//! The front matter is the block between a first line `---` and the next line `---` (or `...`). Its top level must be
//! a mapping; values keep their YAML 1.2 core-schema types as JSON: strings, integers, floats, booleans and null, and
//! lists and nested mappings as JSON arrays and objects (filters match any element of an array, and reach nested
//! values by dotted paths). Dates stay strings. The parser is `saphyr-parser` (events only); this module builds the
//! values itself so that it can bound what one file may cost: at most [`MAX_FRONT_MATTER`] bytes, [`MAX_DEPTH`]
//! levels of nesting, and no aliases (`*name`), whose expansion is the "billion laughs" attack.

use std::path::Path;

use colstore_domain::Metadata;
use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};

/// The largest front matter read, in bytes (between the `---` lines).
pub const MAX_FRONT_MATTER: usize = 64 * 1024;

/// The deepest nesting of lists and mappings accepted.
pub const MAX_DEPTH: usize = 16;

/// Why a file's front matter was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", .line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct FrontMatterError {
    /// The line of the file where the problem is, when known (1-based).
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl FrontMatterError {
    fn new(line: Option<usize>, message: impl Into<String>) -> Self {
        Self { line, message: message.into() }
    }
}

/// Whether `path` names a Markdown file (`.md`, `.markdown`, `.mdx`, any case), the files whose front matter is read.
pub fn is_markdown(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| ["md", "markdown", "mdx"].iter().any(|m| e.eq_ignore_ascii_case(m)))
}

/// Reads the front matter at the start of `content` (the whole file, or at least its first
/// [`MAX_FRONT_MATTER`] + 8 bytes): `Ok(None)` when the file has none.
///
/// # Errors
/// A [`FrontMatterError`] naming the line when the block is not closed, too large, not UTF-8, not valid YAML, not a
/// mapping, nested too deeply, uses aliases, or repeats a key.
pub fn parse_front_matter(content: &[u8]) -> Result<Option<Metadata>, FrontMatterError> {
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let Some(first_end) = content.iter().position(|&b| b == b'\n') else { return Ok(None) };
    if trim_line(&content[..first_end]) != b"---" {
        return Ok(None);
    }
    let body_start = first_end + 1;
    let mut at = body_start;
    let body_end = loop {
        if at - body_start > MAX_FRONT_MATTER {
            return Err(FrontMatterError::new(Some(1), format!("the front matter is longer than {} KiB", MAX_FRONT_MATTER / 1024)));
        }
        let Some(rest) = content.get(at..).filter(|r| !r.is_empty()) else {
            return Err(FrontMatterError::new(Some(1), "the front matter starting here has no closing `---` line"));
        };
        let len = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |p| p + 1);
        let l = trim_line(&rest[..len]);
        if l == b"---" || l == b"..." {
            break at;
        }
        at += len;
    };
    let yaml = std::str::from_utf8(&content[body_start..body_end])
        .map_err(|_| FrontMatterError::new(Some(1), "the front matter is not UTF-8 text"))?;
    parse_yaml(yaml).map(Some)
}

/// The line without its end (`\n`, `\r\n`) and trailing blanks.
fn trim_line(l: &[u8]) -> &[u8] {
    let mut end = l.len();
    while end > 0 && matches!(l[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &l[..end]
}

enum Frame {
    List(Vec<Value>),
    Map(Map<String, Value>, Option<String>),
}

/// Builds the metadata from the YAML block; lines in errors are lines of the file (the block starts on line 2).
fn parse_yaml(yaml: &str) -> Result<Metadata, FrontMatterError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Value> = None;
    for item in Parser::new_from_str(yaml) {
        let (event, span) = item.map_err(|e| FrontMatterError::new(Some(e.marker().line() + 1), e.info().to_owned()))?;
        let line = Some(span.start.line() + 1);
        let value = match event {
            Event::Alias(_) => return Err(FrontMatterError::new(line, "aliases (`*name`) are not supported in front matter")),
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(FrontMatterError::new(line, format!("the front matter is nested more than {MAX_DEPTH} levels deep")));
                }
                if let Some(Frame::Map(_, None)) = stack.last() {
                    return Err(FrontMatterError::new(line, "a key must be a plain value, not a list or a mapping"));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) { Frame::List(Vec::new()) } else { Frame::Map(Map::new(), None) });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::List(items)) => Value::Array(items),
                Some(Frame::Map(map, _)) => Value::Object(map),
                None => continue,
            },
            Event::Scalar(text, style, _, tag) => {
                if let Some(Frame::Map(_, key @ None)) = stack.last_mut() {
                    *key = Some(text.into_owned());
                    continue;
                }
                scalar(&text, style, tag.as_deref())
            }
            _ => continue,
        };
        match stack.last_mut() {
            None => root = Some(value),
            Some(Frame::List(items)) => items.push(value),
            Some(Frame::Map(map, key)) => {
                let key = key.take().unwrap_or_default();
                if map.contains_key(&key) {
                    return Err(FrontMatterError::new(line, format!("the key {key:?} appears twice")));
                }
                map.insert(key, value);
            }
        }
    }
    match root {
        None => Ok(Metadata::default()),
        Some(Value::Object(map)) => Ok(Metadata(map)),
        Some(other) => Err(FrontMatterError::new(
            Some(2),
            format!("the front matter must be a mapping of names to values (like `lang: en`), not {}", kind(&other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
        _ => "a single value",
    }
}

/// A scalar's value under the YAML 1.2 core schema: quoted and block scalars are strings; plain ones may be null,
/// booleans, integers or floats. Floats JSON cannot hold (`.inf`, `.nan`) and integers beyond 64 bits stay strings.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    let string = || Value::String(text.to_owned());
    match tag {
        Some(t) if !t.is_yaml_core_schema() || t.suffix == "str" => return string(),
        Some(_) => {}
        None if style != ScalarStyle::Plain => return string(),
        None => {}
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1i128, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let int = if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i128>().ok()
    } else {
        None
    };
    if let Some(i) = int.map(|i| sign * i) {
        return i64::try_from(i)
            .map(|i| Value::Number(i.into()))
            .or_else(|_| u64::try_from(i).map(|u| Value::Number(u.into())))
            .unwrap_or_else(|_| string());
    }
    let looks_float = text.bytes().any(|b| b.is_ascii_digit())
        && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if looks_float
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(s: &str) -> Value {
        Value::Object(parse_front_matter(s.as_bytes()).unwrap().unwrap().0)
    }

    fn err(s: &str) -> String {
        parse_front_matter(s.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn reads_scalars_lists_and_mappings() {
        let text = "---\r\ntitle: Ideas for 2024\nlang: en\nyear: 2024\nrating: 4.5\ndraft: false\ndate: 2024-05-01\n\
                    quoted: \"42\"\ntags: [rust, notes]\nauthor:\n  name: Ada\nempty:\n---\n# Body\n";
        assert_eq!(
            meta(text),
            json!({"title": "Ideas for 2024", "lang": "en", "year": 2024, "rating": 4.5, "draft": false, "date": "2024-05-01",
                   "quoted": "42", "tags": ["rust", "notes"], "author": {"name": "Ada"}, "empty": null})
        );
        assert_eq!(meta("\u{feff}---\nlang: en\n...\nbody"), json!({"lang": "en"}), "a BOM and a `...` end are fine");
        assert_eq!(meta("---\n---\nbody"), json!({}));
        assert_eq!(
            meta("---\nbig: 99999999999999999999999\nhex: 0x1F\ninf: .inf\n---\n"),
            json!({"big": "99999999999999999999999", "hex": 31, "inf": ".inf"})
        );
    }

    #[test]
    fn files_without_front_matter_have_none() {
        for text in ["# Title\n---\nlang: en\n---\n", "", "---", " ---\nlang: en\n---\n"] {
            assert_eq!(parse_front_matter(text.as_bytes()).unwrap(), None, "{text:?}");
        }
    }

    #[test]
    fn bad_front_matter_says_what_and_where() {
        assert_eq!(err("---\nlang: en\n"), "line 1: the front matter starting here has no closing `---` line");
        assert!(err("---\nlang: [en\n---\n").starts_with("line "), "{}", err("---\nlang: [en\n---\n"));
        assert_eq!(
            err("---\n- a\n- b\n---\n"),
            "line 2: the front matter must be a mapping of names to values (like `lang: en`), not a list"
        );
        assert_eq!(err("---\nlang: en\nlang: de\n---\n"), "line 3: the key \"lang\" appears twice");
        assert!(err("---\na: &x [1]\nb: *x\n---\n").contains("aliases"));
        let deep = format!("---\nx: {}{}\n---\n", "[".repeat(40), "]".repeat(40));
        assert!(err(&deep).contains("nested more than 16"));
        let long = format!("---\nx: \"{}\"\n---\n", "a".repeat(MAX_FRONT_MATTER + 10));
        assert!(err(&long).contains("longer than 64 KiB"));
    }

    #[test]
    fn markdown_is_told_by_extension() {
        assert!(is_markdown(Path::new("a/b.md")) && is_markdown(Path::new("x.MarkDown")) && is_markdown(Path::new("x.mdx")));
        assert!(!is_markdown(Path::new("a.txt")) && !is_markdown(Path::new("md")));
    }
}
