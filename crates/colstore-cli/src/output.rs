//! Rendering: human tables and the stable JSON shapes of docs/CLI.md.

use std::io::{self, Write};

use colstore_domain::{Collection, DocumentMeta, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

/// Writes to stdout; a closed pipe (`col ls | head`) ends the program quietly instead of panicking.
pub struct Out {
    pub json: bool,
    pub quiet: bool,
    stdout: io::Stdout,
}

impl Out {
    pub fn new(json: bool, quiet: bool) -> Self {
        Self { json, quiet, stdout: io::stdout() }
    }

    /// A line of human output (suppressed by --quiet and --json).
    pub fn line(&self, s: impl AsRef<str>) -> io::Result<()> {
        if self.json || self.quiet {
            return Ok(());
        }
        let mut h = self.stdout.lock();
        h.write_all(s.as_ref().as_bytes())?;
        h.write_all(b"\n")
    }

    /// Primary output that --quiet does not suppress (listings, content).
    pub fn data(&self, s: impl AsRef<str>) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        let mut h = self.stdout.lock();
        h.write_all(s.as_ref().as_bytes())?;
        h.write_all(b"\n")
    }

    /// The JSON document of a command (only with --json).
    pub fn json_value(&self, v: &Value) -> io::Result<()> {
        if !self.json {
            return Ok(());
        }
        let mut h = self.stdout.lock();
        serde_json::to_writer_pretty(&mut h, v).map_err(io::Error::other)?;
        h.write_all(b"\n")
    }

    /// One event of a long-running command as one compact JSON line, flushed at once (only with --json), so scripts
    /// can read a stream of events (`col watch --json`).
    pub fn json_line(&self, v: &Value) -> io::Result<()> {
        if !self.json {
            return Ok(());
        }
        let mut h = self.stdout.lock();
        serde_json::to_writer(&mut h, v).map_err(io::Error::other)?;
        h.write_all(b"\n")?;
        h.flush()
    }

    pub fn raw(&self, bytes: &[u8]) -> io::Result<()> {
        let mut h = self.stdout.lock();
        h.write_all(bytes)
    }

    pub fn flush(&self) -> io::Result<()> {
        self.stdout.lock().flush()
    }
}

/// Standard output as a [`Write`] of raw bytes (a document's content), through [`Out::raw`].
pub struct RawOut<'a>(pub &'a Out);

impl Write for RawOut<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.raw(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `n` followed by the singular or plural noun: "1 call", "2 calls", "0 calls".
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The JSON shape of a document description.
pub fn doc_json(d: &DocumentMeta) -> Value {
    json!({
        "collection": d.collection,
        "key": d.key,
        "content_hash": d.content_hash,
        "size": d.size,
        "metadata": d.metadata,
        "tags": d.tags,
        "version": d.version,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    })
}

/// The JSON shape of a collection.
pub fn collection_json(c: &Collection) -> Value {
    json!({
        "name": c.name,
        "documents": c.document_count,
        "logical_bytes": c.logical_bytes,
        "created_at": c.created_at,
        "settings": c.settings,
    })
}

/// Bytes for humans: 1023 B, 1.0 KiB, 12.3 MiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A time for humans: seconds precision, UTC.
pub fn human_time(t: Timestamp) -> String {
    let s = t.to_string();
    format!("{} {}", &s[..10], &s[11..19])
}

/// Left-aligned columns; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let fmt_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        line.trim_end().to_owned()
    };
    let mut out = vec![fmt_row(header.to_vec())];
    for r in rows {
        out.push(fmt_row(r.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_tables() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1");
    }
}
