//! Random filters, translated by the adapter and evaluated by the Qdrant fake, select exactly what
//! `Filter::matches` selects on payloads of every shape the metadata may take (missing, null, scalars of each type,
//! arrays, nested objects, empty containers). Arrays holding only nulls are left out: that difference is known and
//! documented (Qdrant counts `[null]` as empty).

use std::sync::Arc;

use colstore_domain::ports::VectorIndex;
use colstore_domain::{Condition, Distance, FieldPath, Filter, MatchValue, Range};
use colstore_qdrant::QdrantIndex;
use colstore_testkit::index::{index_name, payload_object, point, settings};
use colstore_testkit::qdrant_fake::{QdrantFake, QdrantFakeOptions};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const KEYS: [&str; 7] = ["metadata.a", "metadata.b", "metadata.o.x", "metadata.o", "key", "chunk", "metadata.nope"];

fn shapes() -> Vec<Value> {
    vec![
        json!("x"),
        json!("y"),
        json!(1),
        json!(2),
        json!(1.5),
        json!(-3),
        json!(true),
        json!(false),
        Value::Null,
        json!([]),
        json!(["x", 1]),
        json!([true, "y"]),
        json!([[1], 2]),
        json!({"x": "x"}),
        json!({"x": 1}),
        json!({}),
    ]
}

fn key() -> impl Strategy<Value = FieldPath> {
    prop::sample::select(KEYS.to_vec()).prop_map(|k| FieldPath::parse(k).unwrap())
}

fn match_value() -> impl Strategy<Value = MatchValue> {
    prop_oneof![
        prop::sample::select(vec!["x", "y", "docs/1.md", "docs/2.md", "1"]).prop_map(|s| MatchValue::Text(s.to_owned())),
        (-3i64..4).prop_map(MatchValue::Integer),
        any::<bool>().prop_map(MatchValue::Bool),
    ]
}

fn bound() -> impl Strategy<Value = Option<f64>> {
    prop::option::of(prop::sample::select(vec![-3.0, 0.0, 1.0, 1.5, 2.0, 2.5]))
}

fn leaf() -> impl Strategy<Value = Condition> {
    prop_oneof![
        (key(), match_value()).prop_map(|(key, value)| Condition::Match { key, value }),
        (key(), prop::collection::vec(match_value(), 0..4)).prop_map(|(key, any)| Condition::MatchAny { key, any }),
        (key(), bound(), bound(), bound(), bound())
            .prop_map(|(key, gt, gte, lt, lte)| Condition::Range { key, range: Range { gt, gte, lt, lte } }),
        key().prop_map(|key| Condition::IsEmpty { key }),
    ]
}

fn filter_of(c: impl Strategy<Value = Condition> + Clone) -> impl Strategy<Value = Filter> {
    (prop::collection::vec(c.clone(), 0..3), prop::collection::vec(c.clone(), 0..3), prop::collection::vec(c, 0..3))
        .prop_map(|(must, should, must_not)| Filter { must, should, must_not })
}

fn filter() -> impl Strategy<Value = Filter> {
    let condition = leaf().prop_recursive(
        2,
        12,
        3,
        |inner| prop_oneof![3 => inner.clone(), 1 => filter_of(inner).prop_map(|f| Condition::Nested(Box::new(f)))],
    );
    filter_of(condition)
}

#[test]
fn translated_filters_select_what_the_reference_selects() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let index: Arc<QdrantIndex> = Arc::new(QdrantIndex::new(super::config(&fake.url()), super::RecordingClock::new()).unwrap());
    let c = index_name("cs_test_notes");
    let shapes = shapes();
    // Every shape under a, b and o, in combinations, plus points missing them.
    let points: Vec<_> = (0..(shapes.len() as u64 * 3))
        .map(|n| {
            let mut m = Map::new();
            let pick = |i: u64| shapes[(i as usize) % shapes.len()].clone();
            if n % 5 != 0 {
                m.insert("a".into(), pick(n));
            }
            if n % 7 != 0 {
                m.insert("b".into(), pick(n * 3 + 1));
            }
            if n % 2 == 0 {
                m.insert("o".into(), pick(n / 2 + 13));
            }
            point(n, vec![1.0, n as f32], Value::Object(m))
        })
        .collect();
    runtime.block_on(async {
        index.ensure_collection(&c, &settings(2, Distance::Dot)).await.unwrap();
        index.upsert(&c, points.clone()).await.unwrap();
    });
    let payloads: Vec<Map<String, Value>> = points.iter().map(|p| payload_object(&p.payload)).collect();
    proptest!(ProptestConfig { cases: 192, ..ProptestConfig::default() }, |(f in filter())| {
        let want = payloads.iter().filter(|p| f.matches(p)).count() as u64;
        let got = runtime.block_on(index.count(&c, Some(f.clone()))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got, want, "filter {}", serde_json::to_string(&f).unwrap());
    });
}
