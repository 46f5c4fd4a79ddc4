//! Field sets and merging for server-side apply, after structured-merge-diff's model:
//! a field set is the set of leaf paths an applied configuration names; lists whose items all carry
//! a `name` are associative (merged item by item, keyed by name), every other list is atomic.
//!
//! Deviation from the real server: the real one takes list merge keys from the OpenAPI schema
//! (`containerPort`, `port`+`protocol`, …); this fake keys every list of named items by `name` and
//! treats lists of unnamed items as atomic. The tool's manifests name every list item it merges.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Elem {
    Field(String),
    /// An item of an associative list, by its `name`.
    Key(String),
    /// The item itself (its presence), under a `Key`.
    Dot,
}

pub type Path = Vec<Elem>;

/// Fields the server owns: never part of a manager's field set.
const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The leaf paths `obj` sets, leaving out identity, server-owned metadata and status.
pub fn field_set(obj: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            match k.as_str() {
                "apiVersion" | "kind" | "status" => {}
                "metadata" => {
                    if let Value::Object(meta) = v {
                        for (mk, mv) in meta {
                            if !SERVER_META.contains(&mk.as_str()) {
                                walk(
                                    mv,
                                    vec![Elem::Field(k.clone()), Elem::Field(mk.clone())],
                                    &mut out,
                                );
                            }
                        }
                    }
                }
                _ => walk(v, vec![Elem::Field(k.clone())], &mut out),
            }
        }
    }
    out
}

fn walk(v: &Value, prefix: Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let mut p = prefix.clone();
                p.push(Elem::Field(k.clone()));
                walk(c, p, out);
            }
        }
        Value::Array(items) if associative(items) => {
            for item in items {
                let mut p = prefix.clone();
                p.push(Elem::Key(key_of(item)));
                let mut dot = p.clone();
                dot.push(Elem::Dot);
                out.insert(dot);
                if let Value::Object(m) = item {
                    for (k, c) in m {
                        let mut q = p.clone();
                        q.push(Elem::Field(k.clone()));
                        walk(c, q, out);
                    }
                }
            }
        }
        _ => {
            out.insert(prefix);
        }
    }
}

fn associative(items: &[Value]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|i| i.get("name").is_some_and(|n| n.is_string()))
}

fn key_of(item: &Value) -> String {
    item.get("name")
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_string()
}

/// The value at `path`, if present.
pub fn get<'a>(v: &'a Value, path: &[Elem]) -> Option<&'a Value> {
    let mut cur = v;
    for e in path {
        cur = match e {
            Elem::Field(f) => cur.get(f)?,
            Elem::Key(k) => cur.as_array()?.iter().find(|i| key_of(i) == *k)?,
            Elem::Dot => cur,
        };
    }
    Some(cur)
}

/// Remove the value at `path` (an item for a `Dot` path) and any maps left empty above it.
pub fn remove(v: &mut Value, path: &[Elem]) {
    let path: Vec<&Elem> = path.iter().filter(|e| **e != Elem::Dot).collect();
    remove_rec(v, &path);
}

fn remove_rec(v: &mut Value, path: &[&Elem]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match (first, v) {
        (Elem::Field(f), Value::Object(m)) => {
            if rest.is_empty() {
                m.remove(f.as_str());
            } else if let Some(child) = m.get_mut(f.as_str())
                && remove_rec(child, rest)
            {
                m.remove(f.as_str());
            }
            m.is_empty()
        }
        (Elem::Key(k), Value::Array(items)) => {
            if rest.is_empty() {
                items.retain(|i| key_of(i) != *k);
            } else if let Some(item) = items.iter_mut().find(|i| key_of(i) == *k) {
                remove_rec(item, rest);
            }
            false
        }
        _ => false,
    }
}

/// Lay `over` onto `base`: maps key by key, associative lists item by item, the rest replaced.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o))
            if associative(o) && (b.is_empty() || associative(b)) =>
        {
            for item in o {
                match b.iter_mut().find(|i| key_of(i) == key_of(item)) {
                    Some(slot) => merge(slot, item),
                    None => b.push(item.clone()),
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// The paths whose values differ between `old` and `new` (set or changed in `new`).
pub fn changed(old: Option<&Value>, new: &Value) -> BTreeSet<Path> {
    field_set(new)
        .into_iter()
        .filter(|p| old.is_none_or(|o| get(o, p) != get(new, p)))
        .collect()
}

/// A path as the API prints it in conflict messages: `.spec.template.spec.containers[name="x"].image`.
pub fn display(path: &[Elem]) -> String {
    let mut s = String::new();
    for e in path {
        match e {
            Elem::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Elem::Key(k) => s.push_str(&format!("[name=\"{k}\"]")),
            Elem::Dot => {}
        }
    }
    s
}

/// A field set in the FieldsV1 form of `metadata.managedFields`.
pub fn fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut node = &mut root;
        for e in p {
            let key = match e {
                Elem::Field(f) => format!("f:{f}"),
                Elem::Key(k) => format!("k:{}", json!({ "name": k })),
                Elem::Dot => ".".to_string(),
            };
            node = node
                .entry(key)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("fieldsV1 nodes are maps");
        }
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_lists_merge_by_name_and_others_replace() {
        let mut base = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}], "args": ["x"]}});
        merge(
            &mut base,
            &json!({"spec": {"containers": [{"name": "b", "image": "3"}], "args": ["y", "z"]}}),
        );
        assert_eq!(
            base,
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "3"}], "args": ["y", "z"]}})
        );
    }

    #[test]
    fn field_sets_name_leaves_and_items() {
        let set = field_set(
            &json!({"apiVersion": "v1", "metadata": {"name": "n", "labels": {"a": "b"}}, "spec": {"ports": [{"name": "p", "port": 1}]}, "status": {"x": 1}}),
        );
        let shown: Vec<String> = set.iter().map(|p| display(p)).collect();
        assert_eq!(
            shown,
            vec![
                ".metadata.labels.a",
                ".spec.ports[name=\"p\"].name",
                ".spec.ports[name=\"p\"].port",
                ".spec.ports[name=\"p\"]"
            ]
        );
    }

    #[test]
    fn removing_a_leaf_prunes_empty_maps_and_items() {
        let mut v = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"ports": [{"name": "p"}, {"name": "q"}]}});
        remove(
            &mut v,
            &[
                Elem::Field("metadata".into()),
                Elem::Field("labels".into()),
                Elem::Field("a".into()),
            ],
        );
        remove(
            &mut v,
            &[
                Elem::Field("spec".into()),
                Elem::Field("ports".into()),
                Elem::Key("p".into()),
                Elem::Dot,
            ],
        );
        assert_eq!(v, json!({"spec": {"ports": [{"name": "q"}]}}));
    }
}
