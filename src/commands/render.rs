//! `render`: the manifests install would apply, with no cluster and no real password.

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::render::{self, Passwords};
use crate::ui::Outcome;

#[derive(Debug, Args)]
pub struct RenderArgs {}

pub fn run(ctx: &Ctx, _args: &RenderArgs) -> Result<Outcome> {
    let objects = render::render(
        &ctx.profile,
        &Passwords::placeholders_for(&ctx.profile),
        &crate::certs::Tls::placeholders(),
    )?;
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
