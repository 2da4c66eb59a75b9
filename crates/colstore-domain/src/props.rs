//! Property tests of the parsers a user or a file hands the domain: names, keys, tags, field paths and `--where`
//! expressions. Whatever the input, parsing never panics, and what it accepts parses again to the same value. The case
//! count is bounded for CI (`PROPTEST_CASES` raises it; `cargo xtask fuzz` runs the fuzz targets for longer).

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::{CollectionName, DocFilter, DocKey, FieldPath, Tag, Timestamp};

/// Arbitrary text that leans towards the characters these parsers care about.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just('/'),
                Just('.'),
                Just('\\'),
                Just('\0'),
                Just(' '),
                Just('='),
                Just('!'),
                Just('<'),
                Just('>'),
                Just(','),
                Just('"'),
                Just('('),
                Just(')'),
                Just(':'),
                Just('\u{301}'),
                Just('é'),
                proptest::char::range('a', 'z'),
                proptest::char::range('0', '9'),
            ],
            0..80
        )
        .prop_map(|v| v.into_iter().collect()),
        Just("x".repeat(1100)),
    ]
}

/// A `--where` expression over metadata only, from the grammar: atoms joined by `and`, `or`, `not` and parentheses.
fn metadata_expr() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        ("[abc]", "[xy0-2]").prop_map(|(f, v)| format!("{f}={v}")),
        ("[abc]", "[xy0-2]").prop_map(|(f, v)| format!("{f}!={v}")),
        ("[abc]", prop_oneof![Just("<"), Just("<="), Just(">"), Just(">=")], 0..3).prop_map(|(f, op, n)| format!("{f}{op}{n}")),
        ("[abc]", "[xy0-2]", "[xy0-2]").prop_map(|(f, v, w)| format!("{f} in {v},{w}")),
        "[abc]".prop_map(|f| format!("{f} exists")),
        "[abc]".prop_map(|f| format!("{f} missing")),
    ];
    atom.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.clone().prop_map(|a| format!("not ({a})")),
        ]
    })
}

/// A metadata object with the fields `metadata_expr` asks about: missing, null, scalars of each type, arrays.
fn metadata() -> impl Strategy<Value = Map<String, Value>> {
    let value = prop_oneof![
        Just(Value::Null),
        Just(json!("x")),
        Just(json!("y")),
        (0..3i64).prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!(true)),
        Just(json!([])),
        Just(json!(["x", 2])),
        Just(json!({"x": 1})),
    ];
    proptest::collection::btree_map("[abc]", value, 0..3).prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A metadata-only expression means the same as the index filter it becomes (what `col search --where` sends).
    #[test]
    fn metadata_expressions_mean_the_same_as_their_index_filter(expr in metadata_expr(), meta in metadata()) {
        let f = DocFilter::parse(&expr, Timestamp::from_millis(0)).expect("the grammar's own expressions parse");
        let index_filter = f.as_metadata_filter().expect("metadata only");
        let doc = crate::DocumentMeta {
            collection: CollectionName::parse("c").expect("name"),
            key: DocKey::parse("k").expect("key"),
            content_hash: crate::ContentHash::of(b""),
            size: 0,
            metadata: crate::Metadata(meta.clone()),
            tags: crate::Tags::default(),
            version: 1,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        };
        prop_assert_eq!(index_filter.matches(&meta), f.matches(&doc), "{} → {:?}", expr, index_filter);
    }

    #[test]
    fn collection_names_parse_or_refuse_and_round_trip(s in text()) {
        if let Ok(n) = CollectionName::parse(&s) {
            prop_assert_eq!(n.as_str(), s.as_str(), "a collection name is taken as written");
            prop_assert_eq!(CollectionName::parse(n.as_str()).ok(), Some(n));
        }
    }

    #[test]
    fn valid_collection_names_are_accepted(s in "[a-z0-9][a-z0-9_-]{0,62}") {
        prop_assert!(CollectionName::parse(&s).is_ok(), "{s:?}");
    }

    /// The ASCII fast path of `DocKey::parse` accepts exactly what the general rules accept.
    #[test]
    fn the_ascii_fast_path_of_keys_agrees_with_the_rules(s in prop_oneof![
        "[a-z/.:\\\\\\x00-\\x1f\\x7f ]{0,12}",
        Just("x".repeat(1024)),
        Just("x".repeat(1025)),
    ]) {
        prop_assert_eq!(DocKey::parse(&s).is_ok(), DocKey::parse_general(&s).is_ok(), "{:?}", s);
    }

    #[test]
    fn keys_parse_or_refuse_and_round_trip(s in text()) {
        if let Ok(k) = DocKey::parse(&s) {
            let again = DocKey::parse(k.as_str());
            prop_assert_eq!(again.as_ref().ok(), Some(&k), "parsing a key's own text gives the same key");
            prop_assert!(!k.as_str().starts_with('/') && !k.as_str().contains("//") && !k.as_str().contains('\0'));
            prop_assert!(k.as_str().split('/').all(|seg| seg != "." && seg != ".."), "{k:?}");
        }
    }

    #[test]
    fn tags_and_field_paths_parse_or_refuse_and_round_trip(s in text()) {
        if let Ok(t) = Tag::parse(&s) {
            prop_assert_eq!(Tag::parse(t.as_str()).ok(), Some(t));
        }
        if let Ok(f) = FieldPath::parse(&s) {
            prop_assert_eq!(FieldPath::parse(f.as_str()).ok(), Some(f));
        }
    }

    /// Any `--where` text is a filter or a clear refusal, never a panic; a filter it accepts can be evaluated.
    #[test]
    fn where_expressions_parse_or_refuse(s in text()) {
        match DocFilter::parse(&s, Timestamp::from_millis(0)) {
            Ok(f) => {
                let _ = f.as_metadata_filter().map(|f| f.matches(&Map::new()));
            }
            Err(e) => prop_assert!(e.to_string().contains("at column "), "{e}"),
        }
    }

    /// `FIELD=VALUE` matches exactly the documents whose field holds that value.
    #[test]
    fn an_equality_matches_its_value(field in "[a-z][a-z0-9_]{0,8}", value in "[a-z][a-z0-9]{0,8}", other in "[a-z][a-z0-9]{0,8}") {
        prop_assume!(![value.as_str(), other.as_str()].iter().any(|v| *v == "true" || *v == "false"), "typed as booleans");
        let f = DocFilter::parse(&format!("{field}={value}"), Timestamp::from_millis(0))
            .expect("a plain equality parses")
            .as_metadata_filter()
            .expect("metadata only");
        let doc = |v: &str| json!({ field.clone(): v }).as_object().cloned().expect("an object");
        prop_assert!(f.matches(&doc(&value)));
        prop_assert_eq!(f.matches(&doc(&other)), other == value);
        prop_assert!(!f.matches(&Map::<String, Value>::new()), "a document without the field does not match");
    }
}
