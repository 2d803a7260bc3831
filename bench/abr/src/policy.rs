//! What a policy sees and answers: the interface every ABR rule of the simulator implements.
//!
//! The simulator asks a policy for the rung of each segment just before requesting it, and tells
//! it about each finished download, exactly what a player's ABR controller learns in a browser
//! (hls.js measures bytes over download time; dash.js also sees its buffer level).

/// The bitrate ladder of one track, lowest rung first.
#[derive(Debug, Clone)]
pub struct Ladder {
    /// Nominal bitrate of each rung (kbit/s), ascending; what a master playlist advertises.
    pub bitrates_kbps: Vec<f64>,
    /// Bytes of every segment of every rung: `sizes[rung][segment]`, as our packager serves them.
    pub sizes: Vec<Vec<u64>>,
    /// Media duration of every segment in seconds (identical across rungs: aligned segments).
    pub durations_s: Vec<f64>,
}

impl Ladder {
    pub fn rungs(&self) -> usize {
        self.bitrates_kbps.len()
    }
    pub fn segments(&self) -> usize {
        self.durations_s.len()
    }
}

/// The player's state when it is about to request segment `segment`.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub ladder: &'a Ladder,
    /// Index of the segment about to be requested (into the ladder's segments, which the
    /// session plays in order; the session may loop over the track, see `Session`).
    pub segment: usize,
    /// Seconds of media buffered ahead of the playhead.
    pub buffer_s: f64,
    /// The most media the player keeps buffered; it waits before requesting more.
    pub buffer_max_s: f64,
    /// The rung of the previous segment (`None` for the first request).
    pub last_rung: Option<usize>,
    /// Wall-clock seconds since the session started.
    pub now_s: f64,
    /// True until playback has started (startup) and while stalled.
    pub stalled: bool,
}

/// A finished segment download.
#[derive(Debug, Clone, Copy)]
pub struct Download {
    pub segment: usize,
    pub rung: usize,
    pub bytes: u64,
    /// From request to last byte, round-trip time included.
    pub elapsed_s: f64,
    /// Time to first byte (one round trip in this model).
    pub ttfb_s: f64,
    /// Buffer level when the download finished, before adding this segment.
    pub buffer_s: f64,
    /// Wall-clock seconds since the session started, at the end of the download.
    pub now_s: f64,
}

impl Download {
    /// What a browser player measures: bytes over the whole request time, in kbit/s.
    pub fn throughput_kbps(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.bytes as f64 * 8.0 / 1000.0 / self.elapsed_s
        } else {
            f64::INFINITY
        }
    }
}

/// A download in flight, as a player's abandonment rule sees it (only when the simulator lets
/// policies abandon, `PlayerModel::abandon`).
#[derive(Debug, Clone, Copy)]
pub struct InFlight<'a> {
    pub ladder: &'a Ladder,
    pub segment: usize,
    pub rung: usize,
    /// The segment's size at this rung (what the response's Content-Length says).
    pub bytes_total: u64,
    /// Received so far.
    pub bytes_loaded: u64,
    /// Since the request went out.
    pub elapsed_s: f64,
    /// When the first byte came (one round trip in this model; meaningful once bytes arrived).
    pub ttfb_s: f64,
    /// Seconds of media buffered now (0 while stalled).
    pub buffer_s: f64,
    /// Playback has started (false while the first segment loads).
    pub playing: bool,
    /// Wall-clock seconds since the session started.
    pub now_s: f64,
}

/// An ABR rule under test.
pub trait Policy {
    fn name(&self) -> &str;
    /// The rung (0 = lowest) to request segment `d.segment` at.
    fn choose(&mut self, d: &Decision<'_>) -> usize;
    /// Learn from a finished download.
    fn on_download(&mut self, dl: &Download);
    /// Called every 100 ms of a download when the model allows abandonment: a rung below
    /// `f.rung` cuts the request and requests the segment again at that rung. The default
    /// never abandons.
    fn abandon(&mut self, f: &InFlight<'_>) -> Option<usize> {
        let _ = f;
        None
    }
}
