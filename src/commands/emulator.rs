//! `passport emulator` and `passport token mint`: their flags and runners. The emulator
//! itself is `crate::emulator`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::emulator::mint::{self, MintRequest, TokenOutput};
use crate::emulator::{
    Emulator, EmulatorConfig, Faults, RoleConfig, SigningKey, TrustedIssuer, load_jwks,
    split_assignment,
};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9401";
pub const DEFAULT_ISSUER: &str = "http://127.0.0.1:9401";

/// Run a local OIDC issuer and STS emulator (loopback only).
#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Loopback address to listen on (issuer and STS share it).
    #[arg(long, env = "PASSPORT_EMULATOR_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The emulated AWS account.
    #[arg(long, env = "PASSPORT_EMULATOR_ACCOUNT_ID", default_value = crate::emulator::DEFAULT_ACCOUNT_ID)]
    pub account_id: String,
    /// Issuer URL put in discovery and expected in `iss` (default `http://LISTEN`).
    #[arg(long, env = "PASSPORT_EMULATOR_ISSUER_URL")]
    pub issuer_url: Option<String>,
    /// RS256 signing key (PKCS#8 PEM); generated and saved there if missing. Without it
    /// the key is ephemeral.
    #[arg(long, env = "PASSPORT_EMULATOR_SIGNING_KEY", value_name = "PEM")]
    pub signing_key: Option<PathBuf>,
    /// A role: NAME=TRUST-POLICY.json, or ACCOUNT:NAME=... for a role in another account
    /// (a role-chaining target) (repeatable). `{{issuer_host}}`, `{{provider_arn}}`
    /// and `{{account_id}}` in the file are replaced.
    #[arg(long = "role", value_name = "NAME=POLICY.json")]
    pub roles: Vec<String>,
    /// Maximum session duration of a role: NAME=SECONDS (repeatable; default 3600).
    #[arg(long = "role-max-session", value_name = "NAME=SECONDS")]
    pub role_max_session: Vec<String>,
    /// Do not create the `passport-demo` role.
    #[arg(long)]
    pub no_default_role: bool,
    /// Trust another issuer: ISSUER_URL=path/to/jwks.json (repeatable).
    #[arg(long = "trust-jwks", value_name = "ISSUER_URL=JWKS.json")]
    pub trust_jwks: Vec<String>,
    /// Accepted audiences (client ids) for every trusted issuer.
    #[arg(long = "audience", default_value = mint::DEFAULT_AUDIENCE)]
    pub audiences: Vec<String>,
    /// Fraction (0..1) of AssumeRoleWithWebIdentity calls failing with --error-code.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Error code for --error-rate failures.
    #[arg(long, default_value = "InternalFailure")]
    pub error_code: String,
    /// Error codes returned by the next calls, in order (comma-separated or repeated).
    #[arg(long = "script", value_delimiter = ',', value_name = "CODE")]
    pub script: Vec<String>,
    /// Latency added to each AssumeRoleWithWebIdentity call (e.g. 250ms).
    #[arg(long, value_parser = crate::args::duration)]
    pub latency: Option<Duration>,
    /// Calls per second beyond which STS answers Throttling.
    #[arg(long)]
    pub max_rps: Option<u32>,
}

/// Write a projected-style service-account token to a file.
#[derive(Debug, Clone, Args)]
pub struct TokenMintArgs {
    /// Where to write the token (atomically).
    #[arg(long, short = 'o', value_name = "PATH")]
    pub out: PathBuf,
    /// RS256 signing key (PKCS#8 PEM); generated and saved there if missing. Share it with
    /// `passport emulator --signing-key` so the emulator accepts the tokens.
    #[arg(long, value_name = "PEM")]
    pub signing_key: PathBuf,
    /// `iss` claim.
    #[arg(long, default_value = DEFAULT_ISSUER)]
    pub issuer: String,
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    #[arg(long, default_value = "default")]
    pub service_account: String,
    /// `aud` claim (repeatable).
    #[arg(long = "audience", default_value = mint::DEFAULT_AUDIENCE)]
    pub audiences: Vec<String>,
    /// Token lifetime (`exp - iat`).
    #[arg(long, default_value = "1h", value_parser = crate::args::duration)]
    pub lifetime: Duration,
    /// Pod name for the `kubernetes.io` claim (default `SA-0`).
    #[arg(long)]
    pub pod_name: Option<String>,
    /// Keep running, re-minting the token this often (like the kubelet).
    #[arg(long, value_parser = crate::args::duration)]
    pub rotate_every: Option<Duration>,
    /// Use the kubelet's layout: OUT -> ..data/FILE, ..data -> ..TIMESTAMP.
    #[arg(long)]
    pub kubelet_layout: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

impl From<crate::emulator::EmulatorError> for CliError {
    fn from(e: crate::emulator::EmulatorError) -> Self {
        Self(e.to_string())
    }
}

impl From<crate::emulator::issuer::KeyError> for CliError {
    fn from(e: crate::emulator::issuer::KeyError) -> Self {
        Self(e.to_string())
    }
}

impl From<mint::MintError> for CliError {
    fn from(e: mint::MintError) -> Self {
        Self(e.to_string())
    }
}

impl EmulatorArgs {
    /// Build the in-process configuration (reads policy, JWKS and key files).
    pub fn to_config(&self) -> Result<EmulatorConfig, CliError> {
        let mut max: std::collections::HashMap<String, u32> = Default::default();
        for item in &self.role_max_session {
            let (name, secs) = split_assignment(item).map_err(CliError)?;
            let secs = secs
                .parse()
                .map_err(|_| CliError(format!("--role-max-session {item}: not a number")))?;
            max.insert(name, secs);
        }
        let mut roles = Vec::new();
        for item in &self.roles {
            let (name, path) = split_assignment(item).map_err(CliError)?;
            let policy = std::fs::read_to_string(&path)
                .map_err(|e| CliError(format!("--role {name}: {path}: {e}")))?;
            let mut rc = RoleConfig::new(name.clone(), policy);
            if let Some(m) = max.remove(&name) {
                rc.max_session_duration = m;
            }
            roles.push(rc);
        }
        if let Some(name) = max.keys().next() {
            return Err(CliError(format!(
                "--role-max-session {name}: no --role {name}=... given"
            )));
        }
        let mut trusted_issuers = Vec::new();
        for item in &self.trust_jwks {
            let (issuer, path) = split_assignment(item).map_err(CliError)?;
            let mut t = TrustedIssuer::new(issuer, load_jwks(path.as_ref())?);
            t.audiences = self.audiences.clone();
            trusted_issuers.push(t);
        }
        let signing_key = match &self.signing_key {
            Some(path) => Some(Arc::new(SigningKey::load_or_generate(path)?)),
            None => None,
        };
        let faults = Faults {
            error_rate: self.error_rate,
            error_code: Some(self.error_code.clone()),
            script: self.script.iter().cloned().collect(),
            latency_ms: self.latency.map(|d| d.as_millis() as u64).unwrap_or(0),
            max_rps: self.max_rps,
        };
        Ok(EmulatorConfig {
            listen: self.listen,
            account_id: self.account_id.clone(),
            signing_key,
            issuer_url: self.issuer_url.clone(),
            audiences: self.audiences.clone(),
            roles,
            default_role: !self.no_default_role,
            trusted_issuers,
            faults,
            ..Default::default()
        })
    }
}

/// `passport emulator`, from the parsed flags to an exit status.
pub fn main(args: EmulatorArgs) -> std::process::ExitCode {
    exit_status(super::block_on(run_emulator(args)))
}

/// `passport token mint`, from the parsed flags to an exit status.
pub fn mint_main(args: TokenMintArgs) -> std::process::ExitCode {
    exit_status(super::block_on(run_token_mint(args)))
}

fn exit_status(result: Result<(), CliError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => super::usage(format!("passport: {e}\n")),
    }
}

/// Run `passport emulator` until Ctrl-C / SIGTERM.
pub async fn run_emulator(args: EmulatorArgs) -> Result<(), CliError> {
    let emulator = Emulator::start(args.to_config()?).await?;
    let url = emulator.sts_url();
    println!("passport emulator (loopback only)");
    println!("  issuer:   {}", emulator.issuer_url());
    println!("  jwks:     {}/keys", emulator.issuer_url());
    println!("  sts:      {url}");
    println!("  provider: {}", emulator.provider_arn());
    if !args.no_default_role {
        println!(
            "  role:     {}",
            emulator.role_arn(crate::emulator::DEFAULT_ROLE)
        );
    }
    println!("  faults:   GET|POST|DELETE {url}/_passport/faults");
    println!("export AWS_ENDPOINT_URL_STS={url}");
    shutdown_signal().await;
    emulator.shutdown().await;
    Ok(())
}

/// Run `passport token mint`: write once, or keep rotating with `--rotate-every`.
pub async fn run_token_mint(args: TokenMintArgs) -> Result<(), CliError> {
    let key = SigningKey::load_or_generate(&args.signing_key)?;
    let mut request = MintRequest::new(args.namespace.clone(), args.service_account.clone());
    request.audiences = args.audiences.clone();
    request.lifetime = args.lifetime;
    request.pod_name = args.pod_name.clone();
    let output = token_output(&args)?;
    match args.rotate_every {
        None => {
            let token =
                mint::mint_token(&key, &args.issuer, &request, std::time::SystemTime::now())?;
            output.write(&token)?;
            println!("{}", output.path().display());
            Ok(())
        }
        Some(every) if every.is_zero() => Err(CliError("--rotate-every must be positive".into())),
        Some(every) => {
            println!(
                "writing {} every {}",
                output.path().display(),
                humantime::format_duration(every)
            );
            mint::rotate(
                &key,
                &args.issuer,
                &request,
                &output,
                every,
                shutdown_signal(),
            )
            .await?;
            Ok(())
        }
    }
}

fn token_output(args: &TokenMintArgs) -> Result<TokenOutput, CliError> {
    if !args.kubelet_layout {
        return Ok(TokenOutput::File(args.out.clone()));
    }
    #[cfg(unix)]
    {
        let file = args
            .out
            .file_name()
            .ok_or_else(|| CliError("--out needs a file name".into()))?
            .to_string_lossy()
            .into_owned();
        let dir = match args.out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(TokenOutput::Kubelet { dir, file })
    }
    #[cfg(not(unix))]
    Err(CliError("--kubelet-layout needs symlinks (Unix)".into()))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        e: EmulatorArgs,
    }

    #[test]
    fn emulator_flags_build_a_config() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("p.json");
        std::fs::write(
            &policy,
            r#"{"Statement":{"Effect":"Allow","Principal":{"Federated":"{{provider_arn}}"},"Action":"sts:AssumeRoleWithWebIdentity"}}"#,
        )
        .unwrap();
        let t = T::parse_from([
            "x",
            "--listen",
            "127.0.0.1:0",
            "--role",
            &format!("app={}", policy.display()),
            "--role-max-session",
            "app=7200",
            "--script",
            "Throttling,InternalFailure",
            "--latency",
            "20ms",
        ]);
        let c = t.e.to_config().unwrap();
        assert_eq!(c.roles[0].name, "app");
        assert_eq!(c.roles[0].max_session_duration, 7200);
        assert_eq!(c.faults.script.len(), 2);
        assert_eq!(c.faults.latency_ms, 20);
        assert!(c.default_role);

        let t = T::parse_from(["x", "--role-max-session", "ghost=7200"]);
        assert!(t.e.to_config().is_err());
    }
}
