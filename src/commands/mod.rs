//! Subcommands other than the library's core: each turns a validated config into a
//! running process and an exit code.

pub mod demo;
pub mod exec;
pub mod serve;

use std::process::ExitCode;

/// Exit status for bad flags or configuration (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit status when the environment prevents running (cannot bind, cannot write files).
pub const EXIT_UNAVAILABLE: u8 = 69;

/// SIGTERM/SIGINT handling, installed before anything slow happens: a signal that
/// arrives while passport is still starting must drain and exit 0 like any other, not
/// kill the process with the default action.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Wait for the first signal. A second one exits at once: an operator pressing
    /// Ctrl-C twice does not want to wait for the drain.
    pub async fn wait(mut self) {
        self.next().await;
        tokio::spawn(async move {
            self.next().await;
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(130);
        });
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}

pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}
