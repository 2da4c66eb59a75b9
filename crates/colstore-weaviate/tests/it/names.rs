//! The class-name mapping: a table of names, reversibility, no collisions (also ignoring case), and refusals.

use std::collections::BTreeMap;

use colstore_domain::ports::IndexError;
use colstore_domain::{CollectionName, IndexName, StoreId};
use colstore_weaviate::class_name;
use colstore_weaviate::names::index_name_of;
use rstest::rstest;

fn name(s: &str) -> IndexName {
    IndexName::parse(s).expect("a valid index name")
}

#[rstest]
#[case("cs_abcdef12_notes", "Cs_abcdef12_notes")]
#[case("cs_0abcdef1_notes", "Cs_10abcdef1_notes")]
#[case("cs_abcdef12_my-notes", "Cs_abcdef12_my_0notes")]
#[case("cs_abcdef12_a_1", "Cs_abcdef12_a_11")]
#[case("cs_abcdef12_a-1", "Cs_abcdef12_a_01")]
#[case("cs_abcdef12_a__b", "Cs_abcdef12_a__b")]
#[case("cs_abcdef12_x_", "Cs_abcdef12_x_")]
#[case("cs_abcdef12_Notes", "Cs_abcdef12__2notes")]
#[case("a", "A")]
#[case("z-", "Z_0")]
fn index_names_map_to_class_names(#[case] index: &str, #[case] class: &str) {
    let got = class_name(&name(index)).expect("a class name");
    assert_eq!(got, class);
    let valid = got.len() <= 255 && got.as_bytes()[0].is_ascii_uppercase() && got.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    assert!(valid, "{got} matches ^[A-Z][_0-9A-Za-z]{{0,254}}$");
    assert_eq!(index_name_of(&got), Some(name(index)), "the mapping is reversible");
}

#[rstest]
#[case("Cs_abc_notes", "lowercase")]
#[case("0cs_notes", "lowercase")]
#[case("_cs", "lowercase")]
#[case("-cs", "lowercase")]
fn names_that_cannot_be_classes_are_refused(#[case] index: &str, #[case] why: &str) {
    match class_name(&name(index)) {
        Err(IndexError::Backend { source, .. }) => assert!(source.to_string().contains(why), "{source}"),
        other => panic!("{index}: expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_name_whose_class_is_too_long_is_refused() {
    // 255 characters of index name, with hyphens that each take two characters in the class.
    let long = format!("c{}", "-".repeat(200));
    let r = class_name(&name(&long));
    assert!(matches!(r, Err(IndexError::Backend { .. })), "{r:?}");
    assert!(class_name(&name(&"c".repeat(255))).is_ok(), "255 plain characters fit");
}

#[test]
fn classes_that_are_not_ours_do_not_map_back() {
    for class in ["cs_notes", "Cs_9x", "Cs_2X", "Cs-x", "", "Cs_1x", "CS_notes"] {
        assert_eq!(index_name_of(class), None, "{class}");
    }
}

/// Names built the way the domain builds them, including ones designed to collide after naive escaping, never give
/// two classes equal ignoring case (Weaviate would refuse the second with 422).
#[test]
fn no_two_names_collide_even_ignoring_case() {
    let store = |n: u128| StoreId(uuid::Uuid::from_u128(n));
    let collections = [
        "notes",
        "my-notes",
        "my_notes",
        "my__notes",
        "my_-notes",
        "my-_notes",
        "my--notes",
        "a1",
        "a_1",
        "a-1",
        "a__1",
        "a_11",
        "a_0",
        "a-0",
        "a_00",
        "0",
        "0-",
        "0_",
        "9_2a",
        "x_2y",
    ];
    let mut seen: BTreeMap<String, IndexName> = BTreeMap::new();
    for s in [store(0xabcdef12 << 96), store(0x0abcdef1 << 96), store(0x12345678 << 96)] {
        for c in collections {
            let index = IndexName::for_collection(s, &CollectionName::parse(c).expect("a collection name"));
            let class = class_name(&index).expect("a class");
            if let Some(other) = seen.insert(class.to_lowercase(), index.clone()) {
                panic!("{index} and {other} both map to {class} (ignoring case)");
            }
            assert_eq!(index_name_of(&class), Some(index));
        }
    }
    let mut extra = vec![name("cs_a_B"), name("cs_a_b"), name("cs_a__2b"), name("cs_a_2b")];
    extra.dedup();
    let classes: Vec<String> = extra.iter().map(|n| class_name(n).expect("a class").to_lowercase()).collect();
    let unique: std::collections::BTreeSet<&String> = classes.iter().collect();
    assert_eq!(unique.len(), classes.len(), "{classes:?}");
}
