//! The ceiling for this stack: a minimal hyper 1 server on a current-thread tokio runtime
//! returning pre-rendered bytes after the same `Authorization` check passport makes.
//! Used by `bench/run.sh`: `hyper_baseline ADDR BODY_FILE TOKEN_FILE`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, body_file, token_file] = &args[..] else {
        eprintln!("usage: hyper_baseline ADDR BODY_FILE TOKEN_FILE");
        std::process::exit(64);
    };
    let body = Bytes::from(std::fs::read(body_file).expect("body file"));
    let token: Arc<[u8]> = std::fs::read(token_file).expect("token file").into();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (body, token) = (body.clone(), token.clone());
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let ok = req
                    .headers()
                    .get(AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes() == &*token);
                let mut resp = if ok {
                    Response::new(Full::new(body.clone()))
                } else {
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::FORBIDDEN;
                    r
                };
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                async move { Ok::<_, Infallible>(resp) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
}
