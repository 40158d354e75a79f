//! passport: a credential-vending sidecar for IRSA.
//!
//! A pod proves who it is with a projected service-account JWT (its passport); passport
//! exchanges it with STS `AssumeRoleWithWebIdentity` and serves the temporary credentials
//! on localhost over the protocols every SDK already speaks.
//!
//! # Data flow
//!
//! ```text
//! token file ──► sts (AssumeRoleWithWebIdentity) ──► refresh ──► ArcSwap<Snapshot>
//!   ▲ re-read every attempt                          │ schedule, jitter,   │ load()
//!   │                                                │ backoff, readiness  ▼
//! kubelet rotates                                    ▼              server: container,
//!                                               metrics, logs       IMDS, admin
//! ```
//!
//! One writer (the refresher), many lock-free readers (the handlers). Handlers never call
//! STS and never parse the token: the snapshot carries the response bodies already rendered.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | clap flags (each with an env var) → validated configs, every error at once |
//! | [`token`] | reading the web-identity token file; unverified claims for logs |
//! | [`sts`] | the `CredentialSource` trait, the aws-sdk-sts client, error classification |
//! | [`refresh`] | when to refresh, backoff, the last good snapshot, readiness |
//! | [`credentials`] | `Credentials`, the served `Snapshot` with pre-rendered bodies |
//! | [`server`] | listeners, limits, Host check, drain; container, IMDS and admin handlers |
//! | [`auth`] | the client auth token: generation, atomic file, constant-time compare |
//! | [`sidecar`] | wiring refresher + server, the shutdown sequence |
//! | [`logging`] | tracing setup; the AWS SDK held at INFO so it cannot log secrets |
//! | [`metrics`] | Prometheus counters and histogram on atomics |
//! | [`clock`] | injected wall/monotonic time; `Expiration` formatting |
//! | [`secret`] | `Secret`: redacted in `Debug`, zeroed on drop |
//! | [`emulator`] | local OIDC issuer + STS emulator (`passport emulator`, `token mint`, `demo`); never on the serving path |
//! | [`trust`] | IRSA role trust policies: generating one, explaining a refusal |
//! | [`inject`] | `passport inject`: the Kubernetes pod-spec pieces, added to workload YAML |
//! | [`check`] | `passport check`: the identity validator that says why |
//! | [`commands`] | `serve`, `exec` and the other subcommands |
//! | [`loadtest`] | `passport loadtest`: a load generator for credential endpoints |
//! | [`fleet`] | `passport simulate-fleet`: the refresh schedule of a fleet, on virtual time |
#![forbid(unsafe_code)]

pub mod auth;
pub mod check;
pub mod clock;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod emulator;
pub mod fleet;
pub mod inject;
pub mod loadtest;
pub mod logging;
pub mod metrics;
pub mod refresh;
pub mod secret;
pub mod server;
pub mod sidecar;
pub mod sts;
pub mod token;
pub mod trust;
