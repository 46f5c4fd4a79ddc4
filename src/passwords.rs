//! The release's passwords: generated from the OS random source on first install, read back from the
//! release's Secret on every later one, so a surviving data volume always matches its Secret. The
//! same for its TLS: the CA and server certificate install made are read back and kept while they
//! do (`certs::resolve` decides).

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::Api;

use crate::error::user_error;
use crate::k8s::Kube;
use crate::k8s::client::api_error;
use crate::profile::Names;
use crate::render::Passwords;
use crate::ui::Ui;

/// Where a managed server's administrator password comes from (never the command line).
pub const ADMIN_PASSWORD_ENV: &str = "PHONEBILL_ADMIN_PASSWORD";

/// A managed server administrator's password: `$PHONEBILL_ADMIN_PASSWORD`, else the one an older
/// install kept in the release's Secret, else asked on the terminal (with `ui`). It is not kept
/// in the cluster: whoever may read the namespace's Secrets would be the server's administrator.
pub fn managed_admin(
    ui: Option<&Ui>,
    user: &str,
    host: &str,
    kept: Option<String>,
) -> Result<String> {
    if let Some(p) = std::env::var(ADMIN_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty())
    {
        return Ok(p);
    }
    if let Some(p) = kept {
        return Ok(p);
    }
    let prompt = format!("password of {user} on {host}");
    match ui.map(|ui| ui.ask_secret(&prompt)).transpose()?.flatten() {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(user_error(format!(
            "the password of the server's administrator {user} is needed (it is not kept in the cluster), and there is no terminal to ask on; nothing was changed"
        ))
        .hint(format!(
            "set {ADMIN_PASSWORD_ENV} (never on the command line), or run on a terminal"
        ))
        .into()),
    }
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LENGTH: usize = 32;

/// A random password of letters and digits (no character needs quoting in a URL or a shell).
pub fn generate() -> Result<String> {
    let mut out = String::with_capacity(LENGTH);
    let mut buf = [0u8; 64];
    while out.len() < LENGTH {
        getrandom::fill(&mut buf)
            .map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - (256 % ALPHABET.len());
        for b in buf.iter().map(|b| *b as usize).filter(|b| *b < limit) {
            if out.len() == LENGTH {
                break;
            }
            out.push(ALPHABET[b % ALPHABET.len()] as char);
        }
    }
    Ok(out)
}

/// Where the passwords came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Generated,
    Existing,
}

/// The passwords to install with: the existing Secret's, or new ones when there is no Secret and no
/// data volume. A data volume without its Secret is refused: new passwords would lock the data out.
pub async fn resolve(kube: &Kube, names: &Names) -> Result<(Passwords, Origin)> {
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let doing = format!(
        "reading Secret {} in namespace {}",
        names.admin_secret, kube.namespace
    );
    let existing = secrets
        .get_opt(&names.admin_secret)
        .await
        .map_err(|e| api_error(e, &doing, &kube.server))?;
    if let Some(secret) = existing {
        let admin = key(&secret, "postgres-password")
            .with_context(|| format!("Secret {}", names.admin_secret))?;
        let app =
            key(&secret, "password").with_context(|| format!("Secret {}", names.admin_secret))?;
        // Kept like the passwords, so a re-install changes nothing; a Secret from before the
        // verifier (or the exporter's login) existed gets one (once).
        let fresh = Passwords::with_new_verifier(admin.clone(), app.clone(), generate()?);
        let metrics = key(&secret, "metrics-password").ok();
        let passwords = Passwords {
            app_scram: key(&secret, "app-password-scram").unwrap_or(fresh.app_scram),
            metrics_scram: match (&metrics, key(&secret, "metrics-password-scram")) {
                (Some(_), Ok(scram)) => scram,
                (Some(m), Err(_)) => crate::db::role::scram_verifier(m),
                (None, _) => fresh.metrics_scram,
            },
            metrics_added: metrics.is_none(),
            metrics: metrics.unwrap_or(fresh.metrics),
            admin,
            app,
        };
        return Ok((passwords, Origin::Existing));
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let doing = format!("reading PersistentVolumeClaim {}", names.pvc);
    if pvcs
        .get_metadata_opt(&names.pvc)
        .await
        .map_err(|e| api_error(e, &doing, &kube.server))?
        .is_some()
    {
        return Err(user_error(format!(
            "the data volume {} exists but Secret {} with its passwords is gone; new passwords would not open the existing database",
            names.pvc, names.admin_secret
        ))
        .hint(format!(
            "recreate Secret {} with the old `postgres-password` and `password`, or delete the old data with `phonebill-db uninstall --delete-data`",
            names.admin_secret
        ))
        .into());
    }
    Ok((
        Passwords::with_new_verifier(generate()?, generate()?, generate()?),
        Origin::Generated,
    ))
}

/// The TLS material to install with: what the release's Secrets hold, kept or renewed (see
/// [`crate::certs::resolve`]), or new.
pub async fn tls(
    kube: &Kube,
    profile: &crate::profile::Profile,
    renew_ca: bool,
) -> Result<(crate::certs::Tls, crate::certs::Origin)> {
    let names = profile.names();
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let read = async |name: &str, cert: &str, private: &str| -> Result<Option<(String, String)>> {
        let doing = format!("reading Secret {name} in namespace {}", kube.namespace);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|e| api_error(e, &doing, &kube.server))?;
        Ok(secret.and_then(|s| Some((key(&s, cert).ok()?, key(&s, private).ok()?))))
    };
    let ca = read(&names.ca_secret, "ca.crt", "ca.key").await?;
    let server = read(&names.tls_secret, "tls.crt", "tls.key").await?;
    crate::certs::resolve(ca, server, profile, std::time::SystemTime::now(), renew_ca)
}

/// A key of a Secret as text (bytes that are not UTF-8 replaced), if the Secret has it.
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

fn key(secret: &Secret, key: &str) -> Result<String> {
    let bytes = secret.data.as_ref().and_then(|d| d.get(key)).ok_or_else(|| {
        user_error(format!("key `{key}` is missing"))
            .hint("restore the key, or delete the Secret and its data volume with `phonebill-db uninstall --delete-data`")
    })?;
    String::from_utf8(bytes.0.clone())
        .map_err(|_| user_error(format!("key `{key}` is not UTF-8 text")).into())
}

/// Everything the profile renders for the release as it stands: its passwords read back and its
/// TLS material kept or renewed; with where the TLS material came from.
pub async fn rendered(
    kube: &Kube,
    profile: &crate::profile::Profile,
) -> Result<(Vec<crate::render::Object>, crate::certs::Origin)> {
    let (passwords, _) = resolve(kube, &profile.names()).await?;
    let (tls, origin) = tls(kube, profile, false).await?;
    Ok((crate::render::render(profile, &passwords, &tls)?, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_distinct_and_plain() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), LENGTH);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
    }
}
