//! One way to get a SQL session however the database is reached: through a port-forward to the
//! release's primary pod (kube `ws`, tokio-postgres `connect_raw` over the stream), or directly to
//! a `--database-url`, or to the managed server whose address install recorded (prod). Credentials
//! of the pod and managed paths come from the release's Secrets.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use tokio_postgres::{Client, NoTls};

use super::tls::{self, DatabaseUrl, SslMode};
use crate::error::{ExitCode, UserError, user_error};
use crate::k8s::client::{Kube, api_error};
use crate::k8s::forward;
use crate::k8s::release::pod_ready;
use crate::profile::Profile;

/// How long to wait for the server to answer (TCP, TLS and authentication together) on the pod path.
const POD_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a managed server is: what install records in the release's Secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub ssl_mode: String,
}

/// A role and its password (`None`: not known, e.g. the app role behind `--database-url`).
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub password: Option<String>,
}

#[derive(Clone)]
pub enum Route {
    Pod { kube: Kube, pod: String, port: u16 },
    Url(DatabaseUrl),
}

/// Where the database is and who may log in.
#[derive(Clone)]
pub struct Db {
    pub route: Route,
    pub database: String,
    pub admin: Login,
    pub app: Login,
    /// The metrics exporter's login: the release's own server with its exporter on only.
    pub metrics: Option<Login>,
}

impl Db {
    /// The release's primary pod (a Ready one, by the selector labels) and the passwords in its Secrets.
    pub async fn for_release(kube: Kube, profile: &Profile) -> Result<Db> {
        let pod = ready_primary(&kube, profile).await?;
        Db::for_pod(kube, profile, pod).await
    }

    /// The same database on another server: `database` there (a restore drill's copy).
    pub fn on(&self, database: &str) -> Db {
        Db {
            database: database.to_string(),
            ..self.clone()
        }
    }

    /// A pod running the release's server (its own, or a restore drill's copy), with the passwords
    /// in the release's Secrets.
    pub async fn for_pod(kube: Kube, profile: &Profile, pod: String) -> Result<Db> {
        let cluster = profile.cluster("reaching the database pod")?;
        let names = profile.names();
        let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
        let admin = secret_key(&kube, &secrets, &names.admin_secret, "postgres-password").await?;
        let app = secret_key(&kube, &secrets, &names.app_secret, "auth-user-password").await?;
        // A Secret from before the exporter had a login of its own has no password for it yet
        // (install adds one).
        let metrics = if cluster.metrics.enabled {
            Some(Login {
                user: cluster.metrics.user.clone(),
                password: secret_key(&kube, &secrets, &names.admin_secret, "metrics-password")
                    .await
                    .ok(),
            })
        } else {
            None
        };
        Ok(Db {
            route: Route::Pod {
                kube,
                pod,
                port: cluster.service.port,
            },
            database: profile.database.clone(),
            admin: Login {
                user: profile.admin_user.clone(),
                password: Some(admin),
            },
            app: Login {
                user: profile.app_user.clone(),
                password: Some(app),
            },
            metrics,
        })
    }

    /// A managed server (prod): its address, TLS mode and logins as install recorded them in the
    /// release's Secrets, the administrator's password from [`crate::passwords::managed_admin`]
    /// (asked on `ui`'s terminal when there is one); `ca_file` verifies its certificate (default:
    /// the system's roots, libpq's `sslrootcert=system`).
    pub async fn for_managed(
        kube: Kube,
        profile: &Profile,
        ca_file: Option<&Path>,
        ui: Option<&crate::ui::Ui>,
    ) -> Result<Db> {
        let names = profile.names();
        let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
        let server = &names.admin_secret;
        let read = async |key| secret_key(&kube, &secrets, server, key).await;
        let address = Server {
            host: read("host").await?,
            port: read("port").await?.parse().map_err(|_| {
                user_error(format!("Secret {server}: key `port` is not a port number")).hint(
                    "run `phonebill-db install --env ENV` again to record the server's address",
                )
            })?,
            ssl_mode: read("sslmode").await?,
        };
        let user = read("username").await?;
        // Kept there by installs before this version only.
        let kept = read("postgres-password").await.ok();
        let password = crate::passwords::managed_admin(ui, &user, &address.host, kept)?;
        let admin = Login {
            user,
            password: Some(password),
        };
        let app = Login {
            user: profile.app_user.clone(),
            password: Some(
                secret_key(&kube, &secrets, &names.app_secret, "auth-user-password").await?,
            ),
        };
        Db::for_server(&address, &profile.database, admin, app, ca_file)
    }

    /// A server by its address (a managed server's), with both logins known.
    pub fn for_server(
        server: &Server,
        database: &str,
        admin: Login,
        app: Login,
        ca_file: Option<&Path>,
    ) -> Result<Db> {
        let mut url = url::Url::parse("postgresql://localhost").expect("a constant URL parses");
        url.set_host(Some(&server.host)).map_err(|e| {
                user_error(format!("`{}` is not a host name: {e}", server.host))
                    .hint("give the server's host name, e.g. phonebill-postgresql.postgres.database.azure.com")
            })?;
        // Cannot fail: the URL has a host.
        let _ = url.set_port(Some(server.port));
        url.set_path(database);
        url.query_pairs_mut()
            .append_pair("sslmode", &server.ssl_mode);
        let _ = url.set_username(&admin.user);
        let url = tls::parse_url(
            url.as_str(),
            admin.password.clone(),
            Some(ca_file.unwrap_or(Path::new(tls::SYSTEM_ROOTS))),
        )?;
        Ok(Db {
            route: Route::Url(url),
            database: database.to_string(),
            admin,
            app,
            metrics: None,
        })
    }

    /// A database given by URL: its user is the admin; the app role's password only if given.
    pub fn for_url(url: DatabaseUrl, profile: &Profile, app_password: Option<String>) -> Db {
        let admin = Login {
            user: url
                .config
                .get_user()
                .unwrap_or(&profile.admin_user)
                .to_string(),
            password: url
                .config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        };
        Db {
            database: url
                .config
                .get_dbname()
                .unwrap_or(&profile.database)
                .to_string(),
            route: Route::Url(url),
            admin,
            app: Login {
                user: profile.app_user.clone(),
                password: app_password,
            },
            metrics: None,
        }
    }

    /// "pod NS/NAME (port-forward)" or the URL without its password.
    pub fn describe(&self) -> String {
        match &self.route {
            Route::Pod { kube, pod, .. } => format!("pod {}/{pod} (port-forward)", kube.namespace),
            Route::Url(u) => u.shown.clone(),
        }
    }

    /// Where the PostgreSQL tools (pg_dump, pg_restore, psql) work on it: in the pod, its own,
    /// through exec; or on this machine against the URL.
    pub fn describe_tools(&self) -> String {
        match &self.route {
            Route::Pod { kube, pod, .. } => {
                format!("pod {}/{pod} (its own tools, through exec)", kube.namespace)
            }
            Route::Url(u) => format!("{} (this machine's tools)", u.shown),
        }
    }

    pub fn is_pod(&self) -> bool {
        matches!(self.route, Route::Pod { .. })
    }

    /// A session as the admin role.
    pub async fn admin(&self) -> Result<Client> {
        self.connect(&self.admin).await
    }

    /// A session as `login` on the database; errors name the cause (see [`explain`]).
    pub async fn connect(&self, login: &Login) -> Result<Client> {
        let doing = format!(
            "connecting to database {} as {} through {}",
            self.database,
            login.user,
            self.describe()
        );
        let mut config = match &self.route {
            Route::Url(u) => u.config.clone(),
            Route::Pod { .. } => {
                let mut c = tokio_postgres::Config::new();
                c.application_name("phonebill-db");
                c
            }
        };
        config.user(&login.user).dbname(&self.database);
        if let Some(p) = &login.password {
            config.password(p);
        }
        let client = match &self.route {
            Route::Pod { kube, pod, port } => {
                let (forwarder, stream) = forward::open(kube, pod, *port).await?;
                // The release's server asks for SCRAM only (its pg_hba.conf): anything else is
                // not that server, and gets no password.
                let stream = super::require_auth::Guarded::new(
                    stream,
                    super::require_auth::RequireAuth::scram(),
                );
                let connecting = config.connect_raw(stream, NoTls);
                let (client, connection) = tokio::time::timeout(POD_CONNECT_TIMEOUT, connecting)
                    .await
                    .map_err(|_| timed_out(&doing, POD_CONNECT_TIMEOUT))?
                    .map_err(|e| explain(e.into(), &doing, SslMode::Disable, &login.user))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                    drop(forwarder);
                });
                client
            }
            Route::Url(u) => {
                // tokio-postgres applies connect_timeout per attempt; bound the whole handshake too.
                let limit = u.config.get_connect_timeout().copied().unwrap_or_default() * 2;
                let (client, connection) = tokio::time::timeout(
                    limit,
                    tls::connect(&config, u.ssl_mode, &u.roots, &u.require_auth),
                )
                .await
                .map_err(|_| timed_out(&doing, limit))??
                .map_err(|e| explain(e, &doing, u.ssl_mode, &login.user))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        Ok(client)
    }
}

fn timed_out(doing: &str, after: Duration) -> anyhow::Error {
    anyhow::Error::new(
        user_error(format!(
            "no answer within {}",
            humantime::format_duration(after)
        ))
        .hint("check the host and port, and that a firewall or NetworkPolicy lets you through")
        .exit(ExitCode::Timeout),
    )
    .context(doing.to_string())
}

/// The Ready, non-terminating primary pod of the release.
pub async fn ready_primary(kube: &Kube, profile: &Profile) -> Result<String> {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
    // The pod of the StatefulSet that holds the data (during an upgrade, another one runs too).
    let selector: Vec<String> = profile
        .serving_labels()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let pods = api
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .map_err(|e| {
            api_error(
                e,
                &format!(
                    "looking for the database pod in namespace {}",
                    kube.namespace
                ),
                &kube.server,
            )
        })?;
    let ready = pods
        .items
        .iter()
        .find(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p));
    match ready {
        Some(p) => Ok(p.name_any()),
        None => {
            if let Ok(Some(sts)) = crate::k8s::release::live_statefulset(kube, profile).await
                && crate::k8s::power::stopped(&sts)
            {
                return Err(crate::k8s::power::stopped_error(
                    profile,
                    "reaching the database pod",
                ));
            }
            let what = if pods.items.is_empty() {
                format!(
                    "no database pod of release {} in namespace {}",
                    profile.release, kube.namespace
                )
            } else {
                format!(
                    "the database pod of release {} in namespace {} is not ready",
                    profile.release, kube.namespace
                )
            };
            Err(user_error(what)
                .hint(format!(
                    "run `phonebill-db status --env {}` to see why, or `phonebill-db install --env {}`",
                    profile.environment, profile.environment
                ))
                .into())
        }
    }
}

/// A key of one of the release's Secrets, with a hint when it is missing.
pub async fn secret_key(kube: &Kube, api: &Api<Secret>, name: &str, key: &str) -> Result<String> {
    let secret = api.get_opt(name).await.map_err(|e| {
        api_error(
            e,
            &format!("reading Secret {name} in namespace {}", kube.namespace),
            &kube.server,
        )
    })?;
    let value = secret
        .as_ref()
        .and_then(|s| crate::passwords::secret_text(s, key));
    match (secret, value) {
        (None, _) => Err(user_error(format!(
            "Secret {name} is missing in namespace {}",
            kube.namespace
        ))
        .hint("run `phonebill-db install` to create it (passwords are kept in Secrets only)")
        .into()),
        (Some(_), None) => Err(user_error(format!("Secret {name} has no key `{key}`"))
            .hint("restore the key from a backup of the Secret; the database still has the old password")
            .into()),
        (Some(_), Some(v)) => Ok(v),
    }
}

/// What the server said (tokio-postgres prints only "db error"), or the client-side error.
pub fn server_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Turn a tokio-postgres error (which prints only "db error") into its cause and a hint.
pub fn explain(e: tls::Failure, doing: &str, mode: SslMode, user: &str) -> anyhow::Error {
    let (message, hint, exit) = classify(&e, mode, user);
    anyhow::Error::new(UserError {
        message,
        hint: Some(hint),
        exit,
    })
    .context(doing.to_string())
}

fn classify(e: &tls::Failure, mode: SslMode, user: &str) -> (String, String, ExitCode) {
    if let Some(refused) = super::require_auth::refusal_in(e) {
        return (
            refused.to_string(),
            "a server that asks for a clear-text password is misconfigured (pg_hba.conf `password`) or not the server meant; if it must (LDAP, RADIUS, PAM), allow it in the URL with require_auth=password and use sslmode=verify-full".into(),
            ExitCode::Failed,
        );
    }
    let session = match e {
        tls::Failure::Session(s) => Some(s),
        tls::Failure::Socket(_) => None,
    };
    if let Some(db) = session.and_then(|s| s.as_db_error()) {
        let msg = db.message().to_string();
        let hint = match db.code().code() {
            "28P01" => format!(
                "the password for {user} does not match the server's; check the Secret or the URL (PGPASSWORD)"
            ),
            "28000" if msg.contains("no encryption") => {
                return (
                    format!("the server requires TLS: {msg}"),
                    "connect with sslmode=require, or sslmode=verify-full and --ca-file".into(),
                    ExitCode::Failed,
                );
            }
            "28000" => "the server's pg_hba.conf does not let this user in from here".into(),
            "3D000" => {
                "the database does not exist: check the URL's database name, or install first"
                    .into()
            }
            "53300" => {
                "the server has no free connection slot; try again or raise max_connections".into()
            }
            "57P03" => "the server is starting or shutting down; try again in a moment".into(),
            // ALLOW_CONNECTIONS false: a restore's swap refuses connections for a moment; one
            // that was cut off leaves them refused.
            "55000" if msg.contains("not currently accepting connections") => {
                "a restore is swapping the database in (try again in a moment); if none runs, one was cut off in its swap: `phonebill-db restore --drop-previous` opens it again".into()
            }
            _ => "see the server's message; `-v` shows the whole chain".into(),
        };
        return (msg, hint, ExitCode::Failed);
    }
    // Walk the sources: I/O errors (refused, unreachable) and rustls' certificate errors.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return tls_cause(tls, mode);
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return tls_cause(tls, mode);
            }
            let hint = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "nothing listens there: check the host and port, and that the server runs"
                }
                std::io::ErrorKind::TimedOut => {
                    return (
                        format!("no answer: {io}"),
                        "check the host and port, and that a firewall or NetworkPolicy lets you through".into(),
                        ExitCode::Timeout,
                    );
                }
                _ => "check the host and port, and the network between here and the server",
            };
            return (io.to_string(), hint.into(), ExitCode::Failed);
        }
        source = s.source();
    }
    let text = e.to_string();
    // tokio-postgres says it in the error's source ("error performing TLS handshake: server does
    // not support TLS"), not in its own message: the whole chain is read.
    let chain = std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |s| {
        s.source()
    });
    if chain
        .map(|s| s.to_string())
        .any(|t| t.contains("server does not support TLS"))
    {
        return (
            "the server does not offer TLS".into(),
            "use sslmode=prefer or disable for a server without TLS (never over a public network)"
                .into(),
            ExitCode::Failed,
        );
    }
    if text.contains("timed out") {
        return (
            text,
            "check the host and port, and that a firewall or NetworkPolicy lets you through".into(),
            ExitCode::Timeout,
        );
    }
    (
        text,
        "see `-v` for the whole chain".into(),
        ExitCode::Failed,
    )
}

fn tls_cause(e: &rustls::Error, mode: SslMode) -> (String, String, ExitCode) {
    use rustls::CertificateError as C;
    let (message, hint) = match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => (
            "the server's certificate is not signed by a trusted CA".to_string(),
            "give the CA that signed the server's certificate with --ca-file FILE (or sslrootcert=)",
        ),
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => (
            "the server's certificate is not valid for the host name connected to".to_string(),
            "connect by a name the certificate lists, or use sslmode=verify-ca to check the CA only",
        ),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => (
            "the server's certificate has expired".to_string(),
            "renew the server's certificate",
        ),
        other => (
            format!("TLS handshake failed: {other}"),
            "check the server's TLS settings and the CA file",
        ),
    };
    (
        format!("{message} (sslmode={})", mode.as_str()),
        hint.into(),
        ExitCode::Failed,
    )
}
