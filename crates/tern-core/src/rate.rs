//! A token bucket for per-client publish rates.

use std::time::Instant;

/// Allows `rate` units per second on average, with bursts of up to one second's worth.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, now: Instant) -> Option<RateLimit> {
        (rate > 0).then(|| RateLimit { rate: f64::from(rate), tokens: f64::from(rate), last: now })
    }

    /// Takes `amount` units if the bucket holds them; false means the rate is exceeded.
    pub fn take(&mut self, amount: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(amount));
        if self.tokens >= amount {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10, start).unwrap();
        assert!((0..10).all(|_| limit.take(1.0, start)));
        assert!(!limit.take(1.0, start));
        assert!(limit.take(1.0, start + Duration::from_millis(100)));
        assert!(!limit.take(1.0, start + Duration::from_millis(100)));
        assert!(RateLimit::new(0, start).is_none());
    }

    #[test]
    fn one_large_unit_fits_after_a_full_second() {
        // A single message larger than the byte rate is not refused forever.
        let start = Instant::now();
        let mut limit = RateLimit::new(100, start).unwrap();
        assert!(!limit.take(150.0, start));
        assert!(limit.take(150.0, start + Duration::from_secs(2)));
    }
}
