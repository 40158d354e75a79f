//! The client auth token: generated at start and written for the application, or shared
//! (read from a Secret someone else provisioned, re-read when it rotates); compared on every
//! credentials request.
//!
//! SDKs send the file's content verbatim as `Authorization` (no `Bearer`), and botocore, Go
//! and Rust reject a token with a trailing newline, so the file holds exactly 64 hex chars.
//! It is written to a temp file in the same directory and renamed over the target, so a
//! reader never sees a half-written token.

use std::io;
use std::path::Path;

use rand::RngExt;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// 32 random bytes from the OS-seeded CSPRNG, hex-encoded.
pub fn generate() -> Secret {
    let bytes: [u8; 32] = rand::rng().random();
    Secret::new(hex::encode(bytes))
}

/// Write `token` to `path` atomically with exactly the permission bits `mode`.
pub fn write_token_file(path: &Path, token: &Secret, mode: u32) -> io::Result<()> {
    crate::fs::write_atomic(path, token.expose().as_bytes(), mode)
}

/// Compare a presented `Authorization` value with the expected token in constant time
/// (for equal lengths; the length of a 64-char token is no secret).
pub fn matches(presented: &[u8], expected: &Secret) -> bool {
    presented.ct_eq(expected.expose().as_bytes()).into()
}

/// The shortest shared token accepted (`--shared-auth-token-file`): 32 characters, e.g.
/// 16 random bytes in hex. Generated tokens are 64.
pub const MIN_SHARED_TOKEN_LEN: usize = 32;

/// Check a token someone else provisioned (a Kubernetes Secret key). The application sends
/// it verbatim as `Authorization`, and gets it from `AWS_CONTAINER_AUTHORIZATION_TOKEN`, so
/// it must be a header value every SDK sends unchanged: visible ASCII only, no spaces, no
/// trailing newline (botocore, Go and Rust reject one; `kubectl create secret --from-file`
/// of an `echo`ed file adds one). The error never contains the token.
pub fn validate_shared(bytes: &[u8]) -> Result<Secret, String> {
    match header_problem(bytes) {
        Some(HeaderProblem::TrailingNewline) => return Err("ends with a newline, which SDKs refuse to send (create the Secret with --from-literal, or strip it)".into()),
        Some(HeaderProblem::NotVisibleAscii(position)) => return Err(format!(
            "byte {position} is not a visible ASCII character: an HTTP header cannot carry it unchanged"
        )),
        None => {}
    }
    if bytes.len() < MIN_SHARED_TOKEN_LEN {
        return Err(format!(
            "{} characters, fewer than {MIN_SHARED_TOKEN_LEN}: too easy to guess",
            bytes.len()
        ));
    }
    // Visible ASCII is UTF-8.
    Ok(Secret::new(String::from_utf8_lossy(bytes).into_owned()))
}

/// Why an SDK would not send a token unchanged as `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// botocore, Go and Rust refuse to send a token ending in a newline.
    TrailingNewline,
    /// The 1-based position of a byte that is not visible ASCII.
    NotVisibleAscii(usize),
}

/// `None` when every SDK sends `bytes` unchanged as a header value.
pub fn header_problem(bytes: &[u8]) -> Option<HeaderProblem> {
    if bytes.ends_with(b"\n") || bytes.ends_with(b"\r") {
        return Some(HeaderProblem::TrailingNewline);
    }
    bytes
        .iter()
        .position(|b| !(0x21..0x7f).contains(b))
        .map(|i| HeaderProblem::NotVisibleAscii(i + 1))
}

/// Read and check a shared token file.
pub fn read_shared(path: &Path) -> Result<Secret, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    validate_shared(&bytes)
}

/// The token the container endpoint compares against: fixed for a generated token,
/// swapped when a shared token file changes (the kubelet's `..data` swap).
#[derive(Debug)]
pub struct AuthToken(arc_swap::ArcSwap<Secret>);

impl AuthToken {
    pub fn new(token: Secret) -> Self {
        Self(arc_swap::ArcSwap::from_pointee(token))
    }

    pub fn load(&self) -> arc_swap::Guard<std::sync::Arc<Secret>> {
        self.0.load()
    }

    /// Re-read `path`; swap in a valid changed token. `Ok(true)` when it changed. An
    /// invalid or unreadable file keeps the current token (the error says why).
    pub fn reload(&self, path: &Path) -> Result<bool, String> {
        let fresh = read_shared(path)?;
        if **self.0.load() == fresh {
            return Ok(false);
        }
        self.0.store(std::sync::Arc::new(fresh));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_64_hex_chars_and_differ() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn compares_exactly() {
        let token = Secret::new("abc123");
        assert!(matches(b"abc123", &token));
        assert!(!matches(b"abc124", &token));
        assert!(!matches(b"abc12", &token));
        assert!(!matches(b"abc123\n", &token));
        assert!(!matches(b"Bearer abc123", &token));
        assert!(!matches(b"", &token));
    }

    #[test]
    fn shared_tokens_are_checked_without_echoing_them() {
        let good = "A".repeat(MIN_SHARED_TOKEN_LEN);
        assert_eq!(validate_shared(good.as_bytes()).unwrap().expose(), good);
        let short = "s3cr3t-value";
        let err = validate_shared(short.as_bytes()).unwrap_err();
        assert!(
            err.contains("fewer than 32") && !err.contains(short),
            "{err}"
        );
        let with_newline = format!("{good}\n");
        assert!(
            validate_shared(with_newline.as_bytes())
                .unwrap_err()
                .contains("newline")
        );
        for bad in [
            format!("{good} x"),
            format!("{good}\u{e9}"),
            format!("{good}\t"),
        ] {
            let err = validate_shared(bad.as_bytes()).unwrap_err();
            assert!(
                err.contains("visible ASCII") && !err.contains(&good),
                "{err}"
            );
        }
    }

    #[test]
    fn shared_token_reload_swaps_only_valid_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        std::fs::write(&path, &a).unwrap();
        let token = AuthToken::new(read_shared(&path).unwrap());
        assert!(!token.reload(&path).unwrap());
        std::fs::write(&path, "short").unwrap();
        assert!(token.reload(&path).is_err());
        assert!(matches(a.as_bytes(), &token.load()));
        std::fs::write(&path, &b).unwrap();
        assert!(token.reload(&path).unwrap());
        assert!(matches(b.as_bytes(), &token.load()));
        assert!(!matches(a.as_bytes(), &token.load()));
        std::fs::remove_file(&path).unwrap();
        assert!(token.reload(&path).unwrap_err().contains("cannot be read"));
        assert!(matches(b.as_bytes(), &token.load()));
    }

    #[cfg(unix)]
    #[test]
    fn writes_atomically_without_newline_and_with_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth-token");
        std::fs::write(&path, "old").unwrap();
        let token = generate();
        write_token_file(&path, &token, 0o640).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), token.expose());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A missing directory is an error, not a panic.
        assert!(write_token_file(&dir.path().join("nope/x"), &token, 0o600).is_err());
    }
}
