//! `passport check`: the IRSA identity validator, made to say *why* something is wrong.
//!
//! Five sections, each a list of ✓/!/✗ lines: the environment an SDK will read, the token
//! (decoded without verification), the role's trust policy (offline, optional), the
//! credentials endpoint as an SDK would call it, and the identity STS reports for the
//! credentials the application would get. `--json` prints the same report for machines;
//! the exit status is 0 only when nothing failed.
//!
//! With `--chain-role-arn` (and the other chain flags of `serve`), the chain's own sections
//! come after the trust policy: see [`chain`].

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde::Serialize;

use crate::compat::CONTAINER_VARIABLES;
use passport_core::auth::{HeaderProblem, header_problem};
use passport_core::secret::Secret;
use passport_core::token::{Claims, decode_claims};

/// Role chaining: each hop explained (`--chain-role-arn`, `--chain-trust-policy`).
mod chain;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct CheckArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Evaluate this trust policy (the role's JSON) against the token, offline.
    #[arg(long, value_name = "FILE")]
    pub trust_policy: Option<PathBuf>,
    /// STS endpoint for the identity check (falls back to AWS_ENDPOINT_URL_STS, then the
    /// regional endpoint).
    #[arg(long)]
    pub sts_endpoint: Option<String>,
    /// Skip the STS calls: GetCallerIdentity, and with --chain-role-arn the chain's two hops.
    #[arg(long)]
    pub no_identity: bool,
    /// With --chain-role-arn: evaluate this trust policy (the chained role's JSON, in the
    /// other account) for hop 2, offline, with hop 1's role session as the caller.
    #[arg(long, value_name = "FILE", requires = "chain_role_arn")]
    pub chain_trust_policy: Option<PathBuf>,
    /// The chain as `passport serve` is given it: check explains each hop.
    #[command(flatten)]
    pub chain: crate::commands::sts_options::ChainArgs,
    /// First wait up to this long for passport's admin /readyz (127.0.0.1:9912), then check
    /// either way: in a pod whose start is not gated on passport (the check Job), a
    /// passport that never gets credentials is reported with its reason (AccessDenied...).
    #[arg(long, value_name = "DURATION")]
    pub wait: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Info,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
            Status::Info => "·",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: Status,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub name: &'static str,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub sections: Vec<Section>,
    pub passed: usize,
    pub warnings: usize,
    pub failed: usize,
}

impl Report {
    fn new(sections: Vec<Section>) -> Self {
        let count = |s: Status| {
            sections
                .iter()
                .flat_map(|x| &x.checks)
                .filter(|c| c.status == s)
                .count()
        };
        let (passed, warnings, failed) = (
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail),
        );
        Self {
            sections,
            passed,
            warnings,
            failed,
        }
    }

    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        for section in &self.sections {
            out.push_str(section.name);
            out.push('\n');
            for check in &section.checks {
                out.push_str(&format!("  {} {}\n", check.status.mark(), check.message));
            }
        }
        out.push_str(&format!(
            "\n{} passed, {} warning{}, {} failed\n",
            self.passed,
            self.warnings,
            if self.warnings == 1 { "" } else { "s" },
            self.failed
        ));
        out
    }
}

#[derive(Default)]
struct Lines(Vec<Check>);

impl Lines {
    fn push(&mut self, status: Status, m: impl Into<String>) {
        self.0.push(Check {
            status,
            message: m.into(),
        });
    }
    fn pass(&mut self, m: impl Into<String>) {
        self.push(Status::Pass, m);
    }
    fn warn(&mut self, m: impl Into<String>) {
        self.push(Status::Warn, m);
    }
    fn fail(&mut self, m: impl Into<String>) {
        self.push(Status::Fail, m);
    }
    fn info(&mut self, m: impl Into<String>) {
        self.push(Status::Info, m);
    }
    fn section(self, name: &'static str) -> Section {
        Section {
            name,
            checks: self.0,
        }
    }
}

/// Everything `check` reads from outside, so tests can control it.
pub struct Inputs<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub now: SystemTime,
}

/// Credentials as the application would receive them.
struct Fetched {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    via: &'static str,
}

/// `passport check`: the report, human or `--json`; exit 1 when anything failed.
pub fn main(args: CheckArgs, env: crate::env::Lookup<'_>) -> std::process::ExitCode {
    if let Some(raw) = &args.wait {
        let Ok(timeout) = crate::args::duration(raw) else {
            return super::usage(crate::args::ConfigErrors(vec![format!(
                "--wait {raw:?}: expected a duration such as 60s"
            )]));
        };
        let admin = std::net::SocketAddr::from(([127, 0, 0, 1], 9912));
        if let Err(why) =
            super::wait_ready::wait(admin, timeout, std::time::Duration::from_millis(500))
        {
            eprintln!("passport check: {why}; checking anyway");
        }
    }
    let report = super::block_on(run(
        &args,
        &Inputs {
            env,
            now: std::time::SystemTime::now(),
        },
    ));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print!("{}", report.human());
    }
    if report.ok() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

pub async fn run(args: &CheckArgs, inputs: &Inputs<'_>) -> Report {
    let env = |k: &str| (inputs.env)(k).filter(|v| !v.is_empty());
    let mut sections = Vec::new();
    let (environment, token_path) = check_environment(&env);
    sections.push(environment);
    // issue 16: "the webhook did not mutate this pod", told apart from other failures.
    let labels = crate::commands::webhook::diagnose::read_labels(&env);
    sections.extend(crate::commands::webhook::diagnose::section(
        &env,
        labels.as_deref(),
    ));

    let claims = match &token_path {
        Some(path) => {
            let (section, claims) = check_token(path, inputs.now);
            sections.push(section);
            claims
        }
        None => None,
    };

    if let Some(policy) = &args.trust_policy {
        let mut section = check_trust_policy(
            policy,
            claims.as_ref(),
            env("AWS_ROLE_ARN").as_deref(),
            env("AWS_ROLE_SESSION_NAME").as_deref(),
            inputs.now,
        );
        if args.chain.chain_role_arn.is_some() {
            section.name = "Trust policy (hop 1, AssumeRoleWithWebIdentity)";
        }
        sections.push(section);
    }
    if args.chain.chain_role_arn.is_some() {
        sections.extend(chain::sections(args, &env, token_path.as_deref(), inputs.now).await);
    }

    let mut endpoint = Lines::default();
    let mut fetched = None;
    if let Some(url) = env("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        fetched = check_container_endpoint(&url, &env, inputs.now, &mut endpoint).await;
    }
    if let Some(relative) = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        let via_relative = check_relative_uri(&relative, inputs.now, &mut endpoint).await;
        fetched = fetched.or(via_relative);
    }
    // AWS_EC2_METADATA_SERVICE_ENDPOINT and no container variable: the `imds` level. The
    // application's SDK may predate IMDSv2 (and the variable: in the pod, 169.254.169.254 is
    // redirected to the same place), so IMDSv1 must work. check never probes
    // 169.254.169.254 on its own: set the variable to it to check that address.
    let imds_only = !CONTAINER_VARIABLES.iter().any(|v| env(v).is_some());
    if let Some(base) = env("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
        let imds = check_imds(&base, inputs.now, &mut endpoint).await;
        if imds.is_some() && imds_only {
            check_imds_v1(&base, &mut endpoint).await;
        }
        fetched = fetched.or(imds);
    }
    if endpoint.0.is_empty() {
        endpoint.info("no AWS_CONTAINER_CREDENTIALS_FULL_URI or AWS_EC2_METADATA_SERVICE_ENDPOINT: endpoint not checked");
    }
    sections.push(endpoint.section("Credentials endpoint"));

    if !args.no_identity {
        let sts_endpoint = args
            .sts_endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_STS"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
        sections.push(check_identity(fetched, sts_endpoint, region).await);
    }
    Report::new(sections)
}

fn check_environment(env: &dyn Fn(&str) -> Option<String>) -> (Section, Option<PathBuf>) {
    let mut l = Lines::default();
    let mut token_path = None;
    let web_identity = env("AWS_WEB_IDENTITY_TOKEN_FILE");
    let full_uri = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    let relative_uri = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    let uses_passport = full_uri.is_some()
        || relative_uri.is_some()
        || env("AWS_EC2_METADATA_SERVICE_ENDPOINT").is_some();
    match &web_identity {
        Some(path) => match std::fs::metadata(path) {
            Ok(meta) => match std::fs::read(path) {
                Ok(_) => {
                    l.pass(format!("AWS_WEB_IDENTITY_TOKEN_FILE={path} ({} bytes, readable)", meta.len()));
                    token_path = Some(PathBuf::from(path));
                }
                Err(e) => l.fail(format!("AWS_WEB_IDENTITY_TOKEN_FILE={path} cannot be read: {e}")),
            },
            Err(e) => l.fail(format!(
                "AWS_WEB_IDENTITY_TOKEN_FILE={path} does not exist ({e}); is the projected token volume mounted?"
            )),
        },
        None if uses_passport => l.info("AWS_WEB_IDENTITY_TOKEN_FILE not set (fine for an application using passport's endpoint)"),
        None => l.fail("AWS_WEB_IDENTITY_TOKEN_FILE is not set: no IRSA token is projected (service account not annotated with eks.amazonaws.com/role-arn, or the pod predates the annotation)"),
    }
    match env("AWS_ROLE_ARN") {
        Some(arn) => match arn.parse::<passport_core::aws::RoleArn>() {
            Ok(_) => l.pass(format!("AWS_ROLE_ARN={arn}")),
            Err(why) => l.fail(format!("AWS_ROLE_ARN={arn}: {why}")),
        },
        None if web_identity.is_some() => {
            l.fail("AWS_ROLE_ARN is not set: STS needs the role to assume")
        }
        None => {}
    }
    match (env("AWS_REGION"), env("AWS_DEFAULT_REGION")) {
        (Some(r), Some(d)) if r != d => l.warn(format!("AWS_REGION={r} but AWS_DEFAULT_REGION={d}: botocore uses the latter")),
        (Some(r), Some(_)) => l.pass(format!("region {r} (AWS_REGION and AWS_DEFAULT_REGION)")),
        (Some(r), None) => l.warn(format!("AWS_REGION={r}, but AWS_DEFAULT_REGION is not set: botocore and the AWS CLI read only the latter")),
        (None, Some(d)) => l.pass(format!("region {d} (AWS_DEFAULT_REGION)")),
        (None, None) => l.warn("no AWS_REGION or AWS_DEFAULT_REGION: SDKs will not know which regional endpoints to use"),
    }
    if let Some(uri) = &full_uri {
        match full_uri_host_ok(uri) {
            Ok(()) => l.pass(format!("AWS_CONTAINER_CREDENTIALS_FULL_URI={uri}")),
            Err(why) => l.fail(format!("AWS_CONTAINER_CREDENTIALS_FULL_URI={uri}: {why}")),
        }
    }
    if let Some(relative) = &relative_uri {
        if relative.starts_with('/') {
            l.pass(format!(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI={relative} (SDKs call http://{}{relative}, without a token)",
                crate::compat::RELATIVE_URI_HOST
            ));
        } else {
            l.fail(format!(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI={relative}: must be a path starting with `/` (SDKs append it to http://{})",
                crate::compat::RELATIVE_URI_HOST
            ));
        }
    }
    if relative_uri.is_some() && full_uri.is_some() {
        l.fail("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are both set: Go uses FULL, \
                every other SDK uses RELATIVE; set only the one your level uses");
    }
    let token_value = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    // Read once: the checks below and the comparison with the token value use the same bytes.
    let token_file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").map(|path| {
        let content = std::fs::read(&path);
        (path, content)
    });
    let token_file_content = token_file
        .as_ref()
        .and_then(|(_, content)| content.as_ref().ok().cloned());
    match &token_file {
        Some((path, content)) => match content {
            Ok(bytes) if bytes.is_empty() => l.fail(format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={path} is empty")),
            Ok(bytes) => match header_problem(bytes) {
                None => l.pass(format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={path} ({} bytes, no trailing newline)", bytes.len())),
                Some(HeaderProblem::TrailingNewline) => l.fail(format!(
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={path} ends with a newline: botocore, Go and Rust reject it"
                )),
                Some(HeaderProblem::NotVisibleAscii(_)) => {
                    l.fail(format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={path} holds non-printable characters"))
                }
            },
            Err(e) => l.fail(format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={path} cannot be read: {e}")),
        },
        None if full_uri.is_some() && token_value.is_none() => l.warn(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is not set: passport will answer 401 (unless FULL_URI is its --relative-uri-listen port)",
        ),
        None => {}
    }
    if let Some(value) = &token_value {
        let value = Secret::new(value.clone());
        let bytes = value.expose().as_bytes();
        if header_problem(bytes).is_some() {
            l.fail("AWS_CONTAINER_AUTHORIZATION_TOKEN holds spaces, newlines or non-printable characters: SDKs refuse to send it");
        } else {
            match &token_file_content {
                Some(file) if file.as_slice() != bytes => l.fail(
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN does not match the content of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: \
                     SDKs that know only the value (before late 2023) send a token passport refuses; \
                     take both from the same Secret key (token-env level)",
                ),
                Some(_) => l.pass(
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN matches AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (token-env level: SDKs from 2017 on)",
                ),
                None => l.pass(format!(
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN set ({} characters; token-env level)",
                    bytes.len()
                )),
            }
        }
    }
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        if env(var).is_some() {
            l.fail(format!(
                "{var} is set: static keys take precedence over every other credential source"
            ));
        }
    }
    if let Some(profile) = env("AWS_PROFILE") {
        l.warn(format!("AWS_PROFILE={profile}: a profile with keys takes precedence over the container endpoint"));
    }
    let proxy = env("HTTP_PROXY")
        .or_else(|| env("http_proxy"))
        .or_else(|| env("HTTPS_PROXY"))
        .or_else(|| env("https_proxy"));
    if proxy.is_some() {
        let no_proxy = env("NO_PROXY")
            .or_else(|| env("no_proxy"))
            .unwrap_or_default();
        let covered = ["127.0.0.1", "localhost"]
            .iter()
            .any(|h| no_proxy.split(',').any(|n| n.trim() == *h));
        if covered {
            l.pass("a proxy is configured and NO_PROXY covers the local endpoint");
        } else {
            l.warn("HTTP(S)_PROXY is set but NO_PROXY does not include 127.0.0.1: botocore sends IMDS requests through the proxy");
        }
    }
    (l.section("Environment"), token_path)
}

/// The plain-http hosts every SDK accepts in FULL_URI (client-compat.md §1.1).
fn full_uri_host_ok(uri: &str) -> Result<(), &'static str> {
    let (scheme, rest) = uri.split_once("://").ok_or("not a URL")?;
    if scheme == "https" {
        return Ok(());
    }
    if scheme != "http" {
        return Err("scheme must be http or https");
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let ok = host == "localhost"
        || matches!(host, "169.254.170.2" | "169.254.170.23" | "fd00:ec2::23")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if ok {
        Ok(())
    } else {
        Err(
            "plain-http hosts must be loopback (127.0.0.1 works for every SDK), localhost or 169.254.170.2/.23",
        )
    }
}

fn check_token(path: &std::path::Path, now: SystemTime) -> (Section, Option<Claims>) {
    let mut l = Lines::default();
    let raw = match std::fs::read_to_string(path) {
        Ok(raw) => Secret::new(raw),
        Err(e) => {
            l.fail(format!("cannot read the token: {e}"));
            return (l.section("Token"), None);
        }
    };
    let claims = match decode_claims(raw.expose().trim_end()) {
        Ok(claims) => claims,
        Err(why) => {
            l.fail(format!(
                "not a JWT ({why}); the file should hold the projected service-account token"
            ));
            return (l.section("Token"), None);
        }
    };
    match &claims.iss {
        Some(iss) => l.pass(format!("iss {iss}")),
        None => l.fail("no iss claim"),
    }
    match &claims.sub {
        Some(sub) => l.pass(format!("sub {sub}")),
        None => l.fail("no sub claim"),
    }
    if claims.aud.iter().any(|a| a == "sts.amazonaws.com") {
        l.pass(format!("aud {}", claims.aud.join(", ")));
    } else {
        l.warn(format!(
            "aud {} does not include sts.amazonaws.com: STS refuses it unless the role's provider lists this audience",
            if claims.aud.is_empty() { "(none)".to_string() } else { claims.aud.join(", ") }
        ));
    }
    let now_s = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    if let Some(iat) = claims.iat {
        l.info(format!(
            "issued {} ago",
            human(Duration::from_secs((now_s - iat).max(0) as u64))
        ));
    }
    match claims.exp {
        Some(exp) if exp <= now_s => l.fail(format!(
            "expired {} ago: the kubelet should have rotated it (is the pod's token volume stale?)",
            human(Duration::from_secs((now_s - exp) as u64))
        )),
        Some(exp) if exp - now_s < 600 => l.warn(format!(
            "expires in {}",
            human(Duration::from_secs((exp - now_s) as u64))
        )),
        Some(exp) => l.pass(format!(
            "expires in {}",
            human(Duration::from_secs((exp - now_s) as u64))
        )),
        None => l.warn("no exp claim"),
    }
    if let Some(k8s) = &claims.kubernetes {
        let get = |path: &[&str]| {
            let mut v = k8s;
            for p in path {
                v = v.get(p)?;
            }
            v.as_str().map(str::to_owned)
        };
        let ns = get(&["namespace"]).unwrap_or_else(|| "?".into());
        let sa = get(&["serviceaccount", "name"]).unwrap_or_else(|| "?".into());
        let pod = get(&["pod", "name"]).unwrap_or_else(|| "?".into());
        l.info(format!(
            "kubernetes: namespace {ns}, service account {sa}, pod {pod}"
        ));
    }
    (l.section("Token"), Some(claims))
}

fn check_trust_policy(
    path: &std::path::Path,
    claims: Option<&Claims>,
    role_arn: Option<&str>,
    session_name: Option<&str>,
    now: SystemTime,
) -> Section {
    let mut l = Lines::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            l.fail(format!("cannot read {}: {e}", path.display()));
            return l.section("Trust policy");
        }
    };
    let Some(claims) = claims else {
        l.fail("no readable token to evaluate the policy against");
        return l.section("Trust policy");
    };
    use crate::trust_policy::{Level, TokenFacts, offline};
    let (Some(iss), Some(sub)) = (&claims.iss, &claims.sub) else {
        l.fail("the token has no iss or sub claim: STS answers InvalidIdentityToken");
        return l.section("Trust policy");
    };
    // The OIDC provider lives in the role's account.
    let Some(account) = role_arn.and_then(|arn| arn.split(':').nth(4)) else {
        l.fail("AWS_ROLE_ARN is needed to know which account's OIDC provider the token maps to");
        return l.section("Trust policy");
    };
    let facts = TokenFacts {
        iss: iss.clone(),
        sub: sub.clone(),
        aud: claims.aud.clone(),
        azp: claims.azp.clone(),
        amr: claims.amr.clone(),
        source_identity: claims.source_identity.clone(),
    };
    let report = offline(&text, &facts, account, session_name, now);
    for (level, line) in report.lines {
        let line = if line.starts_with("not a trust policy IAM would accept") {
            format!("{} is {line}", path.display())
        } else {
            line
        };
        match level {
            Level::Pass => l.pass(line),
            Level::Warn => l.warn(line),
            Level::Fail => l.fail(line),
            Level::Info => l.info(line),
        }
    }
    l.section("Trust policy")
}

/// A minimal HTTP/1.1 exchange for plain-http loopback endpoints.
async fn http_call(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// endpoints can be checked")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // A URL without a port (http://169.254.170.2/...) means port 80.
    let address = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_owned()
    };
    let connect = tokio::net::TcpStream::connect(address);
    let stream = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| format!("connecting to {authority} timed out"))?
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(2), sender.send_request(req))
        .await
        .map_err(|_| "no answer within 2 s (JS and Java SDKs give up after 1 s)".to_string())?
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status.as_u16(), parts.headers, body))
}

/// Check a credentials body as SDKs read it; the credentials, labelled `via`, if usable.
fn check_credentials_body(
    body: &[u8],
    now: SystemTime,
    imds: bool,
    via: &'static str,
    l: &mut Lines,
) -> Option<Fetched> {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            l.fail("the body is not JSON");
            return None;
        }
    };
    let field = |k: &str| {
        value
            .get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    let mut missing: Vec<&str> = ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"]
        .into_iter()
        .filter(|k| field(k).is_none())
        .collect();
    if imds && field("Code") != Some("Success") {
        missing.push("Code=Success");
    }
    if !missing.is_empty() {
        l.fail(format!(
            "missing or empty: {} (SDKs treat this as no credentials)",
            missing.join(", ")
        ));
        return None;
    }
    l.pass(format!(
        "AccessKeyId {}",
        field("AccessKeyId").unwrap_or_default()
    ));
    let expiration = field("Expiration").unwrap_or_default();
    match parse_expiration(expiration) {
        None => l.fail(format!(
            "Expiration {expiration:?} is not YYYY-MM-DDTHH:MM:SSZ: the Rust and JS SDKs reject offsets like +00:00"
        )),
        Some(at) => match at.duration_since(now) {
            Err(_) => l.fail(format!("Expiration {expiration} has passed: botocore raises on expired credentials")),
            Ok(left) if left < Duration::from_secs(15 * 60) => l.warn(format!(
                "Expiration {expiration}: only {} left; botocore refetches on every call below 15 minutes",
                human(left)
            )),
            Ok(left) => l.pass(format!("Expiration {expiration} ({} left)", human(left))),
        },
    }
    if let Some(account) = field("AccountId") {
        l.info(format!("AccountId {account}"));
    }
    Some(Fetched {
        access_key_id: field("AccessKeyId")?.to_owned(),
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: field("Token").map(Secret::new),
        via,
    })
}

/// SDKs before late 2023 send AWS_CONTAINER_AUTHORIZATION_TOKEN, not the file: when the
/// value differs from the file (or there is no file), ask with the value as they would.
async fn check_token_value(url: &str, env: &dyn Fn(&str) -> Option<String>, l: &mut Lines) {
    let Some(value) = env("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Secret::new) else {
        return;
    };
    let file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").and_then(|p| std::fs::read(p).ok());
    if file.as_deref() == Some(value.expose().as_bytes()) {
        return;
    }
    let headers = [
        ("accept", "application/json"),
        ("authorization", value.expose()),
    ];
    match http_call(url, "GET", &headers).await {
        Ok((200, _, _)) => l.pass(format!(
            "container endpoint {url} answered 200 to AWS_CONTAINER_AUTHORIZATION_TOKEN"
        )),
        Ok((status, _, _)) => l.fail(format!(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN: {url} answered {status} to this value; SDKs before late 2023 send it \
             instead of the file's token"
        )),
        Err(e) => l.fail(format!(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN: {url}: {e}"
        )),
    }
}

/// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`: what ECS-style SDKs call, with no token.
async fn check_relative_uri(relative: &str, now: SystemTime, l: &mut Lines) -> Option<Fetched> {
    if !relative.starts_with('/') {
        return None;
    }
    let url = format!("http://{}{relative}", crate::compat::RELATIVE_URI_HOST);
    match http_call(&url, "GET", &[("accept", "application/json")]).await {
        Err(e) => {
            l.fail(format!(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI={relative}: nothing answers at {url} ({e}); \
                 the relative-uri level needs the 169.254.170.2:80 redirect (k8s/overlays/relative-uri) \
                 and passport's --relative-uri-listen"
            ));
            None
        }
        Ok((status, _, _)) if status != 200 => {
            l.fail(format!(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI={relative}: {url} answered {status} to a request without a token \
                 (does the redirect reach passport's --relative-uri-listen, not the authenticated --listen?)"
            ));
            None
        }
        Ok((_, _, body)) => {
            l.pass(format!(
                "{url} answered 200 without a token (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)"
            ));
            check_credentials_body(&body, now, false, "container endpoint (RELATIVE_URI)", l)
        }
    }
}

/// IMDSv1: a plain GET of the role listing, no session token, as SDKs before late 2019
/// send; required when the application has nothing but IMDS.
async fn check_imds_v1(base: &str, l: &mut Lines) {
    let base = base.trim_end_matches('/');
    let url = format!("{base}/latest/meta-data/iam/security-credentials/");
    let named = format!("AWS_EC2_METADATA_SERVICE_ENDPOINT={base}");
    match http_call(&url, "GET", &[]).await {
        Ok((200, _, _)) => l.pass(format!(
            "{named}: IMDSv1 answered (SDKs from before late 2019 work, through the 169.254.169.254 redirect)"
        )),
        Ok((401, _, _)) => l.fail(format!(
            "{named}: IMDS reached but IMDSv1 refused (401); with no container variable the application is at the imds \
             level, and SDKs from before late 2019 send no session token: set PASSPORT_IMDS_ALLOW_V1=true \
             (k8s/overlays/imds-redirect)"
        )),
        Ok((status, _, _)) => l.fail(format!("{named}: IMDSv1 GET answered {status}")),
        Err(e) => l.fail(format!("{named}: IMDSv1 GET: {e}")),
    }
}

async fn check_container_endpoint(
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
    now: SystemTime,
    l: &mut Lines,
) -> Option<Fetched> {
    check_token_value(url, env, l).await;
    let token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .or_else(|| env("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
        .map(Secret::new);
    let mut headers = vec![("accept", "application/json")];
    if let Some(token) = &token {
        headers.push(("authorization", token.expose()));
    }
    match http_call(url, "GET", &headers).await {
        Err(e) => {
            l.fail(format!("container endpoint {url}: {e}"));
            None
        }
        Ok((status, _, body)) if status != 200 => {
            let detail = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("Message")
                        .or_else(|| v.get("message"))
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| {
                    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
                });
            l.fail(format!(
                "container endpoint {url} answered {status}: {detail}"
            ));
            None
        }
        Ok((_, headers, body)) => {
            l.pass(format!("container endpoint {url} answered 200"));
            if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json")
            {
                l.warn("Content-Type is not application/json");
            }
            check_credentials_body(&body, now, false, "container endpoint", l)
        }
    }
}

async fn check_imds(base: &str, now: SystemTime, l: &mut Lines) -> Option<Fetched> {
    let base = base.trim_end_matches('/');
    let token = match http_call(
        &format!("{base}/latest/api/token"),
        "PUT",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
    )
    .await
    {
        Ok((200, headers, body)) => {
            if headers
                .get("x-aws-ec2-metadata-token-ttl-seconds")
                .is_none()
            {
                l.fail("IMDS token response lacks x-aws-ec2-metadata-token-ttl-seconds: the Rust and Go SDKs fail without it");
            } else {
                l.pass(format!("IMDS {base}: session token issued"));
            }
            Secret::new(String::from_utf8_lossy(&body).into_owned())
        }
        Ok((status, _, _)) => {
            l.fail(format!(
                "IMDS {base}: PUT /latest/api/token answered {status}"
            ));
            return None;
        }
        Err(e) => {
            l.fail(format!("IMDS {base}: {e}"));
            return None;
        }
    };
    let auth = [("x-aws-ec2-metadata-token", token.expose())];
    let role = match http_call(
        &format!("{base}/latest/meta-data/iam/security-credentials/"),
        "GET",
        &auth,
    )
    .await
    {
        Ok((200, _, body)) => {
            let role = String::from_utf8_lossy(&body).into_owned();
            if role.ends_with('\n') || role.is_empty() {
                l.fail(format!(
                    "IMDS role listing {role:?} must be exactly the role name"
                ));
                return None;
            }
            l.pass(format!("IMDS role {role}"));
            role
        }
        Ok((status, _, _)) => {
            l.fail(format!("IMDS role listing answered {status}"));
            return None;
        }
        Err(e) => {
            l.fail(format!("IMDS role listing: {e}"));
            return None;
        }
    };
    match http_call(
        &format!("{base}/latest/meta-data/iam/security-credentials/{role}"),
        "GET",
        &auth,
    )
    .await
    {
        Ok((200, _, body)) => check_credentials_body(&body, now, true, "IMDS", l),
        Ok((status, _, _)) => {
            l.fail(format!("IMDS credentials answered {status}"));
            None
        }
        Err(e) => {
            l.fail(format!("IMDS credentials: {e}"));
            None
        }
    }
}

async fn check_identity(
    fetched: Option<Fetched>,
    endpoint: Option<String>,
    region: Option<String>,
) -> Section {
    let mut l = Lines::default();
    let Some(f) = fetched else {
        l.info("skipped: no credentials were obtained from an endpoint");
        return l.section("Identity");
    };
    let creds = aws_sdk_sts::config::Credentials::new(
        &f.access_key_id,
        f.secret_access_key.expose(),
        f.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "passport-check",
    );
    let mut config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new(
            region.unwrap_or_else(|| "us-east-1".into()),
        ))
        .credentials_provider(creds)
        .timeout_config(
            aws_sdk_sts::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(10))
                .build(),
        );
    if let Some(endpoint) = &endpoint {
        config = config.endpoint_url(endpoint);
    }
    let client = aws_sdk_sts::Client::from_conf(config.build());
    match client.get_caller_identity().send().await {
        Ok(out) => {
            let arn = out.arn().unwrap_or_default();
            if arn.contains(":assumed-role/") {
                l.pass(format!("Arn {arn}"));
            } else {
                l.warn(format!(
                    "Arn {arn} is not an assumed role: the application is not using the IRSA role"
                ));
            }
            l.info(format!("Account {}", out.account().unwrap_or_default()));
            l.info(format!("UserId {}", out.user_id().unwrap_or_default()));
            l.info(format!(
                "provider {} (access key id {})",
                f.via, f.access_key_id
            ));
            if f.access_key_id.starts_with("ASIA") && f.session_token.is_some() {
                l.pass("temporary credentials (ASIA key with a session token)");
            } else {
                l.warn("long-lived credentials (no session token): not what IRSA issues");
            }
        }
        Err(e) => {
            use aws_sdk_sts::error::ProvideErrorMetadata;
            let detail = match e.code() {
                Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
                None => passport_core::sts::describe_sdk_error(&e),
            };
            l.fail(format!("GetCallerIdentity failed: {detail}"));
        }
    }
    l.section("Identity")
}

fn parse_expiration(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d, hh, mm, ss) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// `1h 02m`, `14m 05s`, `42s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_strict_expiration_shape() {
        let t = parse_expiration("2023-11-14T22:13:20Z").unwrap();
        assert_eq!(
            passport_core::clock::format_rfc3339_seconds(t),
            "2023-11-14T22:13:20Z"
        );
        for bad in [
            "2023-11-14T22:13:20+00:00",
            "2023-11-14T22:13:20.5Z",
            "2023-13-14T22:13:20Z",
            "x",
        ] {
            assert!(parse_expiration(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn full_uri_hosts() {
        for ok in [
            "http://127.0.0.1:9911/v1/credentials",
            "http://localhost/x",
            "http://169.254.170.23/v1",
            "https://a.example/x",
            "http://[::1]:1/",
        ] {
            assert!(full_uri_host_ok(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/x",
            "http://passport:9911/v1",
            "ftp://127.0.0.1/",
        ] {
            assert!(full_uri_host_ok(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(845)), "14m 05s");
        assert_eq!(human(Duration::from_secs(3720)), "1h 02m");
    }
}
