//! The ceiling: the score of an offline policy that knows the whole trace in advance.
//!
//! Dynamic programming over (segment, buffer level, last rung), as the trace set's README asks.
//! Buffer levels are binned; each bin keeps the best path reaching it, with that path's exact
//! buffer and clock, so transitions are computed exactly (the binning only merges paths). It is
//! an estimate of the optimum, not a proof of it, but no online policy should beat it by more
//! than the binning error, and it says how much room is left above the policies.

use crate::policy::Ladder;
use crate::sim::{segment_qoe, session_segments, step, PlayerModel};
use crate::trace::Trace;

/// Width of a buffer bin, seconds.
const BIN_S: f64 = 0.25;

#[derive(Debug, Clone, Copy)]
struct Node {
    score: f64,
    t: f64,
    buffer: f64,
    /// Rebuffering after start-up on this path, seconds.
    rebuffer: f64,
    /// Segments at each rung on this path... kept small: only the count at the top rung.
    top_segments: u32,
}

/// The optimum's score and how it got there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceiling {
    /// Mean per-segment QoE.
    pub qoe: f64,
    pub rebuffer_s: f64,
    /// Share of segments at the top rung.
    pub top_share: f64,
}

/// Best mean per-segment QoE (stall weight `w`) any rung sequence reaches on this trace.
pub fn ceiling(ladder: &Ladder, trace: &Trace, model: &PlayerModel, w: f64) -> f64 {
    ceiling_detail(ladder, trace, model, w).qoe
}

/// [`ceiling`], with the optimum path's rebuffering and share of top-rung segments.
pub fn ceiling_detail(ladder: &Ladder, trace: &Trace, model: &PlayerModel, w: f64) -> Ceiling {
    let n = session_segments(ladder, model);
    let rungs = ladder.rungs();
    let top = ladder.bitrates_kbps[rungs - 1];
    let bins = (model.buffer_max_s / BIN_S).ceil() as usize + 1;
    let index =
        |buffer: f64, rung: usize| ((buffer / BIN_S).round() as usize).min(bins - 1) * rungs + rung;
    // Layer 0 is the start: nothing buffered, no previous rung.
    let mut layer: Vec<Option<Node>> = vec![None; bins * rungs];
    let seg0 = 0;
    for r in 0..rungs {
        let s = step(
            trace,
            model,
            0.0,
            0.0,
            ladder.sizes[r][seg0],
            ladder.durations_s[seg0],
        );
        let score = segment_qoe(ladder.bitrates_kbps[r], None, s.stall_s, top, w);
        let node = Node {
            score,
            t: s.next_t,
            buffer: s.next_buffer_s,
            rebuffer: 0.0,
            top_segments: u32::from(r == rungs - 1),
        };
        relax(&mut layer, index(s.next_buffer_s, r), node);
    }
    for k in 1..n {
        let seg = k % ladder.segments();
        let mut next: Vec<Option<Node>> = vec![None; bins * rungs];
        for (slot, node) in layer.iter().enumerate() {
            let Some(node) = node else { continue };
            let last = slot % rungs;
            for r in 0..rungs {
                let s = step(
                    trace,
                    model,
                    node.t,
                    node.buffer,
                    ladder.sizes[r][seg],
                    ladder.durations_s[seg],
                );
                let score = node.score
                    + segment_qoe(
                        ladder.bitrates_kbps[r],
                        Some(ladder.bitrates_kbps[last]),
                        s.stall_s,
                        top,
                        w,
                    );
                let node = Node {
                    score,
                    t: s.next_t,
                    buffer: s.next_buffer_s,
                    rebuffer: node.rebuffer + s.stall_s,
                    top_segments: node.top_segments + u32::from(r == rungs - 1),
                };
                relax(&mut next, index(s.next_buffer_s, r), node);
            }
        }
        layer = next;
    }
    let best = layer
        .iter()
        .flatten()
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .copied()
        .expect("at least one path");
    Ceiling {
        qoe: best.score / n as f64,
        rebuffer_s: best.rebuffer,
        top_share: f64::from(best.top_segments) / n as f64,
    }
}

fn relax(layer: &mut [Option<Node>], slot: usize, node: Node) {
    let better = match &layer[slot] {
        None => true,
        Some(old) => node.score > old.score || (node.score == old.score && node.t < old.t),
    };
    if better {
        layer[slot] = Some(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::tests::{cbr_ladder as cbr, Fixed};
    use crate::sim::{simulate, summarize};

    #[test]
    fn fast_link_ceiling_is_the_top_rung() {
        let trace = Trace::parse("c", "0\t10\n100\t10\n", 1.0).unwrap();
        let model = PlayerModel {
            buffer_max_s: 30.0,
            rtt_s: 0.05,
            session_s: 120.0,
            abandon: false,
        };
        let ladder = cbr(24, 5.0);
        let c = ceiling(&ladder, &trace, &model, 1.0);
        // The best start is the bottom rung (fastest first byte) or the top, then the top:
        // either way within a few hundredths of 1.
        assert!(c > 0.95 && c <= 1.0, "{c}");
    }

    #[test]
    fn ceiling_bounds_every_fixed_policy() {
        let trace = Trace::parse("v", "0\t0.5\n20\t0.05\n40\t2\n60\t0.3\n90\t0.5\n", 1.0).unwrap();
        let model = PlayerModel {
            buffer_max_s: 30.0,
            rtt_s: 0.1,
            session_s: 150.0,
            abandon: false,
        };
        let ladder = cbr(30, 5.0);
        for w in [1.0, 4.0] {
            let c = ceiling(&ladder, &trace, &model, w);
            for r in 0..3 {
                let s = summarize(&simulate(&mut Fixed(r), &ladder, &trace, &model), 320.0);
                let q = if w == 1.0 { s.qoe } else { s.qoe_stall4 };
                assert!(c >= q - 1e-9, "rung {r}, w {w}: ceiling {c} < {q}");
            }
        }
    }
}
