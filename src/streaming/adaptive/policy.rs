//! The quality policy applied by the quality monitor to a session's latest report.
//!
//! Step down at once when playback is in danger (buffer draining, measured throughput under the
//! current rung's need, fresh rebuffers); step up one rung only with clear headroom (throughput
//! 1.5× the next rung's need and a healthy buffer). The gap between the two thresholds is the
//! hysteresis that keeps a session from oscillating.

use super::{AdaptiveProfile, PerformanceMetrics};

/// Buffer health (percent) under which we step down whatever the throughput says.
const DANGER_BUFFER_PCT: f32 = 25.0;
/// Buffer health (percent) needed before stepping up.
const SAFE_BUFFER_PCT: f32 = 70.0;
/// Headroom over the next rung's bandwidth estimate needed to step up.
const UP_HEADROOM: f64 = 1.5;

/// The profile the session should move to, if any. `ladder` holds the rungs a session may use
/// (one codec family), in any order.
pub fn decide(
    current: &str,
    previous: Option<&PerformanceMetrics>,
    metrics: &PerformanceMetrics,
    ladder: &[&AdaptiveProfile],
) -> Option<String> {
    let mut rungs: Vec<&AdaptiveProfile> = ladder.to_vec();
    rungs.sort_by_key(|p| p.bandwidth_estimate_kbps);
    let idx = rungs.iter().position(|p| p.quality_id == current)?;
    let cur = rungs[idx];
    let speed = f64::from(metrics.download_speed_kbps);
    let new_rebuffers = metrics.rebuffer_count > previous.map_or(0, |p| p.rebuffer_count);
    let measured = metrics.download_speed_kbps > 0;

    let danger = metrics.buffer_health_percentage < DANGER_BUFFER_PCT
        || new_rebuffers
        || (measured && speed < f64::from(cur.bandwidth_estimate_kbps));
    if danger && idx > 0 {
        // Fall to the best rung the measured throughput carries (at least one step).
        let target = if measured {
            rungs[..idx]
                .iter()
                .rposition(|p| f64::from(p.bandwidth_estimate_kbps) <= speed)
                .unwrap_or(0)
        } else {
            idx - 1
        };
        return Some(rungs[target].quality_id.clone());
    }
    if !danger && idx + 1 < rungs.len() && measured {
        let next = rungs[idx + 1];
        if speed >= f64::from(next.bandwidth_estimate_kbps) * UP_HEADROOM
            && metrics.buffer_health_percentage >= SAFE_BUFFER_PCT
        {
            return Some(next.quality_id.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(buffer: f32, speed: u32, rebuffers: u32) -> PerformanceMetrics {
        PerformanceMetrics {
            buffer_health_percentage: buffer,
            download_speed_kbps: speed,
            rebuffer_count: rebuffers,
            ..Default::default()
        }
    }

    fn aac() -> Vec<AdaptiveProfile> {
        AdaptiveProfile::presets()
            .into_iter()
            .filter(|p| p.codec == "aac")
            .collect()
    }

    #[test]
    fn steps_down_fast_and_up_slowly() {
        let ladder = aac();
        let l: Vec<&AdaptiveProfile> = ladder.iter().collect();
        assert_eq!(
            decide("high", None, &m(90.0, 130, 0), &l).as_deref(),
            Some("mobile")
        );
        assert_eq!(
            decide("high", None, &m(10.0, 0, 0), &l).as_deref(),
            Some("medium")
        );
        assert_eq!(
            decide("medium", Some(&m(80.0, 300, 0)), &m(80.0, 300, 1), &l).as_deref(),
            Some("mobile")
        );
        // 300 kbps is enough for medium but not 1.5x of high's 400: stay.
        assert_eq!(decide("medium", None, &m(90.0, 300, 0), &l), None);
        assert_eq!(
            decide("mobile", None, &m(90.0, 400, 0), &l).as_deref(),
            Some("medium")
        );
        assert_eq!(
            decide("mobile", None, &m(50.0, 4000, 0), &l),
            None,
            "buffer not yet safe"
        );
        assert_eq!(
            decide("mobile", None, &m(10.0, 50, 3), &l),
            None,
            "already lowest"
        );
    }

    #[test]
    fn no_oscillation_on_a_steady_link() {
        let ladder = aac();
        let l: Vec<&AdaptiveProfile> = ladder.iter().collect();
        let mut q = "mobile".to_string();
        let mut switches = 0;
        for i in 0..100 {
            let speed = 330 + (i % 7) * 10; // noisy around 330-390 kbps
            if let Some(n) = decide(&q, None, &m(85.0, speed, 0), &l) {
                q = n;
                switches += 1;
            }
        }
        assert!(switches <= 1, "{switches} switches");
        assert_eq!(q, "medium");
    }
}
