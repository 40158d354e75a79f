//! The serving certificate, reloaded when its files change.
//!
//! Every TLS handshake stats the certificate and key files (following symlinks, as a
//! mounted Secret's `..data` swap needs); when the modification time, size or inode of
//! either changed, the pair is read again. A pair that does not load (half written, key
//! not matching the certificate) is logged and the previous one kept, so a rotation in
//! progress never takes the webhook down.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// (mtime seconds, mtime nanoseconds, size, inode) of both files.
type Stamp = [(i64, i64, u64, u64); 2];

#[derive(Debug)]
pub struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<(Option<Stamp>, Arc<CertifiedKey>)>,
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Load a certificate chain and its key.
pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no PEM certificate", cert.display()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, der, provider)
        .map_err(|e| format!("{} with {}: {e}", cert.display(), key.display()))
}

fn stamp(cert: &Path, key: &Path) -> Option<Stamp> {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec(), m.size(), m.ino()))
    };
    Some([one(cert)?, one(key)?])
}

impl Reloading {
    /// Load the pair now (an error here is a startup error).
    pub fn new(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let stamp = stamp(&cert, &key);
        let loaded = load(&cert, &key, &provider)?;
        Ok(Self {
            cert,
            key,
            provider,
            state: Mutex::new((stamp, Arc::new(loaded))),
        })
    }

    /// The current pair, reloaded first if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let now = stamp(&self.cert, &self.key);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_some() && now != state.0 {
            state.0 = now;
            match load(&self.cert, &self.key, &self.provider) {
                Ok(k) => {
                    tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
                    state.1 = Arc::new(k);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "serving certificate changed but does not load; keeping the previous one")
                }
            }
        }
        state.1.clone()
    }

    /// A server config that asks this resolver on every handshake.
    pub fn server_config(self: Arc<Self>) -> Result<rustls::ServerConfig, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
