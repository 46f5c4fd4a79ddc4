//! The fake cluster's object store and the API semantics the tool relies on: create, read, list
//! with selectors, replace, merge patch, server-side apply with field ownership, status
//! subresource, delete with finalizers and dry run. One lock guards it all.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde_json::{Value, json};

use crate::fields::{self, Path};
use crate::resources::{ResourceInfo, by_kind};
use crate::select::{FieldSelector, LabelSelector};
use crate::status::ApiError;

pub type Key = (&'static str, String, String); // (plural, namespace, name)

#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    pub manager: String,
    pub operation: &'static str, // "Apply" | "Update"
    pub api_version: String,
    pub paths: BTreeSet<Path>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub obj: Value,
    pub owners: Vec<Owner>,
}

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub plural: &'static str,
    pub namespace: String,
    /// ADDED, MODIFIED or DELETED.
    pub kind: &'static str,
    pub object: Value,
}

/// How many changes the fake remembers for watches (older resourceVersions get 410 Expired, as
/// from an API server whose watch cache has moved on).
pub const HISTORY: usize = 5000;

#[derive(Debug, Default)]
pub struct Cluster {
    pub objects: BTreeMap<Key, Entry>,
    rv: u64,
    /// The latest changes, oldest first, for watches.
    pub history: std::collections::VecDeque<Event>,
    /// Woken on every change (watches wait on it).
    pub changed: std::sync::Arc<tokio::sync::Notify>,
    uid: u64,
    next_ip: u32,
    /// (verb, group, resource, namespace) the test user may not use ("*" for any verb; namespace
    /// `None`: anywhere): 403, and SelfSubjectAccessReviews say denied.
    pub denied: Vec<(String, String, String, Option<String>)>,
    /// The test user's rights are a Role in this namespace only: everything outside it, and every
    /// cluster-scoped resource, is denied (SelfSubjectAccessReviews excepted, as for any user).
    pub only_namespace: Option<String>,
    /// The test user's only rights: these RBAC rules (a Role's `rules`) in this namespace, and
    /// these everywhere (a ClusterRole's, bound cluster-wide: cluster-scoped resources and every
    /// namespace).
    pub allowed_only: Option<(String, Vec<Value>)>,
    pub allowed_cluster: Vec<Value>,
    pub kubelet: crate::kubelet::Kubelet,
    /// Every write request ("VERB plural ns/name"), for tests to assert on.
    pub writes: Vec<String>,
    /// Where port-forwards to a pod port lead (`portforward`).
    pub forwards: std::collections::HashMap<u16, std::net::SocketAddr>,
    /// The environment of commands run by pod exec (`exec`).
    pub exec_env: Vec<(String, String)>,
    /// Pods that stand for a server of their own (a second StatefulSet's): their port-forwards
    /// and exec go there instead (`FakeKube::route_pod`), by (namespace, pod).
    pub pod_routes: std::collections::HashMap<(String, String), PodRoute>,
    /// Faults the test injected (`FakeKube::inject`), consumed in order.
    pub faults: Vec<crate::serve::Injected>,
    /// Every request ("METHOD /path"), faults included, for tests to count.
    pub requests: Vec<String>,
    /// What the containers printed (`logs`), by (namespace, pod, container).
    pub logs: std::collections::HashMap<crate::logs::LogKey, crate::logs::ContainerLog>,
    /// The terminal sizes TTY exec sessions were given (resize channel), oldest first.
    pub exec_resizes: Vec<(u16, u16)>,
    /// Notified when the test cuts every open stream (`FakeKube::cut_streams`); `cuts` counts
    /// the cuts, for streams that look instead of waiting (a followed log).
    pub cut: std::sync::Arc<tokio::sync::Notify>,
    pub cuts: u64,
    /// The next port-forward whose client sends these bytes passes them on, then is cut
    /// (`FakeKube::cut_forward_after`): a statement that runs, its answer lost.
    pub cut_after: Option<(Vec<u8>, usize)>,
}

pub struct WriteOpts<'a> {
    pub manager: &'a str,
    pub dry_run: bool,
}

pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl Cluster {
    pub fn key(info: &ResourceInfo, ns: &str, name: &str) -> Key {
        (
            info.plural,
            if info.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        )
    }

    fn entry(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Entry, ApiError> {
        self.objects
            .get(&Self::key(info, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&info.qualified(), name))
    }

    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(info, ns, name))
            .map(|e| e.obj.clone())
            .ok_or_else(|| ApiError::not_found(&info.qualified(), name))
    }

    pub fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Value {
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((plural, n, _), _)| *plural == info.plural && ns.is_none_or(|ns| ns == n))
            .map(|(_, e)| &e.obj)
            .filter(|o| labels.matches(o.pointer("/metadata/labels")) && fields.matches(o))
            .cloned()
            .collect();
        json!({
            "apiVersion": info.api_version(),
            "kind": format!("{}List", info.kind),
            "metadata": {"resourceVersion": self.rv.to_string()},
            "items": items,
        })
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .contains_key(&("namespaces", String::new(), ns.to_string()))
    }

    /// POST: a new object. 409 if it exists, 404 if its namespace does not.
    pub fn create(
        &mut self,
        info: &'static ResourceInfo,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let mut name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let generate = obj
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() && !generate.is_empty() {
            // As the API server does: five characters of its alphabet after the prefix.
            const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let mut seed = self.rv;
            loop {
                seed += 1;
                let mut n = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let suffix: String = (0..5)
                    .map(|_| {
                        let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
                        n /= ALPHABET.len() as u64;
                        c
                    })
                    .collect();
                name = format!("{generate}{suffix}");
                if !self.objects.contains_key(&Self::key(info, ns, &name)) {
                    break;
                }
            }
            obj["metadata"]["name"] = Value::String(name.clone());
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                info.kind,
                "",
                vec![(
                    "metadata.name".into(),
                    "Required value: name or generateName is required".into(),
                )],
            ));
        }
        if info.namespaced && !self.namespace_exists(ns) {
            return Err(ApiError::not_found("namespaces", ns));
        }
        if self.objects.contains_key(&Self::key(info, ns, &name)) {
            return Err(ApiError::already_exists(&info.qualified(), &name));
        }
        if info.has_status && info.kind != "Namespace" {
            obj.as_object_mut().map(|m| m.remove("status"));
        }
        let owners = vec![Owner {
            manager: opts.manager.into(),
            operation: "Update",
            api_version: info.api_version(),
            paths: fields::field_set(&obj),
        }];
        self.commit(info, ns, &name, None, obj, owners, opts.dry_run)
    }

    /// PUT: replace the whole object (or only its status with `status`). Honors resourceVersion.
    pub fn replace(
        &mut self,
        info: &'static ResourceInfo,
        ns: &str,
        name: &str,
        obj: Value,
        status: bool,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let old = self.entry(info, ns, name)?;
        if let Some(rv) = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && rv != old.obj["metadata"]["resourceVersion"]
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    info.qualified()
                ),
            ));
        }
        self.update_with(info, ns, name, old, obj, status, opts)
    }

    /// PATCH with a JSON merge patch (RFC 7386), on the object or its status.
    pub fn merge_patch(
        &mut self,
        info: &'static ResourceInfo,
        ns: &str,
        name: &str,
        patch: &Value,
        status: bool,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let old = self.entry(info, ns, name)?;
        let mut obj = old.obj.clone();
        json_merge_patch(&mut obj, patch);
        self.update_with(info, ns, name, old, obj, status, opts)
    }

    #[allow(clippy::too_many_arguments)]
    fn update_with(
        &mut self,
        info: &'static ResourceInfo,
        ns: &str,
        name: &str,
        old: Entry,
        mut obj: Value,
        status: bool,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if status {
            // The status subresource changes status only.
            let new_status = obj.get("status").cloned().unwrap_or(Value::Null);
            obj = old.obj.clone();
            obj["status"] = new_status;
            return self.commit(
                info,
                ns,
                name,
                Some(&old),
                obj,
                old.owners.clone(),
                opts.dry_run,
            );
        }
        // The status subresource keeps main-resource writes from touching status.
        if info.has_status && info.kind != "Namespace" {
            match old.obj.get("status") {
                Some(s) => obj["status"] = s.clone(),
                None => {
                    obj.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        let changed = fields::changed(Some(&old.obj), &obj);
        let owners = take_ownership(
            &old.owners,
            opts.manager,
            "Update",
            &info.api_version(),
            changed.clone(),
            &changed,
        );
        self.commit(info, ns, name, Some(&old), obj, owners, opts.dry_run)
    }

    /// PATCH with `application/apply-patch+yaml`: server-side apply as `manager`.
    pub fn apply(
        &mut self,
        info: &'static ResourceInfo,
        ns: &str,
        name: &str,
        mut applied: Value,
        force: bool,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let applied_name = applied
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(name);
        if applied_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({applied_name}) does not match the name on the URL ({name})"
            )));
        }
        if applied.get("kind").and_then(Value::as_str) != Some(info.kind) {
            return Err(ApiError::bad_request(format!(
                "the kind of the object does not match {}",
                info.kind
            )));
        }
        if info.has_status {
            applied.as_object_mut().map(|m| m.remove("status"));
        }
        let set = fields::field_set(&applied);
        let Some(old) = self.objects.get(&Self::key(info, ns, name)).cloned() else {
            if info.namespaced && !self.namespace_exists(ns) {
                return Err(ApiError::not_found("namespaces", ns));
            }
            self.check_denied("create", info, ns, "")?;
            let owners = vec![Owner {
                manager: opts.manager.into(),
                operation: "Apply",
                api_version: info.api_version(),
                paths: set,
            }];
            return self.commit(info, ns, name, None, applied, owners, opts.dry_run);
        };
        // Conflicts: fields another manager owns that this apply sets to a different value.
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for o in old.owners.iter().filter(|o| o.manager != opts.manager) {
            for p in o.paths.intersection(&set) {
                if p.last() != Some(&fields::Elem::Dot)
                    && fields::get(&old.obj, p) != fields::get(&applied, p)
                {
                    conflicts.push((o.manager.clone(), fields::display(p)));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            let text: Vec<String> = conflicts
                .iter()
                .map(|(m, f)| format!("conflict with \"{m}\": {f}"))
                .collect();
            return Err(ApiError::new(409, "Conflict", format!("Apply failed with {} conflict{}: {}", conflicts.len(), if conflicts.len() == 1 { "" } else { "s" }, text.join("; ")))
                .details(json!({"name": name, "kind": info.plural, "causes": conflicts.iter().map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": f})).collect::<Vec<_>>()})));
        }
        let mut obj = old.obj.clone();
        // Fields this manager applied before and applies no more, and nobody else owns, go away.
        if let Some(mine) = old
            .owners
            .iter()
            .find(|o| o.manager == opts.manager && o.operation == "Apply")
        {
            for p in mine.paths.difference(&set) {
                if !old
                    .owners
                    .iter()
                    .any(|o| o.manager != opts.manager && o.paths.contains(p))
                {
                    fields::remove(&mut obj, p);
                }
            }
        }
        fields::merge(&mut obj, &applied);
        // Applying a value another manager already set is shared ownership; forcing takes the conflicts.
        let taken: BTreeSet<Path> = old
            .owners
            .iter()
            .filter(|o| o.manager != opts.manager)
            .flat_map(|o| o.paths.intersection(&set))
            .filter(|p| fields::get(&old.obj, p) != fields::get(&applied, p))
            .cloned()
            .collect();
        let owners = take_ownership(
            &old.owners,
            opts.manager,
            "Apply",
            &info.api_version(),
            set,
            &taken,
        );
        self.commit(info, ns, name, Some(&old), obj, owners, opts.dry_run)
    }

    /// DELETE: gone at once, or marked for deletion while finalizers remain (pods: graceful, by the kubelet).
    pub fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = Self::key(info, ns, name);
        let entry = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&info.qualified(), name))?;
        if dry_run {
            return Ok(entry.obj);
        }
        let has_finalizers = entry
            .obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let graceful = info.kind == "Pod";
        if has_finalizers || graceful {
            if entry.obj.pointer("/metadata/deletionTimestamp").is_none() {
                let mut obj = entry.obj.clone();
                obj["metadata"]["deletionTimestamp"] = json!(now());
                if graceful {
                    obj["metadata"]["deletionGracePeriodSeconds"] = json!(30);
                }
                return Ok(self.store(key, obj, entry.owners));
            }
            return Ok(entry.obj);
        }
        self.remove(&key);
        self.writes
            .push(format!("DELETE {} {ns}/{name}", info.plural));
        if info.kind == "Namespace" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|(_, n, _)| n == name)
                .cloned()
                .collect();
            for k in inside {
                self.remove(&k);
            }
        }
        Ok(entry.obj)
    }

    /// Remove an object for good (kubelet: a pod's grace period ended; a finalizer was released).
    pub fn purge(&mut self, info: &ResourceInfo, ns: &str, name: &str) {
        self.remove(&Self::key(info, ns, name));
    }

    /// Remove an object: a new resourceVersion and a DELETED event carrying it.
    fn remove(&mut self, key: &Key) {
        if let Some(entry) = self.objects.remove(key) {
            self.rv += 1;
            let mut obj = entry.obj;
            obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.record(key, "DELETED", obj);
        }
    }

    fn record(&mut self, key: &Key, kind: &'static str, object: Value) {
        self.history.push_back(Event {
            rv: self.rv,
            plural: key.0,
            namespace: key.1.clone(),
            kind,
            object,
        });
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        self.changed.notify_waiters();
    }

    /// The current resourceVersion (what a list reports).
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Internal write by a controller (kubelet, GC): no ownership change, no validation of immutables.
    pub fn system_write(&mut self, info: &'static ResourceInfo, ns: &str, obj: Value) -> Value {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = Self::key(info, ns, &name);
        match self.objects.get(&key).cloned() {
            Some(old) => {
                if strip(&old.obj) == strip(&obj) {
                    return old.obj;
                }
                self.store(key, obj, old.owners)
            }
            None => self
                .commit(info, ns, &name, None, obj, vec![], false)
                .unwrap_or_default(),
        }
    }

    pub fn check_denied(
        &self,
        verb: &str,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if self.is_denied_named(
            verb,
            info.group,
            info.plural,
            if info.namespaced { ns } else { "" },
            name,
        ) {
            let scope = if info.namespaced {
                format!(" in the namespace \"{ns}\"")
            } else {
                " at the cluster scope".into()
            };
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} is forbidden: User \"fake-user\" cannot {verb} resource \"{}\" in API group \"{}\"{scope}",
                    info.qualified(),
                    info.plural,
                    info.group
                ),
            ));
        }
        Ok(())
    }

    /// Is `verb` on `resource` denied in namespace `ns` ("" for the cluster scope)?
    pub fn is_denied(&self, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
        self.is_denied_named(verb, group, resource, ns, "")
    }

    /// [`Cluster::is_denied`] for the object `name` ("" for a list or a create): a Role's rule
    /// may name the objects it allows (`resourceNames`).
    pub fn is_denied_named(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        ns: &str,
        name: &str,
    ) -> bool {
        if resource == "selfsubjectaccessreviews" {
            return false; // every authenticated user may ask about itself
        }
        if let Some((only_ns, rules)) = &self.allowed_only {
            let has = |v: &Value, want: &str| {
                v.as_array()
                    .is_some_and(|a| a.iter().any(|x| x == want || x == "*"))
            };
            let grants = |r: &Value| {
                has(&r["verbs"], verb)
                    && has(&r["apiGroups"], group)
                    && has(&r["resources"], resource)
                    && (r
                        .get("resourceNames")
                        .and_then(Value::as_array)
                        .is_none_or(|n| n.is_empty())
                        || (!name.is_empty() && has(&r["resourceNames"], name)))
            };
            let allowed = (ns == only_ns && rules.iter().any(grants))
                || self.allowed_cluster.iter().any(grants);
            if !allowed {
                return true;
            }
        }
        let outside = self
            .only_namespace
            .as_deref()
            .is_some_and(|only| ns != only);
        outside
            || self.denied.iter().any(|(v, g, r, n)| {
                (v == verb || v == "*")
                    && g == group
                    && r == resource
                    && n.as_deref().is_none_or(|n| n == ns)
            })
    }

    /// RBAC's escalation prevention, as the API server's Role and RoleBinding storage applies it
    /// on every create and update (apply and patch included): a Role may grant only what its
    /// creator holds, unless they may `escalate` roles; a RoleBinding may bind only a role whose
    /// rights its creator holds, unless they may `bind` it (a role that does not exist: 404).
    /// `obj` is the object as it would be stored. Status and message are the real server's
    /// (`ConfirmNoEscalation`, k8s.io/kubernetes pkg/registry/rbac/validation).
    pub fn confirm_no_escalation(
        &self,
        info: &ResourceInfo,
        ns: &str,
        obj: &Value,
    ) -> Result<(), ApiError> {
        const RBAC: &str = "rbac.authorization.k8s.io";
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let rules = match info.kind {
            "Role" => {
                if !self.is_denied_named("escalate", RBAC, "roles", ns, name) {
                    return Ok(());
                }
                obj["rules"].as_array().cloned().unwrap_or_default()
            }
            "RoleBinding" => {
                let role = obj["roleRef"]["name"].as_str().unwrap_or_default();
                let found = self.get(info_of("Role"), ns, role).map_err(|_| {
                    ApiError::new(
                        404,
                        "NotFound",
                        format!("roles.{RBAC} \"{role}\" not found"),
                    )
                })?;
                if !self.is_denied_named("bind", RBAC, "roles", ns, role) {
                    return Ok(());
                }
                found["rules"].as_array().cloned().unwrap_or_default()
            }
            _ => return Ok(()),
        };
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        };
        // Each rule broken down to one right at a time; what is not held, compacted again by
        // everything but the verb (CompactRules), one line each, sorted.
        let mut missing: BTreeMap<(String, String, Vec<String>), Vec<String>> = BTreeMap::new();
        for rule in &rules {
            let names = strings(&rule["resourceNames"]);
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        let held = if names.is_empty() {
                            !self.is_denied_named(&verb, &group, &resource, ns, "")
                        } else {
                            names
                                .iter()
                                .all(|n| !self.is_denied_named(&verb, &group, &resource, ns, n))
                        };
                        if !held {
                            let verbs = missing
                                .entry((group.clone(), resource.clone(), names.clone()))
                                .or_default();
                            if !verbs.contains(&verb) {
                                verbs.push(verb);
                            }
                        }
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let quoted = |items: &[String]| {
            items
                .iter()
                .map(|i| format!("{i:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut lines: Vec<String> = missing
            .iter()
            .map(|((group, resource, names), verbs)| {
                let names = if names.is_empty() {
                    String::new()
                } else {
                    format!(", ResourceNames:[{}]", quoted(names))
                };
                format!(
                    "{{APIGroups:[{}], Resources:[{}]{names}, Verbs:[{}]}}",
                    quoted(std::slice::from_ref(group)),
                    quoted(std::slice::from_ref(resource)),
                    quoted(verbs)
                )
            })
            .collect();
        lines.sort();
        Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: user \"{}\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{}",
                info.qualified(),
                crate::USER,
                lines.join("\n")
            ),
        ))
    }

    /// Validate, default and store a new version of an object, unless it changes nothing.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        info: &'static ResourceInfo,
        ns: &str,
        name: &str,
        old: Option<&Entry>,
        mut obj: Value,
        owners: Vec<Owner>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        obj["apiVersion"] = json!(info.api_version());
        obj["kind"] = json!(info.kind);
        obj["metadata"]["name"] = json!(name);
        if info.namespaced {
            obj["metadata"]["namespace"] = json!(ns);
        }
        self.prepare(info, old.map(|o| &o.obj), &mut obj)?;
        crate::validate::validate(info, old.map(|o| &o.obj), &obj)?;
        self.admit_resize(info, old.map(|o| &o.obj), &obj)?;
        if let Some(old) = old {
            if strip(&old.obj) == strip(&obj) && old.owners == owners {
                return Ok(old.obj.clone()); // a no-op write leaves resourceVersion alone
            }
            for k in ["uid", "creationTimestamp"] {
                obj["metadata"][k] = old.obj["metadata"][k].clone();
            }
            if info.generation {
                let g = old.obj["metadata"]["generation"].as_i64().unwrap_or(1);
                obj["metadata"]["generation"] = json!(if old.obj.get("spec") != obj.get("spec") {
                    g + 1
                } else {
                    g
                });
            }
        } else {
            self.uid += 1;
            obj["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.uid));
            obj["metadata"]["creationTimestamp"] = json!(now());
            if info.generation {
                obj["metadata"]["generation"] = json!(1);
            }
        }
        if dry_run {
            if old.is_none() {
                obj["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("resourceVersion"));
            }
            return Ok(with_managed_fields(obj, &owners));
        }
        self.writes.push(format!(
            "{} {} {ns}/{name}",
            if old.is_some() { "UPDATE" } else { "CREATE" },
            info.plural
        ));
        Ok(self.store(Self::key(info, ns, name), obj, owners))
    }

    /// The objects owned by `name` lose their owner reference to it (orphan propagation).
    pub fn orphan_dependents(&mut self, info: &ResourceInfo, ns: &str, name: &str) {
        let Ok(owner) = self.get(info, ns, name) else {
            return;
        };
        let uid = owner["metadata"]["uid"].clone();
        let owned: Vec<(Key, Value)> = self
            .objects
            .iter()
            .filter(|(_, e)| {
                e.obj
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            })
            .map(|(k, e)| (k.clone(), e.obj.clone()))
            .collect();
        for (key, mut obj) in owned {
            if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != uid);
                if refs.is_empty() {
                    obj["metadata"]
                        .as_object_mut()
                        .map(|m| m.remove("ownerReferences"));
                }
            }
            let owners = self
                .objects
                .get(&key)
                .map(|e| e.owners.clone())
                .unwrap_or_default();
            self.store(key, obj, owners);
        }
    }

    /// The PersistentVolumeClaimResize admission plugin: a claim grows only when its class allows
    /// volume expansion.
    fn admit_resize(
        &self,
        info: &ResourceInfo,
        old: Option<&Value>,
        obj: &Value,
    ) -> Result<(), ApiError> {
        let Some(old) = old.filter(|_| info.kind == "PersistentVolumeClaim") else {
            return Ok(());
        };
        let request = |v: &Value| {
            crate::kubelet::bytes(
                v.pointer("/spec/resources/requests/storage")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )
        };
        if request(obj) <= request(old) {
            return Ok(());
        }
        let class = obj
            .pointer("/spec/storageClassName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let expands = self
            .get(info_of("StorageClass"), "", class)
            .ok()
            .and_then(|sc| sc.get("allowVolumeExpansion").and_then(Value::as_bool))
            .unwrap_or(false);
        if expands {
            return Ok(());
        }
        Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "persistentvolumeclaims \"{}\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
                obj["metadata"]["name"].as_str().unwrap_or_default()
            ),
        ))
    }

    fn store(&mut self, key: Key, obj: Value, owners: Vec<Owner>) -> Value {
        self.rv += 1;
        let mut obj = with_managed_fields(obj, &owners);
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let kind = if self.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.objects.insert(
            key.clone(),
            Entry {
                obj: obj.clone(),
                owners,
            },
        );
        self.record(&key, kind, obj.clone());
        obj
    }

    /// Defaulting and conversions the real API server does on write.
    fn prepare(
        &mut self,
        info: &ResourceInfo,
        old: Option<&Value>,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        match info.kind {
            "Secret" => {
                if let Some(Value::Object(strings)) =
                    obj.as_object_mut().and_then(|m| m.remove("stringData"))
                {
                    for (k, v) in strings {
                        let text = v.as_str().unwrap_or_default();
                        obj["data"][k] =
                            json!(base64::engine::general_purpose::STANDARD.encode(text));
                    }
                }
                if obj.get("type").is_none() {
                    obj["type"] = json!("Opaque");
                }
            }
            "Namespace" => {
                let name = obj["metadata"]["name"].clone();
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
                obj["status"] = json!({"phase": "Active"});
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            "Service" => {
                let spec = &mut obj["spec"];
                default(spec, "type", json!("ClusterIP"));
                default(spec, "sessionAffinity", json!("None"));
                default(spec, "internalTrafficPolicy", json!("Cluster"));
                let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).cloned();
                match (spec.get("clusterIP").cloned(), old_ip) {
                    (None, Some(ip)) => spec["clusterIP"] = ip,
                    (None, None) => {
                        self.next_ip += 1;
                        spec["clusterIP"] = json!(format!(
                            "10.0.{}.{}",
                            100 + self.next_ip / 250,
                            10 + self.next_ip % 250
                        ));
                    }
                    _ => {}
                }
                let ip = spec["clusterIP"].clone();
                spec["clusterIPs"] = json!([ip]);
                default(spec, "ipFamilies", json!(["IPv4"]));
                default(spec, "ipFamilyPolicy", json!("SingleStack"));
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        default(p, "protocol", json!("TCP"));
                        let port = p["port"].clone();
                        default(p, "targetPort", port);
                    }
                }
                if info.has_status && obj.get("status").is_none() {
                    obj["status"] = json!({"loadBalancer": {}});
                }
            }
            "StatefulSet" => {
                let spec = &mut obj["spec"];
                default(spec, "replicas", json!(1));
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                if obj.get("status").is_none() {
                    obj["status"] = json!({"replicas": 0, "availableReplicas": 0});
                }
            }
            "PersistentVolumeClaim" if old.is_none() => {
                obj["status"] = json!({"phase": "Pending"});
                obj["metadata"]["finalizers"] = json!(["kubernetes.io/pvc-protection"]);
                default(&mut obj["spec"], "volumeMode", json!("Filesystem"));
            }
            "Pod" if old.is_none() && obj.get("status").is_none() => {
                obj["status"] = json!({"phase": "Pending"});
            }
            _ => {}
        }
        Ok(())
    }
}

fn default(v: &mut Value, key: &str, value: Value) {
    if v.get(key).is_none() {
        v[key] = value;
    }
}

/// The object without what changes on every write: for no-op detection.
fn strip(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v
}

fn with_managed_fields(mut obj: Value, owners: &[Owner]) -> Value {
    let entries: Vec<Value> = owners
        .iter()
        .filter(|o| !o.paths.is_empty())
        .map(|o| json!({"manager": o.manager, "operation": o.operation, "apiVersion": o.api_version, "fieldsType": "FieldsV1", "fieldsV1": fields::fields_v1(&o.paths)}))
        .collect();
    if entries.is_empty() {
        obj["metadata"]
            .as_object_mut()
            .map(|m| m.remove("managedFields"));
    } else {
        obj["metadata"]["managedFields"] = json!(entries);
    }
    obj
}

/// Give `paths` to `manager` (replacing its set for Apply, adding to it for Update) and take `taken`
/// from everyone else.
fn take_ownership(
    owners: &[Owner],
    manager: &str,
    operation: &'static str,
    api_version: &str,
    paths: BTreeSet<Path>,
    taken: &BTreeSet<Path>,
) -> Vec<Owner> {
    let replace = operation == "Apply";
    let mut out: Vec<Owner> = owners
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if !(o.manager == manager && o.operation == operation) {
                o.paths = o.paths.difference(taken).cloned().collect();
            }
            o
        })
        .filter(|o| !o.paths.is_empty() || (o.manager == manager && o.operation == operation))
        .collect();
    match out
        .iter_mut()
        .find(|o| o.manager == manager && o.operation == operation)
    {
        Some(o) if replace => o.paths = paths,
        Some(o) => o.paths.extend(paths),
        None => out.push(Owner {
            manager: manager.into(),
            operation,
            api_version: api_version.into(),
            paths,
        }),
    }
    out.retain(|o| !o.paths.is_empty());
    out
}

/// RFC 7386.
pub fn json_merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("made an object above");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    json_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// The kind's resource info (panics on a kind this fake does not serve: a test bug).
pub fn info_of(kind: &str) -> &'static ResourceInfo {
    by_kind(kind).unwrap_or_else(|| panic!("fake-kube serves no kind {kind}"))
}

/// Where one pod's port-forwards and exec lead (`FakeKube::route_pod`).
#[derive(Debug, Clone, Default)]
pub struct PodRoute {
    pub forwards: std::collections::HashMap<u16, std::net::SocketAddr>,
    pub exec_env: Vec<(String, String)>,
}
