//! `passport serve`: the sidecar's main job.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{EXIT_UNAVAILABLE, Signals};
use crate::config::ServeConfig;
use crate::refresh::{CLIENT_REFRESH_WINDOW, minimum_time_left};
use crate::server::ServerSettings;
use crate::sidecar::{Shutdown, Sidecar};

/// The environment an application needs to use passport: the container endpoint (which
/// every SDK's chain tries before IMDS), the IMDS endpoint for tools that only know that
/// one, and the variables that would shadow both removed.
pub fn env_lines(
    listen: std::net::SocketAddr,
    auth_token_file: &std::path::Path,
    imds: bool,
) -> String {
    let url = format!("http://{listen}{}", crate::server::container::PATH);
    let mut out = format!(
        "export AWS_CONTAINER_CREDENTIALS_FULL_URI={}\n",
        shell_quote(&url)
    );
    out.push_str(&format!(
        "export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={}\n",
        shell_quote(&auth_token_file.to_string_lossy())
    ));
    if imds {
        // No trailing slash: the Java SDK concatenates paths onto it.
        out.push_str(&format!(
            "export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://{listen}\n"
        ));
        out.push_str(&format!(
            "export NO_PROXY={}${{NO_PROXY:+,$NO_PROXY}}\n",
            listen.ip()
        ));
    }
    out.push_str(&format!(
        "unset {}\n",
        crate::commands::exec::SHADOWING_VARIABLES.join(" ")
    ));
    out
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/:._-=@%+,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub async fn run(config: ServeConfig) -> ExitCode {
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            error!(error = %e, "cannot install signal handlers");
            return super::exit(EXIT_UNAVAILABLE);
        }
    };
    let url = format!("http://{}{}", config.listen, crate::server::container::PATH);
    warn_about(&config);

    let auth_token = crate::auth::generate();
    if let Err(e) = crate::auth::write_token_file(
        &config.auth_token_file,
        &auth_token,
        config.auth_token_file_mode,
    ) {
        error!(path = %config.auth_token_file.display(), error = %e, "cannot write the auth token file");
        return super::exit(EXIT_UNAVAILABLE);
    }
    let settings = ServerSettings {
        listen: config.listen,
        admin_listen: config.admin_listen,
        auth_token,
        max_connections: config.max_connections,
        header_read_timeout: std::time::Duration::from_secs(5),
        imds: config.imds.clone(),
    };
    let sidecar =
        match Sidecar::bind_sts(config.sts.refresh.clone(), settings, &config.sts.sts).await {
            Ok(sidecar) => sidecar,
            Err(e) => {
                error!(error = %e, "cannot start");
                return super::exit(EXIT_UNAVAILABLE);
            }
        };
    info!(
        role_arn = %config.sts.refresh.role_arn,
        session_name = %config.sts.refresh.session_name,
        token_file = %config.sts.refresh.token_file.display(),
        region = %config.sts.sts.region,
        sts_endpoint = config.sts.sts.endpoint.as_deref().unwrap_or("regional"),
        url = %url,
        auth_token_file = %config.auth_token_file.display(),
        "passport serving"
    );
    let stop = CancellationToken::new();
    let run = tokio::spawn(sidecar.run(
        stop.clone(),
        Shutdown {
            drain_delay: config.drain_delay,
            timeout: config.shutdown_timeout,
        },
    ));
    signals.wait().await;
    stop.cancel();
    let _ = run.await;
    ExitCode::SUCCESS
}

fn warn_about(config: &ServeConfig) {
    if !config.listen.ip().is_loopback() {
        warn!(listen = %config.listen, "credentials endpoint listens on a non-loopback address: anything that can reach it and knows the auth token gets credentials");
    }
    let duration = std::time::Duration::from_secs(config.sts.refresh.duration_seconds.into());
    let left = minimum_time_left(duration);
    if left < CLIENT_REFRESH_WINDOW {
        warn!(
            duration_seconds = config.sts.refresh.duration_seconds,
            min_seconds_left = left.as_secs(),
            "sessions this short leave clients under 15 minutes at times; botocore then refetches on every call"
        );
    }
    if !config.sts.refresh.token_file.exists() {
        warn!(token_file = %config.sts.refresh.token_file.display(), "token file does not exist yet; will keep retrying");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_quote_paths() {
        let text = env_lines(
            "127.0.0.1:9911".parse().unwrap(),
            std::path::Path::new("/tmp/it's here/token"),
            true,
        );
        assert!(text.contains("export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911\n"));
        assert!(text.contains("export NO_PROXY=127.0.0.1${NO_PROXY:+,$NO_PROXY}\n"));
        let text_without_imds = env_lines(
            "127.0.0.1:9911".parse().unwrap(),
            std::path::Path::new("/a"),
            false,
        );
        assert!(!text_without_imds.contains("METADATA"));
        assert!(text.contains(
            "export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/v1/credentials\n"
        ));
        assert!(text.contains(
            "export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE='/tmp/it'\\''s here/token'\n"
        ));
        assert!(text.contains("unset AWS_ACCESS_KEY_ID"));
    }
}
