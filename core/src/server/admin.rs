//! Admin endpoints: `/healthz` (the process is alive), `/readyz` (credentials are being
//! served: gate the application's start on this), `/metrics` (Prometheus). None of them
//! ever shows a credential.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::{App, Body, METHOD_NOT_ALLOWED, NOT_FOUND, error, json};

pub fn handle<B>(app: &App, req: &Request<B>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, &METHOD_NOT_ALLOWED);
    }
    let shared = &app.shared;
    match req.uri().path() {
        "/healthz" => json(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}")),
        "/readyz" => {
            let snapshot = shared.snapshot.load();
            match snapshot.current(&*shared.clock) {
                Some(served) => {
                    let body = serde_json::json!({
                        "status": "ready",
                        "expiration": crate::clock::format_rfc3339_seconds(served.expiration),
                    });
                    json(StatusCode::OK, Bytes::from(body.to_string()))
                }
                None => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    snapshot.unavailable_body.clone(),
                ),
            }
        }
        "/metrics" => {
            let snapshot = shared.snapshot.load();
            let expiry = snapshot
                .served
                .as_ref()
                .map(|s| s.seconds_until_expiry(&*shared.clock));
            let ready = snapshot.current(&*shared.clock).is_some();
            let mut response = Response::new(http_body_util::Full::new(Bytes::from(
                shared.metrics.render(expiry, ready),
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
