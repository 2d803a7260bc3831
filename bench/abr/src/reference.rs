//! Reference ABR policies, re-implemented from the players' own sources, so the simulator can
//! compare our rule with what real clients do on the same traces.
//!
//! # Why these two
//!
//! * [`HlsJs`]: our web player *is* hls.js (`web/package.json` pins 1.7.4), so its default ABR
//!   controller is what every listener gets today: a throughput rule over two EWMAs of the
//!   measured bandwidth, with a check that the next segment arrives before the buffer runs dry.
//! * [`Bola`]: the canonical buffer-based rule (Spiteri, Urgaonkar, Sitaraman, "BOLA:
//!   Near-Optimal Bitrate Adaptation for Online Videos", INFOCOM 2016), in the form dash.js
//!   ships it (`BolaRule.js`: BOLA-O against oscillation, the BOLA-PL placeholder buffer, a
//!   throughput-driven startup). The pair brackets throughput-driven and buffer-driven
//!   adaptation.
//!
//! # Sources read (not paraphrased from memory)
//!
//! * hls.js **1.7.4**, the `src/` of the npm tarball: `controller/abr-controller.ts`
//!   (`nextAutoLevel`, `firstAutoLevel`, `getNextABRAutoLevel`, `findBestLevel`,
//!   `getTimeToLoadFrag`, `onFragLoaded`, `onFragBuffered`), `utils/ewma-bandwidth-estimator.ts`,
//!   `utils/ewma.ts`, `config.ts` (defaults), `controller/level-controller.ts` (`startLevel`),
//!   `controller/stream-controller.ts` (`startLoad`), `types/level.ts` (`maxBitrate`,
//!   `averageBitrate`), `loader/m3u8-parser.ts` (`averagetargetduration` = mean segment
//!   duration).
//! * dash.js **4.7.4**, the original sources embedded in the npm tarball's source map:
//!   `src/streaming/rules/abr/BolaRule.js`, `src/streaming/rules/ThroughputHistory.js`,
//!   `src/streaming/controllers/AbrController.js` (`getQualityForBitrate`,
//!   `getInitialBitrateFor`), `src/core/Settings.js` and `src/streaming/models/MediaPlayerModel.js`
//!   (defaults). The BOLA logic is the same as in the dash.js v3.x `BolaRule.js`.
//!
//! # Where the simulator forces a simplification
//!
//! The [`Policy`] interface picks a rung per segment and hears about finished downloads; it
//! cannot delay a request or abort one, and there are no playlist loads, parse times, seeks,
//! errors or live edges. Each policy's doc comment lists what that leaves out.

use std::collections::VecDeque;

use crate::policy::{Decision, Download, InFlight, Ladder, Policy};

// ------------------------------------------------------------------------------------------------
// Shared helpers
// ------------------------------------------------------------------------------------------------

/// A bitrate the maths can use: a broken rung (zero, negative, NaN, infinite) becomes the
/// smallest positive float, so logarithms and divisions stay defined and nothing panics.
fn usable_kbps(kbps: f64) -> f64 {
    if kbps.is_finite() && kbps > 0.0 {
        kbps
    } else {
        f64::MIN_POSITIVE
    }
}

/// Seconds buffered as a rule may read them: NaN and negative levels count as empty.
fn buffer_level(seconds: f64) -> f64 {
    if seconds > 0.0 {
        seconds
    } else {
        0.0
    }
}

/// JavaScript's `a || b` on numbers: `a` unless it is 0 or NaN.
fn js_or(a: f64, b: f64) -> f64 {
    if a != 0.0 && !a.is_nan() {
        a
    } else {
        b
    }
}

/// Mean media duration of the track's segments (s); 0 when the ladder has none usable.
fn mean_duration_s(ladder: &Ladder) -> f64 {
    let (sum, count) = ladder
        .durations_s
        .iter()
        .filter(|d| d.is_finite() && **d > 0.0)
        .fold((0.0, 0usize), |(sum, count), d| (sum + d, count + 1));
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

/// Duration of one segment (s), falling back on the track's mean for a bad index or value.
fn segment_duration_s(ladder: &Ladder, segment: usize) -> f64 {
    match ladder.durations_s.get(segment) {
        Some(&d) if d.is_finite() && d > 0.0 => d,
        _ => mean_duration_s(ladder),
    }
}

/// True when two bitrate lists are the same, NaN included (so a NaN rung does not look like a
/// new ladder on every call).
fn same_bitrates(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

// ------------------------------------------------------------------------------------------------
// BOLA (dash.js BolaRule.js)
// ------------------------------------------------------------------------------------------------

/// `MINIMUM_BUFFER_S`: BOLA never adds artificial delay below this buffer level.
const BOLA_MINIMUM_BUFFER_S: f64 = 10.0;
/// `MINIMUM_BUFFER_PER_BITRATE_LEVEL_S`: with n rungs BOLA reaches the top at 10 + 2n s.
const BOLA_MINIMUM_BUFFER_PER_BITRATE_LEVEL_S: f64 = 2.0;
/// `PLACEHOLDER_BUFFER_DECAY`: the placeholder buffer shrinks 1% per segment.
const BOLA_PLACEHOLDER_BUFFER_DECAY: f64 = 0.99;

/// dash.js `streaming.buffer.stableBufferTime` default (Settings.js), in seconds.
const DASH_STABLE_BUFFER_TIME_S: f64 = 12.0;
/// dash.js `streaming.abr.bandwidthSafetyFactor` default.
const DASH_BANDWIDTH_SAFETY_FACTOR: f64 = 0.9;
/// dash.js `AbrController` `DEFAULT_AUDIO_BITRATE` (kbit/s): the start bitrate of an audio
/// track when neither settings nor localStorage give one.
const DASH_DEFAULT_AUDIO_BITRATE_KBPS: f64 = 100.0;
/// dash.js `streaming.cacheLoadThresholds.audio` (ms): faster downloads count as cache hits.
const DASH_CACHE_LOAD_THRESHOLD_AUDIO_MS: f64 = 5.0;
/// ThroughputHistory.js sliding-window constants.
const DASH_MAX_MEASUREMENTS_TO_KEEP: usize = 20;
const DASH_AVERAGE_THROUGHPUT_SAMPLE_AMOUNT_VOD: usize = 4;
const DASH_AVERAGE_LATENCY_SAMPLE_AMOUNT: usize = 4;
const DASH_THROUGHPUT_INCREASE_SCALE: f64 = 1.3;
const DASH_THROUGHPUT_DECREASE_SCALE: f64 = 1.3;

/// BOLA's per-ladder constants (`calculateBolaParameters`).
#[derive(Debug, Clone)]
struct BolaParams {
    /// Bitrates of the rungs (kbit/s, made usable); only ratios matter to BOLA.
    bitrates_kbps: Vec<f64>,
    /// `ln(bitrate)`, shifted so the lowest rung's utility is 1.
    utilities: Vec<f64>,
    vp: f64,
    gp: f64,
}

impl BolaParams {
    /// dash.js `getInitialBolaState` + `calculateBolaParameters`. `None` is dash.js's
    /// `BOLA_STATE_ONE_BITRATE`: the first rung already has the highest utility (one rung).
    fn new(bitrates_kbps: &[f64], stable_buffer_time_s: f64) -> Option<Self> {
        let bitrates: Vec<f64> = bitrates_kbps.iter().map(|&b| usable_kbps(b)).collect();
        let first_log = bitrates.first()?.ln();
        let utilities: Vec<f64> = bitrates.iter().map(|b| b.ln() - first_log + 1.0).collect();
        let highest =
            utilities.iter().enumerate().fold(
                0,
                |best, (i, &u)| if u > utilities[best] { i } else { best },
            );
        if highest == 0 {
            return None;
        }
        // A non-finite setting would make gp 0 or NaN; the per-level minimum then applies.
        let stable = if stable_buffer_time_s.is_finite() {
            stable_buffer_time_s
        } else {
            0.0
        };
        let buffer_time = stable.max(
            BOLA_MINIMUM_BUFFER_S + BOLA_MINIMUM_BUFFER_PER_BITRATE_LEVEL_S * bitrates.len() as f64,
        );
        // utilities[0] == 1 by normalisation; buffer_time >= 14 s, so the divisor is >= 0.4.
        let gp = (utilities[highest] - 1.0) / (buffer_time / BOLA_MINIMUM_BUFFER_S - 1.0);
        let vp = BOLA_MINIMUM_BUFFER_S / gp;
        Some(Self {
            bitrates_kbps: bitrates,
            utilities,
            vp,
            gp,
        })
    }

    fn rungs(&self) -> usize {
        self.bitrates_kbps.len()
    }

    /// `getQualityFromBufferLevel`: the core of BOLA, argmax of `(Vp (u_i + gp) - Q) / S_i`;
    /// ties go to the higher rung, as dash.js's `s >= score` does.
    fn quality_from_buffer_level(&self, level_s: f64) -> usize {
        let mut quality = 0;
        let mut score = f64::NAN;
        for (i, (&u, &b)) in self.utilities.iter().zip(&self.bitrates_kbps).enumerate() {
            let s = (self.vp * (u + self.gp) - level_s) / b;
            if score.is_nan() || s >= score {
                score = s;
                quality = i;
            }
        }
        quality
    }

    /// `maxBufferLevelForQuality`: above this level BOLA would rather wait than download `q`.
    fn max_buffer_level_for_quality(&self, q: usize) -> f64 {
        self.utilities
            .get(q)
            .map_or(0.0, |u| self.vp * (u + self.gp))
    }

    /// `minBufferLevelForQuality`: the lowest level at which BOLA prefers `q` to every lower
    /// rung; the startup placeholder buffer tops the real buffer up to it.
    fn min_buffer_level_for_quality(&self, q: usize) -> f64 {
        let (Some(&q_bitrate), Some(&q_utility)) =
            (self.bitrates_kbps.get(q), self.utilities.get(q))
        else {
            return 0.0;
        };
        let mut min = 0.0f64;
        for (&i_bitrate, &i_utility) in self.bitrates_kbps[..q]
            .iter()
            .zip(&self.utilities[..q])
            .rev()
        {
            if i_utility < q_utility {
                let level = self.vp
                    * (self.gp
                        + (q_bitrate * i_utility - i_bitrate * q_utility)
                            / (q_bitrate - i_bitrate));
                min = min.max(level);
            }
        }
        min
    }
}

/// dash.js's default throughput estimate (ThroughputHistory.js, sliding window, VOD), the one
/// BOLA reads through `getSafeAverageThroughput` and `getAverageLatency`.
#[derive(Debug, Clone, Default)]
struct DashThroughputHistory {
    /// kbit/s, oldest first, at most `MAX_MEASUREMENTS_TO_KEEP`.
    throughput_kbps: VecDeque<f64>,
    /// Request-to-first-byte times (ms), same bound.
    latency_ms: VecDeque<f64>,
    /// The history holds only cache hits so far.
    has_cached_entries: bool,
}

/// dash.js's `(t1 - t0) || 1`: a zero (or NaN) interval counts as 1 ms. Negative intervals,
/// which dash.js cannot see, also become 1 ms so that a bad trace cannot yield a negative rate.
fn dash_nonzero_ms(ms: f64) -> f64 {
    if ms.is_nan() || ms <= 0.0 {
        1.0
    } else {
        ms
    }
}

fn push_capped(window: &mut VecDeque<f64>, value: f64) {
    window.push_back(value);
    if window.len() > DASH_MAX_MEASUREMENTS_TO_KEEP {
        window.pop_front();
    }
}

impl DashThroughputHistory {
    /// ThroughputHistory.js `push` for one segment request (XHR loader, no CMSD).
    fn push(&mut self, dl: &Download, use_dead_time_latency: bool, cache_threshold_ms: f64) {
        let latency_ms = dash_nonzero_ms(dl.ttfb_s * 1000.0);
        let download_ms = dash_nonzero_ms((dl.elapsed_s - dl.ttfb_s) * 1000.0);
        let measure_ms = if use_dead_time_latency {
            download_ms
        } else {
            latency_ms + download_ms
        };
        // bits per ms = kbit/s, rounded as dash.js does.
        let throughput = (8.0 * dl.bytes as f64 / measure_ms).round();
        if !throughput.is_finite() {
            return;
        }
        if download_ms < cache_threshold_ms {
            if !self.throughput_kbps.is_empty() && !self.has_cached_entries {
                // Real measurements exist: a cache hit would skew them.
                return;
            }
            self.has_cached_entries = true;
        } else if self.has_cached_entries {
            // The first real measurement replaces the cache hits.
            self.throughput_kbps.clear();
            self.latency_ms.clear();
            self.has_cached_entries = false;
        }
        push_capped(&mut self.throughput_kbps, throughput);
        push_capped(&mut self.latency_ms, latency_ms);
    }

    /// `getAverageThroughput` (VOD): the mean of the last 4 samples, widened by one sample for
    /// each jump of 1.3x or more between consecutive samples. `None` is dash.js's NaN.
    fn average_throughput_kbps(&self) -> Option<f64> {
        let samples = &self.throughput_kbps;
        let len = samples.len();
        if len == 0 {
            return None;
        }
        let mut sample_size = DASH_AVERAGE_THROUGHPUT_SAMPLE_AMOUNT_VOD;
        if sample_size >= len {
            sample_size = len;
        } else {
            // dash.js grows the loop bound as it goes; sample_size < len keeps indices valid.
            let mut i = 1;
            while i < sample_size {
                let ratio = samples[len - i] / samples[len - i - 1];
                if ratio >= DASH_THROUGHPUT_INCREASE_SCALE
                    || ratio <= 1.0 / DASH_THROUGHPUT_DECREASE_SCALE
                {
                    sample_size += 1;
                    if sample_size == len {
                        break;
                    }
                }
                i += 1;
            }
        }
        let sum: f64 = samples.iter().skip(len - sample_size).sum();
        Some(sum / sample_size as f64)
    }

    /// `getAverageLatency`: the mean of the last 4 latencies (ms).
    fn average_latency_ms(&self) -> Option<f64> {
        let len = self.latency_ms.len();
        if len == 0 {
            return None;
        }
        let n = len.min(DASH_AVERAGE_LATENCY_SAMPLE_AMOUNT);
        let sum: f64 = self.latency_ms.iter().skip(len - n).sum();
        Some(sum / n as f64)
    }
}

/// dash.js `AbrController.getQualityForBitrate`: the highest rung whose bitrate fits `kbps`,
/// after discounting the share of each segment's time lost to request latency
/// (`useDeadTimeLatency`, default true). 0 when nothing fits.
fn dash_quality_for_bitrate(
    bitrates_kbps: &[f64],
    kbps: f64,
    latency_ms: Option<f64>,
    fragment_duration_s: f64,
    use_dead_time_latency: bool,
) -> usize {
    let mut kbps = kbps;
    if use_dead_time_latency {
        if let Some(latency_ms) = latency_ms {
            if latency_ms != 0.0 && !latency_ms.is_nan() && fragment_duration_s > 0.0 {
                let latency_s = latency_ms / 1000.0;
                if latency_s > fragment_duration_s {
                    return 0;
                }
                kbps *= 1.0 - latency_s / fragment_duration_s;
            }
        }
    }
    for (i, &bitrate) in bitrates_kbps.iter().enumerate().rev() {
        if kbps * 1000.0 >= bitrate * 1000.0 {
            return i;
        }
    }
    0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BolaState {
    /// `BOLA_STATE_STARTUP`: pick by throughput and set the placeholder buffer to match.
    Startup,
    /// `BOLA_STATE_STEADY`: pick by (real + placeholder) buffer, with BOLA-O.
    Steady,
}

/// BOLA as dash.js runs it (`BolaRule.js`, dash.js 4.7.4; same logic as v3.x).
///
/// * Utilities are `ln(bitrate)` normalised so the lowest rung's is 1;
///   `bufferTime = max(stableBufferTime, 10 + 2 * rungs)`, `gp = (u_max - 1) / (bufferTime / 10 - 1)`,
///   `Vp = 10 / gp`, quality = argmax `(Vp (u_i + gp) - level) / bitrate_i`.
/// * **Startup**: the first segment goes out at dash.js's initial audio bitrate (100 kbit/s:
///   BOLA answers "no change" while there is no throughput sample). Then, until the buffer holds
///   one segment, the rung is the one the safe throughput affords (`getQualityForBitrate`) and
///   the placeholder buffer is set to `minBufferLevelForQuality(rung) - buffer` (BOLA-PL), so
///   BOLA takes over from where throughput left it.
/// * **Steady**: the placeholder grows by the wall-clock time since the last download finished
///   (time the player spent waiting is not a bandwidth signal), decays by 1% and is capped at
///   each finished download; BOLA picks on buffer + placeholder; BOLA-O: an up-switch beyond
///   what the safe throughput sustains is limited to `max(throughput rung, previous rung)`.
///   After a rebuffer the placeholder is zeroed (`onBufferEmpty`).
/// * Throughput is dash.js's default estimate: sliding window over the last 4 segments (wider
///   when samples jump by 1.3x), measured over the transfer time *excluding* the time to first
///   byte, times the 0.9 safety factor, with the latency discount of `getQualityForBitrate`;
///   downloads under 5 ms count as cache hits.
///
/// Left out, because the simulator cannot express it or never produces it:
/// * the pause BOLA asks of the schedule controller (`setTimeToLoadDelay`) when the buffer is
///   above what the chosen rung warrants: the placeholder is drawn down first exactly as dash.js
///   does, but the rest of the delay is dropped; the simulator's `buffer_max_s` decides waits;
/// * `AbandonRequestsRule`, unless the simulator allows abandonment (then it runs, with
///   BOLA's answer to it: [`Policy::abandon`]);
/// * the other rules dash.js combines with BOLA (InsufficientBufferRule, SwitchHistoryRule,
///   DroppedFramesRule) and the default `abrDynamic` strategy that
///   hands over between ThroughputRule and BOLA: this is BOLA alone;
/// * replacement segments (fast switching), seeks, live streams, CMSD, the Fetch loader's
///   throughput path; timestamps are not rounded to whole milliseconds.
///
/// `stableBufferTime` is a constructor parameter ([`Bola::with_stable_buffer_time`]); dash.js
/// reads it from its settings (default 12 s) and does not derive it from the buffer cap, so
/// [`Policy::choose`] does not read `Decision::buffer_max_s`. Passing the simulator's
/// `buffer_max_s` makes the two agree on the buffer the player keeps.
#[derive(Debug, Clone)]
pub struct Bola {
    /// dash.js `streaming.buffer.stableBufferTime` (s): the buffer dash.js keeps below the top
    /// rung; BOLA sizes `gp`/`Vp` so it reaches the top rung by `max(this, 10 + 2 * rungs)`.
    pub stable_buffer_time_s: f64,
    /// dash.js `streaming.abr.bandwidthSafetyFactor` (0.9).
    pub bandwidth_safety_factor: f64,
    /// Bitrate (kbit/s) the first segment is chosen by: dash.js's default for audio (100).
    pub initial_bitrate_kbps: f64,
    /// dash.js `streaming.abr.useDeadTimeLatency` (true): measure throughput without the time
    /// to first byte, and discount it again when mapping throughput to a rung.
    pub use_dead_time_latency: bool,
    /// dash.js `streaming.cacheLoadThresholds.audio` (5 ms).
    pub cache_load_threshold_ms: f64,
    /// Zero the placeholder buffer on a rebuffer in steady state (`onBufferEmpty`), as dash.js
    /// v3 does and as the rule intends. In dash.js 4.7.4 the handler, for an audio
    /// `BUFFER_EMPTY`, iterates the keys of `[Constants.AUDIO]` ("0") instead of the media
    /// types and so never resets an audio placeholder: set false to reproduce that exactly.
    pub reset_placeholder_on_buffer_empty: bool,

    /// The ladder the state below was built for.
    ladder_bitrates_kbps: Vec<f64>,
    ladder_segments: usize,
    durations_s: Vec<f64>,
    mean_duration_s: f64,
    initialized: bool,
    /// `None`: one usable rung (`BOLA_STATE_ONE_BITRATE`).
    params: Option<BolaParams>,
    /// The `stable_buffer_time_s` that `params` was computed with.
    params_stable_buffer_time_s: f64,
    state: BolaState,
    placeholder_buffer_s: f64,
    last_quality: usize,
    last_segment_duration_s: Option<f64>,
    last_segment_finish_s: Option<f64>,
    last_call_time_s: Option<f64>,
    history: DashThroughputHistory,
    /// Playback has started at least once: a later `stalled` decision is a rebuffer.
    has_played: bool,
    /// `AbandonRequestsRule`'s view of the request in flight.
    abandon: PerRequest<DashAbandonState>,
    /// After an abandonment, until this time only up-switches are applied
    /// (`abandonLoadTimeout`), and the rung they may not go below.
    abandon_hold: Option<(f64, usize)>,
    /// The segment abandoned last, until it has loaded.
    abandoned_segment: Option<usize>,
}

/// What an abandonment rule keeps about the request in flight, started afresh for each request.
#[derive(Debug, Clone, Default)]
struct PerRequest<S> {
    /// Start time of the request `state` belongs to.
    start_s: Option<f64>,
    state: S,
}

impl<S: Default> PerRequest<S> {
    /// The state of `f`'s request (a new one if `f` is another request than the last seen:
    /// start times are recomputed from the clock at each check, so compared loosely).
    fn of(&mut self, f: &InFlight<'_>) -> &mut S {
        let start = f.now_s - f.elapsed_s;
        if !self.start_s.is_some_and(|s| (s - start).abs() < 1e-6) {
            self.start_s = Some(start);
            self.state = S::default();
        }
        &mut self.state
    }
}

/// dash.js `AbandonRequestsRule` (v3/v4): constants.
const DASH_ABANDON_MULTIPLIER: f64 = 1.8;
const DASH_ABANDON_GRACE_MS: f64 = 500.0;
const DASH_ABANDON_MIN_SAMPLES: usize = 5;
/// `streaming.abandonLoadTimeout` (ms): how long only up-switches apply after an abandonment.
const DASH_ABANDON_LOAD_TIMEOUT_S: f64 = 10.0;

/// What `AbandonRequestsRule` keeps per request in flight (`fragmentDict`, `throughputArray`).
#[derive(Debug, Clone, Default)]
struct DashAbandonState {
    /// `firstByteTime` seen (the first progress event).
    started: bool,
    bytes_seen: u64,
    /// kbit/s, one per progress event, cumulative since the first byte.
    throughput_kbps: Vec<f64>,
    /// `abandonDict`: this request was abandoned already.
    done: bool,
}

impl Default for Bola {
    fn default() -> Self {
        Self::new()
    }
}

impl Bola {
    /// dash.js defaults: `stableBufferTime` 12 s.
    pub fn new() -> Self {
        Self {
            stable_buffer_time_s: DASH_STABLE_BUFFER_TIME_S,
            bandwidth_safety_factor: DASH_BANDWIDTH_SAFETY_FACTOR,
            initial_bitrate_kbps: DASH_DEFAULT_AUDIO_BITRATE_KBPS,
            use_dead_time_latency: true,
            cache_load_threshold_ms: DASH_CACHE_LOAD_THRESHOLD_AUDIO_MS,
            reset_placeholder_on_buffer_empty: true,
            ladder_bitrates_kbps: Vec::new(),
            ladder_segments: 0,
            durations_s: Vec::new(),
            mean_duration_s: 0.0,
            initialized: false,
            params: None,
            params_stable_buffer_time_s: DASH_STABLE_BUFFER_TIME_S,
            state: BolaState::Startup,
            placeholder_buffer_s: 0.0,
            last_quality: 0,
            last_segment_duration_s: None,
            last_segment_finish_s: None,
            last_call_time_s: None,
            history: DashThroughputHistory::default(),
            has_played: false,
            abandon: PerRequest::default(),
            abandon_hold: None,
            abandoned_segment: None,
        }
    }

    /// dash.js defaults with another `stableBufferTime` (s); the simulator passes its
    /// `buffer_max_s`.
    pub fn with_stable_buffer_time(stable_buffer_time_s: f64) -> Self {
        Self {
            stable_buffer_time_s,
            params_stable_buffer_time_s: stable_buffer_time_s,
            ..Self::new()
        }
    }

    /// Whether BOLA has left startup (diagnostics and tests).
    pub fn is_steady(&self) -> bool {
        self.state == BolaState::Steady
    }

    /// The current placeholder buffer (s), the virtual buffer BOLA adds to the real one.
    pub fn placeholder_buffer_s(&self) -> f64 {
        self.placeholder_buffer_s
    }

    /// dash.js builds BOLA's state per track on first use; rebuild it if the ladder changes.
    fn ensure_ladder(&mut self, ladder: &Ladder) {
        if self.initialized
            && self.ladder_segments == ladder.segments()
            && same_bitrates(&self.ladder_bitrates_kbps, &ladder.bitrates_kbps)
        {
            return;
        }
        self.ladder_bitrates_kbps = ladder.bitrates_kbps.clone();
        self.ladder_segments = ladder.segments();
        self.durations_s = ladder.durations_s.clone();
        self.mean_duration_s = mean_duration_s(ladder);
        self.params = BolaParams::new(&ladder.bitrates_kbps, self.stable_buffer_time_s);
        self.params_stable_buffer_time_s = self.stable_buffer_time_s;
        self.state = BolaState::Startup;
        self.placeholder_buffer_s = 0.0;
        self.last_quality = 0;
        self.last_segment_duration_s = None;
        self.last_segment_finish_s = None;
        self.last_call_time_s = None;
        self.initialized = true;
    }

    /// `checkBolaStateStableBufferTime`: if the setting changed, recompute `gp`/`Vp` and rescale
    /// the placeholder so the effective buffer keeps its meaning.
    fn refresh_stable_buffer_time(&mut self, params: &mut BolaParams, buffer_s: f64) {
        if self.stable_buffer_time_s.to_bits() == self.params_stable_buffer_time_s.to_bits() {
            return;
        }
        self.params_stable_buffer_time_s = self.stable_buffer_time_s;
        let Some(fresh) = BolaParams::new(&params.bitrates_kbps, self.stable_buffer_time_s) else {
            return;
        };
        if fresh.vp != params.vp || fresh.gp != params.gp {
            let mut effective = buffer_s + self.placeholder_buffer_s;
            effective -= BOLA_MINIMUM_BUFFER_S;
            effective *= fresh.vp / params.vp;
            effective += BOLA_MINIMUM_BUFFER_S;
            self.placeholder_buffer_s = (effective - buffer_s).max(0.0);
            *params = fresh;
        }
    }

    /// `updatePlaceholderBuffer`: time since the last download finished (or since the last
    /// call) was spent waiting, not downloading, so it must not lower BOLA's choice.
    fn update_placeholder_buffer(&mut self, now_s: f64) {
        let now = if now_s.is_finite() { Some(now_s) } else { None };
        if let Some(now) = now {
            if let Some(since) = self.last_segment_finish_s.or(self.last_call_time_s) {
                let delay = now - since;
                if delay > 0.0 {
                    self.placeholder_buffer_s += delay;
                }
            }
        }
        self.last_call_time_s = now;
        self.last_segment_finish_s = None;
    }

    /// `getMaxIndex` once the state exists; `None` is dash.js's "no change" (no throughput yet).
    fn decide(
        &mut self,
        params: &BolaParams,
        d: &Decision<'_>,
        buffer_s: f64,
        fragment_duration_s: f64,
    ) -> Option<usize> {
        let throughput = self.history.average_throughput_kbps()?;
        let safe_throughput = throughput * self.bandwidth_safety_factor;
        let latency = self.history.average_latency_ms();
        let throughput_quality = dash_quality_for_bitrate(
            &d.ladder.bitrates_kbps,
            safe_throughput,
            latency,
            fragment_duration_s,
            self.use_dead_time_latency,
        )
        .min(params.rungs().saturating_sub(1));

        match self.state {
            BolaState::Startup => {
                let quality = throughput_quality;
                self.placeholder_buffer_s =
                    (params.min_buffer_level_for_quality(quality) - buffer_s).max(0.0);
                self.last_quality = quality;
                if let Some(duration) = self.last_segment_duration_s {
                    if buffer_s >= duration {
                        self.state = BolaState::Steady;
                    }
                }
                Some(quality)
            }
            BolaState::Steady => {
                self.update_placeholder_buffer(d.now_s);
                if self.reset_placeholder_on_buffer_empty && self.has_played && d.stalled {
                    self.placeholder_buffer_s = 0.0;
                }
                let mut quality =
                    params.quality_from_buffer_level(buffer_s + self.placeholder_buffer_s);
                // BOLA-O: only intervene on an up-switch to an unsustainable rung, and never
                // drop below the previous rung.
                if quality > self.last_quality && quality > throughput_quality {
                    quality = throughput_quality.max(self.last_quality);
                }
                // Above the level that warrants `quality`, dash.js first spends placeholder,
                // then pauses the scheduler (the pause is not modelled).
                let delay_s = (buffer_s + self.placeholder_buffer_s
                    - params.max_buffer_level_for_quality(quality))
                .max(0.0);
                if delay_s <= self.placeholder_buffer_s {
                    self.placeholder_buffer_s -= delay_s;
                } else {
                    self.placeholder_buffer_s = 0.0;
                }
                self.last_quality = quality;
                Some(quality)
            }
        }
    }
}

impl Policy for Bola {
    fn name(&self) -> &str {
        "bola"
    }

    fn choose(&mut self, d: &Decision<'_>) -> usize {
        let rungs = d.ladder.rungs();
        if rungs == 0 {
            return 0;
        }
        let top = rungs - 1;
        self.ensure_ladder(d.ladder);
        if !d.stalled {
            self.has_played = true;
        }
        let buffer_s = buffer_level(d.buffer_s);
        let fragment_duration_s = segment_duration_s(d.ladder, d.segment);
        // When BOLA answers "no change", dash.js keeps the current rung; before the first
        // segment that is the rung of the initial bitrate.
        let unchanged = match d.last_rung {
            Some(rung) => rung.min(top),
            None => dash_quality_for_bitrate(
                &d.ladder.bitrates_kbps,
                self.initial_bitrate_kbps,
                None,
                fragment_duration_s,
                false,
            ),
        };
        let Some(mut params) = self.params.take() else {
            return unchanged.min(top);
        };
        self.refresh_stable_buffer_time(&mut params, buffer_s);
        let quality = self.decide(&params, d, buffer_s, fragment_duration_s);
        self.params = Some(params);
        let mut quality = quality.unwrap_or(unchanged).min(top);
        // ABANDON_LOAD: for `abandonLoadTimeout` after an abandonment only up-switches apply.
        if let Some((until, floor)) = self.abandon_hold {
            if d.now_s < until {
                quality = quality.max(floor);
            } else {
                self.abandon_hold = None;
            }
        }
        quality
    }

    /// `AbandonRequestsRule.shouldAbandon` on a progress event, then what `AbrController` and
    /// `BolaRule` do on `FRAGMENT_LOADING_ABANDONED`. A browser fires progress events only as
    /// bytes arrive, so a check without new bytes is not an event. dash.js's default
    /// `ABRStrategy` runs this rule alongside BOLA.
    fn abandon(&mut self, f: &InFlight<'_>) -> Option<usize> {
        let request = self.abandon.of(f);
        // `abandonDict` is keyed by the segment: once abandoned, its new request is not.
        if request.done
            || self.abandoned_segment == Some(f.segment)
            || f.bytes_loaded <= request.bytes_seen
            || buffer_level(f.buffer_s) > self.stable_buffer_time_s
        {
            return None;
        }
        request.bytes_seen = f.bytes_loaded;
        if !request.started {
            // The first progress event: the first byte's time, and a fresh sample list.
            request.started = true;
            request.throughput_kbps.clear();
        }
        let elapsed_ms = (f.elapsed_s - f.ttfb_s) * 1000.0;
        if elapsed_ms > 0.0 {
            request
                .throughput_kbps
                .push((f.bytes_loaded as f64 * 8.0 / elapsed_ms).round());
        }
        let samples = &request.throughput_kbps;
        if samples.len() < DASH_ABANDON_MIN_SAMPLES
            || elapsed_ms <= DASH_ABANDON_GRACE_MS
            || f.bytes_loaded >= f.bytes_total
            || f.rung == 0
        {
            return None;
        }
        let measured_kbps = (samples.iter().sum::<f64>() / samples.len() as f64).round();
        if measured_kbps <= 0.0 {
            return None;
        }
        let duration_s = segment_duration_s(f.ladder, f.segment);
        // The whole segment's size over the measured rate (not what remains), as dash.js has it.
        let estimated_s =
            (f.bytes_total as f64 * 8.0 / measured_kbps / 1000.0 * 100.0).round() / 100.0;
        if estimated_s < duration_s * DASH_ABANDON_MULTIPLIER {
            return None;
        }
        let bitrates = &f.ladder.bitrates_kbps;
        let new = dash_quality_for_bitrate(
            bitrates,
            measured_kbps * self.bandwidth_safety_factor,
            None,
            duration_s,
            false,
        );
        let other_bytes = f.bytes_total as f64 * bitrates[new] / bitrates[f.rung];
        if new >= f.rung || ((f.bytes_total - f.bytes_loaded) as f64) <= other_bytes {
            return None;
        }
        request.done = true;
        self.abandoned_segment = Some(f.segment);
        self.abandon_hold = Some((f.now_s + DASH_ABANDON_LOAD_TIMEOUT_S, new));
        // BolaRule.onFragmentLoadingAbandoned: shrink the placeholder so that the effective
        // buffer is no more than the level where BOLA would pick the new rung.
        if let Some(params) = self.params.as_ref() {
            if self.state == BolaState::Steady {
                let want = if new > 0 {
                    params.min_buffer_level_for_quality(new)
                } else {
                    BOLA_MINIMUM_BUFFER_S
                };
                let max_placeholder = (want - buffer_level(f.buffer_s)).max(0.0);
                self.placeholder_buffer_s = self.placeholder_buffer_s.min(max_placeholder);
            }
        }
        self.last_quality = new;
        Some(new)
    }

    fn on_download(&mut self, dl: &Download) {
        self.abandoned_segment = None;
        self.history
            .push(dl, self.use_dead_time_latency, self.cache_load_threshold_ms);
        let Some(params) = self.params.as_ref() else {
            return;
        };
        // BUFFER_EMPTY fired during this download.
        if self.reset_placeholder_on_buffer_empty
            && self.state == BolaState::Steady
            && self.has_played
            && dl.buffer_s <= 0.0
        {
            self.placeholder_buffer_s = 0.0;
        }
        // onMediaFragmentLoaded: the segment's duration and rung.
        self.last_segment_duration_s = Some(match self.durations_s.get(dl.segment) {
            Some(&d) if d.is_finite() && d > 0.0 => d,
            _ => self.mean_duration_s,
        });
        self.last_quality = dl.rung.min(params.rungs().saturating_sub(1));
        // onMetricAdded: when the request finished.
        self.last_segment_finish_s = if dl.now_s.is_finite() {
            Some(dl.now_s)
        } else {
            None
        };
        // checkNewSegment: decay, then cap the placeholder so that the effective buffer at the
        // time of the request was no more than the level that warranted the rung downloaded.
        if self.placeholder_buffer_s.is_finite() {
            self.placeholder_buffer_s *= BOLA_PLACEHOLDER_BUFFER_DECAY;
            if self.last_segment_finish_s.is_some() {
                let elapsed_s = if dl.elapsed_s.is_finite() && dl.elapsed_s > 0.0 {
                    dl.elapsed_s
                } else {
                    0.0
                };
                // dash.js's estimate: the buffer now plus what played during the download.
                let buffer_at_request_s = buffer_level(dl.buffer_s) + elapsed_s;
                let max_placeholder_s = (params.max_buffer_level_for_quality(self.last_quality)
                    - buffer_at_request_s)
                    .max(0.0);
                self.placeholder_buffer_s = self.placeholder_buffer_s.min(max_placeholder_s);
            }
        } else {
            self.placeholder_buffer_s = 0.0;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// hls.js (abr-controller.ts, ewma-bandwidth-estimator.ts, ewma.ts)
// ------------------------------------------------------------------------------------------------

/// hls.js `config.abrEwmaFastVoD` (s of download time).
const HLS_ABR_EWMA_FAST_VOD_S: f64 = 3.0;
/// hls.js `config.abrEwmaSlowVoD` (s of download time; also the TTFB EWMA's half-life).
const HLS_ABR_EWMA_SLOW_VOD_S: f64 = 9.0;
/// hls.js `config.abrEwmaDefaultEstimate` (bit/s), used until a sample exists.
const HLS_ABR_EWMA_DEFAULT_ESTIMATE_BPS: f64 = 500_000.0;
/// hls.js `config.abrBandWidthFactor`: share of the estimate trusted to stay or go down.
const HLS_ABR_BAND_WIDTH_FACTOR: f64 = 0.95;
/// hls.js `config.abrBandWidthUpFactor`: share trusted to go up.
const HLS_ABR_BAND_WIDTH_UP_FACTOR: f64 = 0.7;
/// hls.js `config.maxStarvationDelay` (s).
const HLS_MAX_STARVATION_DELAY_S: f64 = 4.0;
/// EwmaBandWidthEstimator constants: least total weight (s) before the estimate is trusted,
/// default TTFB estimate (ms), and the floor on a sample's duration (ms).
const HLS_MIN_WEIGHT: f64 = 0.001;
const HLS_DEFAULT_TTFB_MS: f64 = 100.0;
const HLS_MIN_DELAY_MS: f64 = 50.0;

/// hls.js `EWMA`: weighted by sample duration, with the zero-start bias correction.
#[derive(Debug, Clone)]
struct Ewma {
    alpha: f64,
    estimate: f64,
    total_weight: f64,
}

impl Ewma {
    fn new(half_life: f64) -> Self {
        // `halfLife ? exp(ln(0.5) / halfLife) : 0`
        let alpha = if half_life != 0.0 && !half_life.is_nan() {
            (0.5f64.ln() / half_life).exp()
        } else {
            0.0
        };
        Self {
            alpha,
            estimate: 0.0,
            total_weight: 0.0,
        }
    }

    fn sample(&mut self, weight: f64, value: f64) {
        let adj_alpha = self.alpha.powf(weight);
        self.estimate = value * (1.0 - adj_alpha) + adj_alpha * self.estimate;
        self.total_weight += weight;
    }

    fn total_weight(&self) -> f64 {
        self.total_weight
    }

    /// The estimate divided by `1 - alpha^totalWeight`, undoing the pull towards the initial 0.
    fn estimate(&self) -> f64 {
        if self.alpha != 0.0 && !self.alpha.is_nan() {
            let zero_factor = 1.0 - self.alpha.powf(self.total_weight);
            if zero_factor != 0.0 && !zero_factor.is_nan() {
                return self.estimate / zero_factor;
            }
        }
        self.estimate
    }
}

/// hls.js `EwmaBandWidthEstimator` (1.7.4): min of a fast and a slow EWMA of bit/s, plus an
/// EWMA of the time to first byte.
#[derive(Debug, Clone)]
struct HlsBandwidthEstimator {
    default_estimate_bps: f64,
    fast: Ewma,
    slow: Ewma,
    ttfb: Ewma,
}

impl HlsBandwidthEstimator {
    fn new(slow_half_life_s: f64, fast_half_life_s: f64, default_estimate_bps: f64) -> Self {
        Self {
            default_estimate_bps,
            fast: Ewma::new(fast_half_life_s),
            slow: Ewma::new(slow_half_life_s),
            ttfb: Ewma::new(slow_half_life_s),
        }
    }

    /// `sample(durationMs, numBytes)`: empty transfers are ignored; the duration is floored at
    /// `min(50 ms, bytes / 100000 ms)`; the weight is the duration in seconds.
    fn sample(&mut self, duration_ms: f64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let min_delay_ms = HLS_MIN_DELAY_MS.min(bytes as f64 / 100_000.0);
        let duration_s = duration_ms.max(min_delay_ms) / 1000.0;
        let bandwidth_bps = 8.0 * bytes as f64 / duration_s;
        self.fast.sample(duration_s, bandwidth_bps);
        self.slow.sample(duration_s, bandwidth_bps);
    }

    /// `sampleTTFB`: weight `sqrt(2) exp(-s^2 / 2)` (long TTFBs weigh less), value >= 5 ms.
    fn sample_ttfb(&mut self, ttfb_ms: f64) {
        let seconds = ttfb_ms / 1000.0;
        let weight = 2f64.sqrt() * (-(seconds * seconds) / 2.0).exp();
        self.ttfb.sample(weight, ttfb_ms.max(5.0));
    }

    fn can_estimate(&self) -> bool {
        self.fast.total_weight() >= HLS_MIN_WEIGHT
    }

    fn estimate_bps(&self) -> f64 {
        if self.can_estimate() {
            self.fast.estimate().min(self.slow.estimate())
        } else {
            self.default_estimate_bps
        }
    }

    fn estimate_ttfb_ms(&self) -> f64 {
        if self.ttfb.total_weight() >= HLS_MIN_WEIGHT {
            self.ttfb.estimate()
        } else {
            HLS_DEFAULT_TTFB_MS
        }
    }
}

/// hls.js's default ABR controller for VOD (abr-controller.ts, hls.js 1.7.4).
///
/// * **Estimate**: each segment adds one sample to two EWMAs (half-lives 3 s and 9 s of
///   download time), weighted by its download duration in seconds; the estimate is the lower of
///   the two, bias-corrected, and 500 kbit/s until a sample exists. The sample's duration is the
///   request time minus `min(measured TTFB, TTFB estimate)`; zero-byte transfers are ignored and
///   the duration is floored at `min(50 ms, bytes / 100000 ms)` (hls.js's only guard against
///   tiny transfers). TTFB has its own EWMA (default 100 ms).
/// * **First segment**: `hls.startLevel` if set ([`HlsJs::start_level`]; our web player sets it
///   to the server's profile), else `firstAutoLevel`: `findBestLevel` with the estimate, factors
///   1, the budget `buffer / 2 + maxStarvationDelay (4 s)`, and no playlist yet, so in practice
///   the highest rung whose bitrate is within the default estimate.
/// * **Later segments** (`getNextABRAutoLevel`): if the buffer is not empty, `findBestLevel`
///   with budget = buffer ahead; if none fits, again with budget
///   `buffer + min(segment duration, maxStarvationDelay)`; if still none, the lowest rung (or
///   the current one if it is not dearer).
/// * `findBestLevel` scans from the top rung down; a rung at or below the last loaded one is
///   judged against `0.95 x estimate`, a higher one against `0.7 x estimate`. It is taken if its
///   bitrate fits and `TTFB estimate + bitrate x segment duration / adjusted bandwidth` (plus one
///   more TTFB for a rung whose playlist is not loaded yet) is within the budget. With the
///   buffer at two segment durations or more and no starvation allowance, it uses the
///   `AVERAGE-BANDWIDTH` ([`HlsJs::average_bitrates_kbps`]) instead of `BANDWIDTH`.
///
/// * **Emergency switch-down** (`_abandonRulesCheck`, only when the simulator allows
///   abandonment): every 100 ms of a load past half the segment's duration, while playing, if
///   the rest of the segment at the rate measured so far would outlast the buffer, the highest
///   lower rung above 0 whose segment loads before the buffer runs out is chosen (0 if none,
///   which hls.js then does not abort for: it only forces the next segment's rung); the abort
///   happens at once when finishing would take twice as long as the lower segment, else after
///   that segment's load time; `abortAndSwitch` then re-picks against the lowest rung's
///   bitrate and restarts the estimator from the chosen rung's.
///
/// Left out: `firstAutoFloor` (set by an abandonment during start-up, which this model does not
/// check); the bandwidth test fragment (`testBandwidth` only applies when `startLevel` is -1; the
/// default `undefined` resolves to `firstAutoLevel`); playlist load times (`lastLevelLoadSec`
/// = 0; a rung's playlist counts as loaded once the rung has been picked); parse time (the
/// sample ends when the load ends); codec/HDR/frame-rate tiers, `capLevelToPlayerSize`,
/// `minAutoBitrate`, error penalties, live streams; `playbackRate` is 1 and the media element
/// is attached.
#[derive(Debug, Clone)]
pub struct HlsJs {
    /// `abrEwmaFastVoD` (s).
    pub abr_ewma_fast_vod_s: f64,
    /// `abrEwmaSlowVoD` (s).
    pub abr_ewma_slow_vod_s: f64,
    /// `abrEwmaDefaultEstimate` (bit/s); our web player seeds it from the last track's estimate
    /// or the browser's `downlink`.
    pub abr_ewma_default_estimate_bps: f64,
    /// `abrBandWidthFactor`.
    pub abr_band_width_factor: f64,
    /// `abrBandWidthUpFactor`.
    pub abr_band_width_up_factor: f64,
    /// `maxStarvationDelay` (s).
    pub max_starvation_delay_s: f64,
    /// `hls.startLevel` / `config.startLevel`: the rung of the first segment. `None` is hls.js's
    /// default (`undefined`), which resolves to `firstAutoLevel`.
    pub start_level: Option<usize>,
    /// `hls.firstLevel`: the rung listed first in the master playlist; the fallback start when
    /// `firstAutoLevel` finds nothing.
    pub first_level: usize,
    /// `AVERAGE-BANDWIDTH` of each rung (kbit/s) if the master playlist declares it; `None`
    /// means it does not, so hls.js's `averageBitrate` falls back on `BANDWIDTH`.
    pub average_bitrates_kbps: Option<Vec<f64>>,

    /// Built on first use from the fields above.
    estimator: Option<HlsBandwidthEstimator>,
    /// `lastLoadedFragLevel`.
    last_loaded_level: Option<usize>,
    /// `hls.loadLevel`: the rung last picked.
    load_level: Option<usize>,
    /// `this.firstSelection`: the start pick, kept until a segment loads.
    first_selection: Option<usize>,
    /// Rungs whose media playlist hls.js has loaded (`levelInfo.details`).
    details_loaded: Vec<bool>,
    /// `fragCurrent.duration`: the segment last requested (s), 0 before any.
    current_frag_duration_s: f64,
    /// `_abandonRulesCheck`'s view of the request in flight.
    watch: PerRequest<HlsAbandonWatch>,
    /// `_nextAutoLevel` forced by an emergency switch-down: the next segment's rung.
    forced_next: Option<usize>,
}

/// The abandonment timer's state for one request.
#[derive(Debug, Clone, Copy, Default)]
struct HlsAbandonWatch {
    /// The rule decided: `abortAndSwitch` fires at this time (s since the request) for this
    /// rung; the check timer is cleared.
    abort_at: Option<(f64, usize)>,
    /// Timer cleared: nothing more happens to this request.
    done: bool,
}

impl Default for HlsJs {
    fn default() -> Self {
        Self::new()
    }
}

impl HlsJs {
    /// hls.js 1.7.4 defaults (`config.ts`).
    pub fn new() -> Self {
        Self {
            abr_ewma_fast_vod_s: HLS_ABR_EWMA_FAST_VOD_S,
            abr_ewma_slow_vod_s: HLS_ABR_EWMA_SLOW_VOD_S,
            abr_ewma_default_estimate_bps: HLS_ABR_EWMA_DEFAULT_ESTIMATE_BPS,
            abr_band_width_factor: HLS_ABR_BAND_WIDTH_FACTOR,
            abr_band_width_up_factor: HLS_ABR_BAND_WIDTH_UP_FACTOR,
            max_starvation_delay_s: HLS_MAX_STARVATION_DELAY_S,
            start_level: None,
            first_level: 0,
            average_bitrates_kbps: None,
            estimator: None,
            last_loaded_level: None,
            load_level: None,
            first_selection: None,
            details_loaded: Vec::new(),
            current_frag_duration_s: 0.0,
            watch: PerRequest::default(),
            forced_next: None,
        }
    }

    /// `resetEstimator(bitrate)`: a fresh estimator whose default estimate is `bitrate`.
    fn reset_estimator(&mut self, bitrate_bps: f64) {
        self.abr_ewma_default_estimate_bps = bitrate_bps;
        self.estimator = None;
    }

    /// `_abandonRulesCheck` (hls.js 1.7.4), every 100 ms of a segment load. Returns the rung
    /// to switch to if the rule decides to abort now; a decision whose abort is deferred is
    /// kept in `watch` and fires from a later check.
    fn abandon_rules_check(&mut self, f: &InFlight<'_>) -> Option<usize> {
        let ladder = f.ladder;
        // Media paused or not started: no check.
        if !f.playing {
            return None;
        }
        let duration = segment_duration_s(ladder, f.segment);
        let time_loading_ms = f.elapsed_s * 1000.0;
        let ttfb_estimate_ms = self.ttfb_estimate_ms();
        // Only begin monitoring after half the segment's duration.
        if time_loading_ms <= ttfb_estimate_ms.max(1000.0 * duration / 2.0) {
            return None;
        }
        let starvation_s = buffer_level(f.buffer_s);
        let loaded = f.bytes_loaded as f64;
        let loaded_first_byte = f.bytes_loaded > 0;
        let ttfb_ms = f.ttfb_s * 1000.0;
        let bw_estimate = self.bandwidth_estimate_bps();
        let expected_len =
            loaded.max((duration * self.average_bitrate_bps(ladder, f.rung) / 8.0).round());
        let mut time_streaming_ms = if loaded_first_byte {
            time_loading_ms - ttfb_ms
        } else {
            time_loading_ms
        };
        if time_streaming_ms < 1.0 && loaded_first_byte {
            // (sic: hls.js mixes milliseconds and seconds here)
            time_streaming_ms = time_loading_ms.min(loaded * 8.0 / bw_estimate);
        }
        let load_rate = if loaded_first_byte {
            loaded * 1000.0 / time_streaming_ms
        } else {
            0.0
        };
        let ttfb_s = ttfb_estimate_ms / 1000.0;
        let frag_loaded_delay = if load_rate > 0.0 {
            (expected_len - loaded) / load_rate
        } else {
            expected_len * 8.0 / bw_estimate + ttfb_s
        };
        if frag_loaded_delay <= starvation_s {
            return None;
        }
        let bwe = if load_rate > 0.0 {
            load_rate * 8.0
        } else {
            bw_estimate
        };
        // The largest lower rung that avoids rebuffering; the loop stops above rung 0, so it
        // ends on 0 with the delay computed for rung 1 (or none, from rung 1).
        let mut next_delay = f64::INFINITY;
        let mut next = f.rung - 1;
        while next > 0 {
            let requires_level_load = !self.details_loaded.get(next).copied().unwrap_or(false);
            next_delay = ttfb_s
                + duration * Self::max_bitrate_bps(ladder, next) / bwe
                + if requires_level_load { ttfb_s } else { 0.0 };
            if next_delay < starvation_s.min(duration + ttfb_s) {
                break;
            }
            next -= 1;
        }
        if next_delay >= frag_loaded_delay || next_delay > duration * 10.0 {
            return None;
        }
        let estimator = self.estimator_mut();
        if loaded_first_byte {
            let first_byte_ms = ttfb_estimate_ms.min(ttfb_ms);
            estimator.sample(time_loading_ms - first_byte_ms, f.bytes_loaded);
        } else {
            estimator.sample_ttfb(time_loading_ms);
        }
        let next_bitrate = Self::max_bitrate_bps(ladder, next);
        if self.bandwidth_estimate_bps() * self.abr_band_width_up_factor > next_bitrate {
            self.reset_estimator(next_bitrate);
        }
        if let Some(best) =
            self.find_best_level(ladder, next, next_bitrate, 0.0, starvation_s, 1.0, 1.0)
        {
            next = best;
        }
        // `hls.nextLoadLevel = hls.nextAutoLevel = next`: the rung's playlist is loaded, and the
        // next segment is forced to it unless this one is re-requested there.
        if let Some(loaded) = self.details_loaded.get_mut(next) {
            *loaded = true;
        }
        self.load_level = Some(next);
        self.forced_next = Some(next);
        self.watch.state.done = true;
        if frag_loaded_delay > next_delay * 2.0 {
            return self.abort_and_switch(f, next);
        }
        self.watch.state.abort_at = Some((f.elapsed_s + next_delay, next));
        None
    }

    /// `abortAndSwitch`: only for a rung above 0; then the rung is re-chosen against the lowest
    /// rung's bitrate and the estimator restarts from that rung's bitrate.
    fn abort_and_switch(&mut self, f: &InFlight<'_>, next: usize) -> Option<usize> {
        if next == 0 {
            return None;
        }
        let lowest_bitrate = Self::max_bitrate_bps(f.ladder, 0);
        let lowest = self
            .find_best_level(
                f.ladder,
                next,
                lowest_bitrate,
                0.0,
                buffer_level(f.buffer_s),
                1.0,
                1.0,
            )
            .unwrap_or(0);
        self.reset_estimator(Self::max_bitrate_bps(f.ladder, lowest));
        if let Some(loaded) = self.details_loaded.get_mut(lowest) {
            *loaded = true;
        }
        self.load_level = Some(lowest);
        self.forced_next = None;
        Some(lowest)
    }

    /// The bandwidth estimate (bit/s) the next decision will use.
    pub fn bandwidth_estimate_bps(&self) -> f64 {
        self.estimator.as_ref().map_or(
            self.abr_ewma_default_estimate_bps,
            HlsBandwidthEstimator::estimate_bps,
        )
    }

    /// The time-to-first-byte estimate (ms) the next decision will use.
    pub fn ttfb_estimate_ms(&self) -> f64 {
        self.estimator
            .as_ref()
            .map_or(HLS_DEFAULT_TTFB_MS, HlsBandwidthEstimator::estimate_ttfb_ms)
    }

    fn can_estimate(&self) -> bool {
        self.estimator
            .as_ref()
            .is_some_and(HlsBandwidthEstimator::can_estimate)
    }

    fn estimator_mut(&mut self) -> &mut HlsBandwidthEstimator {
        let (slow, fast, default) = (
            self.abr_ewma_slow_vod_s,
            self.abr_ewma_fast_vod_s,
            self.abr_ewma_default_estimate_bps,
        );
        self.estimator
            .get_or_insert_with(|| HlsBandwidthEstimator::new(slow, fast, default))
    }

    /// `loadLevel === -1 || lastLoadedFragLevel === -1`.
    fn is_first_selection(&self) -> bool {
        self.load_level.is_none() || self.last_loaded_level.is_none()
    }

    /// `Level.maxBitrate` (bit/s): `BANDWIDTH` (`realBitrate` is 0 without
    /// `abrMaxWithRealBitrate`).
    fn max_bitrate_bps(ladder: &Ladder, rung: usize) -> f64 {
        ladder
            .bitrates_kbps
            .get(rung)
            .map_or(f64::NAN, |kbps| kbps * 1000.0)
    }

    /// `Level.averageBitrate` (bit/s): `AVERAGE-BANDWIDTH || BANDWIDTH`.
    fn average_bitrate_bps(&self, ladder: &Ladder, rung: usize) -> f64 {
        let declared = self
            .average_bitrates_kbps
            .as_ref()
            .and_then(|avg| avg.get(rung))
            .map_or(0.0, |kbps| kbps * 1000.0);
        js_or(declared, Self::max_bitrate_bps(ladder, rung))
    }

    /// `findBestLevel`: the highest rung that fits the bandwidth and the time budget
    /// `buffer_s + allowance_s`; `None` is hls.js's -1.
    #[allow(clippy::too_many_arguments)]
    fn find_best_level(
        &self,
        ladder: &Ladder,
        max_level: usize,
        current_bw_bps: f64,
        buffer_s: f64,
        allowance_s: f64,
        bw_factor: f64,
        bw_up_factor: f64,
    ) -> Option<usize> {
        let rungs = ladder.rungs();
        if rungs == 1 {
            return Some(0);
        }
        let max_fetch_duration_s = buffer_s + allowance_s;
        let selection_base = self.last_loaded_level.unwrap_or(self.first_level);
        let mut current_bw = current_bw_bps;
        if self.is_first_selection() {
            // The start codec tier's minimum bitrate floors the estimate (one tier for audio).
            let min_bitrate = ladder
                .bitrates_kbps
                .iter()
                .map(|kbps| kbps * 1000.0)
                .fold(f64::INFINITY, f64::min);
            current_bw = current_bw.max(min_bitrate);
        }
        let current_frag_duration_s = self.current_frag_duration_s;
        let ttfb_s = self.ttfb_estimate_ms() / 1000.0;
        let mean_duration = mean_duration_s(ladder);
        for i in (0..=max_level.min(rungs - 1)).rev() {
            let up_switch = i > selection_base;
            let adjusted_bw = if up_switch {
                bw_up_factor * current_bw
            } else {
                bw_factor * current_bw
            };
            let details_loaded = self.details_loaded.get(i).copied().unwrap_or(false);
            // `details?.averagetargetduration || currentFragDuration || 1`
            let details_duration = if details_loaded { mean_duration } else { 0.0 };
            let avg_duration = js_or(js_or(details_duration, current_frag_duration_s), 1.0);
            let use_average = current_frag_duration_s != 0.0
                && !current_frag_duration_s.is_nan()
                && buffer_s >= current_frag_duration_s * 2.0
                && allowance_s == 0.0;
            let bitrate = if use_average {
                self.average_bitrate_bps(ladder, i)
            } else {
                Self::max_bitrate_bps(ladder, i)
            };
            // getTimeToLoadFrag: a rung without its playlist costs one more request.
            let playlist_load_s = if details_loaded { 0.0 } else { ttfb_s };
            let fetch_duration_s = ttfb_s + bitrate * avg_duration / adjusted_bw + playlist_load_s;
            let fits = adjusted_bw >= bitrate
                && (fetch_duration_s <= ttfb_s
                    || !fetch_duration_s.is_finite()
                    || fetch_duration_s < max_fetch_duration_s);
            if fits {
                return Some(i);
            }
        }
        None
    }

    /// `findBestLevel` with its start-pick cache (`this.firstSelection`).
    fn find_best_level_cached(
        &mut self,
        ladder: &Ladder,
        current_bw_bps: f64,
        buffer_s: f64,
        allowance_s: f64,
        bw_factor: f64,
        bw_up_factor: f64,
    ) -> Option<usize> {
        let first = self.is_first_selection() && ladder.rungs() != 1;
        if first {
            if let Some(cached) = self.first_selection {
                return Some(cached);
            }
        }
        let level = self.find_best_level(
            ladder,
            ladder.rungs().saturating_sub(1),
            current_bw_bps,
            buffer_s,
            allowance_s,
            bw_factor,
            bw_up_factor,
        );
        if first {
            if let Some(level) = level {
                self.first_selection = Some(level);
            }
        }
        level
    }

    /// `firstAutoLevel`.
    fn first_auto_level(&mut self, ladder: &Ladder, buffer_s: f64) -> usize {
        let bw = self.bandwidth_estimate_bps();
        let allowance = self.max_starvation_delay_s;
        match self.find_best_level_cached(ladder, bw, buffer_s / 2.0, allowance, 1.0, 1.0) {
            Some(level) => level,
            // `firstAutoFloor` is only set by an abandonment during start-up, not modelled.
            None => self.first_level.min(ladder.rungs().saturating_sub(1)),
        }
    }

    /// `getNextABRAutoLevel`.
    fn next_abr_auto_level(&mut self, ladder: &Ladder, buffer_s: f64) -> usize {
        let top = ladder.rungs().saturating_sub(1);
        let current_frag_duration_s = self.current_frag_duration_s;
        let bw = self.bandwidth_estimate_bps();
        let (factor, up_factor) = (self.abr_band_width_factor, self.abr_band_width_up_factor);
        // First: a rung that cannot rebuffer at all.
        if buffer_s != 0.0 {
            if let Some(level) =
                self.find_best_level_cached(ladder, bw, buffer_s, 0.0, factor, up_factor)
            {
                return level;
            }
        }
        // Else: one that rebuffers at most `maxStarvationDelay`, capped at a segment duration.
        // (The bandwidth-test branch needs `bitrateTestDelay`, which is never set here.)
        let allowance = if current_frag_duration_s != 0.0 && !current_frag_duration_s.is_nan() {
            current_frag_duration_s.min(self.max_starvation_delay_s)
        } else {
            self.max_starvation_delay_s
        };
        if let Some(level) =
            self.find_best_level_cached(ladder, bw, buffer_s, allowance, factor, up_factor)
        {
            return level;
        }
        // Else the lowest rung, unless the current one is no dearer.
        let load_level = self.load_level.unwrap_or(0).min(top);
        let lowest = Self::max_bitrate_bps(ladder, 0);
        let current = Self::max_bitrate_bps(ladder, load_level);
        if lowest < current {
            0
        } else {
            load_level
        }
    }
}

impl Policy for HlsJs {
    fn name(&self) -> &str {
        "hls.js"
    }

    fn choose(&mut self, d: &Decision<'_>) -> usize {
        let rungs = d.ladder.rungs();
        if rungs == 0 {
            return 0;
        }
        let top = rungs - 1;
        if self.details_loaded.len() != rungs {
            self.details_loaded = vec![false; rungs];
        }
        // getStarvationDelay: buffer ahead over playbackRate (1).
        let buffer_s = buffer_level(d.buffer_s);
        let level = if rungs == 1 {
            0
        } else if self.last_loaded_level.is_none() {
            // stream-controller startLoad: `hls.nextLoadLevel = hls.startLevel`, which holds
            // until a fragment has loaded.
            match self.start_level {
                Some(level) => level,
                None => self.first_auto_level(d.ladder, buffer_s),
            }
        } else if let Some(forced) = self.forced_next.take() {
            // `nextAutoLevel` returns the forced level (emergency switch-down) once.
            forced
        } else if self.can_estimate() {
            self.next_abr_auto_level(d.ladder, buffer_s)
        } else {
            self.first_auto_level(d.ladder, buffer_s)
        };
        let level = level.min(top);
        // Switching to a rung loads its playlist; the segment becomes `fragCurrent`.
        if let Some(loaded) = self.details_loaded.get_mut(level) {
            *loaded = true;
        }
        self.current_frag_duration_s = segment_duration_s(d.ladder, d.segment);
        self.load_level = Some(level);
        level
    }

    fn abandon(&mut self, f: &InFlight<'_>) -> Option<usize> {
        let watch = *self.watch.of(f);
        if let Some((at, next)) = watch.abort_at {
            if f.elapsed_s >= at {
                self.watch.state.abort_at = None;
                return self.abort_and_switch(f, next);
            }
            return None;
        }
        if watch.done || f.rung == 0 {
            return None;
        }
        self.abandon_rules_check(f)
    }

    fn on_download(&mut self, dl: &Download) {
        let ttfb_ms = dl.ttfb_s * 1000.0;
        let elapsed_ms = dl.elapsed_s * 1000.0;
        let estimator = self.estimator_mut();
        // onFragLoaded
        if ttfb_ms.is_finite() {
            estimator.sample_ttfb(ttfb_ms);
        }
        // onFragBuffered: load time less the part of the TTFB the estimate accounts for.
        if elapsed_ms.is_finite() {
            let first_byte_ms = if ttfb_ms.is_finite() {
                ttfb_ms.min(estimator.estimate_ttfb_ms())
            } else {
                0.0
            };
            estimator.sample(elapsed_ms - first_byte_ms, dl.bytes);
        }
        self.first_selection = None;
        self.last_loaded_level = Some(dl.rung);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SEGMENT_S: f64 = 6.827;
    const RTT_S: f64 = 0.05;
    const BUFFER_MAX_S: f64 = 30.0;

    fn ladder() -> Ladder {
        let bitrates_kbps = vec![96.0, 192.0, 320.0];
        let durations_s = vec![SEGMENT_S; 40];
        let sizes = bitrates_kbps
            .iter()
            .map(|kbps| {
                durations_s
                    .iter()
                    .map(|d| (kbps * 1000.0 / 8.0 * d).round() as u64)
                    .collect()
            })
            .collect();
        Ladder {
            bitrates_kbps,
            sizes,
            durations_s,
        }
    }

    /// A constant-throughput session: one RTT of TTFB, playback starts once a segment is
    /// buffered (and resumes as soon as the next one lands after a rebuffer), the player waits
    /// while the next segment would overflow `BUFFER_MAX_S`.
    fn run(policy: &mut dyn Policy, ladder: &Ladder, kbps: f64, segments: usize) -> Vec<usize> {
        let mut buffer = 0.0f64;
        let mut now = 0.0f64;
        let mut playing = false;
        let mut last = None;
        let mut rungs = Vec::new();
        for k in 0..segments {
            let segment = k % ladder.segments();
            let duration = ladder.durations_s[segment];
            if playing && buffer + duration > BUFFER_MAX_S {
                let wait = buffer + duration - BUFFER_MAX_S;
                now += wait;
                buffer -= wait;
            }
            let decision = Decision {
                ladder,
                segment,
                buffer_s: buffer,
                buffer_max_s: BUFFER_MAX_S,
                last_rung: last,
                now_s: now,
                stalled: !playing,
            };
            let rung = policy.choose(&decision);
            assert!(rung < ladder.rungs(), "{} chose rung {rung}", policy.name());
            let bytes = ladder.sizes[rung][segment];
            let elapsed = RTT_S + bytes as f64 * 8.0 / 1000.0 / kbps;
            now += elapsed;
            if playing {
                buffer = (buffer - elapsed).max(0.0);
            }
            policy.on_download(&Download {
                segment,
                rung,
                bytes,
                elapsed_s: elapsed,
                ttfb_s: RTT_S,
                buffer_s: buffer,
                now_s: now,
            });
            buffer += duration;
            playing = true;
            last = Some(rung);
            rungs.push(rung);
        }
        rungs
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
    }

    #[test]
    fn names() {
        assert_eq!(Bola::new().name(), "bola");
        assert_eq!(HlsJs::new().name(), "hls.js");
    }

    #[test]
    fn both_end_at_the_top_rung_on_a_fast_link() {
        let ladder = ladder();
        let bola = run(&mut Bola::new(), &ladder, 5000.0, 30);
        // First segment at dash.js's 100 kbit/s audio start bitrate, then throughput.
        assert_eq!(bola[0], 0);
        assert!(bola[1..].iter().all(|&r| r == 2), "{bola:?}");
        let hls = run(&mut HlsJs::new(), &ladder, 5000.0, 30);
        assert!(hls.iter().all(|&r| r == 2), "{hls:?}");
    }

    #[test]
    fn both_settle_on_the_bottom_rung_on_a_slow_link() {
        let ladder = ladder();
        let bola = run(&mut Bola::new(), &ladder, 150.0, 30);
        assert!(bola.iter().all(|&r| r == 0), "{bola:?}");
        // hls.js starts on the highest rung within its 500 kbit/s default estimate, then drops.
        let hls = run(&mut HlsJs::new(), &ladder, 150.0, 30);
        assert_eq!(hls[0], 2);
        assert!(hls[1..].iter().all(|&r| r == 0), "{hls:?}");
    }

    #[test]
    fn hls_js_honours_an_explicit_start_level() {
        let ladder = ladder();
        let mut hls = HlsJs::new();
        hls.start_level = Some(0);
        let rungs = run(&mut hls, &ladder, 5000.0, 5);
        assert_eq!(rungs[0], 0);
        assert_eq!(rungs[4], 2);
    }

    #[test]
    fn bola_parameters_match_the_hand_computation() {
        let p = BolaParams::new(&[96.0, 192.0, 320.0], 12.0).expect("three rungs");
        // bufferTime = max(12, 10 + 2 * 3) = 16; u_max = 1 + ln(320 / 96).
        let u_max = 1.0 + (320.0f64 / 96.0).ln();
        let gp = (u_max - 1.0) / (16.0 / 10.0 - 1.0);
        assert!(close(p.gp, gp));
        assert!(close(p.vp, 10.0 / gp));
        assert!((p.gp - 2.006_621_340_5).abs() < 1e-9);
        // Switch points: 0 -> 1 at ~11.53 s, 1 -> 2 at ~14.62 s.
        assert!((p.min_buffer_level_for_quality(1) - 11.529_201_415_5).abs() < 1e-6);
        assert!((p.min_buffer_level_for_quality(2) - 14.619_250_907_9).abs() < 1e-6);
        assert_eq!(p.quality_from_buffer_level(0.0), 0);
        assert_eq!(p.quality_from_buffer_level(11.0), 0);
        assert_eq!(p.quality_from_buffer_level(12.0), 1);
        assert_eq!(p.quality_from_buffer_level(15.0), 2);
        assert_eq!(p.quality_from_buffer_level(30.0), 2);
        // One rung, or a first rung with the highest utility: BOLA_STATE_ONE_BITRATE.
        assert!(BolaParams::new(&[128.0], 12.0).is_none());
        assert!(BolaParams::new(&[128.0, 128.0], 12.0).is_none());
    }

    #[test]
    fn bola_steady_state_full_buffer_picks_top_empty_buffer_picks_bottom() {
        let ladder = ladder();
        let mut bola = Bola::new();
        run(&mut bola, &ladder, 5000.0, 6);
        assert!(bola.is_steady());
        let full = Decision {
            ladder: &ladder,
            segment: 6,
            buffer_s: 30.0,
            buffer_max_s: BUFFER_MAX_S,
            last_rung: Some(2),
            now_s: 1000.0,
            stalled: false,
        };
        assert_eq!(bola.choose(&full), 2);
        // A rebuffer: the placeholder goes, and with it the reason to stay high.
        let empty = Decision {
            buffer_s: 0.0,
            stalled: true,
            ..full
        };
        assert_eq!(bola.choose(&empty), 0);
        assert_eq!(bola.placeholder_buffer_s(), 0.0);
    }

    #[test]
    fn bola_o_limits_an_up_switch_to_what_throughput_sustains() {
        let ladder = ladder();
        let mut bola = Bola::new();
        // 150 kbit/s sustains only rung 0, however full the buffer gets.
        run(&mut bola, &ladder, 150.0, 20);
        assert!(bola.is_steady());
        let full = Decision {
            ladder: &ladder,
            segment: 20,
            buffer_s: 30.0,
            buffer_max_s: BUFFER_MAX_S,
            last_rung: Some(0),
            now_s: 10_000.0,
            stalled: false,
        };
        assert_eq!(bola.choose(&full), 0);
    }

    fn download(bytes: u64, elapsed_s: f64, ttfb_s: f64) -> Download {
        Download {
            segment: 0,
            rung: 0,
            bytes,
            elapsed_s,
            ttfb_s,
            buffer_s: 10.0,
            now_s: 0.0,
        }
    }

    #[test]
    fn hls_js_estimate_follows_the_ewma_math() {
        let mut hls = HlsJs::new();
        assert_eq!(hls.bandwidth_estimate_bps(), 500_000.0);
        assert_eq!(hls.ttfb_estimate_ms(), 100.0);

        // 1 Mbit/s for 1 s, then 0.5 Mbit/s for 2 s; TTFB 0 so the whole time is a sample.
        hls.on_download(&download(125_000, 1.0, 0.0));
        // One sample: the bias correction returns it exactly, whatever the half-life.
        assert!(close(hls.bandwidth_estimate_bps(), 1_000_000.0));
        hls.on_download(&download(125_000, 2.0, 0.0));

        // By hand: alpha = 0.5^(1/h); after samples (w1, v1), (w2, v2) the raw estimate is
        // v2 (1 - a^w2) + a^w2 v1 (1 - a^w1), divided by 1 - a^(w1 + w2).
        let by_hand = |half_life: f64| {
            let a = 0.5f64.powf(1.0 / half_life);
            let raw = 500_000.0 * (1.0 - a * a) + a * a * 1_000_000.0 * (1.0 - a);
            raw / (1.0 - a * a * a)
        };
        let fast = by_hand(3.0);
        let slow = by_hand(9.0);
        assert!(close(hls.bandwidth_estimate_bps(), fast.min(slow)));
        // The fast EWMA reacts more to the slower second sample: ~629 960.52 bit/s.
        assert!((hls.bandwidth_estimate_bps() - 629_960.524_947).abs() < 1e-3);
        assert!((slow - 654_007.801_455).abs() < 1e-3);
        // TTFB samples are floored at 5 ms.
        assert!(close(hls.ttfb_estimate_ms(), 5.0));
    }

    #[test]
    fn hls_js_subtracts_the_estimated_ttfb_and_guards_tiny_transfers() {
        // TTFB 100 ms (equal to the estimate) is taken off the 1.1 s request: 1 Mbit/s.
        let mut hls = HlsJs::new();
        hls.on_download(&download(125_000, 1.1, 0.1));
        assert!(close(hls.bandwidth_estimate_bps(), 1_000_000.0));

        // Zero bytes: ignored.
        let mut hls = HlsJs::new();
        hls.on_download(&download(0, 1.0, 0.0));
        assert_eq!(hls.bandwidth_estimate_bps(), 500_000.0);

        // A 1 MB transfer reported as instantaneous: floored at min(50, 10) = 10 ms.
        hls.on_download(&download(1_000_000, 0.0, 0.0));
        assert!(close(hls.bandwidth_estimate_bps(), 8_000_000.0 / 0.010));
    }

    #[test]
    fn never_panics_or_leaves_the_ladder_on_degenerate_input() {
        let good = ladder();
        let one = Ladder {
            bitrates_kbps: vec![128.0],
            sizes: vec![vec![100_000; 3]],
            durations_s: vec![6.0; 3],
        };
        let broken = Ladder {
            bitrates_kbps: vec![0.0, f64::NAN, f64::INFINITY, -5.0],
            sizes: vec![vec![0; 2]; 4],
            durations_s: vec![0.0, f64::NAN],
        };
        let weird = [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300];
        for ladder in [&good, &one, &broken] {
            let mut policies: Vec<Box<dyn Policy>> =
                vec![Box::new(Bola::new()), Box::new(HlsJs::new())];
            for policy in policies.iter_mut() {
                for (k, &x) in weird.iter().enumerate() {
                    let decision = Decision {
                        ladder,
                        segment: k * 7,
                        buffer_s: x,
                        buffer_max_s: x,
                        last_rung: if k % 2 == 0 { None } else { Some(99) },
                        now_s: x,
                        stalled: k % 3 == 0,
                    };
                    let rung = policy.choose(&decision);
                    assert!(rung < ladder.rungs(), "{} chose {rung}", policy.name());
                    for &y in &weird {
                        policy.on_download(&Download {
                            segment: k * 7,
                            rung: 99,
                            bytes: if y > 0.0 { u64::MAX } else { 0 },
                            elapsed_s: y,
                            ttfb_s: x,
                            buffer_s: y,
                            now_s: y,
                        });
                    }
                    let rung = policy.choose(&decision);
                    assert!(rung < ladder.rungs(), "{} chose {rung}", policy.name());
                }
            }
        }
    }

    /// Shows `policy` a request for segment 0 at `rung`, sent at `start_s` with `buffer_s`
    /// buffered, over a link carrying `bytes_at(seconds streaming)`, every 100 ms until it
    /// completes; the first abandonment, as (seconds after the request, rung).
    pub(crate) fn watch_request(
        policy: &mut dyn Policy,
        ladder: &Ladder,
        rung: usize,
        start_s: f64,
        buffer_s: f64,
        bytes_at: impl Fn(f64) -> f64,
    ) -> Option<(f64, usize)> {
        let total = ladder.sizes[rung][0];
        for tick in 1..2000 {
            let elapsed = f64::from(tick) * 0.1;
            let loaded = (bytes_at((elapsed - RTT_S).max(0.0)) as u64).min(total);
            if loaded >= total {
                return None;
            }
            let f = InFlight {
                ladder,
                segment: 0,
                rung,
                bytes_total: total,
                bytes_loaded: loaded,
                elapsed_s: elapsed,
                ttfb_s: RTT_S,
                buffer_s: (buffer_s - elapsed).max(0.0),
                playing: true,
                now_s: start_s + elapsed,
            };
            if let Some(r) = policy.abandon(&f) {
                return Some((elapsed, r));
            }
        }
        None
    }

    fn kbps(k: f64) -> impl Fn(f64) -> f64 {
        move |s| s * k * 1000.0 / 8.0
    }

    #[test]
    fn dash_abandons_a_request_the_link_cannot_carry_in_time_once_it_has_measured_it() {
        let ladder = ladder();
        let mut bola = Bola::with_stable_buffer_time(BUFFER_MAX_S);
        run(&mut bola, &ladder, 5000.0, 6);
        // 100 kbit/s: the 273 kB top segment would take 22 s, over 1.8 segment durations; the
        // rung the measured rate affords (90 kbit/s after the safety factor) is the lowest.
        assert!(bola.placeholder_buffer_s() > 0.0);
        let (at, rung) =
            watch_request(&mut bola, &ladder, 2, 1000.0, 20.0, kbps(100.0)).expect("abandons");
        assert_eq!(rung, 0);
        assert!(
            (0.5..1.0).contains(&at),
            "after 5 progress events and 500 ms: {at}"
        );
        // BOLA gives up the placeholder that would take it straight back up.
        assert_eq!(bola.placeholder_buffer_s(), 0.0);

        // A fast enough link, a link that sends nothing (no progress event), or a buffer above
        // the stable buffer time: no abandonment.
        let mut bola = Bola::with_stable_buffer_time(BUFFER_MAX_S);
        run(&mut bola, &ladder, 5000.0, 6);
        assert_eq!(
            watch_request(&mut bola, &ladder, 2, 2000.0, 20.0, kbps(1000.0)),
            None
        );
        assert_eq!(
            watch_request(&mut bola, &ladder, 2, 3000.0, 20.0, |_| 0.0),
            None
        );
        let mut low = Bola::with_stable_buffer_time(12.0);
        run(&mut low, &ladder, 5000.0, 6);
        assert_eq!(
            watch_request(&mut low, &ladder, 2, 4000.0, 40.0, kbps(100.0)),
            None
        );
    }

    #[test]
    fn hls_js_switches_down_only_where_its_emergency_rule_lands_above_the_lowest_rung() {
        let ladder = ladder();
        // 200 kbit/s, 10.7 s buffered: at 3.5 s (half a segment) the rest would take 7.5 s with
        // 7.2 s left; rung 1 would load in 6.75 s: switch, deferred by that time (finishing is
        // not twice as slow); `abortAndSwitch` then re-picks against the lowest bitrate: 0.
        let first = Decision {
            ladder: &ladder,
            segment: 0,
            buffer_s: 0.0,
            buffer_max_s: BUFFER_MAX_S,
            last_rung: None,
            now_s: 0.0,
            stalled: true,
        };
        let mut hls = HlsJs::new();
        hls.choose(&first);
        let (at, rung) =
            watch_request(&mut hls, &ladder, 2, 100.0, 10.7, kbps(200.0)).expect("aborts");
        assert_eq!(rung, 0);
        assert!((10.2..10.4).contains(&at), "3.5 s + 6.75 s: {at}");

        // With 10 s buffered the re-pick lands on rung 0 at once, and hls.js does not abort for
        // rung 0: the request finishes, and the next segment is forced to the lowest rung.
        let mut hls = HlsJs::new();
        hls.choose(&first);
        hls.on_download(&download(100_000, 0.5, RTT_S));
        assert_eq!(
            watch_request(&mut hls, &ladder, 2, 100.0, 10.5, kbps(200.0)),
            None
        );
        let next = Decision {
            segment: 1,
            buffer_s: 10.0,
            last_rung: Some(2),
            now_s: 120.0,
            stalled: false,
            ..first
        };
        assert_eq!(hls.choose(&next), 0);

        // A link that keeps up: nothing.
        let mut hls = HlsJs::new();
        hls.choose(&first);
        assert_eq!(
            watch_request(&mut hls, &ladder, 2, 100.0, 10.7, kbps(1000.0)),
            None
        );
    }
}
