//! Accelerated soak on paused time: short STS sessions, kubelet-style token rotation every
//! ten minutes, scripted STS faults, and concurrent clients, for several simulated hours.
//!
//! CI runs 6 simulated hours (a few seconds). The long soak is the same test with more
//! hours: `PASSPORT_SOAK_HOURS=168 cargo test --release --test soak -- --nocapture`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use passport_core::clock::{Clock, ManualClock};
use passport_core::metrics::Metrics;
use passport_core::refresh::{Refresher, Shared};
use passport_core::sts::ErrorClass;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        })
        .unwrap_or(0)
}

/// Kubelet layout: token -> ..data/token, ..data -> ..<generation>; swap ..data atomically.
fn rotate_token(dir: &std::path::Path, generation: u64) {
    let versioned = dir.join(format!("..gen{generation}"));
    std::fs::create_dir(&versioned).unwrap();
    write_token(
        &versioned,
        &format!("system:serviceaccount:ns:app#{generation}"),
    );
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..gen{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    if generation > 0 {
        std::fs::remove_dir_all(dir.join(format!("..gen{}", generation - 1))).unwrap();
    } else {
        std::os::unix::fs::symlink("..data/token", dir.join("token")).unwrap();
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn soak_with_rotation_faults_and_clients() {
    let hours: u64 = std::env::var("PASSPORT_SOAK_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(6);
    let clock = Arc::new(ManualClock::new(start_time()));
    let sts = FakeSts::new(clock.clone());
    *sts.lifetime.lock().unwrap() = Duration::from_secs(900); // the shortest session STS allows
    let dir = tempfile::tempdir().unwrap();
    rotate_token(dir.path(), 0);
    let shared = Arc::new(Shared::new(clock.clone(), Arc::new(Metrics::new())));
    let app = Arc::new(app(shared.clone()));
    let stop = CancellationToken::new();
    tokio::spawn(
        Refresher::new(
            refresh_settings(dir.path().join("token")),
            sts.clone(),
            shared.clone(),
        )
        .with_seed(42)
        .run(stop.clone()),
    );
    shared.first_credentials().await;

    // Token rotation every 10 minutes.
    let rotation_dir = dir.path().to_owned();
    tokio::spawn(async move {
        for generation in 1.. {
            sleep(Duration::from_secs(600)).await;
            rotate_token(&rotation_dir, generation);
        }
    });

    // STS faults: every 45 minutes, 3 minutes of one kind of trouble.
    let faults = [
        error(ErrorClass::Throttled, "Throttling"),
        error(ErrorClass::Transient, "IDPCommunicationError"),
        error(ErrorClass::TokenExpired, "ExpiredTokenException"),
        error(ErrorClass::Transient, "ServiceUnavailable"),
    ];
    let fault_sts = sts.clone();
    let fault_windows = Arc::new(AtomicU64::new(0));
    let windows = fault_windows.clone();
    tokio::spawn(async move {
        for i in 0.. {
            sleep(Duration::from_secs(45 * 60)).await;
            let kind = if i % 5 == 4 {
                Behaviour::Hang
            } else {
                Behaviour::Fail(faults[i % faults.len()].clone())
            };
            fault_sts.set_default(kind);
            windows.fetch_add(1, Ordering::SeqCst);
            sleep(Duration::from_secs(180)).await;
            fault_sts.set_default(Behaviour::Issue);
        }
    });

    // Clients: 8 of them, each fetching every 2 s (plus jitter from their start offsets).
    let served = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let expired = Arc::new(AtomicU64::new(0));
    let min_left = Arc::new(AtomicU64::new(u64::MAX));
    for c in 0..8u64 {
        let (app, clock) = (app.clone(), clock.clone());
        let (served, failed, expired, min_left) = (
            served.clone(),
            failed.clone(),
            expired.clone(),
            min_left.clone(),
        );
        tokio::spawn(async move {
            sleep(Duration::from_millis(250 * c)).await;
            loop {
                let reply = fetch(&app, Some(AUTH)).await;
                if reply.status == StatusCode::OK {
                    let exp = parse_expiration(reply.json()["Expiration"].as_str().unwrap());
                    match exp.duration_since(clock.wall()) {
                        Ok(left) => {
                            min_left.fetch_min(left.as_secs(), Ordering::SeqCst);
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {
                            expired.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                sleep(Duration::from_secs(2)).await;
            }
        });
    }

    let rss_start = rss_kib();
    let mut rss_mid = 0;
    for hour in 1..=hours {
        sleep(Duration::from_secs(3600)).await;
        if hour == hours / 2 {
            rss_mid = rss_kib();
        }
    }
    let rss_end = rss_kib();
    stop.cancel();

    let (served, failed, expired) = (
        served.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
        expired.load(Ordering::SeqCst),
    );
    let calls = sts.calls();
    let min_left = min_left.load(Ordering::SeqCst);
    println!(
        "soak: {hours} h simulated, {served} fetches served, {failed} failed, {expired} expired, {calls} STS calls, \
         {} fault windows, min time left {min_left} s, RSS {rss_start} -> {rss_mid} -> {rss_end} KiB",
        fault_windows.load(Ordering::SeqCst)
    );
    assert_eq!(expired, 0, "expired credentials were served");
    // Faults last 3 minutes; 15-minute sessions refreshed at 40-50% of their life keep
    // enough in hand to ride them out: not one client fetch fails.
    assert_eq!(failed, 0, "fetches failed");
    assert!(served >= hours * 3600 / 2 * 8 * 99 / 100, "{served}");
    assert!(min_left >= 60, "{min_left}");
    // Bounded STS calls: about one refresh per 6-7.5 minutes plus backoff during faults.
    let max_calls = hours * 60 / 6 + fault_windows.load(Ordering::SeqCst) * 20 + 5;
    assert!(calls <= max_calls, "{calls} STS calls > {max_calls}");
    // Flat memory: the second half of the run does not grow beyond noise.
    assert!(
        rss_end <= rss_mid + 2048,
        "RSS grew from {rss_mid} to {rss_end} KiB"
    );
    // Every rotated token was used: STS saw many distinct tokens.
    let distinct: std::collections::HashSet<String> =
        sts.tokens_seen.lock().unwrap().iter().cloned().collect();
    assert!(
        distinct.len() as u64 >= hours * 4,
        "{} distinct tokens",
        distinct.len()
    );
}
