//! The web-identity token: reading the projected file and peeking at its claims.
//!
//! The kubelet rotates the token by writing a new directory and swapping the `..data`
//! symlink, so the file is opened anew for every exchange and never cached. SDKs do not trim
//! the file; we strip trailing whitespace, then check it is shaped like a JWT before STS sees
//! it, so a wrong path or an empty file gives a clear error instead of an opaque STS one.
//! Claims are decoded *without* verification, for logs and diagnostics only.

use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::secret::Secret;

/// STS refuses tokens over 20,000 characters; anything much larger is not a token.
pub const MAX_TOKEN_BYTES: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("web-identity token file {path} cannot be read: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("web-identity token file {path} is empty")]
    Empty { path: PathBuf },
    #[error(
        "web-identity token file {path} is {len} bytes, more than STS accepts ({MAX_TOKEN_BYTES})"
    )]
    TooLarge { path: PathBuf, len: u64 },
    #[error("web-identity token file {path} does not hold a JWT: {why}")]
    NotJwt { path: PathBuf, why: &'static str },
}

impl TokenError {
    /// A short stable name for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Unreadable { .. } => "TokenFileUnreadable",
            TokenError::Empty { .. } => "TokenFileEmpty",
            TokenError::TooLarge { .. } => "TokenFileTooLarge",
            TokenError::NotJwt { .. } => "TokenNotJwt",
        }
    }
}

/// Claims worth logging. None of them is secret (the signature is what makes a JWT a key).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Option<serde_json::Value>,
    /// Authorized party: the client ID STS checks when set.
    pub azp: Option<String>,
    /// Authentication methods (Amazon Cognito puts `authenticated`/`unauthenticated` here).
    #[serde(default, deserialize_with = "one_or_many_opt")]
    pub amr: Option<Vec<String>>,
    /// The source identity STS sets for the session.
    #[serde(rename = "https://aws.amazon.com/source_identity")]
    pub source_identity: Option<String>,
}

/// A token read from disk: the raw JWT (secret) and its unverified claims.
#[derive(Debug, Clone)]
pub struct WebIdentityToken {
    pub jwt: Secret,
    pub claims: Claims,
}

/// Read, trim and shape-check the token file. Blocking: call from `spawn_blocking` or
/// accept a tiny read on the runtime (the file is a few KiB on tmpfs).
pub fn read_token_file(path: &Path) -> Result<WebIdentityToken, TokenError> {
    let unreadable = |source| TokenError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(unreadable)?.len();
    // Trailing whitespace may push a valid token slightly over; allow a little slack.
    if len > (MAX_TOKEN_BYTES + 1024) as u64 {
        return Err(TokenError::TooLarge {
            path: path.to_owned(),
            len,
        });
    }
    let raw = Secret::new(std::fs::read_to_string(path).map_err(unreadable)?);
    let trimmed = raw.expose().trim_end();
    if trimmed.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_owned(),
        });
    }
    if trimmed.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge {
            path: path.to_owned(),
            len: trimmed.len() as u64,
        });
    }
    let claims = decode_claims(trimmed).map_err(|why| TokenError::NotJwt {
        path: path.to_owned(),
        why,
    })?;
    Ok(WebIdentityToken {
        jwt: Secret::new(trimmed),
        claims,
    })
}

/// Decode a compact JWS's claims without checking the signature.
pub fn decode_claims(jwt: &str) -> Result<Claims, &'static str> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected three dot-separated parts");
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err("a part is empty");
    }
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| "header is not base64url")?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| "header is not JSON")?;
    if header.get("alg").and_then(|a| a.as_str()).is_none() {
        return Err("header has no alg");
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "payload is not base64url")?;
    serde_json::from_slice(&payload).map_err(|_| "payload is not a JSON claims object")
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

fn one_or_many_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    one_or_many(d).map(Some)
}

/// Build an unsigned-looking but well-formed JWT for tests (signature is junk).
#[doc(hidden)]
pub fn test_jwt(claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"test"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> String {
        test_jwt(&json!({
            "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
            "sub": "system:serviceaccount:ns:sa",
            "aud": ["sts.amazonaws.com"],
            "exp": 2000000000, "iat": 1700000000,
            "kubernetes.io": {"namespace": "ns"}
        }))
    }

    #[test]
    fn reads_and_trims_trailing_whitespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{}\n\r\n ", sample())).unwrap();
        let token = read_token_file(&path).unwrap();
        assert_eq!(token.jwt.expose(), sample());
        assert_eq!(
            token.claims.sub.as_deref(),
            Some("system:serviceaccount:ns:sa")
        );
        assert_eq!(token.claims.aud, vec!["sts.amazonaws.com"]);
        assert_eq!(token.claims.exp, Some(2_000_000_000));
    }

    #[test]
    fn single_string_audience() {
        let jwt = test_jwt(&json!({"aud": "sts.amazonaws.com"}));
        assert_eq!(decode_claims(&jwt).unwrap().aud, vec!["sts.amazonaws.com"]);
    }

    #[test]
    fn missing_empty_and_non_jwt_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            read_token_file(&missing),
            Err(TokenError::Unreadable { .. })
        ));

        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        assert!(matches!(
            read_token_file(&empty),
            Err(TokenError::Empty { .. })
        ));

        for junk in [
            "hello",
            "a.b",
            "a.b.c.d",
            "!!!.e30.sig",
            "e30.e30.sig",
            "eyJhbGciOiJSUzI1NiJ9.bm90anNvbg.sig",
        ] {
            let p = dir.path().join("junk");
            std::fs::write(&p, junk).unwrap();
            let err = read_token_file(&p).unwrap_err();
            assert!(matches!(err, TokenError::NotJwt { .. }), "{junk}: {err}");
            // The error names the file but never echoes the content.
            assert!(!err.to_string().contains(junk) || junk.len() < 4);
        }

        let big = dir.path().join("big");
        std::fs::write(&big, "a".repeat(30_000)).unwrap();
        assert!(matches!(
            read_token_file(&big),
            Err(TokenError::TooLarge { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn follows_a_kubelet_style_symlink_swap() {
        use std::os::unix::fs::symlink;
        // Layout the kubelet uses for projected volumes:
        //   token -> ..data/token, ..data -> ..2026_01_01_00_00_00.123
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = test_jwt(&json!({"sub": "first"}));
        let second = test_jwt(&json!({"sub": "second"}));
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/token"), &first).unwrap();
        symlink("..v1", d.join("..data")).unwrap();
        symlink("..data/token", d.join("token")).unwrap();
        assert_eq!(
            read_token_file(&d.join("token")).unwrap().jwt.expose(),
            first
        );

        // Rotate: new dir, new symlink renamed over ..data atomically, old dir removed.
        std::fs::create_dir(d.join("..v2")).unwrap();
        std::fs::write(d.join("..v2/token"), &second).unwrap();
        symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        std::fs::remove_dir_all(d.join("..v1")).unwrap();
        let token = read_token_file(&d.join("token")).unwrap();
        assert_eq!(token.jwt.expose(), second);
        assert_eq!(token.claims.sub.as_deref(), Some("second"));
    }
}
