//! One RBAC permission a command needs, as the preflight asks about it and a Role grants it.

use serde::Serialize;

/// One permission a command needs: `verb` on `resource` (of API `group`), in the namespace or cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub namespaced: bool,
}

impl Access {
    pub const fn ns(verb: &'static str, group: &'static str, resource: &'static str) -> Access {
        Access {
            verb,
            group,
            resource,
            namespaced: true,
        }
    }
    pub const fn cluster(
        verb: &'static str,
        group: &'static str,
        resource: &'static str,
    ) -> Access {
        Access {
            verb,
            group,
            resource,
            namespaced: false,
        }
    }
    pub fn describe(&self, namespace: &str) -> String {
        let res = if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        if self.namespaced {
            format!("{} {res} in namespace {namespace}", self.verb)
        } else {
            format!("{} {res} (cluster-wide)", self.verb)
        }
    }
}
