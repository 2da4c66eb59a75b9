//! `col ls | head -1`: a reader that closes stdout early. Rust ignores SIGPIPE, so `col` sees EPIPE and must end
//! quietly with exit code 0 (not a panic, not an error, not death by signal).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use colstore_e2e::TestStore;

/// A store whose collection `c` holds 2000 documents with long keys, so `col ls c` prints far more than a pipe holds.
fn store_with_2000_docs() -> TestStore {
    let s = TestStore::new();
    for i in 0..2000 {
        s.write(format!("in/a-folder-with-a-rather-long-name/and-another-one/document-number-{i:05}.md"), format!("doc {i}\n"));
    }
    s.ok(["add", "c", "in", "--create"]);
    assert_eq!(s.json(["ls", "c", "--limit", "1"])["total"], 2000);
    s
}

/// Spawns `col ARGS`, reads one line of stdout, closes the pipe, and returns (exit status, first line, stderr).
fn read_one_line_then_close(s: &TestStore, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let mut child = s.cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn col");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    drop(stdout);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (child.wait().unwrap(), first, stderr)
}

#[test]
fn ls_into_a_closed_pipe_exits_cleanly() {
    let s = store_with_2000_docs();
    for args in [&["ls", "c"][..], &["--json", "ls", "c"]] {
        let (status, first, stderr) = read_one_line_then_close(&s, args);
        assert!(!first.is_empty(), "col {} printed nothing", args.join(" "));
        assert_eq!(status.signal(), None, "col {} was killed by signal {:?} (SIGPIPE?)", args.join(" "), status.signal());
        assert_eq!(status.code(), Some(0), "col {} exited with {status}; stderr:\n{stderr}", args.join(" "));
        assert!(!stderr.contains("panicked") && !stderr.contains("error"), "col {}: stderr:\n{stderr}", args.join(" "));
    }
    // Big content into a closed pipe, too (streamed in parts).
    s.write("big.bin", vec![b'x'; 3 * 1024 * 1024]);
    s.ok(["put", "c", "big.bin", "big.bin"]);
    let mut child = s.cmd(["get", "c", "big.bin"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut buf = [0u8; 10];
    child.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), out.status.signal()), (Some(0), None), "col get into a closed pipe: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
