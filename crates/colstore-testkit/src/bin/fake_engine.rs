//! `fake-engine qdrant|weaviate`: one of the testkit's faithful engine fakes as a process of its own, for
//! `cargo xtask bench --only remote` and for trying `col` against an engine by hand:
//!
//! ```sh
//! cargo run -p colstore-testkit --features qdrant-fake,weaviate-fake --bin fake-engine -- qdrant
//! # prints http://127.0.0.1:PORT, then serves until its standard input closes (Ctrl-D) or it is killed
//! col init --vectors qdrant://127.0.0.1:PORT
//! ```

use std::io::{BufRead, Write};

use colstore_testkit::qdrant_fake::{QdrantFake, QdrantFakeOptions};
use colstore_testkit::weaviate_fake::{WeaviateFake, WeaviateFakeOptions};

fn main() {
    let engine = std::env::args().nth(1).unwrap_or_default();
    // Kept alive until stdin closes; dropping a fake stops its server.
    let (url, _qdrant, _weaviate) = match engine.as_str() {
        "qdrant" => {
            // No request log: nobody reads it here, and a benchmark's bodies would fill memory.
            let fake = QdrantFake::spawn(QdrantFakeOptions { log_requests: false, ..QdrantFakeOptions::default() });
            (fake.url(), Some(fake), None)
        }
        "weaviate" => {
            let fake = WeaviateFake::spawn(WeaviateFakeOptions::default());
            (fake.url(), None, Some(fake))
        }
        other => {
            eprintln!("usage: fake-engine qdrant|weaviate (not {other:?})");
            std::process::exit(2);
        }
    };
    println!("{url}");
    let _ = std::io::stdout().flush();
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
}
