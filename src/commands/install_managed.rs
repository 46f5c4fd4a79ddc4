//! `install` for an environment on a managed server (prod: Azure Database for PostgreSQL Flexible
//! Server, prod physical architecture, section 5.1). No database is created in the cluster: install checks that the
//! server answers over TLS as its administrator, creates the database and the app role when they
//! are missing, records both logins in the release's Secrets (the app's `auth-db-secret` holds its
//! URL with `sslmode=verify-full`), then logs in as the app the way the app will.

use anyhow::Result;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde::Serialize;
use tokio_postgres::Client;

use super::install::InstallArgs;
use crate::context::Ctx;
use crate::db::connect::{Db, Login, Server, server_message};
use crate::db::role;
use crate::error::{ExitCode, user_error};
use crate::k8s::apply::{Applied, ApplyOptions};
use crate::k8s::apply::{apply_all, diffs, objects_table};
use crate::k8s::client::api_error;
use crate::k8s::namespace::{create_namespace, namespace_exists};
use crate::k8s::preflight::deny_check;
use crate::k8s::preflight::{self, Access};
use crate::passwords::{self, Origin};
use crate::profile::Profile;
use crate::render::{self, Passwords};
use crate::ui::Outcome;

/// Where the administrator's password comes from (never from the command line).
pub use crate::passwords::ADMIN_PASSWORD_ENV;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedInstallReport {
    pub release: String,
    pub namespace: String,
    pub server: String,
    pub server_version: String,
    pub dry_run: bool,
    pub namespace_created: bool,
    /// The managed server as recorded in the release's Secret.
    pub database_server: Server,
    pub admin_user: String,
    pub postgres_version: String,
    pub tls_version: String,
    pub database: String,
    pub database_created: bool,
    pub passwords: Origin,
    pub objects: Vec<Applied>,
    /// The app role logged in through the URL its Secret holds (not tried in a dry run).
    pub app_connects: bool,
}

pub async fn run(ctx: &Ctx, args: &InstallArgs) -> Result<Outcome> {
    // (install::precheck refused the in-cluster flags.)
    let profile = with_overrides(&ctx.profile, args)?;
    let managed = profile
        .managed
        .clone()
        .expect("install_managed runs for managed profiles");
    let names = profile.names();
    let ui = &ctx.ui;
    let kube = ctx.kube_within(args.timeout).await?;
    let server_version = preflight::server_version(&kube).await?;
    ui.note(
        None,
        format!(
            "API server {} ({server_version}), namespace {}; database server {}:{} (managed)",
            kube.server, kube.namespace, managed.host, managed.port
        ),
    );
    let namespace_exists = namespace_exists(&kube).await?;
    let mut wanted: Vec<Access> = ["get", "create", "patch"]
        .into_iter()
        .map(|verb| Access::ns(verb, "", "secrets"))
        .collect();
    if !namespace_exists {
        wanted.push(Access::cluster("create", "", "namespaces"));
    }
    deny_check(&kube, wanted).await?;

    // The app's password: the recorded one, else new. The admin's: given (see managed_admin).
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let recorded = secrets.get_opt(&names.admin_secret).await.map_err(|e| {
        api_error(
            e,
            &format!(
                "reading Secret {} in namespace {}",
                names.admin_secret, kube.namespace
            ),
            &kube.server,
        )
    })?;
    let recorded_key = |key: &str| {
        recorded
            .as_ref()
            .and_then(|s| passwords::secret_text(s, key))
    };
    let (app_password, origin) = match recorded_key("password") {
        Some(p) => (p, Origin::Existing),
        None => (passwords::generate()?, Origin::Generated),
    };
    let address = Server {
        host: managed.host.clone(),
        port: managed.port,
        ssl_mode: managed.ssl_mode.clone(),
    };
    // An older install kept the administrator's password in the Secret: used this once, and
    // gone from the Secret once install has applied it again.
    let kept_admin = recorded_key("postgres-password");
    let admin_password = passwords::managed_admin(
        Some(ui),
        &profile.admin_user,
        &address.host,
        kept_admin.clone(),
    )?;
    if kept_admin.is_some() && !args.dry_run {
        ui.note(
            None,
            format!(
                "the server administrator's password is no longer kept in Secret {}: this install removes it; later commands take it from ${ADMIN_PASSWORD_ENV} or ask on a terminal",
                names.admin_secret
            ),
        );
    }
    let admin = Login {
        user: profile.admin_user.clone(),
        password: Some(admin_password.clone()),
    };
    let app = Login {
        user: profile.app_user.clone(),
        password: Some(app_password.clone()),
    };
    let ca = args.ca_file.as_deref();

    // The server answers over TLS, as its administrator, on its maintenance database.
    let spinner = ui.spinner(format!(
        "connecting to {}:{} over TLS",
        address.host, address.port
    ));
    let maintenance = Db::for_server(&address, "postgres", admin.clone(), app.clone(), ca)?;
    let client = maintenance.admin().await?;
    let (tls_version, postgres_version, exists) = server_facts(&client, &profile.database).await?;
    ui.detail(format!("PostgreSQL {postgres_version}, {tls_version}"));
    if !exists && !args.dry_run {
        spinner.set_message(format!("creating database {}", profile.database));
        create_database(&client, &profile.database).await?;
        ui.note(
            Some(&spinner),
            format!("database {} created", profile.database),
        );
    }
    drop(client);
    let db = Db::for_server(&address, &profile.database, admin, app, ca)?;
    if !args.dry_run {
        spinner.set_message(format!("role {}", profile.app_user));
        let client = db.admin().await?;
        role::ensure(&client, &db.app, &db.database).await?;
    }
    spinner.finish_and_clear();

    // Record both logins in the release's Secrets (server-side apply, like every install).
    if !namespace_exists {
        ui.note(None, format!("creating namespace {}", kube.namespace));
        create_namespace(&kube, args.dry_run).await?;
    }
    let opts = ApplyOptions {
        dry_run: args.dry_run,
        force_conflicts: args.force_conflicts,
    };
    // (The verifier is not used for a managed server: its app role is made over SQL.)
    // The managed server has no exporter of this tool's: its password is never rendered.
    let passwords = Passwords::with_new_verifier(admin_password, app_password, String::new());
    let objects = apply_all(
        &kube,
        ui,
        render::render(&profile, &passwords, &crate::certs::Tls::placeholders())?,
        opts,
        namespace_exists,
    )
    .await?;
    if kept_admin.is_some() && !args.dry_run {
        // Whoever wrote the key (this tool's older version, or a hand), it goes.
        let patch = serde_json::json!({ "data": { "postgres-password": null } });
        secrets
            .patch(
                &names.admin_secret,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .map_err(|e| {
                api_error(
                    e,
                    &format!(
                        "removing the administrator's password from Secret {}",
                        names.admin_secret
                    ),
                    &kube.server,
                )
            })?;
    }

    // The app logs in the way the app will: its role and password, verify-full, the database.
    let app_connects = if args.dry_run {
        false
    } else {
        let client = db.connect(&db.app).await.map_err(|e| {
            e.context("the Secrets were written, but the app role cannot log in with them")
        })?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| anyhow::anyhow!("{}", server_message(&e)))?;
        true
    };
    let report = ManagedInstallReport {
        release: profile.release.clone(),
        namespace: kube.namespace.clone(),
        server: kube.server.clone(),
        server_version,
        dry_run: args.dry_run,
        namespace_created: !namespace_exists,
        database_server: address,
        admin_user: profile.admin_user.clone(),
        postgres_version,
        tls_version,
        database: profile.database.clone(),
        database_created: !exists,
        passwords: origin,
        objects,
        app_connects,
    };
    ui.emit(&report, text)?;
    Ok(Outcome::ok())
}

/// The profile with install's `--server` and `--admin-user`.
fn with_overrides(profile: &Profile, args: &InstallArgs) -> Result<Profile> {
    let mut profile = profile.clone();
    let managed = profile.managed.as_mut().expect("a managed profile");
    if let Some(name) = &args.server {
        managed.host = server_host(name, &managed.domain)?;
    }
    if let Some(user) = &args.admin_user {
        let plain = user.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && user.len() <= 63
            && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            return Err(user_error(format!("--admin-user `{user}` is not a login name"))
                .hint("give the server's administrator login as created in Azure (letters, digits, '_')")
                .exit(ExitCode::Usage)
                .into());
        }
        profile.admin_user = user.clone();
    }
    Ok(profile)
}

/// `--server`: a host name as given, or an Azure server name completed with the profile's domain.
pub fn server_host(name: &str, domain: &str) -> Result<String> {
    let name = name.trim().to_ascii_lowercase();
    let host = if name.contains('.') {
        name
    } else {
        format!("{name}.{domain}")
    };
    if crate::profile::is_host_name(&host) {
        Ok(host)
    } else {
        Err(user_error(format!("--server `{host}` is not a host name"))
            .hint("give the server's name (phonebill-postgresql) or its host name (phonebill-postgresql.postgres.database.azure.com)")
            .exit(ExitCode::Usage)
            .into())
    }
}

/// TLS version of this session, the server's version, and whether `database` exists.
async fn server_facts(client: &Client, database: &str) -> Result<(String, String, bool)> {
    let row = client
        .query_one(
            "SELECT s.ssl, COALESCE(s.version, ''), current_setting('server_version'), \
             EXISTS (SELECT FROM pg_database WHERE datname = $1) \
             FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
            &[&database],
        )
        .await
        .map_err(|e| anyhow::anyhow!("asking the server about itself: {}", server_message(&e)))?;
    if !row.get::<_, bool>(0) {
        return Err(user_error(
            "the session to the managed server is not encrypted; nothing was changed",
        )
        .hint("connect with sslmode verify-full (the profile's managed.sslMode)")
        .into());
    }
    Ok((row.get(1), row.get(2), row.get(3)))
}

async fn create_database(client: &Client, database: &str) -> Result<()> {
    let statement: String = client
        .query_one(
            "SELECT format('CREATE DATABASE %I', $1::text)",
            &[&database],
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}", server_message(&e)))?
        .get(0);
    client.batch_execute(&statement).await.map_err(|e| {
        anyhow::Error::new(
            user_error(format!("creating database {database}: {}", server_message(&e)))
                .hint("create it in Azure (az postgres flexible-server db create) or give the administrator CREATEDB"),
        )
    })
}

fn text(r: &ManagedInstallReport) -> String {
    let mut out = objects_table(&r.objects, r.dry_run);
    out.push_str(&diffs(&r.objects));
    let s = &r.database_server;
    let database = match (r.database_created, r.dry_run) {
        (true, true) => "would be created (dry run)",
        (true, false) => "created",
        (false, _) => "exists",
    };
    out.push_str(&format!(
        "managed server {}:{} answers over {} (PostgreSQL {}), sslmode={}; database {} {database}\n",
        s.host, s.port, r.tls_version, r.postgres_version, s.ssl_mode, r.database
    ));
    if r.dry_run {
        out.push_str("dry run: nothing was changed\n");
    } else {
        let passwords = match r.passwords {
            Origin::Generated => "a new app password (stored only in Secrets)",
            Origin::Existing => "the existing app password",
        };
        out.push_str(&format!(
            "release {} in namespace {}: the app's Secret holds its URL; the app role logged in through it with {passwords}\n",
            r.release, r.namespace
        ));
    }
    out
}
