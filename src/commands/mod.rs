//! One file per subcommand: its arguments and a short `run(ctx, args)`.

pub mod apply_schema;
pub mod backup;
pub mod completion;
pub mod connect;
pub mod expose;
pub mod install;
pub mod install_managed;
pub mod logs;
pub mod man;
pub mod psql;
pub mod render;
pub mod report;
pub mod resize;
pub mod restore;
pub mod restore_drill;
pub mod restore_snapshot;
pub mod rotate_password;
pub mod start;
pub mod status;
pub mod stop;
pub mod uninstall;
pub mod upgrade;
pub mod values;
pub mod verify;
