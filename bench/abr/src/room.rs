//! Where the room between our controller and the perfect-foresight planner lies, and whether an
//! online rule can reach it (`abr-sim --room`).
//!
//! Why: the foresight planner (`foresight.rs`) scores well above every online rule on the 3G
//! set, which says *that* better prediction would pay, not *which* predictions. Here each probe
//! plays our controller but, in one situation only, takes the foresight planner's rung instead
//! (or only its up-moves, or only its down-moves). The situations are buffer bands, since what a
//! decision risks depends on the buffer first. A probe that recovers most of the gap locates the
//! room; the *hedge* probes then ask whether a rule with no foresight could take that room by
//! acting on what it does see (the latest throughput sample), paying for every false alarm.

use std::ops::Range;

use stream_server::streaming::adaptive::policy::AbrTuning;

use crate::foresight::Foresight;
use crate::ours::Ours;
use crate::policy::{Decision, Download, Ladder, Policy};
use crate::report::FORESIGHT_HORIZON;
use crate::sim::{simulate, summarize, PlayerModel, Summary};
use crate::trace::Trace;

/// What a probe does where one of its zones applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    /// The foresight planner's rung.
    Foresight,
    /// The foresight planner's rung where it is above ours (its up-moves only).
    HigherOf,
    /// The foresight planner's rung where it is below ours (its down-moves only).
    LowerOf,
    /// Ours, but no higher than this rung (a hedge any online rule could make).
    AtMost(usize),
}

/// A situation: buffer level and latest throughput sample.
#[derive(Debug, Clone)]
pub struct Zone {
    pub buffer_s: Range<f64>,
    /// Applies only while the latest measured throughput is below this (kbit/s); infinity:
    /// whatever it is, before the first sample too.
    pub latest_below_kbps: f64,
    pub take: Take,
}

/// Our controller, overridden in its zones (the first that matches).
pub struct Probe {
    ours: Ours,
    foresight: Foresight,
    zones: Vec<Zone>,
    latest_kbps: Option<f64>,
}

impl Probe {
    pub fn new(tuning: AbrTuning, trace: Trace, model: PlayerModel, zones: Vec<Zone>) -> Self {
        Self {
            ours: Ours::with_tuning(tuning),
            foresight: Foresight::new(trace, model, FORESIGHT_HORIZON),
            zones,
            latest_kbps: None,
        }
    }
}

impl Policy for Probe {
    fn name(&self) -> &str {
        "probe"
    }

    fn choose(&mut self, d: &Decision<'_>) -> usize {
        // Ours decides every time, so its state is what it would be on its own.
        let ours = self.ours.choose(d);
        let latest = self.latest_kbps;
        let Some(zone) = self.zones.iter().find(|z| {
            z.buffer_s.contains(&d.buffer_s)
                && (z.latest_below_kbps == f64::INFINITY
                    || latest.is_some_and(|l| l < z.latest_below_kbps))
        }) else {
            return ours;
        };
        match zone.take {
            Take::Foresight => self.foresight.choose(d),
            Take::HigherOf => ours.max(self.foresight.choose(d)),
            Take::LowerOf => ours.min(self.foresight.choose(d)),
            Take::AtMost(r) => ours.min(r),
        }
    }

    fn on_download(&mut self, dl: &Download) {
        self.latest_kbps = Some(dl.throughput_kbps());
        self.ours.on_download(dl);
        self.foresight.on_download(dl);
    }
}

/// The probes run by `--room`, for a player whose buffer holds `buffer_max_s`. "Full" is within
/// 3 s of the cap: where a player that keeps up waits between requests.
pub fn probes(buffer_max_s: f64) -> Vec<(String, Vec<Zone>)> {
    let full = (buffer_max_s - 3.0).max(0.0);
    let zone = |buffer_s: Range<f64>, latest_below_kbps: f64, take| Zone {
        buffer_s,
        latest_below_kbps,
        take,
    };
    let any = f64::INFINITY;
    vec![
        ("ours".into(), vec![]),
        (
            "foresight everywhere".into(),
            vec![zone(0.0..f64::INFINITY, any, Take::Foresight)],
        ),
        (
            "foresight, buffer < 10 s".into(),
            vec![zone(0.0..10.0, any, Take::Foresight)],
        ),
        (
            format!("foresight, buffer 10–{full:.0} s"),
            vec![zone(10.0..full, any, Take::Foresight)],
        ),
        (
            format!("foresight's up-moves only, buffer 10–{full:.0} s"),
            vec![zone(10.0..full, any, Take::HigherOf)],
        ),
        (
            format!("foresight's down-moves only, buffer 10–{full:.0} s"),
            vec![zone(10.0..full, any, Take::LowerOf)],
        ),
        (
            format!("foresight, buffer ≥ {full:.0} s (full)"),
            vec![zone(full..f64::INFINITY, any, Take::Foresight)],
        ),
        (
            "foresight's up-moves only, buffer full".into(),
            vec![zone(full..f64::INFINITY, any, Take::HigherOf)],
        ),
        (
            "foresight's down-moves only, buffer full".into(),
            vec![zone(full..f64::INFINITY, any, Take::LowerOf)],
        ),
        (
            "foresight's down-moves, buffer full, latest < 500 kbps".into(),
            vec![zone(full..f64::INFINITY, 500.0, Take::LowerOf)],
        ),
        (
            "bound: foresight below full, only its up-moves at full".into(),
            vec![
                zone(0.0..full, any, Take::Foresight),
                zone(full..f64::INFINITY, any, Take::HigherOf),
            ],
        ),
        (
            "hedge: buffer full, latest < 300 kbps → ≤ 192".into(),
            vec![zone(full..f64::INFINITY, 300.0, Take::AtMost(1))],
        ),
        (
            "hedge: buffer full, latest < 500 kbps → ≤ 192".into(),
            vec![zone(full..f64::INFINITY, 500.0, Take::AtMost(1))],
        ),
        (
            "hedge: buffer full, latest < 500 kbps → 96".into(),
            vec![zone(full..f64::INFINITY, 500.0, Take::AtMost(0))],
        ),
    ]
}

/// Mean summary of every probe over a set's traces.
pub struct RoomResult {
    pub set: String,
    pub scale: f64,
    pub rows: Vec<(String, Summary)>,
}

pub fn room(
    set: &str,
    scale: f64,
    traces: &[Trace],
    ladder: &Ladder,
    model_for: impl Fn(&Trace) -> PlayerModel,
    tuning: &AbrTuning,
) -> RoomResult {
    let top = ladder.bitrates_kbps[ladder.rungs() - 1];
    let n = traces.len().max(1) as f64;
    let mut rows = Vec::new();
    for (label, zones) in probes(traces.first().map_or(30.0, |t| model_for(t).buffer_max_s)) {
        let (mut qoe, mut rebuffer, mut kbps) = (0.0, 0.0, 0.0);
        for t in traces {
            let model = model_for(t);
            let mut p = Probe::new(*tuning, t.clone(), model, zones.clone());
            let s = summarize(&simulate(&mut p, ladder, t, &model), top);
            qoe += s.qoe;
            rebuffer += s.rebuffer_ratio;
            kbps += s.mean_kbps;
        }
        rows.push((
            label,
            Summary {
                qoe: qoe / n,
                rebuffer_ratio: rebuffer / n,
                mean_kbps: kbps / n,
                ..Summary::default()
            },
        ));
    }
    RoomResult {
        set: set.into(),
        scale,
        rows,
    }
}

pub fn markdown(results: &[RoomResult]) -> String {
    let mut out = String::from(
        "| set | scale | probe | QoE/seg (w=1) | vs ours | rebuffer ratio | mean kbps |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let ours = r.rows.first().map_or(0.0, |(_, s)| s.qoe);
        for (label, s) in &r.rows {
            out.push_str(&format!(
                "| {} | ×{} | {label} | {:.3} | {:+.3} | {:.4} | {:.0} |\n",
                r.set,
                r.scale,
                s.qoe,
                s.qoe - ours,
                s.rebuffer_ratio,
                s.mean_kbps
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::tests::{cbr_ladder, Fixed};

    fn setting() -> (Ladder, Trace, PlayerModel) {
        // A fast link with a tunnel, then a slow stretch: the rules disagree somewhere.
        let t = Trace::parse("t", "0\t1.5\n60\t0.02\n90\t0.25\n150\t1.2\n400\t1.2\n", 1.0).unwrap();
        let model = PlayerModel {
            buffer_max_s: 30.0,
            rtt_s: 0.1,
            session_s: 300.0,
            abandon: false,
        };
        (cbr_ladder(40, 6.0), t, model)
    }

    fn play(p: &mut dyn Policy) -> Vec<usize> {
        let (ladder, t, model) = setting();
        simulate(p, &ladder, &t, &model)
            .iter()
            .map(|r| r.rung)
            .collect()
    }

    fn probe(zones: Vec<Zone>) -> Vec<usize> {
        let (_, t, model) = setting();
        play(&mut Probe::new(AbrTuning::default(), t, model, zones))
    }

    fn everywhere(take: Take) -> Vec<Zone> {
        vec![Zone {
            buffer_s: 0.0..f64::INFINITY,
            latest_below_kbps: f64::INFINITY,
            take,
        }]
    }

    #[test]
    fn without_zones_it_is_ours_and_with_one_everywhere_it_is_the_foresight_planner() {
        let (_, t, model) = setting();
        let ours = play(&mut Ours::new());
        let fore = play(&mut Foresight::new(t, model, FORESIGHT_HORIZON));
        assert_ne!(ours, fore, "the setting must tell them apart");
        assert_eq!(probe(vec![]), ours);
        assert_eq!(probe(everywhere(Take::Foresight)), fore);
    }

    #[test]
    fn a_hedge_caps_the_rung_and_a_zone_applies_only_where_it_says() {
        assert_eq!(probe(everywhere(Take::AtMost(0))), play(&mut Fixed(0)));
        // Out of reach: a buffer never above 1000 s, a latest sample never below 0 kbps.
        let ours = play(&mut Ours::new());
        for zone in [
            Zone {
                buffer_s: 1000.0..f64::INFINITY,
                latest_below_kbps: f64::INFINITY,
                take: Take::AtMost(0),
            },
            Zone {
                buffer_s: 0.0..f64::INFINITY,
                latest_below_kbps: 0.0,
                take: Take::AtMost(0),
            },
        ] {
            assert_eq!(probe(vec![zone]), ours);
        }
    }

    #[test]
    fn up_and_down_moves_stay_on_their_side_of_ours_at_the_first_difference() {
        let ours = play(&mut Ours::new());
        for (take, higher) in [(Take::HigherOf, true), (Take::LowerOf, false)] {
            let path = probe(everywhere(take));
            let i = path
                .iter()
                .zip(&ours)
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| panic!("{take:?} never overrode ours: {path:?}"));
            assert_eq!(path[i] > ours[i], higher, "{take:?}: {path:?} vs {ours:?}");
        }
    }
}
