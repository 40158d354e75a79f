//! The client auth token: generated at start, written for the application, compared on
//! every credentials request.
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
