//! `passport wait-ready`: poll passport's admin `/readyz` until it answers 200, or a
//! deadline passes. The legacy (non-native) sidecar runs it as its own postStart hook: the
//! kubelet starts the next container only once the hook returns, so the applications start
//! after passport has credentials, as a native sidecar's startup probe orders it.
//!
//! Exit 0: ready. Exit 69: not ready by the deadline, with the last reason (passport's 503
//! body, e.g. the STS error, or why it could not be reached). Exit 64: bad flags.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use crate::args::{EXIT_UNAVAILABLE, EXIT_USAGE};

#[derive(Debug, Clone, Args)]
pub struct WaitReadyArgs {
    /// passport's admin listener (where /readyz is).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9912")]
    pub admin: String,
    /// Give up after this long.
    #[arg(long, default_value = "120s")]
    pub timeout: String,
    /// Pause between attempts.
    #[arg(long, default_value = "500ms")]
    pub interval: String,
}

/// One attempt's outcome: ready, or why not.
pub fn probe(admin: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&admin, timeout)
        .map_err(|e| format!("cannot connect to {admin}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n")
        .map_err(|e| format!("{admin}: {e}"))?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .map_err(|e| format!("{admin}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if status == "200" {
        Ok(())
    } else {
        let body: String = body
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(500)
            .collect();
        Err(format!("/readyz answered {status}: {body}"))
    }
}

/// Poll until ready or `timeout`; `Err` holds the last reason.
pub fn wait(admin: SocketAddr, timeout: Duration, interval: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = left.clamp(Duration::from_millis(1), Duration::from_secs(2));
        match probe(admin, attempt) {
            Ok(()) => return Ok(()),
            Err(why) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!(
                        "not ready after {}: {why}",
                        humantime::format_duration(timeout)
                    ));
                }
                std::thread::sleep(interval.min(left));
            }
        }
    }
}

pub fn main(args: &WaitReadyArgs) -> ExitCode {
    let mut problems = Vec::new();
    let admin = args
        .admin
        .parse::<SocketAddr>()
        .map_err(|_| problems.push(format!("--admin {:?}: expected IP:PORT", args.admin)))
        .ok();
    let timeout = crate::args::duration(&args.timeout)
        .map_err(|e| problems.push(format!("--timeout: {e}")))
        .ok();
    let interval = crate::args::duration(&args.interval)
        .map_err(|e| problems.push(format!("--interval: {e}")))
        .ok();
    let (Some(admin), Some(timeout), Some(interval)) = (admin, timeout, interval) else {
        eprint!("{}", crate::args::ConfigErrors(problems));
        return ExitCode::from(EXIT_USAGE);
    };
    match wait(admin, timeout, interval) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("passport wait-ready: {why}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-connection-at-a-time server answering the given responses in turn.
    fn serve(responses: Vec<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for response in responses {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                s.write_all(response.as_bytes()).unwrap();
            }
        });
        addr
    }

    #[test]
    fn ready_after_a_503() {
        let addr = serve(vec![
            "HTTP/1.1 503 Service Unavailable\r\n\r\n{\"code\":\"AccessDenied\"}",
            "HTTP/1.1 200 OK\r\n\r\n{\"status\":\"ready\"}",
        ]);
        wait(addr, Duration::from_secs(30), Duration::from_millis(1)).unwrap();
    }

    #[test]
    fn the_reason_is_passports_503_body() {
        let addr = serve(vec![
            "HTTP/1.1 503 Service Unavailable\r\n\r\n{\"code\":\"AccessDenied\",\"message\":\"not authorized\"}",
        ]);
        let why = probe(addr, Duration::from_secs(5)).unwrap_err();
        assert!(why.contains("503") && why.contains("AccessDenied"), "{why}");
    }

    #[test]
    fn nothing_listening_times_out_with_the_reason() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let why = wait(addr, Duration::from_millis(50), Duration::from_millis(10)).unwrap_err();
        assert!(why.contains("cannot connect"), "{why}");
    }
}
