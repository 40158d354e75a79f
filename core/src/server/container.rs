//! `GET /v1/credentials`: the container-credentials endpoint (ECS/EKS style).
//!
//! Contract (client-compat.md §1.2): `Authorization` carries the raw token from the file
//! (401 when absent, 403 when wrong); 200 with the pre-rendered JSON; 503 with
//! `Retry-After` when nothing valid can be served. Query strings are ignored.
//!
//! `GET /v1/credentials/NAME` is the same for the `--extra-role` named NAME (404 for a
//! name that is not served, answered only after the token is checked). The unauthenticated
//! listener serves the default role only.

use std::sync::LazyLock;

use hyper::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};

use super::{App, Body, METHOD_NOT_ALLOWED, StaticError, error, json};
use crate::refresh::Shared;

pub const PATH: &str = "/v1/credentials";

/// Which role a credentials path asks for: `Some(None)` for the default role at [`PATH`],
/// `Some(Some(name))` for `PATH/name`, `None` for any other path.
pub fn role_in(path: &str) -> Option<Option<&str>> {
    match path.strip_prefix(PATH)? {
        "" => Some(None),
        rest => rest
            .strip_prefix('/')
            .filter(|name| !name.is_empty() && !name.contains('/'))
            .map(Some),
    }
}

/// Clients retry about once a second; tell well-behaved ones to wait a little longer.
pub const RETRY_AFTER_SECONDS: &str = "5";

static MISSING_AUTH: LazyLock<StaticError> = LazyLock::new(|| {
    StaticError::new(
        "MissingAuthorization",
        "the Authorization header is required; set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    )
});
static NO_SUCH_ROLE: LazyLock<StaticError> = LazyLock::new(|| {
    StaticError::new(
        "NoSuchRole",
        "no role is served under this name (passport serve --extra-role NAME=ARN)",
    )
});
static WRONG_AUTH: LazyLock<StaticError> = LazyLock::new(|| {
    StaticError::new(
        "InvalidAuthorization",
        "the Authorization header does not match passport's token",
    )
});

pub fn handle<B>(app: &App, role: Option<&str>, req: &Request<B>) -> Response<Body> {
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
    serve(app, role)
}

/// The same answer without client authentication: the `--relative-uri-listen` listener
/// (ECS-style RELATIVE_URI clients never send a token). An `Authorization` header, if a
/// client sends one anyway, is ignored.
pub fn handle_unauthenticated<B>(app: &App, req: &Request<B>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error(StatusCode::METHOD_NOT_ALLOWED, &METHOD_NOT_ALLOWED);
    }
    serve(app, None)
}

fn serve(app: &App, role: Option<&str>) -> Response<Body> {
    let shared: &Shared = match role {
        None => &app.shared,
        Some(name) => match app.extra.get(name) {
            Some(shared) => shared,
            None => return error(StatusCode::NOT_FOUND, &NO_SUCH_ROLE),
        },
    };
    let snapshot = shared.snapshot.load();
    match snapshot.current(&*shared.clock) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_default_role_or_one_extra_role() {
        assert_eq!(role_in("/v1/credentials"), Some(None));
        assert_eq!(role_in("/v1/credentials/reports"), Some(Some("reports")));
        for other in [
            "/v1/credentials/",
            "/v1/credentials/a/b",
            "/v1/credentialsx",
            "/v1/credential",
            "/",
        ] {
            assert_eq!(role_in(other), None, "{other}");
        }
    }
}
