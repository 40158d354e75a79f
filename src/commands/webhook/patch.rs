//! A JSON Patch (RFC 6902) from one JSON document to another, element by element.
//!
//! Admission webhooks that replace whole arrays (`replace /spec/containers`) drop whatever
//! another webhook, or a newer API server, put there that they do not know about. This
//! diff never does: objects are patched key by key, and arrays element by element, with the
//! elements of the old and new array matched by identity (a `name` field for the objects
//! Kubernetes keys by name, such as containers, env and volumes; the whole value otherwise)
//! along their longest common subsequence. So inserting the sidecar in front of existing
//! init containers is one `add /spec/initContainers/0`, and one more variable is
//! `add /spec/containers/1/env/-`. A key or array that does not exist yet is added whole.

use serde_json::{Map, Value, json};

/// One operation, as the JSON object the API server reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Add { path: String, value: Value },
    Remove { path: String },
    Replace { path: String, value: Value },
}

impl Op {
    pub fn to_json(&self) -> Value {
        match self {
            Op::Add { path, value } => json!({"op": "add", "path": path, "value": value}),
            Op::Remove { path } => json!({"op": "remove", "path": path}),
            Op::Replace { path, value } => {
                json!({"op": "replace", "path": path, "value": value})
            }
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Op::Add { path, .. } | Op::Remove { path } | Op::Replace { path, .. } => path,
        }
    }
}

/// The operations that turn `old` into `new`, in order.
pub fn diff(old: &Value, new: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    walk(old, new, &mut String::new(), &mut ops);
    ops
}

/// The patch as a JSON array.
pub fn to_json(ops: &[Op]) -> Value {
    Value::Array(ops.iter().map(Op::to_json).collect())
}

/// A JSON Pointer reference token (RFC 6901): `~` → `~0`, `/` → `~1`.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn walk(old: &Value, new: &Value, path: &mut String, ops: &mut Vec<Op>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => objects(a, b, path, ops),
        (Value::Array(a), Value::Array(b)) => arrays(a, b, path, ops),
        _ => ops.push(Op::Replace {
            path: path.clone(),
            value: new.clone(),
        }),
    }
}

fn objects(a: &Map<String, Value>, b: &Map<String, Value>, path: &mut String, ops: &mut Vec<Op>) {
    let len = path.len();
    for k in a.keys().filter(|k| !b.contains_key(*k)) {
        path.push('/');
        path.push_str(&escape(k));
        ops.push(Op::Remove { path: path.clone() });
        path.truncate(len);
    }
    for (k, v) in b {
        path.push('/');
        path.push_str(&escape(k));
        match a.get(k) {
            Some(old) => walk(old, v, path, ops),
            None => ops.push(Op::Add {
                path: path.clone(),
                value: v.clone(),
            }),
        }
        path.truncate(len);
    }
}

/// Identity of an array element for matching: objects by their `name`, the rest by value.
fn same(a: &Value, b: &Value) -> bool {
    match (name(a), name(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a == b,
        _ => false,
    }
}

fn name(v: &Value) -> Option<&str> {
    v.as_object()?.get("name")?.as_str()
}

fn arrays(a: &[Value], b: &[Value], path: &mut String, ops: &mut Vec<Op>) {
    // Longest common subsequence of identities (arrays in pod specs are short).
    let (n, m) = (a.len(), b.len());
    let mut table = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i][j] = if same(&a[i], &b[j]) {
                table[i + 1][j + 1] + 1
            } else {
                table[i + 1][j].max(table[i][j + 1])
            };
        }
    }
    // matched[i] = Some(j): old element i becomes new element j.
    let mut matched = vec![None; n];
    let mut from_old = vec![None; m];
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if same(&a[i], &b[j]) && table[i][j] == table[i + 1][j + 1] + 1 {
            matched[i] = Some(j);
            from_old[j] = Some(i);
            i += 1;
            j += 1;
        } else if table[i + 1][j] >= table[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    let len = path.len();
    // Removals first, from the back, so the old indices stay valid.
    for i in (0..n).rev().filter(|i| matched[*i].is_none()) {
        path.push('/');
        path.push_str(&i.to_string());
        ops.push(Op::Remove { path: path.clone() });
        path.truncate(len);
    }
    // Now the array holds the kept elements in order; build the new one front to back.
    let mut current = n - matched.iter().filter(|m| m.is_none()).count();
    for (j, item) in b.iter().enumerate() {
        path.push('/');
        match from_old[j] {
            Some(i) => {
                path.push_str(&j.to_string());
                walk(&a[i], item, path, ops);
            }
            None => {
                if j == current {
                    path.push('-');
                } else {
                    path.push_str(&j.to_string());
                }
                ops.push(Op::Add {
                    path: path.clone(),
                    value: item.clone(),
                });
                current += 1;
            }
        }
        path.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apply with an independent implementation (the json-patch crate).
    fn apply(old: &Value, ops: &[Op]) -> Value {
        let mut doc = old.clone();
        let patch: json_patch::Patch = serde_json::from_value(to_json(ops)).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        doc
    }

    fn paths(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .map(|o| format!("{} {}", o.to_json()["op"].as_str().unwrap(), o.path()))
            .collect()
    }

    #[test]
    fn inserting_in_front_is_one_add_at_index_zero() {
        let old = json!({"spec": {"initContainers": [{"name": "a"}], "containers": [{"name": "app", "env": [{"name": "X", "value": "1"}]}]}});
        let new = json!({"spec": {"initContainers": [{"name": "passport"}, {"name": "a"}], "containers": [{"name": "app", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}});
        let ops = diff(&old, &new);
        assert_eq!(
            paths(&ops),
            ["add /spec/initContainers/0", "add /spec/containers/0/env/-"]
        );
        assert_eq!(apply(&old, &ops), new);
    }

    #[test]
    fn missing_objects_are_added_whole_and_keys_escaped() {
        let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}});
        let new = json!({"metadata": {"name": "p", "annotations": {"a/b": "1"}}, "spec": {"containers": [{"name": "app"}], "volumes": [{"name": "v"}]}});
        let ops = diff(&old, &new);
        assert_eq!(
            paths(&ops),
            ["add /metadata/annotations", "add /spec/volumes"]
        );
        assert_eq!(apply(&old, &ops), new);
        let old = json!({"metadata": {"annotations": {"x": "1"}}});
        let new = json!({"metadata": {"annotations": {"x": "1", "a/b~c": "2"}}});
        assert_eq!(
            paths(&diff(&old, &new)),
            ["add /metadata/annotations/a~1b~0c"]
        );
    }

    #[test]
    fn equal_documents_give_an_empty_patch() {
        let doc = json!({"a": [1, 2, {"name": "x"}], "b": {"c": null}});
        assert!(diff(&doc, &doc).is_empty());
    }

    #[test]
    fn moves_removals_and_replacements_round_trip() {
        let cases = [
            (json!([1, 2, 3]), json!([3, 1, 2])),
            (
                json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]),
                json!([{"name": "c", "x": 1}, {"name": "a"}]),
            ),
            (
                json!({"a": [1, 2], "b": 1}),
                json!({"a": "now a string", "c": [2]}),
            ),
            (json!([]), json!([{"name": "a"}, 5, "s"])),
            (json!([1, 1, 1]), json!([1])),
            (
                json!({"x": [{"name": "a", "v": [1]}, {"name": "b"}]}),
                json!({"x": [{"name": "p"}, {"name": "a", "v": [0, 1]}, {"name": "b"}, {"name": "q"}]}),
            ),
        ];
        for (old, new) in cases {
            let ops = diff(&old, &new);
            assert_eq!(apply(&old, &ops), new, "{old} -> {new}: {ops:?}");
        }
    }

    /// Small JSON trees shaped like pod specs: objects, arrays of named objects, scalars.
    fn json_tree() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0i64..4).prop_map(Value::from),
            "[ab/~]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::vec(("[abn/~]{1,2}", inner.clone()), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                proptest::collection::vec(("[xyz]", inner), 0..5).prop_map(|items| {
                    Value::Array(
                        items
                            .into_iter()
                            .map(|(n, v)| json!({"name": n, "v": v}))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_diff_applies_to_the_new_document(old in json_tree(), new in json_tree()) {
            let ops = diff(&old, &new);
            proptest::prop_assert_eq!(apply(&old, &ops), new.clone());
            if old == new {
                proptest::prop_assert!(ops.is_empty());
            }
        }
    }

    #[test]
    fn never_replaces_a_whole_array_when_elements_change() {
        let old = json!({"c": [{"name": "a", "image": "x"}, {"name": "b"}]});
        let new = json!({"c": [{"name": "a", "image": "y"}, {"name": "b", "env": []}]});
        let ops = diff(&old, &new);
        assert_eq!(paths(&ops), ["replace /c/0/image", "add /c/1/env"]);
    }
}
