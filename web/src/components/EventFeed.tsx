// The last events received over the WebSocket, newest first.

import type { WebSocketEvent } from '../protocol';
import type { ConnectionStatus } from '../hooks/useWebSocket';

export function describeEvent(e: WebSocketEvent): string {
  switch (e.event) {
    case 'PlaybackStarted':
      return `${e.user_id} started ${e.track_id}`;
    case 'PlaybackPaused':
      return `${e.user_id} paused ${e.track_id} at ${Math.round(e.position_ms / 1000)} s`;
    case 'PlaybackResumed':
      return `${e.user_id} resumed ${e.track_id} at ${Math.round(e.position_ms / 1000)} s`;
    case 'PlaybackStopped':
      return `${e.user_id} stopped ${e.track_id} after ${Math.round(e.total_played_ms / 1000)} s`;
    case 'PlaybackProgress':
      return `${e.user_id} at ${Math.round(e.position_ms / 1000)} s of ${e.track_id} (buffer ${Math.round(e.buffer_percentage)}%)`;
    case 'PlaylistUpdated':
      return `playlist ${e.playlist_id}: ${e.action}${e.track_id ? ` ${e.track_id}` : ''}${e.position != null ? ` at ${e.position}` : ''}`;
    case 'PlaylistShared':
      return `${e.from_user} shared playlist ${e.playlist_id} with ${e.to_users.join(', ')}`;
    case 'TrackLiked':
      return `${e.user_id} liked ${e.track_id} (${e.total_likes} likes)`;
    case 'TrackShared':
      return `${e.from_user} shared ${e.track_id}${e.message ? `: “${e.message}”` : ''}`;
    case 'UserFollowed':
      return `${e.follower_id} follows ${e.followed_id}`;
    case 'ServerMessage':
      return `[${e.level}] ${e.message}`;
    case 'RateLimitWarning':
      return `rate limit: ${e.remaining_requests} requests left, resets in ${e.reset_time_seconds} s`;
    case 'CommandResponse':
      return `${e.command_id}: ${e.success ? 'ok' : `failed${e.error ? ` (${e.error})` : ''}`}`;
    case 'LiveStats':
      return `${e.concurrent_listeners} listening, load ${Math.round(e.server_load * 100)}%`;
    case 'QualityChanged':
      return `session ${e.session_id.slice(0, 8)}: ${e.from} → ${e.to} (${e.reason})`;
    default: {
      const unknown = e as { event: string };
      return JSON.stringify(unknown);
    }
  }
}

interface Props {
  events: WebSocketEvent[];
  status: ConnectionStatus;
  retryCount: number;
  nextRetryAt: number | null;
}

export function EventFeed({ events, status, retryCount, nextRetryAt }: Props) {
  const shown = events.slice(-30).reverse();
  return (
    <section className="card events" aria-labelledby="events-title">
      <div className="card-head">
        <h2 id="events-title">Live events</h2>
        <span className="muted small">{events.length} kept</span>
      </div>
      {shown.length === 0 ? (
        <p className="muted small" data-testid="events-empty">
          {status === 'connected'
            ? 'Connected; no event yet.'
            : `Real-time channel ${status}${retryCount > 0 ? `, retry #${retryCount}${nextRetryAt ? ` in ${Math.max(0, Math.round((nextRetryAt - Date.now()) / 1000))} s` : ''}` : ''}. Playback works without it.`}
        </p>
      ) : (
        <ul className="event-list" data-testid="event-list" aria-live="polite">
          {shown.map((e, i) => (
            <li key={events.length - i} className={`event ev-${e.event}`}>
              <span className="event-name">{e.event}</span>
              <span className="event-text">{describeEvent(e)}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
