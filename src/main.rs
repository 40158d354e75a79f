#![forbid(unsafe_code)]
//! Minimal dispatcher for the emulator subcommands (the lead merges these into the real CLI).

use clap::{Parser, Subcommand};
use passport::emulator::cli::{EmulatorArgs, TokenMintArgs, run_emulator, run_token_mint};

#[derive(Parser)]
#[command(name = "passport", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local OIDC issuer and STS emulator on loopback.
    Emulator(EmulatorArgs),
    /// Service-account tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a projected-style service-account token into a file.
    Mint(TokenMintArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Emulator(args) => run_emulator(args).await,
        Command::Token(TokenCommand::Mint(args)) => run_token_mint(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("passport: {e}");
            std::process::ExitCode::from(64)
        }
    }
}
