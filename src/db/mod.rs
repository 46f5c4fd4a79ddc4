//! Talking to the database: connect (port-forward or URL, TLS), migrations, the app role, checks.

pub mod checks;
pub mod connect;
pub mod expected;
pub mod migrate;
pub mod role;
pub mod tls;
