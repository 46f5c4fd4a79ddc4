//! The kinds this fake serves, as the real API server's discovery describes them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Has a status subresource: writes to the main resource leave `.status` alone.
    pub has_status: bool,
    /// Bumps metadata.generation when the spec changes.
    pub generation: bool,
}

const fn r(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    has_status: bool,
    generation: bool,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        plural,
        kind,
        namespaced,
        has_status,
        generation,
    }
}

pub const RESOURCES: &[ResourceInfo] = &[
    r("", "v1", "namespaces", "Namespace", false, true, false),
    r("", "v1", "nodes", "Node", false, true, false),
    r(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        false,
        true,
        false,
    ),
    r("", "v1", "pods", "Pod", true, true, true),
    r("", "v1", "services", "Service", true, true, false),
    r("", "v1", "secrets", "Secret", true, false, false),
    r("", "v1", "configmaps", "ConfigMap", true, false, false),
    r("batch", "v1", "cronjobs", "CronJob", true, true, true),
    r("batch", "v1", "jobs", "Job", true, true, true),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        false,
        false,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        false,
        false,
    ),
    r(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        false,
        false,
    ),
    r(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        true,
        false,
    ),
    r("", "v1", "events", "Event", true, false, false),
    r(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        false,
        false,
    ),
    r("apps", "v1", "deployments", "Deployment", true, true, true),
    r(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        true,
        true,
    ),
    r(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        false,
        true,
    ),
    r(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
        false,
        false,
    ),
    r(
        "snapshot.storage.k8s.io",
        "v1",
        "volumesnapshots",
        "VolumeSnapshot",
        true,
        true,
        true,
    ),
    r(
        "snapshot.storage.k8s.io",
        "v1",
        "volumesnapshotclasses",
        "VolumeSnapshotClass",
        false,
        false,
        false,
    ),
    r(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
        false,
        false,
    ),
    r(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        false,
        false,
    ),
];

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn by_kind(kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// "statefulsets.apps", as error messages name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}
