//! Server-side apply of rendered objects with one field manager; reports what changed per object.

use std::fmt::Debug;

use anyhow::Result;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::{Kube, api_error};
use crate::render::Object;

/// The one field manager of everything this tool applies.
pub const FIELD_MANAGER: &str = "phonebill-db";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Configured,
    Unchanged,
    /// Made by an earlier install, no longer rendered by the profile, deleted.
    Pruned,
    /// A dry run that could not ask the server (its namespace does not exist yet): it would be
    /// created, but nothing about it was checked.
    Unchecked,
    /// The apply failed (an install that stopped part way).
    Failed,
    /// Not tried: what came after an apply that failed.
    #[serde(rename = "not-applied")]
    NotApplied,
}

#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub kind: String,
    pub name: String,
    pub change: Change,
    /// A dry run's changes to an object that exists: a unified diff of the live object and the
    /// server's answer (Secrets' values masked), as `kubectl diff` shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Applied {
    pub fn new(kind: impl Into<String>, name: impl Into<String>, change: Change) -> Applied {
        Applied {
            kind: kind.into(),
            name: name.into(),
            change,
            diff: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    pub dry_run: bool,
    pub force_conflicts: bool,
}

/// Apply one object into the release's namespace.
pub async fn apply(kube: &Kube, object: &Object, opts: ApplyOptions) -> Result<Applied> {
    let ns = kube.namespace.as_str();
    let c = kube.client.clone();
    crate::render::each_object!(object, o => apply_typed(kube, Api::namespaced(c, ns), o, opts).await)
}

/// Server-side apply `object` through `api`, comparing resourceVersions to tell what changed.
pub async fn apply_typed<K>(
    kube: &Kube,
    api: Api<K>,
    object: &K,
    opts: ApplyOptions,
) -> Result<Applied>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.name_any();
    let kind = K::kind(&()).to_string();
    let doing = |verb: &str| format!("{verb} {kind} {name} in namespace {}", kube.namespace);
    let before = api
        .get_opt(&name)
        .await
        .map_err(|e| api_error(e, &doing("reading"), &kube.server))?;
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = opts.force_conflicts;
    params.dry_run = opts.dry_run;
    let after = api
        .patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(|e| api_error(e, &doing("applying"), &kube.server))?;
    let (before, after) = (before.map(|b| comparable(&b)), comparable(&after));
    let change = match &before {
        None => Change::Created,
        // A dry run writes nothing, so the resourceVersion cannot tell; and a controller may write
        // the status between our read and our apply (a load balancer's address): compare contents.
        Some(b) if *b == after => Change::Unchanged,
        Some(_) => Change::Configured,
    };
    let diff = match (&before, change, opts.dry_run) {
        (Some(b), Change::Configured, true) => Some(diff(&kind, b, &after)),
        _ => None,
    };
    Ok(Applied {
        kind,
        name,
        change,
        diff,
    })
}

/// A unified diff of two versions of an object, Secrets' values masked (`***`; `*** (before)`
/// and `*** (after)` where one changed), as `kubectl diff` shows them.
pub fn diff(kind: &str, before: &serde_json::Value, after: &serde_json::Value) -> String {
    let (mut before, mut after) = (before.clone(), after.clone());
    if kind == "Secret" {
        mask(&mut before, &mut after);
    }
    let text = |v: &serde_json::Value| serde_yaml::to_string(v).unwrap_or_default();
    let (before, after) = (text(&before), text(&after));
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header("live", "applied")
        .to_string()
}

fn mask(before: &mut serde_json::Value, after: &mut serde_json::Value) {
    let keys: std::collections::BTreeSet<String> = [&*before, &*after]
        .iter()
        .filter_map(|v| v.get("data")?.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    for key in keys {
        let b = before.pointer(&format!("/data/{key}")).cloned();
        let a = after.pointer(&format!("/data/{key}")).cloned();
        let (mb, ma) = if a == b {
            ("***", "***")
        } else {
            ("*** (before)", "*** (after)")
        };
        if b.is_some() {
            before["data"][&key] = serde_json::json!(mb);
        }
        if a.is_some() {
            after["data"][&key] = serde_json::json!(ma);
        }
    }
}

/// An object's JSON without what the server and controllers change on their own.
fn comparable<K: Serialize>(object: &K) -> serde_json::Value {
    let mut v = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for key in ["resourceVersion", "managedFields", "generation"] {
            meta.remove(key);
        }
    }
    v
}

/// Server-side apply of each object (Secrets as `data`), the object being applied on a spinner;
/// the report's table lists each object once, at the end. In a dry run into a namespace that does
/// not exist yet, the objects cannot be dry-run applied: they are reported as created. A failure
/// part way is an error that names what was applied before it and what was not.
pub async fn apply_all(
    kube: &Kube,
    ui: &crate::ui::Ui,
    objects: Vec<crate::render::Object>,
    opts: ApplyOptions,
    namespace_exists: bool,
) -> Result<Vec<Applied>> {
    apply_each(kube, ui, objects, opts, namespace_exists)
        .await
        .map_err(Stopped::into_error)
}

/// Where applying a list stopped: what was applied before (each with its change), the object
/// that failed (Change::Failed) and those not tried (Change::NotApplied), and why.
pub struct Stopped {
    pub objects: Vec<Applied>,
    pub error: anyhow::Error,
}

impl Stopped {
    fn count(&self, f: impl Fn(Change) -> bool) -> usize {
        self.objects.iter().filter(|o| f(o.change)).count()
    }

    fn ids(&self, change: Change) -> Vec<String> {
        self.objects
            .iter()
            .filter(|o| o.change == change)
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect()
    }

    /// The failure, said with where it stopped: the cause keeps its hint and exit code.
    pub fn into_error(self) -> anyhow::Error {
        let done = self.count(|c| !matches!(c, Change::Failed | Change::NotApplied));
        let failed = self.ids(Change::Failed).join(", ");
        let rest = self.ids(Change::NotApplied);
        let rest = if rest.is_empty() {
            "nothing after it".to_string()
        } else {
            format!("not applied: {}", rest.join(", "))
        };
        self.error.context(format!(
            "stopped part way at {failed}: {done} objects applied before it; {rest}"
        ))
    }
}

/// [`apply_all`], stopping at the first failure with what it did and did not apply.
pub async fn apply_each(
    kube: &Kube,
    ui: &crate::ui::Ui,
    objects: Vec<crate::render::Object>,
    opts: ApplyOptions,
    namespace_exists: bool,
) -> std::result::Result<Vec<Applied>, Stopped> {
    let mut applied = Vec::new();
    let bar = ui.spinner("applying");
    let mut objects = objects.into_iter();
    while let Some(object) = objects.next() {
        let object = object.with_secret_data();
        bar.set_message(format!(
            "applying {}/{}",
            object.kind().to_lowercase(),
            object.name()
        ));
        let result = if opts.dry_run && !namespace_exists {
            Applied::new(object.kind(), object.name(), Change::Unchecked)
        } else {
            match apply(kube, &object, opts).await {
                Ok(a) => a,
                Err(error) => {
                    bar.finish_and_clear();
                    applied.push(Applied::new(object.kind(), object.name(), Change::Failed));
                    applied.extend(
                        objects.map(|o| Applied::new(o.kind(), o.name(), Change::NotApplied)),
                    );
                    return Err(Stopped {
                        objects: applied,
                        error,
                    });
                }
            }
        };
        applied.push(result);
    }
    bar.finish_and_clear();
    Ok(applied)
}

pub fn change_text(change: Change, dry_run: bool) -> &'static str {
    match (change, dry_run) {
        (Change::Created, false) => "created",
        (Change::Configured, false) => "configured",
        (Change::Unchanged, false) => "unchanged",
        (Change::Created, true) => "would be created (dry run)",
        (Change::Configured, true) => "would be changed (dry run)",
        (Change::Unchanged, true) => "unchanged (dry run)",
        (Change::Pruned, false) => "pruned (no longer rendered)",
        (Change::Pruned, true) => "would be pruned (dry run)",
        (Change::Unchecked, _) => "would be created (not checked: no namespace yet)",
        (Change::Failed, _) => "FAILED (see the error)",
        (Change::NotApplied, _) => "not applied (install stopped before it)",
    }
}

/// A dry run's diffs, one per object that would change.
pub fn diffs(objects: &[Applied]) -> String {
    let mut out = String::new();
    for o in objects {
        if let Some(diff) = &o.diff {
            out.push_str(&format!("\n{}/{}:\n", o.kind, o.name));
            for line in diff.lines() {
                let style = match line.chars().next() {
                    Some('+') if !line.starts_with("+++") => anstyle::AnsiColor::Green.on_default(),
                    Some('-') if !line.starts_with("---") => anstyle::AnsiColor::Red.on_default(),
                    _ => anstyle::Style::new(),
                };
                out.push_str(&crate::ui::paint(line, style));
                out.push('\n');
            }
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The objects install applied and what happened to each, as a table.
pub fn objects_table(objects: &[Applied], dry_run: bool) -> String {
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            vec![
                o.kind.clone(),
                o.name.clone(),
                change_text(o.change, dry_run).to_string(),
            ]
        })
        .collect();
    crate::ui::table(&["KIND", "NAME", "CHANGE"], &rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_diff_masks_secret_values_and_says_which_changed() {
        let before = json!({"kind": "Secret", "data": {"password": "b2xk", "user": "YXV0aA=="}});
        let after = json!({"kind": "Secret", "data": {"password": "bmV3", "user": "YXV0aA==", "extra": "eA=="}});
        let diff = super::diff("Secret", &before, &after);
        assert!(
            !diff.contains("b2xk") && !diff.contains("bmV3") && !diff.contains("eA=="),
            "{diff}"
        );
        assert!(diff.contains("-  password: '*** (before)'"), "{diff}");
        assert!(diff.contains("+  password: '*** (after)'"), "{diff}");
        assert!(diff.contains("+  extra: '*** (after)'"), "{diff}");
        assert!(diff.contains("   user: '***'"), "{diff}");
        // Anything else is shown as it is.
        let diff = super::diff(
            "ConfigMap",
            &json!({"data": {"a": "1"}}),
            &json!({"data": {"a": "2"}}),
        );
        assert!(
            diff.contains("-  a: '1'") && diff.contains("+  a: '2'"),
            "{diff}"
        );
    }
}
