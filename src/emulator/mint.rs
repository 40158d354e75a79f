//! Minting projected-style service-account tokens and writing them like the kubelet does.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::emulator::issuer::SigningKey;
use passport_core::fs::write_atomic;

pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";

/// What to put in a token. `MintRequest::new(ns, sa)` fills the rest with defaults.
#[derive(Debug, Clone)]
pub struct MintRequest {
    pub namespace: String,
    pub service_account: String,
    pub audiences: Vec<String>,
    /// `exp - iat`; default one hour.
    pub lifetime: Duration,
    /// `iat` and `nbf`; `None` = now. Set it in the past to mint expired tokens.
    pub issued_at: Option<SystemTime>,
    /// Override `iss` (default: the issuer doing the minting).
    pub issuer: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub service_account_uid: Option<String>,
    /// Override `sub` (default `system:serviceaccount:NS:SA`).
    pub subject: Option<String>,
}

impl MintRequest {
    pub fn new(namespace: impl Into<String>, service_account: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            service_account: service_account.into(),
            audiences: vec![DEFAULT_AUDIENCE.to_owned()],
            lifetime: Duration::from_secs(3600),
            issued_at: None,
            issuer: None,
            pod_name: None,
            pod_uid: None,
            service_account_uid: None,
            subject: None,
        }
    }

    pub fn subject(&self) -> String {
        self.subject.clone().unwrap_or_else(|| {
            format!(
                "system:serviceaccount:{}:{}",
                self.namespace, self.service_account
            )
        })
    }

    /// The claims of the token, as the API server would write them.
    pub fn claims(&self, issuer: &str, now: SystemTime) -> Value {
        let iat = self.issued_at.unwrap_or(now);
        let iat = iat
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let exp = iat + self.lifetime.as_secs();
        let pod_name = self
            .pod_name
            .clone()
            .unwrap_or_else(|| format!("{}-0", self.service_account));
        let pod_uid = self
            .pod_uid
            .clone()
            .unwrap_or_else(|| stable_uid(&["pod", &self.namespace, &pod_name]));
        let sa_uid = self
            .service_account_uid
            .clone()
            .unwrap_or_else(|| stable_uid(&["sa", &self.namespace, &self.service_account]));
        json!({
            "aud": self.audiences,
            "exp": exp,
            "iat": iat,
            "nbf": iat,
            "iss": self.issuer.as_deref().unwrap_or(issuer),
            "sub": self.subject(),
            "kubernetes.io": {
                "namespace": self.namespace,
                "pod": {"name": pod_name, "uid": pod_uid},
                "serviceaccount": {"name": self.service_account, "uid": sa_uid}
            }
        })
    }
}

/// A UUID-shaped id derived from the inputs, so re-minted tokens keep the same uids.
fn stable_uid(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let h = hex::encode(Sha256::digest(parts.join("/").as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Mint a token signed by `key` for `issuer`.
pub fn mint_token(
    key: &SigningKey,
    issuer: &str,
    request: &MintRequest,
    now: SystemTime,
) -> Result<String, MintError> {
    Ok(key.sign(&request.claims(issuer, now))?)
}

/// Write `contents` the way the kubelet updates a projected volume:
/// `DIR/..<timestamp>/FILE`, then swap the `DIR/..data` symlink atomically, keep
/// `DIR/FILE -> ..data/FILE`, and remove the previous timestamped directory.
#[cfg(unix)]
pub fn write_kubelet_layout(dir: &Path, file: &str, contents: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::symlink;
    std::fs::create_dir_all(dir)?;
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let version = format!(
        "..{}_{:09}_{}",
        stamp.as_secs(),
        stamp.subsec_nanos(),
        rand::random::<u16>()
    );
    let vdir = dir.join(&version);
    std::fs::create_dir(&vdir)?;
    write_atomic(&vdir.join(file), contents, 0o644)?;
    let previous = std::fs::read_link(dir.join("..data")).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&version, &tmp_link)?;
    std::fs::rename(&tmp_link, dir.join("..data"))?;
    let user_link = dir.join(file);
    if std::fs::symlink_metadata(&user_link).is_err() {
        symlink(format!("..data/{file}"), &user_link)?;
    }
    if let Some(prev) = previous
        && prev != Path::new(&version)
    {
        let _ = std::fs::remove_dir_all(dir.join(prev));
    }
    Ok(())
}

/// Where and how `write_token` puts the token.
#[derive(Debug, Clone)]
pub enum TokenOutput {
    /// A plain file replaced atomically.
    File(PathBuf),
    /// The kubelet's `..data` symlink layout: `dir/file -> ..data/file`.
    #[cfg(unix)]
    Kubelet { dir: PathBuf, file: String },
}

impl TokenOutput {
    /// The path a reader should open.
    pub fn path(&self) -> PathBuf {
        match self {
            TokenOutput::File(p) => p.clone(),
            #[cfg(unix)]
            TokenOutput::Kubelet { dir, file } => dir.join(file),
        }
    }

    pub fn write(&self, token: &str) -> Result<(), MintError> {
        let result = match self {
            TokenOutput::File(p) => write_atomic(p, token.as_bytes(), 0o644),
            #[cfg(unix)]
            TokenOutput::Kubelet { dir, file } => write_kubelet_layout(dir, file, token.as_bytes()),
        };
        result.map_err(|source| MintError::Write {
            path: self.path(),
            source,
        })
    }
}

/// Mint and write a token now, then every `every` until `stop` resolves.
pub async fn rotate(
    key: &SigningKey,
    issuer: &str,
    request: &MintRequest,
    output: &TokenOutput,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), MintError> {
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = ticker.tick() => {
                let token = mint_token(key, issuer, request, SystemTime::now())?;
                output.write(&token)?;
                tracing::info!(path = %output.path().display(), "token rotated");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_have_the_projected_shape() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut req = MintRequest::new("ns", "sa");
        req.lifetime = Duration::from_secs(600);
        let c = req.claims("http://127.0.0.1:1", now);
        assert_eq!(c["iss"], "http://127.0.0.1:1");
        assert_eq!(c["sub"], "system:serviceaccount:ns:sa");
        assert_eq!(c["aud"], json!(["sts.amazonaws.com"]));
        assert_eq!(c["iat"], 1_700_000_000u64);
        assert_eq!(c["nbf"], 1_700_000_000u64);
        assert_eq!(c["exp"], 1_700_000_600u64);
        assert_eq!(c["kubernetes.io"]["namespace"], "ns");
        assert_eq!(c["kubernetes.io"]["serviceaccount"]["name"], "sa");
        assert_eq!(c["kubernetes.io"]["pod"]["name"], "sa-0");
        assert_eq!(
            c["kubernetes.io"]["serviceaccount"]["uid"]
                .as_str()
                .unwrap()
                .len(),
            36
        );
        // Stable across mints.
        assert_eq!(req.claims("x", now)["kubernetes.io"], c["kubernetes.io"]);
    }

    #[cfg(unix)]
    #[test]
    fn kubelet_layout_swaps_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let out = TokenOutput::Kubelet {
            dir: dir.path().to_owned(),
            file: "token".into(),
        };
        out.write("first").unwrap();
        assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "first");
        out.write("second").unwrap();
        assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "second");
        // token, ..data, one version dir.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
        assert!(
            std::fs::symlink_metadata(dir.path().join("token"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rotate_rewrites_until_stopped() {
        let key = SigningKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = TokenOutput::File(dir.path().join("token"));
        let req = MintRequest::new("ns", "sa");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let path = out.path();
        let watcher = async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let first = std::fs::read_to_string(&path).unwrap();
            tokio::time::sleep(Duration::from_secs(61)).await;
            let second = std::fs::read_to_string(&path).unwrap();
            tx.send(()).unwrap();
            (first, second)
        };
        let (res, (first, second)) = tokio::join!(
            rotate(
                &key,
                "http://i",
                &req,
                &out,
                Duration::from_secs(60),
                async {
                    rx.await.ok();
                }
            ),
            watcher
        );
        res.unwrap();
        assert_eq!(first.split('.').count(), 3);
        assert_eq!(second.split('.').count(), 3);
    }
}
