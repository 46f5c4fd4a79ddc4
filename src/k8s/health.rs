//! The cluster half of `verify`: the pod is Ready, the data volume Bound, every Service has a ready
//! endpoint, the Secrets exist.

use anyhow::Result;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::client::{Kube, api_error};
use super::release::{ReleaseState, pod_ready, pvc_phase};
use crate::check::Check;
use crate::profile::Names;

pub async fn checks(kube: &Kube, state: &ReleaseState, names: &Names) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    let pod = state.pods.iter().find(|p| p.name_any() == names.pod);
    out.push(match pod {
        Some(p) if pod_ready(p) && p.metadata.deletion_timestamp.is_none() => {
            Check::pass("pod ready", format!("{} Ready", names.pod))
        }
        Some(_) => Check::fail(
            "pod ready",
            format!("{} is not Ready (see `phonebill-db status`)", names.pod),
        ),
        None => Check::fail("pod ready", format!("pod {} does not exist", names.pod)),
    });
    let phase = pvc_phase(state.pvc(names));
    out.push(if phase == "Bound" {
        Check::pass("data volume bound", format!("{} Bound", names.pvc))
    } else {
        Check::fail("data volume bound", format!("{} is {phase}", names.pvc))
    });
    let slices: Api<EndpointSlice> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut problems = Vec::new();
    for svc in [&names.service, &names.headless_service] {
        if !state.services.iter().any(|s| &s.name_any() == svc) {
            problems.push(format!("Service {svc} missing"));
            continue;
        }
        let list = slices
            .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
            .await
            .map_err(|e| {
                api_error(
                    e,
                    &format!("reading the endpoints of Service {svc}"),
                    &kube.server,
                )
            })?;
        let ready = list
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
            .count();
        if ready == 0 {
            problems.push(format!("Service {svc} has no ready endpoint"));
        }
    }
    out.push(Check::from_problems(
        "services have endpoints",
        format!("{}, {}", names.service, names.headless_service),
        problems,
    ));
    out.push(secrets(state, names));
    out.push(certificate(kube, names).await?);
    Ok(out)
}

/// The server certificate in the release's TLS Secret: how long it is still valid. Under
/// `certs::RENEW_DAYS` a warning (install issues a new one), expired a failure. The CA beside it
/// likewise: under `certs::CA_NOTICE_DAYS` a warning (`install --renew-ca`), expired a failure.
pub async fn certificate(kube: &Kube, names: &Names) -> Result<Check> {
    let name = "server certificate";
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(kube.client.clone(), &kube.namespace);
    let read = async |secret: &str, key: &str| -> Result<Option<String>> {
        Ok(secrets
            .get_opt(secret)
            .await
            .map_err(|e| api_error(e, &format!("reading Secret {secret}"), &kube.server))?
            .and_then(|s| crate::passwords::secret_text(&s, key)))
    };
    let Some(crt) = read(&names.tls_secret, "tls.crt").await? else {
        return Ok(Check::fail(
            name,
            format!("Secret {} has no tls.crt", names.tls_secret),
        ));
    };
    let now = std::time::SystemTime::now();
    let server = match crate::certs::inspect(&crt) {
        Err(e) => {
            return Ok(Check::fail(
                name,
                format!("Secret {}: {e}", names.tls_secret),
            ));
        }
        Ok(info) => info,
    };
    let days = server.days_left(now);
    if days < 0 {
        return Ok(Check::fail(name, format!("expired {}", server.expires())));
    }
    let mut detail = format!("valid until {} ({days} days left)", server.expires());
    let mut warn = days < crate::certs::RENEW_DAYS;
    if warn {
        detail.push_str("; `phonebill-db install` issues a new one");
    }
    // The CA: read where the release has one (a managed server's release has none).
    if let Some(ca) = read(&names.ca_secret, "ca.crt").await?
        && let Ok(ca) = crate::certs::inspect(&ca)
    {
        let ca_days = ca.days_left(now);
        if ca_days < 0 {
            return Ok(Check::fail(
                name,
                format!(
                    "the CA expired {}: `phonebill-db install --renew-ca`",
                    ca.expires()
                ),
            ));
        }
        if ca_days < crate::certs::CA_NOTICE_DAYS {
            warn = true;
            detail.push_str(&format!(
                "; the CA expires {} ({ca_days} days left): plan `phonebill-db install --renew-ca`",
                ca.expires()
            ));
        }
    }
    Ok(if warn {
        Check::warn(name, detail)
    } else {
        Check::pass(name, detail)
    })
}

/// Both Secrets of the release exist (all a managed server's release has in the cluster).
pub fn secrets(state: &ReleaseState, names: &Names) -> Check {
    let missing: Vec<String> = [&names.admin_secret, &names.app_secret]
        .into_iter()
        .filter(|s| !state.secrets.contains(s))
        .map(|s| format!("Secret {s} missing"))
        .collect();
    Check::from_problems(
        "secrets present",
        format!("{}, {}", names.admin_secret, names.app_secret),
        missing,
    )
}
