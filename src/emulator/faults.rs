//! Fault injection for the STS emulator.
//!
//! Faults apply to `AssumeRoleWithWebIdentity` only (the call the sidecar makes), in this
//! order: added latency, then the rate limit (`max_rps`, answered with `Throttling`), then
//! the script (a queue of error codes returned by the next calls, one each), then the random
//! `error_rate`. Settable at start and at run time:
//!
//! * `GET /_passport/faults` returns the current settings as JSON;
//! * `POST /_passport/faults` with a JSON body replaces them (missing fields take defaults);
//! * `DELETE /_passport/faults` clears them.
//!
//! ```json
//! {"error_rate": 0.2, "error_code": "IDPCommunicationError",
//!  "script": ["Throttling", "InternalFailure"], "latency_ms": 250, "max_rps": 5}
//! ```

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability (0.0..=1.0) that a call fails with `error_code`.
    pub error_rate: f64,
    /// The code random failures use; default `InternalFailure`.
    pub error_code: Option<String>,
    /// Error codes returned by the next calls, in order, one per call.
    pub script: VecDeque<String>,
    /// Added to every call before anything else.
    pub latency_ms: u64,
    /// Calls beyond this many per second get `Throttling`.
    pub max_rps: Option<u32>,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "error_rate must be between 0 and 1, not {}",
                self.error_rate
            ));
        }
        if self.max_rps == Some(0) {
            return Err("max_rps must be at least 1".into());
        }
        Ok(())
    }
}

/// The error a fault produces: status, code and the message real STS uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl StsError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// `Sender` for 4xx, `Receiver` for 5xx, as in real STS error bodies.
    pub fn error_type(&self) -> &'static str {
        if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        }
    }

    /// The status and message STS uses for `code`, for injected faults.
    pub fn for_code(code: &str) -> Self {
        let (status, message) = match code {
            "Throttling" => (400, "Rate exceeded"),
            "IDPCommunicationError" => (
                400,
                "Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements",
            ),
            "InvalidIdentityToken" => (400, "Incorrect token audience"),
            "ExpiredTokenException" => (400, "Token expired"),
            "IDPRejectedClaim" => (403, "The identity provider rejected the claim"),
            "AccessDenied" => (
                403,
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            ),
            "RegionDisabledException" => (
                403,
                "STS is not activated in this region for account. Your account administrator can activate STS in this region using the IAM Console.",
            ),
            "MalformedPolicyDocument" => (400, "The policy is not in the valid JSON format."),
            "PackedPolicyTooLarge" => (400, "Packed policy consumes too much of the session"),
            "ValidationError" => (400, "1 validation error detected"),
            "InternalFailure" | "InternalError" => (500, "An internal error occurred. Try again."),
            "ServiceUnavailable" => (503, "Service is unavailable. Try again."),
            _ => (400, "Injected fault"),
        };
        Self::new(status, code, message)
    }
}

#[derive(Debug)]
pub(crate) struct FaultState {
    pub faults: Faults,
    window_start: Instant,
    window_count: u32,
}

impl FaultState {
    pub fn new(faults: Faults) -> Self {
        Self {
            faults,
            window_start: Instant::now(),
            window_count: 0,
        }
    }

    pub fn set(&mut self, faults: Faults) {
        *self = Self::new(faults);
    }

    /// Decide the fault for one call (after latency). `None`: proceed normally.
    pub fn next_fault(&mut self) -> Option<StsError> {
        if let Some(max) = self.faults.max_rps {
            let now = Instant::now();
            if now.duration_since(self.window_start).as_secs() >= 1 {
                self.window_start = now;
                self.window_count = 0;
            }
            self.window_count += 1;
            if self.window_count > max {
                return Some(StsError::for_code("Throttling"));
            }
        }
        if let Some(code) = self.faults.script.pop_front() {
            return Some(StsError::for_code(&code));
        }
        if self.faults.error_rate > 0.0 && rand::random_bool(self.faults.error_rate) {
            let code = self
                .faults
                .error_code
                .as_deref()
                .unwrap_or("InternalFailure");
            return Some(StsError::for_code(code));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_then_rate() {
        let mut s = FaultState::new(Faults {
            script: ["Throttling".to_owned(), "InternalFailure".to_owned()].into(),
            ..Default::default()
        });
        assert_eq!(s.next_fault().unwrap().code, "Throttling");
        let e = s.next_fault().unwrap();
        assert_eq!((e.status, e.error_type()), (500, "Receiver"));
        assert_eq!(s.next_fault(), None);
        s.set(Faults {
            error_rate: 1.0,
            error_code: Some("IDPCommunicationError".into()),
            ..Default::default()
        });
        assert_eq!(s.next_fault().unwrap().code, "IDPCommunicationError");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_throttles_within_a_second() {
        let mut s = FaultState::new(Faults {
            max_rps: Some(2),
            ..Default::default()
        });
        assert!(s.next_fault().is_none());
        assert!(s.next_fault().is_none());
        assert_eq!(s.next_fault().unwrap().code, "Throttling");
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        assert!(s.next_fault().is_none());
    }

    #[test]
    fn json_shape_and_validation() {
        let f: Faults =
            serde_json::from_str(r#"{"script":["Throttling"],"latency_ms":5}"#).unwrap();
        assert_eq!(f.script.len(), 1);
        assert_eq!(f.latency_ms, 5);
        assert!(serde_json::from_str::<Faults>(r#"{"nope":1}"#).is_err());
        assert!(
            Faults {
                error_rate: 2.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
