//! What listeners keep and share: playlists (owned, shared, edited from any tab), likes and
//! follows. Stored next to analytics (the same database and migrations), so one `postgres://`
//! URL moves all of a deployment's state off the machine.
//!
//! Domain only: callers (HTTP handlers, WebSocket commands) check identity and emit events;
//! this module enforces ownership and keeps playlists consistent.

mod playlists;
mod reactions;

use std::sync::Arc;

use serde::Serialize;
use sqlx::AnyPool;

use crate::library::Library;

pub use playlists::{Edit, Playlist, PlaylistChange};

/// Most entries in one playlist, and playlists per user: bounds what one client can store.
pub const MAX_ENTRIES: usize = 10_000;
pub const MAX_PLAYLISTS_PER_USER: i64 = 1_000;
/// Longest playlist name, in characters.
pub const MAX_NAME: usize = 200;
/// Most recipients of one share.
pub const MAX_RECIPIENTS: usize = 100;
/// Most playlists shared with one user: what others can put in someone's list stays bounded,
/// as what they own is.
pub const MAX_SHARED_WITH_USER: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum SocialError {
    #[error("no playlist {0:?}")]
    NoPlaylist(String),
    #[error("only the owner of playlist {0:?} may change it")]
    NotOwner(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Storage of playlists, likes and follows.
pub struct SocialStore {
    pool: AnyPool,
}

impl SocialStore {
    /// Over the analytics database's pool (its migrations create the tables).
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }
}

/// One entry of a playlist as a client shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS, utoipa::ToSchema)]
#[ts(export)]
pub struct EntryView {
    pub track_id: String,
    pub title: String,
    pub artist: Option<String>,
    #[ts(type = "number")]
    pub duration_ms: u64,
    /// False when the track has left the library (the entry is kept).
    pub available: bool,
}

/// A playlist as a client shows it: entries with the library's titles.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS, utoipa::ToSchema)]
#[ts(export)]
pub struct PlaylistView {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub tracks: Vec<EntryView>,
    #[ts(type = "number")]
    pub updated_at: i64,
    #[ts(type = "number")]
    pub created_at: i64,
    pub shared_with: Vec<String>,
}

impl Playlist {
    pub fn view(&self, library: &Arc<Library>) -> PlaylistView {
        PlaylistView {
            id: self.id.clone(),
            name: self.name.clone(),
            owner: self.owner.clone(),
            tracks: self
                .track_ids
                .iter()
                .map(|id| match library.get(id) {
                    Some(t) => EntryView {
                        track_id: id.clone(),
                        title: t.title.clone(),
                        artist: t.artist.clone(),
                        duration_ms: t.duration_ms,
                        available: true,
                    },
                    None => EntryView {
                        track_id: id.clone(),
                        title: id.clone(),
                        artist: None,
                        duration_ms: 0,
                        available: false,
                    },
                })
                .collect(),
            updated_at: self.updated_at,
            created_at: self.created_at,
            shared_with: self.shared_with.clone(),
        }
    }
}

fn clean_name(name: &str) -> Result<String, SocialError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(SocialError::Invalid(format!(
            "a playlist name is 1 to {MAX_NAME} characters, without control characters"
        )));
    }
    Ok(name.to_string())
}
