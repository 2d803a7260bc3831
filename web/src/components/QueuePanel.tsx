// The play queue: the current item highlighted; jump, reorder, remove.

import { formatTime } from '../format';
import type { Queue } from '../hooks/useQueue';

export function QueuePanel({ queue }: { queue: Queue }) {
  const { items, index } = queue;
  return (
    <section className="card queue" aria-labelledby="queue-title">
      <div className="card-head">
        <h2 id="queue-title">Queue</h2>
        {items.length > 0 && (
          <button type="button" className="link-btn" onClick={queue.clear}>Clear</button>
        )}
      </div>
      {items.length === 0 ? (
        <p className="muted small">Play a track or press + in the library to queue it. The next one starts when a track ends.</p>
      ) : (
        <ol className="queue-list" data-testid="queue-list">
          {items.map((item, i) => (
            <li key={item.key} className={`queue-row ${i === index ? 'current' : ''} ${i < index ? 'played' : ''}`} data-testid="queue-row">
              <button type="button" className="track-main" onClick={() => queue.jump(item.key)} aria-current={i === index ? 'true' : undefined} aria-label={`Play ${item.track.title} from the queue`}>
                <span className="track-title">{item.track.title}</span>
                <span className="track-sub">{item.track.artist ?? ''} · {formatTime(item.track.duration_ms / 1000)}</span>
              </button>
              <div className="row-actions">
                <button type="button" className="icon-btn small" onClick={() => queue.move(item.key, -1)} disabled={i === 0} aria-label={`Move ${item.track.title} up`}>
                  <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 6l6 8H6z" /></svg>
                </button>
                <button type="button" className="icon-btn small" onClick={() => queue.move(item.key, 1)} disabled={i === items.length - 1} aria-label={`Move ${item.track.title} down`}>
                  <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 18l-6-8h12z" /></svg>
                </button>
                <button type="button" className="icon-btn small" onClick={() => queue.remove(item.key)} aria-label={`Remove ${item.track.title} from the queue`}>
                  <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18" stroke="currentColor" strokeWidth="2.2" /></svg>
                </button>
              </div>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
