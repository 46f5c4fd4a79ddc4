//! The transport, as the real API server's: HTTPS only, a client authenticated by a certificate its
//! CA signed (or a bearer token); and, for tests, faults injected per request: an answer of the
//! test's choosing (429 with Retry-After, 500, 503, …) or a connection closed before any answer.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Notify;

use crate::Shared;
use crate::status::ApiError;

/// The PEM texts a kubeconfig needs: the cluster's CA, and the test user's certificate and key.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub ca: String,
    pub client_cert: String,
    pub client_key: String,
}

/// What a connection brings to each of its requests.
#[derive(Clone)]
pub struct Connection {
    /// The client showed a certificate the cluster's CA signed (rustls checked it).
    pub client_certificate: bool,
    /// Notified to close the connection at once, answer or not (a `Fault::Reset`).
    reset: Arc<Notify>,
}

/// What an injected fault answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// An error Status with this code (429 also with `Retry-After: seconds`).
    Status { code: u16, retry_after: Option<u64> },
    /// The connection closes before any answer (a reset, an API server restart).
    Reset,
    /// A slow server: the request is handled after this long.
    Delay(std::time::Duration),
    /// The request is handled (a create committed) and then the connection closes before its
    /// answer: a real server restarted, or a proxy timed out, after the write. A retry of a
    /// create then meets 409 AlreadyExists.
    AnswerLost,
}

/// The next `remaining` requests whose path contains `path` (and, if given, with this method)
/// get `fault` instead of their answer.
#[derive(Debug, Clone)]
pub struct Injected {
    pub path: String,
    pub method: Option<String>,
    pub remaining: usize,
    pub fault: Fault,
}

/// A CA, the server's certificate for 127.0.0.1 and a client certificate, made fresh per server.
pub fn certificates() -> (rustls::ServerConfig, Credentials) {
    let ca_key = KeyPair::generate().expect("a key");
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "fake-kube CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("the CA");
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().expect("a key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("names")
        .signed_by(&server_key, &issuer)
        .expect("the server certificate");

    let client_key = KeyPair::generate().expect("a key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
    // The user the API server sees: CN is the name, O the groups (as kubeadm's admin.conf).
    client
        .distinguished_name
        .push(DnType::CommonName, crate::USER);
    client
        .distinguished_name
        .push(DnType::OrganizationName, "system:authenticated");
    let client = client
        .signed_by(&client_key, &issuer)
        .expect("the client certificate");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).expect("the CA as a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    // As the real server: a TLS client without a certificate may still send a token.
    .allow_unauthenticated()
    .build()
    .expect("a client verifier");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(server.pem().as_bytes()).expect("PEM")],
            PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes()).expect("PEM"),
        )
        .expect("the server's certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (
        config,
        Credentials {
            ca: ca_cert.pem(),
            client_cert: client.pem(),
            client_key: client_key.serialize_pem(),
        },
    )
}

/// Accept TLS connections and serve `app` on each, until the task is aborted.
pub async fn run(listener: tokio::net::TcpListener, config: rustls::ServerConfig, app: Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        // As the real (Go) API server: no Nagle delay on small writes, which would otherwise add
        // ~40 ms to every round trip through a port-forward (delayed ACKs on loopback).
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return; // a client that gave up, or does not trust our CA
            };
            let client_certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let reset = Arc::new(Notify::new());
            let connection = Connection {
                client_certificate,
                reset: reset.clone(),
            };
            let service = TowerToHyperService::new(app.layer(axum::Extension(connection)));
            let serving = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::select! {
                _ = serving => {}
                // Dropping the connection closes it, mid-request.
                _ = reset.notified() => {}
            }
        });
    }
}

/// Middleware: who is asking. A certificate the cluster's CA signed, or the bearer token; else 401.
pub async fn authenticate(request: Request, next: Next) -> Response {
    let certified = request
        .extensions()
        .get::<Connection>()
        .is_some_and(|c| c.client_certificate);
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {}", crate::TOKEN));
    if certified || token {
        next.run(request).await
    } else {
        crate::error(ApiError::new(401, "Unauthorized", "Unauthorized"))
    }
}

/// Middleware: every request is logged; the first injected fault that matches it answers instead.
pub async fn faults(State(cluster): State<Shared>, request: Request, next: Next) -> Response {
    let fault = {
        let mut c = cluster.lock().expect("cluster lock");
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        c.requests.push(format!(
            "{method} {}",
            request
                .uri()
                .path_and_query()
                .map_or(path.as_str(), |p| p.as_str())
        ));
        let hit = c.faults.iter_mut().find(|f| {
            f.remaining > 0
                && path.contains(&f.path)
                && f.method.as_ref().is_none_or(|m| *m == method)
        });
        hit.map(|f| {
            f.remaining -= 1;
            f.fault.clone()
        })
    };
    match fault {
        None => next.run(request).await,
        Some(Fault::Status { code, retry_after }) => {
            let reason = match code {
                429 => "TooManyRequests",
                409 => "Conflict",
                500 => "InternalError",
                503 => "ServiceUnavailable",
                504 => "Timeout",
                403 => "Forbidden",
                _ => "InternalError",
            };
            let mut response = crate::error(ApiError::new(
                code,
                reason,
                format!("injected by the test: {reason}"),
            ));
            if let Some(s) = retry_after {
                response.headers_mut().insert(
                    "retry-after",
                    s.to_string().parse().expect("a header value"),
                );
            }
            response
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(request).await
        }
        Some(Fault::AnswerLost) => {
            let reset = request
                .extensions()
                .get::<Connection>()
                .map(|c| c.reset.clone());
            let _handled = next.run(request).await;
            if let Some(r) = reset {
                r.notify_one();
            }
            std::future::pending::<()>().await;
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Some(Fault::Reset) => {
            if let Some(c) = request.extensions().get::<Connection>() {
                c.reset.notify_one();
            }
            // Never answered: the connection is gone.
            std::future::pending::<()>().await;
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
