//! Log setup. Whatever level the operator asks for, the AWS SDK, hyper and rustls are held
//! at INFO: at DEBUG and TRACE the SDK's orchestrator prints whole operation outputs and
//! errors, and an STS error that echoes the request would put the web-identity token in the
//! logs (tests/secrets.rs plants one and proves this cap holds).

use tracing_subscriber::EnvFilter;

/// Log format: human-readable lines, or one JSON object per line for log pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Crates whose verbose output can carry request or response content.
const CAPPED: &[&str] = &[
    "aws_config",
    "aws_runtime",
    "aws_sdk_sts",
    "aws_sigv4",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
    "h2",
    "hyper",
    "hyper_util",
    "rustls",
];

/// The operator's filter (RUST_LOG syntax) with the caps above appended, so they win.
pub fn filter(directives: &str) -> Result<EnvFilter, String> {
    let mut full = directives.trim().to_owned();
    for target in CAPPED {
        if !full.is_empty() {
            full.push(',');
        }
        full.push_str(target);
        full.push_str("=info");
    }
    EnvFilter::try_new(&full).map_err(|e| format!("{directives:?}: {e}"))
}

/// Install the global subscriber, writing to stderr.
pub fn init(format: LogFormat, directives: &str) -> Result<(), String> {
    // Colour only for a person at a terminal: container runtimes and log shippers get
    // stderr as a pipe, where escape codes are noise in every line.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(directives)?)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_win_over_the_operator_directive() {
        let f = filter("trace,aws_smithy_runtime=trace")
            .unwrap()
            .to_string();
        assert!(f.contains("aws_smithy_runtime=info"), "{f}");
        assert!(!f.contains("aws_smithy_runtime=trace"), "{f}");
        assert!(filter("not a [filter").is_err());
    }
}
