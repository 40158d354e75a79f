//! Property test: `inject` is total. Random flag values (through the same validation as the
//! CLI) and random workload documents (right shapes, wrong shapes, hostile strings) never
//! panic; every accepted input gives YAML that parses again, and injecting that output
//! changes nothing (idempotence). Seeded (see `config`), so a failure reproduces.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use passport::commands::inject::{self, InjectArgs, InjectError, Options};
use passport::compat::Compat;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_norway::{Mapping, Value};

/// Strings an operator or a manifest might hold: plain, YAML-special, numeric-looking,
/// with control characters, quotes, newlines, document markers.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("null".to_owned()),
        Just("~".to_owned()),
        Just("123".to_owned()),
        Just("yes".to_owned()),
        Just("0644".to_owned()),
        Just("---".to_owned()),
        Just("a: b".to_owned()),
        Just("{x".to_owned()),
        Just("ghcr.io/passport-dev/passport:0.1.0".to_owned()),
        Just("us-east-1".to_owned()),
        Just("arn:aws:iam::111122223333:role/app".to_owned()),
        Just("100m".to_owned()),
        "[ -~]{0,12}",
        "\\PC{0,8}",
        any::<String>().prop_map(|s| s.chars().take(10).collect()),
    ]
}

/// An optional flag: mostly absent or one of `valid`, sometimes anything at all (the
/// validation must catch it, or inject must write it as a plain string).
fn flag(valid: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        10 => Just(None),
        9 => proptest::sample::select(valid).prop_map(|v| Some(v.to_owned())),
        1 => text().prop_map(Some),
    ]
}

/// `--image`: mostly accepted references, YAML-special ones included.
fn image() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(&[
            "ghcr.io/passport-dev/passport:0.1.0",
            "null",
            "~",
            "123",
            "yes",
            "{x",
            "a:b",
            "'quoted'",
            "registry:5000/p@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ][..])
        .prop_map(str::to_owned),
        1 => text(),
    ]
}

fn args() -> impl Strategy<Value = InjectArgs> {
    (
        (
            image(),
            flag(&["arn:aws:iam::111122223333:role/app", "arn:aws-cn:iam::111122223333:role/a/b"]),
            flag(&["us-east-1", "eu-west-1", "cn-north-1"]),
            flag(&["arn:aws:iam::444455556666:role/target"]),
            proptest::bool::weighted(0.2),
            proptest::bool::weighted(0.2),
        ),
        (
            proptest::collection::vec(
                prop_oneof![4 => proptest::sample::select(&["app", "sidecar"][..]).prop_map(str::to_owned), 1 => text()],
                0..3,
            ),
            any::<bool>(),
            0..4usize,
            proptest::bool::weighted(0.1),
            flag(&["100m", "0.5", "1", "250m"]),
            prop_oneof![Just(None), (0u64..100_000).prop_map(Some)],
            any::<bool>(),
        ),
        (
            // Extra roles and container roles: mostly none, so most cases stay valid.
            prop_oneof![
                2 => Just(Vec::new()),
                1 => proptest::collection::vec(
                    prop_oneof![
                        6 => Just("r=arn:aws:iam::111122223333:role/r".to_owned()),
                        3 => Just("x=arn:aws:iam::444455556666:role/x,chain".to_owned()),
                        1 => text(),
                    ],
                    1..3,
                ),
            ],
            prop_oneof![
                4 => Just(Vec::new()),
                1 => proptest::collection::vec(
                    prop_oneof![
                        6 => Just("app=r".to_owned()),
                        2 => Just("sidecar=r".to_owned()),
                        1 => text(),
                    ],
                    1..2,
                ),
            ],
        ),
    )
        .prop_map(
            |(
                (image, role_arn, region, chain_role_arn, imds, no_imds),
                (containers, no_native, compat, no_secret, cpu_limit, job_deadline, no_gate),
                (extra_roles, container_roles),
            )| InjectArgs {
                file: PathBuf::from("-"),
                image,
                role_arn,
                region,
                chain_role_arn,
                extra_roles,
                container_roles,
                imds,
                no_imds,
                containers,
                native_sidecar: !no_native,
                no_native_sidecar: no_native,
                compat: [
                    Compat::Modern,
                    Compat::TokenEnv,
                    Compat::RelativeUri,
                    Compat::Imds,
                ][compat],
                no_secret,
                cpu_limit,
                job_deadline,
                no_startup_gate: no_gate,
            },
        )
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Mapping(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::String(k.into()), v))
            .collect::<Mapping>(),
    )
}

/// A scalar or a wrongly-typed value.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(Value::String),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i32>().prop_map(|n| Value::Number(n.into())),
        1 => Just(Value::Sequence(vec![])),
        1 => Just(Value::Mapping(Mapping::new())),
    ]
}

fn env_entry() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just("AWS_CONTAINER_CREDENTIALS_FULL_URI".to_owned()),
        Just("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".to_owned()),
        Just("AWS_CONTAINER_AUTHORIZATION_TOKEN".to_owned()),
        Just("AWS_EC2_METADATA_SERVICE_ENDPOINT".to_owned()),
        Just("AWS_ROLE_ARN".to_owned()),
        Just("AWS_ACCESS_KEY_ID".to_owned()),
        Just("NO_PROXY".to_owned()),
        Just("PASSPORT_DISABLE_IMDS".to_owned()),
        text(),
    ];
    (names, scalar(), any::<bool>()).prop_map(|(name, value, as_map)| {
        if as_map {
            map(vec![("name", Value::String(name)), ("value", value)])
        } else {
            value
        }
    })
}

fn container() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        3 => Just("app".to_owned()),
        3 => Just("passport".to_owned()),
        3 => Just("sidecar".to_owned()),
        3 => "[a-z][a-z0-9-]{0,10}[a-z0-9]",
        1 => text(),
    ];
    (
        names,
        text(),
        proptest::collection::vec(env_entry(), 0..4),
        proptest::option::of(prop_oneof![
            Just(9911u16),
            Just(9912),
            Just(9913),
            Just(8080),
            any::<u16>()
        ]),
        any::<bool>(),
    )
        .prop_map(|(name, image, env, port, env_as_seq)| {
            let mut fields = vec![
                ("name", Value::String(name)),
                ("image", Value::String(image)),
            ];
            fields.push((
                "env",
                if env_as_seq {
                    Value::Sequence(env)
                } else {
                    Value::String("not a list".into())
                },
            ));
            if let Some(p) = port {
                fields.push((
                    "ports",
                    Value::Sequence(vec![map(vec![("containerPort", Value::Number(p.into()))])]),
                ));
            }
            map(fields)
        })
}

fn pod_spec() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(container(), 0..3),
        proptest::collection::vec(container(), 0..2),
        proptest::bool::weighted(0.1),
        proptest::option::of(prop_oneof![
            Just(65532u64),
            any::<u32>().prop_map(u64::from)
        ]),
        any::<bool>(),
        scalar(),
    )
        .prop_map(|(containers, init, host_network, fs_group, windows, odd)| {
            let mut fields = vec![("containers", Value::Sequence(containers))];
            if !init.is_empty() {
                fields.push(("initContainers", Value::Sequence(init)));
            }
            if host_network {
                fields.push(("hostNetwork", Value::Bool(true)));
            }
            if let Some(g) = fs_group {
                fields.push((
                    "securityContext",
                    map(vec![("fsGroup", Value::Number(g.into()))]),
                ));
            }
            if windows {
                fields.push(("os", map(vec![("name", Value::String("windows".into()))])));
            }
            fields.push(("volumes", odd));
            map(fields)
        })
}

fn document() -> impl Strategy<Value = Value> {
    let kinds = prop_oneof![
        Just(("v1", "Pod")),
        Just(("apps/v1", "Deployment")),
        Just(("apps/v1", "StatefulSet")),
        Just(("batch/v1", "Job")),
        Just(("batch/v1", "CronJob")),
        Just(("argoproj.io/v1alpha1", "Rollout")),
        Just(("v1", "PodTemplate")),
        Just(("v1", "ConfigMap")),
        Just(("v1", "List")),
    ];
    (kinds, pod_spec(), text(), any::<bool>(), scalar()).prop_map(
        |((api, kind), spec, name, annotated, odd)| {
            let mut metadata = vec![("name", Value::String(name))];
            if annotated {
                metadata.push((
                    "annotations",
                    map(vec![("eks.amazonaws.com/skip-containers", odd.clone())]),
                ));
            }
            let template = map(vec![("metadata", map(metadata.clone())), ("spec", spec)]);
            let body = match kind {
                "Pod" => {
                    return map(vec![
                        ("apiVersion", Value::String(api.into())),
                        ("kind", Value::String(kind.into())),
                        ("metadata", template.get("metadata").unwrap().clone()),
                        ("spec", template.get("spec").unwrap().clone()),
                    ]);
                }
                "CronJob" => vec![(
                    "spec",
                    map(vec![(
                        "jobTemplate",
                        map(vec![("spec", map(vec![("template", template)]))]),
                    )]),
                )],
                "PodTemplate" => vec![("template", template)],
                "List" => vec![(
                    "items",
                    Value::Sequence(vec![map(vec![
                        ("apiVersion", Value::String("apps/v1".into())),
                        ("kind", Value::String("DaemonSet".into())),
                        ("metadata", map(metadata.clone())),
                        ("spec", map(vec![("template", template)])),
                    ])]),
                )],
                "ConfigMap" => vec![("data", map(vec![("k", odd)]))],
                _ => vec![("spec", map(vec![("template", template)]))],
            };
            let mut fields = vec![
                ("apiVersion", Value::String(api.into())),
                ("kind", Value::String(kind.into())),
                ("metadata", map(metadata)),
            ];
            fields.extend(body);
            map(fields)
        },
    )
}

fn input() -> impl Strategy<Value = String> {
    proptest::collection::vec(document(), 1..3).prop_map(|docs| {
        docs.iter()
            .map(|d| serde_norway::to_string(d).unwrap())
            .collect::<Vec<_>>()
            .join("---\n")
    })
}

fn runner() -> TestRunner {
    let cases = std::env::var("PASSPORT_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(400);
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[17; 32]),
    )
}

/// How many cases ended where: bad flags, refused, injected.
#[derive(Default)]
struct Outcomes {
    bad_flags: AtomicUsize,
    refused: AtomicUsize,
    injected: AtomicUsize,
}

fn check(args: &InjectArgs, input: &str, seen: &Outcomes) -> Result<(), TestCaseError> {
    let Ok(opts) = Options::from_args(args) else {
        // A bad flag: exit 64 with the list, checked by tests/inject.rs.
        seen.bad_flags.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    match inject::inject_str(input, &opts, &mut |_| {}) {
        Err(InjectError::Refused(reasons)) => {
            seen.refused.fetch_add(1, Ordering::Relaxed);
            prop_assert!(!reasons.is_empty());
            Ok(())
        }
        Err(InjectError::Yaml { .. }) => Err(TestCaseError::fail(format!(
            "generated input did not parse:\n{input}"
        ))),
        Ok(out) => {
            seen.injected.fetch_add(1, Ordering::Relaxed);
            let inputs: Vec<&str> = input.split("\n---\n").collect();
            for (i, doc) in out.split("\n---\n").enumerate() {
                let parsed = serde_norway::from_str::<Value>(doc);
                prop_assert!(parsed.is_ok(), "output does not parse: {parsed:?}\n{out}");
                if inputs.get(i).map(|d| d.trim_end()) == Some(doc.trim_end()) {
                    continue; // passed through byte for byte: the user's values, not ours
                }
                // Every env value inject owns on passport is a string (an EnvVar's `value`
                // must be).
                let mut bad = Vec::new();
                let ours: Vec<String> = inject::sidecar_container(&opts)
                    .get("env")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect();
                sidecar_env_values(&parsed.unwrap(), &ours, &mut bad);
                prop_assert!(bad.is_empty(), "non-string env values {bad:?}\n{out}");
            }
            let again = inject::inject_str(&out, &opts, &mut |_| {})
                .map_err(|e| TestCaseError::fail(format!("second run: {e}\n{out}")))?;
            prop_assert_eq!(&again, &out, "not idempotent");
            Ok(())
        }
    }
}

/// Values of the env entries named in `ours` on every `passport` container in `v` that are
/// not strings.
fn sidecar_env_values(v: &Value, ours: &[String], bad: &mut Vec<Value>) {
    match v {
        Value::Mapping(m) => {
            if m.get("name").and_then(Value::as_str) == Some("passport")
                && let Some(Value::Sequence(env)) = m.get("env")
            {
                for e in env {
                    let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
                    if ours.iter().any(|o| o == name)
                        && let Some(value) = e.get("value")
                        && !value.is_string()
                    {
                        bad.push(value.clone());
                    }
                }
            }
            m.values().for_each(|x| sidecar_env_values(x, ours, bad));
        }
        Value::Sequence(s) => s.iter().for_each(|x| sidecar_env_values(x, ours, bad)),
        _ => {}
    }
}

#[test]
fn inject_never_panics_and_is_idempotent() {
    let seen = Outcomes::default();
    runner()
        .run(&(args(), input()), |(args, input)| {
            check(&args, &input, &seen)
        })
        .unwrap();
    // The generators must reach every outcome, the injected one most of all: a property
    // that only ever sees refusals proves nothing about the output.
    let (bad, refused, injected) = (
        seen.bad_flags.into_inner(),
        seen.refused.into_inner(),
        seen.injected.into_inner(),
    );
    eprintln!("bad flags {bad}, refused {refused}, injected {injected}");
    assert!(bad > 0 && refused > 0, "bad {bad}, refused {refused}");
    assert!(
        injected * 5 >= bad + refused + injected,
        "only {injected} injected"
    );
}

/// The webhook's entry point on the same random pods: never panics, and a refusal leaves
/// the template as it was.
#[test]
fn inject_pod_template_never_panics() {
    let seen = Outcomes::default();
    runner()
        .run(&(args(), pod_spec()), |(args, spec)| {
            let Ok(opts) = Options::from_args(&args) else {
                return Ok(());
            };
            let Value::Mapping(mut template) = map(vec![("spec", spec)]) else {
                unreachable!()
            };
            let before = template.clone();
            match inject::inject_pod_template(&mut template, &opts, "Pod p", &mut |_| {}) {
                Ok(()) => {
                    seen.injected.fetch_add(1, Ordering::Relaxed);
                    let text = serde_norway::to_string(&template).unwrap();
                    prop_assert!(serde_norway::from_str::<Value>(&text).is_ok());
                    // The same pod again: nothing changes.
                    let once = template.clone();
                    let again =
                        inject::inject_pod_template(&mut template, &opts, "Pod p", &mut |_| {});
                    prop_assert!(again.is_ok());
                    prop_assert_eq!(template, once);
                }
                Err(_) => {
                    seen.refused.fetch_add(1, Ordering::Relaxed);
                    prop_assert_eq!(template, before)
                }
            }
            Ok(())
        })
        .unwrap();
    let (refused, injected) = (seen.refused.into_inner(), seen.injected.into_inner());
    assert!(
        refused > 0 && injected > refused / 2,
        "refused {refused}, injected {injected}"
    );
}
