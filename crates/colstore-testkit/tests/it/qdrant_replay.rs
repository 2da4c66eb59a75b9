//! The Qdrant fake against the truth: every request of the exchanges recorded from a real Qdrant 1.18.3
//! (`../shared/fixtures/qdrant-1.18.3/` beside the workspace) is sent, in order, to a fresh fake, which must answer
//! with the same status code, content type and body shape (the same JSON structure, key sets and value types), and
//! the same values except those that vary from run to run (times, snapshot names, operation ids, versions,
//! checksums, sizes, commit). Large and binary bodies, summarised in the recording, are rebuilt: the 32 MiB upsert
//! is generated, the snapshot upload sends the snapshot this run downloaded.
//!
//! The fixtures are never copied into the repository; without them the test skips (`COLSTORE_REQUIRE_FIXTURES`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use colstore_testkit::need::{Need, skip};
use colstore_testkit::qdrant_fake::{QdrantFake, QdrantFakeOptions};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// Keys whose values vary between runs of the real server.
const VARYING: [&str; 8] = ["time", "name", "creation_time", "operation_id", "version", "checksum", "size", "commit"];

/// The API key of the recording made with a key.
const RECORDED_KEY: &str = "test-key-123";

fn fixtures_dir() -> Option<PathBuf> {
    colstore_testkit::need::shared_file("fixtures/qdrant-1.18.3/transcript.json").and_then(|t| t.parent().map(Into::into))
}

#[derive(Deserialize)]
struct RawEntry {
    request: RawRequest,
}

#[derive(Deserialize)]
struct RawRequest {
    body: Box<RawValue>,
}

/// A raw answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
    pub(crate) head: String,
}

pub(crate) enum Auth {
    None,
    ApiKey(&'static str),
    Bearer(&'static str),
}

/// One HTTP/1.1 exchange on a fresh connection; `Err` when the server closed it without answering.
pub(crate) fn send(addr: &str, method: &str, path: &str, auth: &Auth, content_type: &str, body: &[u8]) -> Result<Answer, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !body.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    match auth {
        Auth::None => {}
        Auth::ApiKey(k) => head.push_str(&format!("api-key: {k}\r\n")),
        Auth::Bearer(k) => head.push_str(&format!("Authorization: Bearer {k}\r\n")),
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(|e| format!("write: {e}"))?;
    s.write_all(body).map_err(|e| format!("write body: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| format!("no answer ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line: {head}"))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned()))
    };
    let mut body = raw[split + 4..].to_vec();
    if let Some(n) = header("content-length").and_then(|n| n.parse::<usize>().ok()) {
        if body.len() < n {
            return Err(format!("connection cut after {} of {n} body bytes", body.len()));
        }
        body.truncate(n);
    }
    Ok(Answer { status, content_type: header("content-type").unwrap_or_default(), body, head })
}

/// Differences between the recorded value and ours, by JSON path.
fn compare(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    let key = path.rsplit('.').next().unwrap_or_default();
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let wk: Vec<&String> = w.keys().collect();
            let gk: Vec<&String> = g.keys().collect();
            if wk != gk {
                out.push(format!("{path}: keys {wk:?} recorded, {gk:?} from the fake"));
                return;
            }
            for (k, v) in w {
                compare(&format!("{path}.{k}"), v, &g[k], out);
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                out.push(format!("{path}: {} elements recorded, {} from the fake", w.len(), g.len()));
                return;
            }
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                compare(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (Value::Number(w), Value::Number(g)) => {
            if w.is_f64() != g.is_f64() {
                out.push(format!("{path}: {w} recorded, {g} from the fake (integer vs float)"));
            } else if !VARYING.contains(&key) {
                let (a, b) = (w.as_f64().unwrap_or(f64::NAN), g.as_f64().unwrap_or(f64::NAN));
                if (a - b).abs() > 1e-6 * a.abs().max(1.0) {
                    out.push(format!("{path}: {w} recorded, {g} from the fake"));
                }
            }
        }
        (Value::String(w), Value::String(g)) => {
            if !VARYING.contains(&key) && w != g {
                out.push(format!("{path}: {w:?} recorded, {g:?} from the fake"));
            }
        }
        (Value::Bool(w), Value::Bool(g)) if w != g => out.push(format!("{path}: {w} recorded, {g} from the fake")),
        (Value::Bool(_), Value::Bool(_)) | (Value::Null, Value::Null) => {}
        _ => out.push(format!("{path}: {want} recorded, {got} from the fake (another type)")),
    }
}

/// Raw JSON text as the recording tool (Python's `json.dumps`) sent it: keys in the recorded order, `", "` and
/// `": "` separators, so that the positions in serde's error messages match the recording's.
fn python_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            c if c.is_whitespace() => {}
            '"' => {
                in_string = true;
                out.push(c);
            }
            ',' => out.push_str(", "),
            ':' => out.push_str(": "),
            c => out.push(c),
        }
    }
    out
}

/// A body of exactly `n` bytes, shaped like the recorded over-limit upsert (`{"points": [...]}`).
fn oversized_upsert(n: usize) -> Vec<u8> {
    let mut body = br#"{"points":[{"id":1,"vector":[1,0,0,0],"payload":{"pad":""#.to_vec();
    let tail = br#""}}]}"#;
    body.resize(n - tail.len(), b'x');
    body.extend_from_slice(tail);
    body
}

fn multipart(file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "colstore-replay-boundary-7f3a";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"upload.snapshot\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn replay(file: &str, api_key: Option<&'static str>) {
    let Some(dir) = fixtures_dir() else {
        skip(Need::Fixtures, "the recorded Qdrant exchanges (shared/fixtures/qdrant-1.18.3 beside the workspace) are not there");
        return;
    };
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let entries: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    // The request bodies again, as text in the recorded key order.
    let raw_bodies: Vec<RawEntry> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(entries.len() >= 50, "{file}: only {} exchanges", entries.len());
    let fake = QdrantFake::spawn(QdrantFakeOptions { api_key: api_key.map(str::to_owned), ..QdrantFakeOptions::default() });
    let addr = fake.url().trim_start_matches("http://").to_owned();
    let mut recorded_snapshot: Option<String> = None;
    let mut our_snapshot: Option<String> = None;
    let mut downloaded: Option<Vec<u8>> = None;
    let mut failures = Vec::new();
    for (e, raw) in entries.iter().zip(&raw_bodies) {
        let name = e["name"].as_str().unwrap_or("?");
        let req = &e["request"];
        let resp = &e["response"];
        let method = req["method"].as_str().unwrap_or("GET");
        let mut path = req["path"].as_str().unwrap_or("/").to_owned();
        if let (Some(r), Some(o)) = (&recorded_snapshot, &our_snapshot) {
            path = path.replace(r.as_str(), o);
        }
        let auth = match (api_key, name) {
            (None, _) | (Some(_), "no_api_key_401") => Auth::None,
            (Some(_), "wrong_api_key_401") => Auth::ApiKey("not-the-key"),
            (Some(k), "bearer_ok") => Auth::Bearer(k),
            (Some(k), _) => Auth::ApiKey(k),
        };
        let (content_type, body) = match &req["body"] {
            Value::Null => ("application/json".to_owned(), Vec::new()),
            Value::String(s) if s.contains("multipart/form-data") => {
                let file = downloaded.clone().unwrap_or_else(|| panic!("{name}: no snapshot was downloaded before the upload"));
                multipart(&file)
            }
            Value::String(s) if s.starts_with('<') && s.ends_with(" bytes>") => {
                let n: usize = s.trim_start_matches('<').trim_end_matches(" bytes>").parse().unwrap_or_else(|e| panic!("{name}: {s}: {e}"));
                ("application/json".to_owned(), oversized_upsert(n))
            }
            _ => ("application/json".to_owned(), python_json(raw.request.body.get()).into_bytes()),
        };
        let answer = send(&addr, method, &path, &auth, &content_type, &body);
        if resp["status"].is_null() {
            // The real server closed the connection (the body limit).
            if let Ok(a) = &answer {
                failures.push(format!("{name}: the connection should be closed unanswered, got {}", a.status));
            }
            continue;
        }
        let answer = match answer {
            Ok(a) => a,
            Err(err) => {
                failures.push(format!("{name}: {err}"));
                continue;
            }
        };
        let want_status = resp["status"].as_u64().unwrap_or(0);
        if u64::from(answer.status) != want_status {
            failures.push(format!(
                "{name}: status {} from the fake, {want_status} recorded: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
            continue;
        }
        let want_ct = resp["content_type"].as_str().unwrap_or_default();
        if answer.content_type != want_ct {
            failures.push(format!("{name}: content type {:?} from the fake, {want_ct:?} recorded", answer.content_type));
        }
        match &resp["body"] {
            Value::String(text) => {
                if answer.body != text.as_bytes() {
                    failures.push(format!("{name}: body {:?} from the fake, {text:?} recorded", String::from_utf8_lossy(&answer.body)));
                }
            }
            Value::Object(o) if want_ct == "application/octet-stream" && o.contains_key("bytes") => {
                if answer.body.is_empty() {
                    failures.push(format!("{name}: an empty download"));
                }
                downloaded = Some(answer.body.clone());
            }
            want => {
                let got: Value = match serde_json::from_slice(&answer.body) {
                    Ok(v) => v,
                    Err(err) => {
                        failures.push(format!("{name}: not JSON ({err}): {}", String::from_utf8_lossy(&answer.body)));
                        continue;
                    }
                };
                let mut diffs = Vec::new();
                compare("$", want, &got, &mut diffs);
                failures.extend(diffs.into_iter().map(|d| format!("{name}: {d}")));
                if name == "snapshot_create" {
                    recorded_snapshot = want.pointer("/result/name").and_then(Value::as_str).map(str::to_owned);
                    our_snapshot = got.pointer("/result/name").and_then(Value::as_str).map(str::to_owned);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{file}: the fake differs from the recording:\n{}", failures.join("\n"));
    assert!(fake.collections().is_empty(), "the recording drops every collection it made: {:?}", fake.collections());
}

#[test]
fn fake_answers_like_the_recorded_server() {
    replay("transcript.json", None);
}

#[test]
fn fake_answers_like_the_recorded_server_with_an_api_key() {
    replay("transcript-apikey.json", Some(RECORDED_KEY));
}

#[test]
fn bodies_are_resent_as_recorded() {
    assert_eq!(python_json("{\n \"b\": [1,\n 2],\n \"a\": \"x, y: \\\" z\"}"), "{\"b\": [1, 2], \"a\": \"x, y: \\\" z\"}");
}

#[test]
fn shape_comparison_catches_differences() {
    let mut out = Vec::new();
    compare("$", &json!({"a": 1, "time": 0.5, "b": [1.0]}), &json!({"a": 1, "time": 0.25, "b": [1.0]}), &mut out);
    assert!(out.is_empty(), "{out:?}");
    for (want, got) in [
        (json!({"a": 1}), json!({"a": 1, "b": 2})),
        (json!({"a": 1}), json!({"a": 1.0})),
        (json!({"a": [1]}), json!({"a": []})),
        (json!({"a": "x"}), json!({"a": null})),
        (json!({"a": "x"}), json!({"a": "y"})),
        (json!({"count": 7}), json!({"count": 6})),
    ] {
        let mut out = Vec::new();
        compare("$", &want, &got, &mut out);
        assert_eq!(out.len(), 1, "{want} vs {got}: {out:?}");
    }
}
