//! Our policy in the simulator: the very controller the server's quality monitor runs
//! (`stream_server::streaming::adaptive::policy`), fed one sample per segment download.

use stream_server::streaming::adaptive::policy::{AbrController, AbrInput, AbrTuning};

use crate::policy::{Decision, Download, Policy};

#[derive(Debug, Default)]
pub struct Ours {
    controller: AbrController,
    rtt_s: f64,
    downloads: u64,
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
