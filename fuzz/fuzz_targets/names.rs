//! Collection names, document keys, tags, field paths and `--where` expressions: never a panic, and what is accepted
//! parses again to the same value.
#![no_main]

use colstore_domain::{CollectionName, DocKey, FieldPath, Filter, Tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(n) = CollectionName::parse(s) {
        assert_eq!(CollectionName::parse(n.as_str()).ok(), Some(n));
    }
    if let Ok(k) = DocKey::parse(s) {
        assert_eq!(DocKey::parse(k.as_str()).ok(), Some(k));
    }
    if let Ok(t) = Tag::parse(s) {
        assert_eq!(Tag::parse(t.as_str()).ok(), Some(t));
    }
    if let Ok(f) = FieldPath::parse(s) {
        assert_eq!(FieldPath::parse(f.as_str()).ok(), Some(f));
    }
    let mut f = Filter::default();
    if f.push_user_expr(s).is_ok() {
        let _ = f.matches(&serde_json::Map::new());
    }
});
