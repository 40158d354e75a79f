//! `passport webhook`: a mutating admission webhook that adds the passport sidecar to pods
//! labelled `passport.dev/inject: "true"`, with the role from the ServiceAccount's (or the
//! pod's) `passport.dev/role-arn` annotation.
//!
//! | module | owns |
//! |---|---|
//! | [`review`] | AdmissionReview → decision (pure): opt-in, annotations, denials, the patch |
//! | [`patch`] | the element-wise JSON Patch between two documents |
//! | [`service_accounts`] | the ServiceAccount watch cache, with a GET on a miss |
//! | [`tls`] | the serving certificate, reloaded when its files change |
//! | [`server`] | HTTPS: `/mutate`, `/healthz`, `/readyz`, `/metrics` |
//!
//! The mutation is [`inject::inject_pod_template`], exactly what `passport inject` does to a
//! pod template, so the two cannot drift apart. It fails loudly: a pod that opted in but
//! whose role cannot be found, or whose annotations are wrong, is denied with a message
//! naming the ServiceAccount and the annotation; the chart registers the webhook with
//! `failurePolicy: Fail`, so a webhook that is down blocks opted-in pods rather than
//! letting them start without credentials.

pub mod certs;
pub mod diagnose;
pub mod patch;
pub mod review;
pub mod self_managed;
pub mod server;
pub mod service_accounts;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::args::{ConfigErrors, EXIT_UNAVAILABLE, EXIT_USAGE};
use crate::commands::inject;

/// Flags of `passport webhook`.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = "\
Serves POST /mutate (AdmissionReview v1, Pods on CREATE), /healthz, /readyz (once the \
ServiceAccount cache has synced) and /metrics over HTTPS.

A pod opts in with the label passport.dev/inject: \"true\". Its role is the annotation \
passport.dev/role-arn of the pod, else of its ServiceAccount. Optional, pod first, then \
ServiceAccount: passport.dev/chain-role-arn, passport.dev/compat (modern, token-env, \
relative-uri, imds). Pod only: passport.dev/skip-containers (containers that get no \
credentials env, comma-separated). An opted-in pod without a role, or with a bad \
annotation, or with hostNetwork, is denied with a message saying why.

Install it with the Helm chart (charts/passport, webhook.enabled=true).")]
pub struct WebhookArgs {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:9443", value_name = "ADDR")]
    pub listen: String,
    /// Serving certificate (PEM chain); re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM); re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// kubeconfig to reach the API server [default: the in-cluster configuration].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// passport image for the injected sidecar.
    #[arg(long, default_value = inject::DEFAULT_IMAGE)]
    pub image: String,
    /// AWS_REGION for the injected sidecars (required: a pod's role may come from a
    /// passport.dev annotation, for which no other webhook sets a region, and passport
    /// refuses to start without one).
    #[arg(long)]
    pub region: Option<String>,
    /// Self-managed certificates: the Secret (NAMESPACE/NAME) holding the webhook's CA, made
    /// if absent. The serving pair is then generated and written to --tls-cert-file and
    /// --tls-key-file, and the CA set as the caBundle of --webhook-configuration.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub self_managed_ca_secret: Option<String>,
    /// Self-managed certificates: the MutatingWebhookConfiguration whose caBundle to set.
    #[arg(long, value_name = "NAME")]
    pub webhook_configuration: Option<String>,
    /// Self-managed certificates: a name (or IP address) of the serving certificate, e.g.
    /// passport-webhook.passport-system.svc; repeatable.
    #[arg(long, value_name = "NAME")]
    pub dns_name: Vec<String>,
}

/// Validated flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub kubeconfig: Option<PathBuf>,
    pub base: inject::Options,
    pub self_managed: Option<self_managed::Settings>,
}

impl Config {
    pub fn from_args(args: &WebhookArgs) -> Result<Self, ConfigErrors> {
        let mut problems = ConfigErrors::default();
        let listen = problems.parse("--listen", &args.listen, |s| {
            s.parse::<SocketAddr>()
                .map_err(|_| "expected IP:PORT, e.g. 0.0.0.0:9443")
        });
        let self_managed = args.self_managed_ca_secret.is_some();
        let mut file = |flag: &str, path: &Option<PathBuf>| match path {
            None => {
                problems.push(format!("{flag}: required"));
                None
            }
            // Self-managed: written at start-up, into an existing directory.
            Some(p) if self_managed => {
                let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
                if dir.is_some_and(|d| !d.is_dir()) {
                    problems.push(format!(
                        "{flag} {}: its directory does not exist",
                        p.display()
                    ));
                    None
                } else {
                    Some(p.clone())
                }
            }
            Some(p) if !p.is_file() => {
                problems.push(format!("{flag} {}: not a readable file", p.display()));
                None
            }
            Some(p) => Some(p.clone()),
        };
        let cert = file("--tls-cert-file", &args.tls_cert_file);
        let key = file("--tls-key-file", &args.tls_key_file);
        let mut managed = None;
        if let Some(secret) = &args.self_managed_ca_secret {
            match secret.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                    managed = Some(self_managed::Settings {
                        secret_namespace: ns.into(),
                        secret_name: name.into(),
                        webhook_configuration: args
                            .webhook_configuration
                            .clone()
                            .unwrap_or_default(),
                        dns_names: args.dns_name.clone(),
                    });
                }
                _ => problems.push(format!(
                    "--self-managed-ca-secret {secret:?}: expected NAMESPACE/NAME"
                )),
            }
            if args
                .webhook_configuration
                .as_deref()
                .is_none_or(str::is_empty)
            {
                problems.push("--webhook-configuration: required with --self-managed-ca-secret");
            }
            if args.dns_name.iter().all(|n| n.trim().is_empty()) {
                problems.push("--dns-name: at least one with --self-managed-ca-secret");
            }
        }
        if let Some(k) = &args.kubeconfig
            && !k.is_file()
        {
            problems.push(format!("--kubeconfig {}: not a readable file", k.display()));
        }
        if let Err(why) = inject::image_reference(&args.image) {
            problems.push(format!("--image {:?}: {why}", args.image));
        }
        match &args.region {
            Some(region) => {
                problems.check(
                    "--region",
                    region,
                    region.parse::<passport_core::aws::Region>(),
                );
            }
            None => problems.push(
                "--region: required: the injected passport needs AWS_REGION for the regional STS endpoint, \
                 and nothing else sets it for a role from a passport.dev annotation",
            ),
        }
        if let (Some(c), Some(k), false) = (&cert, &key, self_managed)
            && let Err(e) = tls::load(c, k, &tls::provider())
        {
            problems.push(format!("--tls-cert-file/--tls-key-file: {e}"));
        }
        // Every `None` recorded a problem, so this returns the problems when any is missing.
        let (Some(listen), Some(cert), Some(key), true) = (listen, cert, key, problems.is_empty())
        else {
            return Err(problems);
        };
        Ok(Self {
            listen,
            cert,
            key,
            kubeconfig: args.kubeconfig.clone(),
            base: inject::Options {
                image: args.image.clone(),
                region: args.region.clone(),
                secret: false,
                ..Default::default()
            },
            self_managed: managed,
        })
    }
}

/// `passport webhook`.
pub fn main(args: &WebhookArgs) -> ExitCode {
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => return super::usage(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("passport webhook: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let signals = match super::Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("passport webhook: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let client = match service_accounts::Kube::client(config.kubeconfig.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid configuration (1 problem):\n  - {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut ca_bundle_ready = None;
    if let Some(settings) = &config.self_managed {
        let made = match self_managed::ca(&client, settings).await {
            Ok(ca) => {
                self_managed::write_serving(&ca, settings, &config.cert, &config.key).map(|()| ca)
            }
            Err(e) => Err(e),
        };
        let ca = match made {
            Ok(ca) => ca,
            Err(e) => {
                eprintln!("passport webhook: self-managed certificates: {e}");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
        };
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        ca_bundle_ready = Some(ready.clone());
        tokio::spawn(self_managed::keep_ca_bundle(
            client.clone(),
            settings.clone(),
            ca,
            (config.cert.clone(), config.key.clone()),
            ready,
        ));
    }
    let tls = match tls::Reloading::new(config.cert.clone(), config.key.clone(), tls::provider()) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("invalid configuration (1 problem):\n  - {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("passport webhook: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let mut state = server::State::new(
        config.base.clone(),
        Arc::new(service_accounts::Kube::start(client)),
    );
    state.ca_bundle_ready = ca_bundle_ready;
    let state = Arc::new(state);
    tracing::info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "passport webhook serving");
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        signals.wait().await;
        trigger.cancel();
    });
    match server::serve(listener, tls, state, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("passport webhook: {e}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}
