//! `passport exec -- CMD ARGS...`: serve on an ephemeral loopback port for one command.
//!
//! For local development, like `aws-vault exec`: the command sees only the container
//! endpoint, with every variable that would take precedence over it in an SDK's credential
//! chain removed, and passport exits with the command's status.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::EXIT_UNAVAILABLE;
use crate::config::ExecConfig;
use crate::server::ServerSettings;
use crate::sidecar::{Shutdown, Sidecar};

/// Variables an SDK would use before the container endpoint (static keys, web identity,
/// profiles, the other container-endpoint form). `exec` also points
/// `AWS_SHARED_CREDENTIALS_FILE` at `/dev/null`.
pub const SHADOWING_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
];

pub async fn run(config: ExecConfig) -> ExitCode {
    let dir = match tempfile::Builder::new().prefix("passport-exec-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            error!(error = %e, "cannot create a temporary directory for the auth token");
            return super::exit(EXIT_UNAVAILABLE);
        }
    };
    let token_file = dir.path().join("auth-token");
    let auth_token = crate::auth::generate();
    if let Err(e) = crate::auth::write_token_file(&token_file, &auth_token, 0o600) {
        error!(error = %e, "cannot write the auth token file");
        return super::exit(EXIT_UNAVAILABLE);
    }
    let settings = ServerSettings {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        admin_listen: None,
        auth_token,
        max_connections: 1024,
        header_read_timeout: Duration::from_secs(5),
        // exec exports only the container endpoint.
        imds: None,
    };
    let sidecar =
        match Sidecar::bind_sts(config.sts.refresh.clone(), settings, &config.sts.sts).await {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "cannot start");
                return super::exit(EXIT_UNAVAILABLE);
            }
        };
    let url = format!(
        "http://{}{}",
        sidecar.local_addr(),
        crate::server::container::PATH
    );
    let shared = sidecar.shared();
    let stop = CancellationToken::new();
    let running = tokio::spawn(sidecar.run(stop.clone(), Shutdown::PROMPT));

    if tokio::time::timeout(config.wait, shared.first_credentials())
        .await
        .is_err()
    {
        let why = shared.snapshot.load().unavailable_body.clone();
        error!(waited_ms = config.wait.as_millis() as u64, reason = %String::from_utf8_lossy(&why),
            "no credentials from STS; not running the command");
        stop.cancel();
        let _ = running.await;
        return super::exit(EXIT_UNAVAILABLE);
    }
    info!(%url, "credentials ready; running the command");

    let mut command = tokio::process::Command::new(&config.command[0]);
    command.args(&config.command[1..]);
    for var in SHADOWING_VARIABLES {
        command.env_remove(var);
    }
    // Every SDK reads the shared credentials file before the container endpoint, so keys in
    // its [default] profile would win; the file holds nothing else the command needs.
    command.env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    command
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file);
    let region = &config.sts.sts.region;
    if std::env::var_os("AWS_REGION").is_none() {
        command.env("AWS_REGION", region);
    }
    if std::env::var_os("AWS_DEFAULT_REGION").is_none() {
        command.env("AWS_DEFAULT_REGION", region);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            error!(command = %config.command[0].to_string_lossy(), error = %e, "cannot run the command");
            stop.cancel();
            let _ = running.await;
            return super::exit(127);
        }
    };
    let status = wait_forwarding_signals(&mut child).await;
    stop.cancel();
    let _ = running.await;
    drop(dir);
    status
}

/// Wait for the child; pass SIGTERM/SIGINT/SIGHUP on to it rather than dying first (the
/// terminal already delivers Ctrl-C to the whole foreground group).
async fn wait_forwarding_signals(child: &mut tokio::process::Child) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        let forward = tokio::select! {
            status = child.wait() => return exit_code(status),
            _ = term.recv() => nix::sys::signal::Signal::SIGTERM,
            _ = int.recv() => continue,
            _ = hup.recv() => nix::sys::signal::Signal::SIGHUP,
        };
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), forward);
        }
    }
}

fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => ExitCode::from(code.clamp(0, 255) as u8),
            (None, Some(sig)) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
            _ => ExitCode::FAILURE,
        },
        Err(e) => {
            error!(error = %e, "waiting for the command failed");
            ExitCode::FAILURE
        }
    }
}
