// The library: search (debounced), a list of tracks; click or Enter plays, "+" queues.

import { useState } from 'react';
import type { Track } from '../api';
import { formatTime } from '../format';
import { useTracks } from '../hooks/useTracks';

interface Props {
  currentTrackId: string | null;
  onPlay: (track: Track) => void;
  onQueue: (track: Track) => void;
}

export function Library({ currentTrackId, onPlay, onQueue }: Props) {
  const [query, setQuery] = useState('');
  const [reload, setReload] = useState(0);
  const { tracks, loading, error } = useTracks(query, 250, reload);

  return (
    <section className="card library" aria-labelledby="library-title">
      <div className="card-head">
        <h2 id="library-title">Library</h2>
        <span className="muted small" aria-live="polite">{loading ? 'searching…' : `${tracks.length} track${tracks.length === 1 ? '' : 's'}`}</span>
      </div>
      <input
        type="search"
        className="search"
        placeholder="Search title, artist, album, genre…"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
        aria-label="Search the library"
        data-testid="search"
      />
      {error && (
        <div className="notice bad" role="alert">
          Could not load the library: {error}{' '}
          <button type="button" className="link-btn" onClick={() => setReload((n) => n + 1)}>Retry</button>
        </div>
      )}
      <ul className="track-list" data-testid="track-list">
        {tracks.map((t) => (
          <li key={t.id} className={`track-row ${t.id === currentTrackId ? 'current' : ''}`} data-testid="track-row" data-track-id={t.id}>
            <button
              type="button"
              className="track-main"
              onClick={() => onPlay(t)}
              aria-label={`Play ${t.title}${t.artist ? ` by ${t.artist}` : ''}`}
              aria-current={t.id === currentTrackId ? 'true' : undefined}
            >
              <span className="track-title">{t.title}</span>
              <span className="track-sub">{[t.artist, t.album, t.genre].filter(Boolean).join(' · ') || t.filename}</span>
            </button>
            <span className="track-duration">{formatTime(t.duration_ms / 1000)}</span>
            <button type="button" className="icon-btn small" onClick={() => onQueue(t)} aria-label={`Add ${t.title} to the queue`} title="Add to queue" data-testid="queue-add">
              <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M11 5h2v6h6v2h-6v6h-2v-6H5v-2h6z" /></svg>
            </button>
          </li>
        ))}
        {!loading && !error && tracks.length === 0 && <li className="empty muted">{query ? 'No track matches.' : 'The library is empty.'}</li>}
      </ul>
    </section>
  );
}
