//! AdmissionReview (admission.k8s.io/v1) in, decision out: pure functions, no I/O.
//!
//! A review goes through two steps, so the ServiceAccount lookup (the only I/O) sits
//! between them: [`parse`] the body and find which ServiceAccount to read ([`Request::wants`]),
//! then [`decide`] with what the lookup found. The mutation itself is
//! [`inject::inject_pod_template`], the one `passport inject` applies; the response carries
//! the element-wise JSON Patch from the pod as it came to the pod as inject leaves it.
//!
//! Which settings apply, per key, the pod's annotation first, then the ServiceAccount's:
//! `passport.dev/role-arn`, `passport.dev/chain-role-arn`, `passport.dev/compat`. A pod may
//! name its own role: the role's trust policy still decides, since STS checks the pod's
//! ServiceAccount token against it, so this grants nothing the ServiceAccount could not
//! get. `passport.dev/skip-containers` is read from the pod only (it names its containers).

use std::collections::BTreeMap;

use clap::ValueEnum;
use serde_json::{Value, json};

use super::patch;
use crate::commands::inject;
use crate::compat::Compat;

/// The pod label that opts a pod in (also the webhook's objectSelector).
pub const INJECT_LABEL: &str = "passport.dev/inject";
pub const ROLE_ANNOTATION: &str = "passport.dev/role-arn";
pub const CHAIN_ROLE_ANNOTATION: &str = "passport.dev/chain-role-arn";
pub const COMPAT_ANNOTATION: &str = "passport.dev/compat";
pub const SKIP_ANNOTATION: &str = "passport.dev/skip-containers";

/// Whether the regular container `name` mounts passport's auth-token volume.
fn mounts_auth_token(pod: &Value, name: &str) -> bool {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| str_at(c, "/name") == Some(name))
        .flat_map(|c| {
            c.get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .any(|m| str_at(m, "/name") == Some(inject::AUTH_VOLUME))
}

/// A review request, as much of it as a decision needs.
#[derive(Debug, Clone)]
pub struct Request {
    pub uid: String,
    /// `admission.k8s.io/v1`: echoed back.
    pub api_version: String,
    pub namespace: String,
    pub operation: String,
    /// `group/version/kind` of the object, e.g. `/v1/Pod`.
    pub kind: (String, String, String),
    pub object: Value,
}

/// Why a body is not a review (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReview(pub String);

/// Parse a request body. Any JSON that is not an AdmissionReview v1 with a request and a
/// uid is a [`BadReview`].
pub fn parse(body: &[u8]) -> Result<Request, BadReview> {
    let bad = |m: &str| BadReview(m.to_owned());
    let review: Value =
        serde_json::from_slice(body).map_err(|e| BadReview(format!("body is not JSON: {e}")))?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    if s(&review, "kind").as_deref() != Some("AdmissionReview") {
        return Err(bad("not an AdmissionReview (kind)"));
    }
    let api_version = s(&review, "apiVersion").unwrap_or_default();
    if api_version != "admission.k8s.io/v1" {
        return Err(bad(
            "apiVersion must be admission.k8s.io/v1 (admissionReviewVersions: [v1])",
        ));
    }
    let request = review
        .get("request")
        .filter(|r| r.is_object())
        .ok_or_else(|| bad("AdmissionReview has no request"))?;
    let uid = s(request, "uid")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| bad("request.uid missing"))?;
    let kind = request.get("kind").cloned().unwrap_or(Value::Null);
    Ok(Request {
        uid,
        api_version,
        namespace: s(request, "namespace").unwrap_or_default(),
        operation: s(request, "operation").unwrap_or_default(),
        kind: (
            s(&kind, "group").unwrap_or_default(),
            s(&kind, "version").unwrap_or_default(),
            s(&kind, "kind").unwrap_or_default(),
        ),
        object: request.get("object").cloned().unwrap_or(Value::Null),
    })
}

/// A ServiceAccount to look up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SaRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for SaRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the ServiceAccount lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaLookup {
    /// Its annotations.
    Found(BTreeMap<String, String>),
    NotFound,
    /// The API server could not be asked (the message names no secret).
    Failed(String),
}

impl Request {
    fn is_pod_create(&self) -> bool {
        self.kind.0.is_empty()
            && self.kind.1 == "v1"
            && self.kind.2 == "Pod"
            && self.operation == "CREATE"
    }

    /// Pod label opt-in.
    pub fn opted_in(&self) -> bool {
        self.is_pod_create()
            && self
                .object
                .pointer("/metadata/labels")
                .and_then(|l| l.get(INJECT_LABEL))
                .and_then(Value::as_str)
                == Some("true")
    }

    fn namespace(&self) -> String {
        if !self.namespace.is_empty() {
            return self.namespace.clone();
        }
        str_at(&self.object, "/metadata/namespace")
            .unwrap_or("default")
            .to_owned()
    }

    /// The ServiceAccount whose annotations this review needs; `None` when the pod did not opt in.
    pub fn wants(&self) -> Option<SaRef> {
        if !self.opted_in() {
            return None;
        }
        let name = str_at(&self.object, "/spec/serviceAccountName")
            .or_else(|| str_at(&self.object, "/spec/serviceAccount"))
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        Some(SaRef {
            namespace: self.namespace(),
            name: name.to_owned(),
        })
    }

    /// `pod ns/name` (or `ns/generateName*` for pods a controller creates).
    fn pod_name(&self) -> String {
        let name = str_at(&self.object, "/metadata/name")
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .or_else(|| str_at(&self.object, "/metadata/generateName").map(|g| format!("{g}*")))
            .unwrap_or_else(|| "(unnamed)".into());
        format!("pod {}/{name}", self.namespace())
    }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The decision on one review.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub uid: String,
    pub api_version: String,
    pub allowed: bool,
    /// Denials: the message the user sees (`kubectl` prints it).
    pub message: Option<String>,
    pub patch: Vec<patch::Op>,
    pub warnings: Vec<String>,
    pub result: Outcome,
}

/// For metrics: what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not a pod that opted in.
    Skipped,
    Mutated,
    /// Opted in and already injected: empty patch (reinvocation).
    Unchanged,
    Denied,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Skipped => "skipped",
            Outcome::Mutated => "mutated",
            Outcome::Unchanged => "unchanged",
            Outcome::Denied => "denied",
        }
    }
    pub const ALL: [Outcome; 4] = [
        Outcome::Skipped,
        Outcome::Mutated,
        Outcome::Unchanged,
        Outcome::Denied,
    ];
}

impl Response {
    fn new(req: &Request, result: Outcome) -> Self {
        Self {
            uid: req.uid.clone(),
            api_version: req.api_version.clone(),
            allowed: result != Outcome::Denied,
            message: None,
            patch: Vec::new(),
            warnings: Vec::new(),
            result,
        }
    }

    fn deny(req: &Request, message: String) -> Self {
        Self {
            message: Some(message),
            ..Self::new(req, Outcome::Denied)
        }
    }

    /// The AdmissionReview answered.
    pub fn to_review(&self) -> Value {
        let mut response = json!({"uid": self.uid, "allowed": self.allowed});
        if let Some(message) = &self.message {
            response["status"] = json!({"code": 403, "reason": "Forbidden", "message": message});
        }
        if !self.patch.is_empty() {
            use base64::Engine;
            let body = serde_json::to_vec(&patch::to_json(&self.patch)).unwrap_or_default();
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
        }
        if !self.warnings.is_empty() {
            response["warnings"] = json!(self.warnings);
        }
        json!({"apiVersion": self.api_version, "kind": "AdmissionReview", "response": response})
    }
}

/// Decide on a review. `base` holds the webhook's own settings (image, region, native, IMDS);
/// `sa` is what the lookup of [`Request::wants`] found (ignored when it wants none).
pub fn decide(req: &Request, base: &inject::Options, sa: &SaLookup) -> Response {
    let Some(sa_ref) = req.wants() else {
        return Response::new(req, Outcome::Skipped);
    };
    let pod = req.pod_name();
    let empty = BTreeMap::new();
    let sa_annotations = match sa {
        SaLookup::Found(a) => a,
        SaLookup::NotFound => &empty,
        SaLookup::Failed(why) => {
            return Response::deny(
                req,
                format!(
                    "passport: cannot read ServiceAccount {sa_ref} for its {ROLE_ANNOTATION} annotation ({why}); {pod} is refused rather than started without credentials"
                ),
            );
        }
    };
    let pod_annotations: BTreeMap<String, String> = req
        .object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    // (value, where it came from) for a key: the pod's first.
    let setting = |k: &str| -> Option<(String, String)> {
        if let Some(v) = pod_annotations.get(k) {
            return Some((v.trim().to_owned(), format!("on {pod}")));
        }
        sa_annotations
            .get(k)
            .map(|v| (v.trim().to_owned(), format!("on ServiceAccount {sa_ref}")))
    };
    let mut problems = Vec::new();
    let mut opts = base.clone();
    opts.secret = false;
    match setting(ROLE_ANNOTATION) {
        Some((arn, place)) => match arn.parse::<passport_core::aws::RoleArn>() {
            Ok(_) => opts.role_arn = Some(arn),
            Err(why) => problems.push(format!(
                "annotation {ROLE_ANNOTATION} {arn:?} {place}: {why}"
            )),
        },
        None => {
            let missing = if *sa == SaLookup::NotFound {
                format!("ServiceAccount {sa_ref} does not exist")
            } else {
                format!("ServiceAccount {sa_ref} has no annotation {ROLE_ANNOTATION}")
            };
            return Response::deny(
                req,
                format!(
                    "passport: {pod} has the label {INJECT_LABEL}=true but no IAM role: {missing} (nor has the pod). Annotate it: kubectl annotate serviceaccount -n {} {} {ROLE_ANNOTATION}=arn:aws:iam::ACCOUNT:role/NAME",
                    sa_ref.namespace, sa_ref.name
                ),
            );
        }
    }
    if let Some((arn, place)) = setting(CHAIN_ROLE_ANNOTATION) {
        match arn.parse::<passport_core::aws::RoleArn>() {
            Ok(_) => opts.chain_role_arn = Some(arn),
            Err(why) => problems.push(format!(
                "annotation {CHAIN_ROLE_ANNOTATION} {arn:?} {place}: {why}"
            )),
        }
    }
    if let Some((level, place)) = setting(COMPAT_ANNOTATION) {
        match Compat::value_variants().iter().find(|c| c.name() == level) {
            Some(c) => opts.compat = *c,
            None => problems.push(format!(
                "annotation {COMPAT_ANNOTATION} {level:?} {place}: expected one of {}",
                Compat::value_variants()
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    let containers: Vec<String> = req
        .object
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| str_at(c, "/name"))
        .filter(|n| *n != inject::CONTAINER_NAME)
        .map(str::to_owned)
        .collect();
    let mut warnings = Vec::new();
    if let Some(skip) = pod_annotations.get(SKIP_ANNOTATION) {
        let skip: Vec<&str> = skip
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        for name in &skip {
            if *name == inject::CONTAINER_NAME {
                problems.push(format!(
                    "annotation {SKIP_ANNOTATION} on {pod}: `{name}` is the sidecar itself"
                ));
            } else if !containers.iter().any(|c| c == name) {
                warnings.push(format!(
                    "passport: {SKIP_ANNOTATION} names {name:?}, which is not a container of this pod"
                ));
            }
        }
        opts.containers = Some(
            containers
                .iter()
                .filter(|c| !skip.contains(&c.as_str()))
                .cloned()
                .collect(),
        );
    }
    // Reinvocation (the sidecar is already there): containers added since, by webhooks
    // that ran after passport's (a mesh proxy, a log shipper), get no credentials; only the
    // containers that already mount the auth token keep theirs.
    let has_sidecar = ["/spec/initContainers", "/spec/containers"]
        .iter()
        .any(|list| {
            req.object
                .pointer(list)
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| str_at(c, "/name") == Some(inject::CONTAINER_NAME))
                })
        });
    if has_sidecar {
        let mounted: Vec<String> = containers
            .iter()
            .filter(|name| mounts_auth_token(&req.object, name))
            .cloned()
            .collect();
        let unmounted: Vec<&String> = containers
            .iter()
            .filter(|n| !mounted.contains(n))
            .filter(|n| opts.containers.as_ref().is_none_or(|w| w.contains(n)))
            .collect();
        if !unmounted.is_empty() {
            warnings.push(format!(
                "passport: reinvoked: {} added after passport's injection get no credentials",
                unmounted
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let keep = |c: &String| mounted.contains(c);
        opts.containers = Some(match opts.containers.take() {
            Some(wanted) => wanted.into_iter().filter(keep).collect(),
            None => mounted.clone(),
        });
    }
    if !problems.is_empty() {
        return Response::deny(
            req,
            format!(
                "passport: {pod} cannot be injected: {}",
                problems.join("; ")
            ),
        );
    }
    if *sa == SaLookup::NotFound {
        warnings.push(format!(
            "passport: ServiceAccount {sa_ref} does not exist; the role comes from the pod's annotation"
        ));
    }

    // The mutation: JSON → YAML value → inject → JSON, diffed against the same round trip.
    let converted = serde_norway::to_value(&req.object)
        .ok()
        .and_then(|y| Some((serde_json::to_value(&y).ok()?, y)));
    let Some((before, serde_norway::Value::Mapping(mut template))) = converted else {
        return Response::deny(req, format!("passport: {pod}: the object is not a pod"));
    };
    if let Err(refused) = inject_pod_template(&mut template, &opts, &pod, &mut |w| {
        warnings.push(format!("passport: {w}"))
    }) {
        return Response::deny(
            req,
            format!("passport: refusing to inject: {}", refused.join("; ")),
        );
    }
    let Ok(after) = serde_json::to_value(serde_norway::Value::Mapping(template)) else {
        return Response::deny(
            req,
            format!("passport: {pod}: internal error serialising the pod"),
        );
    };
    let ops = without_default_removals(patch::diff(&before, &after), &before);
    let mut response = Response::new(
        req,
        if ops.is_empty() {
            Outcome::Unchanged
        } else {
            Outcome::Mutated
        },
    );
    response.patch = ops;
    response.warnings = warnings;
    response
}

/// Fields the API server fills in with a default when they are absent, and that default.
/// inject writes the probes, field references and token volume it owns whole, without
/// them; on reinvocation the API server has defaulted them in between, and removing a field
/// that holds its default changes nothing (the server sets it again). Such removals are
/// dropped, so a pod that already has the sidecar gets an empty patch.
/// (path suffix, the default as JSON text).
const SERVER_DEFAULTS: &[(&str, &str)] = &[
    ("/httpGet/scheme", "\"HTTP\""),
    ("/successThreshold", "1"),
    ("/timeoutSeconds", "1"),
    ("/periodSeconds", "10"),
    ("/failureThreshold", "3"),
    ("/fieldRef/apiVersion", "\"v1\""),
    ("/projected/defaultMode", "420"),
    ("/protocol", "\"TCP\""),
];

fn without_default_removals(ops: Vec<patch::Op>, before: &Value) -> Vec<patch::Op> {
    ops.into_iter()
        .filter(|op| {
            let patch::Op::Remove { path } = op else {
                return true;
            };
            let Some(old) = before.pointer(path) else {
                return true;
            };
            !SERVER_DEFAULTS.iter().any(|(suffix, default)| {
                path.ends_with(suffix)
                    && serde_json::from_str::<Value>(default).is_ok_and(|d| d == *old)
            })
        })
        .collect()
}

fn inject_pod_template(
    template: &mut serde_norway::Mapping,
    opts: &inject::Options,
    name: &str,
    warn: &mut dyn FnMut(String),
) -> Result<(), Vec<String>> {
    inject::inject_pod_template(template, opts, name, warn)
}

/// A 400 body: `{"error": ...}`.
pub fn bad_request(why: &BadReview) -> Value {
    json!({"error": why.0})
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::111122223333:role/app";

    fn review(pod: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE", "namespace": "team", "object": pod}
        }))
        .unwrap()
    }

    fn pod(labels: Value, annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": labels, "annotations": annotations},
            "spec": {"serviceAccountName": "app", "containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
                {"name": "log", "image": "log:1"}]}})
    }

    fn on() -> Value {
        json!({INJECT_LABEL: "true"})
    }

    fn sa(role: &str) -> SaLookup {
        SaLookup::Found(BTreeMap::from([(
            ROLE_ANNOTATION.to_owned(),
            role.to_owned(),
        )]))
    }

    fn run(pod: Value, sa: &SaLookup) -> (Request, Response) {
        let req = parse(&review(pod)).unwrap();
        let resp = decide(&req, &inject::Options::default(), sa);
        (req, resp)
    }

    fn apply(req: &Request, resp: &Response) -> Value {
        let mut doc = req.object.clone();
        let p: json_patch::Patch = serde_json::from_value(patch::to_json(&resp.patch)).unwrap();
        json_patch::patch(&mut doc, &p).unwrap();
        doc
    }

    /// A container another webhook added after passport's injection (a mesh proxy) is
    /// left without credentials on reinvocation; the injected one keeps them.
    #[test]
    fn reinvocation_gives_no_credentials_to_containers_added_since() {
        let (req, resp) = run(pod(on(), json!({})), &sa(ROLE));
        let mut injected = apply(&req, &resp);
        injected["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "istio-proxy", "image": "proxy:1"}));
        // "log" was in the pod from the start, so it got the token the first time.
        let (req, resp) = run(injected.clone(), &sa(ROLE));
        assert!(resp.allowed, "{resp:?}");
        let after = apply(&req, &resp);
        let proxy = &after["spec"]["containers"][2];
        assert_eq!(proxy["name"], "istio-proxy");
        assert!(
            proxy.get("env").is_none() && proxy.get("volumeMounts").is_none(),
            "{proxy}"
        );
        assert!(
            resp.warnings.iter().any(|w| w.contains("\"istio-proxy\"")),
            "{:?}",
            resp.warnings
        );
        assert_eq!(
            after["spec"]["containers"][0],
            injected["spec"]["containers"][0]
        );
    }

    #[test]
    fn the_patch_gives_exactly_what_inject_pod_template_gives() {
        for annotations in [
            json!({}),
            json!({SKIP_ANNOTATION: "log", COMPAT_ANNOTATION: "imds"}),
        ] {
            let p = pod(on(), annotations.clone());
            let (req, resp) = run(p.clone(), &sa(ROLE));
            assert!(resp.allowed && resp.result == Outcome::Mutated, "{resp:?}");
            let mut template: serde_norway::Mapping =
                serde_norway::from_value(serde_norway::to_value(&p).unwrap()).unwrap();
            let mut opts = inject::Options {
                role_arn: Some(ROLE.into()),
                secret: false,
                ..Default::default()
            };
            if annotations.get(SKIP_ANNOTATION).is_some() {
                opts.containers = Some(vec!["app".into()]);
                opts.compat = Compat::Imds;
            }
            inject::inject_pod_template(&mut template, &opts, "pod", &mut |_| {}).unwrap();
            let expected = serde_json::to_value(&template).unwrap();
            assert_eq!(apply(&req, &resp), expected);
            // Array elements are patched, never whole arrays replaced.
            for op in &resp.patch {
                assert!(
                    !matches!(op.path(), "/spec/containers" | "/spec/containers/0/env"),
                    "{op:?}"
                );
            }
            assert!(
                resp.patch
                    .iter()
                    .any(|o| o.path() == "/spec/containers/0/env/-")
            );
        }
    }

    #[test]
    fn reinvocation_gives_an_empty_patch() {
        let (req, resp) = run(pod(on(), json!({})), &sa(ROLE));
        let injected = apply(&req, &resp);
        let (_, again) = run(injected, &sa(ROLE));
        assert!(again.allowed);
        assert_eq!(again.result, Outcome::Unchanged);
        assert!(again.patch.is_empty());
        assert!(again.to_review()["response"].get("patch").is_none());
    }

    #[test]
    fn reinvocation_after_server_defaulting_gives_an_empty_patch() {
        let (req, resp) = run(pod(on(), json!({})), &sa(ROLE));
        let mut injected = apply(&req, &resp);
        // What the API server defaults between webhooks (as read back from a real one).
        let sidecar = &mut injected["spec"]["initContainers"][0];
        for probe in ["startupProbe", "livenessProbe"] {
            sidecar[probe]["successThreshold"] = json!(1);
            sidecar[probe]["httpGet"]["scheme"] = json!("HTTP");
        }
        for e in sidecar["env"].as_array_mut().unwrap() {
            if let Some(f) = e.pointer_mut("/valueFrom/fieldRef") {
                f["apiVersion"] = json!("v1");
            }
        }
        for v in injected["spec"]["volumes"].as_array_mut().unwrap() {
            if let Some(p) = v.get_mut("projected") {
                p["defaultMode"] = json!(420);
            }
        }
        let (_, again) = run(injected.clone(), &sa(ROLE));
        assert!(again.patch.is_empty(), "{:?}", again.patch);
        // A non-default value is still put back.
        injected["spec"]["initContainers"][0]["startupProbe"]["httpGet"]["scheme"] = json!("HTTPS");
        let (_, again) = run(injected, &sa(ROLE));
        assert_eq!(again.patch.len(), 1, "{:?}", again.patch);
    }

    #[test]
    fn unlabelled_pods_and_other_objects_are_allowed_untouched() {
        for labels in [json!({}), json!({INJECT_LABEL: "false"}), json!(null)] {
            let (_, resp) = run(pod(labels, json!({})), &SaLookup::NotFound);
            assert!(resp.allowed && resp.patch.is_empty() && resp.result == Outcome::Skipped);
        }
        let mut body: Value = serde_json::from_slice(&review(pod(on(), json!({})))).unwrap();
        body["request"]["operation"] = json!("UPDATE");
        let req = parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(req.wants(), None);
    }

    #[test]
    fn no_role_is_denied_naming_the_service_account_and_annotation() {
        for lookup in [SaLookup::Found(BTreeMap::new()), SaLookup::NotFound] {
            let (_, resp) = run(pod(on(), json!({})), &lookup);
            assert!(!resp.allowed);
            let m = resp.message.clone().unwrap();
            assert!(m.contains("team/app") && m.contains(ROLE_ANNOTATION), "{m}");
            let out = resp.to_review();
            assert_eq!(out["response"]["status"]["code"], 403);
            assert_eq!(out["response"]["allowed"], false);
            assert_eq!(out["response"]["uid"], "u-1");
        }
        let (_, resp) = run(pod(on(), json!({})), &SaLookup::Failed("timed out".into()));
        let m = resp.message.unwrap();
        assert!(m.contains("team/app") && m.contains("timed out"), "{m}");
    }

    #[test]
    fn the_pod_annotation_wins_and_needs_no_service_account() {
        let other = "arn:aws:iam::111122223333:role/other";
        let (req, resp) = run(pod(on(), json!({ROLE_ANNOTATION: other})), &sa(ROLE));
        let out = apply(&req, &resp).to_string();
        assert!(out.contains(other) && !out.contains(ROLE));
        let (_, resp) = run(
            pod(on(), json!({ROLE_ANNOTATION: other})),
            &SaLookup::NotFound,
        );
        assert!(resp.allowed && !resp.warnings.is_empty());
    }

    #[test]
    fn bad_annotations_are_denied_with_every_problem() {
        let (_, resp) = run(
            pod(
                on(),
                json!({COMPAT_ANNOTATION: "ancient", CHAIN_ROLE_ANNOTATION: "nope", SKIP_ANNOTATION: "passport"}),
            ),
            &sa("arn:aws:iam::bad"),
        );
        assert!(!resp.allowed);
        let m = resp.message.unwrap();
        for needle in [
            ROLE_ANNOTATION,
            "ServiceAccount team/app",
            COMPAT_ANNOTATION,
            "ancient",
            CHAIN_ROLE_ANNOTATION,
            "sidecar itself",
        ] {
            assert!(m.contains(needle), "{needle}: {m}");
        }
    }

    #[test]
    fn host_network_is_denied() {
        let mut p = pod(on(), json!({}));
        p["spec"]["hostNetwork"] = json!(true);
        let (_, resp) = run(p, &sa(ROLE));
        assert!(!resp.allowed);
        assert!(resp.message.unwrap().contains("hostNetwork"));
    }

    #[test]
    fn unknown_skip_names_warn() {
        let (_, resp) = run(pod(on(), json!({SKIP_ANNOTATION: "nosuch"})), &sa(ROLE));
        assert!(resp.allowed);
        assert!(
            resp.warnings.iter().any(|w| w.contains("nosuch")),
            "{:?}",
            resp.warnings
        );
    }

    proptest::proptest! {
        /// Any body: a 400 or a decision, never a panic; opted-in pods of any shape too.
        #[test]
        fn no_body_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse(&body);
        }

        #[test]
        fn no_pod_shape_panics(
            spec in proptest::prelude::prop_oneof![
                proptest::prelude::Just(json!(null)),
                proptest::prelude::Just(json!({"containers": null})),
                proptest::prelude::Just(json!({"containers": [{"name": 5}], "initContainers": {}})),
                proptest::prelude::Just(json!({"containers": [{"name": "a", "env": "x", "volumeMounts": 3}], "volumes": "v", "securityContext": []})),
                proptest::prelude::Just(json!({"containers": [{"name": "passport"}, {"name": "a", "env": [1, null, {"name": 2}]}]})),
            ],
            annotations in proptest::prelude::prop_oneof![
                proptest::prelude::Just(json!(null)),
                proptest::prelude::Just(json!({SKIP_ANNOTATION: ",,a,,", COMPAT_ANNOTATION: ""})),
                proptest::prelude::Just(json!({ROLE_ANNOTATION: 5, "prometheus.io/scrape": []})),
            ],
        ) {
            let p = json!({"metadata": {"labels": {INJECT_LABEL: "true"}, "annotations": annotations}, "spec": spec});
            let (_, resp) = run(p, &sa(ROLE));
            let _ = resp.to_review();
        }
    }

    #[test]
    fn bad_bodies_are_rejected_not_panicked_on() {
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"kind\":\"AdmissionReview\"}",
            b"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1beta1\",\"request\":{\"uid\":\"x\"}}",
            b"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{}}",
            b"\xff\xfe",
        ] {
            assert!(parse(body).is_err(), "{body:?}");
        }
        // Opted-in garbage objects are decided on, never a panic.
        for object in [
            json!(5),
            json!({"metadata": {"labels": {INJECT_LABEL: "true"}}, "spec": 3}),
            json!({"metadata": {"labels": {INJECT_LABEL: "true"}}, "spec": {"containers": "x", "initContainers": [1, null]}}),
        ] {
            let (_, _resp) = run(object, &sa(ROLE));
        }
    }
}
