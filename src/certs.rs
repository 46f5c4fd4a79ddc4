//! The in-cluster server's TLS: a CA and a server certificate made by install (rcgen), kept in the
//! release's Secrets like its passwords, the server certificate issued again when under
//! [`RENEW_DAYS`] remain, when it does not name every Service of the release, or when the CA did
//! not sign it. The CA may sign only the release's namespace names (name constraints, no IP
//! address) and is never replaced silently: every saved copy of it would stop working. Under
//! [`CA_NOTICE_DAYS`] install says so; under [`CA_REFUSE_DAYS`], expired or unreadable, install
//! refuses until asked for a new one (`--renew-ca`). Pure: the caller reads and writes the Secrets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use serde::Serialize;

use crate::error::{ExitCode, user_error};
use crate::profile::Profile;

/// How long a new CA is valid: three years (renewed only when asked, `install --renew-ca`).
pub const CA_DAYS: i64 = 1095;
/// Install notes a CA with fewer days than this left (time to plan its renewal).
pub const CA_NOTICE_DAYS: i64 = 365;
/// Install refuses to go on with a CA with fewer days than this left, without `--renew-ca`.
pub const CA_REFUSE_DAYS: i64 = 30;
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
    /// A new CA and server certificate for a release that had them: why (every client must be
    /// given the new CA).
    NewCa(String),
}

/// Every DNS name a client in the cluster may use for the release's PostgreSQL: the primary, the
/// headless and the external (`expose`) Service, short and qualified, and the pod's own name.
pub fn server_names(profile: &Profile) -> Vec<String> {
    let n = profile.names();
    let ns = &profile.namespace;
    let mut out = Vec::new();
    for svc in services(profile) {
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

/// The release's Services: the primary, the headless and the external (`expose`) one.
fn services(profile: &Profile) -> Vec<String> {
    let n = profile.names();
    [
        Some(n.service),
        Some(n.headless_service),
        n.external_service,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What the release's CA may sign (RFC 5280 4.2.1.10, critical): DNS names of the release's
/// Services and of its namespace (`NS`, `NS.svc`, `NS.svc.cluster.local`, each with everything
/// below it), and no IP address at all. Its key, read from the Secret, cannot vouch for
/// `login.microsoftonline.com` or `10.0.0.1` to a client that trusts the saved CA.
pub fn constraints(profile: &Profile) -> NameConstraints {
    let ns = &profile.namespace;
    let mut permitted = services(profile);
    permitted.extend([
        ns.clone(),
        format!("{ns}.svc"),
        format!("{ns}.svc.cluster.local"),
    ]);
    NameConstraints {
        permitted_subtrees: permitted.into_iter().map(GeneralSubtree::DnsName).collect(),
        excluded_subtrees: vec![
            GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
            GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
        ],
    }
}

/// A new CA for the release (ECDSA P-256, self-signed, may sign server certificates for the
/// release's names only).
pub fn new_ca(profile: &Profile, now: SystemTime) -> Result<(String, String)> {
    let key = KeyPair::generate().context("generating the CA's key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!("phonebill-db {} CA", profile.release));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(constraints(profile));
    params.not_before = offset(now, -1)?;
    params.not_after = offset(now, CA_DAYS)?;
    let cert = params
        .self_signed(&key)
        .context("signing the CA certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A server certificate for `names`, signed by the CA: a year, or until the CA expires if sooner.
pub fn issue(
    ca_crt: &str,
    ca_key: &str,
    names: &[String],
    now: SystemTime,
) -> Result<(String, String)> {
    let ca_until = inspect(ca_crt)
        .context("reading the CA certificate")?
        .not_after;
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
    let year = offset(now, SERVER_DAYS)?;
    params.not_after = year.min(time::OffsetDateTime::from(ca_until));
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
    /// The DNS subtrees a CA may sign names in (its name constraints); `None` when unlimited.
    pub permitted: Option<Vec<String>>,
}

impl Info {
    /// May this CA sign `name` (RFC 5280: a DNS subtree holds the name and every name below it)?
    pub fn permits(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.permitted.as_ref().is_none_or(|p| {
            p.iter().any(|c| {
                let c = c.to_ascii_lowercase();
                name == c || name.ends_with(&format!(".{c}"))
            })
        })
    }

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
    let permitted = match cert.name_constraints() {
        Ok(Some(nc)) => Some(
            nc.value
                .permitted_subtrees
                .iter()
                .flatten()
                .filter_map(|t| match &t.base {
                    x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    };
    Ok(Info {
        not_after,
        names,
        permitted,
    })
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

/// Why the recorded CA cannot go on serving (expired, about to, or unreadable), if it cannot.
fn ca_unfit(crt: &str, key: &str, names: &[String], now: SystemTime) -> Option<String> {
    match inspect(crt) {
        Err(e) => Some(format!("its certificate is unreadable: {e}")),
        Ok(_) if KeyPair::from_pem(key).is_err() => Some("its key is unreadable".into()),
        Ok(i) if i.days_left(now) < 0 => Some(format!("it expired on {}", i.expires())),
        Ok(i) if i.days_left(now) < CA_REFUSE_DAYS => Some(format!(
            "it expires in {} days, on {}",
            i.days_left(now),
            i.expires()
        )),
        Ok(i) => names
            .iter()
            .find(|n| !i.permits(n))
            .map(|n| format!("its name constraints do not let it sign {n}")),
    }
}

/// The TLS material to install with: the recorded CA and server certificate when they still do,
/// else what must be made new, and why. A recorded CA is replaced only with `renew_ca`; one that
/// cannot serve any more is refused without it (exit 2, nothing changed).
pub fn resolve(
    recorded_ca: Option<(String, String)>,
    recorded_server: Option<(String, String)>,
    profile: &Profile,
    now: SystemTime,
    renew_ca: bool,
) -> Result<(Tls, Origin)> {
    let names = server_names(profile);
    let fresh = |origin: Origin| -> Result<(Tls, Origin)> {
        let (ca_crt, ca_key) = new_ca(profile, now)?;
        let (crt, key) = issue(&ca_crt, &ca_key, &names, now)?;
        Ok((
            Tls {
                ca_crt,
                ca_key,
                crt,
                key,
            },
            origin,
        ))
    };
    let Some((ca_crt, ca_key)) = recorded_ca else {
        return fresh(match (&recorded_server, renew_ca) {
            (None, false) => Origin::Generated,
            _ => Origin::NewCa(format!("Secret {} held no CA", profile.names().ca_secret)),
        });
    };
    if renew_ca {
        return fresh(Origin::NewCa("asked for with --renew-ca".into()));
    }
    if let Some(why) = ca_unfit(&ca_crt, &ca_key, &names, now) {
        return Err(user_error(format!(
            "release {}'s certificate authority (Secret {}) cannot go on: {why}; a new CA is made only when asked, as every client that saved this one must then be given the new one; nothing was changed",
            profile.release,
            profile.names().ca_secret
        ))
        .hint(format!(
            "run `phonebill-db install --env {} --renew-ca`, then give outside clients the new CA (`phonebill-db expose --env {} --ca-out FILE`) and restart the app so it reads Secret {}",
            profile.environment, profile.environment, profile.names().app_secret
        ))
        .exit(ExitCode::Usage)
        .into());
    }
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

/// What install says about the CA it goes on with: its end in sight (under [`CA_NOTICE_DAYS`]),
/// or made before CAs carried name constraints.
pub fn ca_notes(tls: &Tls, profile: &Profile, now: SystemTime) -> Vec<String> {
    let Ok(ca) = inspect(&tls.ca_crt) else {
        return vec![];
    };
    let renew = format!(
        "`phonebill-db install --env {} --renew-ca` makes a new one (then give outside clients the new CA: `expose --ca-out FILE`)",
        profile.environment
    );
    let mut out = vec![];
    let days = ca.days_left(now);
    if days < CA_NOTICE_DAYS {
        out.push(format!(
            "the release's CA expires in {days} days, on {} (server certificates end with it); {renew}",
            ca.expires()
        ));
    }
    if ca.permitted.is_none() {
        out.push(format!(
            "the release's CA was made before CAs were limited to the release's names: its key could sign a certificate for any host; {renew}"
        ));
    }
    out
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
        let (tls, origin) = resolve(None, None, &dev(), now, false).unwrap();
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
        assert!(!signed_by(&tls.ca_crt, &new_ca(&dev(), now).unwrap().0));
        assert!(tls.key.contains("PRIVATE KEY") && !format!("{tls:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_reinstall_keeps_what_still_does_and_renews_what_does_not() {
        let now = SystemTime::now();
        let (tls, _) = resolve(None, None, &dev(), now, false).unwrap();
        let ca = Some((tls.ca_crt.clone(), tls.ca_key.clone()));
        let server = Some((tls.crt.clone(), tls.key.clone()));
        let (same, origin) = resolve(ca.clone(), server.clone(), &dev(), now, false).unwrap();
        assert_eq!((same, origin), (tls.clone(), Origin::Existing));

        // 340 days later: 25 days left, under 30 — a new certificate from the same CA.
        let later = now + Duration::from_secs(340 * 86_400);
        let (renewed, origin) = resolve(ca.clone(), server.clone(), &dev(), later, false).unwrap();
        assert!(
            matches!(origin, Origin::Renewed(ref why) if why.contains("days were left")),
            "{origin:?}"
        );
        assert_eq!(renewed.ca_crt, tls.ca_crt);
        assert_ne!(renewed.crt, tls.crt);
        assert!(inspect(&renewed.crt).unwrap().days_left(later) >= SERVER_DAYS - 1);

        // Another CA's certificate, or none: a new one from this CA.
        let (other, _) = resolve(None, None, &dev(), now, false).unwrap();
        let (_, origin) =
            resolve(ca.clone(), Some((other.crt, other.key)), &dev(), now, false).unwrap();
        assert_eq!(origin, Origin::Renewed("the CA did not sign it".into()));
        let (_, origin) = resolve(ca.clone(), None, &dev(), now, false).unwrap();
        assert!(matches!(origin, Origin::Renewed(_)));

        // After an upgrade, names the certificate lacks (any pod of the headless Service), still
        // within what the CA may sign: a new certificate from the same CA.
        let mut upgraded = dev();
        upgraded.cluster.as_mut().unwrap().data_set = Some("pg17".into());
        let (_, origin) = resolve(ca.clone(), server.clone(), &upgraded, now, false).unwrap();
        assert!(
            matches!(origin, Origin::Renewed(ref why) if why.contains("did not name")),
            "{origin:?}"
        );

        // A Service renamed: its short name is outside the CA's constraints, refused until asked.
        let mut renamed = dev();
        renamed.cluster.as_mut().unwrap().expose.service_name = "auth-db-public".into();
        let e = resolve(ca.clone(), server.clone(), &renamed, now, false).unwrap_err();
        assert!(
            e.to_string().contains("do not let it sign auth-db-public"),
            "{e}"
        );

        // Another namespace: outside what the CA may sign, so refused without --renew-ca.
        let mut moved = dev();
        moved.namespace = "team-x".into();
        let e = resolve(ca.clone(), server.clone(), &moved, now, false).unwrap_err();
        assert!(e.to_string().contains("do not let it sign"), "{e}");
        let (_, origin) = resolve(ca, server, &moved, now, true).unwrap();
        assert!(matches!(origin, Origin::NewCa(_)), "{origin:?}");
    }

    #[test]
    fn a_ca_may_sign_only_the_release_names_and_no_address() {
        let now = SystemTime::now();
        let (tls, _) = resolve(None, None, &dev(), now, false).unwrap();
        let ca = inspect(&tls.ca_crt).unwrap();
        let permitted = ca.permitted.clone().unwrap();
        for n in server_names(&dev()) {
            assert!(ca.permits(&n), "{n}: {permitted:?}");
        }
        for n in [
            "login.microsoftonline.com",
            "phonebill-dev.evil.example",
            "svc.cluster.local",
            "kubernetes.default.svc.cluster.local",
            "other-ns.svc",
        ] {
            assert!(!ca.permits(n), "{n}: {permitted:?}");
        }
        // The excluded addresses: every IPv4 and IPv6 address, read back from the DER.
        let der = x509_parser::pem::parse_x509_pem(tls.ca_crt.as_bytes())
            .unwrap()
            .1;
        let cert = der.parse_x509().unwrap();
        let nc = cert.name_constraints().unwrap().unwrap();
        assert!(nc.critical);
        let excluded: Vec<_> = nc
            .value
            .excluded_subtrees
            .iter()
            .flatten()
            .map(|t| format!("{:?}", t.base))
            .collect();
        assert_eq!(excluded.len(), 2, "{excluded:?}");
        assert!(
            excluded.iter().all(|e| e.starts_with("IPAddress")),
            "{excluded:?}"
        );
        assert!((CA_DAYS - 1..=CA_DAYS).contains(&ca.days_left(now)));
        assert!(ca_notes(&tls, &dev(), now).is_empty());
    }

    type Pair = Option<(String, String)>;

    /// A CA with `days` left, its server certificate fresh.
    fn aged(days: i64) -> (Pair, Pair, SystemTime) {
        let made = SystemTime::now();
        let (tls, _) = resolve(None, None, &dev(), made, false).unwrap();
        let at = made + Duration::from_secs(((CA_DAYS - days) * 86_400) as u64);
        let (crt, key) = issue(&tls.ca_crt, &tls.ca_key, &server_names(&dev()), at).unwrap();
        (Some((tls.ca_crt, tls.ca_key)), Some((crt, key)), at)
    }

    #[test]
    fn a_ca_is_never_renewed_silently() {
        // 300 days left: kept, said, and the server certificate ends with it.
        let (ca, server, at) = aged(300);
        let (tls, origin) = resolve(ca.clone(), server.clone(), &dev(), at, false).unwrap();
        assert_eq!(origin, Origin::Existing);
        assert_eq!(tls.ca_crt, ca.as_ref().unwrap().0);
        let notes = ca_notes(&tls, &dev(), at);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("expires in 299 days") || notes[0].contains("expires in 300 days"),
            "{notes:?}"
        );
        assert!(notes[0].contains("--renew-ca"), "{notes:?}");
        let ca_end = inspect(&tls.ca_crt).unwrap().not_after;
        assert!(inspect(&tls.crt).unwrap().not_after <= ca_end);

        // 20 days left: refused (exit 2) until asked; asked, a new CA with its three years.
        let (ca, server, at) = aged(20);
        let e = resolve(ca.clone(), server.clone(), &dev(), at, false).unwrap_err();
        let report = crate::error::report(&e);
        assert_eq!(report.exit_code, 2, "{e:#}");
        assert!(
            report.error.contains("expires in 19 days")
                || report.error.contains("expires in 20 days"),
            "{}",
            report.error
        );
        assert!(
            report
                .hint
                .unwrap()
                .contains("install --env dev --renew-ca")
        );
        let (tls, origin) = resolve(ca.clone(), server, &dev(), at, true).unwrap();
        assert_eq!(origin, Origin::NewCa("asked for with --renew-ca".into()));
        assert_ne!(tls.ca_crt, ca.unwrap().0);
        assert!(signed_by(&tls.crt, &tls.ca_crt));
        assert!(inspect(&tls.ca_crt).unwrap().days_left(at) >= CA_DAYS - 1);
        assert!(inspect(&tls.crt).unwrap().days_left(at) >= SERVER_DAYS - 1);

        // Expired, or its key lost: refused the same way.
        let (ca, server, at) = aged(-5);
        let e = resolve(ca, server.clone(), &dev(), at, false).unwrap_err();
        assert!(e.to_string().contains("it expired on"), "{e}");
        let (ca, _, at) = aged(500);
        let broken = ca.map(|(crt, _)| (crt, "not a key".to_string()));
        let e = resolve(broken, server, &dev(), at, false).unwrap_err();
        assert!(e.to_string().contains("its key is unreadable"), "{e}");
    }

    #[test]
    fn a_ca_made_before_name_constraints_is_kept_and_said() {
        let now = SystemTime::now();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = name("phonebill-db old CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.not_after = offset(now, 3000).unwrap();
        let crt = params.self_signed(&key).unwrap().pem();
        let ca = Some((crt.clone(), key.serialize_pem()));
        let (tls, origin) = resolve(ca, None, &dev(), now, false).unwrap();
        assert!(matches!(origin, Origin::Renewed(_)), "{origin:?}");
        assert_eq!(tls.ca_crt, crt);
        let notes = ca_notes(&tls, &dev(), now);
        assert!(
            notes.len() == 1 && notes[0].contains("any host"),
            "{notes:?}"
        );
    }

    #[test]
    fn days_left_counts_down_through_zero() {
        let now = SystemTime::now();
        let info = Info {
            not_after: now + Duration::from_secs(86_400 * 3 + 5),
            names: vec![],
            permitted: None,
        };
        assert_eq!(info.days_left(now), 3);
        let gone = Info {
            not_after: now - Duration::from_secs(10),
            names: vec![],
            permitted: None,
        };
        assert_eq!(gone.days_left(now), -1);
    }
}
