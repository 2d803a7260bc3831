//! Runs every policy over every trace of a set and aggregates the results.

use crate::ceiling::{ceiling, ceiling_detail, Ceiling};
use crate::foresight::Foresight;
use crate::ours::Ours;
use crate::policy::{Ladder, Policy};
use crate::reference::{Bola, HlsJs};
use crate::sim::{simulate, summarize, PlayerModel, Summary};
use crate::trace::Trace;
use stream_server::streaming::adaptive::policy::AbrTuning;

pub const POLICIES: [&str; 3] = ["ours", "bola", "hls.js"];

/// Segments the perfect-foresight planner looks ahead (our controller's horizon).
pub const FORESIGHT_HORIZON: usize = 5;

pub fn make_policy(name: &str, model: &PlayerModel, tuning: &AbrTuning) -> Box<dyn Policy> {
    match name {
        "ours" => Box::new(Ours::with_tuning(*tuning)),
        // BOLA's buffer target is the player's buffer cap (dash.js: stableBufferTime).
        "bola" => Box::new(Bola::with_stable_buffer_time(model.buffer_max_s)),
        _ => Box::new(HlsJs::new()),
    }
}

/// Means over the traces of a set, per policy, plus the ceiling.
#[derive(Debug, Clone, Default)]
pub struct SetResult {
    pub set: String,
    pub scale: f64,
    pub traces: usize,
    /// In the order of [`POLICIES`].
    pub policies: Vec<(String, Summary)>,
    pub ceiling: f64,
    pub ceiling_stall4: f64,
    /// MPC with perfect prediction over [`FORESIGHT_HORIZON`] segments (with the ceiling).
    pub foresight: Option<Summary>,
    /// Traces on which each policy rebuffered less than ours (per policy, same order).
    pub worse_rebuffer_traces: Vec<usize>,
    /// Per trace: name, each policy's summary (order of [`POLICIES`]), ceiling (w=1).
    pub per_trace: Vec<(String, Vec<Summary>, Option<Ceiling>)>,
}

/// Runs one set (traces already scaled).
pub fn run_set(
    set: &str,
    scale: f64,
    traces: &[Trace],
    ladder: &Ladder,
    model_for: impl Fn(&Trace) -> PlayerModel,
    with_ceiling: bool,
    tuning: &AbrTuning,
) -> SetResult {
    let top = ladder.bitrates_kbps[ladder.rungs() - 1];
    let mut sums = vec![Summary::default(); POLICIES.len()];
    let mut ceil = (0.0, 0.0);
    let mut fore = Summary::default();
    let mut worse = vec![0; POLICIES.len()];
    let mut per_trace = Vec::new();
    for trace in traces {
        let model = model_for(trace);
        let mut ours_rebuffer = 0.0;
        let mut row = Vec::new();
        for (i, name) in POLICIES.iter().enumerate() {
            let mut p = make_policy(name, &model, tuning);
            let s = summarize(&simulate(p.as_mut(), ladder, trace, &model), top);
            if i == 0 {
                ours_rebuffer = s.rebuffer_s;
            } else if s.rebuffer_s + 1e-9 < ours_rebuffer {
                worse[i] += 1;
            }
            add(&mut sums[i], &s);
            row.push(s);
        }
        let mut c1 = None;
        if with_ceiling {
            let c = ceiling_detail(ladder, trace, &model, 1.0);
            ceil.0 += c.qoe;
            c1 = Some(c);
            ceil.1 += ceiling(ladder, trace, &model, 4.0);
            let mut f = Foresight::new(trace.clone(), model, FORESIGHT_HORIZON);
            add(
                &mut fore,
                &summarize(&simulate(&mut f, ladder, trace, &model), top),
            );
        }
        per_trace.push((trace.name.clone(), row, c1));
    }
    let n = traces.len().max(1) as f64;
    SetResult {
        set: set.to_string(),
        scale,
        traces: traces.len(),
        policies: POLICIES
            .iter()
            .zip(sums)
            .map(|(name, s)| (name.to_string(), scaled(&s, 1.0 / n)))
            .collect(),
        ceiling: ceil.0 / n,
        ceiling_stall4: ceil.1 / n,
        foresight: with_ceiling.then(|| scaled(&fore, 1.0 / n)),
        worse_rebuffer_traces: worse,
        per_trace,
    }
}

/// One line per trace: each policy's QoE (w=1) and rebuffer seconds, and the ceiling.
pub fn per_trace(results: &[SetResult]) -> String {
    let mut out = String::from("| set | scale | trace |");
    for p in POLICIES {
        out.push_str(&format!(" {p} QoE | {p} rebuffer s |"));
    }
    out.push_str(" optimum QoE | optimum rebuffer s | optimum top share |\n|---|---|---|");
    out.push_str(&"---|---|".repeat(POLICIES.len()));
    out.push_str("---|---|---|\n");
    for r in results {
        for (name, rows, c) in &r.per_trace {
            out.push_str(&format!("| {} | ×{} | {name} |", r.set, r.scale));
            for s in rows {
                out.push_str(&format!(" {:.3} | {:.1} |", s.qoe, s.rebuffer_s));
            }
            match c {
                Some(c) => out.push_str(&format!(
                    " {:.3} | {:.1} | {:.2} |\n",
                    c.qoe, c.rebuffer_s, c.top_share
                )),
                None => out.push_str(" | | |\n"),
            }
        }
    }
    out
}

fn add(a: &mut Summary, b: &Summary) {
    a.qoe += b.qoe;
    a.qoe_stall4 += b.qoe_stall4;
    a.rebuffer_ratio += b.rebuffer_ratio;
    a.stalls_per_hour += b.stalls_per_hour;
    a.startup_s += b.startup_s;
    a.mean_kbps += b.mean_kbps;
    a.switches_per_min += b.switches_per_min;
    a.rebuffer_s += b.rebuffer_s;
    a.abandons_per_hour += b.abandons_per_hour;
}

fn scaled(s: &Summary, f: f64) -> Summary {
    Summary {
        qoe: s.qoe * f,
        qoe_stall4: s.qoe_stall4 * f,
        rebuffer_ratio: s.rebuffer_ratio * f,
        stalls_per_hour: s.stalls_per_hour * f,
        startup_s: s.startup_s * f,
        mean_kbps: s.mean_kbps * f,
        switches_per_min: s.switches_per_min * f,
        rebuffer_s: s.rebuffer_s * f,
        abandons_per_hour: s.abandons_per_hour * f,
    }
}

/// A Markdown table of results.
pub fn markdown(results: &[SetResult], with_ceiling: bool) -> String {
    let mut out = String::from(
        "| set | scale | policy | QoE/seg (w=1) | QoE/seg (w=4) | rebuffer ratio | stalls/h | startup s | mean kbps | switches/min | abandoned/h |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let foresight = r.foresight.map(|s| {
            (
                format!("*MPC, perfect {FORESIGHT_HORIZON}-segment foresight*"),
                s,
            )
        });
        for (name, s) in r.policies.iter().chain(foresight.iter()) {
            out.push_str(&format!(
                "| {} | ×{} | {} | {:.3} | {:.3} | {:.4} | {:.2} | {:.2} | {:.0} | {:.2} | {:.1} |\n",
                r.set,
                r.scale,
                name,
                s.qoe,
                s.qoe_stall4,
                s.rebuffer_ratio,
                s.stalls_per_hour,
                s.startup_s,
                s.mean_kbps,
                s.switches_per_min,
                s.abandons_per_hour
            ));
        }
        if with_ceiling {
            out.push_str(&format!(
                "| {} | ×{} | *offline optimum* | {:.3} | {:.3} | | | | | | |\n",
                r.set, r.scale, r.ceiling, r.ceiling_stall4
            ));
        }
    }
    out
}

/// Our gain over the better reference, per set: (set, scale, gain w=1, gain w=4, ceiling room).
pub fn gains(results: &[SetResult]) -> String {
    let mut out = String::from(
        "| set | scale | ours − best reference (w=1) | (w=4) | best reference's room to the optimum (w=1) | our rebuffer s vs best-QoE reference | traces where a reference rebuffered less |\n|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let ours = &r.policies[0].1;
        let best = r.policies[1..]
            .iter()
            .max_by(|a, b| a.1.qoe.total_cmp(&b.1.qoe))
            .map(|p| p.1)
            .unwrap_or_default();
        let best4 = r.policies[1..]
            .iter()
            .map(|p| p.1.qoe_stall4)
            .fold(f64::NEG_INFINITY, f64::max);
        let worse: Vec<String> = r.policies[1..]
            .iter()
            .zip(&r.worse_rebuffer_traces[1..])
            .map(|(p, n)| format!("{} {n}/{}", p.0, r.traces))
            .collect();
        out.push_str(&format!(
            "| {} | ×{} | {:+.3} | {:+.3} | {:.3} | {:.1} vs {:.1} | {} |\n",
            r.set,
            r.scale,
            ours.qoe - best.qoe,
            ours.qoe_stall4 - best4,
            r.ceiling - best.qoe,
            ours.rebuffer_s,
            best.rebuffer_s,
            worse.join(", ")
        ));
    }
    out
}
