//! passport's command line and tools, around the sidecar core.
//!
//! The sidecar itself (token → STS → refresher → snapshot → server) is the
//! [`passport_core`] crate, which depends on nothing here. This crate adds the commands
//! that run it (`serve`, `exec`) and the tools around it: the STS emulator and OIDC issuer,
//! the validator (`check`), `trust-policy`, `inject`, the demo, the load generator and the
//! fleet simulation.
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command tree, assembled from the commands' own `Args` |
//! | [`commands`] | one module per subcommand: its flags, their validation, its `main` |
//! | [`args`] | `ConfigErrors`, exit statuses, the shared value parsers (a leaf) |
//! | [`env`] | environment variable names (a leaf) |
//! | [`compat`] | compatibility levels for older SDKs, and the environment lines of each |
//! | [`trust_policy`] | the IAM trust-policy evaluator `check`, `trust-policy` and the emulator share |
//! | [`emulator`] | local OIDC issuer + STS emulator; never on the serving path |
//! | [`logging`] | tracing setup; the AWS SDK held at INFO so it cannot log secrets |
#![forbid(unsafe_code)]

pub mod args;
pub mod cli;
pub mod commands;
pub mod compat;
pub mod emulator;
pub mod env;
pub mod logging;
pub mod trust_policy;
