//! The Rust SDK as a real client: `aws_config::ecs::EcsCredentialsProvider` against the built
//! passport binary, with `moto_server` as STS, then `aws_sdk_sts` GetCallerIdentity with the
//! credentials it got; the same for an `--extra-role` at `/v1/credentials/reports`.
//!
//! `EcsCredentialsProvider` reads `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` from the process environment (aws-config only
//! lets its own crate substitute the environment). So as not to mutate this process's
//! environment, the client runs in a child: this test binary re-executed with exactly those
//! two variables set and a marker variable, running this same test, which then acts as
//! the client (`ecs_client_process`) and prints what it received.
//!
//! Needs `moto_server` on PATH (`pip install -r tests/clients/requirements.txt`). Without it
//! the test is skipped with a message, except under `CI=true`, where it fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/app";
const SESSION: &str = "rust-test";
const ASSUMED_ROLE_ARN: &str = "arn:aws:sts::111122223333:assumed-role/app/rust-test";
const CHILD_MARKER: &str = "PASSPORT_RUST_CLIENT_CHILD";
/// An `--extra-role`, served at /v1/credentials/reports.
const EXTRA_ROLE_ARN: &str = "arn:aws:iam::111122223333:role/reports";
const EXTRA_ASSUMED_ROLE_ARN: &str = "arn:aws:sts::111122223333:assumed-role/reports/rust-test";

/// Kills what it holds if the test panics before a clean stop.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { name, child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited {status} before {what}:\n{}",
                    self.name,
                    self.log()
                );
            }
            if ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{}: no {what} after 30 s:\n{}", self.name, self.log());
    }

    /// SIGTERM and wait up to `within`; the exit status, or `None` if it had to be killed.
    fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `N` distinct free loopback ports (all held open together, so none repeats).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// A minimal HTTP/1.0 GET: status and body. Enough for loopback test servers.
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn fake_jwt() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.bm90LWEtcmVhbC1zaWduYXR1cmU",
        part(serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "test-key"})),
        part(serde_json::json!({
            "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/TESTCLUSTER",
            "sub": "system:serviceaccount:default:app",
            "aud": ["sts.amazonaws.com"],
            "iat": now,
            "exp": now + 3600,
        }))
    )
}

fn on_path(exe: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(exe).is_file()))
}

/// Run the client half in a child process whose environment is exactly what an application
/// given passport's two variables would have.
fn run_ecs_client(url: &str, auth_token_file: &Path) -> serde_json::Value {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ecs_provider_gets_exactly_what_sts_issued",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env(CHILD_MARKER, "1")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", url)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", auth_token_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client process failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("CREDENTIALS ").map(|(_, json)| json))
        .unwrap_or_else(|| panic!("no CREDENTIALS line from the client:\n{stdout}"));
    serde_json::from_str(line).unwrap()
}

/// The client half, in the child started by `run_ecs_client`.
async fn ecs_client_process() {
    use aws_config::ecs::EcsCredentialsProvider;
    let provider = EcsCredentialsProvider::builder().build();
    let creds = provider
        .credentials()
        .await
        .expect("credentials from passport");
    let expiry = creds
        .expiry()
        .expect("expiry")
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = serde_json::json!({
        "access_key_id": creds.access_key_id(),
        "secret_access_key": creds.secret_access_key(),
        "session_token": creds.session_token(),
        "expiry": expiry,
        "account_id": creds.account_id().map(|a| a.as_str()),
    });
    // libtest prints "test NAME ... " on the same line first.
    println!("\nCREDENTIALS {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_provider_gets_exactly_what_sts_issued() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        return ecs_client_process().await;
    }
    // No skipping: a client test that cannot run fails. ./test.sh installs moto.
    assert!(
        on_path("moto_server"),
        "moto_server is not on PATH: run ./test.sh, which installs it, or \
         pip install -r tests/clients/requirements.txt -c tests/clients/constraints.txt"
    );
    let dir = tempfile::tempdir().unwrap();

    let [moto_port, port, admin_port] = free_ports();
    let mut moto = Proc::spawn(
        "moto_server",
        Command::new("moto_server").args(["-H", "127.0.0.1", "-p", &moto_port.to_string()]),
        dir.path().join("moto.log"),
    );
    moto.wait_until("an answer", || {
        get(moto_port, "/moto-api/", &[]).is_ok_and(|(s, _)| s == 200)
    });
    let moto_url = format!("http://127.0.0.1:{moto_port}");

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, fake_jwt()).unwrap();
    let auth_token_file = dir.path().join("auth-token");
    let mut passport = Proc::spawn(
        "passport",
        Command::new(env!("CARGO_BIN_EXE_passport"))
            .arg("serve")
            .args(["--role-arn", ROLE_ARN, "--session-name", SESSION])
            .args(["--extra-role", &format!("reports={EXTRA_ROLE_ARN}")])
            .arg("--token-file")
            .arg(&token_file)
            .args(["--sts-endpoint", &moto_url])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .arg("--auth-token-file")
            .arg(&auth_token_file)
            .args(["--drain-delay", "0s"])
            .env_remove("AWS_ENDPOINT_URL_STS")
            .env_remove("AWS_ROLE_ARN")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE"),
        dir.path().join("passport.log"),
    );
    passport.wait_until("/readyz 200", || {
        get(admin_port, "/readyz", &[]).is_ok_and(|(s, _)| s == 200)
    });

    let auth = std::fs::read_to_string(&auth_token_file).unwrap();
    let (status, body) = get(port, "/v1/credentials", &[("Authorization", &auth)]).unwrap();
    assert_eq!(status, 200, "{body}");
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();

    let url = format!("http://127.0.0.1:{port}/v1/credentials");
    let got = tokio::task::spawn_blocking(move || run_ecs_client(&url, &auth_token_file))
        .await
        .unwrap();
    assert_eq!(got["access_key_id"], served["AccessKeyId"]);
    assert_eq!(got["secret_access_key"], served["SecretAccessKey"]);
    assert_eq!(got["session_token"], served["Token"]);
    assert_eq!(got["account_id"], served["AccountId"]);
    let expiration = humantime::parse_rfc3339(served["Expiration"].as_str().unwrap()).unwrap();
    assert_eq!(
        got["expiry"].as_u64().unwrap(),
        expiration
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );

    // STS itself says these are the keys it issued for the role.
    let identity = caller_identity(&moto_url, &got).await;
    assert_eq!(identity.arn(), Some(ASSUMED_ROLE_ARN));
    assert_eq!(identity.account(), Some("111122223333"));

    // The extra role, at its own path: other keys, the other role.
    let url = format!("http://127.0.0.1:{port}/v1/credentials/reports");
    let auth_file = dir.path().join("auth-token");
    let extra = tokio::task::spawn_blocking(move || run_ecs_client(&url, &auth_file))
        .await
        .unwrap();
    assert_ne!(extra["access_key_id"], got["access_key_id"]);
    let identity = caller_identity(&moto_url, &extra).await;
    assert_eq!(identity.arn(), Some(EXTRA_ASSUMED_ROLE_ARN));

    let status = passport.terminate(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "passport should exit 0 on SIGTERM, got {status:?}:\n{}",
        passport.log()
    );
    moto.terminate(Duration::from_secs(5));
}

/// GetCallerIdentity against moto, signed with credentials a client got from passport.
async fn caller_identity(
    moto_url: &str,
    got: &serde_json::Value,
) -> aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput {
    use aws_sdk_sts::config::{Credentials, Region};
    let credentials = Credentials::new(
        got["access_key_id"].as_str().unwrap(),
        got["secret_access_key"].as_str().unwrap(),
        got["session_token"].as_str().map(str::to_owned),
        None,
        "from-passport",
    );
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto_url)
        .credentials_provider(credentials)
        .build();
    aws_sdk_sts::Client::from_conf(config)
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity against moto")
}
