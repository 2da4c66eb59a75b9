//! Property tests of `config.toml`: any text is a configuration or an error with a line and column, never a panic; a
//! configuration written by colstore reads back the same. (`cargo xtask fuzz config` runs longer.)

use std::path::Path;

use colstore_domain::{StoreId, Timestamp};
use colstore_wiring::{StorageMode, StoreConfig, WiringError};
use proptest::prelude::*;

/// Text that looks like a config file more often than not: lines of the real file, some changed.
fn config_like() -> impl Strategy<Value = String> {
    let sample = StoreConfig::new(StoreId::random(), Timestamp::from_millis(1), "/p".into(), StorageMode::Sqlite).to_toml();
    let lines: Vec<String> = sample.lines().map(str::to_owned).collect();
    prop_oneof![
        any::<String>(),
        proptest::collection::vec((0..lines.len(), any::<u8>(), ".{0,12}"), 0..6).prop_map(move |edits| {
            let mut l = lines.clone();
            for (i, how, s) in edits {
                match how % 4 {
                    0 => l[i] = s,
                    1 => l[i].push_str(&s),
                    2 => l[i] = l[i].replace('=', &s),
                    _ => l.insert(i, s),
                }
            }
            l.join("\n")
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_config_or_a_located_error(text in config_like()) {
        match StoreConfig::parse(&text, Path::new("config.toml")) {
            Ok(c) => prop_assert_eq!(StoreConfig::parse(&c.to_toml(), Path::new("config.toml")).ok(), Some(c)),
            Err(WiringError::Config { line, column, message, .. }) => {
                prop_assert!(line >= 1 && column >= 1 && !message.is_empty(), "{line}:{column} {message}");
            }
            Err(other) => prop_assert!(false, "not a config error: {other}"),
        }
    }

    #[test]
    fn a_written_config_reads_back(keep in 1u32..1000, filesystem in any::<bool>(), repo in "[a-z]{1,10}") {
        let mode = if filesystem { StorageMode::Filesystem } else { StorageMode::Sqlite };
        let mut c = StoreConfig::new(StoreId::random(), Timestamp::from_millis(1_700_000_000_000), "/p/q".into(), mode);
        c.backup.keep_last = keep;
        c.backup.repository = format!("file:///{repo}");
        prop_assert_eq!(StoreConfig::parse(&c.to_toml(), Path::new("config.toml")).expect("its own text"), c);
    }
}
