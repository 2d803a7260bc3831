-- Portable SQL: the same schema runs on SQLite and PostgreSQL (sqlx `Any`).
-- Times are Unix milliseconds (BIGINT); ids are text (UUIDs).

CREATE TABLE play_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT,
    track_id TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    referrer TEXT,
    platform TEXT NOT NULL,
    initial_quality TEXT NOT NULL,
    current_quality TEXT NOT NULL,
    connection_type TEXT,
    track_duration_ms BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    ended_at BIGINT,
    position_ms BIGINT NOT NULL DEFAULT 0,
    max_position_ms BIGINT NOT NULL DEFAULT 0,
    played_ms BIGINT NOT NULL DEFAULT 0,
    startup_ms BIGINT,
    buffer_health_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
    buffer_health_samples BIGINT NOT NULL DEFAULT 0,
    rebuffer_count BIGINT NOT NULL DEFAULT 0,
    rebuffer_ms BIGINT NOT NULL DEFAULT 0,
    quality_switches BIGINT NOT NULL DEFAULT 0,
    -- Σ bitrate_kbps × played_ms, for the time-weighted average bitrate.
    bitrate_kbps_ms DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX play_sessions_started ON play_sessions (started_at);
CREATE INDEX play_sessions_user ON play_sessions (user_id, started_at);
CREATE INDEX play_sessions_track ON play_sessions (track_id, started_at);

CREATE TABLE progress_events (
    session_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    position_ms BIGINT NOT NULL,
    buffer_health DOUBLE PRECISION
);
CREATE INDEX progress_events_session ON progress_events (session_id, at);

CREATE TABLE quality_switches (
    session_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    from_quality TEXT NOT NULL,
    to_quality TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX quality_switches_session ON quality_switches (session_id);
CREATE INDEX quality_switches_at ON quality_switches (at);

CREATE TABLE rebuffer_events (
    session_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX rebuffer_events_session ON rebuffer_events (session_id);

CREATE TABLE performance_reports (
    session_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    buffer_health DOUBLE PRECISION NOT NULL,
    download_kbps BIGINT NOT NULL,
    packet_loss DOUBLE PRECISION NOT NULL,
    latency_ms BIGINT NOT NULL,
    rebuffer_count BIGINT NOT NULL,
    rebuffer_ms BIGINT NOT NULL,
    quality_switches BIGINT NOT NULL
);
CREATE INDEX performance_reports_session ON performance_reports (session_id, at);

CREATE TABLE social_events (
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    detail TEXT
);
CREATE INDEX social_events_user ON social_events (user_id);
CREATE INDEX social_events_target ON social_events (target_type, target_id);

CREATE TABLE playlist_events (
    playlist_id TEXT NOT NULL,
    user_id TEXT,
    action TEXT NOT NULL,
    track_id TEXT,
    position BIGINT,
    at BIGINT NOT NULL
);
CREATE INDEX playlist_events_user ON playlist_events (user_id);
