//! The auth-token file is readable by an application of ANY UID without `fsGroup`, with the
//! settings `inject` gives passport: `passport serve` runs as 65532 (as in the pod) with the
//! sidecar env from `inject::sidecar_container`, writes the token into a directory laid
//! out as the kubelet lays out an emptyDir, and the token is read as another UID/GID with
//! `setpriv`:
//!
//! - emptyDir without fsGroup (root:root 0777), app 10001:10001, no extra groups;
//! - emptyDir with the pod's own fsGroup 2000 (root:2000, 2777, setgid), passport and the
//!   app in group 2000 (the kubelet adds fsGroup to every container's groups);
//! - control: the old 0640 mode without fsGroup is NOT readable by the app, so this test
//!   can tell the difference.
//!
//! Switching UIDs needs root (CI is): elsewhere the test says so on stderr and returns,
//! and under CI=true it fails.

mod common;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use passport::commands::inject::{self, Options};
use serde_norway::Value;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The sidecar's literal env values, as inject writes them.
fn sidecar_env() -> Vec<(String, String)> {
    inject::sidecar_container(&Options::default())
        .get("env")
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e.get("name")?.as_str()?.to_owned(),
                e.get("value")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// `passport serve` as 65532 (plus `groups`), its token in `dir`. STS points at a closed
/// port: the token is written at start, before any exchange.
fn serve(dir: &Path, groups: &str, mode_override: Option<&str>) -> Child {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65532", "--regid=65532"]);
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        cmd.arg(format!("--groups={groups}"));
    }
    cmd.arg("--")
        .arg(env!("CARGO_BIN_EXE_passport"))
        .args(common::SERVE_WITHOUT_STS)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "off"]);
    cmd.env_clear();
    for (k, v) in sidecar_env() {
        cmd.env(k, v);
    }
    let token_file = dir.join("auth-token");
    cmd.env("PASSPORT_AUTH_TOKEN_FILE", &token_file);
    cmd.env("AWS_WEB_IDENTITY_TOKEN_FILE", dir.join("no-such-jwt"));
    if let Some(mode) = mode_override {
        cmd.env("PASSPORT_AUTH_TOKEN_FILE_MODE", mode);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn setpriv passport serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !token_file.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("passport serve exited {status} before writing the token:\n{err}");
        }
        assert!(Instant::now() < deadline, "no token file after 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Can `uid:gid` (plus `groups`) read `file`?
fn can_read(file: &Path, uid: u32, gid: u32, groups: &str) -> bool {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        cmd.arg(format!("--groups={groups}"));
    }
    let out = cmd.args(["--", "cat"]).arg(file).output().unwrap();
    out.status.success() && out.stdout.len() >= 32
}

/// A directory as the kubelet makes an emptyDir: 0777 root:root, or with fsGroup
/// root:fsGroup and the setgid bit.
fn empty_dir(root: &Path, name: &str, fs_group: Option<u32>) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    chown(&dir, Some(0), fs_group.or(Some(0))).unwrap();
    let mode = if fs_group.is_some() { 0o2777 } else { 0o777 };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

#[test]
fn any_app_uid_reads_the_token_without_fs_group() {
    if !is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "needs root to switch UIDs (CI runs as root)"
        );
        eprintln!("SKIPPED token_file_access: needs root (setpriv to other UIDs)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // No fsGroup anywhere.
    let dir = empty_dir(tmp.path(), "plain", None);
    let mut child = serve(&dir, "", None);
    let token = dir.join("auth-token");
    let mode = std::fs::metadata(&token).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644, "inject's PASSPORT_AUTH_TOKEN_FILE_MODE");
    assert!(
        can_read(&token, 10001, 10001, ""),
        "app 10001 without fsGroup"
    );
    assert!(
        can_read(&token, 1000680000, 0, ""),
        "an OpenShift-style random UID"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // The pod already has its own fsGroup (2000): nothing changes for passport.
    let dir = empty_dir(tmp.path(), "fsgroup", Some(2000));
    let mut child = serve(&dir, "2000", None);
    let token = dir.join("auth-token");
    assert!(
        can_read(&token, 10001, 10001, "2000"),
        "app with the pod's fsGroup"
    );
    assert!(
        can_read(&token, 10002, 10002, ""),
        "another UID, not in fsGroup"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Control: the old 0640 without fsGroup is not readable by the app.
    let dir = empty_dir(tmp.path(), "old", None);
    let mut child = serve(&dir, "", Some("0640"));
    assert!(
        !can_read(&dir.join("auth-token"), 10001, 10001, ""),
        "0640 owned by 65532:65532 must not be readable by 10001: the check above would prove nothing"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
