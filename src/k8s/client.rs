//! Reaching the cluster: kubeconfig loading and turning API errors into causes with hints.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

use crate::error::{UserError, user_error};

/// A connected client and where it points.
#[derive(Clone)]
pub struct Kube {
    /// For ordinary requests: each answer must begin within [`READ_TIMEOUT`].
    pub client: Client,
    /// For streams that may rightly be quiet for a long time — exec, port-forward, a followed
    /// log, watches: no read deadline. Their ends are theirs to judge (a watch's own idle bound,
    /// see `watches`; an exec or port-forward ends with its WebSocket).
    pub streams: Client,
    pub server: String,
    pub namespace: String,
}

/// How long an ordinary request may wait for its answer to begin (counted from when it was sent).
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a command without a `--timeout` of its own retries transient API failures.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(120);

/// Load the kubeconfig (`--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`, else in-cluster)
/// and build a client whose requests retry transient failures for `budget` (see `retry`).
/// Nothing is sent to the API yet.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    namespace: &str,
    budget: Duration,
) -> Result<Kube> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = read_from(path).map_err(|e| kubeconfig_error(e, Some(path), true))?;
            from_kubeconfig(kc, &options).await?
        }
        None => match read_default() {
            Ok(kc) => from_kubeconfig(kc, &options).await?,
            // A file that is there but cannot be read is said, with its name.
            Err((e, Some(path))) if !matches!(&e, KubeconfigError::ReadConfig(io, _) if io.kind() == std::io::ErrorKind::NotFound) =>
            {
                return Err(kubeconfig_error(e, Some(&path), false));
            }
            Err((e @ KubeconfigError::ReadConfig(..), _))
                if std::env::var_os("KUBECONFIG").is_some() =>
            {
                return Err(kubeconfig_error(e, None, false));
            }
            Err((e, _)) => match Config::incluster() {
                Ok(c) if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => c,
                _ => return Err(kubeconfig_error(e, None, false)),
            },
        },
    };
    let mut config = config;
    config.connect_timeout = Some(Duration::from_secs(10));
    // Ours instead of kube's own (which may wait far longer than the command's --timeout).
    config.default_retry = false;
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let deadline = tokio::time::Instant::now() + budget;
    // kube applies a read timeout to every connection of a client, upgraded ones too: an exec or
    // port-forward quiet for that long would die. So two clients: one with the deadline, for
    // requests (counted from each request's write, not from when its pooled connection went
    // idle), one without, for streams.
    let mut requests = config.clone();
    requests.read_timeout = Some(READ_TIMEOUT);
    requests.reset_reader_on_write = true;
    let mut streams = config;
    streams.read_timeout = None;
    let build = |config: Config| -> Result<Client> {
        let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| {
            // A credential plugin runs here first: its failure quotes what it printed.
            if find_auth(&e).is_some() {
                return api_error(e, "cannot set up a client", &server);
            }
            user_error(format!("cannot set up a client for {server}: {e}"))
                .hint("check the cluster's certificate data in your kubeconfig")
                .into()
        })?;
        Ok(builder
            .with_layer(&super::retry::RetryLayer { deadline })
            .build())
    };
    Ok(Kube {
        client: build(requests)?,
        streams: build(streams)?,
        server: server.clone(),
        namespace: namespace.to_string(),
    })
}

/// `$KUBECONFIG` as kubectl reads it: a list of files (':' between them), merged with the first
/// file to set a value winning, files that do not exist skipped; unset or empty, `~/.kube/config`.
/// A kubeconfig file, refused past [`crate::files::LIMIT`] (a device or a file that never ends).
fn read_from(path: &Path) -> Result<Kubeconfig, KubeconfigError> {
    if let Err(crate::files::Unread::TooLarge) = crate::files::read(path) {
        return Err(KubeconfigError::ReadConfig(
            std::io::Error::other(crate::files::Unread::TooLarge.to_string()),
            path.to_path_buf(),
        ));
    }
    Kubeconfig::read_from(path)
}

/// The merged kubeconfig, or the error and the file it came from (when one did).
fn read_default() -> Result<Kubeconfig, (KubeconfigError, Option<std::path::PathBuf>)> {
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |e| (e, Some(path))
    };
    let paths: Vec<std::path::PathBuf> = std::env::var_os("KUBECONFIG")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if paths.is_empty() {
        // ~/.kube/config, as kube reads it by default.
        if let Some(home) = std::env::var_os("HOME") {
            let path = std::path::Path::new(&home).join(".kube/config");
            if path.exists() {
                return read_from(&path).map_err(at(&path));
            }
        }
        return Kubeconfig::read().map_err(|e| (e, None));
    }
    let existing: Vec<&std::path::PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    let Some(first) = existing.first() else {
        let listed = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err((
            KubeconfigError::ReadConfig(
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("none of the files in $KUBECONFIG exist ({listed})"),
                ),
                paths[0].clone(),
            ),
            None,
        ));
    };
    let first = read_from(first).map_err(at(first))?;
    existing[1..].iter().try_fold(first, |merged, p| {
        merged
            .merge(read_from(p).map_err(at(p))?)
            .map_err(|e| (e, None))
    })
}

async fn from_kubeconfig(kc: Kubeconfig, options: &KubeConfigOptions) -> Result<Config> {
    let contexts: Vec<String> = kc.contexts.iter().map(|c| c.name.clone()).collect();
    Config::from_custom_kubeconfig(kc, options)
        .await
        .map_err(|e| match (&e, &options.context) {
            (KubeconfigError::LoadContext(_), Some(name)) => user_error(format!(
                "the kubeconfig has no context `{}`",
                crate::error::shown(name)
            ))
            .hint(format!(
                "known contexts: {}",
                if contexts.is_empty() {
                    "none".into()
                } else {
                    contexts.join(", ")
                }
            ))
            .into(),
            _ => kubeconfig_error(e, None, false),
        })
}

/// The kubeconfig's error: the file it is in (`path`, given with --kubeconfig when `flag`).
fn kubeconfig_error(e: KubeconfigError, path: Option<&Path>, flag: bool) -> anyhow::Error {
    let hint = if flag {
        "check the file given to --kubeconfig, or get one with `az aks get-credentials --resource-group RG --name CLUSTER --file FILE`"
    } else {
        "get credentials with `az aks get-credentials --resource-group RG --name CLUSTER`, or pass --kubeconfig FILE"
    };
    // A kubeconfig holds tokens and keys: its errors name the file, line and column, never what
    // is written there (the YAML parser's own message quotes the neighbouring lines).
    if let KubeconfigError::Parse(yaml) = &e {
        let file = path.map_or_else(
            || "the kubeconfig".to_string(),
            |p| format!("kubeconfig {}", p.display()),
        );
        let at = yaml
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        return user_error(format!(
            "{file} is not a kubeconfig this tool can read: invalid YAML or a wrong type{at}"
        ))
        .hint("fix the file at that place (`kubectl config view` reads it too), or get a new one with `az aks get-credentials`")
        .into();
    }
    let err = match (&e, path) {
        (KubeconfigError::ReadConfig(io, _), None)
            if io.kind() == std::io::ErrorKind::NotFound
                && std::env::var_os("KUBECONFIG").is_some() =>
        {
            user_error(io.to_string()).hint(hint)
        }
        // --kubeconfig was given: the hint does not send the user back to it.
        (KubeconfigError::ReadConfig(io, p), Some(_))
            if flag && io.kind() == std::io::ErrorKind::NotFound =>
        {
            user_error(format!("kubeconfig {} (--kubeconfig) does not exist", p.display()))
                .hint("check the path given to --kubeconfig, or leave it out to use $KUBECONFIG or ~/.kube/config")
        }
        (KubeconfigError::ReadConfig(io, p), _) if io.kind() == std::io::ErrorKind::NotFound => {
            user_error(format!("kubeconfig {} does not exist", p.display())).hint(hint)
        }
        (KubeconfigError::FindPath, _) => {
            user_error("no kubeconfig: $KUBECONFIG is not set and there is no home directory")
                .hint(hint)
        }
        (KubeconfigError::CurrentContextNotSet, _) => {
            user_error("the kubeconfig has no current context")
                .hint("pass --context NAME, or `kubectl config use-context NAME`")
        }
        // Its own message names the file again: the cause alone.
        (KubeconfigError::ReadConfig(io, p), _) => {
            user_error(format!("cannot read kubeconfig {}: {io}", p.display())).hint(hint)
        }
        (_, Some(p)) => {
            user_error(format!("cannot use kubeconfig {}: {e}", p.display())).hint(hint)
        }
        (_, None) => user_error(format!("cannot use the kubeconfig: {e}")).hint(hint),
    };
    err.into()
}

/// Turn a kube error into a cause and a hint, saying what was being done.
pub fn api_error(e: kube::Error, doing: &str, server: &str) -> anyhow::Error {
    // A credential plugin's failure may come wrapped (through the client's layers): its own
    // message quotes what the plugin printed, the token among it.
    let auth = match &e {
        kube::Error::Auth(auth) => Some(auth),
        other => find_auth(other),
    };
    if let Some(auth) = auth {
        return user_error(format!(
            "{doing}: cannot get credentials for {server}: {}",
            auth_cause(auth)
        ))
        .hint("refresh credentials with `az aks get-credentials` (AKS with Entra ID also needs `kubelogin`); run the plugin named above yourself to see its own message")
        .into();
    }
    let not_kubernetes = |what: String| {
        user_error(format!(
            "{doing}: {server} does not answer as a Kubernetes API server ({what})"
        ))
        .hint("check the server of your kubeconfig's context (`kubectl config view --minify`), or choose another with --context")
    };
    let err: UserError = match &e {
        // Its answer is no Kubernetes Status (a web page, a proxy's error): not an API server.
        kube::Error::Api(status) if status.reason == "Failed to parse error data" => {
            not_kubernetes(format!("HTTP {} and no Kubernetes Status", status.code))
        }
        kube::Error::SerdeError(_) => not_kubernetes("an answer that is not Kubernetes JSON".into()),
        kube::Error::Api(status) => {
            let msg = format!("{doing}: {} ({} {})", status.message, status.code, status.reason);
            match status.code {
                401 => user_error(msg).hint("your credentials were refused: refresh them with `az aks get-credentials` (or `kubelogin`)"),
                403 => user_error(msg).hint("ask a cluster admin for the RBAC rights named above (`kubectl auth can-i --list -n NAMESPACE` shows yours)"),
                404 => user_error(msg).hint("check --namespace and --env, or run `phonebill-db install` first"),
                409 => user_error(msg).hint("another manager owns these fields; re-run with --force-conflicts to take them over"),
                422 => user_error(msg).hint("the value above is invalid for this cluster; fix it in the profile or --values file"),
                429 | 500..=599 => user_error(msg).hint("the API server kept failing: it was retried until the command's time ran out; check its health (`kubectl get --raw /readyz`) and raise --timeout where the command has one"),
                // Another 4xx: the request as it is will never be accepted; another try would not help.
                _ => user_error(msg).hint("the API server refused the request as it is (see its message); with valid input this is a bug of phonebill-db: report it with the output of -v"),
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => user_error(format!("{doing}: cannot reach the Kubernetes API at {server}: {}", root_cause(&e)))
            .hint("check that the cluster is running and reachable (VPN, firewall) and that --context/--kubeconfig point at it (transient failures were retried until the command's time ran out)"),
        _ => user_error(format!("{doing}: {}", root_cause(&e))).hint("run again with -v for more detail"),
    };
    err.into()
}

/// A credential error somewhere in `e`'s chain.
fn find_auth<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a kube::client::AuthError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(auth) = err.downcast_ref::<kube::client::AuthError>() {
            return Some(auth);
        }
        cur = err.source();
    }
    None
}

/// Why credentials could not be had, without what the credential plugin printed (its standard
/// output is the token, its answer may quote it): the plugin's name and what went wrong.
fn auth_cause(e: &kube::client::AuthError) -> String {
    use kube::client::AuthError as A;
    match e {
        A::AuthExecRun { cmd, out } => format!(
            "the kubeconfig's credential plugin {}failed ({})",
            plugin_program(cmd).map_or_else(String::new, |p| format!("`{p}` ")),
            out.status
        ),
        A::AuthExecParse(_) => {
            "the kubeconfig's credential plugin answered with no ExecCredential this tool can read"
                .into()
        }
        A::AuthExecStart(io) => format!("the kubeconfig's credential plugin could not start: {io}"),
        A::AuthExec(_) | A::ExecPluginFailed => {
            "the kubeconfig's credential plugin failed (no status in its answer)".into()
        }
        A::InvalidBearerToken(_) | A::InvalidBasicAuth(_) => {
            "the kubeconfig's token or password is not a valid header value".into()
        }
        A::ParseTokenKey(_) => "the token file's contents are not JSON this tool can read".into(),
        // The rest say nothing of a secret (a path, a date, a missing command).
        other => other.to_string(),
    }
}

/// The program of a command as kube prints it (`KEY="v" "program" "arg"…`): arguments and the
/// environment are left out, they may carry a client secret.
fn plugin_program(cmd: &str) -> Option<String> {
    let mut tokens = Vec::new();
    let (mut token, mut quoted, mut escaped) = (String::new(), false, false);
    for c in cmd.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                token.push(c);
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                token.push(c);
            }
            ' ' if !quoted => tokens.push(std::mem::take(&mut token)),
            _ => token.push(c),
        }
    }
    tokens.push(token);
    let program = tokens.into_iter().find(|t| t.starts_with('"'))?;
    let program = program.trim_matches('"');
    let name = Path::new(program)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    Some(name)
}

/// The innermost non-empty message of an error chain (hyper's outer messages say little).
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(inner) = cur {
        messages.push(inner.to_string());
        cur = inner.source();
    }
    messages.dedup();
    messages.retain(|m| !m.is_empty());
    messages.last().cloned().unwrap_or_default()
}

/// Is this a 404 from the API?
/// Delete `name` with `params`; one already gone is fine (false). `doing` names the deletion in
/// an error ("deleting claim data-…").
pub async fn delete_if_there<K>(
    kube: &Kube,
    api: &kube::Api<K>,
    name: &str,
    params: &kube::api::DeleteParams,
    doing: &str,
) -> Result<bool>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, params).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(api_error(e, doing, &kube.server)),
    }
}

/// Create `object` once. Creates are retried after a transient failure (`retry`), so a create
/// whose answer was lost after the server committed it meets 409 AlreadyExists on its retry:
/// then the object there is read, and taken as this create's when `same` says it is (the same
/// labels and spec); anything else of that name is an error. `doing` names the create.
pub async fn create_once<K>(
    kube: &Kube,
    api: &kube::Api<K>,
    object: &K,
    doing: &str,
    same: impl Fn(&K) -> bool,
) -> Result<K>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let pp = kube::api::PostParams {
        field_manager: Some(super::apply::FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&pp, object).await {
        Ok(made) => Ok(made),
        Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
            let name = object.meta().name.clone().unwrap_or_default();
            let there = api
                .get(&name)
                .await
                .map_err(|e| api_error(e, doing, &kube.server))?;
            if same(&there) {
                return Ok(there);
            }
            Err(user_error(format!(
                "{doing}: {} {name} exists already, and is not the one this command makes",
                K::kind(&Default::default())
            ))
            .hint("another run or a person made it: look at it (`kubectl get … -o yaml`), delete it if it is stale, and run again")
            .into())
        }
        Err(e) => Err(api_error(e, doing, &kube.server)),
    }
}

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::plugin_program;

    #[test]
    fn a_plugin_is_named_by_its_program_alone() {
        let cmd = r#"KUBERNETES_EXEC_INFO="{\"kind\":\"ExecCredential\",\"spec\":{\"interactive\":false}}" "/usr/local/bin/kubelogin" "get-token" "--client-secret" "s3cr3t""#;
        assert_eq!(plugin_program(cmd).as_deref(), Some("kubelogin"));
        assert_eq!(plugin_program(r#""az" "account""#).as_deref(), Some("az"));
        assert_eq!(plugin_program("no quotes at all"), None);
    }
}
