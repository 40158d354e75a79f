//! CI smoke for the fleet simulation: invariants only, small fleet, no timing.

use std::time::Duration;

use passport::commands::simulate_fleet::{FleetConfig, simulate};

#[test]
fn healthy_fleet_keeps_15_minutes_and_spreads_out() {
    for rollout in [Duration::from_secs(1), Duration::from_secs(600)] {
        let report = simulate(&FleetConfig {
            sidecars: 1_000,
            hours: 6,
            rollout,
            ..FleetConfig::default()
        });
        // At 1,000 sidecars a minute holds ~33 calls, so Poisson noise alone reaches 1.5x:
        // the 1.5x target is for the full 10,000 (`passport simulate-fleet`); here, 2x.
        assert!(
            report.per_minute.peak_to_mean < 2.0,
            "{:?}",
            report.per_minute
        );
        assert!(report.per_second.peak <= report.per_second_peak_if_random + 3);
        assert_eq!(report.expired_token_attempts, 0);
        assert_eq!(report.sts_failures, 0);
        assert!(report.min_time_left_healthy_s >= 900.0);
        // Every sidecar fetched at start, then about every 30 minutes.
        let expected = 1_000.0 * (1.0 + 6.0 * 3600.0 / 1800.0);
        let calls = report.sts_calls as f64;
        assert!((calls - expected).abs() < 0.1 * expected, "{calls}");
    }
}

#[test]
fn outage_recovers_without_expiry() {
    let report = simulate(&FleetConfig {
        sidecars: 1_000,
        hours: 6,
        outage: Some((Duration::from_secs(3 * 3600), Duration::from_secs(600))),
        ..FleetConfig::default()
    });
    let outage = report.outage.as_ref().unwrap();
    assert!(report.sts_failures > 0);
    assert!(outage.sidecars_affected > 0);
    // 24 minutes in hand outlast a 10-minute outage.
    assert_eq!(outage.sidecars_ran_out, 0);
    // Sidecars with plenty in hand back off up to 5 minutes, those short of time up to 60 s:
    // everyone is back within about 5 minutes, the ones that need it within about a minute.
    assert!(
        outage.all_recovered_after_s <= 301.0,
        "{}",
        outage.all_recovered_after_s
    );
    assert!(
        outage.short_of_time_recovered_after_s <= 61.0,
        "{}",
        outage.short_of_time_recovered_after_s
    );
    // Nobody retries in step: no single second holds more than a fifth of the affected.
    assert!(
        outage.after_recovery_per_second.peak < u64::from(outage.sidecars_affected) / 5,
        "{:?}",
        outage.after_recovery_per_second
    );
    assert!(report.min_time_left_healthy_s >= 900.0);
}
