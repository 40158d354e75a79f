#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use passport::commands::{self, EXIT_USAGE};
use passport::config::{Cli, Command, ExecConfig, LogArgs, LogFormat, ServeConfig};

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
    if let Err(e) = init_tracing(&cli.log) {
        eprintln!("invalid configuration (1 problem):\n  - --log-level: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let env = |name: &str| std::env::var(name).ok().or_else(|| fallback_env(name));
    // These two build their own runtime (or none).
    let command = match cli.command {
        Command::Loadtest(args) => return passport::loadtest::main(&args),
        Command::SimulateFleet(args) => return passport::fleet::main(&args),
        other => other,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match command {
        Command::Serve(args) => match ServeConfig::from_args(&args, &env) {
            Ok(config) => runtime.block_on(commands::serve::run(config)),
            Err(e) => usage(e),
        },
        Command::Exec(args) => match ExecConfig::from_args(&args, &env) {
            Ok(config) => runtime.block_on(commands::exec::run(config)),
            Err(e) => usage(e),
        },
        Command::Loadtest(_) | Command::SimulateFleet(_) => unreachable!("handled above"),
    }
}

fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprint!("{e}");
    ExitCode::from(EXIT_USAGE)
}

/// `HOSTNAME` is a shell variable, not always exported; the kernel knows it regardless.
fn fallback_env(name: &str) -> Option<String> {
    (name == "HOSTNAME")
        .then(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .flatten()
        .map(|h| h.trim().to_owned())
}

fn init_tracing(log: &LogArgs) -> Result<(), String> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&log.log_level).map_err(|e| e.to_string())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
