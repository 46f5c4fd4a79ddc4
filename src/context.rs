//! What every command receives: the profile, the output handle, and a way to reach the cluster.

use anyhow::Result;

use crate::cli::{DbArgs, GlobalArgs};
use crate::db::connect::Db;
use crate::db::tls;
use crate::error::{ExitCode, user_error};
use crate::k8s::{self, Kube};
use crate::profile::{Profile, is_dns_label};
use crate::ui::Ui;

pub struct Ctx {
    pub global: GlobalArgs,
    pub profile: Profile,
    pub ui: Ui,
}

impl Ctx {
    /// Load the profile (with `--values` and `--namespace`) for the chosen environment.
    pub fn new(global: GlobalArgs, ui: Ui) -> Result<Ctx> {
        let mut profile = Profile::load(&global.env, global.values.as_deref())?;
        if let Some(ns) = &global.namespace {
            if !is_dns_label(ns) {
                return Err(user_error(format!(
                    "--namespace `{ns}` is not a valid namespace name"
                ))
                .hint("use lower-case letters, digits and '-', at most 63 characters")
                .exit(ExitCode::Usage)
                .into());
            }
            profile.namespace = ns.clone();
        }
        Ok(Ctx {
            global,
            profile,
            ui,
        })
    }

    /// The database a command works on: `--database-url`, else the managed server install
    /// recorded (prod), else the release's primary pod.
    pub async fn db(&self, args: &DbArgs) -> Result<Db> {
        match &args.database_url {
            None if self.profile.managed.is_some() => {
                Db::for_managed(self.kube().await?, &self.profile, args.ca_file.as_deref()).await
            }
            // The pod is reached through the Kubernetes API, with no TLS to verify: a CA file
            // (often $PHONEBILL_CA_FILE, exported for prod) has nothing to do here.
            Some(url) => {
                let url = tls::parse_url(
                    url,
                    std::env::var("PGPASSWORD").ok(),
                    args.ca_file.as_deref(),
                )?;
                Ok(Db::for_url(url, &self.profile, args.app_password.clone()))
            }
            None => {
                if args.ca_file.is_some() {
                    self.ui.detail(
                        "--ca-file is not used: the pod is reached through the Kubernetes API",
                    );
                }
                Db::for_release(self.kube().await?, &self.profile).await
            }
        }
    }

    /// A client for the chosen kubeconfig and context, aimed at the profile's namespace; its
    /// requests retry transient failures for two minutes.
    pub async fn kube(&self) -> Result<Kube> {
        self.kube_within(k8s::client::DEFAULT_RETRY_BUDGET).await
    }

    /// [`Ctx::kube`] for a command with a `--timeout`: transient failures are retried within it.
    pub async fn kube_within(&self, timeout: std::time::Duration) -> Result<Kube> {
        k8s::client::connect(
            self.global.kubeconfig.as_deref(),
            self.global.context.as_deref(),
            &self.profile.namespace,
            timeout,
        )
        .await
    }
}
