//! Playlists: create, rename, delete, add, remove, move, share.
//!
//! Every edit runs in one transaction that first bumps the playlist's `updated_at` *with the
//! owner in the condition*: that statement both checks ownership and takes the write lock
//! (SQLite) or the row lock (PostgreSQL) before the entries are read, so two tabs editing at once
//! are serialised and neither edit is lost. Positions stay 0..n-1: an insertion or removal
//! shifts the entries after it in two set-based statements; a move rewrites the span it
//! crosses.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::{
    clean_name, SocialError, SocialStore, MAX_ENTRIES, MAX_PLAYLISTS_PER_USER, MAX_RECIPIENTS,
    MAX_SHARED_WITH_USER,
};
use crate::analytics::now_ms;
use crate::auth::valid_user_id;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Playlist {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub track_ids: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Users it is shared with (they see it and its changes; only the owner edits).
    pub shared_with: Vec<String>,
}

impl Playlist {
    /// Everyone who sees this playlist: the owner and the users it is shared with.
    pub fn audience(&self) -> Vec<String> {
        let mut v = self.shared_with.clone();
        v.push(self.owner.clone());
        v.sort();
        v.dedup();
        v
    }
}

/// What an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Created,
    Renamed,
    Deleted,
    Added,
    Removed,
    Moved,
}

/// A playlist after an edit, and the edit.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaylistChange {
    pub playlist: Playlist,
    pub edit: Edit,
    pub track_id: Option<String>,
    pub position: Option<usize>,
}

impl SocialStore {
    /// The user's playlists and those shared with them, most recently changed first.
    pub async fn playlists_for(&self, user: &str) -> Result<Vec<Playlist>, SocialError> {
        // Three set-based reads whatever the number of playlists (not one round per playlist),
        // from one snapshot so that names, entries and shares are of the same moment.
        let mut tx = snapshot(&self.pool).await?;
        const VISIBLE: &str = "SELECT id FROM playlists WHERE owner = $1 \
             UNION SELECT playlist_id FROM playlist_shares WHERE user_id = $1";
        let mut lists: Vec<Playlist> = sqlx::query(&format!(
            "SELECT id, owner, name, created_at, updated_at FROM playlists WHERE id IN ({VISIBLE})"
        ))
        .bind(user)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| Playlist {
            id: row.get(0),
            owner: row.get(1),
            name: row.get(2),
            created_at: row.get(3),
            updated_at: row.get(4),
            track_ids: Vec::new(),
            shared_with: Vec::new(),
        })
        .collect();
        let index: HashMap<String, usize> = lists
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        let entries = sqlx::query(&format!(
            "SELECT playlist_id, track_id FROM playlist_entries WHERE playlist_id IN ({VISIBLE}) \
             ORDER BY playlist_id, position"
        ))
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        for r in &entries {
            if let Some(&i) = index.get(&r.get::<String, _>(0)) {
                lists[i].track_ids.push(r.get(1));
            }
        }
        let shares = sqlx::query(&format!(
            "SELECT playlist_id, user_id FROM playlist_shares WHERE playlist_id IN ({VISIBLE}) \
             ORDER BY playlist_id, user_id"
        ))
        .bind(user)
        .fetch_all(&mut *tx)
        .await?;
        for r in &shares {
            if let Some(&i) = index.get(&r.get::<String, _>(0)) {
                lists[i].shared_with.push(r.get(1));
            }
        }
        tx.commit().await?;
        lists.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
        Ok(lists)
    }

    /// A playlist the user may see (owner or shared with); `NoPlaylist` otherwise, so that
    /// others' playlists cannot even be probed for existence.
    pub async fn playlist(&self, user: &str, id: &str) -> Result<Playlist, SocialError> {
        match self.load(id).await? {
            Some(p) if p.owner == user || p.shared_with.iter().any(|u| u == user) => Ok(p),
            _ => Err(SocialError::NoPlaylist(id.to_string())),
        }
    }

    pub async fn create_playlist(
        &self,
        user: &str,
        name: &str,
    ) -> Result<PlaylistChange, SocialError> {
        let name = clean_name(name)?;
        let owned: i64 = sqlx::query("SELECT COUNT(*) FROM playlists WHERE owner = $1")
            .bind(user)
            .fetch_one(&self.pool)
            .await?
            .get(0);
        if owned >= MAX_PLAYLISTS_PER_USER {
            return Err(SocialError::Invalid(format!(
                "at most {MAX_PLAYLISTS_PER_USER} playlists per user"
            )));
        }
        let id = Uuid::new_v4().to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO playlists (id, owner, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&id)
        .bind(user)
        .bind(&name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(PlaylistChange {
            playlist: Playlist {
                id,
                owner: user.to_string(),
                name,
                track_ids: Vec::new(),
                created_at: now,
                updated_at: now,
                shared_with: Vec::new(),
            },
            edit: Edit::Created,
            track_id: None,
            position: None,
        })
    }

    pub async fn rename_playlist(
        &self,
        user: &str,
        id: &str,
        name: &str,
    ) -> Result<PlaylistChange, SocialError> {
        let name = clean_name(name)?;
        let mut tx = self.lock_owned(user, id).await?;
        sqlx::query("UPDATE playlists SET name = $1 WHERE id = $2")
            .bind(&name)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.changed(id, Edit::Renamed, None, None).await
    }

    /// Deletes a playlist; the change carries it as it was (for its audience).
    pub async fn delete_playlist(
        &self,
        user: &str,
        id: &str,
    ) -> Result<PlaylistChange, SocialError> {
        let before = self.playlist(user, id).await?;
        let mut tx = self.lock_owned(user, id).await?;
        for sql in [
            "DELETE FROM playlist_entries WHERE playlist_id = $1",
            "DELETE FROM playlist_shares WHERE playlist_id = $1",
            "DELETE FROM playlists WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(PlaylistChange {
            playlist: before,
            edit: Edit::Deleted,
            track_id: None,
            position: None,
        })
    }

    /// Inserts `track_id` at `position` (clamped to the end; `None` appends).
    pub async fn add_track(
        &self,
        user: &str,
        id: &str,
        track_id: &str,
        position: Option<usize>,
    ) -> Result<PlaylistChange, SocialError> {
        let mut tx = self.lock_owned(user, id).await?;
        let mut tracks = entries(&mut tx, id).await?;
        if tracks.len() >= MAX_ENTRIES {
            return Err(SocialError::Invalid(format!(
                "a playlist holds at most {MAX_ENTRIES} tracks"
            )));
        }
        let at = position.unwrap_or(tracks.len()).min(tracks.len());
        shift(&mut tx, id, at, 1).await?;
        insert_entry(&mut tx, id, at, track_id).await?;
        tracks.insert(at, track_id.to_string());
        tx.commit().await?;
        self.changed(id, Edit::Added, Some(track_id.to_string()), Some(at))
            .await
    }

    /// Removes the entry at `position`.
    pub async fn remove_at(
        &self,
        user: &str,
        id: &str,
        position: usize,
    ) -> Result<PlaylistChange, SocialError> {
        let mut tx = self.lock_owned(user, id).await?;
        let mut tracks = entries(&mut tx, id).await?;
        if position >= tracks.len() {
            return Err(SocialError::Invalid(format!(
                "no entry at position {position} (the playlist has {})",
                tracks.len()
            )));
        }
        let removed = tracks.remove(position);
        delete_entry(&mut tx, id, position).await?;
        shift(&mut tx, id, position + 1, -1).await?;
        tx.commit().await?;
        self.changed(id, Edit::Removed, Some(removed), Some(position))
            .await
    }

    /// Removes the first entry of `track_id`.
    pub async fn remove_track(
        &self,
        user: &str,
        id: &str,
        track_id: &str,
    ) -> Result<PlaylistChange, SocialError> {
        let mut tx = self.lock_owned(user, id).await?;
        let mut tracks = entries(&mut tx, id).await?;
        let Some(position) = tracks.iter().position(|t| t == track_id) else {
            return Err(SocialError::Invalid(format!(
                "track {track_id:?} is not in this playlist"
            )));
        };
        tracks.remove(position);
        delete_entry(&mut tx, id, position).await?;
        shift(&mut tx, id, position + 1, -1).await?;
        tx.commit().await?;
        self.changed(
            id,
            Edit::Removed,
            Some(track_id.to_string()),
            Some(position),
        )
        .await
    }

    /// Moves the entry at `from` to `to`.
    pub async fn move_track(
        &self,
        user: &str,
        id: &str,
        from: usize,
        to: usize,
    ) -> Result<PlaylistChange, SocialError> {
        let mut tx = self.lock_owned(user, id).await?;
        let mut tracks = entries(&mut tx, id).await?;
        if from >= tracks.len() || to >= tracks.len() {
            return Err(SocialError::Invalid(format!(
                "positions must be below {}",
                tracks.len()
            )));
        }
        let t = tracks.remove(from);
        tracks.insert(to, t.clone());
        rewrite_range(&mut tx, id, &tracks, from.min(to), from.max(to)).await?;
        tx.commit().await?;
        self.changed(id, Edit::Moved, Some(t), Some(to)).await
    }

    /// Shares a playlist with more users (the owner only); returns the playlist and the users
    /// newly added.
    pub async fn share_playlist(
        &self,
        user: &str,
        id: &str,
        to_users: &[String],
    ) -> Result<(Playlist, Vec<String>), SocialError> {
        let to = recipients(user, to_users)?;
        let mut tx = self.lock_owned(user, id).await?;
        let already: i64 =
            sqlx::query("SELECT COUNT(*) FROM playlist_shares WHERE playlist_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
        if already as usize + to.len() > MAX_RECIPIENTS {
            return Err(SocialError::Invalid(format!(
                "a playlist is shared with at most {MAX_RECIPIENTS} users"
            )));
        }
        for u in &to {
            let with: i64 = sqlx::query(
                "SELECT COUNT(*) FROM playlist_shares WHERE user_id = $1 AND playlist_id <> $2",
            )
            .bind(u)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            if with >= MAX_SHARED_WITH_USER {
                return Err(SocialError::Invalid(format!(
                    "{u:?} already has {MAX_SHARED_WITH_USER} playlists shared with them"
                )));
            }
        }
        let now = now_ms();
        let mut added = Vec::new();
        for u in &to {
            let done = sqlx::query(
                "INSERT INTO playlist_shares (playlist_id, user_id, shared_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (playlist_id, user_id) DO NOTHING",
            )
            .bind(id)
            .bind(u)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done > 0 {
                added.push(u.clone());
            }
        }
        tx.commit().await?;
        let p = self
            .load(id)
            .await?
            .ok_or_else(|| SocialError::NoPlaylist(id.to_string()))?;
        Ok((p, added))
    }

    /// Starts an edit: checks that `user` owns `id` and locks the playlist.
    async fn lock_owned(
        &self,
        user: &str,
        id: &str,
    ) -> Result<Transaction<'static, Any>, SocialError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE playlists SET updated_at = $1 WHERE id = $2 AND owner = $3")
            .bind(now_ms())
            .bind(id)
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            drop(tx);
            // Someone who sees it (a share) learns they may not edit it; others learn nothing.
            return Err(match self.playlist(user, id).await {
                Ok(_) => SocialError::NotOwner(id.to_string()),
                Err(e) => e,
            });
        }
        Ok(tx)
    }

    async fn changed(
        &self,
        id: &str,
        edit: Edit,
        track_id: Option<String>,
        position: Option<usize>,
    ) -> Result<PlaylistChange, SocialError> {
        let playlist = self
            .load(id)
            .await?
            .ok_or_else(|| SocialError::NoPlaylist(id.to_string()))?;
        Ok(PlaylistChange {
            playlist,
            edit,
            track_id,
            position,
        })
    }

    async fn load(&self, id: &str) -> Result<Option<Playlist>, SocialError> {
        let mut tx = snapshot(&self.pool).await?;
        let Some(row) = sqlx::query(
            "SELECT id, owner, name, created_at, updated_at FROM playlists WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let track_ids = sqlx::query(
            "SELECT track_id FROM playlist_entries WHERE playlist_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        let shared_with = sqlx::query(
            "SELECT user_id FROM playlist_shares WHERE playlist_id = $1 ORDER BY user_id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        tx.commit().await?;
        Ok(Some(Playlist {
            id: row.get(0),
            owner: row.get(1),
            name: row.get(2),
            created_at: row.get(3),
            updated_at: row.get(4),
            track_ids,
            shared_with,
        }))
    }
}

/// A read-only transaction whose statements all see the database at one moment: SQLite's
/// deferred transaction keeps the snapshot of its first read (WAL); PostgreSQL's default, read
/// committed, gives each statement its own, so ask for repeatable read there.
async fn snapshot(pool: &sqlx::AnyPool) -> Result<Transaction<'static, Any>, SocialError> {
    let mut tx = pool.begin().await?;
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

async fn entries(tx: &mut Transaction<'static, Any>, id: &str) -> Result<Vec<String>, SocialError> {
    Ok(sqlx::query(
        "SELECT track_id FROM playlist_entries WHERE playlist_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect())
}

/// Moves every entry at `from` or after by `by` positions (±1) in two set-based statements:
/// first to distinct negative positions, then back, so the primary key never clashes midway.
async fn shift(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    from: usize,
    by: i64,
) -> Result<(), SocialError> {
    sqlx::query(
        "UPDATE playlist_entries SET position = -(position + $3) - 1 \
         WHERE playlist_id = $1 AND position >= $2",
    )
    .bind(id)
    .bind(from as i64)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE playlist_entries SET position = -position - 1 WHERE playlist_id = $1 AND position < 0",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_entry(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    position: usize,
    track_id: &str,
) -> Result<(), SocialError> {
    sqlx::query(
        "INSERT INTO playlist_entries (playlist_id, position, track_id) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(position as i64)
    .bind(track_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn delete_entry(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    position: usize,
) -> Result<(), SocialError> {
    sqlx::query("DELETE FROM playlist_entries WHERE playlist_id = $1 AND position = $2")
        .bind(id)
        .bind(position as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Rewrites the entries at positions `lo..=hi` (a move changes nothing outside them).
async fn rewrite_range(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    tracks: &[String],
    lo: usize,
    hi: usize,
) -> Result<(), SocialError> {
    sqlx::query(
        "DELETE FROM playlist_entries WHERE playlist_id = $1 AND position >= $2 AND position <= $3",
    )
    .bind(id)
    .bind(lo as i64)
    .bind(hi as i64)
    .execute(&mut **tx)
    .await?;
    for (i, t) in tracks.iter().enumerate().take(hi + 1).skip(lo) {
        insert_entry(tx, id, i, t).await?;
    }
    Ok(())
}

/// Valid, distinct recipients other than the sender.
pub(super) fn recipients(from: &str, to: &[String]) -> Result<Vec<String>, SocialError> {
    let mut v: Vec<String> = to.iter().map(|u| u.trim().to_string()).collect();
    if let Some(bad) = v.iter().find(|u| !valid_user_id(u)) {
        return Err(SocialError::Invalid(format!("invalid user id {bad:?}")));
    }
    v.retain(|u| u != from);
    v.sort();
    v.dedup();
    if v.is_empty() || v.len() > MAX_RECIPIENTS {
        return Err(SocialError::Invalid(format!(
            "share with 1 to {MAX_RECIPIENTS} other users"
        )));
    }
    Ok(v)
}
