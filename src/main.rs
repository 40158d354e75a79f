#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use passport::args::EXIT_USAGE;
use passport::cli::{Cli, Command, TokenCommand};
use passport::commands;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = passport::logging::init(cli.log.log_format, &cli.log.log_level) {
        eprintln!("invalid configuration (1 problem):\n  - --log-level {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let env = |name: &str| std::env::var(name).ok().or_else(|| fallback_env(name));
    match cli.command {
        Command::Serve(args) => commands::serve::main(args, &env),
        Command::Exec(args) => commands::exec::main(args, &env),
        Command::Demo(args) => commands::demo::main(args),
        Command::Check(args) => commands::check::main(args, &env),
        Command::TrustPolicy(args) => commands::trust_policy::main(&args),
        Command::Inject(args) => commands::inject::main(&args),
        Command::Loadtest(args) => commands::loadtest::main(&args),
        Command::SimulateFleet(args) => commands::simulate_fleet::main(&args),
        Command::Webhook(args) => commands::webhook::main(&args),
        Command::WaitReady(args) => commands::wait_ready::main(&args),
        Command::Emulator(args) => commands::emulator::main(args),
        Command::Token(TokenCommand::Mint(args)) => commands::emulator::mint_main(args),
    }
}

/// `HOSTNAME` is a shell variable, not always exported; the kernel knows it regardless.
fn fallback_env(name: &str) -> Option<String> {
    (name == passport::env::HOSTNAME)
        .then(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .flatten()
        .map(|h| h.trim().to_owned())
}
