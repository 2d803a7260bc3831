// Streaming statistics from `GET /api/streaming/stats`, refreshed every 5 s.

import type { StreamingStats } from '../api';
import type { Polled } from '../hooks/usePolling';

const ORDER = ['high', 'medium', 'low', 'mobile'];

export function ServerStatsPanel({ stats }: { stats: Polled<StreamingStats> }) {
  const d = stats.data;
  const byQuality = Object.entries(d?.sessions_by_quality ?? {}).sort(
    ([a], [b]) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99),
  );
  const maxCount = Math.max(1, ...byQuality.map(([, n]) => n));
  return (
    <section className="card server-stats" aria-labelledby="stats-title">
      <div className="card-head">
        <h2 id="stats-title">Streaming stats</h2>
        <span className="muted small">{stats.updatedAt ? new Date(stats.updatedAt).toLocaleTimeString() : ''}</span>
      </div>
      {stats.error && <div className="notice bad small">{stats.error}</div>}
      {!d ? (
        <p className="muted small">Loading…</p>
      ) : (
        <>
          <div className="stat-row">
            <div className="stat">
              <span className="stat-value" data-testid="active-sessions">{d.active_sessions}</span>
              <span className="stat-label">active sessions</span>
            </div>
            <div className="stat">
              <span className="stat-value">{d.average_buffer_health != null ? `${Math.round(d.average_buffer_health)}%` : '—'}</span>
              <span className="stat-label">avg buffer</span>
            </div>
            <div className="stat">
              <span className="stat-value">{d.total_rebuffers ?? 0}</span>
              <span className="stat-label">rebuffers</span>
            </div>
            <div className="stat">
              <span className="stat-value">{d.quality_changes ?? 0}</span>
              <span className="stat-label">quality changes</span>
            </div>
          </div>
          <h3 className="sub">Sessions by quality</h3>
          <ul className="bars">
            {byQuality.map(([q, n]) => (
              <li key={q}>
                <span className="bar-label">{q}</span>
                <span className="bar"><span className={`bar-fill q-${q}`} style={{ width: `${(n / maxCount) * 100}%` }} /></span>
                <span className="bar-value">{n}</span>
              </li>
            ))}
          </ul>
          {d.sessions_by_connection && Object.keys(d.sessions_by_connection).length > 0 && (
            <p className="muted small">
              {Object.entries(d.sessions_by_connection).map(([k, v]) => `${k} ${v}`).join(' · ')}
              {d.sessions_created != null ? ` · ${d.sessions_created} created` : ''}
            </p>
          )}
        </>
      )}
    </section>
  );
}
