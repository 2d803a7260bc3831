// Listeners now and top tracks, from the latest LiveStats event.

import type { LiveStatsEvent, WebSocketEvent } from '../protocol';

export function latestLiveStats(events: WebSocketEvent[]): LiveStatsEvent | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.event === 'LiveStats') return e;
  }
  return null;
}

export function LiveStatsPanel({ events }: { events: WebSocketEvent[] }) {
  const stats = latestLiveStats(events);
  return (
    <section className="card live-stats" aria-labelledby="live-title">
      <div className="card-head">
        <h2 id="live-title">Listening now</h2>
      </div>
      {!stats ? (
        <p className="muted small">Live statistics appear here when the server sends them over the real-time channel.</p>
      ) : (
        <>
          <div className="stat-row">
            <div className="stat">
              <span className="stat-value" data-testid="live-listeners">{stats.concurrent_listeners}</span>
              <span className="stat-label">listeners</span>
            </div>
            <div className="stat">
              <span className="stat-value">{Math.round(stats.server_load * 100)}%</span>
              <span className="stat-label">server load</span>
            </div>
          </div>
          {stats.top_tracks.length > 0 && (
            <ol className="top-tracks">
              {stats.top_tracks.map((t) => (
                <li key={t.track_id}>
                  <span className="track-title">{t.title}</span>
                  <span className="muted small"> {t.artist}</span>
                  <span className="pill">{t.current_listeners}</span>
                </li>
              ))}
            </ol>
          )}
        </>
      )}
    </section>
  );
}
