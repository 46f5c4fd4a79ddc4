//! This process's terminal: whether stdin and stdout are one, its size, and raw mode for an
//! interactive session in the pod (keys go to the remote program as typed, Ctrl-C included; the
//! remote terminal echoes and translates line ends).

use std::io::IsTerminal;

use anyhow::{Context, Result};
use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};

/// Both stdin and stdout are a terminal: a person is typing and reading.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The terminal's columns and rows (from stdout), if it is one.
pub fn size() -> Option<(u16, u16)> {
    let ws = tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Raw mode on stdin until dropped (then the terminal is as it was, also on an error path).
pub struct Raw {
    saved: Termios,
}

impl Raw {
    pub fn enter() -> Result<Raw> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw)
            .context("switching the terminal to raw mode")?;
        Ok(Raw { saved })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}
