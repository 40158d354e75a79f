//! One module per subcommand. Each owns its clap `Args`, their validation into a typed
//! config (every problem reported at once, exit 64), and its `main`. `serve` and `exec`
//! run the sidecar core; the others are tools around it.

pub mod check;
pub mod demo;
pub mod emulator;
pub mod exec;
pub mod inject;
pub mod loadtest;
pub mod serve;
pub mod simulate_fleet;
pub mod sts_options;
pub mod trust_policy;
pub mod wait_ready;
pub mod webhook; // issue 16: the admission webhook

use std::process::ExitCode;

use crate::args::EXIT_USAGE;

/// The sidecar runs on one thread: handlers are a snapshot load and a buffer clone, so a
/// second worker would only add cross-thread wake-ups (and a core a sidecar rarely has).
pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// Print a usage problem and exit 64.
pub fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprint!("{e}");
    ExitCode::from(EXIT_USAGE)
}

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
