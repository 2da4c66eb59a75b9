//! The Weaviate fake's answers checked against the real server's OpenAPI description (Swagger 2, Weaviate 1.39), read
//! from `shared/specs/` in the workspace root's parent (or a folder above it, for a git worktree nested deeper; never
//! copied into the repository): for every endpoint and status the
//! fake answers, the body has the keys the spec requires, with the JSON types and enum values it gives, `$ref`s and
//! `allOf` resolved; a status the spec gives no body (404) has an empty one.

use colstore_testkit::need::{Need, skip};
use colstore_testkit::weaviate_fake::{WeaviateFake, WeaviateFakeOptions};
use serde_json::{Value, json};

use crate::weaviate_http::{Answer, call};

fn spec() -> Option<Value> {
    let Some(path) = colstore_testkit::need::shared_file("specs/weaviate-1.39-openapi.json") else {
        skip(Need::Fixtures, "the Weaviate 1.39 OpenAPI spec (shared/specs/ beside the workspace) is not there");
        return None;
    };
    match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))),
        Err(e) => {
            skip(Need::Fixtures, &format!("the Weaviate spec {} is not readable ({e})", path.display()));
            None
        }
    }
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            resolve(spec, spec.pointer(pointer).unwrap_or_else(|| panic!("unresolvable $ref {r}")))
        }
        None => schema,
    }
}

/// Checks `v` against `schema`, pushing what does not fit onto `errors`.
fn check(spec: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(spec, s, v, at, errors);
        }
    }
    if v.is_null() {
        if schema.get("type").is_some() && schema.get("x-nullable") != Some(&json!(true)) {
            errors.push(format!("{at}: null where the spec wants {}", schema["type"]));
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let fits = match ty {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some(other) => {
            errors.push(format!("{at}: the walker does not know type {other}"));
            true
        }
    };
    if !fits {
        errors.push(format!("{at}: {v} is not of type {}", ty.unwrap_or_default()));
        return;
    }
    if let (Some(e), Some(s)) = (schema.get("enum").and_then(Value::as_array), v.as_str())
        && !e.iter().any(|x| x.as_str() == Some(s))
    {
        errors.push(format!("{at}: {s:?} is not one of {e:?}"));
    }
    if let Some(obj) = v.as_object() {
        for r in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(r) {
                errors.push(format!("{at}: the required key {r:?} is missing"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, s) in props {
                if let Some(x) = obj.get(k) {
                    check(spec, s, x, &format!("{at}.{k}"), errors);
                }
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, x) in list.iter().enumerate() {
            check(spec, items, x, &format!("{at}[{i}]"), errors);
        }
    }
}

struct Checker {
    spec: Value,
    fake: WeaviateFake,
    checked: Vec<String>,
}

impl Checker {
    /// Sends a request and checks the answer against the spec's response for `spec_path` and the answer's status.
    fn expect(&mut self, method: &str, path: &str, spec_path: &str, body: Option<Value>, status: u16) -> Answer {
        let a = call(&self.fake.url(), method, path, body.as_ref(), None);
        assert_eq!(a.status, status, "{method} {path}: {}", String::from_utf8_lossy(&a.body));
        let op = self
            .spec
            .pointer(&format!("/paths/{}/{}", spec_path.replace('~', "~0").replace('/', "~1"), method.to_lowercase()))
            .unwrap_or_else(|| panic!("the spec has no {method} {spec_path}"));
        let response =
            op.pointer(&format!("/responses/{status}")).unwrap_or_else(|| panic!("the spec has no {status} for {method} {spec_path}"));
        match response.get("schema") {
            Some(schema) => {
                let mut errors = Vec::new();
                check(&self.spec, schema, &a.json(), "$", &mut errors);
                assert!(errors.is_empty(), "{method} {path} → {status} does not fit the spec:\n{}", errors.join("\n"));
            }
            None if status == 404 => assert!(a.body.is_empty(), "{method} {path}: not found has an empty body"),
            None => {}
        }
        self.checked.push(format!("{method} {spec_path} {status}"));
        a
    }
}

#[test]
fn every_answer_of_the_fake_fits_the_spec() {
    let Some(spec) = spec() else { return };
    let mut c = Checker { spec, fake: WeaviateFake::spawn(WeaviateFakeOptions { api_key: None, delete_cap: 2 }), checked: Vec::new() };
    let class = json!({
        "class": "Notes",
        "vectorizer": "none",
        "vectorIndexConfig": {"distance": "dot"},
        "properties": [
            {"name": "Key", "dataType": ["text"], "tokenization": "field"},
            {"name": "n", "dataType": ["int"]},
            {"name": "tags", "dataType": ["text[]"], "tokenization": "field"}
        ]
    });
    c.expect("GET", "/v1/meta", "/meta", None, 200);
    c.expect("GET", "/v1/.well-known/ready", "/.well-known/ready", None, 200);
    c.expect("POST", "/v1/schema", "/schema", Some(class), 200);
    c.expect("POST", "/v1/schema", "/schema", Some(json!({"class": "NOTES", "vectorizer": "none"})), 422);
    c.expect("GET", "/v1/schema", "/schema", None, 200);
    c.expect("GET", "/v1/schema/Notes", "/schema/{className}", None, 200);
    c.expect("GET", "/v1/schema/Ghost", "/schema/{className}", None, 404);
    c.expect(
        "POST",
        "/v1/schema/Notes/properties",
        "/schema/{className}/properties",
        Some(json!({"name": "x", "dataType": ["number[]"]})),
        200,
    );
    c.expect(
        "POST",
        "/v1/schema/Notes/properties",
        "/schema/{className}/properties",
        Some(json!({"name": "id", "dataType": ["text"]})),
        422,
    );
    let ids: Vec<String> = (1..=5).map(|n| format!("00000000-0000-0000-0000-00000000000{n}")).collect();
    let objects: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"class": "Notes", "id": id, "vector": if i == 4 { json!([1.0]) } else { json!([1.0, i as f64]) }, "properties": {"key": format!("k{i}"), "n": i, "tags": ["a"]}}))
        .collect();
    let a = c.expect("POST", "/v1/batch/objects", "/batch/objects", Some(json!({"objects": objects})), 200);
    let statuses: Vec<Value> = a.json().as_array().expect("a list").iter().map(|r| r["result"]["status"].clone()).collect();
    assert_eq!(
        statuses,
        [json!("SUCCESS"), json!("SUCCESS"), json!("SUCCESS"), json!("SUCCESS"), json!("FAILED")],
        "a wrong dimension fails that object only"
    );
    c.expect(
        "POST",
        "/v1/batch/objects",
        "/batch/objects",
        Some(json!({"objects": [{"class": "Notes", "id": "42", "vector": [1.0, 0.0]}]})),
        422,
    );
    c.expect("GET", &format!("/v1/objects?class=Notes&limit=2&after={}&include=vector", ids[0]), "/objects", None, 200);
    c.expect("GET", &format!("/v1/objects/Notes/{}", ids[1]), "/objects/{className}/{id}", None, 200);
    c.expect("GET", &format!("/v1/objects/Notes/{}", ids[4]), "/objects/{className}/{id}", None, 404);
    c.expect("DELETE", &format!("/v1/objects/Notes/{}", ids[3]), "/objects/{className}/{id}", None, 204);
    let get = json!({"query": "{ Get { Notes(nearVector: {vector: [1, 0]}, where: {path: [\"n\"], operator: GreaterThanEqual, valueInt: 0}, limit: 2) { key n _additional { id distance vector } } } }"});
    c.expect("POST", "/v1/graphql", "/graphql", Some(get), 200);
    c.expect("POST", "/v1/graphql", "/graphql", Some(json!({"query": "{ Aggregate { Notes { meta { count } } } }"})), 200);
    let bad = c.expect("POST", "/v1/graphql", "/graphql", Some(json!({"query": "{ Get { Ghost { key } } }"})), 200);
    assert!(bad.json()["errors"][0]["message"].as_str().is_some_and(|m| m.contains("Ghost")));
    let backup = json!({"id": "b1", "include": ["Notes"]});
    c.expect("POST", "/v1/backups/filesystem", "/backups/{backend}", Some(backup), 200);
    for want in ["STARTED", "TRANSFERRING", "SUCCESS"] {
        let a = c.expect("GET", "/v1/backups/filesystem/b1", "/backups/{backend}/{id}", None, 200);
        assert_eq!(a.json()["status"], json!(want));
    }
    c.expect("GET", "/v1/backups/filesystem/nope", "/backups/{backend}/{id}", None, 404);
    c.expect("POST", "/v1/backups/filesystem/b1/restore", "/backups/{backend}/{id}/restore", Some(json!({})), 422);
    let w = json!({"path": ["n"], "operator": "GreaterThanEqual", "valueInt": 0});
    let del = c.expect(
        "DELETE",
        "/v1/batch/objects",
        "/batch/objects",
        Some(json!({"match": {"class": "Notes", "where": w}, "output": "verbose"})),
        200,
    );
    assert_eq!(del.json()["results"]["matches"], json!(2), "at most delete_cap per call");
    c.expect("DELETE", "/v1/batch/objects", "/batch/objects", Some(json!({"match": {"class": "Notes"}})), 422);
    c.expect("DELETE", "/v1/schema/Notes", "/schema/{className}", None, 200);
    c.expect("DELETE", "/v1/schema/Notes", "/schema/{className}", None, 200);
    c.expect("POST", "/v1/backups/filesystem/b1/restore", "/backups/{backend}/{id}/restore", Some(json!({})), 200);
    for want in ["STARTED", "TRANSFERRING", "SUCCESS"] {
        let a = c.expect("GET", "/v1/backups/filesystem/b1/restore", "/backups/{backend}/{id}/restore", None, 200);
        assert_eq!(a.json()["status"], json!(want));
    }
    assert_eq!(c.fake.object_counts().get("Notes"), Some(&3), "the restored class holds the backed-up objects");
    assert!(c.checked.len() >= 30, "{:?}", c.checked);
}

#[test]
fn the_walker_finds_what_does_not_fit() {
    let Some(spec) = spec() else { return };
    let mut errors = Vec::new();
    check(
        &spec,
        &json!({"$ref": "#/definitions/BatchDeleteResponse"}),
        &json!({"results": {"matches": "two"}, "dryRun": 1}),
        "$",
        &mut errors,
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    errors.clear();
    check(&spec, &json!({"$ref": "#/definitions/BackupCreateStatusResponse"}), &json!({"status": "DONE"}), "$", &mut errors);
    assert_eq!(errors.len(), 1, "an unknown enum value: {errors:?}");
    errors.clear();
    check(&spec, &json!({"type": "object", "required": ["id"]}), &json!({}), "$", &mut errors);
    assert_eq!(errors.len(), 1, "{errors:?}");
}
