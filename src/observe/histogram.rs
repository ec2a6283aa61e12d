//! A lock-free histogram with fixed buckets: an observation is one bucket increment, one count
//! increment and one compare-and-swap on the sum, so hot paths never take a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// CoreDNS's `TimeBuckets`: 0.00025 s doubling 16 times (up to 8.192 s).
pub fn time_buckets() -> Vec<f64> {
    (0..16).map(|i| 0.00025 * f64::from(1u32 << i)).collect()
}

/// CoreDNS's `SlimTimeBuckets`: 0.00025 s times 10, five buckets (up to 2.5 s).
pub fn slim_time_buckets() -> Vec<f64> {
    vec![0.00025, 0.0025, 0.025, 0.25, 2.5]
}

/// The DNS request/response size buckets.
pub fn size_buckets() -> Vec<f64> {
    vec![0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16e3, 32e3, 48e3, 64e3]
}

#[derive(Debug)]
struct Inner {
    bounds: Box<[f64]>,
    /// Per-bucket (non-cumulative) counts; the last slot is `+Inf`.
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_bits: AtomicU64,
}

/// A histogram handle; clones share the same data.
#[derive(Debug, Clone)]
pub struct Histogram {
    inner: Arc<Inner>,
}

impl Histogram {
    /// A histogram with the given upper bounds (ascending; `+Inf` is implicit).
    pub fn new(bounds: Vec<f64>) -> Histogram {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            inner: Arc::new(Inner {
                bounds: bounds.into_boxed_slice(),
                counts,
                count: AtomicU64::new(0),
                sum_bits: AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let inner = &*self.inner;
        let idx = inner.bounds.iter().position(|b| v <= *b).unwrap_or(inner.bounds.len());
        if let Some(c) = inner.counts.get(idx) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let mut cur = inner.sum_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match inner.sum_bits.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        inner.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::Relaxed)
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.inner.sum_bits.load(Ordering::Relaxed))
    }

    /// (upper bound, non-cumulative count) pairs, `+Inf` last.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        let inner = &*self.inner;
        inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(inner.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets = self.buckets();
        // Keep the count consistent with the buckets read above.
        let count = buckets.iter().map(|(_, c)| c).sum();
        encoder.encode_histogram::<NoLabelSet>(self.sum(), count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn observations_land_in_first_bucket_at_or_above() {
        let h = Histogram::new(vec![1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.0);
        h.observe(1.5);
        h.observe(7.0);
        assert_eq!(h.buckets(), vec![(1.0, 2), (2.0, 1), (f64::INFINITY, 1)]);
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum(), 10.0);
    }

    #[test]
    fn time_buckets_match_coredns() {
        let b = time_buckets();
        assert_eq!(b.len(), 16);
        assert_eq!(b[0], 0.00025);
        assert_eq!(b[15], 8.192);
    }
}
