//! The README's status tables for the container and IMDS endpoints, as data: one row per
//! line of "What it serves" and "IMDS-compatible endpoint / What is served", run against a
//! real sidecar on loopback. When a row here changes, the README's table changes with it.

mod common;

use std::sync::Arc;

use common::*;
use passport_core::clock::SystemClock;
use passport_core::sidecar::Shutdown;
use passport_core::sts::ErrorClass;

/// The sidecar a row runs against.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Setup {
    /// STS healthy, IMDS v2 only.
    Serving,
    /// STS healthy, IMDSv1 allowed.
    ServingV1,
    /// STS healthy, IMDS off.
    NoImds,
    /// STS failing from the start: nothing to serve.
    StsDown,
}

/// What the request carries besides the path.
#[derive(Clone, Copy, Debug)]
enum With {
    Nothing,
    Auth(&'static str),
    /// A fresh IMDSv2 session token.
    ImdsToken,
    Header(&'static str, &'static str),
    /// A session token plus one more header.
    ImdsTokenAnd(&'static str, &'static str),
}

struct Row {
    table: &'static str,
    situation: &'static str,
    setup: Setup,
    method: &'static str,
    path: &'static str,
    with: With,
    status: u16,
    /// A header the answer must carry, with its value.
    header: Option<(&'static str, &'static str)>,
    /// Text the body must contain.
    body: &'static str,
}

const CREDS: &str = "/v1/credentials";
const TOKEN_PATH: &str = "/latest/api/token";
const LISTING: &str = "/latest/meta-data/iam/security-credentials/";
const ROLE_CREDS: &str = "/latest/meta-data/iam/security-credentials/app";
const JSON: Option<(&str, &str)> = Some(("content-type", "application/json"));

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // README "What it serves" (container endpoint).
    Row { table: "container", situation: "credentials in hand", setup: Setup::Serving, method: "GET", path: CREDS, with: With::Auth(AUTH), status: 200, header: JSON, body: "\"AccessKeyId\":\"ASIAFAKE" },
    Row { table: "container", situation: "HEAD is GET without a body", setup: Setup::Serving, method: "HEAD", path: CREDS, with: With::Auth(AUTH), status: 200, header: JSON, body: "" },
    Row { table: "container", situation: "the query string is ignored", setup: Setup::Serving, method: "GET", path: "/v1/credentials?x=1", with: With::Auth(AUTH), status: 200, header: JSON, body: "\"Token\"" },
    Row { table: "container", situation: "no Authorization", setup: Setup::Serving, method: "GET", path: CREDS, with: With::Nothing, status: 401, header: JSON, body: "\"Code\"" },
    Row { table: "container", situation: "wrong Authorization", setup: Setup::Serving, method: "GET", path: CREDS, with: With::Auth("0000000000000000000000000000000000000000000000000000000000000000"), status: 403, header: JSON, body: "\"message\"" },
    Row { table: "container", situation: "a Bearer prefix is a wrong token", setup: Setup::Serving, method: "GET", path: CREDS, with: With::Auth("Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), status: 403, header: JSON, body: "\"Message\"" },
    Row { table: "container", situation: "Host not an IP literal or localhost", setup: Setup::Serving, method: "GET", path: CREDS, with: With::Header("host", "attacker.example"), status: 403, header: JSON, body: "InvalidHost" },
    Row { table: "container", situation: "not yet ready, STS failing", setup: Setup::StsDown, method: "GET", path: CREDS, with: With::Auth(AUTH), status: 503, header: Some(("retry-after", "5")), body: "CredentialsUnavailable" },
    Row { table: "container", situation: "other paths", setup: Setup::Serving, method: "GET", path: "/v1/other", with: With::Auth(AUTH), status: 404, header: JSON, body: "\"code\"" },
    Row { table: "container", situation: "other methods", setup: Setup::Serving, method: "POST", path: CREDS, with: With::Auth(AUTH), status: 405, header: JSON, body: "\"code\"" },
    // README "IMDS-compatible endpoint / What is served".
    Row { table: "imds", situation: "session token", setup: Setup::Serving, method: "PUT", path: TOKEN_PATH, with: With::Header("x-aws-ec2-metadata-token-ttl-seconds", "21600"), status: 200, header: Some(("x-aws-ec2-metadata-token-ttl-seconds", "21600")), body: "" },
    Row { table: "imds", situation: "role listing, no trailing newline", setup: Setup::Serving, method: "GET", path: LISTING, with: With::ImdsToken, status: 200, header: None, body: "app" },
    Row { table: "imds", situation: "role credentials", setup: Setup::Serving, method: "GET", path: ROLE_CREDS, with: With::ImdsToken, status: 200, header: None, body: "\"Code\":\"Success\"" },
    Row { table: "imds", situation: "extended credentials carry AccountId", setup: Setup::Serving, method: "GET", path: "/latest/meta-data/iam/security-credentials-extended/app", with: With::ImdsToken, status: 200, header: None, body: "\"AccountId\":\"111122223333\"" },
    Row { table: "imds", situation: "iam/info", setup: Setup::Serving, method: "GET", path: "/latest/meta-data/iam/info", with: With::ImdsToken, status: 200, header: None, body: "instance-profile/app" },
    Row { table: "imds", situation: "region", setup: Setup::Serving, method: "GET", path: "/latest/meta-data/placement/region", with: With::ImdsToken, status: 200, header: None, body: "us-east-1" },
    Row { table: "imds", situation: "availability zone, one trailing slash accepted", setup: Setup::Serving, method: "GET", path: "/latest/meta-data/placement/availability-zone/", with: With::ImdsToken, status: 200, header: None, body: "us-east-1a" },
    Row { table: "imds", situation: "identity document", setup: Setup::Serving, method: "GET", path: "/latest/dynamic/instance-identity/document", with: With::ImdsToken, status: 200, header: None, body: "\"accountId\"" },
    Row { table: "imds", situation: "400: token PUT without a TTL", setup: Setup::Serving, method: "PUT", path: TOKEN_PATH, with: With::Nothing, status: 400, header: None, body: "" },
    Row { table: "imds", situation: "400: TTL above 21600", setup: Setup::Serving, method: "PUT", path: TOKEN_PATH, with: With::Header("x-aws-ec2-metadata-token-ttl-seconds", "21601"), status: 400, header: None, body: "" },
    Row { table: "imds", situation: "400: TTL 0", setup: Setup::Serving, method: "PUT", path: TOKEN_PATH, with: With::Header("x-aws-ec2-metadata-token-ttl-seconds", "0"), status: 400, header: None, body: "" },
    Row { table: "imds", situation: "401: missing token, v2 only", setup: Setup::Serving, method: "GET", path: ROLE_CREDS, with: With::Nothing, status: 401, header: None, body: "" },
    Row { table: "imds", situation: "IMDSv1 where allowed", setup: Setup::ServingV1, method: "GET", path: ROLE_CREDS, with: With::Nothing, status: 200, header: None, body: "\"Code\":\"Success\"" },
    Row { table: "imds", situation: "401: forged token", setup: Setup::ServingV1, method: "GET", path: ROLE_CREDS, with: With::Header("x-aws-ec2-metadata-token", "AAAA.forged"), status: 401, header: None, body: "" },
    Row { table: "imds", situation: "403: X-Forwarded-For on the token PUT", setup: Setup::Serving, method: "PUT", path: TOKEN_PATH, with: With::ImdsTokenAnd("x-forwarded-for", "10.0.0.1"), status: 403, header: None, body: "" },
    Row { table: "imds", situation: "403: X-Forwarded-For on a GET", setup: Setup::ServingV1, method: "GET", path: ROLE_CREDS, with: With::Header("x-forwarded-for", "10.0.0.1"), status: 403, header: None, body: "" },
    Row { table: "imds", situation: "404: unknown path", setup: Setup::Serving, method: "GET", path: "/latest/meta-data/ami-id", with: With::ImdsToken, status: 404, header: None, body: "" },
    Row { table: "imds", situation: "404: unknown role", setup: Setup::Serving, method: "GET", path: "/latest/meta-data/iam/security-credentials/other", with: With::ImdsToken, status: 404, header: None, body: "" },
    Row { table: "imds", situation: "404: IMDS disabled", setup: Setup::NoImds, method: "PUT", path: TOKEN_PATH, with: With::Header("x-aws-ec2-metadata-token-ttl-seconds", "60"), status: 404, header: None, body: "" },
    Row { table: "imds", situation: "405: GET on the token path", setup: Setup::Serving, method: "GET", path: TOKEN_PATH, with: With::ImdsToken, status: 405, header: None, body: "" },
    Row { table: "imds", situation: "405: POST elsewhere", setup: Setup::Serving, method: "POST", path: LISTING, with: With::ImdsToken, status: 405, header: None, body: "" },
    Row { table: "imds", situation: "503: credentials with nothing valid to serve", setup: Setup::StsDown, method: "GET", path: ROLE_CREDS, with: With::ImdsToken, status: 503, header: Some(("retry-after", "5")), body: "" },
];

async fn sidecar(setup: Setup) -> Running {
    let sts = FakeSts::new(Arc::new(SystemClock));
    let mut builder = start_sidecar(sts.clone());
    builder = match setup {
        Setup::Serving => builder.imds(false),
        Setup::ServingV1 => builder.imds(true),
        Setup::NoImds => builder,
        Setup::StsDown => {
            sts.set_default(Behaviour::Fail(error(
                ErrorClass::Permanent,
                "AccessDenied",
            )));
            builder.imds(false).no_wait()
        }
    };
    let running = builder.run(Shutdown::PROMPT).await;
    if let Setup::StsDown = setup {
        // The row is about a refusal already seen: wait (start-up poll, with a deadline)
        // until the refresher has published it, instead of racing its first attempt.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !String::from_utf8_lossy(&running.shared.snapshot.load().unavailable_body)
            .contains("CredentialsUnavailable")
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the STS refusal was never published"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    running
}

async fn imds_token(r: &Running) -> String {
    let reply = http(
        r.addr,
        "PUT",
        TOKEN_PATH,
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_readme_status_tables() {
    let mut failures = Vec::new();
    for setup in [
        Setup::Serving,
        Setup::ServingV1,
        Setup::NoImds,
        Setup::StsDown,
    ] {
        let r = sidecar(setup).await;
        for row in ROWS.iter().filter(|row| row.setup == setup) {
            let token = match row.with {
                With::ImdsToken | With::ImdsTokenAnd(..) => Some(imds_token(&r).await),
                _ => None,
            };
            let mut headers: Vec<(&str, &str)> = Vec::new();
            match row.with {
                With::Nothing | With::ImdsToken => {}
                With::Auth(value) => headers.push(("authorization", value)),
                With::Header(k, v) | With::ImdsTokenAnd(k, v) => headers.push((k, v)),
            }
            if let Some(token) = &token {
                headers.push(("x-aws-ec2-metadata-token", token));
            }
            let reply = http(r.addr, row.method, row.path, &headers).await;
            let mut wrong = Vec::new();
            if reply.status.as_u16() != row.status {
                wrong.push(format!("status {} (want {})", reply.status, row.status));
            }
            if let Some((name, value)) = row.header
                && reply.header(name) != Some(value)
            {
                wrong.push(format!("{name}: {:?} (want {value:?})", reply.header(name)));
            }
            let body = String::from_utf8_lossy(&reply.body);
            if !body.contains(row.body) {
                wrong.push(format!("body {body:?} lacks {:?}", row.body));
            }
            if row.status == 200 && body.contains("\"Expiration\"") {
                let expiration = reply.json()["Expiration"].as_str().unwrap_or("").to_owned();
                let whole_second_utc = regex_lite::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
                    .unwrap()
                    .is_match(&expiration);
                if !whole_second_utc {
                    wrong.push(format!(
                        "Expiration {expiration:?} is not whole-second UTC Z"
                    ));
                }
            }
            if !wrong.is_empty() {
                failures.push(format!(
                    "{} / {}: {} {}: {}",
                    row.table,
                    row.situation,
                    row.method,
                    row.path,
                    wrong.join("; ")
                ));
            }
        }
        r.shutdown().await;
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_setup_has_rows_and_both_tables_are_covered() {
    for setup in [
        Setup::Serving,
        Setup::ServingV1,
        Setup::NoImds,
        Setup::StsDown,
    ] {
        assert!(ROWS.iter().any(|r| r.setup == setup), "{setup:?}");
    }
    assert!(ROWS.iter().filter(|r| r.table == "container").count() >= 8);
    assert!(ROWS.iter().filter(|r| r.table == "imds").count() >= 15);
}
