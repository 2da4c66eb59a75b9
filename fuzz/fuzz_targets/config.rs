//! `config.toml`: any text is a configuration or an error with a line and column; what is accepted writes and reads
//! back the same.
#![no_main]

use std::path::Path;

use colstore_wiring::StoreConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(c) = StoreConfig::parse(text, Path::new("config.toml")) {
        assert_eq!(StoreConfig::parse(&c.to_toml(), Path::new("config.toml")).ok(), Some(c));
    }
});
