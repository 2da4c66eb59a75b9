//! kill -9 during the document writes: `col add`, `col put` and `col rm`, in both storage modes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rstest::rstest;
use serde_json::json;

use super::harness::Killer;
use super::oracle::{Doc, Docs, Intended, check_completed, check_run};
use super::{MAX_ROUNDS, seeded, store};
use crate::Rng;

/// Small files in the tree `col add` reads.
const FILES: usize = 1500;

/// The files `col add` reads, and what each holds now (sha256 and size: [`Doc`] without metadata and tags).
struct Tree {
    root: PathBuf,
    current: HashMap<String, Doc>,
}

impl Tree {
    fn write(&mut self, key: &str, bytes: &[u8]) {
        let path = self.root.join(key);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write a source file");
        self.current.insert(key.to_owned(), Doc::plain(bytes));
    }

    /// Every file as `col add … --tag T…` means to store it.
    fn intended(&self, tags: &[&str]) -> Intended {
        self.current
            .iter()
            .map(|(k, d)| (k.clone(), Some(Doc { tags: tags.iter().map(|t| (*t).to_owned()).collect(), ..d.clone() })))
            .collect()
    }
}

/// 1–8 KiB of content: mostly random, every tenth one of five shared texts (so contents are deduplicated).
fn small_content(rng: &mut Rng) -> Vec<u8> {
    if rng.range(0, 9) == 0 {
        let which = rng.range(0, 4);
        format!("shared content number {which}\n").repeat(100 + which as usize * 50).into_bytes()
    } else {
        rng.bytes_between(1024, 8192)
    }
}

fn build_tree(rng: &mut Rng, root: &Path) -> Tree {
    let mut t = Tree { root: root.to_owned(), current: HashMap::new() };
    for i in 0..FILES {
        let c = small_content(rng);
        t.write(&format!("d{:02}/e{}/file-{i:04}.dat", i % 30, i % 7), &c);
    }
    // Above the 1 MiB part size, so the streaming path (blob parts) is part of the crash test.
    for i in 0..2 {
        let c = rng.bytes_between(2 << 20, 3 << 20);
        t.write(&format!("big/blob-{i}.bin"), &c);
    }
    t
}

/// Rewrites about half of the small files and one big file, and adds new files, so the next add has work.
fn mutate(rng: &mut Rng, t: &mut Tree, round: usize) {
    let keys: Vec<String> = t.current.keys().filter(|k| !k.starts_with("big/")).cloned().collect();
    for k in keys {
        if rng.range(0, 1) == 0 {
            let c = small_content(rng);
            t.write(&k, &c);
        }
    }
    let c = rng.bytes_between(2 << 20, 3 << 20);
    t.write(&format!("big/blob-{}.bin", round % 2), &c);
    for j in 0..20 {
        let c = small_content(rng);
        t.write(&format!("new/round-{round:02}/f{j}.dat"), &c);
    }
}

/// `col add` of a changing tree, killed mid-write again and again; every third round also retags every document, so
/// content and tags must change together.
#[rstest]
#[case::sqlite("sqlite")]
#[case::filesystem("filesystem")]
fn kill_9_during_add(#[case] mode: &str) {
    let mut rng = seeded(&format!("add ({mode})"));
    let s = store(mode);
    s.ok(["collection", "create", "c"]);
    let mut tree = build_tree(&mut rng, &s.path().join("src"));
    let mut killer = Killer::new(Rng::new(rng.next_u64()), Duration::from_millis(300));
    let first = tree.intended(&[]);
    killer.run(&s, &["add", "c", "src"], false).completed("the first add");
    let mut acked = check_completed(&s, "c", &Docs::new(), &first, "the first add");
    while !killer.done(MAX_ROUNDS) {
        let round = killer.runs;
        mutate(&mut rng, &mut tree, round);
        let tag = format!("round-{round}");
        let tags: Vec<&str> = if round.is_multiple_of(3) { vec![tag.as_str()] } else { vec![] };
        let mut args = vec!["add", "c", "src"];
        for t in &tags {
            args.extend(["--tag", t]);
        }
        let intended = tree.intended(&tags);
        let run = killer.run(&s, &args, true);
        let what = format!("add ({mode}) round {round}");
        acked = check_run(&s, "c", &run, &acked, &intended, &what);
    }
    killer.assert_enough(&format!("add ({mode})"));
    // An add that runs to the end brings every file in, exactly; killed adds leave garbage at most.
    let intended = tree.intended(&[]);
    s.ok(["add", "c", "src"]);
    check_completed(&s, "c", &acked, &intended, "the last add");
    s.ok(["gc"]);
    super::verify_all(&s);
}

/// `col put` of one document, large (streamed) or small, with new metadata and tags each time, killed mid-write.
#[rstest]
#[case::sqlite("sqlite")]
#[case::filesystem("filesystem")]
fn kill_9_during_put(#[case] mode: &str) {
    let mut rng = seeded(&format!("put ({mode})"));
    let s = store(mode);
    s.ok(["collection", "create", "c"]);
    let mut killer = Killer::new(Rng::new(rng.next_u64()), Duration::from_millis(100));
    let mut acked = Docs::new();
    let src = s.path().join("content.bin");
    let mut round = 0;
    while !killer.done(MAX_ROUNDS) {
        let key = format!("k{}.md", rng.range(0, 5));
        let bytes = if round % 2 == 0 { rng.bytes_between(3 << 20, 9 << 20) } else { rng.bytes_between(10, 4000) };
        std::fs::write(&src, &bytes).expect("write the content");
        let lang = ["en", "de", "fr"][rng.range(0, 2) as usize];
        let meta = json!({ "round": round, "lang": lang });
        let tags: Vec<&str> = ["a", "b", "c"].into_iter().filter(|_| rng.range(0, 1) == 0).collect();
        let meta_text = meta.to_string();
        let mut args = vec!["put", "c", key.as_str(), "content.bin", "--meta", meta_text.as_str()];
        for t in &tags {
            args.extend(["--tag", t]);
        }
        let intended: Intended = [(key.clone(), Some(Doc::new(&bytes, meta, &tags)))].into();
        // Every fourth put runs to the end, so the window learns how long a put writes.
        let run = killer.run(&s, &args, killer.next_kills());
        let what = format!("put ({mode}) round {round}");
        acked = check_run(&s, "c", &run, &acked, &intended, &what);
        round += 1;
    }
    killer.assert_enough(&format!("put ({mode})"));
    super::verify_all(&s);
}

/// `col rm` of many documents at once (after its safety copy), killed mid-write; the documents come back between
/// rounds.
#[rstest]
#[case::sqlite("sqlite")]
#[case::filesystem("filesystem")]
fn kill_9_during_rm(#[case] mode: &str) {
    let mut rng = seeded(&format!("rm ({mode})"));
    let s = store(mode);
    s.ok(["collection", "create", "c"]);
    let root = s.path().join("src");
    for i in 0..400 {
        let path = root.join(format!("f{i:03}.txt"));
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(path, rng.bytes_between(100, 3000)).expect("write");
    }
    let mut killer = Killer::new(Rng::new(rng.next_u64()), Duration::from_millis(50));
    let mut round = 0;
    while !killer.done(MAX_ROUNDS) {
        s.ok(["add", "c", "src"]);
        let acked = super::oracle::listed(&s, "c");
        assert_eq!(acked.len(), 400, "rm round {round}: the documents are back");
        let mut keys: Vec<String> = acked.keys().filter(|_| rng.range(0, 3) == 0).cloned().collect();
        keys.truncate(150);
        let mut args = vec!["rm", "c"];
        args.extend(keys.iter().map(String::as_str));
        let intended: Intended = keys.iter().map(|k| (k.clone(), None)).collect();
        let run = killer.run(&s, &args, killer.next_kills());
        let what = format!("rm ({mode}) round {round}");
        check_run(&s, "c", &run, &acked, &intended, &what);
        round += 1;
    }
    killer.assert_enough(&format!("rm ({mode})"));
    super::verify_all(&s);
}
