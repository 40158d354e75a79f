//! `passport inject`: add the passport sidecar to Kubernetes workloads, YAML in, YAML out.
//!
//! This module is the one source of truth for the pod-spec pieces passport needs: the
//! manifests under `k8s/` are checked to be fixed points of it (`tests/k8s/check.sh`,
//! `tests/inject.rs`), so they cannot drift apart.
//!
//! What it does to every pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
//! Job, CronJob, also inside `List`s):
//!
//! - the `passport` container: a native sidecar (first in `initContainers`, `restartPolicy:
//!   Always`, kubelets 1.29+) or, with `--no-native-sidecar`, first in `containers` with a
//!   `passport wait-ready` postStart hook. The fields it owns (image, args, probes,
//!   security context, its env and mounts by name) are set; any other field or env a user
//!   added to it stays. IMDS is off (`PASSPORT_DISABLE_IMDS`) unless `--imds` or the `imds`
//!   level;
//! - an in-memory `emptyDir` for the client auth token (written 0644: the mount is the
//!   boundary, so no `fsGroup` is needed or added), mounted read-only into the application
//!   containers, with their `AWS_CONTAINER_*` (and, with IMDS, IMDS) env and `NO_PROXY`;
//! - Prometheus annotations (only when the pod has none), and the pod annotation
//!   `eks.amazonaws.com/skip-containers` naming the application containers, so the IRSA
//!   webhook gives them no web-identity token of their own (SDKs prefer it to the
//!   container endpoint).
//!
//! Documents that need no change are written back byte for byte, comments included; a
//! changed document is re-serialised, losing its comments. Injecting twice changes nothing.
//!
//! Total: every input gives valid YAML or a refusal (exit 65) naming the pod and the reason
//! (host network, port clashes with 9911/9912 (and 9913 at the relative-uri level), static keys or profiles on an application,
//! a plain sidecar on a Job, duplicate `passport` containers); values are built as typed
//! YAML, never by formatting text (`tests/inject_props.rs` feeds random flags and
//! workloads). Kinds with a pod template that inject does not handle, Windows pods and Jobs
//! that could wait forever get a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_norway::{Mapping, Value};

use crate::compat::Compat;

/// Name of the sidecar container.
pub const CONTAINER_NAME: &str = "passport";
/// The image injected unless `--image` says otherwise.
pub const DEFAULT_IMAGE: &str =
    concat!("ghcr.io/passport-dev/passport:", env!("CARGO_PKG_VERSION"));
/// Numeric user and group passport runs as (distroless `nonroot`).
pub const UID: u64 = 65532;
/// The in-memory volume holding the client auth token.
pub const AUTH_VOLUME: &str = "passport-auth";
/// Where that volume is mounted, in passport and in the applications.
pub const AUTH_DIR: &str = "/var/run/passport";
/// The client auth token file.
pub const AUTH_TOKEN_FILE: &str = "/var/run/passport/auth-token";
/// The projected service-account token volume added for non-EKS clusters (`--role-arn`):
/// the EKS IRSA webhook's own name and path, so a pod both ever touch has one volume, not two
/// mounts at one path.
pub const TOKEN_VOLUME: &str = "aws-iam-token";
/// Where the EKS webhook mounts it, and where passport reads it by default.
pub const TOKEN_MOUNT: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
/// The name earlier versions of inject gave that volume (replaced on re-inject).
const OLD_TOKEN_VOLUME: &str = "passport-token";
/// The auth-token file's mode: readable by any UID that can reach it, and only containers
/// that mount the `passport-auth` emptyDir can (the mount is the boundary), so the pod
/// needs no `fsGroup`, which would re-group every volume.
pub const AUTH_TOKEN_FILE_MODE: &str = "0644";
pub const AUTH_TOKEN_FILE_MODE_VAR: &str = "PASSPORT_AUTH_TOKEN_FILE_MODE";
/// IMDS is off in injected pods unless asked for: it authenticates nothing.
pub const DISABLE_IMDS_VAR: &str = "PASSPORT_DISABLE_IMDS";
/// IMDSv2 on (`serve --imds`): `inject --imds` outside the `imds` level, whose
/// `PASSPORT_IMDS_ALLOW_V1` turns IMDS on by itself.
pub const IMDS_VAR: &str = "PASSPORT_IMDS";
/// `serve --extra-role`s, space-separated.
pub const EXTRA_ROLES_VAR: &str = "PASSPORT_EXTRA_ROLES";
/// How long the legacy sidecar's postStart hook waits for passport to be ready.
pub const WAIT_READY_TIMEOUT: &str = "120s";
/// The ports passport listens on inside the pod: credentials and admin, and at the
/// relative-uri level the unauthenticated listener.
pub const PASSPORT_PORTS: [u16; 2] = [9911, ADMIN_PORT];
pub const RELATIVE_URI_PORT: u16 = 9913;
/// Named port of the admin listener (probes, metrics).
pub const ADMIN_PORT_NAME: &str = "passport-admin";
pub const ADMIN_PORT: u16 = 9912;
/// What applications are pointed at.
pub const CREDENTIALS_URI: &str = "http://127.0.0.1:9911/v1/credentials";
pub const IMDS_ENDPOINT: &str = "http://127.0.0.1:9911";
/// The token-env level's Secret (created by the user, or by inject with a random value) and
/// its key; mounted where the generated token file would be, so the paths stay the same.
pub const SHARED_SECRET: &str = "passport-auth-token";
pub const SHARED_SECRET_KEY: &str = "auth-token";
/// The relative-uri level's unauthenticated listener, reached through the redirect.
pub const RELATIVE_URI_LISTEN: &str = "127.0.0.1:9913";
/// The IRSA webhook's pod annotation listing containers it must leave alone.
pub const SKIP_CONTAINERS: &str = "eks.amazonaws.com/skip-containers";

/// Exit status for input that cannot be injected (sysexits EX_DATAERR).
pub const EXIT_DATAERR: u8 = crate::args::EXIT_DATA;
/// Exit status when the input file cannot be read (sysexits EX_NOINPUT).
pub const EXIT_NOINPUT: u8 = 66;

/// Flags of `passport inject`. None of them is read from the environment: an `AWS_ROLE_ARN`
/// in the operator's shell must not end up in manifests by accident.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = "\
Reads Kubernetes YAML (one or more documents) and writes it to stdout with passport added to \
every pod template: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, and \
those inside a List. Other kinds pass through untouched. Injecting twice changes nothing.

Documents that need no change are copied byte for byte. A changed document is re-serialised: \
field order and values are kept, but its YAML comments, anchors and quoting style are lost.

Refused (exit 65, nothing written): pods with `hostNetwork: true` (their loopback is the \
node's, so every pod on the node could read the credentials); containers listening on \
9911 or 9912 (9913 too with --compat relative-uri); application containers with static keys or \
AWS_PROFILE; --no-native-sidecar on \
Jobs and CronJobs (the pod would never complete). Warned about: kinds with a pod template \
that inject does not handle (Argo Rollout, PodTemplate), Windows pods, Jobs without \
activeDeadlineSeconds (see --job-deadline).

Examples:
  passport inject deploy.yaml | kubectl apply -f -
  kubectl get deploy app -o yaml | passport inject --containers app | kubectl apply -f -
  passport inject --role-arn arn:aws:iam::111122223333:role/app --region eu-west-1 job.yaml")]
pub struct InjectArgs {
    /// Kubernetes YAML to read; `-` reads stdin.
    #[arg(default_value = "-", value_name = "FILE")]
    pub file: PathBuf,
    /// passport image for the sidecar.
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// Set AWS_ROLE_ARN on passport and project the service-account token for it (clusters
    /// without the EKS IRSA webhook, which would otherwise provide both).
    #[arg(long)]
    pub role_arn: Option<String>,
    /// Set AWS_REGION on passport (clusters without the EKS IRSA webhook).
    #[arg(long)]
    pub region: Option<String>,
    /// Chain into this role (PASSPORT_CHAIN_ROLE_ARN on passport): after the web-identity
    /// exchange, passport assumes it with `sts:AssumeRole` and serves its credentials.
    #[arg(long, value_name = "ARN")]
    pub chain_role_arn: Option<String>,
    /// Serve another role at /v1/credentials/NAME (PASSPORT_EXTRA_ROLES on passport;
    /// repeatable): NAME=ARN by web identity, NAME=ARN,chain by AssumeRole from --role-arn's.
    #[arg(long = "extra-role", value_name = "NAME=ARN[,chain]")]
    pub extra_roles: Vec<String>,
    /// Point this container at an extra role (repeatable): its
    /// AWS_CONTAINER_CREDENTIALS_FULL_URI (or RELATIVE_URI) ends in /NAME.
    #[arg(long = "container-role", value_name = "CONTAINER=NAME")]
    pub container_roles: Vec<String>,
    /// Serve the IMDS endpoint too and point the applications' IMDS clients at it
    /// (AWS_EC2_METADATA_SERVICE_ENDPOINT). IMDS authenticates nothing: any process that
    /// reaches 127.0.0.1:9911 (every container in the pod, `kubectl port-forward`) gets
    /// credentials. Implied by --compat imds.
    #[arg(long, overrides_with = "no_imds")]
    pub imds: bool,
    /// No IMDS endpoint (PASSPORT_DISABLE_IMDS=true on passport) [default].
    #[arg(long, overrides_with = "imds")]
    pub no_imds: bool,
    /// Containers that get the credentials env, comma-separated [default: every container in
    /// `containers`]; init containers may be named too (they run after a native sidecar).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub containers: Vec<String>,
    /// Add passport as a native sidecar (`initContainers` with `restartPolicy: Always`,
    /// Kubernetes 1.28+; the application starts only once credentials are there) [default].
    #[arg(long, overrides_with = "no_native_sidecar")]
    pub native_sidecar: bool,
    /// Add passport as a plain container (older clusters; a Job's pod then never completes
    /// by itself, see the README, "Native vs legacy sidecar").
    #[arg(long, overrides_with = "native_sidecar")]
    pub no_native_sidecar: bool,
    /// Compatibility level: the variables the applications' SDKs understand, and what passport
    /// needs for them. `token-env` adds a Secret `passport-auth-token` with a fresh random
    /// value (unless --no-secret); `relative-uri` and `imds` add an init container with
    /// NET_ADMIN (not allowed under the `restricted` Pod Security Standard).
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = Compat::Modern)]
    pub compat: Compat,
    /// With --compat token-env: do not write the Secret (it exists, or is managed elsewhere).
    #[arg(long)]
    pub no_secret: bool,
    /// A CPU limit for passport (e.g. `100m`), for namespaces whose ResourceQuota demands
    /// `limits.cpu`. Unset by default: a limit throttles passport under a burst of requests
    /// (CFS quota), which the applications see as latency.
    #[arg(long, value_name = "QUANTITY")]
    pub cpu_limit: Option<String>,
    /// Set `activeDeadlineSeconds` on Jobs (and CronJobs' job templates) that have none, and
    /// `concurrencyPolicy: Forbid` on CronJobs that have none, so a pod whose passport never
    /// becomes ready (a wrong role, AccessDenied) fails instead of waiting forever. Without
    /// it, inject only warns.
    #[arg(long, value_name = "SECONDS")]
    pub job_deadline: Option<u64>,
    /// passport's startup probe passes once it is up, not once it has credentials: the
    /// applications start even when it never gets any (for the check Job, which reports
    /// why, e.g. AccessDenied).
    #[arg(long)]
    pub no_startup_gate: bool,
}

/// Validated options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub image: String,
    pub role_arn: Option<String>,
    pub region: Option<String>,
    pub chain_role_arn: Option<String>,
    /// `--extra-role`s, as `NAME=ARN[,chain]`: PASSPORT_EXTRA_ROLES on passport.
    pub extra_roles: Vec<String>,
    /// Container name -> extra role name: its credentials URI is `/v1/credentials/NAME`.
    pub container_roles: BTreeMap<String, String>,
    pub imds: bool,
    /// `None`: every regular container.
    pub containers: Option<Vec<String>>,
    pub native: bool,
    pub compat: Compat,
    /// Write the token-env Secret (with a random value) when the input has none.
    pub secret: bool,
    /// passport's `limits.cpu`, a Kubernetes quantity.
    pub cpu_limit: Option<String>,
    /// `activeDeadlineSeconds` for Jobs that have none (`None`: warn only).
    pub job_deadline: Option<u64>,
    /// The startup probe waits for credentials (`/readyz`), not only for the process.
    pub startup_gate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            image: DEFAULT_IMAGE.into(),
            role_arn: None,
            region: None,
            chain_role_arn: None,
            extra_roles: Vec::new(),
            container_roles: BTreeMap::new(),
            imds: false,
            containers: None,
            native: true,
            compat: Compat::Modern,
            secret: true,
            cpu_limit: None,
            job_deadline: None,
            startup_gate: true,
        }
    }
}

impl Options {
    /// passport serves IMDS: asked for, or the `imds` level, whose clients know nothing else.
    pub fn serves_imds(&self) -> bool {
        self.imds || self.compat == Compat::Imds
    }

    pub fn from_args(args: &InjectArgs) -> Result<Self, crate::args::ConfigErrors> {
        let mut problems = Vec::new();
        if let Err(why) = image_reference(&args.image) {
            problems.push(format!("--image {:?}: {why}", args.image));
        }
        if args.no_imds && args.compat == Compat::Imds {
            problems.push("--no-imds: --compat imds is the IMDS level".to_owned());
        }
        if let Some(cpu) = &args.cpu_limit
            && let Err(why) = cpu_quantity(cpu)
        {
            problems.push(format!("--cpu-limit {cpu:?}: {why}"));
        }
        if args.job_deadline == Some(0) {
            problems.push("--job-deadline: at least 1 second".to_owned());
        }
        if let Some(arn) = &args.role_arn
            && let Err(why) = arn.parse::<passport_core::aws::RoleArn>()
        {
            problems.push(format!("--role-arn {arn:?}: {why}"));
        }
        if let Some(region) = &args.region
            && let Err(why) = region.parse::<passport_core::aws::Region>()
        {
            problems.push(format!("--region {region:?}: {why}"));
        }
        if let Some(arn) = &args.chain_role_arn
            && let Err(why) = arn.parse::<passport_core::aws::RoleArn>()
        {
            problems.push(format!("--chain-role-arn {arn:?}: {why}"));
        }
        let mut role_problems = crate::args::ConfigErrors::default();
        let extra_roles: Vec<(String, String)> =
            super::serve::extra_roles(&args.extra_roles, &mut role_problems)
                .iter()
                .map(|role| (role.name.to_string(), role.to_string()))
                .collect();
        problems.extend(role_problems.0);
        let mut container_roles = BTreeMap::new();
        for raw in &args.container_roles {
            let Some((container, role)) = raw.split_once('=') else {
                problems.push(format!(
                    "--container-role {raw:?}: expected CONTAINER=NAME (an --extra-role's NAME)"
                ));
                continue;
            };
            if !extra_roles.iter().any(|(n, _)| n == role) {
                problems.push(format!(
                    "--container-role {raw:?}: no --extra-role is named {role:?}"
                ));
            } else if args.compat == Compat::Imds {
                problems.push(format!(
                    "--container-role {raw:?}: the imds level serves only the default role (IMDS has one role per instance)"
                ));
            } else if args.compat == Compat::RelativeUri {
                problems.push(format!(
                    "--container-role {raw:?}: the relative-uri level reaches passport without the auth token, where only the default role is served"
                ));
            } else if container_roles
                .insert(container.to_owned(), role.to_owned())
                .is_some()
            {
                problems.push(format!(
                    "--container-role: container {container:?} is given twice"
                ));
            }
        }
        let containers: Vec<String> = args
            .containers
            .iter()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect();
        if containers.iter().any(|c| c == CONTAINER_NAME) {
            problems.push(format!(
                "--containers: `{CONTAINER_NAME}` is the sidecar itself"
            ));
        }
        if args.no_secret && args.compat != Compat::TokenEnv {
            problems.push(format!(
                "--no-secret: only with --compat token-env (--compat {} uses no Secret)",
                args.compat.name()
            ));
        }
        if !problems.is_empty() {
            return Err(crate::args::ConfigErrors(problems));
        }
        Ok(Self {
            image: args.image.clone(),
            role_arn: args.role_arn.clone(),
            region: args.region.clone(),
            chain_role_arn: args.chain_role_arn.clone(),
            extra_roles: extra_roles.into_iter().map(|(_, spec)| spec).collect(),
            container_roles,
            imds: args.imds,
            containers: (!containers.is_empty()).then_some(containers),
            native: !args.no_native_sidecar,
            compat: args.compat,
            secret: !args.no_secret,
            cpu_limit: args.cpu_limit.clone(),
            job_deadline: args.job_deadline,
            startup_gate: !args.no_startup_gate,
        })
    }
}

/// An image reference as Kubernetes takes it: printable ASCII, no whitespace.
pub fn image_reference(image: &str) -> Result<(), &'static str> {
    if image.is_empty() {
        return Err("empty");
    }
    if !image.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "not an image reference (printable ASCII without spaces, e.g. registry/name:tag@sha256:...)",
        );
    }
    Ok(())
}

/// A CPU quantity: millicores (`250m`) or cores (`0.5`, `1`), positive.
fn cpu_quantity(q: &str) -> Result<(), &'static str> {
    let number = q.strip_suffix('m').unwrap_or(q);
    let shaped = !number.is_empty()
        && number.len() <= 12
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|b| *b == b'.').count() <= 1
        && !number.starts_with('.')
        && !number.ends_with('.');
    match number.parse::<f64>() {
        Ok(n) if shaped && n > 0.0 => Ok(()),
        _ => Err("not a CPU quantity (e.g. 100m or 0.5)"),
    }
}

/// Why input could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("document {document}: not valid YAML: {error}")]
    Yaml {
        document: usize,
        error: serde_norway::Error,
    },
    #[error("refusing to inject:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<String>),
}

/// Inject into every document of `input`. Warnings (e.g. a `--containers` name matching
/// nothing) go to `warn`.
pub fn inject_str(
    input: &str,
    opts: &Options,
    warn: &mut dyn FnMut(String),
) -> Result<String, InjectError> {
    let mut out = String::with_capacity(input.len() + 4096);
    let mut refused = Vec::new();
    let mut matched = BTreeSet::new();
    let mut pods = Vec::new();
    let mut has_secret = false;
    for (index, doc) in split_documents(input).into_iter().enumerate() {
        let document = index + 1;
        let original: Value = if doc.body.trim().is_empty() {
            Value::Null
        } else {
            serde_norway::from_str(doc.body)
                .map_err(|error| InjectError::Yaml { document, error })?
        };
        let mut value = original.clone();
        if str_at(&original, &["kind"]) == Some("Secret")
            && str_at(&original, &["metadata", "name"]) == Some(SHARED_SECRET)
        {
            has_secret = true;
        }
        let mut ctx = Ctx {
            opts,
            document,
            pods: &mut pods,
            refused: &mut refused,
            matched: &mut matched,
            warn,
        };
        ctx.object(&mut value, None);
        out.push_str(doc.separator);
        if value == original {
            out.push_str(doc.body);
        } else {
            let text = serde_norway::to_string(&value).expect("a Value always serialises");
            out.push_str(&text);
        }
    }
    if let Some(wanted) = &opts.containers {
        for name in wanted.iter().filter(|n| !matched.contains(*n)) {
            warn(format!(
                "--containers: no pod template has a container named {name:?}"
            ));
        }
    }
    for name in opts
        .container_roles
        .keys()
        .filter(|n| !matched.contains(*n))
    {
        warn(format!(
            "--container-role: no application container is named {name:?}; it would keep the default role"
        ));
    }
    if opts.compat == Compat::TokenEnv && opts.secret && !has_secret && !pods.is_empty() {
        let namespace = pods.iter().flatten().next();
        out.push_str(&shared_secret_document(namespace.map(String::as_str)));
    }
    if refused.is_empty() {
        Ok(out)
    } else {
        Err(InjectError::Refused(refused))
    }
}

/// Add passport to one pod template (a mapping with `metadata` and `spec`; a Pod is its own
/// template): the very mutation `inject` applies to each workload, for callers that hold a
/// single pod (the admission webhook). `name` names it in messages. Refusals (e.g.
/// `hostNetwork`) come back as `Err`, leaving `template` unchanged.
pub fn inject_pod_template(
    template: &mut Mapping,
    opts: &Options,
    name: &str,
    warn: &mut dyn FnMut(String),
) -> Result<(), Vec<String>> {
    if !template.get("spec").is_some_and(Value::is_mapping) {
        return Err(vec![format!("{name}: no pod spec")]);
    }
    let mut refused = Vec::new();
    let mut work = template.clone();
    let mut ctx = Ctx {
        opts,
        document: 0,
        pods: &mut Vec::new(),
        refused: &mut refused,
        matched: &mut BTreeSet::new(),
        warn,
    };
    ctx.pod(&mut work, name);
    if refused.is_empty() {
        *template = work;
        Ok(())
    } else {
        Err(refused)
    }
}

/// `passport inject`.
pub fn main(args: &InjectArgs) -> ExitCode {
    let opts = match Options::from_args(args) {
        Ok(opts) => opts,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(crate::args::EXIT_USAGE);
        }
    };
    let mut input = String::new();
    let read = if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut input).map(|_| ())
    } else {
        std::fs::read_to_string(&args.file).map(|s| input = s)
    };
    if let Err(e) = read {
        eprintln!("passport inject: cannot read {}: {e}", args.file.display());
        return ExitCode::from(EXIT_NOINPUT);
    }
    match inject_str(&input, &opts, &mut |w| {
        eprintln!("passport inject: warning: {w}")
    }) {
        Ok(out) => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::from(crate::args::EXIT_UNAVAILABLE);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("passport inject: {e}");
            ExitCode::from(EXIT_DATAERR)
        }
    }
}

struct Document<'a> {
    /// The `---` line that opened it (empty for the first document when it had none).
    separator: &'a str,
    body: &'a str,
}

/// Split on `---` lines, keeping the exact text, so untouched documents round-trip byte for
/// byte. A `---` line can only be a document marker at column 0 outside a quoted scalar;
/// block scalars are indented, so this matches what a YAML parser sees for manifests.
fn split_documents(input: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut separator = "";
    let mut start = 0;
    let mut pos = 0;
    for line in input.split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        let is_marker =
            trimmed == "---" || trimmed.starts_with("--- ") || trimmed.starts_with("---\t");
        if is_marker {
            if pos > 0 {
                docs.push(Document {
                    separator,
                    body: &input[start..pos],
                });
            }
            separator = &input[pos..pos + line.len()];
            start = pos + line.len();
        }
        pos += line.len();
    }
    docs.push(Document {
        separator,
        body: &input[start..],
    });
    docs
}

struct Ctx<'a, 'w> {
    opts: &'a Options,
    /// 1-based index of the YAML document, for messages; 0 for a single pod (the webhook).
    document: usize,
    /// The namespace (if named) of every pod template injected.
    pods: &'a mut Vec<Option<String>>,
    refused: &'a mut Vec<String>,
    matched: &'a mut BTreeSet<String>,
    warn: &'w mut dyn FnMut(String),
}

fn key(k: &str) -> Value {
    Value::String(k.to_owned())
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

/// The mapping at `path`, if every step exists.
fn mapping_at_mut<'v>(v: &'v mut Value, path: &[&str]) -> Option<&'v mut Mapping> {
    let mut cur = v;
    for p in path {
        cur = cur.get_mut(*p)?;
    }
    cur.as_mapping_mut()
}

/// A mapping under `key`, created (appended, or before `before` when given) if missing.
fn map_at<'m>(parent: &'m mut Mapping, k: &str, before: Option<&str>) -> Option<&'m mut Mapping> {
    if !parent.contains_key(k) || parent.get(k) == Some(&Value::Null) {
        insert_before(parent, k, Value::Mapping(Mapping::new()), before);
    }
    parent.get_mut(k)?.as_mapping_mut()
}

/// Insert `k` before the key `before` (or at the end when absent), keeping the order of the rest.
fn insert_before(map: &mut Mapping, k: &str, v: Value, before: Option<&str>) {
    if map.contains_key(k) {
        map.insert(key(k), v);
        return;
    }
    let Some(before) = before.filter(|b| map.contains_key(*b)) else {
        map.insert(key(k), v);
        return;
    };
    let old = std::mem::take(map);
    for (ok, ov) in old {
        if ok.as_str() == Some(before) {
            map.insert(key(k), v.clone());
        }
        map.insert(ok, ov);
    }
}

impl Ctx<'_, '_> {
    /// Where a message is about: "document N: ", or nothing for a single pod.
    fn place(&self) -> String {
        if self.document == 0 {
            String::new()
        } else {
            format!("document {}: ", self.document)
        }
    }

    fn object(&mut self, value: &mut Value, list_item: Option<usize>) {
        let Some(kind) = str_at(value, &["kind"]).map(str::to_owned) else {
            return;
        };
        let api = str_at(value, &["apiVersion"])
            .unwrap_or_default()
            .to_owned();
        let group = api.rsplit_once('/').map_or("", |(g, _)| g).to_owned();
        let name = describe(value, &kind, list_item);
        let namespace = str_at(value, &["metadata", "namespace"]).map(str::to_owned);
        if kind == "List" || (kind.ends_with("List") && value.get("items").is_some()) {
            if let Some(items) = value.get_mut("items").and_then(Value::as_sequence_mut) {
                for (i, item) in items.iter_mut().enumerate() {
                    self.object(item, Some(i + 1));
                }
            }
            return;
        }
        let known_group = matches!(group.as_str(), "" | "apps" | "batch" | "extensions");
        let path: &[&str] = match kind.as_str() {
            "Pod" if group.is_empty() => &[],
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" if known_group => {
                &["spec", "template"]
            }
            "CronJob" if known_group => &["spec", "jobTemplate", "spec", "template"],
            _ => {
                self.warn_skipped(value, &name, &api);
                return;
            }
        };
        if matches!(kind.as_str(), "Job" | "CronJob")
            && !self.run_to_completion(value, &kind, &name)
        {
            return;
        }
        let mut cur = value;
        for p in path {
            match cur.get_mut(*p) {
                Some(next) => cur = next,
                None => return,
            }
        }
        let Some(template) = cur.as_mapping_mut() else {
            return;
        };
        if !template.get("spec").is_some_and(Value::is_mapping) {
            return;
        }
        self.pods.push(namespace);
        self.pod(template, &name);
    }

    /// A kind inject does not handle but that carries a pod template (an Argo Rollout, a
    /// PodTemplate, a Knative Service...): say so, rather than pass it through silently.
    fn warn_skipped(&mut self, value: &Value, name: &str, api: &str) {
        let has_template = [
            &["spec", "template", "spec", "containers"][..],
            &["template", "spec", "containers"][..],
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers",
            ][..],
        ]
        .iter()
        .any(|path| {
            let mut cur = Some(value);
            for p in *path {
                cur = cur.and_then(|v| v.get(*p));
            }
            cur.is_some_and(Value::is_sequence)
        });
        if has_template {
            let place = self.place();
            (self.warn)(format!(
                "{place}{name} ({api}): has a pod template but is not a kind inject handles; skipped, passport NOT added (inject the pods it renders, or add the sidecar by hand)"
            ));
        }
    }

    /// A Job's or CronJob's pods must end: refuse a plain (non-native) sidecar, which never
    /// exits, and bound the wait for a passport that never becomes ready. `false`: refused.
    fn run_to_completion(&mut self, value: &mut Value, kind: &str, name: &str) -> bool {
        let place = self.place();
        if !self.opts.native {
            self.refused.push(format!(
                "{place}{name}: --no-native-sidecar on a {kind}: a plain passport container never exits, so the pod never completes; use a native sidecar (Kubernetes 1.29+)"
            ));
            return false;
        }
        let job_spec: &[&str] = if kind == "CronJob" {
            &["spec", "jobTemplate", "spec"]
        } else {
            &["spec"]
        };
        let deadline = self.opts.job_deadline;
        if let Some(spec) = mapping_at_mut(value, job_spec)
            && !spec.contains_key("activeDeadlineSeconds")
        {
            match deadline {
                Some(seconds) => {
                    spec.insert(key("activeDeadlineSeconds"), Value::Number(seconds.into()));
                }
                None => (self.warn)(format!(
                    "{place}{name}: no activeDeadlineSeconds: if passport never becomes ready (a wrong role, AccessDenied) the pod waits forever; set one, or pass --job-deadline SECONDS"
                )),
            }
        }
        if kind == "CronJob"
            && let Some(spec) = mapping_at_mut(value, &["spec"])
            && !spec.contains_key("concurrencyPolicy")
        {
            match deadline {
                Some(_) => {
                    spec.insert(key("concurrencyPolicy"), s("Forbid"));
                }
                None => (self.warn)(format!(
                    "{place}{name}: no concurrencyPolicy (default Allow): runs stuck waiting for passport pile up; set Forbid, or pass --job-deadline SECONDS"
                )),
            }
        }
        true
    }

    /// `template` holds `metadata` and `spec` (a Pod is its own template).
    fn pod(&mut self, template: &mut Mapping, name: &str) {
        let spec = template
            .get_mut("spec")
            .and_then(Value::as_mapping_mut)
            .expect("checked by the caller");
        if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
            self.refused.push(format!(
                "{}{name}: hostNetwork: true; passport serves credentials on 127.0.0.1, which would be the node's loopback, open to every pod on the node",
                self.place()
            ));
            return;
        }
        let place = self.place();
        let spec_value = Value::Mapping(spec.clone());
        if str_at(&spec_value, &["os", "name"]) == Some("windows")
            || str_at(&spec_value, &["nodeSelector", "kubernetes.io/os"]) == Some("windows")
        {
            (self.warn)(format!(
                "{place}{name}: a Windows pod; the passport image is Linux-only (linux/amd64, linux/arm64), the pod will not start"
            ));
        }
        let bad_names: Vec<String> = ["initContainers", "containers"]
            .iter()
            .filter_map(|l| spec.get(*l).and_then(Value::as_sequence))
            .flatten()
            .filter_map(|c| match c.get("name") {
                Some(Value::String(n)) if dns_label(n) => None,
                Some(Value::String(n)) => Some(format!("{n:?}")),
                Some(other) => Some(
                    serde_norway::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                ),
                None => Some("(none)".to_owned()),
            })
            .collect();
        if !bad_names.is_empty() {
            self.refused.push(format!(
                "{place}{name}: container names {}: not valid Kubernetes names (lowercase letters, digits and '-', at most 63); the API server would reject the pod, and eks.amazonaws.com/skip-containers could not list them",
                bad_names.join(", ")
            ));
            return;
        }
        let sidecars = ["initContainers", "containers"]
            .iter()
            .filter_map(|l| spec.get(*l).and_then(Value::as_sequence))
            .flatten()
            .filter(|c| str_at(c, &["name"]) == Some(CONTAINER_NAME))
            .count();
        if sidecars > 1 {
            self.refused.push(format!(
                "{place}{name}: {sidecars} containers named {CONTAINER_NAME:?}; container names must be unique in a pod"
            ));
            return;
        }
        let mut ports = PASSPORT_PORTS.to_vec();
        if self.opts.compat == Compat::RelativeUri {
            ports.push(RELATIVE_URI_PORT);
        }
        let clashes = port_clashes(spec, &ports);
        if !clashes.is_empty() {
            self.refused.push(format!(
                "{place}{name}: {}: passport listens on {} in the pod's network namespace",
                clashes.join(", "),
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            return;
        }
        let added_fs_group = injected_by_old_version(spec);
        let native = self.opts.native;
        let (home, away) = if native {
            ("initContainers", "containers")
        } else {
            ("containers", "initContainers")
        };
        // Take passport out of wherever it is, keeping its fields and, in the right list, its place.
        let mut existing = None;
        let mut position = 0;
        for list in ["initContainers", "containers"] {
            if let Some(seq) = spec.get_mut(list).and_then(Value::as_sequence_mut)
                && let Some(i) = seq
                    .iter()
                    .position(|c| str_at(c, &["name"]) == Some(CONTAINER_NAME))
            {
                let c = seq.remove(i);
                if list == home {
                    position = i;
                }
                existing = existing.or(Some(c));
                if seq.is_empty() && list == away {
                    spec.shift_remove(list);
                }
            }
        }
        let mut sidecar = match existing {
            Some(Value::Mapping(m)) => m,
            _ => Mapping::new(),
        };
        self.merge_sidecar(&mut sidecar);
        let before = if native { Some("containers") } else { None };
        if !spec.get(home).is_some_and(Value::is_sequence) {
            insert_before(spec, home, Value::Sequence(Vec::new()), before);
        }
        let seq = spec
            .get_mut(home)
            .and_then(Value::as_sequence_mut)
            .expect("just made");
        seq.insert(position.min(seq.len()), Value::Mapping(sidecar));
        self.redirect(spec);

        // The applications.
        let wanted: Vec<String> = match &self.opts.containers {
            Some(names) => names.clone(),
            None => spec
                .get("containers")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|c| str_at(c, &["name"]))
                .filter(|n| *n != CONTAINER_NAME)
                .map(str::to_owned)
                .collect(),
        };
        let mut env_names = Vec::new();
        for list in ["initContainers", "containers"] {
            let Some(seq) = spec.get_mut(list).and_then(Value::as_sequence_mut) else {
                continue;
            };
            for c in seq.iter_mut() {
                let Some(cname) = str_at(c, &["name"]).map(str::to_owned) else {
                    continue;
                };
                if cname == CONTAINER_NAME || !wanted.contains(&cname) {
                    continue;
                }
                if list == "initContainers" && !native {
                    let place = self.place();
                    (self.warn)(format!(
                        "{place}{name}: init container {cname:?} runs before a plain passport container; it gets no credentials env"
                    ));
                    continue;
                }
                if let Some(c) = c.as_mapping_mut() {
                    self.app_container(c, &format!("{place}{name}: container {cname:?}"));
                    self.matched.insert(cname.clone());
                    env_names.push(cname);
                }
            }
        }

        // Volumes.
        let volumes = spec
            .entry(key("volumes"))
            .or_insert_with(|| Value::Sequence(Vec::new()));
        if !volumes.is_sequence() {
            *volumes = Value::Sequence(Vec::new());
        }
        let volumes = volumes.as_sequence_mut().expect("just made");
        let auth_volume = if self.opts.compat == Compat::TokenEnv {
            SHARED_AUTH_VOLUME_YAML
        } else {
            AUTH_VOLUME_YAML
        };
        set_by_name(volumes, yaml(auth_volume));
        for redirect in REDIRECTS {
            if Some(redirect.level) != Some(self.opts.compat) {
                volumes.retain(|v| str_at(v, &["name"]) != Some(redirect.volume));
            }
        }
        if let Some(redirect) = REDIRECTS.iter().find(|r| r.level == self.opts.compat) {
            set_by_name(
                volumes,
                yaml(&format!(
                    "{{name: {}, emptyDir: {{medium: Memory, sizeLimit: 1Mi}}}}",
                    redirect.volume
                )),
            );
        }
        volumes.retain(|v| str_at(v, &["name"]) != Some(OLD_TOKEN_VOLUME));
        if self.opts.role_arn.is_some() {
            set_by_name(volumes, token_volume());
        }

        // No fsGroup: the auth token is 0644 inside the emptyDir (0444 from the Secret), so
        // any UID in a container that mounts it reads it, and no volume is re-grouped.
        // Earlier versions added `fsGroup: 65532` when the pod had none; that one goes.
        if added_fs_group
            && let Some(sc) = spec
                .get_mut("securityContext")
                .and_then(Value::as_mapping_mut)
            && sc.get("fsGroup").and_then(Value::as_u64) == Some(UID)
        {
            sc.shift_remove("fsGroup");
            if sc.is_empty() {
                spec.shift_remove("securityContext");
            }
            (self.warn)(format!(
                "{place}{name}: removed fsGroup: {UID}, which an earlier passport inject added (it re-groups every volume); re-add it if you set it yourself"
            ));
        }

        // Pod annotations.
        let before = if template.contains_key("spec") {
            Some("spec")
        } else {
            None
        };
        let Some(metadata) = map_at(template, "metadata", before) else {
            return;
        };
        let Some(annotations) = map_at(metadata, "annotations", None) else {
            return;
        };
        if !annotations
            .keys()
            .any(|k| k.as_str() == Some("prometheus.io/scrape"))
        {
            annotations.insert(key("prometheus.io/scrape"), s("true"));
            annotations.insert(key("prometheus.io/port"), s(&ADMIN_PORT.to_string()));
            annotations.insert(key("prometheus.io/path"), s("/metrics"));
        }
        if !env_names.is_empty() {
            let mut skip: Vec<String> = annotations
                .get(SKIP_CONTAINERS)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            let before = skip.clone();
            for n in env_names {
                if !skip.contains(&n) {
                    skip.push(n);
                }
            }
            if skip != before || !annotations.contains_key(SKIP_CONTAINERS) {
                annotations.insert(key(SKIP_CONTAINERS), s(&skip.join(",")));
            }
        }
    }

    /// The level's redirect init container first in `initContainers` (kept as it is when
    /// present), and no other level's.
    fn redirect(&self, spec: &mut Mapping) {
        // An empty list is removed only when this emptied it (kustomize leaves `[]` behind
        // when a patch moves passport out; that is the input's business).
        let mut emptied = false;
        if let Some(seq) = spec
            .get_mut("initContainers")
            .and_then(Value::as_sequence_mut)
        {
            let before = seq.len();
            seq.retain(|c| {
                !REDIRECTS
                    .iter()
                    .any(|r| r.level != self.opts.compat && str_at(c, &["name"]) == Some(r.name))
            });
            emptied = before > 0 && seq.is_empty();
        }
        let Some(redirect) = REDIRECTS.iter().find(|r| r.level == self.opts.compat) else {
            if emptied {
                spec.shift_remove("initContainers");
            }
            return;
        };
        if !spec.get("initContainers").is_some_and(Value::is_sequence) {
            insert_before(
                spec,
                "initContainers",
                Value::Sequence(Vec::new()),
                Some("containers"),
            );
        }
        let seq = spec
            .get_mut("initContainers")
            .and_then(Value::as_sequence_mut)
            .expect("just made");
        if !seq
            .iter()
            .any(|c| str_at(c, &["name"]) == Some(redirect.name))
        {
            seq.insert(0, redirect_container(redirect));
        }
    }

    fn merge_sidecar(&self, c: &mut Mapping) {
        // Switching between a generated and a shared token keeps the variable's place.
        let (auth_var, other_auth_var) = if self.opts.compat == Compat::TokenEnv {
            (
                "PASSPORT_SHARED_AUTH_TOKEN_FILE",
                "PASSPORT_AUTH_TOKEN_FILE",
            )
        } else {
            (
                "PASSPORT_AUTH_TOKEN_FILE",
                "PASSPORT_SHARED_AUTH_TOKEN_FILE",
            )
        };
        if let Some(Value::Sequence(env)) = c.get_mut("env") {
            rename_env(env, other_auth_var, auth_var);
            // Each level's own passport variables; IMDSv1 on only at the imds level.
            let mut foreign: Vec<&str> = match self.opts.compat {
                Compat::RelativeUri => vec!["PASSPORT_IMDS_ALLOW_V1"],
                Compat::Imds => vec!["PASSPORT_RELATIVE_URI_LISTEN"],
                Compat::Modern | Compat::TokenEnv => {
                    vec!["PASSPORT_IMDS_ALLOW_V1", "PASSPORT_RELATIVE_URI_LISTEN"]
                }
            };
            if self.opts.serves_imds() {
                foreign.push(DISABLE_IMDS_VAR);
            }
            if !self.opts.serves_imds() || self.opts.compat == Compat::Imds {
                foreign.push(IMDS_VAR);
            }
            if self.opts.compat == Compat::TokenEnv {
                foreign.push(AUTH_TOKEN_FILE_MODE_VAR);
            }
            env.retain(|e| !str_at(e, &["name"]).is_some_and(|n| foreign.contains(&n)));
        }
        if let Some(Value::Sequence(mounts)) = c.get_mut("volumeMounts") {
            mounts.retain(|m| str_at(m, &["name"]) != Some(OLD_TOKEN_VOLUME));
        }
        // The legacy hook belongs to a plain container only.
        if self.opts.native && is_wait_ready_hook(c.get("lifecycle")) {
            c.shift_remove("lifecycle");
        }
        let canonical = sidecar_container(self.opts);
        for (k, v) in canonical {
            let ks = k.as_str().unwrap_or_default().to_owned();
            match (ks.as_str(), c.get_mut(&ks)) {
                ("env" | "ports" | "volumeMounts", Some(Value::Sequence(have))) => {
                    for item in v.as_sequence().into_iter().flatten() {
                        set_by_name_key(have, item.clone(), merge_key(&ks));
                    }
                    continue;
                }
                // Sizing is the operator's call; only a missing one is filled in, and a CPU
                // limit asked for on the command line.
                ("resources", Some(have)) => {
                    if let Some(cpu) = &self.opts.cpu_limit
                        && let Some(resources) = have.as_mapping_mut()
                        && let Some(limits) = map_at(resources, "limits", None)
                    {
                        limits.insert(key("cpu"), s(cpu));
                    }
                    continue;
                }
                _ => {}
            }
            c.insert(k, v);
        }
        if !self.opts.native {
            c.shift_remove("restartPolicy");
        }
    }

    /// `who` names the container in messages.
    fn app_container(&mut self, c: &mut Mapping, who: &str) {
        // The container's role: the default one, or an extra role at its own path.
        let role_path = c
            .get("name")
            .and_then(Value::as_str)
            .and_then(|name| self.opts.container_roles.get(name))
            .map(|role| format!("/{role}"))
            .unwrap_or_default();
        let env = c
            .entry(key("env"))
            .or_insert_with(|| Value::Sequence(Vec::new()));
        if !env.is_sequence() {
            *env = Value::Sequence(Vec::new());
        }
        let env = env.as_sequence_mut().expect("just made");
        // inject owns the application's AWS_CONTAINER_* variables: exactly the level's set.
        const FULL: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
        const RELATIVE: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
        const TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
        const TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
        let remove = |env: &mut Vec<Value>, names: &[&str]| {
            env.retain(|e| !str_at(e, &["name"]).is_some_and(|n| names.contains(&n)));
        };
        // Variables an SDK reads before the container endpoint. Web identity (the IRSA
        // setup passport replaces) goes, with a warning; static keys and profiles are a
        // deliberate other identity: refused, not silently dropped.
        let present: Vec<String> = env
            .iter()
            .filter_map(|e| str_at(e, &["name"]))
            .filter(|n| SHADOWING_REFUSED.contains(n) || SHADOWING_REMOVED.contains(n))
            .map(str::to_owned)
            .collect();
        let refused: Vec<&String> = present
            .iter()
            .filter(|n| SHADOWING_REFUSED.contains(&n.as_str()))
            .collect();
        if !refused.is_empty() {
            self.refused.push(format!(
                "{who} sets {}: SDKs use these before the container endpoint, so passport would be bypassed; remove them first",
                refused.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        let removed: Vec<&String> = present
            .iter()
            .filter(|n| SHADOWING_REMOVED.contains(&n.as_str()))
            .collect();
        if !removed.is_empty() {
            (self.warn)(format!(
                "{who}: removed {} (SDKs prefer web identity to the container endpoint; passport does the exchange)",
                removed
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            remove(env, SHADOWING_REMOVED);
        }
        match self.opts.compat {
            Compat::Modern | Compat::TokenEnv => {
                rename_env(env, RELATIVE, FULL);
                set_env(env, FULL, &format!("{CREDENTIALS_URI}{role_path}"));
                set_env(env, TOKEN_FILE, AUTH_TOKEN_FILE);
                if self.opts.compat == Compat::TokenEnv {
                    set_by_name(
                        env,
                        yaml(&format!(
                            "{{name: {TOKEN}, valueFrom: {{secretKeyRef: {{name: {SHARED_SECRET}, key: {SHARED_SECRET_KEY}}}}}}}"
                        )),
                    );
                    remove(env, &[RELATIVE]);
                } else {
                    remove(env, &[RELATIVE, TOKEN]);
                }
            }
            Compat::RelativeUri => {
                rename_env(env, FULL, RELATIVE);
                set_env(
                    env,
                    RELATIVE,
                    &format!("{}{role_path}", passport_core::server::container::PATH),
                );
                remove(env, &[FULL, TOKEN, TOKEN_FILE]);
            }
            Compat::Imds => remove(env, &[FULL, RELATIVE, TOKEN, TOKEN_FILE]),
        }
        if self.opts.serves_imds() {
            set_env(
                env,
                crate::env::EC2_METADATA_SERVICE_ENDPOINT,
                IMDS_ENDPOINT,
            );
        } else {
            env.retain(|e| {
                !(str_at(e, &["name"]) == Some("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                    && str_at(e, &["value"]) == Some(IMDS_ENDPOINT))
            });
        }
        let mut has_no_proxy = false;
        for e in env.iter_mut() {
            if matches!(str_at(e, &["name"]), Some("NO_PROXY" | "no_proxy")) {
                has_no_proxy = true;
                if let Some(v) = e.as_mapping_mut()
                    && let Some(Value::String(list)) = v.get_mut("value")
                {
                    *list = no_proxy(list);
                }
            }
        }
        if !has_no_proxy {
            set_env(env, "NO_PROXY", &no_proxy(""));
        }
        let mounts = c
            .entry(key("volumeMounts"))
            .or_insert_with(|| Value::Sequence(Vec::new()));
        if !mounts.is_sequence() {
            *mounts = Value::Sequence(Vec::new());
        }
        set_by_name(
            mounts.as_sequence_mut().expect("just made"),
            map([
                ("name", s(AUTH_VOLUME)),
                ("mountPath", s(AUTH_DIR)),
                ("readOnly", Value::Bool(true)),
            ]),
        );
    }
}

/// `127.0.0.1` and `localhost` added to a `NO_PROXY` list, nothing removed.
fn no_proxy(existing: &str) -> String {
    let mut items: Vec<&str> = existing
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    for needed in ["127.0.0.1", "localhost"] {
        if !items.contains(&needed) {
            items.push(needed);
        }
    }
    items.join(",")
}

fn merge_key(list: &str) -> &'static str {
    if list == "volumeMounts" {
        "mountPath"
    } else {
        "name"
    }
}

fn set_env(env: &mut Vec<Value>, name: &str, value: &str) {
    let mut m = Mapping::new();
    m.insert(key("name"), s(name));
    m.insert(key("value"), s(value));
    set_by_name(env, Value::Mapping(m));
}

fn set_by_name(seq: &mut Vec<Value>, item: Value) {
    set_by_name_key(seq, item, "name");
}

/// Replace the entry with the same `field` in place, or append.
fn set_by_name_key(seq: &mut Vec<Value>, item: Value, field: &str) {
    let id = str_at(&item, &[field]).map(str::to_owned);
    match seq
        .iter_mut()
        .find(|e| str_at(e, &[field]).map(str::to_owned) == id)
    {
        Some(slot) => *slot = item,
        None => seq.push(item),
    }
}

fn describe(value: &Value, kind: &str, list_item: Option<usize>) -> String {
    let name = str_at(value, &["metadata", "name"])
        .or_else(|| str_at(value, &["metadata", "generateName"]))
        .unwrap_or("<unnamed>");
    let object = match str_at(value, &["metadata", "namespace"]) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    match list_item {
        Some(i) => format!("List item {i}: {object}"),
        None => object,
    }
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).expect("built-in YAML")
}

const AUTH_VOLUME_YAML: &str = "
name: passport-auth
emptyDir:
  medium: Memory
  sizeLimit: 1Mi
";

/// The token-env level: the shared Secret where the generated token's emptyDir would be
/// (0444: whoever mounts it reads it, whatever its UID; no fsGroup needed).
const SHARED_AUTH_VOLUME_YAML: &str = "
name: passport-auth
secret:
  secretName: passport-auth-token
  defaultMode: 292
";

/// The init container that redirects a link-local address to passport in the pod's own
/// network namespace, for the levels whose SDKs cannot be pointed anywhere else.
struct Redirect {
    level: Compat,
    name: &'static str,
    volume: &'static str,
    destination: &'static str,
    port: u16,
}

const REDIRECTS: [Redirect; 2] = [
    Redirect {
        level: Compat::RelativeUri,
        name: "relative-uri-redirect",
        volume: "relative-uri-redirect-run",
        destination: "169.254.170.2/32",
        port: 9913,
    },
    Redirect {
        level: Compat::Imds,
        name: "imds-redirect",
        volume: "imds-redirect-run",
        destination: "169.254.169.254/32",
        port: 9911,
    },
];

/// Pinned by digest; the same image in the overlays.
pub const IPTABLES_IMAGE: &str = "registry.k8s.io/build-image/distroless-iptables:v0.9.1@sha256:d0ae8abdbeb270570664a7364ded872c5e8f58eea09d8fb4b46e972b7291eacb";

fn redirect_container(r: &Redirect) -> Value {
    yaml(&format!(
        "\
name: {name}
image: {IPTABLES_IMAGE}
command:
- iptables
- --wait
- --table
- nat
- --append
- OUTPUT
- --protocol
- tcp
- --destination
- {destination}
- --dport
- \"80\"
- --jump
- REDIRECT
- --to-ports
- \"{port}\"
resources:
  requests:
    cpu: 10m
    memory: 16Mi
  limits:
    memory: 64Mi
securityContext:
  runAsNonRoot: false
  runAsUser: 0
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities:
    drop:
    - ALL
    add:
    - NET_ADMIN
    - NET_RAW
  seccompProfile:
    type: RuntimeDefault
volumeMounts:
- name: {volume}
  mountPath: /run
",
        name = r.name,
        destination = r.destination,
        port = r.port,
        volume = r.volume,
    ))
}

/// The token-env Secret, with a fresh random token (32 bytes from the OS-seeded CSPRNG, hex):
/// what passport reads with --shared-auth-token-file and the application gets as
/// AWS_CONTAINER_AUTHORIZATION_TOKEN.
fn shared_secret_document(namespace: Option<&str>) -> String {
    let token = passport_core::auth::generate();
    let namespace = namespace
        .map(|ns| format!("  namespace: {ns}\n"))
        .unwrap_or_default();
    format!(
        "---\n# passport --compat token-env: the client auth token shared by passport and the application.\n\
         # Random, generated by `passport inject`; rotate it by replacing the value and restarting the pods.\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: {SHARED_SECRET}\n{namespace}type: Opaque\nstringData:\n  {SHARED_SECRET_KEY}: \"{}\"\n",
        token.expose()
    )
}

/// Rename the env entry `from` to `to` in place (keeping its position), unless `to` exists.
fn rename_env(env: &mut [Value], from: &str, to: &str) {
    if env.iter().any(|e| str_at(e, &["name"]) == Some(to)) {
        return;
    }
    if let Some(Value::Mapping(m)) = env.iter_mut().find(|e| str_at(e, &["name"]) == Some(from)) {
        m.insert(key("name"), s(to));
    }
}

/// The projected web-identity token, as the EKS webhook projects it (name, audience, path).
fn token_volume() -> Value {
    map([
        ("name", s(TOKEN_VOLUME)),
        (
            "projected",
            map([(
                "sources",
                seq([map([(
                    "serviceAccountToken",
                    map([
                        ("audience", s("sts.amazonaws.com")),
                        ("expirationSeconds", num(3600)),
                        ("path", s("token")),
                    ]),
                )])]),
            )]),
        ),
    ])
}

/// On application containers: removed (web identity, which passport takes over).
const SHADOWING_REMOVED: &[&str] = &[
    crate::env::WEB_IDENTITY_TOKEN_FILE,
    crate::env::ROLE_ARN,
    crate::env::ROLE_SESSION_NAME,
];
/// On application containers: refused (another identity, set on purpose).
const SHADOWING_REFUSED: &[&str] = &[
    crate::env::ACCESS_KEY_ID,
    crate::env::SECRET_ACCESS_KEY,
    crate::env::SESSION_TOKEN,
    crate::env::SECURITY_TOKEN,
    crate::env::PROFILE,
    crate::env::DEFAULT_PROFILE,
];

/// A DNS-1123 label, what Kubernetes requires of a container name.
fn dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// `containerPort`s of the pod's other containers that passport needs.
fn port_clashes(spec: &Mapping, ports: &[u16]) -> Vec<String> {
    let mut clashes = Vec::new();
    for list in ["initContainers", "containers"] {
        for c in spec
            .get(list)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let cname = str_at(c, &["name"]).unwrap_or("<unnamed>");
            if cname == CONTAINER_NAME {
                continue;
            }
            for port in c
                .get("ports")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                if let Some(n) = port.get("containerPort").and_then(Value::as_u64)
                    && ports.iter().any(|p| u64::from(*p) == n)
                {
                    clashes.push(format!("container {cname:?} has containerPort {n}"));
                }
            }
        }
    }
    clashes
}

/// The pod holds passport from an inject that still added `fsGroup` (its sidecar has no
/// token-file mode, or its token-env Secret volume the old 0440 mode).
fn injected_by_old_version(spec: &Mapping) -> bool {
    let Some(sidecar) = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_sequence))
        .flatten()
        .find(|c| str_at(c, &["name"]) == Some(CONTAINER_NAME))
    else {
        return false;
    };
    let env_has = |name: &str| {
        sidecar
            .get("env")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .any(|e| str_at(e, &["name"]) == Some(name))
    };
    if env_has("PASSPORT_SHARED_AUTH_TOKEN_FILE") {
        spec.get("volumes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter(|v| str_at(v, &["name"]) == Some(AUTH_VOLUME))
            .any(|v| {
                v.get("secret")
                    .and_then(|s| s.get("defaultMode"))
                    .and_then(Value::as_u64)
                    == Some(0o440)
            })
    } else {
        !env_has(AUTH_TOKEN_FILE_MODE_VAR)
    }
}

/// The `lifecycle` inject gives a plain passport container.
fn is_wait_ready_hook(lifecycle: Option<&Value>) -> bool {
    lifecycle
        .and_then(|l| l.get("postStart"))
        .and_then(|p| p.get("exec"))
        .and_then(|e| e.get("command"))
        .and_then(Value::as_sequence)
        .is_some_and(|cmd| cmd.get(1).and_then(Value::as_str) == Some("wait-ready"))
}

/// A mapping from `(key, value)` pairs, in order.
fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(pairs.into_iter().map(|(k, v)| (key(k), v)).collect())
}

fn seq<const N: usize>(items: [Value; N]) -> Value {
    Value::Sequence(items.into())
}

fn num(n: u64) -> Value {
    Value::Number(n.into())
}

fn env_value(name: &str, value: &str) -> Value {
    map([("name", s(name)), ("value", s(value))])
}

fn env_field(name: &str, field_path: &str) -> Value {
    map([
        ("name", s(name)),
        (
            "valueFrom",
            map([("fieldRef", map([("fieldPath", s(field_path))]))]),
        ),
    ])
}

fn http_probe(path: &str, period: u64, timeout: u64, failures: u64) -> Value {
    map([
        (
            "httpGet",
            map([("path", s(path)), ("port", s(ADMIN_PORT_NAME))]),
        ),
        ("periodSeconds", num(period)),
        ("timeoutSeconds", num(timeout)),
        ("failureThreshold", num(failures)),
    ])
}

/// The passport container for these options, fields in the order they are written. Built
/// as typed YAML: an option's value is always a string scalar, whatever its characters.
pub fn sidecar_container(opts: &Options) -> Mapping {
    let mut c = Mapping::new();
    c.insert(key("name"), s(CONTAINER_NAME));
    c.insert(key("image"), s(&opts.image));
    if opts.native {
        c.insert(key("restartPolicy"), s("Always"));
    }
    c.insert(key("args"), seq([s("serve")]));
    // Native: the kubelet stops sidecars only after the applications have exited, so there
    // is nobody left to drain for. Plain container: SIGTERM reaches app and passport at
    // once; keep serving while the app shuts down.
    let drain = if opts.native { "0s" } else { "10s" };
    let mut env = Vec::new();
    if opts.compat == Compat::TokenEnv {
        env.push(env_value(
            "PASSPORT_SHARED_AUTH_TOKEN_FILE",
            AUTH_TOKEN_FILE,
        ));
    } else {
        env.push(env_value("PASSPORT_AUTH_TOKEN_FILE", AUTH_TOKEN_FILE));
        // World-readable inside the emptyDir: only containers that mount the volume can
        // reach the file, so the mount is the boundary; no fsGroup re-grouping of volumes.
        env.push(env_value(AUTH_TOKEN_FILE_MODE_VAR, AUTH_TOKEN_FILE_MODE));
    }
    env.push(env_value("PASSPORT_DRAIN_DELAY", drain));
    env.push(env_field("POD_NAME", "metadata.name"));
    env.push(env_field("POD_NAMESPACE", "metadata.namespace"));
    match opts.compat {
        Compat::RelativeUri => env.push(env_value(
            "PASSPORT_RELATIVE_URI_LISTEN",
            RELATIVE_URI_LISTEN,
        )),
        Compat::Imds => env.push(env_value("PASSPORT_IMDS_ALLOW_V1", "true")),
        Compat::Modern | Compat::TokenEnv => {}
    }
    // Explicit both ways, so the manifest means the same to any passport version.
    if !opts.serves_imds() {
        env.push(env_value(DISABLE_IMDS_VAR, "true"));
    } else if opts.compat != Compat::Imds {
        env.push(env_value(IMDS_VAR, "true"));
    }
    if let Some(arn) = &opts.role_arn {
        env.push(env_value(crate::env::ROLE_ARN, arn));
    }
    if let Some(region) = &opts.region {
        env.push(env_value(crate::env::REGION, region));
    }
    if let Some(arn) = &opts.chain_role_arn {
        env.push(env_value("PASSPORT_CHAIN_ROLE_ARN", arn));
    }
    if !opts.extra_roles.is_empty() {
        env.push(env_value(EXTRA_ROLES_VAR, &opts.extra_roles.join(" ")));
    }
    c.insert(key("env"), Value::Sequence(env));
    c.insert(
        key("ports"),
        seq([map([
            ("name", s(ADMIN_PORT_NAME)),
            ("containerPort", num(ADMIN_PORT.into())),
            ("protocol", s("TCP")),
        ])]),
    );
    // `--no-startup-gate`: the probe passes once passport is up, before it has
    // credentials, so an application that reports failures itself (the check Job) starts.
    let startup_path = if opts.startup_gate {
        "/readyz"
    } else {
        "/healthz"
    };
    c.insert(key("startupProbe"), http_probe(startup_path, 1, 1, 120));
    c.insert(key("livenessProbe"), http_probe("/healthz", 10, 2, 3));
    if !opts.native {
        // A plain container: the kubelet starts the next container only once this hook
        // returns, so the applications start after passport is ready (what the startup
        // probe does for a native sidecar).
        c.insert(
            key("lifecycle"),
            map([(
                "postStart",
                map([(
                    "exec",
                    map([(
                        "command",
                        seq([
                            s("/passport"),
                            s("wait-ready"),
                            s("--timeout"),
                            s(WAIT_READY_TIMEOUT),
                        ]),
                    )]),
                )]),
            )]),
        );
    }
    let mut limits = Mapping::new();
    if let Some(cpu) = &opts.cpu_limit {
        limits.insert(key("cpu"), s(cpu));
    }
    limits.insert(key("memory"), s("64Mi"));
    c.insert(
        key("resources"),
        map([
            ("requests", map([("cpu", s("10m")), ("memory", s("16Mi"))])),
            ("limits", Value::Mapping(limits)),
        ]),
    );
    c.insert(
        key("securityContext"),
        map([
            ("runAsNonRoot", Value::Bool(true)),
            ("runAsUser", num(UID)),
            ("runAsGroup", num(UID)),
            ("readOnlyRootFilesystem", Value::Bool(true)),
            ("allowPrivilegeEscalation", Value::Bool(false)),
            ("capabilities", map([("drop", seq([s("ALL")]))])),
            ("seccompProfile", map([("type", s("RuntimeDefault"))])),
        ]),
    );
    let mut mounts = vec![map([("name", s(AUTH_VOLUME)), ("mountPath", s(AUTH_DIR))])];
    if opts.role_arn.is_some() {
        mounts.push(map([
            ("name", s(TOKEN_VOLUME)),
            ("mountPath", s(TOKEN_MOUNT)),
            ("readOnly", Value::Bool(true)),
        ]));
    }
    c.insert(key("volumeMounts"), Value::Sequence(mounts));
    c.insert(key("terminationMessagePolicy"), s("FallbackToLogsOnError"));
    c
}

#[cfg(test)]
impl InjectArgs {
    fn parse_from_for_test(flags: &[&str]) -> Self {
        use clap::{FromArgMatches, Parser};
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            args: InjectArgs,
        }
        let matches = <Cmd as clap::CommandFactory>::command()
            .get_matches_from(std::iter::once("inject").chain(flags.iter().copied()));
        Cmd::from_arg_matches(&matches).unwrap().args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, opts: &Options) -> String {
        inject_str(input, opts, &mut |w| panic!("unexpected warning: {w}")).unwrap()
    }

    #[test]
    fn documents_split_keeping_text() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- # x\n\n");
        assert_eq!(docs.len(), 3);
        assert_eq!((docs[0].separator, docs[0].body), ("", "a: 1\n"));
        assert_eq!((docs[1].separator, docs[1].body), ("---\n", "b: 2\n"));
        assert_eq!((docs[2].separator, docs[2].body), ("--- # x\n", "\n"));
        let docs = split_documents("---\na: 1\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].separator, "---\n");
        let docs = split_documents("key: |\n  ---\n  text\n");
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn untouched_documents_keep_their_bytes() {
        let input = "# a comment\nkind: ConfigMap\napiVersion: v1\ndata: {'x': \"1\"}\n---\n";
        assert_eq!(run(input, &Options::default()), input);
    }

    #[test]
    fn sidecar_uses_the_constants() {
        let c = sidecar_container(&Options::default());
        assert_eq!(c.get("image").and_then(Value::as_str), Some(DEFAULT_IMAGE));
        assert_eq!(
            c.get("restartPolicy").and_then(Value::as_str),
            Some("Always")
        );
        let legacy = sidecar_container(&Options {
            native: false,
            ..Options::default()
        });
        assert!(!legacy.contains_key("restartPolicy"));
    }

    #[test]
    fn no_proxy_is_extended_not_replaced() {
        assert_eq!(no_proxy(""), "127.0.0.1,localhost");
        assert_eq!(no_proxy("a.svc, localhost"), "a.svc,localhost,127.0.0.1");
    }

    #[test]
    fn host_network_is_refused_by_name() {
        let input = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: x}]\n";
        let err = inject_str(input, &Options::default(), &mut |_| {}).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Pod n/p"), "{text}");
        assert!(text.contains("hostNetwork"), "{text}");
    }

    #[test]
    fn one_pod_template_gets_the_same_mutation_as_a_document() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: x}]\n";
        let whole: Value = serde_norway::from_str(&run(pod, &Options::default())).unwrap();
        let Value::Mapping(mut single) = serde_norway::from_str(pod).unwrap() else {
            unreachable!()
        };
        inject_pod_template(&mut single, &Options::default(), "Pod p", &mut |w| {
            panic!("unexpected warning: {w}")
        })
        .unwrap();
        assert_eq!(Value::Mapping(single), whole);

        let host = "metadata: {name: h}\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: x}]\n";
        let Value::Mapping(mut template) = serde_norway::from_str(host).unwrap() else {
            unreachable!()
        };
        let before = template.clone();
        let refused = inject_pod_template(&mut template, &Options::default(), "Pod h", &mut |_| {})
            .unwrap_err();
        assert!(refused[0].starts_with("Pod h: hostNetwork"), "{refused:?}");
        assert_eq!(template, before, "a refused pod is left as it was");
    }

    #[test]
    fn port_9913_clashes_only_at_the_relative_uri_level() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: x, ports: [{containerPort: 9913}]}]\n";
        assert!(inject_str(pod, &Options::default(), &mut |_| {}).is_ok());
        let relative = Options {
            compat: Compat::RelativeUri,
            ..Options::default()
        };
        let err = inject_str(pod, &relative, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("container \"a\" has containerPort 9913"),
            "{err}"
        );
    }

    #[test]
    fn chain_role_arn_reaches_the_sidecar_env_and_is_validated() {
        let opts = Options {
            chain_role_arn: Some("arn:aws:iam::444455556666:role/target".into()),
            ..Options::default()
        };
        let c = sidecar_container(&opts);
        let env = serde_norway::to_string(c.get("env").unwrap()).unwrap();
        assert!(
            env.contains(
                "name: PASSPORT_CHAIN_ROLE_ARN\n  value: arn:aws:iam::444455556666:role/target"
            ),
            "{env}"
        );
        let args = InjectArgs::parse_from_for_test(&["--chain-role-arn", "not-an-arn"]);
        let err = Options::from_args(&args).unwrap_err().to_string();
        assert!(err.contains("--chain-role-arn \"not-an-arn\""), "{err}");
    }
}
