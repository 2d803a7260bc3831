-- Daily roll-ups for the reports that scan many sessions (top tracks, QoE summaries). A
-- session counts on the UTC day it started; the writer keeps these in step with play_sessions.

CREATE TABLE track_daily (
    day BIGINT NOT NULL,
    track_id TEXT NOT NULL,
    plays BIGINT NOT NULL,
    listening_ms BIGINT NOT NULL,
    PRIMARY KEY (day, track_id)
);

CREATE TABLE qoe_daily (
    day BIGINT NOT NULL,
    platform TEXT NOT NULL,
    connection_type TEXT NOT NULL,
    sessions BIGINT NOT NULL,
    startup_sum BIGINT NOT NULL,
    startup_n BIGINT NOT NULL,
    rebuffer_ms BIGINT NOT NULL,
    played_ms BIGINT NOT NULL,
    bitrate_kbps_ms DOUBLE PRECISION NOT NULL,
    switches BIGINT NOT NULL,
    PRIMARY KEY (day, platform, connection_type)
);

INSERT INTO track_daily (day, track_id, plays, listening_ms)
SELECT started_at / 86400000, track_id, COUNT(*), SUM(played_ms)
FROM play_sessions GROUP BY started_at / 86400000, track_id;

INSERT INTO qoe_daily (day, platform, connection_type, sessions, startup_sum, startup_n, rebuffer_ms, played_ms, bitrate_kbps_ms, switches)
SELECT started_at / 86400000, platform, COALESCE(connection_type, 'Unknown'), COUNT(*),
       COALESCE(SUM(startup_ms), 0), COUNT(startup_ms), SUM(rebuffer_ms), SUM(played_ms),
       SUM(bitrate_kbps_ms), SUM(quality_switches)
FROM play_sessions GROUP BY started_at / 86400000, platform, COALESCE(connection_type, 'Unknown');
