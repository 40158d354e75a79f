//! passport-core: the sidecar itself, and nothing else.
//!
//! A pod proves who it is with a projected service-account JWT; the core exchanges it with
//! STS `AssumeRoleWithWebIdentity` and serves the temporary credentials on localhost over
//! the protocols every SDK already speaks. The command line, the emulator, the validator
//! and the load tools live in the `passport` crate and depend on this one, never the other
//! way round: `cargo tree -p passport-core` shows no clap, YAML, JWT-signing or
//! load-testing code.
//!
//! # How a credential flows through it
//!
//! ```text
//! token file ──► sts (AssumeRoleWithWebIdentity) ──► refresh ──► ArcSwap<Snapshot>
//!   ▲ re-read every attempt          schedule: when, │ backoff,  │ load()
//!   │                                 jitter, caps   │ readiness ▼
//! kubelet rotates                                    ▼      server: container,
//!                                               metrics      IMDS, admin
//! ```
//!
//! One writer (the refresher), many lock-free readers (the handlers). Handlers never call
//! STS and never parse the token: the snapshot carries the response bodies already rendered.
//!
//! | module | owns |
//! |---|---|
//! | [`aws`] | `RoleArn`, `Region`, `SessionName`: parsed once, valid by construction |
//! | [`token`] | reading the web-identity token file; unverified claims for logs |
//! | [`sts`] | the `CredentialSource` trait, the aws-sdk-sts client, error classification |
//! | [`chain`] | role chaining: a second hop (`sts:AssumeRole`) on top of the first, cached |
//! | [`schedule`] | when to refresh and how long to back off: pure, seeded |
//! | [`refresh`] | the refresher: drives the schedule, keeps the last good snapshot, readiness |
//! | [`credentials`] | `Credentials`, the served `Snapshot` with pre-rendered bodies |
//! | [`server`] | listeners, limits, Host check, drain; container, IMDS and admin handlers |
//! | [`auth`] | the client auth token: generation, atomic file, constant-time compare |
//! | [`sidecar`] | wiring refresher + server, the shutdown sequence |
//! | [`metrics`] | Prometheus counters and histogram on atomics |
//! | [`clock`] | injected wall/monotonic time; `Expiration` formatting |
//! | [`secret`] | `Secret`: redacted in `Debug`, zeroed on drop |
//! | [`fs`] | atomic file writes with exact permissions |
#![forbid(unsafe_code)]

pub mod auth;
pub mod aws;
pub mod chain;
pub mod clock;
pub mod credentials;
pub mod fs;
pub mod metrics;
pub mod refresh;
pub mod schedule;
pub mod secret;
pub mod server;
pub mod sidecar;
pub mod sts;
pub mod token;
