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

/// Above this many cells (old × new elements, after the common ends are set aside) the
/// middle of an array is not matched by LCS but removed and added element by element: still
/// a correct, element-wise patch, in linear time and memory, so a pod with a huge array
/// cannot make a review cost quadratic memory (8,000 env entries would take ~256 MB).
const LCS_MAX_CELLS: usize = 1 << 16;

fn arrays(a: &[Value], b: &[Value], path: &mut String, ops: &mut Vec<Op>) {
    let (n, m) = (a.len(), b.len());
    // matched[i] = Some(j): old element i becomes new element j.
    let mut matched = vec![None; n];
    let mut from_old = vec![None; m];
    let mut pair = |i: usize, j: usize| {
        matched[i] = Some(j);
        from_old[j] = Some(i);
    };
    // Equal elements at both ends are kept as they are (inject prepends or appends, so the
    // part left to match is usually tiny).
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    for k in 0..prefix {
        pair(k, k);
    }
    for k in 0..suffix {
        pair(n - 1 - k, m - 1 - k);
    }
    // The middle: longest common subsequence of identities, when it is small enough.
    let (a_mid, b_mid) = (&a[prefix..n - suffix], &b[prefix..m - suffix]);
    let (n_mid, m_mid) = (a_mid.len(), b_mid.len());
    if (n_mid + 1).saturating_mul(m_mid + 1) <= LCS_MAX_CELLS {
        let mut table = vec![vec![0u32; m_mid + 1]; n_mid + 1];
        for i in (0..n_mid).rev() {
            for j in (0..m_mid).rev() {
                table[i][j] = if same(&a_mid[i], &b_mid[j]) {
                    table[i + 1][j + 1] + 1
                } else {
                    table[i + 1][j].max(table[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n_mid && j < m_mid {
            if same(&a_mid[i], &b_mid[j]) && table[i][j] == table[i + 1][j + 1] + 1 {
                pair(prefix + i, prefix + j);
                i += 1;
                j += 1;
            } else if table[i + 1][j] >= table[i][j + 1] {
                i += 1;
            } else {
                j += 1;
            }
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

    #[test]
    fn huge_arrays_cost_linear_memory_and_still_patch_correctly() {
        // 20,000 variables, one changed in the middle, one added in front: no quadratic
        // table (the LCS would need 1.6 GB), and the patch is still element-wise and right.
        let env: Vec<Value> = (0..20_000)
            .map(|i| json!({"name": format!("V{i}"), "value": "x"}))
            .collect();
        let mut changed = env.clone();
        changed[10_000] = json!({"name": "V10000", "value": "y"});
        changed.insert(0, json!({"name": "FIRST", "value": "1"}));
        let (old, new) = (json!({"env": env}), json!({"env": changed}));
        let ops = diff(&old, &new);
        assert_eq!(apply(&old, &ops), new);
        assert!(
            ops.iter().all(|o| o.path() != "/env"),
            "never the whole array"
        );
        // Unrelated huge arrays (nothing in common at the ends) fall back to remove + add.
        let a: Vec<Value> = (0..1_000).map(|i| json!(i)).collect();
        let b: Vec<Value> = (0..1_000).map(|i| json!(-i - 1)).collect();
        let (old, new) = (json!({"x": a}), json!({"x": b}));
        let ops = diff(&old, &new);
        assert_eq!(apply(&old, &ops), new);
    }
}
