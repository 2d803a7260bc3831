//! The ladder the simulator plays: real segment sizes from our own packager.
//!
//! The library's tracks are encoded in process (the server's pipeline and cache, the same bytes
//! `/hls/…` serves) in the AAC rungs, the ones a master playlist offers to an ABR client, and
//! played back to back like a listening queue.

use std::path::PathBuf;

use anyhow::Context as _;
use stream_server::config::Config;
use stream_server::server;

use crate::policy::Ladder;

/// Encodes (or reuses from `data_dir`'s cache) every track of the library and returns the
/// queue's ladder. Without `library`, the demo library.
pub async fn from_library(library: Option<PathBuf>, data_dir: PathBuf) -> anyhow::Result<Ladder> {
    let config = Config {
        demo: library.is_none(),
        library,
        data_dir,
        ..Config::default()
    };
    let state = server::build_state(config).await?;
    state.scan_library().await?;
    let mut rungs: Vec<_> = state
        .streaming
        .profiles()
        .iter()
        .filter(|p| p.codec == "aac")
        .cloned()
        .collect();
    rungs.sort_by_key(|p| p.bitrate_kbps);
    anyhow::ensure!(!rungs.is_empty(), "no AAC rungs configured");
    let catalog = state.library.catalog();
    anyhow::ensure!(!catalog.tracks().is_empty(), "the library has no tracks");
    let mut sizes = vec![Vec::new(); rungs.len()];
    let mut durations = Vec::new();
    for track in catalog.tracks() {
        for (r, profile) in rungs.iter().enumerate() {
            let req = state
                .streaming
                .transcode_request(&track.id, &profile.quality_id)?;
            state.cache.complete(&req).await.with_context(|| {
                format!("encoding {} in {}", track.filename, profile.quality_id)
            })?;
            for span in req.layout.segments() {
                let body = state.cache.segment(&req, span.index).await?;
                sizes[r].push(body.len() as u64);
                if r == 0 {
                    durations.push(req.layout.frames_secs(span.frames));
                }
            }
        }
    }
    state.cache.shutdown();
    anyhow::ensure!(
        sizes.iter().all(|s| s.len() == durations.len()),
        "rungs are not segment-aligned"
    );
    Ok(Ladder {
        bitrates_kbps: rungs.iter().map(|p| f64::from(p.bitrate_kbps)).collect(),
        sizes,
        durations_s: durations,
    })
}
