//! `passport wait-ready` and `passport check --wait` against a real `passport serve` that
//! never gets credentials (its STS exchange fails): wait-ready exits 69 naming passport's
//! reason, and check, after waiting, reports that reason from inside the "pod" instead of
//! hanging (what the check Job relies on).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{SERVE_WITHOUT_STS, free_port};

struct Serve {
    child: Child,
    admin: String,
    listen: String,
    token_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// passport with a web-identity "token" that is no JWT: /readyz stays 503 with the reason.
fn serve_without_credentials() -> Serve {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwt"), "not-a-jwt").unwrap();
    let token_file = dir.path().join("auth-token");
    let (listen, admin) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_passport"))
        .args(SERVE_WITHOUT_STS)
        .args(["--listen", &listen, "--admin-listen", &admin])
        .env_clear()
        .env("PASSPORT_AUTH_TOKEN_FILE", &token_file)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", dir.path().join("jwt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&admin).is_err() {
        assert!(Instant::now() < deadline, "passport serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Serve {
        child,
        admin,
        listen,
        token_file,
        _dir: dir,
    }
}

#[test]
fn wait_ready_gives_up_with_passports_reason() {
    let serve = serve_without_credentials();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_passport"))
        .args(["wait-ready", "--admin", &serve.admin, "--timeout", "1s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("not ready after 1s"), "{stderr}");
    assert!(
        stderr.contains("503") && stderr.contains("TokenNotJwt"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    let bad = Command::new(env!("CARGO_BIN_EXE_passport"))
        .args(["wait-ready", "--admin", "nowhere", "--timeout", "forever"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--admin") && stderr.contains("--timeout"),
        "{stderr}"
    );
}

#[test]
fn check_reports_why_passport_is_not_ready() {
    let serve = serve_without_credentials();
    let out = Command::new(env!("CARGO_BIN_EXE_passport"))
        .args(["check", "--no-identity", "--wait", "1s"])
        .env_clear()
        .env("AWS_REGION", "us-east-1")
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://{}/v1/credentials", serve.listen),
        )
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &serve.token_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let failing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('✗'))
        .collect();
    assert!(
        failing
            .iter()
            .any(|l| l.contains("answered 503") && l.contains("TokenNotJwt")),
        "{stdout}"
    );
}
