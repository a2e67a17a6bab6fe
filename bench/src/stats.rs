//! Percentiles of latency samples, by the nearest-rank method.

use std::time::Duration;

use serde::Serialize;

/// A distribution summary in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    /// `None` when there are no samples.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let total: Duration = sorted.iter().sum();
        Some(Self {
            samples: sorted.len(),
            p50_ms: ms(nearest_rank(&sorted, 50.0)),
            p90_ms: ms(nearest_rank(&sorted, 90.0)),
            p95_ms: ms(nearest_rank(&sorted, 95.0)),
            p99_ms: ms(nearest_rank(&sorted, 99.0)),
            max_ms: ms(sorted[sorted.len() - 1]),
            mean_ms: ms(total) / sorted.len() as f64,
        })
    }
}

/// The `p`th percentile of ascending `sorted` (not empty): the smallest
/// sample with at least `p`% of the samples at or below it.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> T {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Events per second, zero for an empty interval.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_matches_the_definition() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(nearest_rank(&sorted, 50.0), 50);
        assert_eq!(nearest_rank(&sorted, 90.0), 90);
        assert_eq!(nearest_rank(&sorted, 99.0), 99);
        assert_eq!(nearest_rank(&sorted, 100.0), 100);
        assert_eq!(nearest_rank(&[7], 99.0), 7);
        assert_eq!(nearest_rank(&[1, 2, 3], 50.0), 2);
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50.0), 2);
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.0), 1);
    }

    #[test]
    fn percentiles_sort_their_samples() {
        let samples: Vec<Duration> = [5, 1, 4, 2, 3].map(Duration::from_millis).to_vec();
        let summary = Percentiles::of(&samples).unwrap();
        assert_eq!(summary.samples, 5);
        assert_eq!(summary.p50_ms, 3.0);
        assert_eq!(summary.p99_ms, 5.0);
        assert_eq!(summary.max_ms, 5.0);
        assert_eq!(summary.mean_ms, 3.0);
        assert!(Percentiles::of(&[]).is_none());
    }
}
