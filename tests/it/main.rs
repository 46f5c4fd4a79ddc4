//! phonebill-db's integration tests, compiled into one test binary.
//!
//! - `render`: manifests against the profile, a snapshot, and the Kubernetes 1.33 schemas.
//! - `cli`: bad input through the real binary.
//! - `install`, `uninstall`, `status`: whole flows through the real binary against the fake API server.
//! - `fake_api`: the fake API server's own behaviour, through the real kube client.

mod support;

mod cli;
mod fake_api;
mod install;
mod real_cluster;
mod render;
mod status;
mod uninstall;
