//! The release's namespace: is it there, and making it when it is not.

use anyhow::Result;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};

use super::apply;
use super::client::{Kube, api_error, is_not_found};

pub async fn namespace_exists(kube: &Kube) -> Result<bool> {
    let api: Api<Namespace> = Api::all(kube.client.clone());
    match api.get_metadata(&kube.namespace).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        // Namespace-scoped users may not read namespaces; the RBAC check and the apply will tell.
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(true),
        Err(e) => Err(api_error(
            e,
            &format!("reading namespace {}", kube.namespace),
            &kube.server,
        )),
    }
}

pub async fn create_namespace(kube: &Kube, dry_run: bool) -> Result<()> {
    let api: Api<Namespace> = Api::all(kube.client.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(kube.namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let doing = format!("creating namespace {}", kube.namespace);
    if dry_run {
        let pp = PostParams {
            dry_run,
            field_manager: Some(apply::FIELD_MANAGER.into()),
        };
        api.create(&pp, &ns)
            .await
            .map_err(|e| api_error(e, &doing, &kube.server))?;
        return Ok(());
    }
    // One there already (this create's, its answer lost; or made meanwhile) is as good.
    crate::k8s::client::create_once(kube, &api, &ns, &doing, |_| true).await?;
    Ok(())
}
