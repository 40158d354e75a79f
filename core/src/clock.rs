//! Time, injected.
//!
//! Credentials expire on the wall clock (STS says when, clients compare against their own
//! wall clock), but the wall clock can jump. Everything that decides whether credentials are
//! still servable asks both clocks through this trait, so tests can drive time (tokio's
//! paused clock) and make the wall clock jump on purpose. Sleeps go through `tokio::time`.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time, as clients and STS see it.
    fn wall(&self) -> SystemTime;
    /// Monotonic time (tokio's, so paused-time tests control it).
    fn mono(&self) -> Instant {
        Instant::now()
    }
}

/// The real clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A wall clock that advances with tokio's (paused) clock from a fixed start, plus an offset
/// that tests can change to simulate NTP steps.
#[derive(Debug)]
pub struct ManualClock {
    wall_at_start: SystemTime,
    mono_at_start: Instant,
    offset: Mutex<(Duration, bool)>, // (amount, negative)
}

impl ManualClock {
    pub fn new(wall_at_start: SystemTime) -> Self {
        Self {
            wall_at_start,
            mono_at_start: Instant::now(),
            offset: Mutex::new((Duration::ZERO, false)),
        }
    }

    /// Step the wall clock forward (or back) without moving monotonic time.
    pub fn jump_forward(&self, by: Duration) {
        self.shift(by, false);
    }

    pub fn jump_back(&self, by: Duration) {
        self.shift(by, true);
    }

    fn shift(&self, by: Duration, back: bool) {
        let mut offset = self.offset.lock().unwrap();
        let (amount, negative) = *offset;
        // Signed add of (amount, negative) and (by, back).
        *offset = if negative == back {
            (amount + by, negative)
        } else if amount >= by {
            (amount - by, negative)
        } else {
            (by - amount, back)
        };
    }
}

impl Clock for ManualClock {
    fn wall(&self) -> SystemTime {
        let base = self.wall_at_start + (Instant::now() - self.mono_at_start);
        let (amount, negative) = *self.offset.lock().unwrap();
        if negative {
            base - amount
        } else {
            base + amount
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the only `Expiration` shape every SDK accepts (fractions are
/// dropped, which only makes the advertised expiry earlier).
pub fn format_rfc3339_seconds(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc() {
        let t = SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_700_000_000)
            + Duration::from_millis(999);
        assert_eq!(format_rfc3339_seconds(t), "2023-11-14T22:13:20Z");
        assert_eq!(
            format_rfc3339_seconds(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00Z"
        );
        // Leap day and a far date.
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(format_rfc3339_seconds(leap), "2000-02-29T00:00:00Z");
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(format_rfc3339_seconds(far), "2099-12-31T23:59:59Z");
    }

    #[tokio::test(start_paused = true)]
    async fn manual_clock_follows_paused_time_and_jumps() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = ManualClock::new(start);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(clock.wall(), start + Duration::from_secs(10));
        clock.jump_back(Duration::from_secs(30));
        assert_eq!(clock.wall(), start - Duration::from_secs(20));
        clock.jump_forward(Duration::from_secs(50));
        assert_eq!(clock.wall(), start + Duration::from_secs(30));
    }
}
