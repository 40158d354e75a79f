//! passport: a credential-vending sidecar for IRSA.
#![forbid(unsafe_code)]

pub mod clock;
pub mod credentials;
pub mod emulator;
pub mod metrics;
pub mod refresh;
pub mod secret;
pub mod sts;
pub mod token;
