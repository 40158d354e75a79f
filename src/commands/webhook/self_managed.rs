//! Self-managed certificates (`--self-managed-ca-secret`): no cert-manager needed.
//!
//! At start-up the webhook reads its CA from a Secret, or makes one (rcgen) and creates the
//! Secret; a replica that loses the creation race reads the winner's, so every replica
//! signs with one CA. It then makes its own serving certificate for `--dns-name`, writes
//! the pair to `--tls-cert-file`/`--tls-key-file` (served and reloaded from there like any
//! other pair), and sets the CA as the `caBundle` of every webhook in
//! `--webhook-configuration`, checking again every minute (a `helm upgrade` or a manual
//! edit that resets it is repaired). `/readyz` waits for the first successful patch.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use super::certs;

/// The CA's common name (its issuer name in what it signs).
pub const CA_NAME: &str = "passport-webhook-ca";
const CA_DAYS: i64 = 3650;
const SERVING_DAYS: i64 = 365;
const RECHECK: Duration = Duration::from_secs(60);
/// A long-running replica makes itself a new serving certificate this often, far inside
/// its 365 days; the TLS acceptor picks the new pair up from the files.
const RENEW_SERVING: Duration = Duration::from_secs(30 * 24 * 3600);

/// Where the CA lives and what to patch.
#[derive(Debug, Clone)]
pub struct Settings {
    pub secret_namespace: String,
    pub secret_name: String,
    pub webhook_configuration: String,
    pub dns_names: Vec<String>,
}

fn data(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// The shared CA: read, or made and stored.
pub async fn ca(client: &kube::Client, s: &Settings) -> Result<certs::Ca, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &s.secret_namespace);
    let place = format!("Secret {}/{}", s.secret_namespace, s.secret_name);
    let from = |secret: &Secret| -> Result<certs::Ca, String> {
        match (data(secret, "ca.crt"), data(secret, "ca.key")) {
            (Some(cert_pem), Some(key_pem)) => Ok(certs::Ca {
                common_name: CA_NAME.into(),
                cert_pem,
                key_pem,
            }),
            _ => Err(format!("{place} has no ca.crt and ca.key")),
        }
    };
    if let Some(existing) = api
        .get_opt(&s.secret_name)
        .await
        .map_err(|e| format!("reading {place}: {e}"))?
    {
        return from(&existing);
    }
    let made = certs::new_ca(CA_NAME, CA_DAYS)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(s.secret_name.clone()),
            namespace: Some(s.secret_namespace.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "passport-webhook".to_owned(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            (
                "ca.crt".to_owned(),
                ByteString(made.cert_pem.clone().into_bytes()),
            ),
            (
                "ca.key".to_owned(),
                ByteString(made.key_pem.clone().into_bytes()),
            ),
        ])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %place, "made the webhook CA");
            Ok(made)
        }
        // Another replica made it first: use that one.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api
                .get(&s.secret_name)
                .await
                .map_err(|e| format!("reading {place}: {e}"))?;
            from(&existing)
        }
        Err(e) => Err(format!("creating {place}: {e}")),
    }
}

/// Write `pem` to `path` atomically with exactly `mode` (the project's one atomic write).
fn write(path: &Path, pem: &str, mode: u32) -> Result<(), String> {
    passport_core::fs::write_atomic(path, pem.as_bytes(), mode)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Make this replica's serving certificate and write the pair.
pub fn write_serving(ca: &certs::Ca, s: &Settings, cert: &Path, key: &Path) -> Result<(), String> {
    let serving = certs::serving(ca, &s.dns_names, SERVING_DAYS)?;
    write(key, &serving.key_pem, 0o600)?;
    write(cert, &serving.cert_pem, 0o644)
}

/// Set the CA as every webhook's caBundle where it is not already; returns how many changed.
pub async fn patch_ca_bundle(
    client: &kube::Client,
    s: &Settings,
    ca: &certs::Ca,
) -> Result<usize, String> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let place = format!("MutatingWebhookConfiguration {}", s.webhook_configuration);
    let current = api
        .get(&s.webhook_configuration)
        .await
        .map_err(|e| format!("reading {place}: {e}"))?;
    let want = ca.cert_pem.as_bytes();
    let stale: Vec<String> = current
        .webhooks
        .iter()
        .flatten()
        .filter(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(want))
        .map(|w| w.name.clone())
        .collect();
    if stale.is_empty() {
        return Ok(0);
    }
    let bundle = base64::engine::general_purpose::STANDARD.encode(want);
    // Strategic merge: webhooks are merged by name, so only caBundle changes.
    let patch = serde_json::json!({
        "webhooks": stale.iter().map(|name| serde_json::json!({
            "name": name, "clientConfig": {"caBundle": bundle}
        })).collect::<Vec<_>>()
    });
    api.patch(
        &s.webhook_configuration,
        &PatchParams::default(),
        &Patch::Strategic(patch),
    )
    .await
    .map_err(|e| format!("patching the caBundle of {place}: {e}"))?;
    Ok(stale.len())
}

/// Keep the caBundle set (every minute) and the serving pair at `files` fresh (every 30
/// days); `ready` turns true after the first caBundle success.
pub async fn keep_ca_bundle(
    client: kube::Client,
    s: Settings,
    ca: certs::Ca,
    files: (std::path::PathBuf, std::path::PathBuf),
    ready: Arc<AtomicBool>,
) {
    let mut last_error: Option<String> = None;
    let mut serving_made = tokio::time::Instant::now();
    loop {
        if serving_made.elapsed() >= RENEW_SERVING {
            match write_serving(&ca, &s, &files.0, &files.1) {
                Ok(()) => {
                    tracing::info!("serving certificate renewed");
                    serving_made = tokio::time::Instant::now();
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot renew the serving certificate; retrying")
                }
            }
        }
        match patch_ca_bundle(&client, &s, &ca).await {
            Ok(changed) => {
                if changed > 0 {
                    tracing::info!(configuration = %s.webhook_configuration, webhooks = changed, "caBundle set");
                }
                ready.store(true, Ordering::Release);
                last_error = None;
            }
            Err(e) => {
                if last_error.as_ref() != Some(&e) {
                    tracing::error!(error = %e, "cannot set the webhook's caBundle; the API server will not trust this webhook");
                }
                last_error = Some(e);
            }
        }
        let wait = if ready.load(Ordering::Acquire) {
            RECHECK
        } else {
            Duration::from_secs(2)
        };
        tokio::time::sleep(wait).await;
    }
}
