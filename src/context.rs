//! What every command receives: the profile, the output handle, and a way to reach the cluster.

use anyhow::Result;

use crate::args::{DbArgs, GlobalArgs};
use crate::db::connect::Db;
use crate::db::tls;
use crate::error::{ExitCode, user_error};
use crate::k8s::record::{self, Record};
use crate::k8s::{self, Kube};
use crate::profile::{Layer, Profile, is_dns_label};
use crate::ui::Ui;

pub struct Ctx {
    pub global: GlobalArgs,
    /// The embedded profile, the release's recorded values (once adopted) and `--values`, in that
    /// order, with `--namespace`.
    pub profile: Profile,
    pub ui: Ui,
    /// `--values FILE`, read.
    pub values: Option<Layer>,
    /// What install recorded, once [`Ctx::adopt_record`] found it.
    pub record: Option<Record>,
}

impl Ctx {
    /// Load the profile (with `--values` and `--namespace`) for the chosen environment.
    pub fn new(global: GlobalArgs, ui: Ui) -> Result<Ctx> {
        let values = global.values.as_deref().map(Layer::from_file).transpose()?;
        let mut profile = Profile::load_layers(&global.env, values.as_slice())?;
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
            values,
            record: None,
        })
    }

    /// The profile with `extra` laid over everything else (the record, `--values`): what a
    /// command that changes one value (resize's size) applies and records.
    pub fn profile_with(&self, extra: Layer) -> Result<Profile> {
        self.load(self.record.as_ref(), Some(extra))
    }

    /// The embedded profile with `record`'s values, `--values` and `extra` laid over it in that
    /// order, where this context found the release (namespace, name).
    fn load(&self, record: Option<&Record>, extra: Option<Layer>) -> Result<Profile> {
        let mut layers: Vec<Layer> = record.iter().map(|r| r.layer(&self.profile)).collect();
        layers.extend(self.values.clone());
        layers.extend(extra);
        let mut profile = Profile::load_layers(&self.global.env, &layers)?;
        profile.namespace = self.profile.namespace.clone();
        profile.release = self.profile.release.clone();
        Ok(profile)
    }

    /// The profile as it would be without the release's record: the embedded profile, `--values`
    /// and `--namespace` — what the record's values are told apart from.
    pub fn profile_without_record(&self) -> Result<Profile> {
        self.load(None, None)
    }

    /// The values install recorded with the release (an empty mapping when there is none).
    pub fn recorded_values(&self) -> serde_yaml::Value {
        self.record.as_ref().map_or_else(
            || serde_yaml::Value::Mapping(Default::default()),
            |r| r.values.clone(),
        )
    }

    /// Lay the release's recorded values (what install applied) under `--values`, as Helm reuses
    /// a release's values: a command then sees the release as it was installed without the
    /// flags and files given to install. Where the release is (namespace, name) stays what
    /// found the record. Nothing recorded, or not allowed to read it: the profile stays.
    pub async fn adopt_record(&mut self) -> Result<()> {
        let kept = self.fetch_record(k8s::client::DEFAULT_RETRY_BUDGET).await?;
        self.adopt_fetched(kept)
    }

    /// The record as the API gives it, transient failures retried within `budget` (an error is
    /// the cluster's).
    pub async fn fetch_record(&self, budget: std::time::Duration) -> Result<Option<record::Kept>> {
        let kube = self.kube_within(budget).await?;
        record::fetch(&kube, &self.profile).await
    }

    /// Lay a fetched record under `--values` (an error is the record's).
    pub fn adopt_fetched(&mut self, kept: Option<record::Kept>) -> Result<()> {
        let Some(kept) = kept else {
            return Ok(());
        };
        let record = record::parse(&self.profile, kept)?;
        if record.environment != self.profile.environment {
            self.ui.note(
                None,
                format!(
                    "warning: release {} was installed with --env {}; its recorded values are not used with --env {}",
                    self.profile.release, record.environment, self.profile.environment
                ),
            );
            return Ok(());
        }
        let profile = self.load(Some(&record), None)?;
        self.ui.detail(format!(
            "using the values install recorded in {} {}: {}",
            record.kept_in,
            profile.names().record,
            record.flat_values().join(", ")
        ));
        self.profile = profile;
        self.record = Some(record);
        Ok(())
    }

    /// The database a command works on: `--database-url`, else the managed server install
    /// recorded (prod), else the release's primary pod.
    pub async fn db(&self, args: &DbArgs) -> Result<Db> {
        match &args.database_url {
            None if self.profile.managed.is_some() => {
                Db::for_managed(
                    self.kube().await?,
                    &self.profile,
                    args.ca_file.as_deref(),
                    Some(&self.ui),
                )
                .await
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
