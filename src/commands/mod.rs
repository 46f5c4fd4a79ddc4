//! One file per subcommand: its arguments and a short `run(ctx, args)`.

pub mod install;
pub mod render;
pub mod status;
pub mod uninstall;
