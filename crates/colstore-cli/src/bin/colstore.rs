//! `colstore`: the colstore command-line tool under a name that does not clash with util-linux's `col`
//! (/usr/bin/col, package bsdextrautils). The very same program as `col` (src/main.rs).

include!("../app.rs");
