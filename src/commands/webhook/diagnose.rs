//! For `passport check` inside a pod: "the webhook did not mutate this pod" told apart
//! from the other failures.
//!
//! A pod the webhook mutated has passport's variables in its application containers. When
//! they are all missing, `check` asks whether the pod opted in: from its labels, as the
//! downward API writes them (`PASSPORT_POD_LABELS_FILE`, default `/etc/podinfo/labels`,
//! lines of `key="value"`). Label present, variables absent: the webhook did not mutate the
//! pod, a failure with what to look at. Labels not available: nothing is said (the
//! README's troubleshooting tells users to mount them).

use super::review::INJECT_LABEL;
use crate::commands::check::{Check, Section, Status};
use crate::compat::CONTAINER_VARIABLES;

/// Where the downward API's labels file is looked for when the variable does not say.
pub const DEFAULT_LABELS_FILE: &str = "/etc/podinfo/labels";

/// Whether a downward-API labels file sets the opt-in label to "true".
pub fn opted_in(labels: &str) -> bool {
    labels.lines().any(|line| {
        line.split_once('=')
            .is_some_and(|(k, v)| k.trim() == INJECT_LABEL && v.trim().trim_matches('"') == "true")
    })
}

/// The section, when there is something to say: `labels` is the labels file's content
/// (`None` when there is none).
pub fn section(env: &dyn Fn(&str) -> Option<String>, labels: Option<&str>) -> Option<Section> {
    let mutated = CONTAINER_VARIABLES.iter().any(|v| env(v).is_some())
        || env("AWS_EC2_METADATA_SERVICE_ENDPOINT").is_some();
    if mutated {
        return None;
    }
    let why = "pods are mutated only when they are created (recreate it after fixing); \
               check `kubectl get mutatingwebhookconfiguration passport-webhook` exists, that its \
               namespaceSelector includes this namespace, and that the label is on the pod template";
    let check = match labels {
        Some(labels) if opted_in(labels) => Check {
            status: Status::Fail,
            message: format!(
                "this pod has the label {INJECT_LABEL}=true but none of passport's variables: \
                 the passport webhook did not mutate it; {why}"
            ),
        },
        // Not opted in, or labels not available (no verdict, and no noise in reports of
        // pods that use IRSA directly).
        _ => return None,
    };
    Some(Section {
        name: "Admission webhook",
        checks: vec![check],
    })
}

/// The labels file's content, if there is one.
pub fn read_labels(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let path = env("PASSPORT_POD_LABELS_FILE").unwrap_or_else(|| DEFAULT_LABELS_FILE.into());
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_present_and_variables_absent_is_the_webhook_not_mutating() {
        let none = |_: &str| None;
        let labels = "app=\"web\"\npassport.dev/inject=\"true\"\n";
        let s = section(&none, Some(labels)).unwrap();
        assert_eq!(s.checks[0].status, Status::Fail);
        assert!(s.checks[0].message.contains("did not mutate"));
        // Not opted in: nothing to say about the webhook.
        assert!(section(&none, Some("app=\"web\"\npassport.dev/inject=\"false\"")).is_none());
        // Labels unknown: no verdict.
        assert!(section(&none, None).is_none());
        // Mutated: silent.
        let env = |k: &str| {
            (k == "AWS_CONTAINER_CREDENTIALS_FULL_URI").then(|| "http://127.0.0.1:9911/".into())
        };
        assert!(section(&env, Some(labels)).is_none());
    }
}
