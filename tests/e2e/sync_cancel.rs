//! `col jobs cancel ID` on the job a running `col sync` holds (PRODUCT §6): the sync stops after its current batch,
//! says so, exits 1, and leaves a consistent store that a second `col sync` finishes.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use colstore_e2e::{Output, TestStore};
use colstore_testkit::stub_embedder::StubEmbedServer;
use serde_json::Value;

use crate::sync::use_stub;

/// Documents in the collection: several sync batches of 256, one chunk each.
const DOCS: u64 = 1200;

fn notes_counts(s: &TestStore) -> (u64, u64, u64) {
    let st = s.json(["status", "notes"]);
    let c = st["collections"].as_array().unwrap().iter().find(|c| c["collection"] == "notes").expect("notes in status");
    (c["synced"].as_u64().unwrap(), c["pending"].as_u64().unwrap(), c["failed"].as_u64().unwrap())
}

/// Waits for `child` to end, killing it (and failing) after `limit`.
fn wait_with_timeout(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`col sync` did not stop within {limit:?} of the cancel");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    Output::from_std(std::process::Output { status: child.wait().unwrap(), stdout: stdout.into_bytes(), stderr: stderr.into_bytes() })
}

/// The sync job of `notes` once a running `col sync` holds it.
fn running_job(s: &TestStore, sync: &mut Child) -> i64 {
    let started = Instant::now();
    loop {
        let jobs = s.json(["jobs"]);
        let running = jobs["jobs"].as_array().unwrap().iter().find(|j| j["state"] == "running" && j["spec"]["kind"] == "sync").cloned();
        if let Some(Value::Number(id)) = running.map(|j| j["id"].clone()) {
            return id.as_i64().unwrap();
        }
        assert!(sync.try_wait().unwrap().is_none(), "`col sync` ended before its job was seen running: {jobs}");
        assert!(started.elapsed() < Duration::from_secs(60), "the sync job never ran: {jobs}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cancelling_the_job_of_a_running_sync_stops_it_after_the_current_batch() {
    let stub = StubEmbedServer::start(16);
    let s = TestStore::new();
    use_stub(&s, &stub);
    s.ok(["collection", "create", "notes"]);
    for i in 0..DOCS {
        s.write(format!("d/{i:04}.md"), format!("Note {i}: a short text about topic {} and nothing else.", i % 13));
    }
    s.ok(["add", "notes", "d"]);
    assert_eq!(notes_counts(&s), (0, DOCS, 0));

    // Slow answers: each batch of 256 documents takes a few embedding requests of at least 250 ms each, so the whole
    // sync takes several seconds and the cancel lands in the middle.
    stub.delay(Duration::from_millis(250));
    let mut sync = s.cmd(["sync", "notes"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let id = running_job(&s, &mut sync);
    s.ok(["jobs", "cancel", &id.to_string()]);
    let cancelled = Instant::now();
    let out = wait_with_timeout(sync, Duration::from_secs(60));
    let took = cancelled.elapsed();

    let line = out.assert_error(1, &format!("notes: cancelled by `col jobs cancel {id}` after "));
    assert!(line.ends_with(&format!(" of {DOCS} documents; run `col sync notes` to continue")), "{out}");
    let done: u64 = line.split(" after ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).expect("a count");
    assert!(done < DOCS, "the sync stopped before the end: {out}");
    assert_eq!(done % 256, 0, "it stops between whole batches of 256 documents: {out}");
    // One batch is at most a few slow requests; allow a loaded machine plenty of slack, but not the whole sync.
    assert!(took < Duration::from_secs(20), "the sync took {took:?} to stop after the cancel");
    assert!(!out.stdout.contains("synced,"), "no success summary for a cancelled collection: {out}");

    // The documents synced stay synced, the rest are pending; the job stays cancelled and nothing is left running.
    assert_eq!(notes_counts(&s), (done, DOCS - done, 0));
    let job = s.json(["jobs", "show", &id.to_string()]);
    assert_eq!(job["state"], "cancelled", "{job}");
    let running = s.json(["jobs", "list", "--state", "running"]);
    assert!(running["jobs"].as_array().unwrap().is_empty(), "{running}");
    s.ok(["verify", "--index"]);

    // A second sync finishes the rest without embedding anything twice.
    stub.delay(Duration::ZERO);
    let before = stub.texts_embedded();
    let r = s.json(["sync", "notes"]);
    assert_eq!(r["ok"], true);
    assert_eq!(r["collections"][0]["synced"].as_u64(), Some(DOCS - done), "{r}");
    assert_eq!(notes_counts(&s), (DOCS, 0, 0));
    assert_eq!(stub.texts_embedded() as usize, stub.distinct_texts(), "each chunk embedded once across both syncs");
    assert!(stub.texts_embedded() > before);
    s.ok(["verify", "--index"]);
}

#[test]
fn a_cancelled_sync_reports_what_it_did_in_json() {
    let stub = StubEmbedServer::start(16);
    let s = TestStore::new();
    use_stub(&s, &stub);
    s.ok(["collection", "create", "notes"]);
    for i in 0..DOCS {
        s.write(format!("d/{i:04}.md"), format!("Note {i} of the JSON run, topic {}.", i % 11));
    }
    s.ok(["add", "notes", "d"]);
    stub.delay(Duration::from_millis(250));
    let mut sync = s.cmd(["--json", "sync"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let id = running_job(&s, &mut sync);
    s.ok(["jobs", "cancel", &id.to_string()]);
    let out = wait_with_timeout(sync, Duration::from_secs(60));
    out.assert_error(1, &format!("notes: cancelled by `col jobs cancel {id}` after "));
    let doc = out.json();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["collections"], Value::Array(vec![]), "{doc}");
    let stopped = &doc["stopped"][0];
    assert_eq!(
        (stopped["collection"].as_str(), stopped["job"].as_i64(), stopped["reason"].as_str()),
        (Some("notes"), Some(id), Some("cancelled"))
    );
    assert_eq!(stopped["report"]["pending"].as_u64(), Some(DOCS), "{doc}");
    let done = stopped["report"]["synced"].as_u64().unwrap();
    assert_eq!(notes_counts(&s), (done, DOCS - done, 0));
}
