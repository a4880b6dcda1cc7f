//! Latency recording: an HDR histogram per task, merged at the end, read as percentiles.
//!
//! Values are kept in microseconds with three significant digits, so a percentile is exact to
//! within 0.1 % of its value whatever the number of samples, and a task records without
//! allocating or sharing anything with the others.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest value kept apart from the others: one hour. Anything longer is recorded as an hour.
const HIGHEST_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// One kind of latency (reserve, confirm, delivery…) as seen by one task or by the whole run.
#[derive(Debug, Clone)]
pub struct Latency {
    micros: Histogram<u64>,
}

/// The percentiles a report shows, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts (1 ≤ low, high ≥ 2·low, 3 digits);
        // the unit tests construct one, so this cannot fail at run time.
        #[allow(clippy::expect_used)]
        let micros = Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Self { micros }
    }

    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.record_micros(micros);
    }

    /// Records a value in microseconds, clamped into the histogram's range.
    pub fn record_micros(&mut self, micros: u64) {
        self.micros
            .saturating_record(micros.clamp(1, HIGHEST_MICROS));
    }

    /// Adds another task's samples to these.
    pub fn merge(&mut self, other: &Latency) {
        // Both histograms have the same bounds, so addition cannot go out of range; should it
        // ever, the samples are re-recorded one bucket at a time (saturating) instead.
        if self.micros.add(&other.micros).is_err() {
            for bucket in other.micros.iter_recorded() {
                self.micros
                    .saturating_record_n(bucket.value_iterated_to(), bucket.count_at_value());
            }
        }
    }

    /// The value at `percentile` (0–100), in milliseconds; 0 when nothing was recorded.
    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        micros_to_ms(self.micros.value_at_percentile(percentile))
    }

    pub fn summary(&self) -> LatencySummary {
        if self.micros.is_empty() {
            return LatencySummary {
                count: 0,
                mean_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
            };
        }
        LatencySummary {
            count: self.micros.len(),
            mean_ms: self.micros.mean() / 1000.0,
            p50_ms: self.percentile_ms(50.0),
            p90_ms: self.percentile_ms(90.0),
            p99_ms: self.percentile_ms(99.0),
            p999_ms: self.percentile_ms(99.9),
            max_ms: micros_to_ms(self.micros.max()),
        }
    }

    /// Points `(percentile, milliseconds)` for a percentile-distribution chart, from the minimum
    /// to the maximum, denser towards the tail where the interesting things happen.
    pub fn curve(&self) -> Vec<(f64, f64)> {
        if self.micros.is_empty() {
            return Vec::new();
        }
        let mut points: Vec<(f64, f64)> = CURVE_PERCENTILES
            .iter()
            .map(|&p| (p, self.percentile_ms(p)))
            .collect();
        points.push((100.0, micros_to_ms(self.micros.max())));
        points
    }
}

const CURVE_PERCENTILES: [f64; 16] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.975, 99.99,
    99.999,
];

fn micros_to_ms(micros: u64) -> f64 {
    // Latencies stay far below 2^53 µs, so the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    let micros = micros as f64;
    micros / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within hdrhistogram's promised precision (three significant digits).
    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001 + 0.001
    }

    fn uniform_1_to_1000_ms() -> Latency {
        let mut latency = Latency::new();
        for ms in 1..=1000_u64 {
            latency.record(Duration::from_millis(ms));
        }
        latency
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let summary = uniform_1_to_1000_ms().summary();
        assert_eq!(summary.count, 1000);
        assert!(close(summary.p50_ms, 500.0), "{summary:?}");
        assert!(close(summary.p90_ms, 900.0), "{summary:?}");
        assert!(close(summary.p99_ms, 990.0), "{summary:?}");
        // The 99.9th of 1,000 samples is the 999th or, by rounding of 0.999 × 1000, the last.
        assert!((998.9..=1001.0).contains(&summary.p999_ms), "{summary:?}");
        assert!(close(summary.max_ms, 1000.0), "{summary:?}");
        assert!(close(summary.mean_ms, 500.5), "{summary:?}");
    }

    #[test]
    fn one_slow_sample_shows_at_the_tail_only() {
        let mut latency = Latency::new();
        for _ in 0..999 {
            latency.record(Duration::from_micros(200));
        }
        latency.record(Duration::from_secs(2));
        let summary = latency.summary();
        assert!(close(summary.p50_ms, 0.2), "{summary:?}");
        assert!(close(summary.p99_ms, 0.2), "{summary:?}");
        assert!(close(summary.max_ms, 2000.0), "{summary:?}");
    }

    #[test]
    fn merging_is_the_same_as_recording_everything_in_one() {
        let mut left = Latency::new();
        let mut right = Latency::new();
        for ms in 1..=500_u64 {
            left.record(Duration::from_millis(ms));
        }
        for ms in 501..=1000_u64 {
            right.record(Duration::from_millis(ms));
        }
        left.merge(&right);
        assert_eq!(left.summary(), uniform_1_to_1000_ms().summary());
    }

    #[test]
    fn empty_is_all_zero_and_has_no_curve() {
        let latency = Latency::new();
        assert_eq!(latency.summary().count, 0);
        assert_eq!(latency.summary().p99_ms, 0.0);
        assert!(latency.curve().is_empty());
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut latency = Latency::new();
        latency.record(Duration::ZERO);
        latency.record(Duration::from_secs(10 * 3600));
        assert_eq!(latency.summary().count, 2);
        assert!(close(latency.summary().max_ms, 3_600_000.0));
    }

    #[test]
    fn the_curve_rises_from_the_median_to_the_maximum() {
        let curve = uniform_1_to_1000_ms().curve();
        assert_eq!(curve.last().map(|p| p.0), Some(100.0));
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
    }
}
