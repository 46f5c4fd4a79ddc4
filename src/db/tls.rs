//! `--database-url` parsing and TLS (rustls, through tokio-postgres-rustls), with libpq's `sslmode`
//! meanings: `disable`; `prefer` (the default: TLS when the server offers it, unverified);
//! `require` (TLS, certificate not verified); `verify-ca` (chain checked against the CA);
//! `verify-full` (chain and host name). The CA comes from `sslrootcert=FILE` in the URL or
//! `--ca-file FILE`; without one, verify-* use the system's trusted roots.

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
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{ExitCode, user_error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A parsed `--database-url`: the connection settings, the TLS mode and the CA file, and the URL
/// without its password (for messages).
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub ca_file: Option<PathBuf>,
    pub shown: String,
}

fn bad_url(why: impl std::fmt::Display) -> anyhow::Error {
    user_error(format!("--database-url: {why}"))
        .hint("use postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full&sslrootcert=CA.pem]")
        .exit(ExitCode::Usage)
        .into()
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
    let mut rest = Vec::new();
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" => {
                ssl_mode = match v.as_ref() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(bad_url(format!(
                            "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                        )));
                    }
                }
            }
            "sslrootcert" => root = Some(PathBuf::from(v.as_ref())),
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    if rest.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(rest);
    }
    let mut config: tokio_postgres::Config = url.as_str().parse().map_err(bad_url)?;
    if config.get_password().is_none()
        && let Some(p) = env_password
    {
        config.password(p);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config.application_name("phonebill-db");
    config.ssl_mode(match ssl_mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let _ = url.set_password(None);
    Ok(DatabaseUrl {
        config,
        ssl_mode,
        ca_file: ca_file.map(Path::to_path_buf).or(root),
        shown: url.to_string(),
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS connector for a mode: what is verified follows libpq's meaning of the mode.
pub fn connector(mode: SslMode, ca_file: Option<&Path>) -> Result<MakeRustlsConnect> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("setting up TLS (a bug)")?;
    let config = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider())))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(ca_file)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .context("setting up certificate verification")?;
            if mode == SslMode::VerifyFull {
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

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| {
                    user_error(format!("cannot read CA file {}: {e}", path.display()))
                        .hint("give a PEM file with the server's CA certificate (--ca-file or sslrootcert=)")
                })?
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
        None => {
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
        assert_eq!(u.ca_file.as_deref(), Some(Path::new("/tmp/ca.pem")));
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
        assert_eq!(u.ca_file.as_deref(), Some(Path::new("ca")));
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
