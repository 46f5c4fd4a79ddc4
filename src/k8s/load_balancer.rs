//! A Service's Azure load balancer: internal or public, and the address the cloud gave it.

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

/// Does the Service ask Azure for an internal load balancer?
pub fn is_internal(s: &Service) -> bool {
    s.annotations()
        .get(INTERNAL_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// The Azure cloud provider's annotation for an internal load balancer.
pub const INTERNAL_ANNOTATION: &str = "service.beta.kubernetes.io/azure-load-balancer-internal";

/// The load balancer's IP (or host name) once the cloud has given one.
pub fn address(s: &Service) -> Option<String> {
    let ingress = s
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?;
    let first = ingress.first()?;
    first.ip.clone().or_else(|| first.hostname.clone())
}
