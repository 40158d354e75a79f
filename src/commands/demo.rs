//! `passport demo`: the whole IRSA path on one machine, no AWS account, no network.
//!
//! Starts the built-in OIDC issuer and STS emulator on ephemeral loopback ports, mints a
//! projected-style service-account token into a temp directory (kubelet `..data` layout)
//! and keeps rotating it, runs the sidecar against them, prints the `export` lines for a
//! second shell, then a validation report (`passport check` against what it just started:
//! environment, token, both endpoints, and the identity the emulator's GetCallerIdentity
//! verifies from a SigV4 signature), and serves until Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::error;

use super::Signals;
use crate::args::EXIT_UNAVAILABLE;
use crate::compat::{CONTAINER_VARIABLES, Compat};
use crate::emulator::mint::{self, MintRequest, TokenOutput};
use crate::emulator::{Emulator, EmulatorConfig, SigningKey};
use passport_core::aws::{Region, RoleArn, SessionName};
use passport_core::chain::{ChainSettings, ExternalId, MAX_CHAINED_SECONDS};
use passport_core::refresh::RefreshSettings;
use passport_core::secret::Secret;
use passport_core::server::imds::ImdsSettings;
use passport_core::server::{LegacySettings, ServerSettings};
use passport_core::sidecar::{Shutdown, Sidecar};
use passport_core::sts::StsSettings;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Address for passport's credentials endpoints (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Kubernetes namespace written into the minted token.
    #[arg(long, default_value = "demo")]
    pub namespace: String,
    /// Service account written into the minted token.
    #[arg(long, default_value = "demo-app")]
    pub service_account: String,
    /// Rotate the token this often, as the kubelet does.
    #[arg(long, default_value = "10m", value_parser = crate::args::duration)]
    pub rotate_every: Duration,
    /// Session duration asked of the emulated STS (900..43200).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u32).range(900..=43200))]
    pub duration_seconds: u32,
    /// Compatibility level to demonstrate: the variables printed (and checked) are the ones
    /// an SDK of that era understands.
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = Compat::Modern)]
    pub compat: Compat,
    /// Role chaining: serve a role in a second emulated account (444455556666), assumed
    /// with the first role's credentials, an external id and a session tag.
    #[arg(long)]
    pub chain: bool,
}

/// The demo's role: the emulator creates it, trusting its own issuer.
const DEMO_ROLE: &str = "passport-demo";
/// With `--chain`: a role in a second emulated account, and the external id it asks for.
const CHAIN_ROLE: &str = "444455556666:passport-demo-reader";
const CHAIN_EXTERNAL_ID: &str = "passport-demo-external-id";
const REGION: &str = "us-east-1";

/// `passport demo`, until Ctrl-C.
pub fn main(args: DemoArgs) -> ExitCode {
    super::block_on(run(args))
}

pub async fn run(args: DemoArgs) -> ExitCode {
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot install signal handlers");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    match start_and_serve(args, signals).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "demo failed");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

async fn start_and_serve(args: DemoArgs, signals: Signals) -> Result<(), String> {
    let key = Arc::new(SigningKey::generate().map_err(|e| e.to_string())?);
    let mut roles = Vec::new();
    if args.chain {
        // The second account's role trusts the first role, as `passport trust-policy
        // --for-role ... --external-id ... --allow-session-tags` writes it.
        let policy = super::trust_policy::chained_role_policy_json(
            &format!(
                "arn:aws:iam::{}:role/{DEMO_ROLE}",
                crate::emulator::DEFAULT_ACCOUNT_ID
            ),
            Some(CHAIN_EXTERNAL_ID),
            true,
        );
        roles.push(crate::emulator::RoleConfig::new(CHAIN_ROLE, policy));
    }
    let emulator = Emulator::start(EmulatorConfig {
        signing_key: Some(key.clone()),
        roles,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let issuer = emulator.issuer_url().to_owned();
    let sts_url = emulator.sts_url();
    let role_arn: RoleArn = emulator
        .role_arn(DEMO_ROLE)
        .parse()
        .map_err(|e| format!("the emulator's role ARN: {e}"))?;
    let region: Region = REGION.parse().expect("a region");

    let dir = tempfile::Builder::new()
        .prefix("passport-demo-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let token_output = TokenOutput::Kubelet {
        dir: dir.path().join("serviceaccount"),
        file: "token".into(),
    };
    let token_file = token_output.path();
    std::fs::create_dir_all(dir.path().join("serviceaccount")).map_err(|e| e.to_string())?;
    let mut mint_request = MintRequest::new(&args.namespace, &args.service_account);
    mint_request.pod_name = Some(format!("{}-demo", args.service_account));
    let pod = mint_request.pod_name.clone().unwrap_or_default();
    // Write the first token now, so the sidecar's first exchange finds it.
    let first = mint::mint_token(&key, &issuer, &mint_request, std::time::SystemTime::now())
        .map_err(|e| e.to_string())?;
    token_output.write(&first).map_err(|e| e.to_string())?;
    let stop_rotation = CancellationToken::new();
    let rotation = {
        let (key, issuer, request, output, stop) = (
            key.clone(),
            issuer.clone(),
            mint_request.clone(),
            token_output.clone(),
            stop_rotation.clone(),
        );
        let every = args.rotate_every;
        tokio::spawn(async move {
            // `rotate` mints at once and then every period; the first token is already there.
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) =
                mint::rotate(&key, &issuer, &request, &output, every, stop.cancelled()).await
            {
                error!(error = %e, "token rotation stopped");
            }
        })
    };

    let auth_file = dir.path().join("auth-token");
    let auth_token = passport_core::auth::generate();
    passport_core::auth::write_token_file(&auth_file, &auth_token, 0o600)
        .map_err(|e| e.to_string())?;
    let refresh = RefreshSettings {
        role_arn: role_arn.clone(),
        session_name: SessionName::sanitize(&format!("{}.{pod}", args.namespace)),
        duration_seconds: args.duration_seconds,
        token_file: token_file.clone(),
        attempt_timeout: Duration::from_secs(10),
        chain: args
            .chain
            .then(|| -> Result<ChainSettings, String> {
                Ok(ChainSettings {
                    role_arn: emulator
                        .role_arn(CHAIN_ROLE)
                        .parse()
                        .map_err(|e| format!("the emulator's chained role ARN: {e}"))?,
                    session_name: SessionName::sanitize(&format!("{}.{pod}", args.namespace)),
                    duration_seconds: args.duration_seconds.min(MAX_CHAINED_SECONDS),
                    external_id: Some(ExternalId::Value(Secret::new(CHAIN_EXTERNAL_ID))),
                    tags: vec![("demo".into(), "passport".into())],
                    transitive_tag_keys: vec![],
                    policy: None,
                    policy_arns: vec![],
                })
            })
            .transpose()?,
    };
    let served_role = refresh.served_role().clone();
    let auth_token_value = auth_token.clone();
    let server = ServerSettings {
        listen: args.listen,
        admin_listen: Some("127.0.0.1:0".parse().expect("literal address")),
        auth_token,
        max_connections: 1024,
        header_read_timeout: Duration::from_secs(5),
        imds: Some(ImdsSettings::new(
            &served_role,
            &region,
            args.compat == Compat::Imds,
        )),
        legacy: LegacySettings {
            relative_uri_listen: (args.compat == Compat::RelativeUri)
                .then(|| "127.0.0.1:0".parse().expect("literal address")),
            ..Default::default()
        },
    };
    let sts = StsSettings {
        region: region.clone(),
        endpoint: Some(sts_url.clone()),
        connect_timeout: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(10),
    };
    let sidecar = Sidecar::bind_sts(refresh, server, &sts)
        .await
        .map_err(|e| e.to_string())?;
    let (listen, admin, relative) = (
        sidecar.local_addr(),
        sidecar.admin_addr().expect("admin listener"),
        sidecar.relative_uri_addr(),
    );
    let shared = sidecar.shared();
    let stop = CancellationToken::new();
    let running = tokio::spawn(sidecar.run(stop.clone(), Shutdown::PROMPT));
    if tokio::time::timeout(Duration::from_secs(30), shared.first_credentials())
        .await
        .is_err()
    {
        stop.cancel();
        let _ = running.await;
        return Err(format!(
            "no credentials from the emulator within 30 s: {}",
            String::from_utf8_lossy(&shared.snapshot.load().unavailable_body)
        ));
    }

    let creds_url = format!("http://{listen}{}", passport_core::server::container::PATH);
    let imds_url = format!("http://{listen}");
    println!("passport demo: the IRSA path on this machine, no AWS account needed\n");
    println!("  OIDC issuer   {issuer}  (/.well-known/openid-configuration, /keys)");
    if args.chain {
        println!(
            "  STS emulator  {sts_url}  (role {role_arn}, chained into {served_role} with an external id)"
        );
    } else {
        println!("  STS emulator  {sts_url}  (role {role_arn})");
    }
    println!(
        "  token         {}  (system:serviceaccount:{}:{}, rotated every {})",
        token_file.display(),
        args.namespace,
        args.service_account,
        humantime::format_duration(args.rotate_every)
    );
    println!("  passport      {creds_url}  (IMDS {imds_url}, admin http://{admin}/readyz)\n");
    println!(
        "In a second shell (compatibility level {}):\n",
        args.compat.name()
    );
    print!(
        "{}",
        crate::compat::env_lines(&crate::compat::EnvTarget {
            level: args.compat,
            listen,
            token_file: &auth_file,
            relative_uri_listen: relative,
            imds: true,
        })
    );
    // No redirect on a workstation: the unauthenticated listener's loopback port, as
    // FULL_URI without a token, is what this machine can show (Go v1 v1.8.13-v1.15.40
    // clients use exactly that).
    let relative_url =
        relative.map(|r| format!("http://{r}{}", passport_core::server::container::PATH));
    if let Some(url) = &relative_url {
        println!(
            "# without the redirect (no root needed), the same listener as FULL_URI, no token:"
        );
        println!(
            "#   unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; export AWS_CONTAINER_CREDENTIALS_FULL_URI={url}"
        );
    }
    println!("export AWS_ENDPOINT_URL_STS={sts_url}");
    println!("export AWS_REGION={REGION}");
    println!("export AWS_DEFAULT_REGION={REGION}");
    println!("aws sts get-caller-identity   # the emulator verifies the SigV4 signature\n");

    // The report checks what an application at this level would get.
    let level = args.compat;
    let token_value = auth_token_value.expose().to_owned();
    let env = |k: &str| -> Option<String> {
        if CONTAINER_VARIABLES.contains(&k) {
            return match (level, k) {
                (Compat::Modern | Compat::TokenEnv, "AWS_CONTAINER_CREDENTIALS_FULL_URI") => {
                    Some(creds_url.clone())
                }
                (Compat::Modern | Compat::TokenEnv, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") => {
                    Some(auth_file.display().to_string())
                }
                (Compat::TokenEnv, "AWS_CONTAINER_AUTHORIZATION_TOKEN") => {
                    Some(token_value.clone())
                }
                (Compat::RelativeUri, "AWS_CONTAINER_CREDENTIALS_FULL_URI") => relative_url.clone(),
                _ => None,
            };
        }
        match k {
            "AWS_WEB_IDENTITY_TOKEN_FILE" => Some(token_file.display().to_string()),
            "AWS_ROLE_ARN" => Some(role_arn.to_string()),
            "AWS_REGION" | "AWS_DEFAULT_REGION" => Some(REGION.into()),
            "AWS_EC2_METADATA_SERVICE_ENDPOINT" => Some(imds_url.clone()),
            "AWS_ENDPOINT_URL_STS" => Some(sts_url.clone()),
            _ => None,
        }
    };
    let check_args = super::check::CheckArgs {
        json: false,
        trust_policy: None,
        sts_endpoint: None,
        no_identity: false,
        wait: None,
    };
    let report = super::check::run(
        &check_args,
        &super::check::Inputs {
            env: &env,
            now: std::time::SystemTime::now(),
        },
    )
    .await;
    println!("Validation report\n");
    print!("{}", report.human());
    println!("\nServing until Ctrl-C.");

    signals.wait().await;
    stop.cancel();
    let _ = running.await;
    stop_rotation.cancel();
    let _ = rotation.await;
    // No graceful wait: the demo's own clients are the emulator's only callers.
    drop(emulator);
    Ok(())
}
