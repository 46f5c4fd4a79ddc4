//! `rotate-password --role app|admin`: a new password (generated, or from an environment
//! variable), set in the database as a SCRAM verifier inside a transaction that commits only once
//! the Secrets hold it too — a failure on the way changes nothing — then checked by logging in
//! with it; the workloads that read the Secret are listed and, with `--restart`, restarted and
//! waited for. prod: the app role on the managed server and its recorded Secrets.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta};
use serde::Serialize;

use crate::args::parse_duration;
use crate::context::Ctx;
use crate::db::connect::{Db, Login};
use crate::db::role;
use crate::error::{ExitCode, user_error};
use crate::k8s::apply::{ApplyOptions, apply_typed};
use crate::k8s::client::{Kube, api_error};
use crate::k8s::dependents::{self, Reader};
use crate::k8s::preflight::Access;
use crate::passwords::secret_text;
use crate::profile::Profile;
use crate::ui::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    // The application's role (auth-db-secret)
    App,
    // The administrator (the release's own Secret)
    Admin,
}

#[derive(Debug, Args)]
pub struct RotatePasswordArgs {
    /// Whose password: app (the application role, Secret auth-db-secret) or admin (the release's own Secret)
    #[arg(long, value_enum)]
    pub role: Role,
    /// Take the new password from this environment variable instead of generating one
    #[arg(long, value_name = "VAR")]
    pub password_from_env: Option<String>,
    /// Restart the Deployments and StatefulSets that read the rotated Secret, and wait for them
    #[arg(long)]
    pub restart: bool,
    /// How long to wait for the restarted workloads
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Managed server (prod): CA certificate (PEM) to verify it with (default: the system's roots)
    #[arg(
        long,
        value_name = "FILE",
        env = "PHONEBILL_CA_FILE",
        hide_env_values = true
    )]
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateReport {
    pub release: String,
    pub namespace: String,
    pub role: Role,
    /// The database role whose password changed.
    pub user: String,
    /// generated, or the environment variable's name.
    pub password_from: String,
    /// The Secrets that now hold the new password.
    pub secrets: Vec<String>,
    /// A new login with the new password worked.
    pub login_checked: bool,
    /// The workloads that read the rotated Secret (they keep the old password until restarted).
    pub readers: Vec<Reader>,
    pub restarted: bool,
    pub restart_seconds: Option<f64>,
}

/// Shortest password `--password-from-env` may give.
const MIN_LENGTH: usize = 16;

pub async fn run(ctx: &Ctx, args: &RotatePasswordArgs) -> Result<Outcome> {
    let profile = &ctx.profile;
    let names = profile.names();
    let managed = profile.managed.is_some();
    if managed && args.role == Role::Admin {
        return Err(user_error(format!(
            "rotate-password --role admin: environment `{}` runs on a managed server, whose administrator password is Azure's",
            profile.environment
        ))
        .hint("change it with `az postgres flexible-server update --admin-password`, then run `install --env prod` with the new one in $PHONEBILL_ADMIN_PASSWORD")
        .exit(ExitCode::Usage)
        .into());
    }
    let (new, password_from) = new_password(args)?;
    let kube = ctx.kube().await?;
    let mut wanted = vec![
        Access::ns("get", "", "secrets"),
        Access::ns("patch", "", "secrets"),
    ];
    // In the cluster: not while an upgrade keeps two servers (one would keep the old password).
    if profile.cluster.is_some() {
        wanted.push(Access::ns("list", "apps", "statefulsets"));
    }
    if args.restart {
        for verb in ["list", "patch", "get"] {
            wanted.push(Access::ns(verb, "apps", "deployments"));
            wanted.push(Access::ns(verb, "apps", "statefulsets"));
        }
    }
    crate::k8s::preflight::deny_check(&kube, wanted).await?;
    if profile.cluster.is_some() {
        crate::k8s::upgrade::refuse_under_way(&kube, profile).await?;
        crate::k8s::power::refuse_stopped(&kube, profile, "rotate-password").await?;
    }

    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let admin_secret = read_secret(&kube, &secrets, &names.admin_secret, profile).await?;
    let app_secret = read_secret(&kube, &secrets, &names.app_secret, profile).await?;
    let (user, current_key) = match args.role {
        Role::App => (profile.app_user.clone(), "password"),
        Role::Admin => (profile.admin_user.clone(), "postgres-password"),
    };
    if secret_text(&admin_secret, current_key).as_deref() == Some(new.as_str()) {
        return Err(user_error(format!(
            "the new password of role {user} is the one it has; nothing was changed"
        ))
        .hint("give another one, or leave out --password-from-env to generate one")
        .exit(ExitCode::Usage)
        .into());
    }
    ctx.ui.confirm_typed(
        &format!(
            "Rotate the password of role {user} of release {}? Clients still using the old one cannot log in again until they restart. Type the release name to go on",
            profile.release
        ),
        &profile.release,
    )?;

    let rotated = match args.role {
        Role::App => {
            let scram = role::scram_verifier(&new);
            let mut admin_keys = vec![("password", new.clone())];
            if secret_text(&admin_secret, "app-password-scram").is_some() {
                admin_keys.push(("app-password-scram", scram));
            }
            let url = secret_text(&app_secret, "database-url")
                .with_context(|| format!("Secret {} has no database-url", names.app_secret))?;
            vec![
                with_keys(&admin_secret, &admin_keys),
                with_keys(
                    &app_secret,
                    &[
                        ("auth-user-password", new.clone()),
                        ("database-url", with_password(&url, &new)?),
                    ],
                ),
            ]
        }
        Role::Admin => vec![with_keys(
            &admin_secret,
            &[("postgres-password", new.clone())],
        )],
    };
    let before = match args.role {
        Role::App => vec![admin_secret.clone(), app_secret.clone()],
        Role::Admin => vec![admin_secret.clone()],
    };

    let db = if managed {
        Db::for_managed(
            kube.clone(),
            profile,
            args.ca_file.as_deref(),
            Some(&ctx.ui),
        )
        .await?
    } else {
        Db::for_release(kube.clone(), profile).await?
    };
    let spinner = ctx
        .ui
        .spinner(format!("setting the password of role {user}"));
    let mut client = db.admin().await?;
    let tx = client
        .transaction()
        .await
        .context("starting the transaction of the password change")?;
    let verifier = role::set_password(&tx, &user, &new).await?;
    // The Secrets, while the database still accepts only the old password.
    let mut written: Vec<Secret> = Vec::new();
    for (secret, old) in rotated.iter().zip(&before) {
        if let Err(e) = apply_secret(&kube, secret).await {
            spinner.finish_and_clear();
            let _ = tx.rollback().await;
            let undone = put_back(&kube, &written).await;
            return Err(e.context(format!(
                "writing the new password into Secret {}; {}",
                secret.metadata.name.as_deref().unwrap_or_default(),
                undone
            )));
        }
        written.push(old.clone());
    }
    let login = Login {
        user: user.clone(),
        password: Some(new.clone()),
    };
    if let Err(e) = tx.commit().await {
        // Whether the commit happened is unknown. Only a definite answer decides: the Secrets go
        // back only when the database surely kept the old password (putting them back after a
        // commit that happened would lock the role out).
        let old_admin = secret_text(&admin_secret, "postgres-password");
        match committed(&db, args.role, &login, &verifier, &old_admin).await {
            Some(true) => {}
            Some(false) => {
                spinner.finish_and_clear();
                let undone = put_back(&kube, &written).await;
                return Err(anyhow::anyhow!("{e}").context(format!(
                    "committing the new password of role {user}: the database kept the old one; {undone}"
                )));
            }
            None => {
                spinner.finish_and_clear();
                return Err(anyhow::Error::new(
                    user_error(format!(
                        "committing the new password of role {user}: the outcome is unknown ({e}), and the database could not be asked; the Secrets hold the new password"
                    ))
                    .hint("when the database answers again, `phonebill-db verify` says whether the role logs in with its Secret's password; if not, run rotate-password again"),
                ));
            }
        }
    }
    db.connect(&login)
        .await
        .with_context(|| format!("logging in as {user} with the new password"))?;
    spinner.finish_and_clear();

    let read_secret_name = match args.role {
        Role::App => names.app_secret.clone(),
        Role::Admin => names.admin_secret.clone(),
    };
    let readers = match dependents::readers_of(&kube, &read_secret_name, &names.stateful_set).await
    {
        Ok(r) => r,
        Err(e) if !args.restart => {
            ctx.ui.note(
                None,
                format!(
                    "warning: cannot tell which workloads read Secret {read_secret_name}: {}",
                    crate::error::report(&e).error
                ),
            );
            vec![]
        }
        Err(e) => return Err(e),
    };
    let mut report = RotateReport {
        release: profile.release.clone(),
        namespace: kube.namespace.clone(),
        role: args.role,
        user,
        password_from,
        secrets: rotated
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect(),
        login_checked: true,
        readers,
        restarted: false,
        restart_seconds: None,
    };
    if args.restart && !report.readers.is_empty() {
        let seconds = dependents::restart(&kube, &report.readers, args.timeout, &ctx.ui).await?;
        report.restarted = true;
        report.restart_seconds = Some(seconds);
    }
    ctx.ui.emit(&report, |r| text(r, managed))?;
    Ok(Outcome::ok())
}

/// Did the password change commit? A login with the new password says yes. Otherwise an admin
/// session reads the role's stored verifier (the one just set, or not: where the admin may read
/// pg_authid, as the release's superuser may); for the administrator itself, a login with the old
/// password says no. `None`: no definite answer within half a minute (the server unreachable).
async fn committed(
    db: &Db,
    role: Role,
    new: &Login,
    verifier: &str,
    old_admin: &Option<String>,
) -> Option<bool> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if db.connect(new).await.is_ok() {
            return Some(true);
        }
        let admin = match role {
            Role::App => db.admin().await.ok(),
            Role::Admin => {
                let old = Login {
                    user: new.user.clone(),
                    password: old_admin.clone(),
                };
                db.connect(&old).await.ok()
            }
        };
        if let Some(admin) = admin {
            let stored = admin
                .query_opt(
                    "SELECT rolpassword = $2 FROM pg_authid WHERE rolname = $1",
                    &[&new.user, &verifier],
                )
                .await;
            match stored {
                Ok(Some(row)) => return Some(row.get::<_, Option<bool>>(0).unwrap_or(false)),
                // The old administrator password still logs in: the change did not commit.
                _ if role == Role::Admin => return Some(false),
                _ => {}
            }
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `--password-from-env`'s variable, judged before the record or the cluster is read (exit 2).
pub fn precheck(args: &RotatePasswordArgs) -> Result<()> {
    if args.password_from_env.is_some() {
        new_password(args)?;
    }
    Ok(())
}

/// The new password and where it came from; refused before anything is read or changed.
fn new_password(args: &RotatePasswordArgs) -> Result<(String, String)> {
    let Some(var) = &args.password_from_env else {
        return Ok((crate::passwords::generate()?, "generated".into()));
    };
    let refuse = |why: String| -> anyhow::Error {
        user_error(format!("--password-from-env {var}: {why}; nothing was changed"))
            .hint("export a password of at least 16 characters without control characters, or leave out --password-from-env to generate one")
            .exit(ExitCode::Usage)
            .into()
    };
    let value = std::env::var(var).map_err(|_| refuse("the variable is not set".into()))?;
    if value.chars().count() < MIN_LENGTH {
        return Err(refuse(format!(
            "the password is shorter than {MIN_LENGTH} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(refuse("the password has a control character".into()));
    }
    Ok((value, format!("environment variable {var}")))
}

async fn read_secret(
    kube: &Kube,
    secrets: &Api<Secret>,
    name: &str,
    profile: &Profile,
) -> Result<Secret> {
    let found = secrets.get_opt(name).await.map_err(|e| {
        api_error(
            e,
            &format!("reading Secret {name} in namespace {}", kube.namespace),
            &kube.server,
        )
    })?;
    found.ok_or_else(|| {
        user_error(format!(
            "release {} has no Secret {name} in namespace {}: nothing to rotate; nothing was changed",
            profile.release, kube.namespace
        ))
        .hint("install the release first (`phonebill-db install`), or give -n NAMESPACE")
        .into()
    })
}

/// The Secret as it is, with `keys` set: what to apply (all its keys: server-side apply would
/// drop the ones left out).
fn with_keys(secret: &Secret, keys: &[(&str, String)]) -> Secret {
    let mut data = secret.data.clone().unwrap_or_default();
    for (k, v) in keys {
        data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
    }
    Secret {
        metadata: ObjectMeta {
            name: secret.metadata.name.clone(),
            namespace: secret.metadata.namespace.clone(),
            labels: secret.metadata.labels.clone(),
            ..Default::default()
        },
        type_: secret.type_.clone(),
        data: Some(data),
        ..Default::default()
    }
}

/// `database-url` with another password (percent-encoded as install writes it).
pub fn with_password(url: &str, password: &str) -> Result<String> {
    let bad = || {
        anyhow::anyhow!("the app Secret's database-url is not `postgresql://USER:PASSWORD@HOST…`")
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let (userinfo, host) = rest.split_once('@').ok_or_else(bad)?;
    let user = userinfo.split(':').next().unwrap_or_default();
    Ok(format!(
        "{scheme}://{user}:{}@{host}",
        crate::render::url_encode(password)
    ))
}

async fn apply_secret(kube: &Kube, secret: &Secret) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    apply_typed(kube, api, secret, ApplyOptions::default()).await?;
    Ok(())
}

/// Put the Secrets already written back as they were; says how that went.
async fn put_back(kube: &Kube, old: &[Secret]) -> String {
    if old.is_empty() {
        return "nothing was changed".into();
    }
    for s in old {
        if let Err(e) = apply_secret(kube, &with_keys(s, &[])).await {
            return format!(
                "putting Secret {} back failed too ({}): it holds a password the database does not have; run the same command again",
                s.metadata.name.as_deref().unwrap_or_default(),
                crate::error::report(&e).error
            );
        }
    }
    "the Secrets were put back; nothing was changed".into()
}

fn text(r: &RotateReport, managed: bool) -> String {
    let mut out = format!(
        "rotated the password of role {} ({}): set in the database, then in Secret{} {}; a new login with it works\n",
        r.user,
        r.password_from,
        if r.secrets.len() > 1 { "s" } else { "" },
        r.secrets.join(", ")
    );
    if r.readers.is_empty() {
        out.push_str("no Deployment or StatefulSet in the namespace reads the rotated Secret\n");
    } else {
        for reader in &r.readers {
            out.push_str(&format!(
                "  {} {} reads it ({})\n",
                reader.kind,
                reader.name,
                reader.via.join(", ")
            ));
        }
        match r.restart_seconds {
            Some(s) => out.push_str(&format!("restarted them; rolled out after {s}s\n")),
            None => out.push_str(
                "they keep the old password until restarted: run again with --restart, or `kubectl rollout restart` them\n",
            ),
        }
    }
    if r.role == Role::Admin && !managed {
        out.push_str("the release's own StatefulSet reads the admin password only when its volume is first made (initdb); its metrics exporter has a login of its own and is not affected\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_keeps_everything_but_the_password() {
        assert_eq!(
            with_password(
                "postgresql://auth_user:old@auth-postgres-dev-postgresql:5432/phonebill_auth?sslmode=verify-full",
                "n3w/p@ss:word"
            )
            .unwrap(),
            "postgresql://auth_user:n3w%2Fp%40ss%3Aword@auth-postgres-dev-postgresql:5432/phonebill_auth?sslmode=verify-full"
        );
        assert!(with_password("not a url", "x").is_err());
    }
}
