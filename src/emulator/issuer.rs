//! The OIDC issuer: an RS256 signing key, its JWKS and discovery document.
//!
//! The key is generated with aws-lc-rs or loaded from a PKCS#8 (`PRIVATE KEY`) or PKCS#1
//! (`RSA PRIVATE KEY`) PEM file, so tokens survive restarts. The HTTP side (serving
//! `/.well-known/openid-configuration` and `/keys`) lives in `sts_server`, which shares the
//! emulator's port.

use std::io;
use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
    RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key file {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("signing key: {0}")]
    Invalid(String),
}

/// An RS256 signing key with a stable `kid` (derived from the public key).
pub struct SigningKey {
    kid: String,
    pem: Zeroizing<String>,
    encoding: EncodingKey,
    n: String,
    e: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit RSA key.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| KeyError::Invalid("RSA key generation failed".into()))?;
        let der = pair
            .as_der()
            .map_err(|_| KeyError::Invalid("PKCS#8 encoding failed".into()))?;
        let pem = Zeroizing::new(pem_encode("PRIVATE KEY", der.as_ref()));
        Self::from_pem(&pem)
    }

    /// Parse a PKCS#8 or PKCS#1 RSA private key in PEM.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_decode(pem)?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => KeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => KeyPair::from_der(&der),
            other => {
                return Err(KeyError::Invalid(format!(
                    "expected a PRIVATE KEY or RSA PRIVATE KEY PEM block, found {other}"
                )));
            }
        }
        .map_err(|e| KeyError::Invalid(format!("not a usable RSA private key: {e}")))?;
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let digest = Sha256::digest(format!("{n}.{e}").as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..16]);
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| KeyError::Invalid(format!("jsonwebtoken refused the key: {e}")))?;
        Ok(Self {
            kid,
            pem: Zeroizing::new(pem.to_owned()),
            encoding,
            n,
            e,
        })
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| KeyError::Io {
                path: path.display().to_string(),
                source,
            })?,
        );
        Self::from_pem(&pem)
    }

    /// Load `path` if it exists, else generate a key and save it there.
    pub fn load_or_generate(path: &Path) -> Result<Self, KeyError> {
        if path.exists() {
            Self::load(path)
        } else {
            let key = Self::generate()?;
            key.save(path)?;
            Ok(key)
        }
    }

    /// Write the private key as PKCS#8 PEM (mode 0600 on Unix), atomically.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        passport_core::fs::write_atomic(path, self.pem.as_bytes(), 0o600).map_err(|source| {
            KeyError::Io {
                path: path.display().to_string(),
                source,
            }
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty` RSA, `alg` RS256, `use` sig).
    pub fn jwk(&self) -> Jwk {
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::RS256),
                key_id: Some(self.kid.clone()),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: self.n.clone(),
                e: self.e.clone(),
            }),
        }
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk()],
        }
    }

    /// Sign `claims` as a compact RS256 JWS with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}

/// The discovery document an EKS cluster's issuer serves.
pub fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/keys", issuer.trim_end_matches('/')),
        "authorization_endpoint": "urn:kubernetes:programmatic_authorization",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["sub", "iss"],
        "id_token_signing_alg_values_supported": ["RS256"]
    })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(pem: &str) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    let bad = |why: &str| KeyError::Invalid(format!("not a PEM file: {why}"));
    let start = pem
        .find("-----BEGIN ")
        .ok_or_else(|| bad("no BEGIN line"))?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or_else(|| bad("bad BEGIN line"))?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body.find(&end_marker).ok_or_else(|| bad("no END line"))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| bad("body is not base64"))?;
    Ok((label, Zeroizing::new(der)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn generate_save_load_roundtrip_and_verify() {
        let key = SigningKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        key.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = SigningKey::load(&path).unwrap();
        assert_eq!(loaded.kid(), key.kid());
        assert!(format!("{loaded:?}").contains(key.kid()));
        assert!(!format!("{loaded:?}").contains("PRIVATE"));

        let jwt = key
            .sign(&json!({"sub": "x", "exp": 4_000_000_000u64}))
            .unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let jwk = loaded.jwks().find(key.kid()).unwrap().clone();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let data =
            jsonwebtoken::decode::<Value>(&jwt, &decoding, &Validation::new(Algorithm::RS256))
                .unwrap();
        assert_eq!(data.claims["sub"], "x");

        let jwks = serde_json::to_value(key.jwks()).unwrap();
        let k = &jwks["keys"][0];
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["alg"], "RS256");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["e"], "AQAB");
        assert_eq!(k["kid"], key.kid());
    }

    #[test]
    fn rejects_junk() {
        assert!(SigningKey::from_pem("hello").is_err());
        assert!(
            SigningKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
        assert!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
    }

    #[test]
    fn discovery_points_at_keys() {
        // The issuer is served exactly as configured: it must equal the tokens' iss, and a
        // trailing slash is part of the provider's name in IAM.
        let d = discovery_document("http://127.0.0.1:9401/");
        assert_eq!(d["issuer"], "http://127.0.0.1:9401/");
        assert_eq!(d["jwks_uri"], "http://127.0.0.1:9401/keys");
        let d = discovery_document("http://127.0.0.1:9401");
        assert_eq!(d["issuer"], "http://127.0.0.1:9401");
    }
}
