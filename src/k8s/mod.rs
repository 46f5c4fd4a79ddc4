//! Everything that talks to the Kubernetes API.

pub mod access;
pub mod apply;
pub mod client;
pub mod dependents;
pub mod diagnose;
pub mod drill_copy;
pub mod drill_record;
pub mod exec;
pub mod first_run;
pub mod forward;
pub mod grants;
pub mod health;
pub mod inventory;
pub mod load_balancer;
pub mod namespace;
pub mod off_hours;
pub mod power;
pub mod preflight;
pub mod record;
pub mod release;
pub mod resize;
pub mod retry;
pub mod schedule;
pub mod severed;
pub mod snapshot;
pub mod stuck;
pub mod thresholds;
pub mod upgrade;
pub mod volume_restore;
pub mod wait;
pub mod watches;

pub use client::Kube;
