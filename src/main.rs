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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match cli.command {
        Command::Serve(args) => match ServeConfig::from_args(&args, &env) {
            Ok(config) => runtime.block_on(commands::serve::run(config)),
            Err(e) => usage(e),
        },
        Command::Exec(args) => match ExecConfig::from_args(&args, &env) {
            Ok(config) => runtime.block_on(commands::exec::run(config)),
            Err(e) => usage(e),
        },
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
    // Colour only for a person at a terminal: container runtimes and log shippers get
    // stderr as a pipe, where escape codes are noise in every line.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match log.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
