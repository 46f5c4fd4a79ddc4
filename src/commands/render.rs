//! `render`: the manifests install would apply, with no cluster and no real password.

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::render::{self, Passwords};
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Print the RBAC an installer needs instead (a Role for the namespace, a ClusterRole for
    /// what is cluster-wide), for a cluster admin to apply and bind
    #[arg(long)]
    pub installer_rbac: bool,
}

pub fn run(ctx: &Ctx, args: &RenderArgs) -> Result<Outcome> {
    let objects = render::render(
        &ctx.profile,
        &Passwords::placeholders_for(&ctx.profile),
        &crate::certs::Tls::placeholders(),
    )?;
    if args.installer_rbac {
        return installer_rbac(ctx, &objects);
    }
    if ctx.ui.machine() {
        let list = serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": objects.iter().map(|o| o.to_json()).collect::<Vec<_>>(),
        });
        ctx.ui.emit(&list, |_| String::new())?;
    } else {
        crate::ui::print_stdout(&render::to_yaml(&objects)?)?;
    }
    Ok(Outcome::ok())
}

/// The installer's Role and ClusterRole (`k8s::grants::installer_rbac`), with how to bind them.
fn installer_rbac(ctx: &Ctx, objects: &[render::Object]) -> Result<Outcome> {
    let (role, cluster) = crate::k8s::grants::installer_rbac(&ctx.profile, objects);
    if ctx.ui.machine() {
        let list = serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": [serde_json::to_value(&role)?, serde_json::to_value(&cluster)?],
        });
        ctx.ui.emit(&list, |_| String::new())?;
        return Ok(Outcome::ok());
    }
    let p = &ctx.profile;
    let name = role.metadata.name.as_deref().unwrap_or_default();
    let header = format!(
        "# The RBAC `phonebill-db install --env {env}` needs: the rights its preflight asks for, and\n\
         # those the release's own Roles grant (the API server lets only a holder grant them).\n\
         # Apply as a cluster admin, then bind them to whoever installs:\n\
         #   kubectl create rolebinding {name} --role={name} --user=NAME -n {ns}\n\
         #   kubectl create clusterrolebinding {name} --clusterrole={name} --user=NAME\n\
         # The ClusterRole makes the namespace, the StorageClass and the VolumeSnapshotClass when\n\
         # they are missing and checks that the classes exist; in a namespace a cluster admin made,\n\
         # with the classes there, the Role alone installs.\n",
        env = p.environment,
        ns = p.namespace,
    );
    let text = format!(
        "{header}---\n{}---\n{}",
        serde_yaml::to_string(&role)?,
        serde_yaml::to_string(&cluster)?
    );
    crate::ui::print_stdout(&text)?;
    Ok(Outcome::ok())
}
