//! A lock-free log-linear latency histogram (HDR-like): exact below 128 µs, then 64 linear
//! sub-buckets per power of two (a value is reported within 1.6% above its true value), up to
//! 2^36 µs (19 hours). Every connection task records into the one shared histogram with relaxed
//! atomic adds, so nothing is merged at the end of a phase.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Values above this are recorded as this.
pub const MAX_VALUE: u64 = (1 << 36) - 1;
const LEN: usize = index(MAX_VALUE) + 1;

const fn index(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let mantissa = v >> shift;
    (2 * SUB + (msb - SUB_BITS - 1) as u64 * SUB + (mantissa - SUB)) as usize
}

/// The highest value that lands in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let k = i - 2 * SUB;
    let shift = k / SUB + 1;
    let mantissa = SUB + k % SUB;
    ((mantissa + 1) << shift) - 1
}

pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

/// What a phase reports, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            buckets: (0..LEN).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, micros: u64) {
        let v = micros.min(MAX_VALUE);
        self.buckets[index(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.sum.store(0, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
    }

    /// `None` when nothing was recorded.
    pub fn summary(&self) -> Option<Summary> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let max = self.max.load(Ordering::Relaxed);
        let quantile = |q: f64| -> u64 {
            // The smallest value with at least q of the samples at or below it.
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return upper(i).min(max);
                }
            }
            max
        };
        Some(Summary {
            count: total,
            mean: self.sum.load(Ordering::Relaxed) as f64 / total as f64,
            p50: quantile(0.50),
            p90: quantile(0.90),
            p99: quantile(0.99),
            p999: quantile(0.999),
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bound_their_values() {
        let mut last = 0;
        for v in 0..300_000u64 {
            let i = index(v);
            assert!(i == last || i == last + 1, "gap at {v}");
            last = i;
        }
        for v in (0..300_000u64).chain((300_000..MAX_VALUE).step_by(999_983)) {
            let i = index(v);
            assert!(upper(i) >= v, "{v} above its bucket's top {}", upper(i));
            assert!(
                upper(i) - v <= v / 64,
                "{v}: bucket too wide ({})",
                upper(i)
            );
            assert_eq!(index(upper(i)), i);
        }
        assert_eq!(index(MAX_VALUE), LEN - 1);
    }

    #[test]
    fn quantiles() {
        let h = Histogram::new();
        assert!(h.summary().is_none());
        for v in 1..=1000 {
            h.record(v);
        }
        let s = h.summary().expect("recorded");
        assert_eq!(s.count, 1000);
        assert!((495..=510).contains(&s.p50), "{s:?}");
        assert!((990..=1000).contains(&s.p99), "{s:?}");
        assert_eq!(s.max, 1000);
        h.reset();
        assert!(h.summary().is_none());
    }
}
