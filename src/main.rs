#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use passport::commands::{self, EXIT_USAGE};
use passport::config::{Cli, Command, ExecConfig, ServeConfig, TokenCommand};

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
        Command::Serve(args) if args.print_env => match passport::config::print_env_target(&args) {
            Ok((listen, file)) => {
                print!(
                    "{}",
                    commands::serve::env_lines(listen, &file, !args.disable_imds)
                );
                ExitCode::SUCCESS
            }
            Err(e) => usage(e),
        },
        Command::Serve(args) => match ServeConfig::from_args(&args, &env) {
            Ok(config) => block_on(commands::serve::run(config)),
            Err(e) => usage(e),
        },
        Command::Exec(args) => match ExecConfig::from_args(&args, &env) {
            Ok(config) => block_on(commands::exec::run(config)),
            Err(e) => usage(e),
        },
        Command::Demo(args) => block_on(commands::demo::run(args)),
        Command::Check(args) => block_on(async {
            let report = passport::check::run(
                &args,
                &passport::check::Inputs {
                    env: &env,
                    now: std::time::SystemTime::now(),
                },
            )
            .await;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("report serialises")
                );
            } else {
                print!("{}", report.human());
            }
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Command::TrustPolicy(args) => match passport::trust::render(&args) {
            Ok(policy) => {
                print!("{policy}");
                ExitCode::SUCCESS
            }
            Err(e) => usage(e),
        },
        Command::Inject(args) => passport::inject::run(&args),
        // The load generator builds its own multi-thread runtime; the simulation needs none.
        Command::Loadtest(args) => passport::loadtest::main(&args),
        Command::SimulateFleet(args) => passport::fleet::main(&args),
        Command::Emulator(args) => emulator_result(block_on(async {
            passport::emulator::cli::run_emulator(args).await
        })),
        Command::Token(TokenCommand::Mint(args)) => emulator_result(block_on(async {
            passport::emulator::cli::run_token_mint(args).await
        })),
    }
}

/// The sidecar runs on one thread: handlers are a snapshot load and a buffer clone, so a
/// second worker would only add cross-thread wake-ups (and a core a sidecar rarely has).
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

fn emulator_result(result: Result<(), passport::emulator::cli::CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => usage(format!("passport: {e}\n")),
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
