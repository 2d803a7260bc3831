-- All-time totals per track: long windows are answered as totals minus what came before them.

CREATE TABLE track_totals (
    track_id TEXT PRIMARY KEY,
    plays BIGINT NOT NULL,
    listening_ms BIGINT NOT NULL
);

INSERT INTO track_totals (track_id, plays, listening_ms)
SELECT track_id, COUNT(*), SUM(played_ms) FROM play_sessions GROUP BY track_id;
