//! Golden tests for `passport inject`, driving the real binary.
//!
//! Each `tests/fixtures/inject/<case>/` holds `input.yaml` and either `expected.yaml`, or
//! `expected.exit` plus `expected.stderr` (a line that must appear) for refusals; an optional
//! `args` file gives one flag per line. Every successful case is also run a second time on
//! its own output, which must come back byte for byte (idempotence).
//!
//! `PASSPORT_UPDATE_GOLDEN=1 cargo test --test inject` rewrites the `expected.yaml` files;
//! review the diff before committing.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inject")
}

fn inject(args: &[String], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_passport"))
        .arg("inject")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn passport");
    // A refused flag exits before reading stdin: a broken pipe here is expected.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn case_args(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("args"))
        .map(|text| {
            text.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.yaml").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn golden_cases() {
    let update = common::update_golden();
    let mut failures = Vec::new();
    let dirs = cases();
    assert!(dirs.len() >= 10, "fixtures missing: {dirs:?}");
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let args = case_args(&dir);
        let input = std::fs::read(dir.join("input.yaml")).unwrap();
        let out = inject(&args, &input);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();

        if let Ok(exit) = std::fs::read_to_string(dir.join("expected.exit")) {
            let exit: i32 = exit.trim().parse().unwrap();
            let needle = std::fs::read_to_string(dir.join("expected.stderr")).unwrap();
            if out.status.code() != Some(exit) {
                failures.push(format!("{name}: exit {:?}, want {exit}", out.status.code()));
            }
            if !stderr.contains(needle.trim()) {
                failures.push(format!("{name}: stderr lacks {needle:?}:\n{stderr}"));
            }
            if !stdout.is_empty() {
                failures.push(format!("{name}: a refusal must write nothing:\n{stdout}"));
            }
            continue;
        }
        if !out.status.success() {
            failures.push(format!("{name}: exit {:?}: {stderr}", out.status.code()));
            continue;
        }
        let expected_path = dir.join("expected.yaml");
        if update {
            std::fs::write(&expected_path, &stdout).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if stdout != expected {
            failures.push(format!(
                "{name}: output differs from expected.yaml\n--- got:\n{stdout}"
            ));
            continue;
        }
        let again = inject(&args, stdout.as_bytes());
        if !again.status.success() || again.stdout != stdout.as_bytes() {
            failures.push(format!(
                "{name}: not idempotent\n--- second run:\n{}",
                String::from_utf8_lossy(&again.stdout)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The kustomize base is a fixed point of `inject`: its sidecar, volumes, env and
/// annotations are exactly what the Rust constants produce. (`tests/k8s/check.sh` checks
/// every rendered overlay and example the same way, through `kubectl kustomize`.)
#[test]
fn k8s_base_matches_inject() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s/base/deployment.yaml");
    let base = std::fs::read(&path).unwrap();
    let out = inject(&[], &base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(base).unwrap(),
        "k8s/base/deployment.yaml drifted from `passport inject`: regenerate it with \
         `passport inject k8s/base/deployment.yaml`"
    );
}

#[test]
fn unreadable_file_and_bad_yaml_and_bad_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_passport"))
        .args(["inject", "/nonexistent/passport.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    let out = inject(&[], b"kind: Pod\nspec: [unclosed\n");
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("document 1"));
    let out = inject(&["--role-arn".into(), "nope".into()], b"");
    assert_eq!(out.status.code(), Some(64));
    let out = inject(&["--containers".into(), "passport".into()], b"");
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn unknown_container_names_warn_but_do_not_fail() {
    let input = std::fs::read(fixtures().join("pod/input.yaml")).unwrap();
    let out = inject(&["--containers=nope".into()], &input);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\""));
}

#[test]
fn a_container_role_for_no_container_warns() {
    let input = std::fs::read(fixtures().join("pod/input.yaml")).unwrap();
    let args: Vec<String> = [
        "--extra-role",
        "r=arn:aws:iam::111122223333:role/r",
        "--container-role",
        "nope=r",
    ]
    .map(String::from)
    .to_vec();
    let out = inject(&args, &input);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--container-role") && stderr.contains("\"nope\""),
        "{stderr}"
    );
}

#[test]
fn help_says_comments_may_be_lost() {
    let out = Command::new(env!("CARGO_BIN_EXE_passport"))
        .args(["inject", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("comments"), "{help}");
}

/// `--compat token-env` writes the shared Secret once, with a fresh random token, in the
/// workload's namespace; a second run (the Secret is in the input now) adds none.
#[test]
fn token_env_writes_a_random_secret_once() {
    let input = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: shop\nspec:\n  containers:\n  - name: app\n    image: x\n";
    let args = ["--compat".to_string(), "token-env".to_string()];
    let secret_token = |text: &str| -> String {
        let docs: Vec<&str> = text.split("\n---\n").collect();
        let secret = docs
            .iter()
            .find(|d| d.contains("kind: Secret"))
            .unwrap_or_else(|| panic!("no Secret in:\n{text}"));
        assert!(secret.contains("name: passport-auth-token"), "{secret}");
        assert!(secret.contains("namespace: shop"), "{secret}");
        let line = secret
            .lines()
            .find_map(|l| l.trim().strip_prefix("auth-token: "))
            .unwrap();
        let token = line.trim_matches('"').to_owned();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        token
    };
    let first = inject(&args, input);
    assert!(first.status.success());
    let first = String::from_utf8(first.stdout).unwrap();
    let second = String::from_utf8(inject(&args, input).stdout).unwrap();
    assert_ne!(
        secret_token(&first),
        secret_token(&second),
        "tokens must be random"
    );
    assert!(first.contains("PASSPORT_SHARED_AUTH_TOKEN_FILE"));
    assert!(first.contains("secretKeyRef"));
    let again = inject(&args, first.as_bytes());
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8(again.stdout).unwrap(),
        first,
        "idempotent"
    );
    assert_eq!(first.matches("kind: Secret").count(), 1);

    let no_secret = inject(
        &["--compat".into(), "token-env".into(), "--no-secret".into()],
        input,
    );
    assert!(!String::from_utf8_lossy(&no_secret.stdout).contains("kind: Secret"));
    let bad = inject(&["--no-secret".into()], input);
    assert_eq!(bad.status.code(), Some(64));
}

/// Flag values that once panicked or wrote invalid EnvVars: refused with exit 64, or
/// written as strings.
#[test]
fn hostile_flag_values_are_refused_or_quoted() {
    let pod = std::fs::read(fixtures().join("pod/input.yaml")).unwrap();
    for bad in [
        vec!["--image", "ghcr.io/x\u{1}y"],
        vec!["--image", "a b"],
        vec!["--image", ""],
        vec!["--region", "null"],
        vec!["--region", "123"],
        vec!["--cpu-limit", "lots"],
        vec!["--cpu-limit", "0"],
        vec!["--job-deadline", "0"],
        vec!["--compat", "imds", "--no-imds"],
        vec!["--extra-role", "Reports=arn:aws:iam::111122223333:role/r"],
        vec!["--extra-role", "default=arn:aws:iam::111122223333:role/r"],
        vec!["--extra-role", "r=arn:aws:iam::111122223333:role/r,chian"],
        vec![
            "--extra-role",
            "r=arn:aws:iam::111122223333:role/r",
            "--extra-role",
            "r=arn:aws:iam::111122223333:role/s",
        ],
        vec!["--container-role", "app=nobody"],
        vec![
            "--compat",
            "relative-uri",
            "--extra-role",
            "r=arn:aws:iam::111122223333:role/r",
            "--container-role",
            "app=r",
        ],
        vec![
            "--compat",
            "imds",
            "--extra-role",
            "r=arn:aws:iam::111122223333:role/r",
            "--container-role",
            "app=r",
        ],
    ] {
        let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
        let out = inject(&args, &pod);
        assert_eq!(out.status.code(), Some(64), "{bad:?}: {out:?}");
        assert!(out.stdout.is_empty());
    }
    // A YAML-looking image is a string, not a mapping or null.
    let out = inject(&["--image".into(), "null".into()], &pod);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("image: 'null'"));
}

/// What inject passes over or changes on its own is said on stderr.
#[test]
fn warnings_name_what_was_skipped_or_changed() {
    let stderr = |args: &[&str], input: &str| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = inject(&args, input.as_bytes());
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let rollout = "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: x}]\n";
    assert!(stderr(&[], rollout).contains(
        "Rollout r (argoproj.io/v1alpha1): has a pod template but is not a kind inject handles"
    ));
    let template = "apiVersion: v1\nkind: PodTemplate\nmetadata: {name: t}\ntemplate:\n  spec:\n    containers: [{name: a, image: x}]\n";
    assert!(stderr(&[], template).contains("PodTemplate t (v1)"));
    let windows = "apiVersion: v1\nkind: Pod\nmetadata: {name: w}\nspec:\n  nodeSelector: {kubernetes.io/os: windows}\n  containers: [{name: a, image: x}]\n";
    assert!(stderr(&[], windows).contains("Pod w: a Windows pod"));
    let job = std::fs::read_to_string(fixtures().join("job/input.yaml")).unwrap();
    assert!(stderr(&[], &job).contains("Job backup: no activeDeadlineSeconds"));
    assert!(!stderr(&["--job-deadline", "600"], &job).contains("activeDeadlineSeconds"));
    let cron = std::fs::read_to_string(fixtures().join("cronjob/input.yaml")).unwrap();
    assert!(stderr(&[], &cron).contains("CronJob nightly: no concurrencyPolicy"));
    let old = std::fs::read_to_string(fixtures().join("upgrade-from-0.1/input.yaml")).unwrap();
    let args = case_args(&fixtures().join("upgrade-from-0.1"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(stderr(&args, &old).contains("removed fsGroup: 65532"));
    let shadow = std::fs::read_to_string(fixtures().join("shadowing-removed/input.yaml")).unwrap();
    assert!(stderr(&[], &shadow).contains("removed AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE"));
}
