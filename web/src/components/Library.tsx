// The library: search (debounced), a list of tracks; click or Enter plays, "+" queues, and the
// playlist menu (when the app passes playlists) adds the track to one of them.

import { useEffect, useState } from 'react';
import type { Playlist, Track } from '../api';
import { formatTime } from '../format';
import { useTracks } from '../hooks/useTracks';

interface Props {
  currentTrackId: string | null;
  onPlay: (track: Track) => void;
  onQueue: (track: Track) => void;
  /** The listener's playlists, for the "add to playlist" menu (no menu without `onAddToPlaylist`). */
  playlists?: Playlist[];
  /** The listener: the menu offers their own playlists only (only an owner may edit one). */
  userId?: string;
  onAddToPlaylist?: (playlistId: string, track: Track) => Promise<unknown>;
}

const NOTE_MS = 4000;

export function Library({ currentTrackId, onPlay, onQueue, playlists, userId, onAddToPlaylist }: Props) {
  const [query, setQuery] = useState('');
  const [reload, setReload] = useState(0);
  const { tracks, loading, error } = useTracks(query, 250, reload);
  const [note, setNote] = useState<{ ok: boolean; text: string } | null>(null);
  const targets = (playlists ?? []).filter((p) => !userId || !p.owner || p.owner === userId);

  useEffect(() => {
    if (!note) return;
    const t = setTimeout(() => setNote(null), NOTE_MS);
    return () => clearTimeout(t);
  }, [note]);

  const addTo = (playlistId: string, track: Track) => {
    const name = targets.find((p) => p.id === playlistId)?.name ?? 'the playlist';
    if (!playlistId || !onAddToPlaylist) return;
    onAddToPlaylist(playlistId, track).then(
      () => setNote({ ok: true, text: `Added “${track.title}” to “${name}”.` }),
      (err: unknown) => setNote({ ok: false, text: `Could not add “${track.title}” to “${name}”: ${err instanceof Error ? err.message : String(err)}` }),
    );
  };

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
      {note && (
        <p className={`notice ${note.ok ? 'ok' : 'bad'}`} role={note.ok ? 'status' : 'alert'} data-testid="playlist-add-status">
          {note.text}
        </p>
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
            {onAddToPlaylist && (
              <span className={`playlist-add ${targets.length ? '' : 'disabled'}`} title={targets.length ? 'Add to a playlist' : 'Create a playlist first'}>
                <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 6h12v2H3zm0 4h12v2H3zm0 4h8v2H3zm14-4h2v4h4v2h-4v4h-2v-4h-4v-2h4z" /></svg>
                <select
                  value=""
                  onChange={(e) => addTo(e.target.value, t)}
                  disabled={!targets.length}
                  aria-label={`Add ${t.title} to a playlist`}
                  data-testid="playlist-add"
                >
                  <option value="">{targets.length ? `Add “${t.title}” to…` : 'No playlist of yours yet'}</option>
                  {targets.map((p) => (
                    <option key={p.id} value={p.id}>
                      {p.name}
                    </option>
                  ))}
                </select>
              </span>
            )}
          </li>
        ))}
        {!loading && !error && tracks.length === 0 && <li className="empty muted">{query ? 'No track matches.' : 'The library is empty.'}</li>}
      </ul>
    </section>
  );
}
