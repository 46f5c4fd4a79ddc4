//! `--database-url` parsing and TLS (rustls, through tokio-postgres-rustls), with libpq's `sslmode`
//! meanings, CA file or not (docs/tls.md has the table; tests/it/tls.rs checks every row against
//! libpq itself):
//! - `disable`: no TLS; `allow`: no TLS, then TLS if the server refuses a connection without it;
//! - `prefer` (the default): TLS when the server offers it, else none; with a CA file the chain is
//!   checked, and a failed check falls back to no TLS (as libpq does);
//! - `require`: TLS; with a CA file the chain is checked (libpq: "the same as verify-ca");
//! - `verify-ca`: TLS, chain checked; `verify-full`: chain and host name. Both need a CA.
//!
//! The CA ("root certificate") comes, as in libpq, from `--ca-file`, else `sslrootcert=` in the
//! URL, else `$PGSSLROOTCERT`, else `~/.postgresql/root.crt` when it exists. `sslrootcert=system`
//! means the system's trusted roots and needs `verify-full` (libpq 16's rule).
//!
//! `require_auth=` (libpq 16's syntax) says which authentication methods the server may ask for;
//! without it, anything but the password in clear text ([`super::require_auth`]). The sockets
//! are this module's own (tokio-postgres's `connect_raw`), so that the guard reads the server's
//! side, under TLS when there is TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::require_auth::{GuardTls, Guarded, RequireAuth};
use crate::error::{ExitCode, user_error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// libpq's `sslrootcert=system`: the system's trusted roots (also as a `--ca-file` value).
pub const SYSTEM_ROOTS: &str = "system";

/// What verifies the server's certificate (libpq's `sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// The system's trusted roots (`sslrootcert=system`).
    System,
    /// None: the certificate is not checked (and verify-* cannot be used).
    Absent,
}

impl Roots {
    /// `--ca-file`, else `sslrootcert=` of the URL, else `$PGSSLROOTCERT`, else
    /// `~/.postgresql/root.crt` when it exists: where libpq looks, in libpq's order.
    pub fn resolve(ca_file: Option<&Path>, url_root: Option<&str>) -> Roots {
        let named = ca_file
            .map(|p| p.display().to_string())
            .or_else(|| url_root.map(str::to_string))
            .or_else(|| {
                std::env::var("PGSSLROOTCERT")
                    .ok()
                    .filter(|v| !v.is_empty())
            });
        match named.as_deref() {
            Some(SYSTEM_ROOTS) => Roots::System,
            Some(path) => Roots::File(PathBuf::from(path)),
            None => std::env::var_os("HOME")
                .map(|h| Path::new(&h).join(".postgresql/root.crt"))
                .filter(|p| p.exists())
                .map_or(Roots::Absent, Roots::File),
        }
    }

    /// For libpq's PGSSLROOTCERT (the local tools).
    pub fn libpq(&self) -> Option<String> {
        match self {
            Roots::File(p) => Some(p.display().to_string()),
            Roots::System => Some("system".into()),
            Roots::Absent => None,
        }
    }
}

/// A parsed `--database-url`: the connection settings, the TLS mode, what verifies the server, and
/// the URL without its password (for messages).
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub roots: Roots,
    /// The authentication methods the server may ask for (`require_auth=`).
    pub require_auth: RequireAuth,
    pub shown: String,
}

fn bad_url(why: impl std::fmt::Display) -> anyhow::Error {
    user_error(format!("--database-url: {why}"))
        .hint("use postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full&sslrootcert=CA.pem]")
        .exit(ExitCode::Usage)
        .into()
}

/// Does a `--database-url` text carry a password (`user:PASSWORD@` or `?password=`)?
pub fn carries_password(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|u| u.password().is_some() || u.query_pairs().any(|(k, _)| k == "password"))
}

/// Parse `postgresql://user:password@host:port/db?sslmode=...&sslrootcert=...`. The password may
/// instead come from `PGPASSWORD` (`env_password`); `--ca-file` (`ca_file`) wins over `sslrootcert`.
pub fn parse_url(
    text: &str,
    env_password: Option<String>,
    ca_file: Option<&Path>,
) -> Result<DatabaseUrl> {
    let mut url = url::Url::parse(text).map_err(bad_url)?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(bad_url(format!(
            "scheme `{}` is not postgresql://",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad_url("no host"));
    }
    let mut ssl_mode = SslMode::Prefer;
    let mut root = None;
    let mut query_password = None;
    let mut require_auth = RequireAuth::default();
    let mut rest = Vec::new();
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" => {
                ssl_mode = match v.as_ref() {
                    "disable" => SslMode::Disable,
                    "allow" => SslMode::Allow,
                    "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(bad_url(format!(
                            "sslmode `{}` is not one of disable, allow, prefer, require, verify-ca, verify-full",
                            crate::error::shown(other)
                        )));
                    }
                }
            }
            "sslrootcert" => root = Some(v.into_owned()),
            "require_auth" => require_auth = RequireAuth::parse(&v).map_err(bad_url)?,
            // libpq's `?password=`: taken, and never shown (see `shown`).
            "password" => query_password = Some(v.into_owned()),
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    if rest.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(rest);
    }
    let mut config: tokio_postgres::Config = url.as_str().parse().map_err(bad_url)?;
    if let Some(p) = query_password {
        config.password(p);
    }
    if config.get_password().is_none()
        && let Some(p) = env_password
    {
        config.password(p);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config.application_name("phonebill-db");
    let roots = Roots::resolve(ca_file, root.as_deref());
    if roots == Roots::System && ssl_mode != SslMode::VerifyFull {
        return Err(bad_url(format!(
            "sslrootcert=system needs sslmode=verify-full, not {} (libpq's rule: the system's roots vouch for any name)",
            ssl_mode.as_str()
        )));
    }
    let _ = url.set_password(None);
    Ok(DatabaseUrl {
        config,
        ssl_mode,
        roots,
        require_auth,
        shown: url.to_string(),
    })
}

/// The mode's attempts, in libpq's order: with TLS or not, and what checks the certificate.
fn attempts(mode: SslMode, roots: &Roots) -> Result<Vec<Attempt>> {
    let check = match roots {
        Roots::Absent => Check::Nothing,
        _ => Check::Chain,
    };
    Ok(match mode {
        SslMode::Disable => vec![Attempt::Plain],
        SslMode::Allow => vec![Attempt::Plain, Attempt::Tls(check)],
        SslMode::Prefer => vec![Attempt::TlsIfOffered(check), Attempt::Plain],
        SslMode::Require => vec![Attempt::Tls(check)],
        SslMode::VerifyCa | SslMode::VerifyFull if *roots == Roots::Absent => {
            return Err(user_error(format!(
                "sslmode={} needs a CA to check the server's certificate, and there is none (no --ca-file, sslrootcert=, $PGSSLROOTCERT or ~/.postgresql/root.crt)",
                mode.as_str()
            ))
            .hint("give the CA that signed the server's certificate with --ca-file FILE, or sslrootcert=system for the system's roots (verify-full)")
            .into());
        }
        SslMode::VerifyCa => vec![Attempt::Tls(Check::Chain)],
        SslMode::VerifyFull => vec![Attempt::Tls(Check::ChainAndName)],
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Plain,
    /// TLS or fail.
    Tls(Check),
    /// TLS when the server offers it, else without (tokio-postgres's `prefer`).
    TlsIfOffered(Check),
}

/// Why an attempt failed, as far as the next attempt cares.
fn retry_next(attempt: Attempt, e: &tokio_postgres::Error) -> bool {
    match attempt {
        // `allow`: the server refused a connection without TLS (pg_hba `hostssl`/`hostnossl … reject`).
        Attempt::Plain => e
            .as_db_error()
            .is_some_and(|d| d.code().code() == "28000" && d.message().contains("no encryption")),
        // `prefer`: the TLS handshake failed (a certificate the CA does not vouch for): libpq
        // falls back to a connection without TLS.
        Attempt::TlsIfOffered(_) => e.as_db_error().is_none() && is_tls_error(e),
        Attempt::Tls(_) => false,
    }
}

fn is_tls_error(e: &tokio_postgres::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some()
            || s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The socket of a session: TCP or a Unix socket's, this module's own (see [`open`]).
pub type Socket = tokio_util::either::Either<tokio::net::TcpStream, tokio::net::UnixStream>;

type Tls = <MakeRustlsConnect as MakeTlsConnect<Guarded<Socket>>>::TlsConnect;

/// A session's connection future (its socket and TLS stream both guarded).
pub type Connection = tokio_postgres::Connection<
    Guarded<Socket>,
    Guarded<<Tls as tokio_postgres::tls::TlsConnect<Guarded<Socket>>>::Stream>,
>;

/// Why a connection could not be made: the socket, or the session on it.
#[derive(Debug)]
pub enum Failure {
    Socket(std::io::Error),
    Session(tokio_postgres::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Socket(e) => write!(f, "{e}"),
            Failure::Session(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Socket(e) => Some(e),
            Failure::Session(e) => Some(e),
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Session(e)
    }
}

/// The addresses to try, in the config's order (as tokio-postgres reads host, hostaddr and
/// port): where to connect, the name TLS checks, the port.
fn targets(config: &tokio_postgres::Config) -> Vec<(Host, Option<String>, u16)> {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let ports = config.get_ports();
    (0..hosts.len().max(addrs.len()))
        .map(|i| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let name = match hosts.get(i) {
                Some(Host::Tcp(h)) => Some(h.clone()),
                _ => None,
            };
            let at = match (addrs.get(i), hosts.get(i)) {
                (Some(ip), _) => Host::Tcp(ip.to_string()),
                (None, Some(h)) => h.clone(),
                (None, None) => Host::Tcp("localhost".into()),
            };
            (at, name, port)
        })
        .collect()
}

/// Open a socket to `at` as tokio-postgres would: each address the name resolves to in turn,
/// within the config's connect timeout, no Nagle, its keepalives.
async fn open(at: &Host, port: u16, config: &tokio_postgres::Config) -> std::io::Result<Socket> {
    let timeout = config.get_connect_timeout().copied();
    let within =
        async |f: std::pin::Pin<Box<dyn Future<Output = std::io::Result<Socket>> + Send + '_>>| {
            match timeout {
                Some(t) => tokio::time::timeout(t, f).await.unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "timed out connecting to the server",
                    ))
                }),
                None => f.await,
            }
        };
    match at {
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            within(Box::pin(async move {
                Ok(Socket::Right(tokio::net::UnixStream::connect(path).await?))
            }))
            .await
        }
        Host::Tcp(name) => {
            let mut last = None;
            for addr in tokio::net::lookup_host((name.as_str(), port)).await? {
                let attempt = within(Box::pin(async move {
                    Ok(Socket::Left(tokio::net::TcpStream::connect(addr).await?))
                }))
                .await;
                match attempt {
                    Ok(Socket::Left(s)) => {
                        s.set_nodelay(true)?;
                        let sock = socket2::SockRef::from(&s);
                        if let Some(t) = config.get_tcp_user_timeout() {
                            sock.set_tcp_user_timeout(Some(*t))?;
                        }
                        if config.get_keepalives() {
                            let mut k = socket2::TcpKeepalive::new()
                                .with_time(config.get_keepalives_idle());
                            if let Some(i) = config.get_keepalives_interval() {
                                k = k.with_interval(i);
                            }
                            if let Some(r) = config.get_keepalives_retries() {
                                k = k.with_retries(r);
                            }
                            sock.set_tcp_keepalive(&k)?;
                        }
                        return Ok(Socket::Left(s));
                    }
                    Ok(other) => return Ok(other),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("host name {name} resolves to no address"),
                )
            }))
        }
    }
}

/// Connect as libpq would with this mode and these roots, trying its attempts in order, each on
/// every host of the config; the server's side guarded by `rule`.
pub async fn connect(
    config: &tokio_postgres::Config,
    mode: SslMode,
    roots: &Roots,
    rule: &RequireAuth,
) -> Result<std::result::Result<(tokio_postgres::Client, Connection), Failure>> {
    let attempts = attempts(mode, roots)?;
    let mut last = None;
    for (i, attempt) in attempts.iter().enumerate() {
        let mut config = config.clone();
        let check = match *attempt {
            Attempt::Plain => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                Check::Nothing
            }
            Attempt::Tls(c) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                c
            }
            Attempt::TlsIfOffered(c) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Prefer);
                c
            }
        };
        let mut make = connector(check, roots)?;
        let mut failure = None;
        for (at, name, port) in targets(&config) {
            let socket = match open(&at, port, &config).await {
                Ok(s) => s,
                Err(e) => {
                    failure = Some(Failure::Socket(e));
                    continue;
                }
            };
            // A Unix socket has no TLS; its name matters to no one.
            let tls = <MakeRustlsConnect as MakeTlsConnect<Guarded<Socket>>>::make_tls_connect(
                &mut make,
                name.as_deref().unwrap_or("localhost"),
            )
            .context("setting up TLS (a bug)")?;
            let guarded = GuardTls {
                inner: tls,
                rule: rule.clone(),
            };
            match config
                .connect_raw(Guarded::new(socket, rule.clone()), guarded)
                .await
            {
                Ok(ok) => return Ok(Ok(ok)),
                Err(e) => failure = Some(Failure::Session(e)),
            }
        }
        let failure = failure.unwrap_or_else(|| {
            Failure::Socket(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no host to connect to",
            ))
        });
        match &failure {
            Failure::Session(e) if i + 1 < attempts.len() && retry_next(*attempt, e) => {
                last = Some(failure)
            }
            _ => return Ok(Err(failure)),
        }
    }
    Ok(Err(last.expect("at least one attempt")))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS connector of an attempt: what it checks of the server's certificate.
fn connector(check: Check, roots: &Roots) -> Result<MakeRustlsConnect> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("setting up TLS (a bug)")?;
    let config = match check {
        Check::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider())))
            .with_no_client_auth(),
        Check::Chain | Check::ChainAndName => {
            let store = Arc::new(root_store(roots)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(store, provider())
                .build()
                .context("setting up certificate verification")?;
            if check == Check::ChainAndName {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                    .with_no_client_auth()
            }
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn root_store(roots: &Roots) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::Absent => anyhow::bail!("no CA to check the certificate with (a bug)"),
        Roots::File(path) => {
            let bytes = crate::files::read(path).map_err(|e| {
                user_error(format!("cannot read CA file {}: {e}", path.display())).hint(
                    "give a PEM file with the server's CA certificate (--ca-file or sslrootcert=)",
                )
            })?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    user_error(format!("CA file {} is not valid PEM: {e}", path.display()))
                        .hint("give a PEM file with the server's CA certificate (--ca-file or sslrootcert=)")
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(user_error(format!(
                    "CA file {} holds no usable certificate",
                    path.display()
                ))
                .hint(
                    "give a PEM file with the server's CA certificate (--ca-file or sslrootcert=)",
                )
                .into());
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(user_error("no trusted CA certificates found on this system")
                    .hint("give the server's CA with --ca-file FILE (Azure: DigiCert Global Root G2)")
                    .into());
            }
        }
    }
    Ok(store)
}

/// `require`/`prefer`: encrypted, certificate not verified (libpq's meaning without a root cert).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the CA; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_are_taken_apart() {
        let u = parse_url(
            "postgresql://admin:s3cret@db.example.com:6432/phonebill_auth?sslmode=verify-full&sslrootcert=/tmp/ca.pem&connect_timeout=3",
            None,
            None,
        )
        .unwrap();
        assert_eq!(u.ssl_mode, SslMode::VerifyFull);
        assert_eq!(u.roots, Roots::File("/tmp/ca.pem".into()));
        assert_eq!(u.config.get_user(), Some("admin"));
        assert_eq!(u.config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(u.config.get_dbname(), Some("phonebill_auth"));
        assert_eq!(u.config.get_ports(), &[6432]);
        assert_eq!(
            u.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert!(!u.shown.contains("s3cret"), "{}", u.shown);
    }

    #[test]
    fn a_password_in_the_query_is_used_and_never_shown() {
        let text = "postgresql://admin@db/phonebill_auth?password=q%40uery&sslmode=require&application_name=x";
        assert!(carries_password(text));
        assert!(carries_password("postgresql://a:b@h/d"));
        assert!(!carries_password("postgresql://a@h/d?sslmode=disable"));
        let u = parse_url(text, Some("env".into()), None).unwrap();
        assert_eq!(u.config.get_password(), Some(&b"q@uery"[..]));
        assert!(!u.shown.contains("uery"), "{}", u.shown);
        assert!(!u.shown.contains("password"), "{}", u.shown);
        assert!(u.shown.contains("application_name=x"), "{}", u.shown);
    }

    #[test]
    fn password_from_the_environment_only_when_the_url_has_none() {
        let u = parse_url("postgres://a@h/db", Some("env".into()), None).unwrap();
        assert_eq!(u.config.get_password(), Some(&b"env"[..]));
        assert_eq!(u.ssl_mode, SslMode::Prefer);
        let u = parse_url(
            "postgres://a:url@h/db",
            Some("env".into()),
            Some(Path::new("ca")),
        )
        .unwrap();
        assert_eq!(u.config.get_password(), Some(&b"url"[..]));
        assert_eq!(
            u.roots,
            Roots::File("ca".into()),
            "--ca-file wins over the URL"
        );
    }

    #[test]
    fn each_mode_tries_what_libpq_tries() {
        use Attempt::*;
        let file = Roots::File("ca.pem".into());
        let none = Roots::Absent;
        assert_eq!(attempts(SslMode::Disable, &file).unwrap(), [Plain]);
        assert_eq!(
            attempts(SslMode::Allow, &none).unwrap(),
            [Plain, Tls(Check::Nothing)]
        );
        assert_eq!(
            attempts(SslMode::Allow, &file).unwrap(),
            [Plain, Tls(Check::Chain)]
        );
        assert_eq!(
            attempts(SslMode::Prefer, &none).unwrap(),
            [TlsIfOffered(Check::Nothing), Plain]
        );
        assert_eq!(
            attempts(SslMode::Prefer, &file).unwrap(),
            [TlsIfOffered(Check::Chain), Plain]
        );
        assert_eq!(
            attempts(SslMode::Require, &none).unwrap(),
            [Tls(Check::Nothing)]
        );
        assert_eq!(
            attempts(SslMode::Require, &file).unwrap(),
            [Tls(Check::Chain)],
            "a CA file makes require check the chain"
        );
        assert_eq!(
            attempts(SslMode::VerifyCa, &file).unwrap(),
            [Tls(Check::Chain)]
        );
        assert_eq!(
            attempts(SslMode::VerifyFull, &Roots::System).unwrap(),
            [Tls(Check::ChainAndName)]
        );
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let r = crate::error::report(&attempts(mode, &none).unwrap_err());
            assert!(r.error.contains("needs a CA"), "{}", r.error);
        }
    }

    #[test]
    fn system_roots_need_verify_full() {
        let u = parse_url(
            "postgres://a@h/db?sslmode=verify-full&sslrootcert=system",
            None,
            None,
        )
        .unwrap();
        assert_eq!(u.roots, Roots::System);
        let e = parse_url(
            "postgres://a@h/db?sslmode=require&sslrootcert=system",
            None,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs sslmode=verify-full"), "{e}");
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for bad in [
            "mysql://h/db",
            "postgresql:///db",
            "not a url",
            "postgres://h/db?sslmode=maybe",
        ] {
            let e = parse_url(bad, None, None).unwrap_err();
            let ue = e
                .downcast_ref::<crate::error::UserError>()
                .expect("a user error");
            assert_eq!(ue.exit, ExitCode::Usage, "{bad}");
        }
    }
}
