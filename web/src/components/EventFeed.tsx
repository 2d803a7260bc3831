// The last events received over the WebSocket, newest first; a separate polite live region
// announces only the notable ones.

import type { WebSocketEvent } from '../protocol';
import type { ConnectionStatus, ReceivedEvent } from '../hooks/useWebSocket';

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

/**
 * Events worth telling a screen-reader user about as they happen. The others (LiveStats every
 * few seconds, everyone's PlaybackProgress, command acknowledgements…) stay in the list, which
 * is not a live region: announcing them would drown the listener in chatter.
 */
export const ANNOUNCED_EVENTS: ReadonlySet<string> = new Set([
  'QualityChanged',
  'PlaylistUpdated',
  'PlaylistShared',
  'TrackShared',
  'ServerMessage',
  'RateLimitWarning',
]);

/** What the live region says for the newest notable event of `history` (empty if none). */
export function announcement(history: readonly ReceivedEvent[]): { seq: number; text: string } | null {
  for (let i = history.length - 1; i >= 0; i--) {
    const r = history[i];
    if (ANNOUNCED_EVENTS.has(r.event.event)) return { seq: r.seq, text: describeEvent(r.event) };
  }
  return null;
}

interface Props {
  /** The hook's history (oldest first); each entry's `seq` keys its row. */
  history: readonly ReceivedEvent[];
  status: ConnectionStatus;
  retryCount: number;
  nextRetryAt: number | null;
}

const SHOWN = 30;

export function EventFeed({ history, status, retryCount, nextRetryAt }: Props) {
  const shown = history.slice(-SHOWN).reverse();
  const latest = announcement(history);
  return (
    <section className="card events" aria-labelledby="events-title">
      <div className="card-head">
        <h2 id="events-title">Live events</h2>
        <span className="muted small">{history.length} kept</span>
      </div>
      {/* The only live part of the feed: the newest notable event, nothing else. */}
      <div className="sr-only" role="status" aria-live="polite" aria-atomic="true" data-testid="event-announcer">
        {latest ? latest.text : ''}
      </div>
      {shown.length === 0 ? (
        <p className="muted small" data-testid="events-empty">
          {status === 'connected'
            ? 'Connected; no event yet.'
            : `Real-time channel ${status}${retryCount > 0 ? `, retry #${retryCount}${nextRetryAt ? ` in ${Math.max(0, Math.round((nextRetryAt - Date.now()) / 1000))} s` : ''}` : ''}. Playback works without it.`}
        </p>
      ) : (
        // Not a live region (see ANNOUNCED_EVENTS); focusable so that it scrolls from the keyboard.
        <ul className="event-list" data-testid="event-list" aria-live="off" aria-labelledby="events-title" tabIndex={0}>
          {shown.map((r) => (
            <li key={r.seq} className={`event ev-${r.event.event}`} data-seq={r.seq}>
              <span className="event-name">{r.event.event}</span>
              <span className="event-text">{describeEvent(r.event)}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
