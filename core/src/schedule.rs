//! When to refresh and how long to back off: the refresh schedule, pure and seeded.
//!
//! With lifetime `L` (time left when credentials arrive), refresh at a uniformly random
//! point in `[0.4 L, latest]`, where `latest` keeps at least 20 minutes (or half the
//! lifetime, for short sessions) in hand. With 1 h sessions a client never sees less than
//! 24 minutes left. The first refresh after start draws from `[0.1 L, latest]` instead: a
//! rollout starts a fleet within seconds, and the wide first window spreads its refreshes
//! over half an hour so they never march in step.
//!
//! Failures back off exponentially with jitter, per error class; while the last good
//! credentials have plenty of time left the back-off may stretch to 5 minutes, so a fleet
//! riding out an STS outage does not press it.
//!
//! [`Schedule`] is the state machine; the `Refresher` drives it with real STS calls and
//! `passport simulate-fleet` with simulated ones, so the simulation that proves the spread
//! runs exactly the code the sidecar runs. It does no I/O and reads no clock.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};

use crate::sts::ErrorClass;

/// The refresh and back-off state of one credential source.
#[derive(Debug, Clone)]
pub struct Schedule {
    rng: SmallRng,
    first: bool,
    failures: u32,
    urgent_below: Duration,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Wait this long before the next attempt.
    pub delay: Duration,
    /// Consecutive failures so far, this one included (1-based).
    pub attempt: u32,
    /// The ceiling `delay` was drawn under (see [`retry_cap`]).
    pub cap: Duration,
}

impl Schedule {
    /// A schedule whose draws are a pure function of `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            first: true,
            failures: 0,
            urgent_below: Duration::ZERO,
        }
    }

    /// A schedule seeded from the OS: what a running sidecar uses, so a fleet's sidecars
    /// draw independently.
    pub fn from_entropy() -> Self {
        Self::seeded(rand::rng().random())
    }

    /// Credentials with `lifetime` left arrived: how long until the next refresh.
    pub fn after_success(&mut self, lifetime: Duration) -> Duration {
        let delay = refresh_delay(lifetime, self.first, &mut self.rng);
        self.first = false;
        self.failures = 0;
        self.urgent_below = CLIENT_REFRESH_WINDOW.min(minimum_time_left(lifetime) / 2);
        delay
    }

    /// An attempt failed with `class` while the last good credentials can still be served
    /// for `servable` (`None`: nothing servable): how long until the next attempt.
    pub fn after_failure(&mut self, class: ErrorClass, servable: Option<Duration>) -> Backoff {
        self.failures = self.failures.saturating_add(1);
        let cap = retry_cap(class, servable);
        Backoff {
            delay: retry_delay(class, self.failures, cap, &mut self.rng),
            attempt: self.failures,
            cap,
        }
    }

    /// Below this much servable time, refresh at once whatever the schedule said: only a
    /// wall clock stepped forward gets there while STS is healthy.
    pub fn urgent_below(&self) -> Duration {
        self.urgent_below
    }

    /// The schedule's random stream, for a simulation that draws its own events (STS
    /// latency) from the same seed, so one seed fixes a whole run.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }
}

/// Served credentials keep at least this long in hand at refresh time (longer sessions).
pub const KEEP_IN_HAND: Duration = Duration::from_secs(20 * 60);
/// Clients refetch on every call below this much time left (botocore's advisory window).
pub const CLIENT_REFRESH_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Never refresh more often than this, whatever STS returns.
pub const MIN_REFRESH_DELAY: Duration = Duration::from_secs(5);

/// When to refresh credentials that have `lifetime` left.
pub fn refresh_delay<R: Rng + ?Sized>(
    lifetime: Duration,
    first_after_start: bool,
    rng: &mut R,
) -> Duration {
    let l = lifetime.as_secs_f64();
    let latest = (l * 0.6).min((l - KEEP_IN_HAND.as_secs_f64()).max(l * 0.5));
    let earliest = if first_after_start { l * 0.1 } else { l * 0.4 }.min(latest);
    let at = if latest > earliest {
        rng.random_range(earliest..=latest)
    } else {
        latest
    };
    Duration::from_secs_f64(at).max(MIN_REFRESH_DELAY)
}

/// The longest time a client can be handed credentials with, given the session duration:
/// the minimum time left at any refresh point (for the start-up warning).
pub fn minimum_time_left(duration: Duration) -> Duration {
    let l = duration.as_secs_f64();
    let latest = (l * 0.6).min((l - KEEP_IN_HAND.as_secs_f64()).max(l * 0.5));
    Duration::from_secs_f64(l - latest)
}

/// Per error class: the first back-off and the cap it doubles up to (client-compat.md §3).
fn backoff_bounds(class: ErrorClass) -> (Duration, Duration) {
    let (base, cap) = match class {
        ErrorClass::Transient | ErrorClass::TokenExpired => (1, 60),
        ErrorClass::Throttled => (5, 120),
        ErrorClass::TokenRejected => (10, 180),
        ErrorClass::Permanent => (30, 300),
    };
    (Duration::from_secs(base), Duration::from_secs(cap))
}

/// The back-off ceiling while the last good credentials can be served for a long while yet.
pub const RELAXED_RETRY_CAP: Duration = Duration::from_secs(5 * 60);

/// The longest back-off after a failure of this class, given how long the last good
/// credentials can still be served (`None`: nothing servable). A sidecar with plenty in hand
/// has no reason to press an STS that is failing (a fleet of them riding out an outage is
/// most of its load), so it may wait up to [`RELAXED_RETRY_CAP`], but never so long that the
/// wait eats into [`KEEP_IN_HAND`]; a sidecar short of time retries at the class's own cap.
pub fn retry_cap(class: ErrorClass, servable: Option<Duration>) -> Duration {
    let (_, cap) = backoff_bounds(class);
    let spare = servable.map_or(Duration::ZERO, |left| left.saturating_sub(KEEP_IN_HAND));
    cap.max(spare.min(RELAXED_RETRY_CAP))
}

/// How long to wait after the `attempt`-th consecutive failure (1-based) of this class.
/// Exponential growth from a per-class base up to `cap` (see [`retry_cap`]), with jitter
/// drawn from `[base/2, ceiling]` so that a fleet recovering from an STS outage does not
/// retry in step.
pub fn retry_delay<R: Rng + ?Sized>(
    class: ErrorClass,
    attempt: u32,
    cap: Duration,
    rng: &mut R,
) -> Duration {
    let base = backoff_bounds(class).0.as_secs_f64();
    let ceiling = (base * 2f64.powi(attempt.saturating_sub(1).min(16) as i32))
        .min(cap.as_secs_f64())
        .max(base / 2.0);
    Duration::from_secs_f64(rng.random_range(base / 2.0..=ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    const HOUR: Duration = Duration::from_secs(3600);

    /// Fixed seed: a failure reproduces exactly, and CI runs the same cases every time.
    fn seeded(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            rng_seed: RngSeed::Fixed(0x7061_7373),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn class() -> impl Strategy<Value = ErrorClass> {
        prop_oneof![
            Just(ErrorClass::Transient),
            Just(ErrorClass::TokenExpired),
            Just(ErrorClass::Throttled),
            Just(ErrorClass::TokenRejected),
            Just(ErrorClass::Permanent),
        ]
    }

    proptest! {
        #![proptest_config(seeded(4000))]

        /// Every refresh point leaves at least `minimum_time_left` in hand (24 minutes for
        /// 1 h sessions), never comes before 40 % of the lifetime (10 % the first time),
        /// and never after 60 %.
        #[test]
        fn refresh_points_stay_in_their_window(
            lifetime_s in 900u64..=43_200,
            first: bool,
            seed: u64,
        ) {
            let lifetime = Duration::from_secs(lifetime_s);
            let d = refresh_delay(lifetime, first, &mut SmallRng::seed_from_u64(seed));
            prop_assert!(lifetime - d >= minimum_time_left(lifetime), "{d:?} of {lifetime:?}");
            prop_assert!(d <= lifetime.mul_f64(0.6));
            let floor = if first { 0.1 } else { 0.4 };
            prop_assert!(d >= lifetime.mul_f64(floor).min(lifetime - minimum_time_left(lifetime)));
        }

        /// Back-off stays within `[base/2, cap]`, and a stretched cap never eats into the
        /// time kept in hand.
        #[test]
        fn backoff_stays_under_its_cap_and_keeps_time_in_hand(
            class in class(),
            attempt in 1u32..64,
            servable_s in proptest::option::of(0u64..43_200),
            seed: u64,
        ) {
            let servable = servable_s.map(Duration::from_secs);
            let cap = retry_cap(class, servable);
            let d = retry_delay(class, attempt, cap, &mut SmallRng::seed_from_u64(seed));
            let (base, class_cap) = backoff_bounds(class);
            prop_assert!(d >= base / 2 && d <= cap.max(base / 2), "{d:?} cap {cap:?}");
            if cap > class_cap {
                prop_assert!(servable.unwrap() - d >= KEEP_IN_HAND);
            }
        }

        /// The same seed gives the same schedule: what makes the fleet figures reproducible.
        #[test]
        fn schedules_are_a_pure_function_of_the_seed(
            seed: u64,
            outcomes in proptest::collection::vec(proptest::option::of(class()), 1..20),
        ) {
            let (mut a, mut b) = (Schedule::seeded(seed), Schedule::seeded(seed));
            for outcome in outcomes {
                match outcome {
                    None => prop_assert_eq!(a.after_success(HOUR), b.after_success(HOUR)),
                    Some(class) => prop_assert_eq!(
                        a.after_failure(class, Some(HOUR)),
                        b.after_failure(class, Some(HOUR))
                    ),
                }
            }
        }
    }

    #[test]
    fn fixed_points_of_the_schedule() {
        assert_eq!(minimum_time_left(HOUR), Duration::from_secs(1440));
        assert!(minimum_time_left(Duration::from_secs(900)) < CLIENT_REFRESH_WINDOW);
        // Tiny lifetimes never cause a tight loop.
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(
            refresh_delay(Duration::from_secs(2), false, &mut rng),
            MIN_REFRESH_DELAY
        );
    }

    #[test]
    fn a_success_resets_the_failure_count_and_the_first_window() {
        let mut s = Schedule::seeded(3);
        assert!(s.after_success(HOUR) >= HOUR.mul_f64(0.1));
        for attempt in 1..=3 {
            assert_eq!(
                s.after_failure(ErrorClass::Transient, None).attempt,
                attempt
            );
        }
        let second = s.after_success(HOUR);
        assert!(
            second >= HOUR.mul_f64(0.4),
            "{second:?}: no longer the first refresh"
        );
        assert_eq!(s.after_failure(ErrorClass::Transient, None).attempt, 1);
        assert_eq!(s.urgent_below(), Duration::from_secs(720));
    }

    #[test]
    fn first_refresh_is_spread_over_a_wide_window() {
        let mut rng = SmallRng::seed_from_u64(3);
        let delays: Vec<f64> = (0..10_000)
            .map(|_| refresh_delay(HOUR, true, &mut rng).as_secs_f64())
            .collect();
        let min = delays.iter().cloned().fold(f64::MAX, f64::min);
        let max = delays.iter().cloned().fold(0.0, f64::max);
        assert!(min < 400.0 && max > 2100.0, "{min}..{max}");
    }

    #[test]
    fn backoff_grows_per_class_and_is_capped() {
        let mut rng = SmallRng::seed_from_u64(11);
        let transient = retry_cap(ErrorClass::Transient, None);
        assert_eq!(transient, Duration::from_secs(60));
        assert_eq!(
            retry_cap(ErrorClass::Permanent, None),
            Duration::from_secs(300)
        );
        assert!(
            retry_delay(ErrorClass::Transient, 1, transient, &mut rng) <= Duration::from_secs(1)
        );
        // Later attempts spread out: the ceiling doubles until the cap.
        let late: Vec<Duration> = (0..1000)
            .map(|_| retry_delay(ErrorClass::Transient, 10, transient, &mut rng))
            .collect();
        assert!(late.iter().any(|d| *d > Duration::from_secs(50)));
        assert!(late.iter().any(|d| *d < Duration::from_secs(10)));
    }

    #[test]
    fn backoff_stretches_only_while_the_wait_leaves_time_in_hand() {
        let min = |m: u64| Some(Duration::from_secs(m * 60));
        // Nothing servable, or too little to spare: the class cap.
        assert_eq!(
            retry_cap(ErrorClass::Transient, None),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_cap(ErrorClass::Transient, min(21)),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_cap(ErrorClass::Throttled, min(21)),
            Duration::from_secs(120)
        );
        // Time to spare above KEEP_IN_HAND: up to that, at most 5 minutes, never below the
        // class's own cap.
        assert_eq!(
            retry_cap(ErrorClass::Transient, min(23)),
            Duration::from_secs(180)
        );
        assert_eq!(retry_cap(ErrorClass::Transient, min(50)), RELAXED_RETRY_CAP);
        assert_eq!(retry_cap(ErrorClass::Permanent, min(50)), RELAXED_RETRY_CAP);
        assert_eq!(retry_cap(ErrorClass::Permanent, min(22)), RELAXED_RETRY_CAP);
        // Whatever is drawn under that cap still leaves KEEP_IN_HAND.
        let mut rng = SmallRng::seed_from_u64(3);
        for left in [21, 23, 24, 30] {
            let left = min(left).unwrap();
            let cap = retry_cap(ErrorClass::Transient, Some(left));
            for attempt in 1..20 {
                let d = retry_delay(ErrorClass::Transient, attempt, cap, &mut rng);
                assert!(d <= cap, "{d:?} > {cap:?}");
                if cap > Duration::from_secs(60) {
                    assert!(left - d >= KEEP_IN_HAND, "{left:?} - {d:?}");
                }
            }
        }
        // A cap below the base still yields the base's lower bound, not a panic.
        let d = retry_delay(ErrorClass::Permanent, 1, Duration::from_secs(1), &mut rng);
        assert_eq!(d, Duration::from_secs(15));
    }
}
