//! What the Roles the tool makes grant, judged as the API server judges them. Its RBAC storage
//! refuses a Role (create or update, apply included) that grants a right its creator does not
//! hold, unless they may `escalate` roles; and a RoleBinding that binds a role whose rights its
//! creator does not hold, unless they may `bind` it (k8s.io/kubernetes,
//! pkg/registry/rbac/{role,rolebinding}/policybased, "Privilege escalation prevention" in the
//! RBAC documentation). So the preflight asks, for each rule of each Role, whether the installer
//! holds it; and the installer's own Role is made from the same lists (`installer_rbac`).

use std::collections::BTreeMap;

use anyhow::Result;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use kube::api::ObjectMeta;

use super::client::Kube;
use super::preflight::{self, Access};
use crate::error::user_error;
use crate::profile::Profile;
use crate::render::Object;

const RBAC: &str = "rbac.authorization.k8s.io";

/// One right a rule grants: `verb` on `resource` of API `group`, for the object `name` only or
/// for all.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Right {
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub name: Option<String>,
}

impl Right {
    pub fn describe(&self, namespace: &str) -> String {
        let res = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        let named = self
            .name
            .as_ref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        format!("{} {res}{named} in namespace {namespace}", self.verb)
    }
}

/// The rules broken down to one right each, as the API server compares them.
pub fn rights_of(rules: &[PolicyRule]) -> Vec<Right> {
    let mut out = Vec::new();
    for rule in rules {
        let names: Vec<Option<String>> = match rule.resource_names.as_deref() {
            Some(names) if !names.is_empty() => names.iter().cloned().map(Some).collect(),
            _ => vec![None],
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for name in &names {
                        out.push(Right {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            name: name.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// A right the API server will want its creator to hold, for which object ("Role/NAME").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub object: String,
    pub right: Right,
}

/// What the Roles and RoleBindings among `objects` grant that the user may not: each right not
/// held, for the Role that grants it (unless the user may `escalate` it) and for the RoleBinding
/// that binds it (unless they may `bind` it). Asked with SelfSubjectAccessReviews.
pub async fn ungrantable(kube: &Kube, objects: &[Object]) -> Result<Vec<Missing>> {
    let mut lacking: BTreeMap<String, Vec<Right>> = BTreeMap::new();
    for o in objects {
        let Object::Role(role) = o else { continue };
        let name = role.metadata.name.clone().unwrap_or_default();
        let mut missing = Vec::new();
        for right in rights_of(role.rules.as_deref().unwrap_or_default()) {
            let held = preflight::allowed(
                kube,
                &right.verb,
                &right.group,
                &right.resource,
                right.name.as_deref(),
                true,
            )
            .await?;
            if !held {
                missing.push(right);
            }
        }
        lacking.insert(name, missing);
    }
    let mut out = Vec::new();
    for o in objects {
        let (object, role, verb) = match o {
            Object::Role(r) => (
                format!("Role/{}", r.metadata.name.as_deref().unwrap_or_default()),
                r.metadata.name.clone().unwrap_or_default(),
                "escalate",
            ),
            Object::RoleBinding(b) if b.role_ref.kind == "Role" => (
                format!(
                    "RoleBinding/{}",
                    b.metadata.name.as_deref().unwrap_or_default()
                ),
                b.role_ref.name.clone(),
                "bind",
            ),
            _ => continue,
        };
        let Some(missing) = lacking.get(&role).filter(|m| !m.is_empty()) else {
            continue;
        };
        if preflight::allowed(kube, verb, RBAC, "roles", Some(&role), true).await? {
            continue;
        }
        out.extend(missing.iter().map(|right| Missing {
            object: object.clone(),
            right: right.clone(),
        }));
    }
    Ok(out)
}

/// Refuse, before any change, what the API server would refuse part way: every right a Role of
/// `objects` grants that the user does not hold, named. `unchanged` ends the message.
pub async fn require_grantable(kube: &Kube, objects: &[Object], unchanged: &str) -> Result<()> {
    let missing = ungrantable(kube, objects).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let mut by_object: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in &missing {
        let rights = by_object.entry(&m.object).or_default();
        let text = m.right.describe(&kube.namespace);
        if !rights.contains(&text) {
            rights.push(text);
        }
    }
    let said: Vec<String> = by_object
        .iter()
        .map(|(object, rights)| format!("{object} grants {}", rights.join(", ")))
        .collect();
    let snapshots = missing
        .iter()
        .any(|m| m.right.group == "snapshot.storage.k8s.io");
    let way_out = if snapshots {
        "; or leave the snapshot schedule out (`snapshots: {enabled: false}` in a --values file)"
    } else {
        ""
    };
    Err(user_error(format!(
        "not allowed to grant what the release's RBAC grants — the API server refuses a Role or RoleBinding with rights its creator does not hold: {}; {unchanged}",
        said.join("; ")
    ))
    .hint(format!(
        "ask a cluster admin for these rights (`phonebill-db render --installer-rbac` prints the Role an installer needs), or for `escalate` and `bind` on roles{way_out}"
    ))
    .into())
}

/// The RBAC an installer of `profile` needs, from the lists the preflight asks about: a Role in
/// the namespace (what install applies, reads and prunes — `delete` of what it made, asked for
/// when a changed profile leaves something out —, and what the release's Roles among `objects`
/// grant) and a ClusterRole for what is cluster-wide (making the namespace and the
/// StorageClass and the VolumeSnapshotClass when they are missing, listing StorageClasses and
/// VolumeSnapshotClasses).
pub fn installer_rbac(profile: &Profile, objects: &[Object]) -> (Role, ClusterRole) {
    let mut wanted = preflight::install_accesses(preflight::InstallNeeds::ALL);
    // Read where allowed, gone without where not: whether the namespace exists (without it,
    // install takes it to exist), and which StorageClasses there are.
    wanted.push(Access::cluster("get", "", "namespaces"));
    wanted.push(Access::cluster("list", "storage.k8s.io", "storageclasses"));
    wanted.push(Access::cluster(
        "list",
        "snapshot.storage.k8s.io",
        "volumesnapshotclasses",
    ));
    // Pruning what the profile no longer renders (asked for when there is something to prune).
    wanted.extend(super::inventory::accesses(super::inventory::MADE, "delete"));
    let mut namespaced: Vec<Right> = Vec::new();
    let mut cluster: Vec<Right> = Vec::new();
    for a in &wanted {
        let right = Right {
            group: a.group.into(),
            resource: a.resource.into(),
            verb: a.verb.into(),
            name: None,
        };
        if a.namespaced {
            namespaced.push(right);
        } else {
            cluster.push(right);
        }
    }
    for o in objects {
        if let Object::Role(role) = o {
            // Granted for all names: the installer's rule is at least as wide.
            namespaced.extend(
                rights_of(role.rules.as_deref().unwrap_or_default())
                    .into_iter()
                    .map(|r| Right { name: None, ..r }),
            );
        }
    }
    let meta = |namespace: Option<String>| ObjectMeta {
        name: Some("phonebill-db-installer".into()),
        namespace,
        labels: Some(
            [(
                "app.kubernetes.io/managed-by".to_string(),
                "phonebill-db".to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    (
        Role {
            metadata: meta(Some(profile.namespace.clone())),
            rules: Some(rules(namespaced)),
        },
        ClusterRole {
            metadata: meta(None),
            rules: Some(rules(cluster)),
            ..Default::default()
        },
    )
}

/// Rights as rules: one per group and resource, its verbs in kubectl's order.
fn rules(rights: Vec<Right>) -> Vec<PolicyRule> {
    const ORDER: &[&str] = &[
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ];
    let rank = |v: &str| ORDER.iter().position(|o| *o == v).unwrap_or(ORDER.len());
    let mut by: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in rights {
        let verbs = by.entry((r.group, r.resource)).or_default();
        if !verbs.contains(&r.verb) {
            verbs.push(r.verb);
        }
    }
    by.into_iter()
        .map(|((group, resource), mut verbs)| {
            verbs.sort_by_key(|v| (rank(v), v.clone()));
            PolicyRule {
                api_groups: Some(vec![group]),
                resources: Some(vec![resource]),
                verbs,
                ..Default::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_breaks_down_into_one_right_per_group_resource_verb_and_name() {
        let rules = vec![
            PolicyRule {
                api_groups: Some(vec!["".into()]),
                resources: Some(vec!["persistentvolumeclaims".into()]),
                resource_names: Some(vec!["data-0".into()]),
                verbs: vec!["get".into()],
                ..Default::default()
            },
            PolicyRule {
                api_groups: Some(vec!["snapshot.storage.k8s.io".into()]),
                resources: Some(vec!["volumesnapshots".into()]),
                verbs: vec!["create".into(), "delete".into()],
                ..Default::default()
            },
        ];
        let rights = rights_of(&rules);
        assert_eq!(rights.len(), 3);
        assert_eq!(rights[0].name.as_deref(), Some("data-0"));
        assert_eq!(
            rights[0].describe("ns"),
            "get persistentvolumeclaims data-0 in namespace ns"
        );
        assert_eq!(
            rights[2].describe("ns"),
            "delete volumesnapshots.snapshot.storage.k8s.io in namespace ns"
        );
    }

    #[test]
    fn the_installer_role_holds_what_install_asks_and_what_its_roles_grant() {
        let profile = Profile::load("dev", None).unwrap();
        let objects = crate::render::render(
            &profile,
            &crate::render::Passwords::placeholders_for(&profile),
            &crate::certs::Tls::placeholders(),
        )
        .unwrap();
        let (role, cluster) = installer_rbac(&profile, &objects);
        let held = rights_of(role.rules.as_deref().unwrap());
        for a in preflight::install_accesses(preflight::InstallNeeds::ALL) {
            let right = Right {
                group: a.group.into(),
                resource: a.resource.into(),
                verb: a.verb.into(),
                name: None,
            };
            let rules = if a.namespaced {
                &held
            } else {
                &rights_of(cluster.rules.as_deref().unwrap())
            };
            assert!(rules.contains(&right), "{right:?}");
        }
        let snapshots = rights_of(role.rules.as_deref().unwrap())
            .into_iter()
            .filter(|r| r.resource == "volumesnapshots")
            .map(|r| r.verb)
            .collect::<Vec<_>>();
        assert_eq!(snapshots, ["get", "list", "create", "delete"]);
        assert_eq!(role.metadata.namespace.as_deref(), Some("phonebill-dev"));
    }
}
