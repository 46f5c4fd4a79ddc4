//! Talking to the database: connect (port-forward or URL, TLS), migrations, the app role,
//! checks, backup files, dump and restore streams.

pub mod backup_file;
pub mod checks;
pub mod connect;
pub mod details;
pub mod drill;
pub mod dump;
pub mod encryption;
pub mod expected;
pub mod freeze;
pub mod migrate;
pub mod plain_sql;
pub mod process;
pub mod queries;
pub mod require_auth;
pub mod restore;
pub mod role;
pub mod shadow;
pub mod tls;
pub mod tools;
