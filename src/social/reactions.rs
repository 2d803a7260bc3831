//! Likes and follows: idempotent (liking twice counts once), with the totals events carry.

use sqlx::Row;

use super::playlists::recipients;
use super::{SocialError, SocialStore};
use crate::analytics::now_ms;

impl SocialStore {
    /// Records that `user` likes `track_id`; returns whether it is new and the track's total.
    pub async fn like(&self, user: &str, track_id: &str) -> Result<(bool, u64), SocialError> {
        let new = sqlx::query(
            "INSERT INTO track_likes (track_id, user_id, liked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (track_id, user_id) DO NOTHING",
        )
        .bind(track_id)
        .bind(user)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0;
        Ok((new, self.likes(track_id).await?))
    }

    pub async fn likes(&self, track_id: &str) -> Result<u64, SocialError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM track_likes WHERE track_id = $1")
            .bind(track_id)
            .fetch_one(&self.pool)
            .await?
            .get(0);
        Ok(n.max(0) as u64)
    }

    /// Records that `follower` follows `followed`; returns whether it is new.
    pub async fn follow(&self, follower: &str, followed: &str) -> Result<bool, SocialError> {
        let followed = recipients(follower, &[followed.to_string()])
            .map_err(|_| {
                SocialError::Invalid("you cannot follow yourself or an invalid user id".into())
            })?
            .remove(0);
        Ok(sqlx::query(
            "INSERT INTO follows (follower_id, followed_id, followed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (follower_id, followed_id) DO NOTHING",
        )
        .bind(follower)
        .bind(&followed)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// Who `user` follows.
    pub async fn following(&self, user: &str) -> Result<Vec<String>, SocialError> {
        Ok(sqlx::query(
            "SELECT followed_id FROM follows WHERE follower_id = $1 ORDER BY followed_id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect())
    }

    /// Checks share recipients (distinct, valid, not the sender).
    pub fn share_recipients(&self, from: &str, to: &[String]) -> Result<Vec<String>, SocialError> {
        recipients(from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, SocialStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("s.db").display());
        let engine = crate::analytics::AnalyticsEngine::new(
            &url,
            std::sync::Arc::new(crate::config::Config::default()),
        )
        .await
        .unwrap();
        let s = SocialStore::new(engine.pool().clone());
        (dir, s)
    }

    #[tokio::test]
    async fn playlists_keep_order_and_owners() {
        let (_d, s) = store().await;
        let p = s
            .create_playlist("ann", "Road trip")
            .await
            .unwrap()
            .playlist;
        for t in ["a", "b", "c"] {
            s.add_track("ann", &p.id, t, None).await.unwrap();
        }
        let c = s.add_track("ann", &p.id, "x", Some(1)).await.unwrap();
        assert_eq!(c.playlist.track_ids, ["a", "x", "b", "c"]);
        assert_eq!(c.position, Some(1));
        let c = s.move_track("ann", &p.id, 3, 0).await.unwrap();
        assert_eq!(c.playlist.track_ids, ["c", "a", "x", "b"]);
        let c = s.remove_at("ann", &p.id, 2).await.unwrap();
        assert_eq!(
            (c.playlist.track_ids.len(), c.track_id.as_deref()),
            (3, Some("x"))
        );
        let c = s.remove_track("ann", &p.id, "a").await.unwrap();
        assert_eq!(c.playlist.track_ids, ["c", "b"]);
        assert!(s.remove_at("ann", &p.id, 9).await.is_err());
        assert!(s.move_track("ann", &p.id, 0, 5).await.is_err());

        // Others neither see nor edit; a share lets them see, not edit.
        assert!(matches!(
            s.playlist("bob", &p.id).await,
            Err(SocialError::NoPlaylist(_))
        ));
        assert!(matches!(
            s.add_track("bob", &p.id, "z", None).await,
            Err(SocialError::NoPlaylist(_))
        ));
        let (shared, added) = s
            .share_playlist("ann", &p.id, &["bob".into(), "bob".into(), "ann".into()])
            .await
            .unwrap();
        assert_eq!(
            (shared.shared_with.clone(), added),
            (vec!["bob".to_string()], vec!["bob".to_string()])
        );
        assert_eq!(shared.audience(), ["ann", "bob"]);
        assert_eq!(
            s.playlist("bob", &p.id).await.unwrap().track_ids,
            ["c", "b"]
        );
        assert!(matches!(
            s.add_track("bob", &p.id, "z", None).await,
            Err(SocialError::NotOwner(_))
        ));
        assert_eq!(s.playlists_for("bob").await.unwrap().len(), 1);
        assert!(s.create_playlist("ann", "  ").await.is_err());
        assert!(s.create_playlist("ann", &"x".repeat(201)).await.is_err());
        s.rename_playlist("ann", &p.id, "Night drive")
            .await
            .unwrap();
        let gone = s.delete_playlist("ann", &p.id).await.unwrap();
        assert_eq!(gone.playlist.name, "Night drive");
        assert!(s.playlists_for("bob").await.unwrap().is_empty());
        assert!(s.playlists_for("ann").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn concurrent_edits_lose_nothing() {
        let (_d, s) = store().await;
        let s = std::sync::Arc::new(s);
        let p = s.create_playlist("ann", "All").await.unwrap().playlist;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let s = s.clone();
            let id = p.id.clone();
            tasks.push(tokio::spawn(async move {
                s.add_track("ann", &id, &format!("t{i}"), Some(0)).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let mut got = s.playlist("ann", &p.id).await.unwrap().track_ids;
        got.sort();
        let mut want: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn likes_and_follows_are_idempotent() {
        let (_d, s) = store().await;
        assert_eq!(s.like("ann", "t1").await.unwrap(), (true, 1));
        assert_eq!(s.like("ann", "t1").await.unwrap(), (false, 1));
        assert_eq!(s.like("bob", "t1").await.unwrap(), (true, 2));
        assert!(s.follow("ann", "bob").await.unwrap());
        assert!(!s.follow("ann", "bob").await.unwrap());
        assert!(s.follow("ann", "ann").await.is_err());
        assert_eq!(s.following("ann").await.unwrap(), ["bob"]);
    }
}
