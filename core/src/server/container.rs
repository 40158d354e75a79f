//! `GET /v1/credentials`: the container-credentials endpoint (ECS/EKS style).
//!
//! Contract (client-compat.md §1.2): `Authorization` carries the raw token from the file
//! (401 when absent, 403 when wrong); 200 with the pre-rendered JSON; 503 with
//! `Retry-After` when nothing valid can be served. Query strings are ignored.

use std::sync::LazyLock;

use hyper::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};

use super::{App, Body, METHOD_NOT_ALLOWED, StaticError, error, json};

pub const PATH: &str = "/v1/credentials";

/// Clients retry about once a second; tell well-behaved ones to wait a little longer.
pub const RETRY_AFTER_SECONDS: &str = "5";

static MISSING_AUTH: LazyLock<StaticError> = LazyLock::new(|| {
    StaticError::new(
        "MissingAuthorization",
        "the Authorization header is required; set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    )
});
static WRONG_AUTH: LazyLock<StaticError> = LazyLock::new(|| {
    StaticError::new(
        "InvalidAuthorization",
        "the Authorization header does not match passport's token",
    )
});

pub fn handle<B>(app: &App, req: &Request<B>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, &METHOD_NOT_ALLOWED);
    }
    match req.headers().get(AUTHORIZATION) {
        None => return error(StatusCode::UNAUTHORIZED, &MISSING_AUTH),
        Some(value) if !crate::auth::matches(value.as_bytes(), &app.auth_token.load()) => {
            return error(StatusCode::FORBIDDEN, &WRONG_AUTH);
        }
        Some(_) => {}
    }
    serve(app)
}

/// The same answer without client authentication: the `--relative-uri-listen` listener
/// (ECS-style RELATIVE_URI clients never send a token). An `Authorization` header, if a
/// client sends one anyway, is ignored.
pub fn handle_unauthenticated<B>(app: &App, req: &Request<B>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, &METHOD_NOT_ALLOWED);
    }
    serve(app)
}

fn serve(app: &App) -> Response<Body> {
    let snapshot = app.shared.snapshot.load();
    match snapshot.current(&*app.shared.clock) {
        Some(served) => json(StatusCode::OK, served.container_body.clone()),
        None => {
            let mut response = json(
                StatusCode::SERVICE_UNAVAILABLE,
                snapshot.unavailable_body.clone(),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            response
        }
    }
}
