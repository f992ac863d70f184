//! What a run measures: live counters for the progress line, per-publisher delivery checks
//! made by each subscriber, and latency histograms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use super::payload::Header;

/// Live counters shared by every connection task and read by the progress line. Relaxed
/// atomics: each is an independent tally, read only for reporting.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub received: AtomicU64,
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    pub errors: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A histogram of nanoseconds from 1 ns to one hour at three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Which sequence numbers of one publisher a subscriber has seen.
#[derive(Debug, Default)]
struct PublisherTrack {
    /// Bit `n` is set once sequence `n` has arrived.
    seen: Vec<u64>,
    highest: Option<u64>,
    unique: u64,
    duplicates: u64,
    out_of_order: u64,
}

impl PublisherTrack {
    /// Records `sequence`; true if it had not been seen before.
    fn record(&mut self, sequence: u64) -> bool {
        let Ok(word) = usize::try_from(sequence / 64) else { return false };
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        let bit = 1u64 << (sequence % 64);
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        match self.highest {
            Some(highest) if sequence < highest => self.out_of_order += 1,
            _ => self.highest = Some(sequence),
        }
        true
    }

    /// Adds what another subscriber saw of the same publisher: a sequence both saw is a
    /// duplicate; order is only meaningful within one subscriber, so those counts add up.
    fn merge(&mut self, other: &PublisherTrack) {
        if other.seen.len() > self.seen.len() {
            self.seen.resize(other.seen.len(), 0);
        }
        for (mine, theirs) in self.seen.iter_mut().zip(&other.seen) {
            self.duplicates += u64::from((*mine & theirs).count_ones());
            *mine |= theirs;
        }
        self.unique = self.seen.iter().map(|word| u64::from(word.count_ones())).sum();
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.highest = self.highest.max(other.highest);
    }
}

/// The checks one subscriber makes on what it receives.
#[derive(Debug)]
pub struct Delivery {
    publishers: HashMap<u32, PublisherTrack>,
    pub received: u64,
    /// Distinct messages received, over all publishers.
    unique: u64,
    /// Messages whose payload is not a bench payload.
    pub foreign: u64,
    pub latency: Histogram<u64>,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery { publishers: HashMap::new(), received: 0, unique: 0, foreign: 0, latency: latency_histogram() }
    }
}

impl Delivery {
    /// Records one received payload, `now_nanos` on the same [`super::payload::Clock`].
    pub fn record(&mut self, payload: &[u8], now_nanos: u64) {
        self.received += 1;
        let Some(header) = Header::parse(payload) else {
            self.foreign += 1;
            return;
        };
        self.unique += u64::from(self.publishers.entry(header.publisher).or_default().record(header.sequence));
        self.latency.saturating_record(now_nanos.saturating_sub(header.sent_at_nanos).max(1));
    }

    /// Distinct messages received, over all publishers.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Adds what another subscriber received, as if one subscriber had received both: the
    /// members of a shared subscription are checked as one.
    pub fn merge(&mut self, other: &Delivery) -> anyhow::Result<()> {
        for (index, track) in &other.publishers {
            self.publishers.entry(*index).or_default().merge(track);
        }
        self.unique = self.publishers.values().map(|track| track.unique).sum();
        self.received += other.received;
        self.foreign += other.foreign;
        self.latency.add(&other.latency).map_err(|error| anyhow::anyhow!("merging latency histograms: {error}"))
    }

    /// Totals, with losses counted against `sent` (messages each publisher is known to have
    /// sent) or, where a publisher is not known, against its highest sequence number seen.
    pub fn totals(&self, sent: &HashMap<u32, u64>) -> DeliveryTotals {
        let mut totals = DeliveryTotals { received: self.received, foreign: self.foreign, ..DeliveryTotals::default() };
        for (index, track) in &self.publishers {
            let expected = match sent.get(index) {
                Some(&count) => count,
                None => track.highest.map_or(0, |highest| highest + 1),
            };
            totals.lost += expected.saturating_sub(track.unique);
            totals.duplicates += track.duplicates;
            totals.out_of_order += track.out_of_order;
        }
        // A known publisher none of whose messages arrived lost all of them.
        totals.lost +=
            sent.iter().filter(|(index, _)| !self.publishers.contains_key(index)).map(|(_, &n)| n).sum::<u64>();
        totals
    }
}

/// Delivery checks summed over subscribers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryTotals {
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub foreign: u64,
}

impl DeliveryTotals {
    pub fn add(&mut self, other: DeliveryTotals) {
        self.received += other.received;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.foreign += other.foreign;
    }
}

/// p50, p90, p99, p99.9 and max of `histogram` in microseconds, as JSON; `null` when empty.
pub fn percentiles_json(histogram: &Histogram<u64>) -> serde_json::Value {
    if histogram.is_empty() {
        return serde_json::Value::Null;
    }
    let micros = |nanos: u64| nanos as f64 / 1_000.0;
    serde_json::json!({
        "count": histogram.len(),
        "p50": micros(histogram.value_at_quantile(0.5)),
        "p90": micros(histogram.value_at_quantile(0.9)),
        "p99": micros(histogram.value_at_quantile(0.99)),
        "p99_9": micros(histogram.value_at_quantile(0.999)),
        "max": micros(histogram.max()),
    })
}

/// The same percentiles as one human-readable line.
pub fn percentiles_text(histogram: &Histogram<u64>) -> String {
    if histogram.is_empty() {
        return "none".to_owned();
    }
    let ms = |nanos: u64| nanos as f64 / 1_000_000.0;
    format!(
        "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples)",
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.9)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.value_at_quantile(0.999)),
        ms(histogram.max()),
        histogram.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(publisher: u32, sequence: u64) -> bytes::Bytes {
        Header { publisher, sequence, sent_at_nanos: 1_000 }.payload(32)
    }

    #[test]
    fn in_order_delivery_has_no_anomalies() {
        let mut delivery = Delivery::default();
        for sequence in 0..100 {
            delivery.record(&payload(0, sequence), 2_000);
        }
        let totals = delivery.totals(&HashMap::from([(0, 100)]));
        assert_eq!(totals, DeliveryTotals { received: 100, ..DeliveryTotals::default() });
        assert_eq!(delivery.latency.len(), 100);
    }

    #[test]
    fn gaps_duplicates_and_reordering_are_counted() {
        let mut delivery = Delivery::default();
        for sequence in [0, 1, 3, 2, 3, 6] {
            delivery.record(&payload(4, sequence), 2_000);
        }
        // Sent 0..=7: 4, 5 and 7 never came; 3 came twice; 2 came after 3.
        let totals = delivery.totals(&HashMap::from([(4, 8)]));
        assert_eq!(totals.lost, 3);
        assert_eq!(totals.duplicates, 1);
        assert_eq!(totals.out_of_order, 1);
        assert_eq!(totals.received, 6);
        // Without the publisher's count, losses are gaps below the highest sequence seen.
        assert_eq!(delivery.totals(&HashMap::new()).lost, 2);
    }

    #[test]
    fn merged_subscribers_count_losses_over_the_group() {
        let (mut first, mut second) = (Delivery::default(), Delivery::default());
        for sequence in [0, 2, 4] {
            first.record(&payload(1, sequence), 2_000);
        }
        for sequence in [1, 4, 5] {
            second.record(&payload(1, sequence), 2_000);
        }
        first.merge(&second).unwrap();
        // Sent 0..=6: 3 and 6 never came; 4 came to both members.
        let totals = first.totals(&HashMap::from([(1, 7)]));
        assert_eq!((totals.received, totals.lost, totals.duplicates), (6, 2, 1));
        assert_eq!(first.unique(), 5);
        assert_eq!(first.latency.len(), 6);
    }

    #[test]
    fn silent_publisher_lost_everything_and_foreign_payloads_are_counted() {
        let mut delivery = Delivery::default();
        delivery.record(b"not a bench message", 0);
        let totals = delivery.totals(&HashMap::from([(1, 5)]));
        assert_eq!((totals.lost, totals.foreign), (5, 1));
    }
}
