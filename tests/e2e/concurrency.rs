//! Several processes writing to one store at once (PRODUCT §8): all succeed, nothing is lost, verify passes.

use std::collections::BTreeMap;
use std::sync::Barrier;

use colstore_e2e::{Output, TestStore};

use crate::{Rng, keys, sha256_hex};

/// Writes `n` files under `dir`; some share content with the other folder (same `shared` texts), so concurrent
/// writers also race on the same content-addressed blobs.
fn write_folder(s: &TestStore, dir: &str, n: usize, rng: &mut Rng) -> BTreeMap<String, String> {
    let mut hashes = BTreeMap::new();
    for i in 0..n {
        let content = if i % 4 == 0 { format!("shared text {}\n", i % 40).repeat(30).into_bytes() } else { rng.bytes_between(500, 6000) };
        let key = format!("sub{}/f{i:04}.dat", i % 9);
        s.write(format!("{dir}/{key}"), &content);
        hashes.insert(key, sha256_hex(&content));
    }
    hashes
}

#[test]
fn four_writers_at_once_all_succeed() {
    let seed = Rng::seed_from_time();
    println!("concurrency test seed: {seed}");
    let mut rng = Rng::new(seed);
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    s.ok(["collection", "create", "d"]);
    let a = write_folder(&s, "in-a", 800, &mut rng);
    let b = write_folder(&s, "in-b", 800, &mut rng);
    const PUTS: usize = 40;

    let barrier = Barrier::new(4);
    let results: Vec<Vec<(String, Output)>> = std::thread::scope(|scope| {
        let adder = |dir: &'static str, prefix: &'static str| {
            let (s, barrier) = (&s, &barrier);
            scope.spawn(move || {
                barrier.wait();
                vec![(format!("add {dir}"), s.run(["add", "c", dir, "--prefix", prefix]))]
            })
        };
        let putter = |collection: &'static str, stdin: bool| {
            let (s, barrier) = (&s, &barrier);
            scope.spawn(move || {
                barrier.wait();
                (0..PUTS)
                    .map(|i| {
                        let key = format!("put/{i:02}.txt");
                        let text = format!("document {i} of {collection}\n").repeat(i + 1);
                        let out = if stdin {
                            s.run_stdin(["put", collection, &key, "-"], text.as_bytes())
                        } else {
                            s.run(["put", collection, &key, "--text", &text, "--tag", "p"])
                        };
                        (format!("put {collection} {key}"), out)
                    })
                    .collect()
            })
        };
        let handles = [adder("in-a", "a/"), adder("in-b", "b/"), putter("c", false), putter("d", true)];
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (what, out) in results.iter().flatten() {
        assert_eq!(out.code, 0, "col {what} failed while others wrote\n{out}");
        out.assert_no_panic();
    }

    s.ok(["verify"]);
    let ls = s.json(["ls", "c"]);
    assert_eq!(ls["total"].as_u64(), Some((a.len() + b.len() + PUTS) as u64));
    let by_key: BTreeMap<String, String> = ls["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["key"].as_str().unwrap().to_owned(), d["content_hash"].as_str().unwrap().to_owned()))
        .collect();
    for (prefix, files) in [("a/", &a), ("b/", &b)] {
        for (k, h) in files {
            assert_eq!(by_key.get(&format!("{prefix}{k}")), Some(h), "{prefix}{k}");
        }
    }
    for i in 0..PUTS {
        let text = format!("document {i} of d\n").repeat(i + 1);
        assert_eq!(s.ok(["get", "d", &format!("put/{i:02}.txt")]).stdout, text);
    }
    assert_eq!(keys(&s.json(["ls", "d"])).len(), PUTS);
}

/// gc (exclusive) running again and again while writers keep replacing and removing documents: gc must never remove
/// content a document refers to, and every writer still succeeds.
#[test]
fn gc_concurrent_with_writers_keeps_referenced_content() {
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    const ROUNDS: usize = 25;
    let outputs: Vec<(String, Output)> = std::thread::scope(|scope| {
        let writer = |w: usize| {
            let s = &s;
            scope.spawn(move || {
                let mut outs = Vec::new();
                for i in 0..ROUNDS {
                    // Content that becomes garbage and comes back: the race gc must not lose.
                    let text = format!("writer {w} text {}\n", i % 3);
                    outs.push((format!("put w{w} {i}"), s.run(["put", "c", &format!("w{w}/doc.txt"), "--text", &text])));
                    if i % 5 == 2 {
                        outs.push((format!("rm w{w} {i}"), s.run(["rm", "c", &format!("w{w}/doc.txt")])));
                    }
                }
                outs
            })
        };
        let gc = scope.spawn(|| (0..ROUNDS).map(|i| (format!("gc {i}"), s.run(["gc"]))).collect::<Vec<_>>());
        let handles = [writer(0), writer(1), writer(2), gc];
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for (what, out) in &outputs {
        assert_eq!(out.code, 0, "col {what} failed\n{out}");
    }
    s.ok(["verify"]);
    for w in 0..3 {
        let out = s.ok(["get", "c", &format!("w{w}/doc.txt")]);
        assert_eq!(out.stdout, format!("writer {w} text {}\n", (ROUNDS - 1) % 3));
    }
    s.ok(["gc"]);
    s.ok(["verify"]);
}
