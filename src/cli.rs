//! The command tree, assembled: each subcommand's arguments are owned by its module under
//! `commands/`; this file only names them and holds the flags every command shares.

use clap::{Args, Parser, Subcommand};

use crate::commands::{
    check, demo, emulator, exec, inject, loadtest, serve, simulate_fleet, trust_policy, wait_ready,
    webhook,
};
use crate::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "passport",
    version,
    about = "Serve IRSA web-identity credentials to any AWS SDK over the container and IMDS endpoints"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exchange the pod's web-identity token with STS and serve the credentials on localhost.
    Serve(serve::ServeArgs),
    /// Run a command with credentials from passport (local development, like `aws-vault exec`).
    Exec(exec::ExecArgs),
    /// Validate the IRSA setup as an application sees it, and say what is wrong.
    Check(check::CheckArgs),
    /// Print the IAM role trust policy that lets exactly one service account assume the role.
    TrustPolicy(trust_policy::TrustPolicyArgs),
    /// Add the passport sidecar to Kubernetes workloads: YAML in (file or stdin), YAML out.
    Inject(inject::InjectArgs),
    /// The whole IRSA path on this machine: issuer, STS emulator, rotating token, sidecar, report.
    Demo(demo::DemoArgs),
    /// Run a local OIDC issuer and STS emulator on loopback (no AWS account needed).
    Emulator(emulator::EmulatorArgs),
    /// Service-account tokens, minted like the kubelet projects them.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Load-test a credentials endpoint (passport's or anyone's).
    Loadtest(loadtest::LoadtestArgs),
    /// Simulate a fleet's STS refresh schedule on virtual time.
    SimulateFleet(simulate_fleet::SimulateFleetArgs),
    /// Admission webhook: inject the sidecar into pods labelled passport.dev/inject=true.
    Webhook(webhook::WebhookArgs),
    /// Wait until passport's /readyz answers 200 (the legacy sidecar's postStart hook).
    WaitReady(wait_ready::WaitReadyArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a projected-style service-account token into a file (optionally keep rotating it).
    Mint(emulator::TokenMintArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, global = true, env = "PASSPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, in `RUST_LOG` syntax (e.g. `info`, `passport=debug`).
    #[arg(long, global = true, env = "PASSPORT_LOG", default_value = "info")]
    pub log_level: String,
}
