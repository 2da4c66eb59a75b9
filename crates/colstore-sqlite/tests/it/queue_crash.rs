//! The queue's transactions run with `synchronous = NORMAL` (no fsync per commit). That may lose the last commits to
//! a power failure, never to a process crash: a worker killed with `kill -9` right after `complete` returned must
//! find the job `done` on the next open. This test runs itself again as a child process that claims and completes
//! jobs one at a time and prints each completion once `complete` returned; the parent kills it at several points
//! while it writes and checks every printed completion against the database.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use colstore_domain::ports::{JobId, JobQueue, JobSpec, JobState, WorkerId};
use colstore_testkit::ManualClock;

use crate::open;

/// Set in the child: the database it works on.
const CHILD_DB: &str = "COLSTORE_QUEUE_CRASH_DB";

const JOBS: usize = 4000;

fn spec(i: usize) -> JobSpec {
    JobSpec { kind: "crash".into(), dedup_key: None, payload: serde_json::json!({ "i": i }), max_attempts: 100, run_after: None }
}

/// The child: claim one, complete it, say so; until no job is left (or the parent kills it).
async fn work(db: &std::path::Path) {
    let repo = open(db, Arc::new(ManualClock::at_2024())).await;
    let me = WorkerId(format!("child-{}", std::process::id()));
    loop {
        // A lease of a year: a job a killed child held stays running (the parent checks completions only).
        let leases = repo.claim(&me, vec!["crash".into()], 1, Duration::from_secs(365 * 86_400)).await.expect("claim");
        let Some(lease) = leases.into_iter().next() else { break };
        repo.complete(&lease).await.expect("complete");
        println!("done {}", lease.job.id.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_loses_no_completion() {
    if let Some(db) = std::env::var_os(CHILD_DB) {
        work(std::path::Path::new(&db)).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("colstore.db");
    {
        let repo = open(&db, Arc::new(ManualClock::at_2024())).await;
        for i in 0..JOBS {
            repo.enqueue(spec(i)).await.expect("enqueue");
        }
        repo.close().await;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let mut acknowledged: Vec<i64> = Vec::new();
    // Kill after this many completions in each round; the child keeps writing while the parent reads the line.
    let rounds = [1usize, 37, 211, 523, 64, 997];
    for kill_after in rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "queue_crash::a_kill_9_loses_no_completion", "--nocapture", "--test-threads=1"])
            .env(CHILD_DB, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("a line from the child");
            if let Some(id) = line.strip_prefix("done ") {
                acknowledged.push(id.parse().expect("a job id"));
                seen += 1;
                if seen == kill_after {
                    child.kill().expect("kill -9 the child");
                    break;
                }
            }
        }
        let status = child.wait().expect("wait for the child");
        assert!(!status.success(), "round {kill_after}: the child was killed, it did not finish");
        assert_eq!(seen, kill_after, "the child completed {seen} jobs before it stopped, not {kill_after}");
    }
    let repo = open(&db, Arc::new(ManualClock::at_2024())).await;
    for id in &acknowledged {
        let job = repo.get(JobId(*id)).await.expect("an acknowledged job is still there");
        assert_eq!(job.state, JobState::Done, "job {id} was acknowledged as completed before the kill");
    }
    assert_eq!(acknowledged.len(), rounds.iter().sum::<usize>(), "every round's completions were checked");
}
