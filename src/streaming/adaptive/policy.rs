//! The quality policy: which rung a listener should be on, from what their player reports.
//!
//! A robust model-predictive controller (Yin et al., "A Control-Theoretic Approach for Dynamic
//! Adaptive Video Streaming over HTTP", SIGCOMM 2015, the "RobustMPC" variant), scored with the
//! QoE we are judged on: bitrate, minus stalls, minus the size of every switch.
//!
//! Why this rule rather than a threshold ladder: audio rungs are close together (96–320 kbps)
//! and most links carry all of them, so what matters is the rare outage. Looking a few segments
//! ahead with a *pessimistic* throughput (median of recent samples, discounted by how wrong
//! recent predictions were) steps down at once when the buffer cannot ride out the link, and
//! only steps up when the gain outweighs both the switch and the risk. The switch penalty in
//! the objective is the hysteresis: a noisy link around a rung's bitrate cannot make it
//! oscillate, because each switch costs what it gains. A guard keeps the current rung while
//! the buffer still covers its next download, so a full buffer rides out a dip as a
//! buffer-based rule (BOLA) would.
//!
//! The same controller runs in two places, which is why it is a plain state machine with no
//! clock and no I/O: the server's quality monitor feeds it the periodic `PerformanceMetrics` of
//! a session, and the trace-driven simulator in `bench/abr` feeds it one sample per segment
//! download, so what the benchmark measures is exactly what the server runs.

use std::collections::VecDeque;

/// Most rung sequences evaluated per decision (rungs^horizon is capped to this).
const MAX_PLANS: usize = 4096;

/// The controller's parameters. The defaults are what the server runs; `bench/abr` can try
/// others (`--ours key=value,…`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AbrTuning {
    /// Throughput samples kept for the prediction (RobustMPC uses the last five).
    pub history: usize,
    /// Segments looked ahead.
    pub horizon: usize,
    /// Weight of a second of stall against a segment at the top bitrate. Above the scoring
    /// weight on purpose: a prediction error costs silence, so the planner errs on the safe
    /// side.
    pub stall_weight: f64,
    /// Weight of the switch penalty (1 = the QoE's own).
    pub switch_weight: f64,
    /// Largest relative prediction error remembered (bounds how long one outage depresses the
    /// estimate).
    pub error_cap: f64,
    /// How much of the worst recent prediction error discounts the estimate (1 = RobustMPC).
    pub discount: f64,
    /// Step down only when the current rung's next download, at the planning throughput,
    /// would leave less than this many segments buffered; negative: always follow the plan. The plan
    /// alone steps down on dips a full buffer rides out, and each needless dip costs two
    /// switches.
    pub guard: f64,
}

impl Default for AbrTuning {
    fn default() -> Self {
        Self {
            history: 5,
            horizon: 5,
            stall_weight: 4.0,
            switch_weight: 1.0,
            error_cap: 10.0,
            discount: 1.0,
            guard: 0.5,
        }
    }
}

impl AbrTuning {
    /// Applies `key=value` settings separated by commas (the field names above).
    pub fn parse_overrides(mut self, spec: &str) -> Result<Self, String> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {item:?}"))?;
            let num: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{k}: not a number: {v:?}"))?;
            if !num.is_finite() || num < 0.0 {
                return Err(format!("{k}: out of range: {v}"));
            }
            match k.trim() {
                "history" => self.history = (num as usize).max(1),
                "horizon" => self.horizon = (num as usize).clamp(1, 8),
                "stall_weight" => self.stall_weight = num,
                "switch_weight" => self.switch_weight = num,
                "error_cap" => self.error_cap = num,
                "discount" => self.discount = num,
                "guard" => self.guard = num,
                "no_guard" => self.guard = -1.0,
                other => return Err(format!("unknown setting {other:?}")),
            }
        }
        Ok(self)
    }
}

/// Inputs of one decision.
#[derive(Debug, Clone, Copy)]
pub struct AbrInput<'a> {
    /// Bitrate of each rung in kbit/s, ascending.
    pub rungs_kbps: &'a [f64],
    /// The rung now being played (index into `rungs_kbps`).
    pub current: usize,
    /// Media seconds per segment.
    pub segment_s: f64,
    /// Seconds of media buffered ahead of the playhead.
    pub buffer_s: f64,
    /// The most the player buffers before pausing its downloads.
    pub buffer_max_s: f64,
    /// Round trip added to every request (from reported latency).
    pub rtt_s: f64,
    /// Packet loss as a fraction (0..1): reported loss makes the planner more cautious.
    pub loss: f64,
}

/// A decision and the reason for it, in words a listener can read.
#[derive(Debug, Clone, PartialEq)]
pub struct AbrDecision {
    pub rung: usize,
    pub reason: String,
}

/// One session's controller state: its recent throughput and how wrong the last predictions
/// were.
#[derive(Debug, Clone, Default)]
pub struct AbrController {
    samples: VecDeque<f64>,
    errors: VecDeque<f64>,
    /// The prediction made before the latest sample, to measure its error.
    last_prediction: Option<f64>,
    /// Estimate to use before the first sample (e.g. from the client's capabilities).
    prior_kbps: Option<f64>,
    tuning: AbrTuning,
}

impl AbrController {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_tuning(tuning: AbrTuning) -> Self {
        Self {
            tuning,
            ..Self::default()
        }
    }

    /// A controller that, until it has measured anything, trusts `kbps` (a client-reported
    /// bandwidth estimate), discounted like a measurement with 50% error.
    pub fn with_prior(kbps: f64) -> Self {
        Self {
            prior_kbps: (kbps.is_finite() && kbps > 0.0).then_some(kbps / 1.5),
            ..Self::default()
        }
    }

    /// Records a throughput measurement in kbit/s. Non-finite or non-positive values are
    /// ignored (a player with nothing downloaded yet reports 0).
    pub fn observe(&mut self, kbps: f64) {
        if !kbps.is_finite() || kbps <= 0.0 {
            return;
        }
        if let Some(p) = self.last_prediction.take() {
            let err = ((p - kbps) / kbps).abs();
            push_capped(
                &mut self.errors,
                err.min(self.tuning.error_cap),
                self.tuning.history,
            );
        }
        push_capped(&mut self.samples, kbps, self.tuning.history);
    }

    /// Records a rebuffer: the link failed us whatever the samples say, so it counts as a
    /// prediction 100% wrong, which halves the estimate until it leaves the error history.
    pub fn observe_stall(&mut self) {
        push_capped(&mut self.errors, 1.0, self.tuning.history);
    }

    /// The robust throughput estimate: the median of recent samples over one plus the worst
    /// recent relative error; `None` before any sample and without a prior. The median rather
    /// than RobustMPC's harmonic mean: one sample taken in a tunnel drags a harmonic mean
    /// near zero for five segments, and on the 3G traces that cost more in needless dips
    /// than it saved in stalls (see docs/benchmarks.md).
    pub fn estimate_kbps(&self) -> Option<f64> {
        if self.samples.is_empty() {
            return self.prior_kbps;
        }
        let mut v: Vec<f64> = self.samples.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        let worst = self.errors.iter().copied().fold(0.0, f64::max);
        Some(median / (1.0 + self.tuning.discount * worst))
    }

    /// The rung for the next segment.
    pub fn decide(&mut self, input: &AbrInput<'_>) -> AbrDecision {
        let rungs = input.rungs_kbps;
        if rungs.is_empty() {
            return AbrDecision {
                rung: 0,
                reason: "no rungs".into(),
            };
        }
        let current = input.current.min(rungs.len() - 1);
        let loss = if input.loss.is_finite() {
            input.loss.clamp(0.0, 0.5)
        } else {
            0.0
        };
        let estimate = self.estimate_kbps();
        self.last_prediction = estimate;
        // Without any estimate, plan for the lowest rung: its first segment arrives fastest.
        // The plan uses the worse of the estimate and the latest sample: a link that just
        // collapsed is planned for as it is now (the guard below keeps a full buffer from
        // overreacting to it).
        let latest = self.samples.back().copied();
        let predicted = estimate
            .unwrap_or(rungs[0])
            .min(latest.unwrap_or(f64::INFINITY))
            * (1.0 - loss);
        let plan = Plan {
            tuning: &self.tuning,
            rungs,
            segment_s: sane(input.segment_s, 6.0).max(0.1),
            buffer_max_s: sane(input.buffer_max_s, 30.0).max(input.segment_s),
            rtt_s: sane(input.rtt_s, 0.0),
            predicted_kbps: predicted.max(1e-3),
        };
        let buffer = sane(input.buffer_s, 0.0);
        let mut rung = plan.best_first_rung(current, buffer);
        if rung < current && self.tuning.guard >= 0.0 {
            let download = rungs[current] * plan.segment_s / plan.predicted_kbps + plan.rtt_s;
            if buffer - download >= self.tuning.guard * plan.segment_s {
                rung = current;
            }
        }
        let reason = describe(rungs, current, rung, estimate, buffer);
        AbrDecision { rung, reason }
    }
}

fn sane(v: f64, default: f64) -> f64 {
    if v.is_finite() && v >= 0.0 {
        v
    } else {
        default
    }
}

fn push_capped(q: &mut VecDeque<f64>, v: f64, cap: usize) {
    while q.len() >= cap.max(1) {
        q.pop_front();
    }
    q.push_back(v);
}

fn describe(rungs: &[f64], from: usize, to: usize, estimate: Option<f64>, buffer_s: f64) -> String {
    let est = match estimate {
        Some(e) => format!("safe throughput estimate {e:.0} kbps"),
        None => "no throughput measured yet".into(),
    };
    let verb = match to.cmp(&from) {
        std::cmp::Ordering::Less => "down",
        std::cmp::Ordering::Greater => "up",
        std::cmp::Ordering::Equal => "stay",
    };
    format!(
        "{verb}: {est}, {buffer_s:.1} s buffered, {:.0} kbps chosen",
        rungs[to]
    )
}

/// The look-ahead: every rung sequence over the horizon, simulated with the predicted
/// throughput, scored like the QoE we are measured by (with a heavier stall weight).
struct Plan<'a> {
    tuning: &'a AbrTuning,
    rungs: &'a [f64],
    segment_s: f64,
    buffer_max_s: f64,
    rtt_s: f64,
    predicted_kbps: f64,
}

impl Plan<'_> {
    fn best_first_rung(&self, current: usize, buffer_s: f64) -> usize {
        let n = self.rungs.len();
        let mut horizon = self.tuning.horizon.max(1);
        while horizon > 1 && n.saturating_pow(horizon as u32) > MAX_PLANS {
            horizon -= 1;
        }
        let top = self.rungs[n - 1].max(1e-9);
        let mut best = (f64::NEG_INFINITY, current);
        let mut seq = vec![0usize; horizon];
        let total = n.pow(horizon as u32);
        for code in 0..total {
            let mut c = code;
            for slot in seq.iter_mut() {
                *slot = c % n;
                c /= n;
            }
            let mut buffer = buffer_s;
            let mut last = current;
            let mut score = 0.0;
            for &r in &seq {
                let kbps = self.rungs[r];
                let download = kbps * self.segment_s / self.predicted_kbps + self.rtt_s;
                let stall = (download - buffer).max(0.0);
                buffer = ((buffer - download).max(0.0) + self.segment_s).min(self.buffer_max_s);
                score += kbps / top
                    - self.tuning.stall_weight * stall
                    - self.tuning.switch_weight * (kbps - self.rungs[last]).abs() / top;
                last = r;
            }
            // Ties go to the lower first rung, then to staying put (codes ascend from rung 0).
            if score > best.0 + 1e-9 || (score >= best.0 - 1e-9 && seq[0] == current) {
                best = (score, seq[0]);
            }
        }
        best.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAC: [f64; 3] = [96.0, 192.0, 320.0];

    fn input(current: usize, buffer_s: f64) -> AbrInput<'static> {
        AbrInput {
            rungs_kbps: &AAC,
            current,
            segment_s: 6.827,
            buffer_s,
            buffer_max_s: 30.0,
            rtt_s: 0.1,
            loss: 0.0,
        }
    }

    /// Plays a scripted throughput sequence: one sample then one decision per segment, with a
    /// buffer that fills and drains as the chosen rung's download would at that throughput.
    /// Returns the rungs chosen and the seconds of stall.
    fn run_stalls(ctl: &mut AbrController, start: usize, kbps: &[f64]) -> (Vec<usize>, f64) {
        let mut rung = start;
        let mut buffer: f64 = 0.0;
        let mut stall = 0.0;
        let mut out = Vec::new();
        for (i, &k) in kbps.iter().enumerate() {
            let dl = AAC[rung] * 6.827 / k + 0.1;
            if i > 0 {
                stall += (dl - buffer).max(0.0);
            }
            buffer = ((buffer - dl).max(0.0) + 6.827).min(30.0);
            ctl.observe(k);
            rung = ctl.decide(&input(rung, buffer)).rung;
            out.push(rung);
        }
        (out, stall)
    }

    fn run(ctl: &mut AbrController, start: usize, kbps: &[f64]) -> Vec<usize> {
        run_stalls(ctl, start, kbps).0
    }

    fn switches(path: &[usize]) -> usize {
        path.windows(2).filter(|w| w[0] != w[1]).count()
    }

    #[test]
    fn fast_link_climbs_to_the_top_and_stays() {
        let mut c = AbrController::new();
        let path = run(&mut c, 0, &[2000.0; 20]);
        assert_eq!(*path.last().unwrap(), 2);
        assert!(path.iter().skip(3).all(|&r| r == 2), "{path:?}");
    }

    #[test]
    fn sudden_drop_steps_down_before_the_buffer_runs_out() {
        let mut c = AbrController::new();
        let mut trace = vec![2000.0; 10];
        trace.extend([110.0; 10]);
        let (path, stall) = run_stalls(&mut c, 2, &trace);
        assert_eq!(path[9], 2);
        // A full buffer rides out one slow download; the next request is already at the bottom.
        assert_eq!(path[11], 0, "{path:?}");
        assert!(path[11..].iter().all(|&r| r == 0), "{path:?}");
        assert_eq!(stall, 0.0, "{path:?}");
    }

    #[test]
    fn empty_buffer_drops_at_once() {
        let mut c = AbrController::new();
        for _ in 0..5 {
            c.observe(2000.0);
        }
        assert_eq!(c.decide(&input(2, 20.0)).rung, 2);
        c.observe(100.0);
        assert_eq!(c.decide(&input(2, 2.0)).rung, 0);
    }

    #[test]
    fn slow_recovery_steps_up_only_once_sustained() {
        let mut c = AbrController::new();
        let mut trace = vec![100.0; 8];
        trace.extend([1500.0; 12]);
        let path = run(&mut c, 0, &trace);
        assert!(path[..8].iter().all(|&r| r == 0), "{path:?}");
        // The first good sample is discounted by the error it reveals: no jump on it alone.
        assert_ne!(path[8], 2, "{path:?}");
        assert_eq!(*path.last().unwrap(), 2, "{path:?}");
        assert!(switches(&path) <= 2, "{path:?}");
    }

    #[test]
    fn noisy_link_does_not_oscillate() {
        let mut c = AbrController::new();
        // Around 250-420 kbps: medium is safe, top is marginal.
        let trace: Vec<f64> = (0..60).map(|i| 250.0 + f64::from((i * 37) % 170)).collect();
        let path = run(&mut c, 1, &trace);
        assert!(
            switches(&path) <= 3,
            "{} switches: {path:?}",
            switches(&path)
        );
    }

    #[test]
    fn stalls_and_loss_make_it_cautious() {
        let mut calm = AbrController::new();
        let mut hurt = AbrController::new();
        for _ in 0..5 {
            calm.observe(700.0);
            hurt.observe(700.0);
        }
        hurt.observe_stall();
        assert!(hurt.estimate_kbps().unwrap() < calm.estimate_kbps().unwrap());
        let lossy = AbrInput {
            loss: 0.4,
            ..input(2, 4.0)
        };
        assert!(calm.clone().decide(&lossy).rung <= calm.decide(&input(2, 4.0)).rung);
    }

    #[test]
    fn junk_input_never_panics_or_leaves_the_ladder() {
        let mut c = AbrController::new();
        for v in [f64::NAN, f64::INFINITY, -5.0, 0.0, 1e-12, 1e12] {
            c.observe(v);
            for buffer in [f64::NAN, -1.0, 0.0, 1e9] {
                let d = c.decide(&AbrInput {
                    segment_s: f64::NAN,
                    rtt_s: f64::INFINITY,
                    loss: f64::NAN,
                    current: 99,
                    ..input(0, buffer)
                });
                assert!(d.rung < AAC.len());
            }
        }
        assert_eq!(
            c.decide(&AbrInput {
                rungs_kbps: &[],
                ..input(0, 0.0)
            })
            .rung,
            0
        );
    }

    #[test]
    fn prior_sets_the_first_choice() {
        let mut none = AbrController::new();
        assert_eq!(none.decide(&input(0, 0.0)).rung, 0);
        let mut fast = AbrController::with_prior(5000.0);
        assert_eq!(fast.decide(&input(0, 10.0)).rung, 2);
    }
}
