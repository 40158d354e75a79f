//! Subcommands other than the library's core: each turns a validated config into a
//! running process and an exit code.

pub mod exec;
pub mod serve;

use std::process::ExitCode;

/// Exit status for bad flags or configuration (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit status when the environment prevents running (cannot bind, cannot write files).
pub const EXIT_UNAVAILABLE: u8 = 69;

/// Wait for SIGTERM or SIGINT. A second signal exits at once (an operator pressing Ctrl-C
/// twice does not want to wait for the drain).
pub async fn wait_for_signal() {
    wait_once().await;
    tokio::spawn(async {
        wait_once().await;
        tracing::warn!("second signal: exiting without draining");
        std::process::exit(130);
    });
}

async fn wait_once() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}
