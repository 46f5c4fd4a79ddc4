//! `expose` (runbook 4.3, 5.2, 9.1): the LoadBalancer service developers' tools connect to,
//! restricted to the CIDRs given; waits for its address and prints what DBeaver needs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::{ArgGroup, Args};
use ipnet::IpNet;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams};
use serde::Serialize;

use crate::args::parse_duration;
use crate::context::Ctx;
use crate::db::connect::secret_key;
use crate::db::details::{Login, details};
use crate::error::{ExitCode, user_error};
use crate::k8s::apply::{ApplyOptions, Change, apply_typed};
use crate::k8s::client::{api_error, delete_if_there};
use crate::k8s::load_balancer::{address, is_internal};
use crate::k8s::wait::poll;
use crate::k8s::watches::Wake;
use crate::render;
use crate::ui::Outcome;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("access").required(true).args(["allow", "allow_any", "remove"])))]
pub struct ExposeArgs {
    /// Allow connections from this CIDR (repeat for more), e.g. 203.0.113.0/24 or 198.51.100.7.
    /// Together the ranges may cover at most 16,777,216 IPv4 addresses (a /8) and an IPv6 /32;
    /// more is the internet: --allow-any
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub allow: Vec<String>,
    /// Allow connections from anywhere on the internet (no source ranges)
    #[arg(long)]
    pub allow_any: bool,
    /// An Azure internal load balancer: an address in the cluster's virtual network
    #[arg(long, conflicts_with = "remove")]
    pub internal: bool,
    /// Take the LoadBalancer service away again
    #[arg(long)]
    pub remove: bool,
    /// Print the passwords too
    #[arg(long, conflicts_with = "remove")]
    pub show_password: bool,
    /// How long to wait for the load balancer's address
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Where to write the CA certificate that signed the server's (for DBeaver's sslmode=verify-ca)
    /// [default: RELEASE-ca.crt in this directory]
    #[arg(long, value_name = "FILE", conflicts_with = "remove")]
    pub ca_out: Option<PathBuf>,
}

/// The most the `--allow` ranges may cover together without `--allow-any`: a /8 of IPv4 and a /32
/// of IPv6. More is a large share of the internet, however it is split (`0.0.0.0/1` and
/// `128.0.0.0/1` are every IPv4 address).
const MOST_V4: u128 = 1 << 24;
const MOST_V6: u128 = 1 << 96;

/// Why `ranges` together are the internet rather than someone's networks, if they are: their
/// addresses counted once (overlaps merged), IPv4-mapped IPv6 counted as IPv4.
pub fn too_wide(ranges: &[String]) -> Option<String> {
    let nets: Vec<IpNet> = ranges.iter().filter_map(|r| r.parse().ok()).collect();
    let (mut v4, mut v6): (Vec<IpNet>, Vec<IpNet>) = (Vec::new(), Vec::new());
    for net in nets {
        match as_v4(net) {
            Some(n) => v4.push(n),
            None => v6.push(net),
        }
    }
    let count = |nets: Vec<IpNet>| -> u128 {
        IpNet::aggregate(&nets)
            .iter()
            .map(|n| {
                let bits = if n.addr().is_ipv4() { 32 } else { 128 };
                1u128
                    .checked_shl(u32::from(bits - n.prefix_len()))
                    .unwrap_or(u128::MAX)
            })
            .fold(0u128, u128::saturating_add)
    };
    let (n4, n6) = (count(v4), count(v6));
    if n4 > MOST_V4 {
        return Some(format!(
            "the ranges together cover {n4} IPv4 addresses (more than a /8, {MOST_V4})"
        ));
    }
    if n6 > MOST_V6 {
        return Some("the IPv6 ranges together are wider than a /32".into());
    }
    None
}

/// An IPv4-mapped IPv6 network (`::ffff:a.b.c.d/(96+n)`) as the IPv4 network it is.
fn as_v4(net: IpNet) -> Option<IpNet> {
    match net {
        IpNet::V4(_) => Some(net),
        IpNet::V6(v6) => {
            let mapped = v6.network().to_ipv4_mapped()?;
            let prefix = v6.prefix_len().checked_sub(96)?;
            ipnet::Ipv4Net::new(mapped, prefix).ok().map(IpNet::V4)
        }
    }
}

/// A CIDR as Kubernetes takes it: network address and prefix (`203.0.113.0/24`); a single
/// address becomes /32 (/128); IPv4-mapped IPv6 (`::ffff:203.0.113.0/120`) as the IPv4 network it
/// is. Host bits set are refused, with the network meant.
pub fn parse_cidr(s: &str) -> Result<String, String> {
    let net: IpNet = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match s.parse::<std::net::IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => {
                return Err(format!(
                    "`{}` is not a CIDR (e.g. 203.0.113.0/24) or an IP address",
                    crate::error::shown(s)
                ));
            }
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "`{s}` has host bits set; the network is {}",
            net.trunc()
        ));
    }
    let net = as_v4(net).unwrap_or(net);
    if net.prefix_len() == 0 {
        return Err(format!(
            "`{s}` is every address: say --allow-any to open the database to the whole internet"
        ));
    }
    Ok(net.to_string())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExposeReport {
    pub service: String,
    pub namespace: String,
    pub change: Change,
    pub allowed: Vec<String>,
    pub internal: bool,
    /// The NetworkPolicy that lets `allowed` through to the pod (none when the release's policy
    /// is off: then nothing is filtered in the cluster).
    pub network_policy: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// TLS as a developer's tool should use it: the CA file, the chain checked (`verify-ca`: the
    /// load balancer's address is not a name the certificate can carry).
    pub ssl_mode: &'static str,
    pub ca_file: String,
    pub users: Vec<Login>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveReport {
    pub service: String,
    pub namespace: String,
    pub removed: bool,
    pub network_policy_removed: bool,
}

pub async fn run(ctx: &Ctx, args: &ExposeArgs) -> Result<Outcome> {
    let cluster = ctx.profile.cluster("expose")?;
    let service_name = cluster.expose.service_name.clone();
    let kube = ctx.kube_within(args.timeout).await?;
    let names = ctx.profile.names();
    let api: Api<Service> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let policies: Api<NetworkPolicy> = Api::namespaced(kube.client.clone(), &kube.namespace);
    if args.remove {
        let removed = delete(&kube, &api, &service_name, "Service").await?;
        let network_policy_removed =
            delete(&kube, &policies, &service_name, "NetworkPolicy").await?;
        let report = RemoveReport {
            service: service_name,
            namespace: kube.namespace.clone(),
            removed,
            network_policy_removed,
        };
        ctx.ui.emit(&report, |r| {
            if r.removed || r.network_policy_removed {
                format!(
                    "Service {} and its NetworkPolicy removed: no more access from outside\n",
                    r.service
                )
            } else {
                format!("Service {} was not there: nothing to remove\n", r.service)
            }
        })?;
        return Ok(Outcome::ok());
    }

    // Only a release that exists gets a door.
    let sts: Api<StatefulSet> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let installed = sts.get_opt(&names.stateful_set).await.map_err(|e| {
        api_error(
            e,
            &format!("reading StatefulSet {}", names.stateful_set),
            &kube.server,
        )
    })?;
    if installed.is_none() {
        return Err(user_error(format!(
            "release {} is not installed in namespace {}; nothing was created",
            ctx.profile.release, kube.namespace
        ))
        .hint(format!(
            "run `phonebill-db install --env {}` first",
            ctx.profile.environment
        ))
        .into());
    }
    if let Some(why) = too_wide(&args.allow) {
        return Err(user_error(format!(
            "--allow {}: {why}; nothing was created or changed",
            args.allow.join(" --allow ")
        ))
        .hint("that is the internet, not your networks: give narrower ranges, or say --allow-any if you mean to open the database to everyone")
        .exit(ExitCode::Usage)
        .into());
    }
    let allowed: Vec<String> = if args.allow_any {
        vec!["0.0.0.0/0".into(), "::/0".into()]
    } else {
        args.allow.clone()
    };
    let ca_file = args
        .ca_out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-ca.crt", ctx.profile.release)));
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let ca = secret_key(&kube, &secrets, &names.app_secret, "ca.crt").await?;
    write_ca(&ca_file, &ca)?;
    let spinner = ctx.ui.spinner(format!("applying Service {}", service_name));
    // The policy first: the door in the cluster's filter opens before the load balancer does.
    let network_policy = if cluster.network_policy.enabled {
        let policy = render::external_policy(&ctx.profile, &allowed)?;
        apply_typed(&kube, policies.clone(), &policy, ApplyOptions::default()).await?;
        Some(service_name.clone())
    } else {
        // Alone (the release's policy off) it would shut every other client out.
        delete(&kube, &policies, &service_name, "NetworkPolicy").await?;
        None
    };
    // Switched between an internal and a public load balancer, the Service keeps showing the
    // old frontend's address until the cloud has moved it: that one is not the answer.
    let before = api
        .get_opt(&service_name)
        .await
        .map_err(|e| api_error(e, &format!("reading Service {service_name}"), &kube.server))?;
    let stale = before
        .as_ref()
        .filter(|s| is_internal(s) != args.internal)
        .and_then(address);
    let service = render::external_service(&ctx.profile, &args.allow, args.internal)?;
    let applied = apply_typed(&kube, api.clone(), &service, ApplyOptions::default()).await?;
    let name = service_name.clone();
    let fresh = |s: &Service| address(s).filter(|a| Some(a) != stale.as_ref());
    let mut wake = Wake::polling().named::<Service>(&kube, &name);
    let waited = poll(
        args.timeout,
        &ctx.ui,
        &spinner,
        &mut wake,
        || async {
            api.get(&name)
                .await
                .map_err(|e| api_error(e, &format!("reading Service {name}"), &kube.server))
        },
        |s| fresh(s).is_some(),
        |s| match (fresh(s), address(s)) {
            (Some(a), _) => format!("address {a}"),
            (None, Some(old)) => format!(
                "waiting for the {} load balancer's address of {name} (it still shows {old}, of the {})",
                if args.internal { "internal" } else { "public" },
                if args.internal { "public one" } else { "internal one" }
            ),
            (None, None) => format!("waiting for the load balancer's address of {name}"),
        },
    )
    .await?;
    spinner.finish_and_clear();
    let host = match waited {
        Ok(s) => fresh(&s).unwrap_or_default(),
        Err(t) => {
            return Err(user_error(format!(
                "Service {name} has no address after {}",
                humantime::format_duration(Duration::from_secs(t.after.as_secs()))
            ))
            .hint(format!(
                "the service stays; `kubectl -n {} describe service {name}` shows the cloud's events (quota, subnet); run expose again to keep waiting",
                kube.namespace
            ))
            .exit(ExitCode::Timeout)
            .into());
        }
    };
    // The app's login only: the administrator is refused from the network (pg_hba.conf), the
    // load balancer included; `connect` (a port-forward, on the pod's loopback) is its way in.
    let mut users = vec![Login {
        role: "app",
        user: ctx.profile.app_user.clone(),
        password: None,
    }];
    if args.show_password {
        users[0].password =
            Some(secret_key(&kube, &secrets, &names.app_secret, "auth-user-password").await?);
    }
    let report = ExposeReport {
        service: name,
        namespace: kube.namespace.clone(),
        change: applied.change,
        allowed,
        internal: args.internal,
        network_policy,
        host,
        port: cluster.service.port,
        database: ctx.profile.database.clone(),
        ssl_mode: "verify-ca",
        ca_file: ca_file.display().to_string(),
        users,
    };
    ctx.ui.emit(&report, text)?;
    Ok(Outcome::ok())
}

fn text(r: &ExposeReport) -> String {
    let mut out = format!(
        "Service {} {} ({}), allowed from {}\n",
        r.service,
        match r.change {
            Change::Created => "created",
            Change::Configured => "updated",
            _ => "unchanged",
        },
        if r.internal {
            "internal load balancer"
        } else {
            "public load balancer"
        },
        r.allowed.join(", ")
    );
    if let Some(policy) = &r.network_policy {
        out.push_str(&format!(
            "NetworkPolicy {policy} lets the same ranges through to the pod\n"
        ));
    }
    out.push_str(&details(&r.host, r.port, &r.database, &r.users));
    out.push_str(&format!(
        "  sslmode   {} with the CA in {} (DBeaver: SSL tab, \"CA Certificate\")\n",
        r.ssl_mode, r.ca_file
    ));
    out
}

/// Delete one of expose's objects; false when it was not there.
async fn delete<K>(kube: &crate::k8s::Kube, api: &Api<K>, name: &str, kind: &str) -> Result<bool>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let doing = format!("deleting {kind} {name}");
    delete_if_there(kube, api, name, &DeleteParams::default(), &doing).await
}

/// The CA for developers' tools: written, or left when the file already holds it; a file that
/// holds something else is not overwritten.
fn write_ca(path: &Path, ca: &str) -> Result<()> {
    // What is there: absent or unreadable (written below), this CA, another certificate
    // (replaced), or something else (kept: a device, a large file, text that is no certificate).
    let other = match crate::files::read_text(path) {
        Ok(existing) if existing == ca => return Ok(()),
        Ok(existing) => !existing
            .trim_start()
            .starts_with("-----BEGIN CERTIFICATE-----"),
        Err(crate::files::Unread::TooLarge | crate::files::Unread::NotText) => true,
        Err(crate::files::Unread::Io(_)) => false,
    };
    if other {
        return Err(user_error(format!(
            "{} exists and is not a certificate; nothing was changed",
            path.display()
        ))
        .hint("choose another file with --ca-out")
        .exit(ExitCode::Usage)
        .into());
    }
    std::fs::write(path, ca).map_err(|e| {
        anyhow::Error::new(
            user_error(format!("cannot write the CA to {}: {e}", path.display()))
                .hint("choose a file you can write with --ca-out"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_networks_and_single_addresses_become_hosts() {
        assert_eq!(parse_cidr("203.0.113.0/24").unwrap(), "203.0.113.0/24");
        assert_eq!(parse_cidr("198.51.100.7").unwrap(), "198.51.100.7/32");
        assert_eq!(parse_cidr("2001:db8::/32").unwrap(), "2001:db8::/32");
        let e = parse_cidr("203.0.113.5/24").unwrap_err();
        assert!(e.contains("203.0.113.0/24"), "{e}");
        assert!(parse_cidr("203.0.113.0/33").is_err());
        assert_eq!(
            parse_cidr("::ffff:203.0.113.0/120").unwrap(),
            "203.0.113.0/24"
        );
        assert!(
            parse_cidr("::ffff:0.0.0.0/96").is_err(),
            "every IPv4 address"
        );
        let wide = |r: &[&str]| too_wide(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(wide(&["0.0.0.0/1", "128.0.0.0/1"]).is_some());
        assert!(wide(&["::/1"]).is_some() && wide(&["8000::/1"]).is_some());
        assert!(wide(&["10.0.0.0/8"]).is_none(), "a /8 is allowed");
        assert!(wide(&["10.0.0.0/8", "11.0.0.0/8"]).is_some());
        assert!(
            wide(&["10.0.0.0/8", "10.1.0.0/16"]).is_none(),
            "overlaps count once"
        );
        assert!(wide(&["2001:db8::/32"]).is_none() && wide(&["2001:db8::/31"]).is_some());
        assert!(parse_cidr("office").is_err());
    }
}
