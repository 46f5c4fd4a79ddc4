//! Everything that talks to the Kubernetes API.

pub mod apply;
pub mod client;
pub mod diagnose;
pub mod exec;
pub mod forward;
pub mod health;
pub mod inventory;
pub mod preflight;
pub mod release;
pub mod snapshot;
pub mod wait;

pub use client::Kube;
