//! The in-cluster server's TLS: a CA and a server certificate made by install (rcgen), kept in the
//! release's Secrets like its passwords, the server certificate issued again when under
//! [`RENEW_DAYS`] remain, when it does not name every Service of the release, or when the CA did
//! not sign it. Pure: the caller reads and writes the Secrets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde::Serialize;

use crate::profile::Profile;

/// How long the CA is valid: ten years (its key never leaves the cluster's Secret).
pub const CA_DAYS: i64 = 3650;
/// How long a server certificate is valid.
pub const SERVER_DAYS: i64 = 365;
/// Install issues a new server certificate when fewer days than this remain.
pub const RENEW_DAYS: i64 = 30;

/// The PEM texts of a release's TLS. `Debug` never shows the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Tls {
    pub ca_crt: String,
    pub ca_key: String,
    pub crt: String,
    pub key: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls { .. }")
    }
}

impl Tls {
    /// What `render` shows without a cluster.
    pub fn placeholders() -> Tls {
        let p = crate::render::PASSWORD_PLACEHOLDER.to_string();
        Tls {
            ca_crt: p.clone(),
            ca_key: p.clone(),
            crt: p.clone(),
            key: p,
        }
    }
}

/// What install did with the TLS material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action", content = "reason")]
pub enum Origin {
    /// A new CA and server certificate (first install).
    Generated,
    /// Both kept as they were.
    Existing,
    /// The CA kept, a new server certificate: why.
    Renewed(String),
}

/// Every DNS name a client in the cluster may use for the release's PostgreSQL: the primary, the
/// headless and the external (`expose`) Service, short and qualified, and the pod's own name.
pub fn server_names(profile: &Profile) -> Vec<String> {
    let n = profile.names();
    let ns = &profile.namespace;
    let mut out = Vec::new();
    let services = [
        Some(n.service.clone()),
        Some(n.headless_service.clone()),
        n.external_service.clone(),
    ];
    for svc in services.into_iter().flatten() {
        out.push(svc.clone());
        out.push(format!("{svc}.{ns}"));
        out.push(format!("{svc}.{ns}.svc"));
        out.push(format!("{svc}.{ns}.svc.cluster.local"));
    }
    // The first pod's own name; after an upgrade moved the data to another StatefulSet, any pod
    // of the headless Service (libpq matches a wildcard in the leftmost label), so that one
    // certificate serves the StatefulSets on both sides of the upgrade and of a rollback.
    let first = format!("{}-postgresql-0", profile.release);
    let mut pods = vec![first];
    if n.pod != pods[0] {
        pods.push("*".into());
    }
    for pod in pods {
        out.push(format!("{pod}.{}.{ns}.svc", n.headless_service));
        out.push(format!(
            "{pod}.{}.{ns}.svc.cluster.local",
            n.headless_service
        ));
    }
    out
}

fn offset(now: SystemTime, days: i64) -> Result<time::OffsetDateTime> {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs() as i64;
    time::OffsetDateTime::from_unix_timestamp(secs + days * 86_400).context("a date out of range")
}

/// A new CA for the release (ECDSA P-256, self-signed, may sign server certificates only).
pub fn new_ca(release: &str, now: SystemTime) -> Result<(String, String)> {
    let key = KeyPair::generate().context("generating the CA's key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!("phonebill-db {release} CA"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = offset(now, -1)?;
    params.not_after = offset(now, CA_DAYS)?;
    let cert = params
        .self_signed(&key)
        .context("signing the CA certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A server certificate for `names`, signed by the CA.
pub fn issue(
    ca_crt: &str,
    ca_key: &str,
    names: &[String],
    now: SystemTime,
) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key).context("reading the CA's key")?;
    let issuer = Issuer::from_ca_cert_pem(ca_crt, ca_key).context("reading the CA certificate")?;
    let key = KeyPair::generate().context("generating the server's key")?;
    let mut params = CertificateParams::new(names.to_vec()).context("the server's names")?;
    params.distinguished_name = name(&names[0]);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = offset(now, -1)?;
    params.not_after = offset(now, SERVER_DAYS)?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the server certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn
}

/// What a certificate says: when it expires and which DNS names it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub not_after: SystemTime,
    pub names: Vec<String>,
}

impl Info {
    /// Whole days left at `now` (negative once expired).
    pub fn days_left(&self, now: SystemTime) -> i64 {
        match self.not_after.duration_since(now) {
            Ok(d) => (d.as_secs() / 86_400) as i64,
            Err(e) => -((e.duration().as_secs() / 86_400) as i64) - 1,
        }
    }

    /// The expiry as RFC 3339 (for reports).
    pub fn expires(&self) -> String {
        humantime::format_rfc3339_seconds(self.not_after).to_string()
    }
}

/// Read a PEM certificate.
pub fn inspect(pem: &str) -> Result<Info> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| anyhow!("not a PEM certificate: {e}"))?;
    let cert = block
        .parse_x509()
        .map_err(|e| anyhow!("not an X.509 certificate: {e}"))?;
    let not_after =
        UNIX_EPOCH + Duration::from_secs(cert.validity().not_after.timestamp().max(0) as u64);
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|g| match g {
                x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    Ok(Info { not_after, names })
}

/// Was `crt` signed by the CA `ca_crt`?
pub fn signed_by(crt: &str, ca_crt: &str) -> bool {
    let parse = |pem: &str| {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .ok()
            .map(|(_, b)| b)
    };
    let (Some(leaf), Some(ca)) = (parse(crt), parse(ca_crt)) else {
        return false;
    };
    let (Ok(leaf), Ok(ca)) = (leaf.parse_x509(), ca.parse_x509()) else {
        return false;
    };
    leaf.issuer() == ca.subject() && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// The TLS material to install with: the recorded CA and server certificate when they still do,
/// else what must be made new, and why.
pub fn resolve(
    recorded_ca: Option<(String, String)>,
    recorded_server: Option<(String, String)>,
    profile: &Profile,
    now: SystemTime,
) -> Result<(Tls, Origin)> {
    let names = server_names(profile);
    let Some((ca_crt, ca_key)) = recorded_ca.filter(|(crt, key)| {
        inspect(crt).is_ok_and(|i| i.days_left(now) > SERVER_DAYS) && KeyPair::from_pem(key).is_ok()
    }) else {
        let (ca_crt, ca_key) = new_ca(&profile.release, now)?;
        let (crt, key) = issue(&ca_crt, &ca_key, &names, now)?;
        return Ok((
            Tls {
                ca_crt,
                ca_key,
                crt,
                key,
            },
            Origin::Generated,
        ));
    };
    let why_new = match &recorded_server {
        None => Some("there was no server certificate".to_string()),
        Some((crt, key)) => match inspect(crt) {
            Err(e) => Some(format!("the recorded certificate is unreadable: {e}")),
            Ok(_) if KeyPair::from_pem(key).is_err() => {
                Some("the recorded key is unreadable".into())
            }
            Ok(_) if !signed_by(crt, &ca_crt) => Some("the CA did not sign it".into()),
            Ok(info) if info.days_left(now) < RENEW_DAYS => Some(format!(
                "{} days were left (renewed under {RENEW_DAYS})",
                info.days_left(now)
            )),
            Ok(info) => names
                .iter()
                .find(|n| !info.names.contains(n))
                .map(|n| format!("it did not name {n}")),
        },
    };
    match (why_new, recorded_server) {
        (None, Some((crt, key))) => Ok((
            Tls {
                ca_crt,
                ca_key,
                crt,
                key,
            },
            Origin::Existing,
        )),
        (why, _) => {
            let (crt, key) = issue(&ca_crt, &ca_key, &names, now)?;
            Ok((
                Tls {
                    ca_crt,
                    ca_key,
                    crt,
                    key,
                },
                Origin::Renewed(why.unwrap_or_default()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Profile {
        Profile::load("dev", None).unwrap()
    }

    #[test]
    fn after_an_upgrade_the_certificate_names_any_pod_of_the_headless_service() {
        let plain = server_names(&dev());
        assert!(!plain.iter().any(|n| n.starts_with('*')), "{plain:?}");
        let mut upgraded = dev();
        upgraded.cluster.as_mut().unwrap().data_set = Some("pg17".into());
        let names = server_names(&upgraded);
        // Everything the release's certificate named before, so that a rollback renews nothing.
        assert!(plain.iter().all(|n| names.contains(n)), "{names:?}");
        assert!(names.contains(&"*.auth-postgres-dev-postgresql-hl.phonebill-dev.svc".to_string()));
    }

    #[test]
    fn a_new_release_gets_a_ca_and_a_certificate_for_every_service_name() {
        let now = SystemTime::now();
        let (tls, origin) = resolve(None, None, &dev(), now).unwrap();
        assert_eq!(origin, Origin::Generated);
        let info = inspect(&tls.crt).unwrap();
        for name in [
            "auth-postgres-dev-postgresql",
            "auth-postgres-dev-postgresql.phonebill-dev.svc.cluster.local",
            "auth-postgres-dev-postgresql-hl.phonebill-dev.svc",
            "auth-postgres-external.phonebill-dev",
            "auth-postgres-dev-postgresql-0.auth-postgres-dev-postgresql-hl.phonebill-dev.svc",
        ] {
            assert!(
                info.names.contains(&name.to_string()),
                "{name}: {:?}",
                info.names
            );
        }
        assert!((SERVER_DAYS - 1..=SERVER_DAYS).contains(&info.days_left(now)));
        assert!(signed_by(&tls.crt, &tls.ca_crt));
        assert!(!signed_by(&tls.ca_crt, &new_ca("other", now).unwrap().0));
        assert!(tls.key.contains("PRIVATE KEY") && !format!("{tls:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_reinstall_keeps_what_still_does_and_renews_what_does_not() {
        let now = SystemTime::now();
        let (tls, _) = resolve(None, None, &dev(), now).unwrap();
        let ca = Some((tls.ca_crt.clone(), tls.ca_key.clone()));
        let server = Some((tls.crt.clone(), tls.key.clone()));
        let (same, origin) = resolve(ca.clone(), server.clone(), &dev(), now).unwrap();
        assert_eq!((same, origin), (tls.clone(), Origin::Existing));

        // 340 days later: 25 days left, under 30 — a new certificate from the same CA.
        let later = now + Duration::from_secs(340 * 86_400);
        let (renewed, origin) = resolve(ca.clone(), server.clone(), &dev(), later).unwrap();
        assert!(
            matches!(origin, Origin::Renewed(ref why) if why.contains("days were left")),
            "{origin:?}"
        );
        assert_eq!(renewed.ca_crt, tls.ca_crt);
        assert_ne!(renewed.crt, tls.crt);
        assert!(inspect(&renewed.crt).unwrap().days_left(later) >= SERVER_DAYS - 1);

        // Another CA's certificate, or none: a new one from this CA.
        let (other, _) = resolve(None, None, &dev(), now).unwrap();
        let (_, origin) = resolve(ca.clone(), Some((other.crt, other.key)), &dev(), now).unwrap();
        assert_eq!(origin, Origin::Renewed("the CA did not sign it".into()));
        let (_, origin) = resolve(ca.clone(), None, &dev(), now).unwrap();
        assert!(matches!(origin, Origin::Renewed(_)));

        // Another namespace: names missing.
        let mut moved = dev();
        moved.namespace = "team-x".into();
        let (_, origin) = resolve(ca, server, &moved, now).unwrap();
        assert!(
            matches!(origin, Origin::Renewed(ref why) if why.contains("did not name")),
            "{origin:?}"
        );
    }

    #[test]
    fn days_left_counts_down_through_zero() {
        let now = SystemTime::now();
        let info = Info {
            not_after: now + Duration::from_secs(86_400 * 3 + 5),
            names: vec![],
        };
        assert_eq!(info.days_left(now), 3);
        let gone = Info {
            not_after: now - Duration::from_secs(10),
            names: vec![],
        };
        assert_eq!(gone.days_left(now), -1);
    }
}
