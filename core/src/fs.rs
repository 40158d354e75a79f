//! Atomic file writes with exact permissions: the auth token passport hands to the
//! application, and (in the tools) minted service-account tokens.
//!
//! A reader must never see a half-written file, so the contents go to a temp file in the
//! same directory (same filesystem, so the rename is atomic) and tempfile's `persist`
//! renames it over the target. The mode is set on the open file after creation: the
//! process umask narrows the mode given at creation, and a token file the application's
//! group cannot read is as broken as one it can write.

use std::io::{self, Write};
use std::path::Path;

/// Write `contents` to `path` atomically, with exactly the permission bits `mode`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    }
    let mut file = tempfile::Builder::new()
        .prefix(".passport-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_atomically_with_the_exact_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_atomic(&path, b"first", 0o640).unwrap();
        write_atomic(&path, b"second", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let err = write_atomic(Path::new("/nonexistent-dir/x/token"), b"x", 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
