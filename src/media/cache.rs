//! The on-disk transcode cache: each (track, version, profile) is encoded at most once at a time,
//! on first demand, and kept under `<data-dir>/cache` until the size cap evicts it (least
//! recently used first).
//!
//! Layout on disk: `<dir>/<track_id>/<version>/<quality>.es` holds the raw frames (ADTS or MP3,
//! no container) and `<quality>.idx` the byte offset of every segment boundary (and LAME's Info
//! frame for MP3). The `.idx` is written last, atomically: an `.es` without one is an interrupted
//! encode and is deleted at start-up.
//!
//! While an encode runs, readers follow its progress through a `watch` channel: a segment can be
//! served as soon as its last frame is written, long before the track is done.

use std::collections::HashMap;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify, Semaphore};

use super::id3;
use super::layout::SegmentLayout;
use super::pipeline::{FrameSink, Output, Transcode, TranscodeError};
use crate::streaming::adaptive::AdaptiveProfile;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("transcoding failed: {0}")]
    Transcode(String),
    #[error("segment {0} does not exist")]
    NoSuchSegment(usize),
    #[error("cache i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("server is shutting down")]
    ShuttingDown,
    /// The file is not the one the library scanned: nothing is encoded from it until a rescan
    /// has read it again (and given it a new version, so new names).
    #[error("{0}")]
    SourceChanged(String),
}

/// What to encode: one track (at one version of its file) in one profile.
#[derive(Debug, Clone)]
pub struct TranscodeRequest {
    pub track_id: String,
    /// Changes whenever the source file changes, so stale encodes are never served.
    pub version: String,
    pub source: PathBuf,
    /// The source's library-relative name and the version the library scanned it at
    /// (`library::file_version`): an encode starts only from that very file.
    pub source_name: String,
    pub source_version: String,
    pub source_samples: u64,
    pub source_rate: u32,
    pub profile: AdaptiveProfile,
    pub layout: SegmentLayout,
}

impl TranscodeRequest {
    /// About what the encode will weigh: constant bitrate × duration.
    fn expected_bytes(&self) -> u64 {
        let secs = self.source_samples as f64 / f64::from(self.source_rate.max(1));
        (f64::from(self.profile.bitrate_kbps) * 125.0 * secs) as u64
    }

    /// The profile's settings, the segment length and the delay are part of the key (and the pipeline's
    /// revision is part of the version, see [`super::output_version`]): changing any of them
    /// must never serve bytes made the old way.
    fn key(&self) -> Key {
        Key {
            track_id: self.track_id.clone(),
            version: self.version.clone(),
            quality: format!(
                "{}-{}k-{}hz-{}f-{}d",
                self.profile.quality_id,
                self.profile.bitrate_kbps,
                self.profile.sample_rate,
                self.layout.segment_frames,
                self.layout.delay
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    track_id: String,
    version: String,
    quality: String,
}

impl Key {
    fn dir(&self, root: &Path) -> PathBuf {
        root.join(&self.track_id).join(&self.version)
    }
    fn es_path(&self, root: &Path) -> PathBuf {
        self.dir(root).join(format!("{}.es", self.quality))
    }
    fn idx_path(&self, root: &Path) -> PathBuf {
        self.dir(root).join(format!("{}.idx", self.quality))
    }
}

/// A finished encode.
#[derive(Debug, Serialize, Deserialize)]
pub struct Encoded {
    #[serde(skip)]
    pub path: PathBuf,
    /// Byte offset of every segment start, plus the end of the stream.
    pub segment_offsets: Vec<u64>,
    /// LAME's Info frame, put before the frames on progressive MP3.
    pub info_tag: Option<Vec<u8>>,
}

impl Encoded {
    pub fn stream_len(&self) -> u64 {
        self.segment_offsets.last().copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
enum Progress {
    Running {
        segment_offsets: Vec<u64>,
    },
    Done(Arc<Encoded>),
    /// The encode failed, for the reason `fault` says.
    Failed {
        message: String,
        fault: Fault,
    },
}

/// Whose fault a failed encode was.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The source's content (corrupt, unsupported).
    Source,
    /// The server's (writing the cache).
    Cache,
    /// The file changed since the library scanned it.
    Changed,
    /// The server is shutting down.
    Stopping,
}

enum Entry {
    Ready {
        encoded: Arc<Encoded>,
        last_used: u64,
    },
    Encoding(watch::Receiver<Progress>),
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    ready_bytes: u64,
    /// What the encodes in progress will weigh when done (bitrate × duration): counted against
    /// the cap from their start, so the cap bounds the disk while they write, not only after.
    running_bytes: u64,
    clock: u64,
}

/// The transcode cache: a cheap handle (clones share one cache).
#[derive(Clone)]
pub struct TranscodeCache {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    /// Map operations only; never held across an await or while encoding.
    state: Mutex<State>,
    /// Bounds encodes running at once (each takes a core).
    permits: Arc<Semaphore>,
    /// Bounds head starts: a new encode runs at once, outside the core budget, for its first
    /// seconds, so a new listener does not wait behind whole-track encodes of other tracks;
    /// after that, encodes take turns on the cores (`CORE_TURN_SECS`). An encode holds a
    /// blocking thread only during a turn (a head start or a core): between turns it waits on
    /// the runtime, holding none. (It used to keep its thread while it waited: a burst of
    /// requests for different tracks — a crawler, a restart with many listeners — parked one
    /// thread per encode until tokio's blocking pool was full and file reads queued behind
    /// them; bounding those threads instead made newcomers wait for whole encodes to end.)
    head_starts: Arc<Semaphore>,
    /// Bounds encodes under way (opened: source, encoders, output files, buffers). A job past
    /// the bound waits before opening anything. The bound also keeps each one's turn coming
    /// round often enough: with `OPEN_PER_WORKER` encodes per core taking 20 s turns of a
    /// quarter second or less, a listener's encode advances several times faster than it
    /// plays. Without it, a crawler asking for thousands of tracks opened them all, and every
    /// listener's encode waited minutes for its next turn.
    open: Arc<Semaphore>,
    /// Jobs holding a thread now, and the most there ever were (diagnostics and tests).
    threads_busy: AtomicUsize,
    threads_peak: AtomicUsize,
    /// The most encodes ever under way at once (diagnostics and tests).
    open_peak: AtomicUsize,
    open_bound: usize,
    /// Set at shutdown: running encodes stop between blocks, new ones are refused.
    stopping: AtomicBool,
    /// Encode jobs started since open (one job may produce several profiles).
    jobs_started: AtomicU64,
    /// Signalled when an encode finds its source changed since the library's scan.
    source_changed: Arc<Notify>,
    /// Recently served segments, ready to send: a hot segment is then served with no disk
    /// access and no copy (the `Bytes` is shared with every response).
    memo: quick_cache::sync::Cache<(Key, usize), SegmentData, ByteWeight>,
    /// One open handle per encode file, shared by all of its memoised segments. Each segment
    /// used to open its own: a thousand hot segments (under the memory budget) were a thousand
    /// descriptors, and the server ran out of them. Weak: a handle closes when the last segment
    /// holding it leaves memory.
    handles: Mutex<HashMap<PathBuf, Weak<std::fs::File>>>,
}

/// One segment's bytes (ID3 tag, then frames) and where the frames came from: `bytes[tag_len..]`
/// is exactly the content of `file` from `offset`, read through that very handle. The HTTP layer
/// uses this to send the frames with `sendfile(2)` instead of copying them from memory; the
/// handle keeps those bytes readable even if the encode is evicted (its file is then unlinked)
/// or encoded again into a new file meanwhile. The segments of one file share one handle
/// (`Inner::handles`), so memoised segments hold one descriptor per encode file, not per segment.
#[derive(Clone)]
pub struct SegmentData {
    pub bytes: Bytes,
    pub tag_len: usize,
    pub file: Arc<std::fs::File>,
    pub offset: u64,
}

/// Weighs memoised segments by their size.
#[derive(Clone)]
struct ByteWeight;

impl quick_cache::Weighter<(Key, usize), SegmentData> for ByteWeight {
    fn weight(&self, _key: &(Key, usize), value: &SegmentData) -> u64 {
        value.bytes.len() as u64
    }
}

/// Seconds of source a new encode may run before it needs a core permit (about two segments:
/// enough for a player to start and to fetch its next segment).
const HEAD_START_SECS: u64 = 15;

/// Seconds of source an encode holding a core encodes before it lets the next one in line have
/// it (about a quarter of a second of one core for the whole ladder).
const CORE_TURN_SECS: u64 = 20;

/// Head starts per core (see `Inner::head_starts`).
const HEAD_STARTS_PER_WORKER: usize = 4;

/// Encodes under way per core (see `Inner::open`).
const OPEN_PER_WORKER: usize = 32;

/// What lets a job run: a head start, or one of the cores. Dropping it frees the place.
enum Slot {
    HeadStart(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit),
    Core(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit),
}

enum Lookup {
    Ready(Arc<Encoded>),
    Encoding(watch::Receiver<Progress>),
}

enum Waited<T> {
    Found(T),
    Done(Arc<Encoded>),
}

impl TranscodeCache {
    /// Opens the cache in `dir`, dropping interrupted encodes and indexing finished ones.
    pub fn open(dir: &Path, max_bytes: u64, workers: usize) -> Result<Self, CacheError> {
        Self::open_with_memory(dir, max_bytes, workers, 0)
    }

    /// Like [`Self::open`], keeping up to `memory_bytes` of recently served segments in memory.
    pub fn open_with_memory(
        dir: &Path,
        max_bytes: u64,
        workers: usize,
        memory_bytes: u64,
    ) -> Result<Self, CacheError> {
        // Checked now, naming the folder: a cache that cannot be written would otherwise turn
        // every stream into an error while the server reports itself healthy.
        let named = |e: std::io::Error| {
            CacheError::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", dir.display()),
            ))
        };
        std::fs::create_dir_all(dir).map_err(named)?;
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| named(std::io::Error::new(e.kind(), format!("not writable: {e}"))))?;
        let mut state = State::default();
        let mut found = Vec::new();
        for entry in walkdir::WalkDir::new(dir).min_depth(3).max_depth(3) {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) == Some("evicted") {
                let _ = std::fs::remove_file(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("es") {
                continue;
            }
            let idx = path.with_extension("idx");
            let loaded = std::fs::read(&idx)
                .ok()
                .and_then(|b| serde_json::from_slice::<Encoded>(&b).ok())
                .filter(|e| std::fs::metadata(path).is_ok_and(|m| m.len() == e.stream_len()));
            let rel: Vec<String> = path
                .strip_prefix(dir)
                .unwrap_or(path)
                .iter()
                .filter_map(|p| p.to_str().map(str::to_string))
                .collect();
            match (loaded, rel.as_slice()) {
                (Some(mut encoded), [track_id, version, file]) => {
                    let key = Key {
                        track_id: track_id.clone(),
                        version: version.clone(),
                        quality: file.trim_end_matches(".es").to_string(),
                    };
                    let mtime = entry.metadata().ok().and_then(|m| m.modified().ok());
                    encoded.path = path.to_path_buf();
                    found.push((mtime, key, encoded));
                }
                _ => {
                    tracing::info!(path = %path.display(), "removing interrupted encode");
                    let _ = std::fs::remove_file(path);
                    let _ = std::fs::remove_file(&idx);
                }
            }
        }
        // Oldest first, so the LRU clock starts in file-time order.
        found.sort_by_key(|f| f.0);
        for (_, key, encoded) in found {
            state.clock += 1;
            state.ready_bytes += encoded.stream_len();
            state.entries.insert(
                key,
                Entry::Ready {
                    encoded: Arc::new(encoded),
                    last_used: state.clock,
                },
            );
        }
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            max_bytes,
            state: Mutex::new(state),
            permits: Arc::new(Semaphore::new(workers.max(1))),
            head_starts: Arc::new(Semaphore::new(workers.max(1) * HEAD_STARTS_PER_WORKER)),
            open: Arc::new(Semaphore::new(workers.max(1) * OPEN_PER_WORKER)),
            threads_busy: AtomicUsize::new(0),
            threads_peak: AtomicUsize::new(0),
            open_peak: AtomicUsize::new(0),
            open_bound: workers.max(1) * OPEN_PER_WORKER,
            stopping: AtomicBool::new(false),
            jobs_started: AtomicU64::new(0),
            source_changed: Arc::default(),
            // A segment is ~50-300 kB: size the index for that.
            memo: quick_cache::sync::Cache::with_weighter(
                (memory_bytes / 100_000).max(16) as usize,
                memory_bytes,
                ByteWeight,
            ),
            handles: Mutex::default(),
        });
        inner.evict(None);
        Ok(Self { inner })
    }

    /// Stops running encodes and refuses new ones.
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.permits.close();
        self.inner.head_starts.close();
        self.inner.open.close();
    }

    /// The most encode jobs that ever held a thread at once (at most the cores plus the head
    /// starts, `workers × (1 + HEAD_STARTS_PER_WORKER)`).
    pub fn peak_encode_threads(&self) -> usize {
        self.inner.threads_peak.load(Ordering::Relaxed)
    }

    /// The most encodes that were ever under way at once (at most `workers × OPEN_PER_WORKER`).
    pub fn peak_open_encodes(&self) -> usize {
        self.inner.open_peak.load(Ordering::Relaxed)
    }

    /// Bytes of finished encodes on disk.
    pub fn size_bytes(&self) -> u64 {
        self.inner.state.lock().ready_bytes
    }

    /// Encode jobs started since the cache was opened.
    pub fn jobs_started(&self) -> u64 {
        self.inner.jobs_started.load(Ordering::Relaxed)
    }

    /// Notified when an encode finds its source file changed since the library scanned it
    /// (the library should be scanned again). One wake-up may stand for several such finds.
    pub fn source_changes(&self) -> Arc<Notify> {
        self.inner.source_changed.clone()
    }

    /// Whether `req` is fully encoded on disk.
    pub fn is_complete(&self, req: &TranscodeRequest) -> bool {
        matches!(
            self.inner.state.lock().entries.get(&req.key()),
            Some(Entry::Ready { .. })
        )
    }

    /// The bytes of segment `index` of `req`, starting with its ID3 timestamp tag; waits only
    /// until that segment is encoded.
    pub async fn segment(&self, req: &TranscodeRequest, index: usize) -> Result<Bytes, CacheError> {
        self.segment_data(req, index).await.map(|d| d.bytes)
    }

    /// Like [`Self::segment`], with the file the frames were read from.
    pub async fn segment_data(
        &self,
        req: &TranscodeRequest,
        index: usize,
    ) -> Result<SegmentData, CacheError> {
        let span = req
            .layout
            .segment(index)
            .ok_or(CacheError::NoSuchSegment(index))?;
        let memo_key = (req.key(), index);
        if let Some(hit) = self.inner.memo_hit(&memo_key) {
            return Ok(hit);
        }
        let tag = id3::timestamp_tag(req.layout.frame_ticks(span.first_frame));
        let data = self.read_segment(req, index, &tag).await?;
        self.inner.memo.insert(memo_key, data.clone());
        Ok(data)
    }

    /// The frames of segment `index` (no ID3 tag), waiting for them while the encode runs. Not
    /// kept in memory: a progressive download reads each segment once, and must not push the
    /// segments HLS listeners share out of memory.
    pub async fn segment_frames(
        &self,
        req: &TranscodeRequest,
        index: usize,
    ) -> Result<Bytes, CacheError> {
        req.layout
            .segment(index)
            .ok_or(CacheError::NoSuchSegment(index))?;
        if let Some(hit) = self.inner.memo_hit(&(req.key(), index)) {
            return Ok(hit.bytes.slice(hit.tag_len..));
        }
        self.read_segment(req, index, &[]).await.map(|d| d.bytes)
    }

    /// `tag` and the frames of segment `index`, read from the encode (started if need be).
    async fn read_segment(
        &self,
        req: &TranscodeRequest,
        index: usize,
        tag: &[u8],
    ) -> Result<SegmentData, CacheError> {
        let pick = |offsets: &[u64]| {
            (offsets.len() > index + 1).then(|| (offsets[index], offsets[index + 1]))
        };
        let mut attempt = 0;
        loop {
            let (path, (start, end)) = self.wait_for(req, pick).await?;
            let shared = self.inner.handles.lock().get(&path).and_then(Weak::upgrade);
            match read_range(&path, start, end, tag, shared).await {
                Ok((file, bytes)) => {
                    self.inner.share_handle(&path, &file);
                    return Ok(SegmentData {
                        bytes,
                        tag_len: tag.len(),
                        file,
                        offset: start,
                    });
                }
                // Evicted between lookup and read: encode again, once.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt == 0 => {
                    attempt += 1;
                    self.inner.forget(&req.key(), None);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Segment `index` of `req` if it is in memory (served recently): never waits, never reads.
    pub fn hot_segment(&self, req: &TranscodeRequest, index: usize) -> Option<SegmentData> {
        self.inner.memo_hit(&(req.key(), index))
    }

    /// The whole encoded stream, once finished (for progressive delivery).
    pub async fn complete(&self, req: &TranscodeRequest) -> Result<Arc<Encoded>, CacheError> {
        self.open_complete(req).await.map(|(e, _)| e)
    }

    /// The whole encoded stream, once finished, with its file open: an eviction after this
    /// returns cannot take the bytes away from the reader (the open handle keeps them), and one
    /// before the open is met by encoding again.
    pub async fn open_complete(
        &self,
        req: &TranscodeRequest,
    ) -> Result<(Arc<Encoded>, tokio::fs::File), CacheError> {
        // Each round either finds the file or starts a fresh encode of it; an encode evicted
        // again before we open it (a cache far too small for its load) gives up after a few.
        for _ in 0..4 {
            let encoded = match self
                .inner
                .clone()
                .lookup_or_start(std::slice::from_ref(req))
                .pop()
            {
                Some(Lookup::Ready(e)) => e,
                Some(Lookup::Encoding(rx)) => match wait_progress(rx, |_| None::<()>).await? {
                    Waited::Done(e) => e,
                    Waited::Found(()) => unreachable!("the predicate never matches"),
                },
                None => return Err(CacheError::ShuttingDown),
            };
            match tokio::fs::File::open(&encoded.path).await {
                // The file at that path is the one `encoded` describes only while the entry
                // stands: eviction renames the file and drops the entry under one lock, and a
                // new encode of the key (after an eviction) creates a new file at the path.
                Ok(file) if self.inner.is_current(&req.key(), &encoded) => {
                    return Ok((encoded, file))
                }
                Ok(_) => {}
                // Evicted under our feet: encode again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.inner.forget(&req.key(), Some(&encoded));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CacheError::Io(std::io::Error::other(
            "the encoded stream keeps being evicted before it can be read: the cache is too small",
        )))
    }

    /// Encodes every request not cached yet, in one decode pass, and waits for all of them
    /// (`stream-server transcode`). The requests must share one source.
    pub async fn warm(&self, reqs: &[TranscodeRequest]) -> Result<(), CacheError> {
        for l in self.inner.clone().lookup_or_start(reqs) {
            if let Lookup::Encoding(rx) = l {
                wait_progress(rx, |_| None::<()>).await?;
            }
        }
        Ok(())
    }

    async fn wait_for<T>(
        &self,
        req: &TranscodeRequest,
        pick: impl Fn(&[u64]) -> Option<T>,
    ) -> Result<(PathBuf, T), CacheError> {
        let path = req.key().es_path(&self.inner.dir);
        let short =
            || CacheError::Transcode("encoded stream does not match the segment layout".into());
        match self
            .inner
            .clone()
            .lookup_or_start(std::slice::from_ref(req))
            .pop()
        {
            Some(Lookup::Ready(e)) => pick(&e.segment_offsets)
                .map(|t| (e.path.clone(), t))
                .ok_or_else(short),
            Some(Lookup::Encoding(rx)) => match wait_progress(rx, &pick).await? {
                Waited::Found(t) => Ok((path, t)),
                Waited::Done(e) => pick(&e.segment_offsets)
                    .map(|t| (e.path.clone(), t))
                    .ok_or_else(short),
            },
            None => Err(CacheError::ShuttingDown),
        }
    }
}

impl Inner {
    /// Keeps `file` as the handle later reads of `path` share (while a segment holds it).
    fn share_handle(&self, path: &Path, file: &Arc<std::fs::File>) {
        let mut handles = self.handles.lock();
        if handles.len() >= 1024 {
            handles.retain(|_, h| h.strong_count() > 0);
        }
        handles.insert(path.to_path_buf(), Arc::downgrade(file));
    }

    /// A memoised segment, counted as a use of its encode (so the disk entry does not look
    /// stale while it is served from memory).
    ///
    /// Only while its encode is in the cache: the segments of an encode that failed (its source
    /// changed under it, say) or was evicted are not served from memory either, even if one was
    /// put there after the clean-up.
    fn memo_hit(&self, key: &(Key, usize)) -> Option<SegmentData> {
        let hit = self.memo.get(key)?;
        let mut state = self.state.lock();
        state.clock += 1;
        let now = state.clock;
        match state.entries.get_mut(&key.0) {
            Some(Entry::Ready { last_used, .. }) => *last_used = now,
            Some(Entry::Encoding(_)) => {}
            None => {
                drop(state);
                self.memo.remove(key);
                return None;
            }
        }
        metrics::counter!("cache_hits_total").increment(1);
        Some(hit)
    }

    /// Drops the memoised segments of an encode that left the cache: their open handles would
    /// otherwise keep its deleted file on disk.
    fn unmemo(&self, key: &Key, encoded: &Encoded) {
        for index in 0..encoded.segment_offsets.len().saturating_sub(1) {
            self.memo.remove(&(key.clone(), index));
        }
    }

    /// Returns each request's state, starting one encode job for all those neither cached nor
    /// being encoded.
    fn lookup_or_start(self: Arc<Self>, reqs: &[TranscodeRequest]) -> Vec<Lookup> {
        let mut out = Vec::with_capacity(reqs.len());
        let mut to_start = Vec::new();
        {
            let mut state = self.state.lock();
            state.clock += 1;
            let now = state.clock;
            for req in reqs {
                let key = req.key();
                match state.entries.get_mut(&key) {
                    Some(Entry::Ready { encoded, last_used }) => {
                        *last_used = now;
                        metrics::counter!("cache_hits_total").increment(1);
                        out.push(Lookup::Ready(encoded.clone()));
                    }
                    Some(Entry::Encoding(rx)) => {
                        metrics::counter!("cache_hits_total").increment(1);
                        out.push(Lookup::Encoding(rx.clone()));
                    }
                    None => {
                        if self.stopping.load(Ordering::SeqCst) {
                            return Vec::new();
                        }
                        metrics::counter!("cache_misses_total").increment(1);
                        let (tx, rx) = watch::channel(Progress::Running {
                            segment_offsets: vec![0],
                        });
                        state.entries.insert(key, Entry::Encoding(rx.clone()));
                        state.running_bytes += req.expected_bytes();
                        out.push(Lookup::Encoding(rx));
                        to_start.push((req.clone(), tx));
                    }
                }
            }
        }
        if !to_start.is_empty() {
            // Room for what is about to be written.
            self.evict(None);
            self.start_job(to_start);
        }
        out
    }

    fn start_job(self: Arc<Self>, jobs: Vec<(TranscodeRequest, watch::Sender<Progress>)>) {
        self.jobs_started.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let reqs: Vec<TranscodeRequest> = jobs.iter().map(|(r, _)| r.clone()).collect();
            let senders: Vec<watch::Sender<Progress>> =
                jobs.into_iter().map(|(_, tx)| tx).collect();
            let result = self.clone().run_job(&reqs, &senders).await;
            self.finish(&reqs, &senders, result);
        });
    }

    /// The whole transcode of one source into several profiles, in turns: each turn runs on a
    /// blocking thread while the job holds a head start or a core, and between turns the job
    /// waits for a core on the runtime, holding no thread (its state moves with it). So the
    /// threads encodes hold are bounded by the cores and head starts, however many encodes are
    /// under way, and a newcomer's head start never waits for a thread.
    async fn run_job(
        self: Arc<Self>,
        reqs: &[TranscodeRequest],
        senders: &[watch::Sender<Progress>],
    ) -> Result<Vec<Encoded>, TranscodeError> {
        let cancelled = |_| TranscodeError::Cancelled;
        let _open = self.open.clone().acquire_owned().await.map_err(cancelled)?;
        let under_way = self.open_bound - self.open.available_permits();
        self.open_peak.fetch_max(under_way, Ordering::Relaxed);
        let mut slot = match self.head_starts.clone().try_acquire_owned() {
            Ok(head) => Slot::HeadStart(head),
            Err(_) => Slot::Core(
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(cancelled)?,
            ),
        };
        let started = Instant::now();
        let track_id = reqs[0].track_id.clone();
        let qualities: Vec<String> = reqs.iter().map(|r| r.profile.quality_id.clone()).collect();
        tracing::info!(track_id, ?qualities, "transcode started");
        metrics::counter!("transcodes_started_total").increment(reqs.len() as u64);
        let mut job = {
            let (this, reqs, senders) = (self.clone(), reqs.to_vec(), senders.to_vec());
            self.on_thread(move || this.open_job(&reqs, &senders))
                .await?
        };
        let rate = u64::from(reqs[0].source_rate);
        let mut turn_ends = match slot {
            Slot::HeadStart(_) => rate * HEAD_START_SECS,
            Slot::Core(_) => rate * CORE_TURN_SECS,
        };
        loop {
            // The job moves to the turn's thread and comes back with it.
            let this = self.clone();
            job = self
                .on_thread(move || {
                    while !job.is_fed() && job.fed() < turn_ends {
                        if this.stopping.load(Ordering::Relaxed) {
                            return Err(TranscodeError::Cancelled);
                        }
                        job.step()?;
                    }
                    Ok(job)
                })
                .await?;
            if job.is_fed() {
                break;
            }
            // A turn is over. A head start goes back to the next newcomer (its first segments
            // are out); a core goes to the next encode in line (the semaphore serves in order),
            // and this one queues again. So every encode under way advances at its share of the
            // cores: a listener's encode no longer waits for every whole track queued before
            // it, each many times faster than real time.
            drop(slot);
            slot = match self.permits.clone().acquire_owned().await {
                Ok(core) => Slot::Core(core),
                Err(_) => {
                    // Shutting down. Closing the encoders and flushing the output files blocks:
                    // not on the runtime.
                    tokio::task::spawn_blocking(move || drop(job));
                    return Err(TranscodeError::Cancelled);
                }
            };
            turn_ends = job.fed() + rate * CORE_TURN_SECS;
        }
        let (this, first) = (self.clone(), reqs[0].clone());
        let encoded = self
            .on_thread(move || {
                let sinks = job.finish()?;
                if !this.source_unchanged(&first.source_name, &first.source, &first.source_version)
                {
                    return Err(TranscodeError::SourceChanged);
                }
                Ok(sinks.into_iter().map(FileSink::into_encoded).collect())
            })
            .await;
        drop(slot);
        let secs = started.elapsed().as_secs_f64();
        if encoded.is_ok() {
            metrics::histogram!("transcode_duration_seconds").record(secs);
            tracing::info!(track_id, ?qualities, secs, "transcode finished");
        }
        encoded
    }

    /// Runs `work` on one of tokio's blocking threads (file reads, decoding, encoding), counted
    /// in [`TranscodeCache::peak_encode_threads`]; a panic is an encode error, not a crash.
    async fn on_thread<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce() -> Result<T, TranscodeError> + Send + 'static,
    ) -> Result<T, TranscodeError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            /// Counts the thread free again even if the work panics.
            struct Busy<'a>(&'a AtomicUsize);
            impl Drop for Busy<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::Relaxed);
                }
            }
            let busy = this.threads_busy.fetch_add(1, Ordering::Relaxed) + 1;
            this.threads_peak.fetch_max(busy, Ordering::Relaxed);
            let _busy = Busy(&this.threads_busy);
            work()
        })
        .await
        .unwrap_or_else(|e| {
            if e.is_cancelled() {
                // The blocking pool is shutting down with the runtime.
                return Err(TranscodeError::Cancelled);
            }
            Err(TranscodeError::Encode(super::EncodeError::Codec(format!(
                "encoder thread panicked: {e}"
            ))))
        })
    }

    /// Creates the job's sinks and opens its source (on a blocking thread).
    fn open_job(
        &self,
        reqs: &[TranscodeRequest],
        senders: &[watch::Sender<Progress>],
    ) -> Result<Transcode<FileSink>, TranscodeError> {
        // The catalogue's sample count, duration and version describe the file as scanned: a
        // file replaced since would be encoded to the old length under the old names. Checked
        // before decoding and again after (a file rewritten in place while being decoded); what
        // was served of such an encode meanwhile cannot be taken back, but it is not kept.
        let first = &reqs[0];
        if !self.source_unchanged(&first.source_name, &first.source, &first.source_version) {
            return Err(TranscodeError::SourceChanged);
        }
        let mut outputs = Vec::with_capacity(reqs.len());
        for (req, tx) in reqs.iter().zip(senders) {
            outputs.push(Output {
                profile: req.profile.clone(),
                layout: req.layout.clone(),
                sink: FileSink::create(&req.key(), &self.dir, &req.layout, tx.clone())
                    .map_err(TranscodeError::Sink)?,
            });
        }
        Transcode::start(&first.source, first.source_samples, outputs)
    }

    /// Whether the source is still the version the library scanned; if not, the library is
    /// told to scan again.
    fn source_unchanged(&self, name: &str, path: &Path, version: &str) -> bool {
        let same = crate::library::file_version(name, path).is_ok_and(|v| v == version);
        if !same {
            self.source_changed.notify_one();
        }
        same
    }

    fn finish(
        &self,
        reqs: &[TranscodeRequest],
        senders: &[watch::Sender<Progress>],
        result: Result<Vec<Encoded>, TranscodeError>,
    ) {
        {
            let mut state = self.state.lock();
            let expected: u64 = reqs.iter().map(TranscodeRequest::expected_bytes).sum();
            state.running_bytes = state.running_bytes.saturating_sub(expected);
        }
        match result {
            Ok(encoded) => {
                metrics::counter!("transcodes_finished_total").increment(reqs.len() as u64);
                let mut state = self.state.lock();
                state.clock += 1;
                let now = state.clock;
                let mut done = Vec::with_capacity(reqs.len());
                for ((req, tx), encoded) in reqs.iter().zip(senders).zip(encoded) {
                    let encoded = Arc::new(encoded);
                    state.ready_bytes += encoded.stream_len();
                    state.entries.insert(
                        req.key(),
                        Entry::Ready {
                            encoded: encoded.clone(),
                            last_used: now,
                        },
                    );
                    done.push((tx, encoded));
                }
                drop(state);
                // Back under the cap before anyone hears of it: whoever waited for this encode
                // sees a cache that holds no more than its cap.
                let keep = reqs.first().map(TranscodeRequest::key);
                self.evict(keep.as_ref());
                for (tx, encoded) in done {
                    tx.send_replace(Progress::Done(encoded));
                }
            }
            Err(err) => {
                if !matches!(err, TranscodeError::Cancelled) {
                    metrics::counter!("transcodes_failed_total").increment(reqs.len() as u64);
                    tracing::warn!(track_id = %reqs[0].track_id, source = %reqs[0].source.display(), error = %err, "transcode failed");
                }
                let mut state = self.state.lock();
                for (req, tx) in reqs.iter().zip(senders) {
                    let key = req.key();
                    state.entries.remove(&key);
                    // What was served of it meanwhile is not kept, in memory either (each
                    // memoised segment also holds the deleted file open).
                    for index in 0..req.layout.segment_count() {
                        self.memo.remove(&(key.clone(), index));
                    }
                    let _ = std::fs::remove_file(key.es_path(&self.dir));
                    let _ = std::fs::remove_file(key.idx_path(&self.dir));
                    let fault = match err {
                        TranscodeError::Sink(_) => Fault::Cache,
                        TranscodeError::SourceChanged => Fault::Changed,
                        // Only shutdown cancels an encode: the file is not at fault.
                        TranscodeError::Cancelled => Fault::Stopping,
                        _ => Fault::Source,
                    };
                    tx.send_replace(Progress::Failed {
                        message: err.to_string(),
                        fault,
                    });
                }
            }
        }
    }

    /// Whether `encoded` is still the finished entry for `key`.
    fn is_current(&self, key: &Key, encoded: &Arc<Encoded>) -> bool {
        matches!(
            self.state.lock().entries.get(key),
            Some(Entry::Ready { encoded: e, .. }) if Arc::ptr_eq(e, encoded)
        )
    }

    /// Drops the finished entry for `key` (whose files are gone), if it still is `gone` when
    /// given (not a fresh encode finished since).
    fn forget(&self, key: &Key, gone: Option<&Arc<Encoded>>) {
        let mut state = self.state.lock();
        if let Some(Entry::Ready { encoded, .. }) = state.entries.get(key) {
            if gone.is_some_and(|g| !Arc::ptr_eq(encoded, g)) {
                return;
            }
            state.ready_bytes = state.ready_bytes.saturating_sub(encoded.stream_len());
            if let Some(Entry::Ready { encoded, .. }) = state.entries.remove(key) {
                drop(state);
                self.unmemo(key, &encoded);
            }
        }
    }

    /// Removes least recently used finished entries until they and the encodes in progress
    /// fit under the cap (never `keep`).
    fn evict(&self, keep: Option<&Key>) {
        let mut doomed = Vec::new();
        let mut gone = Vec::new();
        let bytes = {
            let mut state = self.state.lock();
            while state.ready_bytes + state.running_bytes > self.max_bytes {
                let oldest = state
                    .entries
                    .iter()
                    .filter_map(|(k, e)| match e {
                        Entry::Ready { last_used, .. } if Some(k) != keep => {
                            Some((*last_used, k.clone()))
                        }
                        _ => None,
                    })
                    .min_by_key(|(t, _)| *t);
                let Some((_, key)) = oldest else { break };
                if let Some(Entry::Ready { encoded, .. }) = state.entries.remove(&key) {
                    state.ready_bytes = state.ready_bytes.saturating_sub(encoded.stream_len());
                    metrics::counter!("cache_evictions_total").increment(1);
                    tracing::info!(track_id = %key.track_id, quality = %key.quality, "evicted from the transcode cache");
                    // Renamed under the lock: a new encode of the same key, started the moment
                    // the lock is released, writes fresh files that the deletion below cannot
                    // touch.
                    for path in [key.idx_path(&self.dir), key.es_path(&self.dir)] {
                        let trash = path.with_extension(format!(
                            "{}.evicted",
                            path.extension().and_then(|e| e.to_str()).unwrap_or("")
                        ));
                        if std::fs::rename(&path, &trash).is_ok() {
                            doomed.push(trash);
                        }
                    }
                    doomed.push(key.dir(&self.dir));
                    doomed.push(self.dir.join(&key.track_id));
                    gone.push((key, encoded));
                }
            }
            state.ready_bytes
        };
        for (key, encoded) in gone {
            self.unmemo(&key, &encoded);
        }
        for path in doomed {
            // Files go; folders go only if empty.
            let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir(&path));
        }
        metrics::gauge!("cache_bytes").set(bytes as f64);
    }
}

/// Waits until `pick` finds what it wants in the running encode's offsets, or the encode ends.
async fn wait_progress<T>(
    mut rx: watch::Receiver<Progress>,
    pick: impl Fn(&[u64]) -> Option<T>,
) -> Result<Waited<T>, CacheError> {
    loop {
        {
            let progress = rx.borrow_and_update();
            match &*progress {
                Progress::Running { segment_offsets } => {
                    if let Some(t) = pick(segment_offsets) {
                        return Ok(Waited::Found(t));
                    }
                }
                Progress::Done(e) => return Ok(Waited::Done(e.clone())),
                Progress::Failed { message, fault } => {
                    return Err(match fault {
                        Fault::Cache => CacheError::Io(std::io::Error::other(message.clone())),
                        Fault::Source => CacheError::Transcode(message.clone()),
                        Fault::Changed => CacheError::SourceChanged(message.clone()),
                        Fault::Stopping => CacheError::ShuttingDown,
                    })
                }
            }
        }
        if rx.changed().await.is_err() {
            // The job vanished without a word (runtime shutting down).
            return Err(CacheError::ShuttingDown);
        }
    }
}

/// `tag` followed by bytes `start..end` of the file at `path`, and the file's open handle:
/// `shared` when it is still the file at `path` (same inode; after an eviction and a new encode
/// it is not), else a new one.
async fn read_range(
    path: &Path,
    start: u64,
    end: u64,
    tag: &[u8],
    shared: Option<Arc<std::fs::File>>,
) -> std::io::Result<(Arc<std::fs::File>, Bytes)> {
    use std::os::unix::fs::{FileExt as _, MetadataExt as _};
    let path = path.to_path_buf();
    let mut out = BytesMut::zeroed(tag.len() + (end - start) as usize);
    out[..tag.len()].copy_from_slice(tag);
    let tag_len = tag.len();
    tokio::task::spawn_blocking(move || {
        let on_disk = std::fs::metadata(&path)?;
        let file = match shared {
            Some(f)
                if f.metadata()
                    .is_ok_and(|m| m.ino() == on_disk.ino() && m.dev() == on_disk.dev()) =>
            {
                f
            }
            _ => Arc::new(std::fs::File::open(&path)?),
        };
        file.read_exact_at(&mut out[tag_len..], start)?;
        Ok((file, out.freeze()))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Writes one profile's frames to `<quality>.es`, publishing each finished segment's end offset.
struct FileSink {
    writer: BufWriter<std::fs::File>,
    es_path: PathBuf,
    idx_path: PathBuf,
    written: u64,
    segment_frames: u64,
    total_frames: u64,
    offsets: Vec<u64>,
    info_tag: Option<Vec<u8>>,
    tx: watch::Sender<Progress>,
}

impl FileSink {
    fn create(
        key: &Key,
        root: &Path,
        layout: &SegmentLayout,
        tx: watch::Sender<Progress>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(key.dir(root))?;
        let es_path = key.es_path(root);
        let idx_path = key.idx_path(root);
        let _ = std::fs::remove_file(&idx_path);
        // A new file, never the old one truncated: a reader may still hold the old one open.
        let _ = std::fs::remove_file(&es_path);
        Ok(Self {
            writer: BufWriter::with_capacity(64 * 1024, std::fs::File::create(&es_path)?),
            es_path,
            idx_path,
            written: 0,
            segment_frames: layout.segment_frames,
            total_frames: layout.total_frames,
            offsets: vec![0],
            info_tag: None,
            tx,
        })
    }

    fn into_encoded(self) -> Encoded {
        Encoded {
            path: self.es_path,
            segment_offsets: self.offsets,
            info_tag: self.info_tag,
        }
    }
}

impl FrameSink for FileSink {
    fn frame(&mut self, index: u64, data: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(data)?;
        self.written += data.len() as u64;
        let done = index + 1;
        if done % self.segment_frames == 0 || done == self.total_frames {
            // Readers open the file themselves: the segment's bytes must be in the file before
            // its offset is published.
            self.writer.flush()?;
            self.offsets.push(self.written);
            self.tx.send_replace(Progress::Running {
                segment_offsets: self.offsets.clone(),
            });
        }
        Ok(())
    }

    fn finish(&mut self, info_tag: Option<Vec<u8>>) -> std::io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()?;
        self.info_tag = info_tag;
        let index = Encoded {
            path: PathBuf::new(),
            segment_offsets: self.offsets.clone(),
            info_tag: self.info_tag.clone(),
        };
        // The index is the commit record: written to a temporary name, then renamed.
        let tmp = self.idx_path.with_extension("idx.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&index).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &self.idx_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::probe::probe;
    use crate::media::encoder_delay::aligned_delay;
    use crate::media::layout::segment_frames;
    use crate::media::testutil::write_wav;

    fn request(dir: &Path, name: &str, rate: u32, secs: f64, quality: &str) -> TranscodeRequest {
        let path = dir.join(name);
        if !path.exists() {
            write_wav(&path, rate, 2, secs);
        }
        let p = probe(&path, 3600).unwrap();
        let ladder = AdaptiveProfile::presets();
        let profile = ladder
            .iter()
            .find(|q| q.quality_id == quality)
            .unwrap()
            .clone();
        let frames = segment_frames(&profile, &ladder, 6.0);
        TranscodeRequest {
            track_id: name.replace('.', "_"),
            version: "abc123".into(),
            source_name: name.to_string(),
            source_version: crate::library::file_version(name, &path).unwrap(),
            source: path,
            source_samples: p.samples,
            source_rate: p.sample_rate,
            layout: SegmentLayout::new(
                p.samples,
                p.sample_rate,
                &profile,
                frames,
                aligned_delay(&profile, &ladder),
            ),
            profile,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_encode() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = TranscodeCache::open(dir.path(), 1 << 30, 2).unwrap();
        let req = request(src.path(), "a.wav", 44100, 20.0, "medium");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (cache, req) = (cache.clone(), req.clone());
                tokio::spawn(async move { cache.segment(&req, i % 3).await.unwrap() })
            })
            .collect();
        let mut bodies = Vec::new();
        for t in tasks {
            bodies.push(t.await.unwrap());
        }
        assert_eq!(cache.jobs_started(), 1);
        for (i, b) in bodies.iter().enumerate() {
            assert_eq!(b, &bodies[i % 3], "same segment, same bytes");
            assert_eq!(&b[..3], b"ID3");
        }
        // The whole stream equals the segments end to end (less their ID3 tags).
        let whole = cache.complete(&req).await.unwrap();
        let data = std::fs::read(&whole.path).unwrap();
        let mut joined = Vec::new();
        for i in 0..req.layout.segment_count() {
            joined.extend_from_slice(&cache.segment(&req, i).await.unwrap()[id3::TAG_LEN..]);
        }
        assert_eq!(joined, data);
        assert!(matches!(
            cache.segment(&req, 99).await,
            Err(CacheError::NoSuchSegment(99))
        ));
    }

    /// Descriptors of this process open on `path`.
    fn open_on(path: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target == path)
            .count()
    }

    /// Memoised segments of one encode share one descriptor (each held its own: a thousand hot
    /// segments under the memory budget exhausted the process's descriptors), and the segments
    /// still read back exactly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hot_segments_of_one_file_share_one_descriptor() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = TranscodeCache::open(dir.path(), 1 << 30, 2).unwrap();
        let req = request(src.path(), "a.wav", 22050, 60.0, "mobile");
        let whole = cache.complete(&req).await.unwrap();
        let n = req.layout.segment_count();
        assert!(n >= 8, "{n} segments");
        let mut held = Vec::new();
        for i in 0..n {
            held.push(cache.segment_data(&req, i).await.unwrap());
        }
        let data = std::fs::read(&whole.path).unwrap();
        for d in &held {
            let frames = &d.bytes[d.tag_len..];
            let at = d.offset as usize;
            assert_eq!(frames, &data[at..at + frames.len()]);
            assert!(Arc::ptr_eq(&d.file, &held[0].file));
        }
        let path = whole.path.canonicalize().unwrap();
        assert_eq!(open_on(&path), 1, "{n} hot segments");
        // The handle closes with the last segment holding it.
        drop(held);
        cache.inner.memo.clear();
        assert_eq!(open_on(&path), 0);
    }

    /// Encodes take turns on the cores: with one core busy on a long track, a newcomer gets
    /// past its head start (its third segment and beyond) long before the long track is done,
    /// instead of waiting for all of it (an audible stall for its listener).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_encode_does_not_wait_for_a_whole_long_track() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = TranscodeCache::open(dir.path(), 1 << 30, 1).unwrap();
        let long = request(src.path(), "long.wav", 44100, 900.0, "high");
        let new = request(src.path(), "new.wav", 44100, 120.0, "high");
        // The long track starts first and is past its head start, on the one core.
        cache.segment(&long, 3).await.unwrap();
        // Segment 6 starts ~40 s in: well past the newcomer's 15 s head start.
        let late = new.layout.segment_count().min(7) - 1;
        cache.segment(&new, late).await.unwrap();
        assert!(
            !cache.is_complete(&long),
            "the newcomer waited for the whole long track"
        );
        cache.complete(&long).await.unwrap();
    }

    /// A burst of encodes for different tracks holds a bounded number of blocking threads (it
    /// used to park one per encode until tokio's pool was full and file reads queued behind
    /// them), every encode still completes, and a newcomer arriving in the middle of the burst
    /// gets its first segment at once: its head start waits neither for a thread nor for any
    /// encode of the burst to end (with a bound on threads held between turns, it waited for
    /// several).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_encodes_holds_few_threads_and_lets_a_newcomer_start() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = TranscodeCache::open(dir.path(), 1 << 30, 1).unwrap();
        let burst = 12;
        let reqs: Vec<_> = (0..burst)
            .map(|i| request(src.path(), &format!("t{i}.wav"), 22050, 120.0, "mobile"))
            .collect();
        let newcomer = request(src.path(), "new.wav", 22050, 120.0, "mobile");
        // Every encode of the burst under way (its first segment out).
        let started: Vec<_> = reqs
            .iter()
            .map(|req| {
                let (cache, req) = (cache.clone(), req.clone());
                tokio::spawn(async move { cache.segment(&req, 0).await.map(|_| ()) })
            })
            .collect();
        for t in started {
            t.await.unwrap().unwrap();
        }
        cache.segment(&newcomer, 0).await.unwrap();
        let done = reqs.iter().filter(|r| cache.is_complete(r)).count();
        assert_eq!(
            done, 0,
            "the newcomer waited for {done} whole encodes of the burst"
        );
        let tasks: Vec<_> = reqs
            .iter()
            .chain([&newcomer])
            .map(|req| {
                let (cache, req) = (cache.clone(), req.clone());
                tokio::spawn(async move { cache.complete(&req).await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(cache.jobs_started(), burst as u64 + 1);
        let peak = cache.peak_encode_threads();
        assert!(
            (1..=1 + HEAD_STARTS_PER_WORKER).contains(&peak),
            "{peak} encodes held a thread at once"
        );
    }

    /// More encodes asked for at once than may be under way: the rest wait (holding nothing)
    /// and all complete.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn encodes_under_way_are_bounded() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = TranscodeCache::open(dir.path(), 1 << 30, 1).unwrap();
        let burst = OPEN_PER_WORKER + 8;
        let reqs: Vec<_> = (0..burst)
            .map(|i| request(src.path(), &format!("t{i}.wav"), 22050, 30.0, "mobile"))
            .collect();
        let tasks: Vec<_> = reqs
            .into_iter()
            .map(|req| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.complete(&req).await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(cache.jobs_started(), burst as u64);
        let peak = cache.peak_open_encodes();
        assert!(
            (1..=OPEN_PER_WORKER).contains(&peak),
            "{peak} encodes under way at once"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_segment_before_the_track_is_done() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = TranscodeCache::open(dir.path(), 1 << 30, 1).unwrap();
        // Ten minutes: far longer to encode than one segment.
        let req = request(src.path(), "long.wav", 44100, 600.0, "high");
        let first = cache.segment(&req, 0).await.unwrap();
        assert!(first.len() > 100_000);
        assert!(
            !cache.is_complete(&req),
            "segment 0 was served before the encode finished"
        );
        cache.complete(&req).await.unwrap();
        assert!(cache.is_complete(&req));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lru_eviction_and_reopen() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = request(src.path(), "a.wav", 44100, 8.0, "mobile");
        let b = request(src.path(), "b.wav", 44100, 8.0, "mobile");
        let c = request(src.path(), "c.wav", 44100, 8.0, "mobile");
        // ~8 s at 96 kbps ≈ 100 kB each: a cap of 250 kB holds two.
        let cache = TranscodeCache::open(dir.path(), 250_000, 2).unwrap();
        cache.complete(&a).await.unwrap();
        cache.complete(&b).await.unwrap();
        cache.segment(&a, 0).await.unwrap(); // a is now more recent than b
        cache.complete(&c).await.unwrap();
        assert!(cache.is_complete(&a) && cache.is_complete(&c));
        assert!(!cache.is_complete(&b), "least recently used entry evicted");
        assert!(cache.size_bytes() <= 250_000);
        // Reopening finds what is on disk; a half-written encode is removed.
        let stray = dir.path().join("x").join("v").join("high.es");
        std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
        std::fs::write(&stray, b"partial").unwrap();
        drop(cache);
        let cache = TranscodeCache::open(dir.path(), 250_000, 2).unwrap();
        assert!(cache.is_complete(&a) && cache.is_complete(&c));
        assert!(!stray.exists());
        assert_eq!(cache.jobs_started(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_stream_survives_its_eviction() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = request(src.path(), "a.wav", 44100, 8.0, "mobile");
        let b = request(src.path(), "b.wav", 44100, 8.0, "mobile");
        // Room for one ~100 kB stream: encoding b evicts a.
        let cache = TranscodeCache::open(dir.path(), 150_000, 2).unwrap();
        let (encoded, mut file) = cache.open_complete(&a).await.unwrap();
        cache.complete(&b).await.unwrap();
        assert!(
            !cache.is_complete(&a) && !encoded.path.exists(),
            "a evicted"
        );
        // The reader that opened a before the eviction still reads all of it.
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut file, &mut bytes)
            .await
            .unwrap();
        assert_eq!(bytes.len() as u64, encoded.stream_len());
        // A reader arriving after the eviction gets a fresh encode, byte for byte the same.
        let (again, _) = cache.open_complete(&a).await.unwrap();
        assert_eq!(std::fs::read(&again.path).unwrap(), bytes);
        assert_eq!(cache.jobs_started(), 3);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broken_source_fails_cleanly_and_is_retried() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = TranscodeCache::open(dir.path(), 1 << 30, 2).unwrap();
        let mut req = request(src.path(), "gone.wav", 44100, 3.0, "low");
        // Broken as the library saw it (a changed file is another failure, see below).
        let as_scanned = |req: &mut TranscodeRequest| {
            req.source_version =
                crate::library::file_version(&req.source_name, &req.source).unwrap();
        };
        std::fs::write(&req.source, b"no longer audio").unwrap();
        as_scanned(&mut req);
        let err = cache.segment(&req, 0).await.unwrap_err();
        assert!(matches!(err, CacheError::Transcode(_)), "{err}");
        assert!(
            !req.key().es_path(dir.path()).exists(),
            "no partial output left behind"
        );
        // Fixed file: the next request encodes again.
        write_wav(&req.source, 44100, 2, 3.0);
        as_scanned(&mut req);
        cache.segment(&req, 0).await.unwrap();
        assert_eq!(cache.jobs_started(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_changed_since_the_scan_is_not_encoded() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = TranscodeCache::open(dir.path(), 1 << 30, 2).unwrap();
        let req = request(src.path(), "moved.wav", 44100, 3.0, "high");
        let changes = cache.source_changes();
        let woken = changes.notified();
        write_wav(&req.source, 44100, 2, 4.0);
        let err = cache.segment(&req, 0).await.unwrap_err();
        assert!(matches!(err, CacheError::SourceChanged(_)), "{err}");
        // The library is told, and nothing is left behind.
        tokio::time::timeout(std::time::Duration::from_secs(5), woken)
            .await
            .expect("a rescan asked for");
        assert!(!req.key().es_path(dir.path()).exists());
    }

    /// A file rewritten while it is encoded: the encode is dropped at its end check, and the
    /// segments served meanwhile are not served again from memory (they came from the old file).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segments_of_an_encode_whose_source_changed_are_not_served_from_memory() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = TranscodeCache::open_with_memory(dir.path(), 1 << 30, 2, 64 << 20).unwrap();
        let req = request(src.path(), "rewritten.wav", 22050, 300.0, "high");
        cache.segment(&req, 0).await.unwrap();
        assert!(cache.inner.memo_hit(&(req.key(), 0)).is_some(), "memoised");
        write_wav(&req.source, 22050, 2, 301.0);
        let err = cache.complete(&req).await.unwrap_err();
        assert!(matches!(err, CacheError::SourceChanged(_)), "{err}");
        let again = cache.segment(&req, 0).await;
        assert!(
            matches!(again, Err(CacheError::SourceChanged(_))),
            "segment 0 of the dropped encode was served again"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn encodes_in_progress_count_against_the_cap() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = request(src.path(), "a.wav", 44100, 20.0, "low");
        let b = request(src.path(), "b.wav", 44100, 120.0, "low");
        // Room for A, or for B, not for both.
        let cap = b.expected_bytes() * 11 / 10;
        let cache = TranscodeCache::open(dir.path(), cap, 2).unwrap();
        let done = cache.complete(&a).await.unwrap();
        let (got, want) = (done.stream_len() as f64, a.expected_bytes() as f64);
        assert!(
            (got / want - 1.0).abs() < 0.1,
            "{got} bytes, expected {want}"
        );
        assert!(a.key().es_path(dir.path()).exists());
        // B's first segment comes while B is still being written: A has already made room.
        cache.segment(&b, 0).await.unwrap();
        assert!(
            !a.key().es_path(dir.path()).exists(),
            "A evicted when B started, not once B is on disk too"
        );
        cache.complete(&b).await.unwrap();
    }

    #[test]
    fn a_cache_folder_that_cannot_be_made_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("cache");
        std::fs::write(&blocker, b"a file where the folder should be").unwrap();
        let Err(err) = TranscodeCache::open(&blocker.join("sub"), 1 << 20, 1) else {
            panic!("opened a cache under a file");
        };
        assert!(
            err.to_string().contains(&*blocker.to_string_lossy()),
            "{err}"
        );
    }
}
