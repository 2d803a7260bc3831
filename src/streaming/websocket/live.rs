//! `LiveStats`: who is listening to what right now, from the hub's playback states and the
//! streaming sessions with recent reports.

use std::collections::HashMap;

use super::protocol::{LiveTrackStats, WebSocketEvent};
use crate::library::Library;

/// How many tracks `LiveStats` lists.
pub const TOP_TRACKS: usize = 5;

/// One listener now: a known user, or an anonymous streaming session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listening {
    pub user_id: Option<String>,
    pub track_id: String,
}

/// Builds the event. A user counts once whatever the sources (the web player both sends
/// `Play` and runs a streaming session); the first source named wins.
pub fn live_stats(
    listening: &[Listening],
    library: Option<&Library>,
    server_load: f32,
) -> WebSocketEvent {
    let mut seen_users = std::collections::HashSet::new();
    let mut per_track: HashMap<&str, u32> = HashMap::new();
    let mut listeners = 0u32;
    for l in listening {
        if let Some(u) = &l.user_id {
            if !seen_users.insert(u.as_str()) {
                continue;
            }
        }
        listeners += 1;
        *per_track.entry(l.track_id.as_str()).or_default() += 1;
    }
    let mut top: Vec<(&str, u32)> = per_track.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top_tracks = top
        .into_iter()
        .take(TOP_TRACKS)
        .map(|(id, n)| {
            let track = library.and_then(|l| l.get(id));
            LiveTrackStats {
                track_id: id.to_string(),
                title: track
                    .as_ref()
                    .map_or_else(|| id.to_string(), |t| t.title.clone()),
                artist: track
                    .as_ref()
                    .and_then(|t| t.artist.clone())
                    .unwrap_or_default(),
                current_listeners: n,
            }
        })
        .collect();
    WebSocketEvent::LiveStats {
        concurrent_listeners: listeners,
        top_tracks,
        server_load: if server_load.is_finite() {
            server_load.max(0.0)
        } else {
            0.0
        },
    }
}

/// The 1-minute load average per core (Linux `/proc/loadavg`); 0 where unknown.
pub fn server_load() -> f32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f32;
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f32>().ok())
        .map_or(0.0, |l| l / cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_count_once_and_tracks_rank() {
        let l = |u: Option<&str>, t: &str| Listening {
            user_id: u.map(str::to_string),
            track_id: t.to_string(),
        };
        let ev = live_stats(
            &[
                l(Some("ann"), "a"),
                l(Some("ann"), "a"),
                l(Some("bob"), "b"),
                l(None, "b"),
                l(None, "b"),
                l(Some("cid"), "c"),
            ],
            None,
            0.5,
        );
        let WebSocketEvent::LiveStats {
            concurrent_listeners,
            top_tracks,
            server_load,
        } = ev
        else {
            panic!()
        };
        assert_eq!(concurrent_listeners, 5);
        let ranked: Vec<(&str, u32)> = top_tracks
            .iter()
            .map(|t| (t.track_id.as_str(), t.current_listeners))
            .collect();
        assert_eq!(ranked, [("b", 3), ("a", 1), ("c", 1)]);
        assert_eq!(server_load, 0.5);
        assert!(server_load_is_sane(super::server_load()));
    }

    fn server_load_is_sane(l: f32) -> bool {
        l.is_finite() && l >= 0.0
    }
}
