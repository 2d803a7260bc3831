-- Playlists, their shares, likes and follows: the state behind the social events.

CREATE TABLE playlists (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX playlists_owner ON playlists (owner, updated_at);

-- One row per entry; positions are 0..n-1 without gaps (rewritten together on every edit).
CREATE TABLE playlist_entries (
    playlist_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    track_id TEXT NOT NULL,
    PRIMARY KEY (playlist_id, position)
);

CREATE TABLE playlist_shares (
    playlist_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    shared_at BIGINT NOT NULL,
    PRIMARY KEY (playlist_id, user_id)
);
CREATE INDEX playlist_shares_user ON playlist_shares (user_id);

CREATE TABLE track_likes (
    track_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    liked_at BIGINT NOT NULL,
    PRIMARY KEY (track_id, user_id)
);

CREATE TABLE follows (
    follower_id TEXT NOT NULL,
    followed_id TEXT NOT NULL,
    followed_at BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followed_id)
);
CREATE INDEX follows_followed ON follows (followed_id);
