//! Our policy in the simulator: the very controller the server's quality monitor runs
//! (`stream_server::streaming::adaptive::policy`), fed one sample per segment download.
//!
//! When the simulator lets players abandon a request ([`Policy::abandon`]), ours runs the rule
//! below. It is a player's rule, not the server's (the server cannot cut a client's request):
//! our web player runs a port of it (`web/src/abandon.ts`, checked before hls.js's own rule);
//! a change here belongs there too.

use stream_server::streaming::adaptive::policy::{AbrController, AbrInput, AbrTuning};

use crate::policy::{Decision, Download, InFlight, Policy};

/// A request is not judged before it has streamed this long (seconds after the first byte).
const ABANDON_WATCH_S: f64 = 1.0;

#[derive(Debug)]
pub struct Ours {
    controller: AbrController,
    rtt_s: f64,
    downloads: u64,
    /// Weight of a second of stall when judging an abandonment (see [`Policy::abandon`]).
    pub abandon_stall_weight: f64,
}

/// A second of stall weighs as a segment at the top bitrate, as in the score.
const ABANDON_STALL_WEIGHT: f64 = 1.0;

impl Default for Ours {
    fn default() -> Self {
        Self {
            controller: AbrController::default(),
            rtt_s: 0.0,
            downloads: 0,
            abandon_stall_weight: ABANDON_STALL_WEIGHT,
        }
    }
}

impl Ours {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_tuning(tuning: AbrTuning) -> Self {
        Self {
            controller: AbrController::with_tuning(tuning),
            ..Self::default()
        }
    }
}

impl Policy for Ours {
    fn name(&self) -> &str {
        "ours"
    }

    fn choose(&mut self, d: &Decision<'_>) -> usize {
        self.controller
            .decide(&AbrInput {
                rungs_kbps: &d.ladder.bitrates_kbps,
                current: d.last_rung.unwrap_or(0),
                segment_s: d.ladder.durations_s[d.segment],
                buffer_s: d.buffer_s,
                buffer_max_s: d.buffer_max_s,
                rtt_s: self.rtt_s,
                loss: 0.0,
            })
            .rung
    }

    /// Cut a request when what it would cost in silence outweighs what a lower rung costs in
    /// quality: for each lower rung, the stall it saves (this request's expected stall minus
    /// the lower segment's, both at the rate this request has had) weighed against the bitrate
    /// it gives up and the switch to it, on the score's own scale (a second of stall against a
    /// segment at the top bitrate). With no byte yet, the link is assumed to stay dead as long
    /// again as it has been (outages are heavy-tailed), then to carry our estimate.
    fn abandon(&mut self, f: &InFlight<'_>) -> Option<usize> {
        let streaming = f.elapsed_s - f.ttfb_s;
        if !f.playing || f.rung == 0 || streaming < ABANDON_WATCH_S {
            return None;
        }
        let size = |r: usize| f.ladder.sizes[r][f.segment] as f64;
        let remaining = (f.bytes_total.saturating_sub(f.bytes_loaded)) as f64;
        let rate = f.bytes_loaded as f64 / streaming; // bytes/s
        let estimate = self.controller.estimate_kbps().unwrap_or(0.0) * 1000.0 / 8.0;
        // Seconds until `bytes` more arrive on this link, as it looks now.
        let wait = |bytes: f64| {
            if rate > 0.0 {
                bytes / rate
            } else if estimate > 0.0 {
                streaming + bytes / estimate
            } else {
                f64::INFINITY
            }
        };
        let stall_here = (wait(remaining) - f.buffer_s).max(0.0);
        if stall_here == 0.0 {
            return None;
        }
        let kbps = &f.ladder.bitrates_kbps;
        let top = kbps[kbps.len() - 1];
        let mut best = None;
        let mut best_gain = 0.0;
        for r in 0..f.rung {
            let stall = (f.ttfb_s + wait(size(r)) - f.buffer_s).max(0.0);
            let given_up = (kbps[f.rung] - kbps[r]) / top;
            let gain = self.abandon_stall_weight * (stall_here - stall) - 2.0 * given_up;
            if gain > best_gain {
                best_gain = gain;
                best = Some(r);
            }
        }
        // The cut request's rate is not fed to the controller: the request made again measures
        // the same link a moment later (feeding both cost 0.012 per segment on the 3G set).
        best
    }

    fn on_download(&mut self, dl: &Download) {
        self.controller.observe(dl.throughput_kbps());
        self.rtt_s = dl.ttfb_s;
        self.downloads += 1;
        // The buffer ran dry during this download (after start-up): a rebuffer, as a player
        // would report it.
        if self.downloads > 1 && dl.buffer_s <= 0.0 {
            self.controller.observe_stall();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::tests::watch_request;
    use crate::sim::tests::cbr_ladder;

    /// Ours after five segments at `kbps`.
    fn primed(kbps: f64) -> Ours {
        let mut ours = Ours::new();
        for segment in 0..5 {
            ours.on_download(&Download {
                segment,
                rung: 2,
                bytes: 200_000,
                elapsed_s: 1600.0 / kbps,
                ttfb_s: 0.05,
                buffer_s: 10.0,
                now_s: 20.0 * segment as f64,
            });
        }
        ours
    }

    #[test]
    fn abandons_for_the_rung_whose_saved_silence_outweighs_what_it_gives_up() {
        // 5 s segments: 200 kB at 320 kbps, 120 kB at 192, 60 kB at 96. 100 kbit/s with 8 s
        // buffered: the top segment would stall 8 s, 192's 2.75 s, 96's not at all.
        let ladder = cbr_ladder(4, 5.0);
        let rate = |s: f64| s * 12_500.0;
        let (at, rung) =
            watch_request(&mut primed(1000.0), &ladder, 2, 100.0, 8.0, rate).expect("abandons");
        assert_eq!(rung, 0);
        assert!(
            (1.05..1.2).contains(&at),
            "judged after a second of streaming: {at}"
        );
        // 200 kbit/s, 7 s buffered: the top segment would stall ~1 s; 192's arrives in time and
        // gives up less than 96's.
        let rate = |s: f64| s * 25_000.0;
        let (_, rung) =
            watch_request(&mut primed(1000.0), &ladder, 2, 100.0, 7.0, rate).expect("abandons");
        assert_eq!(rung, 1);
        // A request that arrives in time is left alone.
        assert_eq!(
            watch_request(&mut primed(1000.0), &ladder, 2, 100.0, 12.0, rate),
            None
        );
    }

    #[test]
    fn a_dead_link_is_cut_only_when_the_smaller_segment_saves_enough() {
        // Nothing arrives; the link is assumed dead as long again as it has been, then to carry
        // the estimate. At 1 Mbit/s every rung then arrives within about a second of another:
        // not worth a lower rung, however long the outage.
        let ladder = cbr_ladder(4, 5.0);
        assert_eq!(
            watch_request(&mut primed(1000.0), &ladder, 2, 100.0, 25.0, |_| 0.0),
            None
        );
        // At 150 kbit/s the top segment needs 10.7 s once the link returns, 192's 6.4 s: cut
        // once the outage has lasted long enough for that to matter (about 8 s), for the rung
        // that then still arrives in time.
        let (at, rung) =
            watch_request(&mut primed(150.0), &ladder, 2, 100.0, 25.0, |_| 0.0).expect("abandons");
        assert_eq!(rung, 1);
        assert!((5.0..12.0).contains(&at), "{at}");
    }
}
