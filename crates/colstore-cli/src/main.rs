//! `col`: the colstore command-line tool. A thin shell: it parses, calls use cases and renders.
//!
//! The same program is also built as `colstore` (src/bin/colstore.rs), since `col` clashes with util-linux's column
//! filter (/usr/bin/col); clap names it after argv[0] in usage lines.

include!("app.rs");
