//! Scanning a folder into tracks.
//!
//! A scan never fails because of one file: it returns the tracks it could read and the list of
//! problems, each naming its file. Files are probed on a few threads; a probe result is cached in
//! `<data-dir>/library-index.json` against the file's size and modification time, so a restart
//! re-reads only what changed.
//!
//! A first scan reads every byte of every file (the exact length is the sum of the packets, see
//! `probe`): about 1 GB/s from a local disk, but a large library on a network share takes many
//! minutes. So a scan reports what it has probed as it goes ([`ScanControl::on_progress`]: the
//! server lists those tracks at once), and stops between two files when asked
//! ([`ScanControl::cancel`]: shutdown does not wait for the rest), keeping what it read in the
//! index for the next start.
//!
//! A scan never removes what it could not look at. A folder that cannot be read now (EACCES, or
//! EIO from a network share) keeps the tracks the index lists under it, and is reported as a
//! problem; a library folder that lists nothing at all while the index lists tracks is what an
//! unmounted share looks like (its empty mount point), so that scan fails
//! ([`ScanError::Root`]) and the catalogue and index are kept. An empty folder with an empty
//! index is simply an empty library, and one with any file or folder left in it is scanned as
//! usual: that is how to empty a library on purpose. A probe that panics (symphonia does on
//! some broken files) skips its file only.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::probe::{probe, Probe, ProbeError};
use super::Track;

/// A file the scan skipped, or a folder it could not read, and why.
#[derive(Debug, Clone)]
pub struct ScanProblem {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ScanReport {
    pub tracks: Vec<Track>,
    pub problems: Vec<ScanProblem>,
    /// Files that changed while they were read (still being copied or recorded), for a later
    /// scan to read whole: a new one is left out of the catalogue and the index; one already
    /// indexed keeps its entry under its old version (encodes then refuse it as changed and
    /// ask for a rescan, rather than the track vanishing while it is rewritten).
    pub settling: Vec<PathBuf>,
}

/// What reading one file gave.
enum Probed {
    Track(Box<Track>),
    Problem(String),
    /// The file's size or modification time moved while it was read (or it vanished): its
    /// index entry, if it had one, under the version it had.
    Changing(Option<Box<Track>>),
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("library folder {path} is not readable: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scan stopped before its end (shutting down)")]
    Cancelled,
    /// The scan panicked outside the probe of a file (a bug): the catalogue is kept.
    #[error("the library scan crashed ({0}); the catalogue is kept")]
    Crashed(String),
}

/// Receives every track a scan has found so far.
pub type OnProgress<'a> = dyn Fn(&[Track]) + Sync + 'a;

/// What a caller may ask of a scan besides its result.
pub struct ScanControl<'a> {
    /// Set it to stop the scan between two files: it then writes what it probed to the index and
    /// returns [`ScanError::Cancelled`].
    pub cancel: &'a AtomicBool,
    /// Called with every track found so far (probed, or unchanged from the index), in no
    /// particular order, at most once per `progress_every`, while the scan runs.
    pub on_progress: Option<&'a OnProgress<'a>>,
    pub progress_every: Duration,
}

/// Bumped whenever probing changes what it records, so old index files are not trusted.
/// 2: MP3 files without a LAME tag are counted untrimmed (a bitrate estimate cut VBR files).
/// 3: MP4 edit lists applied (M4A priming and padding are not counted).
/// 4: MP3 (LAME tag) and Ogg Vorbis lengths no longer lose their gapless trims a second time.
/// 5: PCM lengths are what the bytes hold (a cut or piped WAV was rounded up to a full packet);
///    Matroska/WebM Vorbis, whose packets carry no duration, is counted by decoding.
/// 6: AAC is decoded by fdk-aac: HE-AAC recorded at the rate and channels it decodes to (not
///    its core's, which ADTS states), multichannel AAC catalogued (symphonia refused it), and
///    AAC above 65 kHz (an MP4 sample entry cannot state its rate) counted in its timescale.
/// 7: MP3 in MP4 counted as its edit list says (its encoder priming was counted).
const INDEX_FORMAT: u32 = 7;

#[derive(Serialize, Deserialize, Default)]
struct IndexFile {
    format: u32,
    entries: HashMap<String, Track>,
}

/// Stable id of a library-relative path.
pub fn track_id(filename: &str) -> String {
    hex(&Sha256::digest(filename.as_bytes())[..8])
}

/// The version of the file at `path` now (its library-relative name is `filename`): what a
/// scan would record for it. A change means the catalogue's entry no longer describes the file.
pub fn file_version(filename: &str, path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(version_of(filename, meta.len(), mtime_ns))
}

fn version_of(filename: &str, size: u64, mtime_ns: u128) -> String {
    let mut h = Sha256::new();
    h.update(filename.as_bytes());
    h.update(size.to_le_bytes());
    h.update(mtime_ns.to_le_bytes());
    hex(&h.finalize()[..6])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Scans `root` recursively. `index` is the probe cache file (read and rewritten), if any.
pub fn scan(
    root: &Path,
    index: Option<&Path>,
    max_secs: u64,
    threads: usize,
) -> Result<ScanReport, ScanError> {
    let never = AtomicBool::new(false);
    let control = ScanControl {
        cancel: &never,
        on_progress: None,
        progress_every: Duration::MAX,
    };
    scan_with(root, index, max_secs, threads, &control)
}

/// [`scan`], reporting progress and stoppable (see [`ScanControl`]).
pub fn scan_with(
    root: &Path,
    index: Option<&Path>,
    max_secs: u64,
    threads: usize,
    control: &ScanControl<'_>,
) -> Result<ScanReport, ScanError> {
    scan_probing(root, index, threads, control, &|p: &Path| {
        probe(p, max_secs)
    })
}

/// Reads one file's facts: [`probe`], or a stand-in in tests.
type ProbeFn<'a> = dyn Fn(&Path) -> Result<Probe, ProbeError> + Sync + 'a;

fn scan_probing(
    root: &Path,
    index: Option<&Path>,
    threads: usize,
    control: &ScanControl<'_>,
    probe: &ProbeFn<'_>,
) -> Result<ScanReport, ScanError> {
    let root = root.canonicalize().map_err(|source| ScanError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    let cached: IndexFile = index
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<IndexFile>(&b).ok())
        .filter(|i| i.format == INDEX_FORMAT)
        .unwrap_or_default();

    let mut report = ScanReport::default();
    let mut todo = Vec::new();
    // Linked folders are followed only when they stay inside the library: one leading out (to
    // `/`, say) is never walked, so its contents are neither probed nor even listed.
    let mut escaping = Vec::new();
    // What could not be read (library-relative; "" is the whole library): the tracks the index
    // lists there are kept, not removed.
    let mut unreadable: Vec<String> = Vec::new();
    // Whether the library folder listed anything at all: an unmounted share's mount point lists
    // nothing, and scanning it as an empty library would wipe the catalogue and the index.
    let mut listed_any = false;
    let walk = walkdir::WalkDir::new(&root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            if e.depth() == 0 || !e.path_is_symlink() || !e.file_type().is_dir() {
                return true;
            }
            let inside = e.path().canonicalize().is_ok_and(|p| p.starts_with(&root));
            if !inside {
                escaping.push(e.path().to_path_buf());
            }
            inside
        });
    for entry in walk {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                listed_any = true;
                // Without a path, an entry of some folder's listing failed and walkdir does not
                // say which folder: the whole library is then taken as unreadable.
                let path = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.clone());
                // There but not readable now (a share gone away beneath it, EACCES, EIO): its
                // files may well be there still. Gone (NotFound) or a link loop is a plain problem.
                let keep = e
                    .io_error()
                    .is_some_and(|io| io.kind() != std::io::ErrorKind::NotFound);
                let reason = if keep {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read this part of the library; keeping the tracks the last scan found there");
                    unreadable.extend(relative_name(&root, &path));
                    format!("{e} (the tracks found there before are kept)")
                } else {
                    tracing::warn!(path = %path.display(), error = %e, "skipping unreadable entry");
                    e.to_string()
                };
                report.problems.push(ScanProblem { path, reason });
                continue;
            }
        };
        if entry.depth() > 0 {
            listed_any = true;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        // Symlinks may point anywhere: only files really inside the library are served.
        let real = match entry.path().canonicalize() {
            Ok(p) if p.starts_with(&root) => p,
            Ok(_) => {
                tracing::warn!(path = %entry.path().display(), "skipping link that leads out of the library");
                report.problems.push(ScanProblem {
                    path: entry.path().to_path_buf(),
                    reason: "symbolic link leading out of the library".into(),
                });
                continue;
            }
            Err(e) => {
                report.problems.push(ScanProblem {
                    path: entry.path().to_path_buf(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let Some(filename) = relative_name(&root, entry.path()) else {
            report.problems.push(ScanProblem {
                path: entry.path().to_path_buf(),
                reason: "file name is not valid UTF-8".into(),
            });
            continue;
        };
        todo.push((filename, real));
    }
    if !listed_any && escaping.is_empty() && !cached.entries.is_empty() {
        let indexed = cached.entries.len();
        tracing::warn!(root = %root.display(), indexed, "the library folder is empty but the index lists tracks (is it mounted?): keeping the catalogue");
        return Err(ScanError::Root {
            path: root,
            source: std::io::Error::other(format!(
                "the library folder is empty but the last scan found {indexed} tracks in it: is \
                 it mounted? (the catalogue is kept; to empty the library on purpose, leave any \
                 file or folder in it)"
            )),
        });
    }
    if !unreadable.is_empty() {
        // Kept as indexed, unless the listing got as far as the file (it is then read as usual).
        let listed: HashSet<&str> = todo.iter().map(|(name, _)| name.as_str()).collect();
        for (name, t) in &cached.entries {
            if !listed.contains(name.as_str()) && unreadable.iter().any(|u| is_under(name, u)) {
                report.tracks.push(Track {
                    path: root.join(name),
                    ..t.clone()
                });
            }
        }
    }
    for path in escaping {
        tracing::warn!(path = %path.display(), "not following a folder link that leads out of the library");
        report.problems.push(ScanProblem {
            path,
            reason: "folder link leading out of the library".into(),
        });
    }

    let queue = Mutex::new(todo.into_iter());
    // Results, and when progress was last reported; the worker that adds a result reports, so
    // a report is never later than the result that makes it due.
    let found = Mutex::new((Vec::new(), Vec::new(), Vec::new(), Instant::now(), 0usize));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                if control.cancel.load(Ordering::Relaxed) {
                    break;
                }
                let Some((filename, path)) = queue.lock().next() else {
                    break;
                };
                let r = probe_one(&filename, &path, &cached, probe);
                let mut found = found.lock();
                let (tracks, problems, settling, last, reported) = &mut *found;
                match r {
                    Probed::Track(track) => tracks.push(*track),
                    Probed::Problem(reason) => {
                        tracing::warn!(path = %path.display(), %reason, "skipping file");
                        problems.push(ScanProblem { path, reason });
                    }
                    Probed::Changing(indexed) => {
                        tracing::info!(path = %path.display(), "file changed while read (still being written?); left for a later scan");
                        if let Some(track) = indexed {
                            tracks.push(*track);
                        }
                        settling.push(path);
                    }
                }
                if let Some(progress) = control.on_progress {
                    if last.elapsed() >= control.progress_every && tracks.len() > *reported {
                        progress(tracks);
                        *reported = tracks.len();
                        *last = Instant::now();
                    }
                }
            });
        }
    });
    let (tracks, problems, settling, _, _) = found.into_inner();
    report.tracks.extend(tracks);
    report.problems.extend(problems);
    report.settling = settling;
    let cancelled = control.cancel.load(Ordering::Relaxed);
    report.tracks.sort_by(|a, b| a.filename.cmp(&b.filename));
    if cancelled {
        // Keep what was read for the next start: the entries probed now, plus the old ones not
        // reached (still valid against their file's version, which the next scan checks).
        if let Some(index) = index {
            let mut entries = cached.entries;
            for t in &report.tracks {
                entries.insert(t.filename.clone(), t.clone());
            }
            write_index(
                index,
                &IndexFile {
                    format: INDEX_FORMAT,
                    entries,
                },
            );
        }
        return Err(ScanError::Cancelled);
    }
    // Rewritten only when something changed: a periodic rescan of a still library reads
    // metadata only and writes nothing.
    let same_as_index = report.tracks.len() == cached.entries.len()
        && report.tracks.iter().all(|t| {
            cached
                .entries
                .get(&t.filename)
                .is_some_and(|c| c.version == t.version)
        });
    if let Some(index) = index.filter(|_| !same_as_index) {
        let file = IndexFile {
            format: INDEX_FORMAT,
            entries: report
                .tracks
                .iter()
                .map(|t| (t.filename.clone(), t.clone()))
                .collect(),
        };
        write_index(index, &file);
    }
    Ok(report)
}

/// Replaces the index file atomically (a temporary file renamed over it).
fn write_index(index: &Path, file: &IndexFile) {
    if let Ok(bytes) = serde_json::to_vec(file) {
        let tmp = index.with_extension("json.tmp");
        if std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, index))
            .is_err()
        {
            tracing::warn!(path = %index.display(), "could not write the library index");
        }
    }
}

fn relative_name(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.iter().map(|p| p.to_str()).collect();
    Some(parts?.join("/"))
}

/// Whether the library-relative `filename` is `place` or lies under it (`""`: the library).
fn is_under(filename: &str, place: &str) -> bool {
    place.is_empty()
        || filename
            .strip_prefix(place)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The text a panic carried, if any.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Reads one file (`probe` is [`probe`] but for tests), or takes it from the index when its
/// version is the one indexed.
///
/// The version is taken before the file is read and checked again after: a file still being
/// copied into the library would otherwise be catalogued, and indexed, at the length it had
/// when read. One that moved waits for a later scan ([`Probed::Changing`]); one that happens
/// to pause while read is caught later, when an encode finds its version changed.
fn probe_one(filename: &str, path: &Path, cached: &IndexFile, probe: &ProbeFn<'_>) -> Probed {
    let indexed = cached.entries.get(filename);
    let changing = || {
        Probed::Changing(indexed.map(|t| {
            Box::new(Track {
                path: path.to_path_buf(),
                ..t.clone()
            })
        }))
    };
    let version = match file_version(filename, path) {
        Ok(v) => v,
        // Listed a moment ago, gone now: moved or renamed during the scan.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return changing(),
        Err(e) => return Probed::Problem(e.to_string()),
    };
    if let Some(t) = indexed.filter(|t| t.version == version) {
        return Probed::Track(Box::new(Track {
            path: path.to_path_buf(),
            ..t.clone()
        }));
    }
    // symphonia 0.5.5 panics on some broken MP3s (pdeljanov/Symphonia#439): that is this
    // file's problem, not the scan's. Uncaught, it ended the scan before the index was written,
    // so every later scan met the same file and ended the same way.
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| probe(path)));
    if !file_version(filename, path).is_ok_and(|now| now == version) {
        return changing();
    }
    let p = match read {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Probed::Problem(e.to_string()),
        Err(payload) => {
            return Probed::Problem(format!(
                "the decoder crashed reading this file ({})",
                panic_message(&*payload)
            ));
        }
    };
    let title = p.tags.title.clone().unwrap_or_else(|| {
        Path::new(filename).file_stem().map_or_else(
            || filename.to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    });
    Probed::Track(Box::new(Track {
        id: track_id(filename),
        filename: filename.to_string(),
        title,
        artist: p.tags.artist,
        album: p.tags.album,
        genre: p.tags.genre,
        duration_ms: (u128::from(p.samples) * 1000 / u128::from(p.sample_rate)) as u64,
        sample_rate: p.sample_rate,
        channels: p.channels,
        codec: p.codec,
        samples: p.samples,
        version,
        path: path.to_path_buf(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::testutil::write_wav;

    #[cfg(unix)]
    #[test]
    fn links_are_followed_only_inside_the_library() {
        let lib = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(lib.path().join("album")).unwrap();
        write_wav(&lib.path().join("album/a.wav"), 8000, 1, 0.5);
        write_wav(&outside.path().join("secret.wav"), 8000, 1, 0.5);
        std::fs::create_dir(outside.path().join("deep")).unwrap();
        write_wav(&outside.path().join("deep/more.wav"), 8000, 1, 0.5);
        // A folder link inside the library is followed; one leading out is not walked at all.
        std::os::unix::fs::symlink(lib.path().join("album"), lib.path().join("same")).unwrap();
        std::os::unix::fs::symlink(outside.path(), lib.path().join("out")).unwrap();
        // A link to the library's own parent would otherwise walk the library again, forever.
        std::os::unix::fs::symlink(lib.path(), lib.path().join("album/loop")).unwrap();

        let report = scan(lib.path(), None, 3600, 1).unwrap();
        let mut names: Vec<_> = report.tracks.iter().map(|t| t.filename.clone()).collect();
        names.sort();
        assert_eq!(names, ["album/a.wav", "same/a.wav"]);
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| {
                (
                    p.path
                        .strip_prefix(lib.path())
                        .unwrap_or(&p.path)
                        .to_path_buf(),
                    p.reason.clone(),
                )
            })
            .collect();
        assert!(
            problems
                .iter()
                .any(|(p, r)| p == Path::new("out") && r.contains("out of the library")),
            "{problems:?}"
        );
        assert!(
            !problems
                .iter()
                .any(|(p, _)| p.starts_with("out") && p != Path::new("out")),
            "nothing under the escaping link was even listed: {problems:?}"
        );
    }

    fn library(files: usize) -> tempfile::TempDir {
        let lib = tempfile::tempdir().unwrap();
        for i in 0..files {
            write_wav(&lib.path().join(format!("t{i}.wav")), 8000, 1, 0.5);
        }
        lib
    }

    #[test]
    fn progress_lists_the_tracks_found_so_far_and_grows_to_all() {
        let lib = library(5);
        let seen = Mutex::new(Vec::new());
        let record = |found: &[Track]| seen.lock().push(found.len());
        let never = AtomicBool::new(false);
        let control = ScanControl {
            cancel: &never,
            on_progress: Some(&record),
            progress_every: Duration::ZERO,
        };
        let report = scan_with(lib.path(), None, 3600, 1, &control).unwrap();
        assert_eq!(report.tracks.len(), 5);
        // One worker, reports due at once: one report per file, each with one more track.
        assert_eq!(seen.into_inner(), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_cancelled_scan_stops_between_files_and_keeps_what_it_read_for_the_next() {
        let lib = library(6);
        let data = tempfile::tempdir().unwrap();
        let index = data.path().join("index.json");
        let cancel = AtomicBool::new(false);
        // Stop as soon as the first track is reported.
        let stop = |_: &[Track]| cancel.store(true, Ordering::SeqCst);
        let control = ScanControl {
            cancel: &cancel,
            on_progress: Some(&stop),
            progress_every: Duration::ZERO,
        };
        assert!(matches!(
            scan_with(lib.path(), Some(&index), 3600, 1, &control),
            Err(ScanError::Cancelled)
        ));
        // One worker: it read the first file, then saw the request before the second.
        let kept: IndexFile = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
        assert_eq!(kept.entries.len(), 1);
        // The next scan finds everything, and what the stopped one read is reused as is.
        let report = scan(lib.path(), Some(&index), 3600, 1).unwrap();
        assert_eq!(report.tracks.len(), 6);
        for (name, t) in &kept.entries {
            let again = report.tracks.iter().find(|r| &r.filename == name).unwrap();
            assert_eq!(again.version, t.version);
        }
        // A scan asked to stop before it starts reads no file (its index lists none).
        let fresh = data.path().join("fresh.json");
        let stopped = AtomicBool::new(true);
        let control = ScanControl {
            cancel: &stopped,
            on_progress: None,
            progress_every: Duration::MAX,
        };
        assert!(matches!(
            scan_with(lib.path(), Some(&fresh), 3600, 2, &control),
            Err(ScanError::Cancelled)
        ));
        let none: IndexFile = serde_json::from_slice(&std::fs::read(&fresh).unwrap()).unwrap();
        assert!(none.entries.is_empty());
    }

    /// A scan whose probe appends to `grow` after reading it (a copy in progress) and removes
    /// `vanish` (a file moved away mid-scan).
    fn scan_while_copying(
        lib: &Path,
        index: &Path,
        grow: &'static str,
        vanish: Option<&'static str>,
    ) -> ScanReport {
        let never = AtomicBool::new(false);
        let control = ScanControl {
            cancel: &never,
            on_progress: None,
            progress_every: Duration::MAX,
        };
        let copying = |p: &Path| {
            let read = probe(p, 3600);
            if p.ends_with(grow) {
                let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
                std::io::Write::write_all(&mut f, &[0u8; 4096]).unwrap();
            }
            if vanish.is_some_and(|v| p.ends_with(v)) {
                std::fs::remove_file(p).unwrap();
            }
            read
        };
        scan_probing(lib, Some(index), 1, &control, &copying).unwrap()
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        let mut v: Vec<String> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_file_that_changes_while_read_is_left_for_a_later_scan() {
        let lib = library(3);
        let data = tempfile::tempdir().unwrap();
        let index = data.path().join("index.json");
        // New files written to while read, or gone: neither catalogued nor indexed at what was
        // read, and reported as settling; the still one is catalogued.
        let report = scan_while_copying(lib.path(), &index, "t0.wav", Some("t1.wav"));
        let found: Vec<&str> = report.tracks.iter().map(|t| t.filename.as_str()).collect();
        assert_eq!(found, ["t2.wav"]);
        assert_eq!(names(&report.settling), ["t0.wav", "t1.wav"]);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let kept: IndexFile = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
        assert_eq!(kept.entries.len(), 1);
        // Once it holds still, the next scan catalogues it whole, at its version now.
        let report = scan(lib.path(), Some(&index), 3600, 1).unwrap();
        assert!(report.settling.is_empty());
        let t0 = report
            .tracks
            .iter()
            .find(|t| t.filename == "t0.wav")
            .unwrap();
        assert_eq!(t0.version, file_version("t0.wav", &t0.path).unwrap());
        // A catalogued file rewritten while read keeps its entry (old version) meanwhile: the
        // track does not vanish while a tag editor or a copy rewrites it.
        let before = t0.version.clone();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&t0.path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[0u8; 16]))
            .unwrap();
        let report = scan_while_copying(lib.path(), &index, "t0.wav", None);
        assert_eq!(names(&report.settling), ["t0.wav"]);
        let t0 = report
            .tracks
            .iter()
            .find(|t| t.filename == "t0.wav")
            .unwrap();
        assert_eq!(t0.version, before);
        assert_eq!(report.tracks.len(), 2);
        // A broken file that holds still is a problem, not a settling one.
        std::fs::write(lib.path().join("t2.wav"), b"not audio at all").unwrap();
        let report = scan(lib.path(), Some(&index), 3600, 1).unwrap();
        assert!(report.settling.is_empty());
        assert_eq!(report.problems.len(), 1);
    }

    fn index_entries(index: &Path) -> usize {
        let kept: IndexFile = serde_json::from_slice(&std::fs::read(index).unwrap()).unwrap();
        kept.entries.len()
    }

    #[test]
    fn a_probe_that_panics_skips_its_file_and_the_scan_goes_on() {
        let lib = library(3);
        let data = tempfile::tempdir().unwrap();
        let index = data.path().join("index.json");
        let never = AtomicBool::new(false);
        let control = ScanControl {
            cancel: &never,
            on_progress: None,
            progress_every: Duration::MAX,
        };
        // As symphonia 0.5.5 does on some broken MP3s (pdeljanov/Symphonia#439).
        let crashing = |p: &Path| {
            if p.ends_with("t1.wav") {
                panic!("attempt to subtract with overflow");
            }
            probe(p, 3600)
        };
        let report = scan_probing(lib.path(), Some(&index), 2, &control, &crashing).unwrap();
        let found: Vec<&str> = report.tracks.iter().map(|t| t.filename.as_str()).collect();
        assert_eq!(found, ["t0.wav", "t2.wav"]);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        let problem = &report.problems[0];
        assert!(problem.path.ends_with("t1.wav"), "{problem:?}");
        assert!(
            problem
                .reason
                .starts_with("the decoder crashed reading this file"),
            "{problem:?}"
        );
        // The scan went to its end: the index holds what it read.
        assert_eq!(index_entries(&index), 2);
    }

    /// The catalogue of `lib` by file name, with versions.
    fn versions(report: &ScanReport) -> Vec<(String, String)> {
        report
            .tracks
            .iter()
            .map(|t| (t.filename.clone(), t.version.clone()))
            .collect()
    }

    #[cfg(unix)]
    #[test]
    fn the_tracks_of_a_folder_that_cannot_be_read_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let lib = library(1);
        let sub = lib.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        write_wav(&sub.join("a.wav"), 8000, 1, 0.5);
        write_wav(&sub.join("b.wav"), 8000, 1, 0.5);
        let data = tempfile::tempdir().unwrap();
        let index = data.path().join("index.json");
        let first = scan(lib.path(), Some(&index), 3600, 1).unwrap();
        assert_eq!(first.tracks.len(), 3);
        let kept_as_they_were = |report: &ScanReport| {
            assert_eq!(versions(report), versions(&first));
            assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
            assert!(
                report.problems[0].path.ends_with("sub"),
                "{:?}",
                report.problems
            );
            assert_eq!(index_entries(&index), 3);
        };
        // A folder the server may not read (EACCES). Root reads it all the same, so this part
        // runs only where the permission is enforced.
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o000)).unwrap();
        let denied = std::fs::read_dir(&sub).is_err();
        let report = scan(lib.path(), Some(&index), 3600, 1);
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        if denied {
            kept_as_they_were(&report.unwrap());
        }
        // For any user, root too: a folder whose metadata cannot be read (a link to itself in
        // its place fails with ELOOP, as a share gone away beneath it fails with EIO).
        let away = data.path().join("sub");
        std::fs::rename(&sub, &away).unwrap();
        std::os::unix::fs::symlink(&sub, &sub).unwrap();
        kept_as_they_were(&scan(lib.path(), Some(&index), 3600, 1).unwrap());
        // Readable again: the same tracks, and no problem.
        std::fs::remove_file(&sub).unwrap();
        std::fs::rename(&away, &sub).unwrap();
        let report = scan(lib.path(), Some(&index), 3600, 1).unwrap();
        assert_eq!(versions(&report), versions(&first));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[test]
    fn an_empty_library_folder_is_taken_for_an_unmounted_share_while_the_index_lists_tracks() {
        let lib = library(2);
        let data = tempfile::tempdir().unwrap();
        let index = data.path().join("index.json");
        let first = scan(lib.path(), Some(&index), 3600, 1).unwrap();
        assert_eq!(first.tracks.len(), 2);
        // The mount point of a share that dropped: nothing in it at all.
        for name in ["t0.wav", "t1.wav"] {
            std::fs::remove_file(lib.path().join(name)).unwrap();
        }
        let err = scan(lib.path(), Some(&index), 3600, 1).unwrap_err();
        assert!(
            matches!(err, ScanError::Root { .. }) && err.to_string().contains("is it mounted?"),
            "{err}"
        );
        assert_eq!(index_entries(&index), 2, "the index is kept");
        // Anything left in it (here an empty folder) makes it a library emptied on purpose.
        std::fs::create_dir(lib.path().join("later")).unwrap();
        assert!(scan(lib.path(), Some(&index), 3600, 1)
            .unwrap()
            .tracks
            .is_empty());
        assert_eq!(index_entries(&index), 0);
        // And with an empty index, an empty folder is an empty library (a first start, say).
        std::fs::remove_dir(lib.path().join("later")).unwrap();
        assert!(scan(lib.path(), Some(&index), 3600, 1)
            .unwrap()
            .tracks
            .is_empty());
    }
}
