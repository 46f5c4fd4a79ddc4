//! phonebill-db's integration tests, compiled into one test binary.
//!
//! - `render`: manifests against the profile, a snapshot, and the Kubernetes 1.33 schemas.
//! - `cli`: bad input through the real binary.
//! - `install`, `uninstall`, `status`: whole flows through the real binary against the fake API server.
//! - `database`, `migrations`, `tls`: apply-schema and verify against the throwaway PostgreSQL
//!   that scripts/test.sh starts (`pg`), through the fake's port-forward and through --database-url.
//! - `backup`: backup and restore (pod exec and --database-url), damaged files, snapshots.
//! - `habits`: kubectl's and CI's habits (-n, -o yaml, completions, man, KUBECONFIG lists, colour,
//!   the plugin link, verify against a plain server, the CI example of docs/ci.md).
//! - `fake_api`: the fake API server's own behaviour, through the real kube client.

mod support;

mod attacks;
mod backup;
mod cli;
mod connect;
mod database;
mod drill;
mod encryption;
mod expose;
mod fake_api;
mod faults;
mod habits;
mod install;
mod logs;
mod migrations;
mod pg;
mod pod;
mod power;
mod prod;
mod props;
mod psql;
mod quick_start;
mod rbac;
mod real_cluster;
mod record;
mod render;
mod report;
mod resize;
mod rotate;
mod schema;
mod secrets;
mod shadow;
mod snapshot_restore;
mod snapshots;
mod status;
mod streams;
mod thresholds;
mod tls;
mod uninstall;
mod upgrade;
