//! The client model: one listening session over one trace.
//!
//! A player requests segments one after the other. A download takes one round trip plus the
//! segment's bytes over the trace's throughput from that moment on. While it downloads, playback
//! drains the buffer; an empty buffer is a stall (before the first segment, the start-up delay,
//! which the score counts as stall). A finished segment adds its duration to the buffer; past the
//! buffer cap the player idles until there is room.
//!
//! By default no policy may abandon a download midway, so all of them face outages alike, as
//! the model states. With [`PlayerModel::abandon`] the simulator also plays what real
//! players do: every 100 ms of a download (hls.js's abandonment timer; dash.js checks on each
//! progress event) it shows the policy the request in flight ([`Policy::abandon`]); a policy
//! that answers a lower rung has the request cut there (the bytes received are lost) and the
//! same segment requested again at that rung at once.

use crate::policy::{Decision, Download, InFlight, Ladder, Policy};
use crate::trace::Trace;

/// Player settings shared by every policy of a run.
#[derive(Debug, Clone, Copy)]
pub struct PlayerModel {
    /// Most media kept buffered, seconds (hls.js's `maxBufferLength` defaults to 30).
    pub buffer_max_s: f64,
    /// Round trip added to every request, seconds.
    pub rtt_s: f64,
    /// Media seconds to play: the session loops over the ladder's segments until this much
    /// has been played (at least the whole ladder once).
    pub session_s: f64,
    /// Let policies abandon a request in flight (see the module docs).
    pub abandon: bool,
}

/// How often a download in flight is shown to the policy (hls.js's abandonment timer).
pub const ABANDON_CHECK_S: f64 = 0.1;

/// What happened to one segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentRecord {
    pub rung: usize,
    pub kbps: f64,
    pub duration_s: f64,
    /// Seconds of silence while this segment downloaded (start-up included for the first).
    pub stall_s: f64,
    /// Requests for this segment abandoned before the one that completed.
    pub abandoned: u32,
}

/// One transition of the model, shared by the simulator and the offline optimum.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub elapsed_s: f64,
    pub stall_s: f64,
    /// Wall-clock time when the next request can go out.
    pub next_t: f64,
    /// Buffer when the next request goes out.
    pub next_buffer_s: f64,
    /// Buffer at the moment the download finished, before adding the segment.
    pub buffer_at_end_s: f64,
}

/// Downloads `bytes` at time `t` with `buffer_s` buffered (`playing` false before start-up).
pub fn step(
    trace: &Trace,
    model: &PlayerModel,
    t: f64,
    buffer_s: f64,
    bytes: u64,
    duration_s: f64,
) -> Step {
    let elapsed = model.rtt_s + trace.transfer_secs(t + model.rtt_s, bytes as f64);
    let stall = (elapsed - buffer_s).max(0.0);
    let drained = (buffer_s - elapsed).max(0.0);
    let filled = drained + duration_s;
    let wait = (filled - model.buffer_max_s).max(0.0);
    Step {
        elapsed_s: elapsed,
        stall_s: stall,
        next_t: t + elapsed + wait,
        next_buffer_s: filled - wait,
        buffer_at_end_s: drained,
    }
}

/// Number of segments a session plays.
pub fn session_segments(ladder: &Ladder, model: &PlayerModel) -> usize {
    let mut n = 0;
    let mut played = 0.0;
    while n < ladder.segments() || played < model.session_s {
        played += ladder.durations_s[n % ladder.segments()];
        n += 1;
    }
    n
}

/// Plays one session; returns every segment's record.
pub fn simulate(
    policy: &mut dyn Policy,
    ladder: &Ladder,
    trace: &Trace,
    model: &PlayerModel,
) -> Vec<SegmentRecord> {
    let n = session_segments(ladder, model);
    let rungs = ladder.rungs();
    let mut out = Vec::with_capacity(n);
    let (mut t, mut buffer) = (0.0, 0.0);
    let mut last = None;
    for k in 0..n {
        let seg = k % ladder.segments();
        let rung = policy
            .choose(&Decision {
                ladder,
                segment: seg,
                buffer_s: buffer,
                buffer_max_s: model.buffer_max_s,
                last_rung: last,
                now_s: t,
                stalled: k == 0 || buffer <= 0.0,
            })
            .min(rungs - 1);
        let duration = ladder.durations_s[seg];
        let (mut rung, mut t_req, mut buf) = (rung, t, buffer);
        let (mut stall, mut abandoned) = (0.0, 0);
        let s = loop {
            let bytes = ladder.sizes[rung][seg];
            let s = step(trace, model, t_req, buf, bytes, duration);
            let cut = if model.abandon && rung > 0 {
                watch(
                    policy,
                    trace,
                    model,
                    ladder,
                    seg,
                    rung,
                    k > 0,
                    (t_req, buf),
                    &s,
                )
            } else {
                None
            };
            let Some((at, lower)) = cut else { break s };
            stall += (at - buf).max(0.0);
            buf = (buf - at).max(0.0);
            t_req += at;
            rung = lower;
            abandoned += 1;
        };
        let bytes = ladder.sizes[rung][seg];
        policy.on_download(&Download {
            segment: seg,
            rung,
            bytes,
            elapsed_s: s.elapsed_s,
            ttfb_s: model.rtt_s,
            buffer_s: s.buffer_at_end_s,
            now_s: t_req + s.elapsed_s,
        });
        out.push(SegmentRecord {
            rung,
            kbps: ladder.bitrates_kbps[rung],
            duration_s: duration,
            stall_s: stall + s.stall_s,
            abandoned,
        });
        t = s.next_t;
        buffer = s.next_buffer_s;
        last = Some(rung);
    }
    out
}

/// Shows the download `s` (requested at `start.0` with `start.1` buffered) to the policy every
/// [`ABANDON_CHECK_S`] until it completes; `Some((seconds after the request, rung))` if the
/// policy abandons it for a lower rung.
#[allow(clippy::too_many_arguments)]
fn watch(
    policy: &mut dyn Policy,
    trace: &Trace,
    model: &PlayerModel,
    ladder: &Ladder,
    segment: usize,
    rung: usize,
    playing: bool,
    start: (f64, f64),
    s: &Step,
) -> Option<(f64, usize)> {
    let (t0, buffer) = start;
    for tick in 1.. {
        let at = f64::from(tick) * ABANDON_CHECK_S;
        if at >= s.elapsed_s {
            break;
        }
        let loaded = if at > model.rtt_s {
            trace.bytes_between(t0 + model.rtt_s, t0 + at)
        } else {
            0.0
        };
        let bytes_total = ladder.sizes[rung][segment];
        let view = InFlight {
            ladder,
            segment,
            rung,
            bytes_total,
            bytes_loaded: (loaded as u64).min(bytes_total),
            elapsed_s: at,
            ttfb_s: model.rtt_s,
            buffer_s: (buffer - at).max(0.0),
            playing,
            now_s: t0 + at,
        };
        if let Some(lower) = policy.abandon(&view) {
            if lower < rung {
                return Some((at, lower));
            }
        }
    }
    None
}

/// The scores and the usual ABR statistics of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Mean per segment of `R/top − w·stall − |ΔR|/top`, with w = 1.
    pub qoe: f64,
    /// The same with the stall weight at 4.
    pub qoe_stall4: f64,
    /// Rebuffering (after start-up) over the whole session time.
    pub rebuffer_ratio: f64,
    pub stalls_per_hour: f64,
    pub startup_s: f64,
    pub mean_kbps: f64,
    pub switches_per_min: f64,
    /// Seconds of rebuffering after start-up.
    pub rebuffer_s: f64,
    /// Requests abandoned per hour of session.
    pub abandons_per_hour: f64,
}

/// Per-segment score of a switch from `prev` to `kbps` with `stall` seconds of silence.
pub fn segment_qoe(kbps: f64, prev: Option<f64>, stall_s: f64, top: f64, w: f64) -> f64 {
    kbps / top - w * stall_s - prev.map_or(0.0, |p| (kbps - p).abs() / top)
}

pub fn summarize(records: &[SegmentRecord], top_kbps: f64) -> Summary {
    if records.is_empty() {
        return Summary::default();
    }
    let n = records.len() as f64;
    let (mut q1, mut q4) = (0.0, 0.0);
    let mut prev = None;
    let (mut media, mut bits, mut switches, mut stalls, mut rebuffer) = (0.0, 0.0, 0, 0, 0.0);
    let abandons: u32 = records.iter().map(|r| r.abandoned).sum();
    for (k, r) in records.iter().enumerate() {
        q1 += segment_qoe(r.kbps, prev, r.stall_s, top_kbps, 1.0);
        q4 += segment_qoe(r.kbps, prev, r.stall_s, top_kbps, 4.0);
        if prev.is_some_and(|p| p != r.kbps) {
            switches += 1;
        }
        if k > 0 && r.stall_s > 0.0 {
            stalls += 1;
            rebuffer += r.stall_s;
        }
        media += r.duration_s;
        bits += r.kbps * r.duration_s;
        prev = Some(r.kbps);
    }
    let startup = records[0].stall_s;
    let wall = media + startup + rebuffer;
    Summary {
        qoe: q1 / n,
        qoe_stall4: q4 / n,
        rebuffer_ratio: rebuffer / wall,
        stalls_per_hour: f64::from(stalls) * 3600.0 / wall,
        startup_s: startup,
        mean_kbps: bits / media,
        switches_per_min: f64::from(switches) * 60.0 / media,
        rebuffer_s: rebuffer,
        abandons_per_hour: f64::from(abandons) * 3600.0 / wall,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Always the same rung.
    pub(crate) struct Fixed(pub usize);
    impl Policy for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn choose(&mut self, _: &Decision<'_>) -> usize {
            self.0
        }
        fn on_download(&mut self, _: &Download) {}
    }

    /// The AAC ladder (96/192/320 kbps) with constant-bitrate segments of `dur` seconds.
    pub(crate) fn cbr_ladder(segments: usize, dur: f64) -> Ladder {
        let bitrates = vec![96.0, 192.0, 320.0];
        Ladder {
            sizes: bitrates
                .iter()
                .map(|k| vec![(k * 1000.0 / 8.0 * dur) as u64; segments])
                .collect(),
            bitrates_kbps: bitrates,
            durations_s: vec![dur; segments],
        }
    }

    #[test]
    fn constant_link_known_answer() {
        // 1 Mbit/s, 320 kbps segments of 5 s = 200 kB: 1.6 s + 0.1 s round trip each.
        let trace = Trace::parse("c", "0\t1\n100\t1\n", 1.0).unwrap();
        let model = PlayerModel {
            buffer_max_s: 20.0,
            rtt_s: 0.1,
            session_s: 100.0,
            abandon: false,
        };
        let ladder = cbr_ladder(20, 5.0);
        let rec = simulate(&mut Fixed(2), &ladder, &trace, &model);
        assert_eq!(rec.len(), 20);
        assert!(
            (rec[0].stall_s - 1.7).abs() < 1e-9,
            "start-up = first download"
        );
        assert!(rec[1..].iter().all(|r| r.stall_s == 0.0));
        let s = summarize(&rec, 320.0);
        assert!((s.qoe - (1.0 - 1.7 / 20.0)).abs() < 1e-9, "{s:?}");
        assert_eq!(s.rebuffer_ratio, 0.0);
        assert_eq!(s.switches_per_min, 0.0);
        assert_eq!(s.mean_kbps, 320.0);
    }

    #[test]
    fn too_slow_a_link_stalls_by_the_known_amount() {
        // 160 kbit/s carries a 320 kbps segment of 5 s in 10 s: 5 s of stall per segment.
        let trace = Trace::parse("c", "0\t0.16\n1000\t0.16\n", 1.0).unwrap();
        let model = PlayerModel {
            buffer_max_s: 30.0,
            rtt_s: 0.0,
            session_s: 50.0,
            abandon: false,
        };
        let rec = simulate(&mut Fixed(2), &cbr_ladder(10, 5.0), &trace, &model);
        assert!((rec[0].stall_s - 10.0).abs() < 1e-9);
        for r in &rec[1..] {
            assert!((r.stall_s - 5.0).abs() < 1e-9, "{r:?}");
        }
        let s = summarize(&rec, 320.0);
        assert!((s.rebuffer_s - 45.0).abs() < 1e-6);
        assert!((s.rebuffer_ratio - 45.0 / 105.0).abs() < 1e-9);
    }

    /// Top rung, and cuts every request it may after about a second, for the lowest; records
    /// when each download ended.
    #[derive(Default)]
    struct Cutter(Vec<f64>);
    impl Policy for Cutter {
        fn name(&self) -> &str {
            "cutter"
        }
        fn choose(&mut self, _: &Decision<'_>) -> usize {
            2
        }
        fn on_download(&mut self, dl: &Download) {
            self.0.push(dl.now_s);
        }
        fn abandon(&mut self, f: &InFlight<'_>) -> Option<usize> {
            (f.playing && f.elapsed_s >= 0.95).then_some(0)
        }
    }

    #[test]
    fn an_abandoned_request_costs_its_time_and_the_segment_comes_at_the_lower_rung() {
        // 1 Mbit/s, no round trip; 5 s segments: 200 kB at 320 kbps (1.6 s), 60 kB at 96 (0.48 s).
        let trace = Trace::parse("c", "0\t1\n100\t1\n", 1.0).unwrap();
        let mut model = PlayerModel {
            buffer_max_s: 30.0,
            rtt_s: 0.0,
            session_s: 10.0,
            abandon: true,
        };
        let ladder = cbr_ladder(2, 5.0);
        let mut cutter = Cutter::default();
        let rec = simulate(&mut cutter, &ladder, &trace, &model);
        // The first request is not cut (the policy sees that nothing plays yet); the second is
        // cut after 1 s.
        assert_eq!((rec[0].rung, rec[0].abandoned), (2, 0));
        assert!((rec[0].stall_s - 1.6).abs() < 1e-9);
        assert_eq!((rec[1].rung, rec[1].abandoned), (0, 1));
        assert_eq!(rec[1].stall_s, 0.0, "1 s + 0.48 s fits in the 5 s buffered");
        // The second download ends 1 s (cut) + 0.48 s after its request at 1.6 s.
        assert!((cutter.0[1] - 3.08).abs() < 1e-9, "{:?}", cutter.0);
        // Without abandonment the same policy plays the top rung throughout.
        model.abandon = false;
        let rec = simulate(&mut Cutter::default(), &ladder, &trace, &model);
        assert!(rec.iter().all(|r| r.rung == 2 && r.abandoned == 0));
    }

    #[test]
    fn an_abandoned_request_during_a_stall_counts_its_silence() {
        // 0.2 Mbit/s: the 200 kB segment would take 8 s. With 0.5 s buffered, the cut request's
        // time beyond that half second is silence, and so is the whole lower request.
        let trace = Trace::parse("c", "0\t0.2\n100\t0.2\n", 1.0).unwrap();
        let model = PlayerModel {
            buffer_max_s: 30.0,
            rtt_s: 0.0,
            session_s: 10.0,
            abandon: true,
        };
        let mut ladder = cbr_ladder(2, 5.0);
        // A first segment of half a second, so the second request starts with 0.5 s buffered.
        ladder.durations_s[0] = 0.5;
        for rung in &mut ladder.sizes {
            rung[0] = 1000;
        }
        let rec = simulate(&mut Cutter::default(), &ladder, &trace, &model);
        assert_eq!((rec[1].rung, rec[1].abandoned), (0, 1));
        // Cut at 1.0 s (0.5 s of it silent), then 60 kB at 25 kB/s = 2.4 s, all silent.
        assert!((rec[1].stall_s - 2.9).abs() < 0.01, "{:?}", rec[1]);
    }

    #[test]
    fn a_full_buffer_waits_instead_of_downloading() {
        let trace = Trace::parse("c", "0\t100\n10\t100\n", 1.0).unwrap();
        let model = PlayerModel {
            buffer_max_s: 10.0,
            rtt_s: 0.0,
            session_s: 0.0,
            abandon: false,
        };
        let s = step(&trace, &model, 0.0, 9.0, 1000, 5.0);
        assert!((s.next_buffer_s - 10.0).abs() < 1e-9);
        assert!(s.next_t > 3.9, "waited for room: {s:?}");
    }
}
