//! Admin endpoints: `/healthz` (the process is alive), `/readyz` (credentials are being
//! served: gate the application's start on this), `/metrics` (Prometheus). None of them
//! ever shows a credential.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::{App, Body, METHOD_NOT_ALLOWED, NOT_FOUND, error, json};
use crate::aws::RoleName;
use crate::credentials::Served;
use crate::metrics::RoleView;
use crate::refresh::Shared;

/// Every served role by name, the default first.
fn roles(app: &App) -> Vec<(&str, &Shared)> {
    std::iter::once((RoleName::DEFAULT, &*app.shared))
        .chain(
            app.extra
                .iter()
                .map(|(name, shared)| (name.as_str(), &**shared)),
        )
        .collect()
}

/// A ready role in `/readyz`: `{"status":"ready","expiration":...}`.
fn ready(served: &Served) -> serde_json::Value {
    serde_json::json!({
        "status": "ready",
        "expiration": crate::clock::format_rfc3339_seconds(served.expiration),
    })
}

/// Ready when every role has servable credentials: the application starts once all the
/// roles it may use are there. With extra roles the body lists each one.
fn readyz(app: &App) -> Response<Body> {
    if app.extra.is_empty() {
        let snapshot = app.shared.snapshot.load();
        return match snapshot.current(&*app.shared.clock) {
            Some(served) => json(StatusCode::OK, Bytes::from(ready(served).to_string())),
            None => json(
                StatusCode::SERVICE_UNAVAILABLE,
                snapshot.unavailable_body.clone(),
            ),
        };
    }
    let mut statuses = serde_json::Map::new();
    let mut not_ready = Vec::new();
    for (name, shared) in roles(app) {
        let snapshot = shared.snapshot.load();
        let status = match snapshot.current(&*shared.clock) {
            Some(served) => ready(served),
            None => {
                let why: serde_json::Value =
                    serde_json::from_slice(&snapshot.unavailable_body).unwrap_or_default();
                not_ready.push(format!(
                    "{name}: {}",
                    why["message"].as_str().unwrap_or("not ready")
                ));
                serde_json::json!({"status": "not ready", "code": why["code"], "message": why["message"]})
            }
        };
        statuses.insert(name.to_owned(), status);
    }
    if not_ready.is_empty() {
        // The default role's own fields at the top, as without extra roles, then all of them.
        let mut body = statuses[RoleName::DEFAULT].clone();
        body["roles"] = statuses.into();
        return json(StatusCode::OK, Bytes::from(body.to_string()));
    }
    let body = serde_json::json!({
        "code": "RoleNotReady",
        "message": format!("not every role has credentials yet: {}", not_ready.join("; ")),
        "roles": statuses,
    });
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        Bytes::from(body.to_string()),
    )
}

pub fn handle<B>(app: &App, req: &Request<B>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, &METHOD_NOT_ALLOWED);
    }
    match req.uri().path() {
        "/healthz" => json(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}")),
        "/readyz" => readyz(app),
        "/metrics" => {
            let roles = roles(app);
            let views: Vec<RoleView<'_>> = roles
                .iter()
                .map(|(name, shared)| {
                    let snapshot = shared.snapshot.load();
                    RoleView {
                        name,
                        metrics: &shared.metrics,
                        seconds_until_expiry: snapshot
                            .served
                            .as_ref()
                            .map(|s| s.seconds_until_expiry(&*shared.clock)),
                        ready: snapshot.current(&*shared.clock).is_some(),
                    }
                })
                .collect();
            let mut response = Response::new(http_body_util::Full::new(Bytes::from(
                crate::metrics::render(&views, &app.shared.metrics),
            )));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => error(StatusCode::NOT_FOUND, &NOT_FOUND),
    }
}
