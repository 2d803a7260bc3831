//! A second yardstick beside the offline optimum: model-predictive control with *perfect*
//! prediction over a short horizon.
//!
//! Why: the offline optimum knows the whole trace, so its lead over every online rule mixes two
//! things — predicting the next half-minute of throughput well, and knowing minutes ahead when
//! an outage will start. This planner has only the first: at each request it knows exactly how
//! long each of the next `horizon` segments would take at each rung (it replays the trace), and
//! picks the first rung of the best plan, scored with the QoE itself (w = 1), as our controller
//! does with its estimate. Yin et al. (SIGCOMM 2015) use the same baseline to measure how much a
//! better throughput predictor could give an MPC rule. The gap between it and an online rule is
//! the most that better short-term prediction can buy; the rest of the optimum's lead needs
//! foresight no player has.

use crate::policy::{Decision, Download, Ladder, Policy};
use crate::sim::{segment_qoe, step, PlayerModel};
use crate::trace::Trace;

pub struct Foresight {
    trace: Trace,
    model: PlayerModel,
    horizon: usize,
}

impl Foresight {
    pub fn new(trace: Trace, model: PlayerModel, horizon: usize) -> Self {
        Self {
            trace,
            model,
            horizon: horizon.max(1),
        }
    }

    /// The best plan of `depth` more segments from this state: its score and its first rung
    /// (depth-first, so plans sharing a prefix share its simulation).
    fn best(
        &self,
        ladder: &Ladder,
        segment: usize,
        t: f64,
        buffer: f64,
        last: Option<usize>,
        depth: usize,
    ) -> (f64, usize) {
        if depth == 0 {
            return (0.0, 0);
        }
        let top = ladder.bitrates_kbps[ladder.rungs() - 1];
        let seg = segment % ladder.segments();
        let mut best = (f64::NEG_INFINITY, 0);
        for r in 0..ladder.rungs() {
            let s = step(
                &self.trace,
                &self.model,
                t,
                buffer,
                ladder.sizes[r][seg],
                ladder.durations_s[seg],
            );
            let prev = last.map(|l| ladder.bitrates_kbps[l]);
            let score = segment_qoe(ladder.bitrates_kbps[r], prev, s.stall_s, top, 1.0)
                + self
                    .best(
                        ladder,
                        segment + 1,
                        s.next_t,
                        s.next_buffer_s,
                        Some(r),
                        depth - 1,
                    )
                    .0;
            // Ties go to the lower rung.
            if score > best.0 + 1e-12 {
                best = (score, r);
            }
        }
        best
    }
}

impl Policy for Foresight {
    fn name(&self) -> &str {
        "foresight"
    }

    fn choose(&mut self, d: &Decision<'_>) -> usize {
        self.best(
            d.ladder,
            d.segment,
            d.now_s,
            d.buffer_s,
            d.last_rung,
            self.horizon,
        )
        .1
    }

    fn on_download(&mut self, _: &Download) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceiling::ceiling;
    use crate::sim::{simulate, summarize, tests::cbr_ladder, tests::Fixed};

    fn trace(text: &str) -> Trace {
        Trace::parse("t", text, 1.0).unwrap()
    }

    #[test]
    fn a_steady_link_gets_the_top_rung_that_fits_and_no_stall() {
        // 1 Mbit/s carries every rung of the test ladder in real time.
        let ladder = cbr_ladder(20, 4.0);
        let t = trace("0\t1.0\n600\t1.0\n");
        let model = PlayerModel {
            buffer_max_s: 30.0,
            rtt_s: 0.05,
            session_s: 80.0,
            abandon: false,
        };
        let mut p = Foresight::new(t.clone(), model, 3);
        let recs = simulate(&mut p, &ladder, &t, &model);
        let top = ladder.rungs() - 1;
        assert!(recs.iter().skip(1).all(|r| r.rung == top), "{recs:?}");
        assert!(recs.iter().skip(1).all(|r| r.stall_s == 0.0));
    }

    #[test]
    fn between_every_fixed_rung_and_the_offline_optimum() {
        // A slow start, 20 s of near silence that a top-rung start has not buffered enough
        // for, then fast: seeing the outage coming, fill the buffer fast with small segments,
        // then play the top rung.
        let ladder = cbr_ladder(30, 4.0);
        let t = trace("0\t0.5\n10\t0.001\n30\t2.0\n400\t2.0\n");
        let model = PlayerModel {
            buffer_max_s: 30.0,
            rtt_s: 0.05,
            session_s: 120.0,
            abandon: false,
        };
        let top = ladder.bitrates_kbps[ladder.rungs() - 1];
        let mut p = Foresight::new(t.clone(), model, 5);
        let fore = summarize(&simulate(&mut p, &ladder, &t, &model), top);
        let optimum = ceiling(&ladder, &t, &model, 1.0);
        assert!(fore.qoe <= optimum + 1e-9, "{} > {optimum}", fore.qoe);
        for r in 0..ladder.rungs() {
            let fixed = summarize(&simulate(&mut Fixed(r), &ladder, &t, &model), top);
            assert!(
                fore.qoe > fixed.qoe,
                "rung {r}: {} <= {}",
                fore.qoe,
                fixed.qoe
            );
        }
    }
}
