//! The music library: a catalogue of tracks found under one folder.
//!
//! A track's id is derived from its path relative to the library root, so it is stable across
//! restarts; its `version` changes whenever the file does, and keys everything derived from the
//! file (transcodes, segment URLs), so nothing stale is ever served.

pub mod demo;
pub mod probe;
pub mod scan;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

pub use scan::{file_version, ScanProblem, ScanReport};

/// How often a scan in progress lists what it has found so far.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// One playable file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct Track {
    pub id: String,
    /// Path relative to the library root, `/`-separated.
    pub filename: String,
    pub title: String,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub genre: Option<String>,
    #[ts(type = "number")]
    pub duration_ms: u64,
    pub sample_rate: u32,
    pub channels: u16,
    pub codec: String,
    /// Exact length in samples per channel (gapless-trimmed), which every layout derives from.
    #[ts(type = "number")]
    pub samples: u64,
    /// Changes when the file changes (size, modification time).
    pub version: String,
    #[serde(skip)]
    pub path: PathBuf,
}

/// The catalogue of one scan.
#[derive(Debug, Default)]
pub struct Catalog {
    tracks: Vec<Arc<Track>>,
    by_id: HashMap<String, Arc<Track>>,
    by_filename: HashMap<String, Arc<Track>>,
}

impl Catalog {
    pub fn new(mut tracks: Vec<Track>) -> Self {
        tracks.sort_by(|a, b| {
            (&a.artist, &a.album, &a.filename).cmp(&(&b.artist, &b.album, &b.filename))
        });
        let tracks: Vec<Arc<Track>> = tracks.into_iter().map(Arc::new).collect();
        let by_id = tracks.iter().map(|t| (t.id.clone(), t.clone())).collect();
        let by_filename = tracks
            .iter()
            .map(|t| (t.filename.clone(), t.clone()))
            .collect();
        Self {
            tracks,
            by_id,
            by_filename,
        }
    }

    pub fn tracks(&self) -> &[Arc<Track>] {
        &self.tracks
    }

    pub fn get(&self, id: &str) -> Option<Arc<Track>> {
        self.by_id.get(id).cloned()
    }

    /// By library-relative path (`/`-separated, as in [`Track::filename`]).
    pub fn by_filename(&self, filename: &str) -> Option<Arc<Track>> {
        self.by_filename.get(filename).cloned()
    }

    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
}

/// The live library: the current catalogue, swapped whole when a scan finishes.
pub struct Library {
    root: PathBuf,
    /// Readers take a snapshot (`Arc`) and never block a rescan for long.
    catalog: RwLock<Arc<Catalog>>,
    ready: AtomicBool,
    /// Why the library could not be read at all, while that lasts (see
    /// [`Library::set_unavailable`]).
    unavailable: RwLock<Option<String>>,
    /// One scan at a time (the periodic one, an operator's, one a changed file triggered).
    scanning: tokio::sync::Mutex<()>,
    /// Set at shutdown: a scan in progress stops between two files.
    stopping: AtomicBool,
    /// Notified when a scan found files still changing: the owner scans again then.
    settle: Arc<tokio::sync::Notify>,
    /// Scans in a row that found files still changing (the wait before the next one doubles).
    settle_streak: AtomicU32,
}

/// How long after a scan that found files still changing the next is asked for; doubled for
/// each such scan in a row (a recorder writing into the library for an hour is re-read every
/// few minutes, not every few seconds), up to [`SETTLE_WAIT_MAX`].
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const SETTLE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(600);

/// What a new catalogue changed, by track id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CatalogChange {
    /// Tracks in the new catalogue.
    pub tracks: usize,
    pub added: usize,
    pub removed: usize,
    /// Same file name, another version (the file was replaced or edited).
    pub changed: usize,
}

/// What a rescan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScanOutcome {
    #[serde(flatten)]
    pub change: CatalogChange,
    /// Files that are not playable, and folders that could not be read (whose tracks are kept
    /// as the last scan found them): each named, with the reason, in the server's log.
    pub skipped: usize,
    /// Files that changed while they were read (still being copied or rewritten): a new one is
    /// not catalogued yet, a known one keeps its previous entry; the server scans again shortly.
    pub settling: usize,
}

impl Library {
    /// An empty library over `root`, not yet scanned.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            ready: AtomicBool::new(false),
            unavailable: RwLock::new(None),
            scanning: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
            settle: Arc::default(),
            settle_streak: AtomicU32::new(0),
        }
    }

    /// Notified some time after a scan that found files still being written (see
    /// [`ScanOutcome::settling`]): scan again then to catalogue them whole.
    pub fn settle_wanted(&self) -> Arc<tokio::sync::Notify> {
        self.settle.clone()
    }

    /// A library with a known catalogue (tests, tools).
    pub fn with_catalog(root: &Path, catalog: Catalog) -> Self {
        let lib = Self::new(root);
        lib.set_catalog(catalog);
        lib
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().clone()
    }

    /// Publishes a new catalogue; says what changed from the one it replaces.
    pub fn set_catalog(&self, catalog: Catalog) -> CatalogChange {
        metrics::gauge!("library_tracks").set(catalog.len() as f64);
        let new = Arc::new(catalog);
        let old = std::mem::replace(&mut *self.catalog.write(), new.clone());
        self.ready.store(true, Ordering::SeqCst);
        *self.unavailable.write() = None;
        let mut change = CatalogChange {
            tracks: new.len(),
            ..CatalogChange::default()
        };
        for t in new.tracks() {
            match old.get(&t.id) {
                None => change.added += 1,
                Some(o) if o.version != t.version => change.changed += 1,
                Some(_) => {}
            }
        }
        change.removed = old
            .tracks()
            .iter()
            .filter(|t| new.get(&t.id).is_none())
            .count();
        change
    }

    /// Scans the folder (on a blocking thread; one scan at a time; files unchanged since the
    /// last scan, as `index` records them, are not read again) and publishes the catalogue.
    /// Returns what changed and the number of files skipped or left to settle.
    ///
    /// The scan runs to its end and is published even if the caller stops waiting (an HTTP
    /// client that hangs up): the lock is held by the scan, not by the caller.
    pub async fn rescan(
        self: &Arc<Self>,
        index: PathBuf,
        max_secs: u64,
        threads: usize,
    ) -> Result<ScanOutcome, scan::ScanError> {
        let lib = self.clone();
        tokio::spawn(async move {
            let _one_at_a_time = lib.scanning.lock().await;
            let scanner = lib.clone();
            let report = tokio::task::spawn_blocking(move || {
                let before = scanner.catalog();
                let publish = |found: &[Track]| scanner.publish_progress(&before, found);
                let control = scan::ScanControl {
                    cancel: &scanner.stopping,
                    on_progress: Some(&publish),
                    progress_every: PROGRESS_EVERY,
                };
                scan::scan_with(&scanner.root, Some(&index), max_secs, threads, &control)
            })
            .await
            .unwrap_or_else(|e| Err(scan_failed(e)))?;
            let skipped = report.problems.len();
            let settling = report.settling.len();
            if settling == 0 {
                lib.settle_streak.store(0, Ordering::Relaxed);
            } else {
                let streak = lib.settle_streak.fetch_add(1, Ordering::Relaxed).min(16);
                let wait = SETTLE_WAIT.saturating_mul(1 << streak).min(SETTLE_WAIT_MAX);
                let settle = lib.settle.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    settle.notify_one();
                });
            }
            let change = lib.set_catalog(Catalog::new(report.tracks));
            tracing::info!(
                tracks = change.tracks,
                added = change.added,
                removed = change.removed,
                changed = change.changed,
                skipped,
                settling,
                root = %lib.root.display(),
                "library scanned"
            );
            Ok(ScanOutcome {
                change,
                skipped,
                settling,
            })
        })
        .await
        .unwrap_or_else(|e| Err(scan_failed(e)))
    }

    /// Lists the tracks a scan in progress has found that `before` (the catalogue when it
    /// started) lacks or has in another version, beside `before`'s: tracks appear as they are
    /// read, none disappears until the scan ends (removals are known only then), and readiness
    /// (`/healthz`) still waits for the end of the first scan.
    fn publish_progress(&self, before: &Catalog, found: &[Track]) {
        let news: Vec<&Track> = found
            .iter()
            .filter(|t| before.get(&t.id).is_none_or(|o| o.version != t.version))
            .collect();
        if news.is_empty() {
            return;
        }
        let mut tracks: HashMap<&str, Track> = before
            .tracks()
            .iter()
            .map(|t| (t.id.as_str(), (**t).clone()))
            .collect();
        for t in news {
            tracks.insert(&t.id, t.clone());
        }
        let catalog = Arc::new(Catalog::new(tracks.into_values().collect()));
        metrics::gauge!("library_tracks").set(catalog.len() as f64);
        *self.catalog.write() = catalog;
    }

    /// Asks a scan in progress to stop between two files (at shutdown; it keeps what it read in
    /// the index for the next start) and any later one not to start reading.
    pub fn stop_scans(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// The first scan could not read the library at all (its folder missing, a share not
    /// mounted): the server serves on with an empty catalogue, and until a scan succeeds a
    /// request for a track it does not know is "try again" (the track may well be on the
    /// missing share), not "no such track".
    pub fn set_unavailable(&self, reason: String) {
        // The reason first: a lookup in between must never see "ready, no such track".
        *self.unavailable.write() = Some(reason);
        *self.catalog.write() = Arc::new(Catalog::default());
        metrics::gauge!("library_tracks").set(0.0);
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Why the library cannot be read, while it cannot (see [`Self::set_unavailable`]).
    pub fn unavailable(&self) -> Option<String> {
        self.unavailable.read().clone()
    }

    /// Whether a first scan has completed.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Track>> {
        self.catalog.read().get(id)
    }
}

/// A scan task that did not finish: cancelled with the runtime (shutting down), or panicked (a
/// bug; a probe's panic is caught per file). An error either way, never a panic passed on: the
/// caller (the rescan loop above all) goes on with the catalogue it has.
fn scan_failed(e: tokio::task::JoinError) -> scan::ScanError {
    match e.try_into_panic() {
        Ok(payload) => {
            let reason = scan::panic_message(&*payload);
            tracing::error!(%reason, "the library scan crashed; keeping the current catalogue");
            scan::ScanError::Crashed(reason)
        }
        Err(_) => scan::ScanError::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(name: &str, version: &str) -> Track {
        Track {
            id: scan::track_id(name),
            filename: name.into(),
            title: name.into(),
            artist: None,
            album: None,
            genre: None,
            duration_ms: 1000,
            sample_rate: 8000,
            channels: 1,
            codec: "pcm".into(),
            samples: 8000,
            version: version.into(),
            path: PathBuf::from(name),
        }
    }

    #[test]
    fn a_scan_in_progress_adds_and_updates_tracks_but_removes_none_and_is_not_ready() {
        let lib = Library::new(Path::new("/music"));
        *lib.catalog.write() = Arc::new(Catalog::new(vec![track("a", "1"), track("b", "1")]));
        let before = lib.catalog();
        // So far the scan has seen `a` changed and `c` new; `b` not yet (it may be gone).
        lib.publish_progress(&before, &[track("a", "2"), track("c", "1")]);
        let now = lib.catalog();
        let versions: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| now.by_filename(n).map(|t| t.version.clone()))
            .collect();
        assert_eq!(
            versions,
            [Some("2".into()), Some("1".into()), Some("1".into())]
        );
        assert!(
            !lib.is_ready(),
            "readiness waits for the end of the first scan"
        );
        // Nothing new: the catalogue is left as it is (the same Arc).
        lib.publish_progress(&now, &[track("a", "2")]);
        assert!(Arc::ptr_eq(&now, &lib.catalog()));
    }
}
