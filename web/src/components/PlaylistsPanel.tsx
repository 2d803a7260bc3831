// Playlists: the list (create, rename, delete with a confirmation, play), and one playlist open
// (play from a track, reorder with the up/down buttons or by dragging, remove). Kept live by
// `usePlaylists`: a change made in another tab shows up here without a reload.
//
// An entry whose track has left the library (`available: false`) stays in its place, marked
// "(unavailable)": it cannot be played, and playing or queueing the playlist skips it, but its
// owner can still move or remove it.

import { useEffect, useId, useRef, useState, type DragEvent, type FormEvent, type KeyboardEvent } from 'react';
import { entryAsTrack, type Playlist, type PlaylistEntry, type Track } from '../api';
import { formatTime } from '../format';
import type { PlaylistsApi } from '../hooks/usePlaylists';

interface Props {
  api: PlaylistsApi;
  /** The listener: only a playlist's owner may change it (a share is read-only). */
  userId: string;
  currentTrackId: string | null;
  /** Replace the queue with `tracks` and play the one at `start`. */
  onPlay: (tracks: Track[], start: number) => void;
  /** Append `tracks` to the queue. */
  onQueue: (tracks: Track[]) => void;
}

/** As the server (1 to 200 characters). */
const NAME_MAX = 200;

function trackCount(n: number): string {
  return `${n} track${n === 1 ? '' : 's'}`;
}

/** Whether the entry's track is still in the library (a server that does not say: it is). */
function playable(t: PlaylistEntry): boolean {
  return t.available !== false;
}

/** What playing the playlist plays: its entries still in the library, in order. */
function playableTracks(p: Playlist): Track[] {
  return p.tracks.filter(playable).map(entryAsTrack);
}

function summary(p: Playlist, userId: string): string {
  // The duration is what plays: the unavailable entries are skipped.
  const total = p.tracks.reduce((s, t) => s + (playable(t) ? t.duration_ms || 0 : 0), 0);
  const missing = p.tracks.filter((t) => !playable(t)).length;
  const parts = [trackCount(p.tracks.length)];
  if (missing > 0) parts.push(`${missing} unavailable`);
  if (total > 0) parts.push(formatTime(total / 1000));
  if (p.owner && p.owner !== userId) parts.push(`shared by ${p.owner}`);
  else if (p.shared_with?.length) parts.push(`shared with ${p.shared_with.length}`);
  return parts.join(' · ');
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function PlaylistsPanel({ api, userId, currentTrackId, onPlay, onQueue }: Props) {
  const [newName, setNewName] = useState('');
  const [creating, setCreating] = useState(false);
  const [openId, setOpenId] = useState<string | null>(null);
  const [renaming, setRenaming] = useState<{ id: string; name: string } | null>(null);
  const [confirmDelete, setConfirmDelete] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [drag, setDrag] = useState<{ from: number; over: number | null } | null>(null);
  const sectionRef = useRef<HTMLElement>(null);
  const idBase = useId();
  const backRef = useRef<HTMLButtonElement>(null);
  /** Where focus goes after the view changes: 'back' (a playlist opened) or a playlist id. */
  const focusNext = useRef<string | null>(null);
  /** After a move with the buttons: the row (its key) and the button to keep focus on; after a
   * removal: the position whose remove button takes the focus. */
  const focusRow = useRef<{ key: string; button: 'up' | 'down' } | { removedAt: number } | null>(null);
  const openName = useRef('');

  const open = openId ? (api.playlists.find((p) => p.id === openId) ?? null) : null;
  if (open) openName.current = open.name;

  // The open playlist went away (deleted in another tab, or no longer shared): say so.
  useEffect(() => {
    if (openId && !open && !api.loading && !api.syncing) {
      setOpenId(null);
      setNotice(`“${openName.current}” is gone: it was deleted, or is no longer shared with you.`);
    }
  }, [openId, open, api.loading, api.syncing]);

  useEffect(() => {
    const target = focusNext.current;
    if (!target) return;
    focusNext.current = null;
    if (target === 'back') backRef.current?.focus();
    else {
      const id = typeof CSS !== 'undefined' && CSS.escape ? CSS.escape(target) : target.replace(/["\\]/g, '\\$&');
      sectionRef.current?.querySelector<HTMLElement>(`[data-playlist-id="${id}"] [data-testid="playlist-open"]`)?.focus();
    }
  }, [openId]);

  // A moved row may be re-inserted (dropping focus), and its button may now be disabled: keep
  // the focus in the row, on the same button or else the other one. A removed row takes its
  // focus with it: give it to the next row's remove button (or the previous one's, or Back).
  useEffect(() => {
    const want = focusRow.current;
    if (!want) return;
    focusRow.current = null;
    const rows = [...(sectionRef.current?.querySelectorAll<HTMLElement>('[data-testid="playlist-track"]') ?? [])];
    if ('removedAt' in want) {
      const row = rows[Math.min(want.removedAt, rows.length - 1)];
      (row?.querySelector<HTMLElement>('[data-testid="playlist-track-remove"]') ?? backRef.current)?.focus();
      return;
    }
    const row = rows.find((r) => r.dataset.key === want.key);
    const pick = (b: 'up' | 'down') => row?.querySelector<HTMLButtonElement>(`[data-testid="playlist-track-${b}"]`);
    const same = pick(want.button);
    const target = same && !same.disabled ? same : pick(want.button === 'up' ? 'down' : 'up');
    target?.focus();
  }, [open?.tracks]);

  const attempt = (what: string, p: Promise<unknown>) => {
    setProblem(null);
    p.catch((err: unknown) => setProblem(`Could not ${what}: ${reason(err)}`));
  };

  const create = async (e: FormEvent) => {
    e.preventDefault();
    const name = newName.trim();
    if (!name || creating) return;
    setCreating(true);
    setProblem(null);
    try {
      await api.create(name);
      setNewName('');
      setNotice(null);
    } catch (err) {
      setProblem(`Could not create “${name}”: ${reason(err)}`);
    } finally {
      setCreating(false);
    }
  };

  const saveRename = (e: FormEvent) => {
    e.preventDefault();
    if (!renaming) return;
    const name = renaming.name.trim();
    const before = api.playlists.find((p) => p.id === renaming.id);
    setRenaming(null);
    focusNext.current = renaming.id;
    if (!name || name === before?.name) return;
    attempt(`rename “${before?.name ?? ''}”`, api.rename(renaming.id, name));
  };

  const openPlaylist = (id: string) => {
    setNotice(null);
    setConfirmDelete(null);
    setRenaming(null);
    focusNext.current = 'back';
    setOpenId(id);
  };

  const back = () => {
    focusNext.current = openId;
    setOpenId(null);
    setDrag(null);
  };

  /** Plays the playlist from the entry at `at`; the unavailable entries are left out of the queue. */
  const playFrom = (p: Playlist, at: number) => {
    const entry = p.tracks[at];
    if (entry && playable(entry)) onPlay(playableTracks(p), p.tracks.slice(0, at).filter(playable).length);
  };

  const playAll = (p: Playlist) => {
    const tracks = playableTracks(p);
    if (tracks.length) onPlay(tracks, 0);
  };

  const moveTo = (p: Playlist, from: number, to: number) => {
    if (from === to || to < 0 || to >= p.tracks.length) return;
    attempt('reorder the playlist', api.move(p.id, from, to));
  };

  // ------------------------------------------------------------------ one playlist
  if (open) {
    const total = open.tracks.length;
    const playableCount = open.tracks.filter(playable).length;
    const missing = total - playableCount;
    const them = missing === 1 ? 'it' : 'them';
    const editable = !open.owner || open.owner === userId;
    const onDragStart = (i: number) => (e: DragEvent) => {
      e.dataTransfer.effectAllowed = 'move';
      e.dataTransfer.setData('text/plain', String(i)); // Firefox starts no drag without data
      setDrag({ from: i, over: null });
    };
    const onDragOver = (i: number) => (e: DragEvent) => {
      if (!drag) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'move';
      if (drag.over !== i) setDrag({ ...drag, over: i });
    };
    const onDrop = (i: number) => (e: DragEvent) => {
      e.preventDefault();
      if (drag) moveTo(open, drag.from, i);
      setDrag(null);
    };
    return (
      <section ref={sectionRef} className="card playlists" aria-labelledby="playlists-title" data-testid="playlists" data-syncing={api.syncing || undefined}>
        <div className="card-head playlist-head" data-testid="playlist-detail" data-playlist-id={open.id}>
          <button ref={backRef} type="button" className="icon-btn small" onClick={back} aria-label="Back to all playlists" data-testid="playlist-back">
            <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M15 5l-7 7 7 7" fill="none" stroke="currentColor" strokeWidth="2.2" /></svg>
          </button>
          <div className="playlist-heading">
            <h2 id="playlists-title" className="playlist-title" data-testid="playlist-name">{open.name}</h2>
            <span className="muted small playlist-count" data-testid="playlist-summary">{summary(open, userId)}</span>
          </div>
        </div>
        <div className="playlist-actions">
          <button type="button" className="btn primary small-btn" onClick={() => playAll(open)} disabled={!playableCount} data-testid="playlist-play-all">Play all</button>
          <button type="button" className="btn small-btn" onClick={() => onQueue(playableTracks(open))} disabled={!playableCount} data-testid="playlist-queue-all">Add all to queue</button>
        </div>
        {missing > 0 && (
          <p className="muted small" data-testid="playlist-unavailable-note">
            {playableCount === 0
              ? 'None of its tracks is in the library any more: there is nothing to play.'
              : `${trackCount(missing)} no longer in the library: playing or queueing the playlist skips ${them}.`}
            {editable && ` You can still move or remove ${them}.`}
          </p>
        )}
        {problem && <Problem text={problem} onDismiss={() => setProblem(null)} />}
        {!editable && <p className="muted small">Shared with you by {open.owner}: only they can change it.</p>}
        {total === 0 ? (
          <p className="muted small">{editable ? 'No tracks yet: add some from the library with the playlist menu beside each track.' : 'No tracks yet.'}</p>
        ) : (
          <ol className="queue-list playlist-tracks" data-testid="playlist-tracks" aria-label={`Tracks of ${open.name}`}>
            {open.tracks.map((t, i) => {
              // Stable across reorders, so a moved row keeps its focus: the n-th copy of a track.
              const copy = open.tracks.slice(0, i).filter((x) => x.track_id === t.track_id).length;
              const key = `${t.track_id}#${copy}`;
              const dragClass = drag?.from === i ? 'dragging' : drag?.over === i ? 'drop-target' : '';
              const available = playable(t);
              // Said by the row's buttons too (they stay usable: the owner can clean up).
              const noteId = available ? undefined : `${idBase}-unavailable-${i}`;
              const step = (button: 'up' | 'down') => {
                focusRow.current = { key, button };
                moveTo(open, i, button === 'up' ? i - 1 : i + 1);
              };
              return (
                <li
                  key={key}
                  data-key={key}
                  className={`queue-row playlist-track ${t.track_id === currentTrackId ? 'current' : ''} ${available ? '' : 'unavailable'} ${dragClass}`}
                  data-testid="playlist-track"
                  data-track-id={t.track_id}
                  data-available={available}
                  draggable={editable}
                  onDragStart={editable ? onDragStart(i) : undefined}
                  onDragOver={editable ? onDragOver(i) : undefined}
                  onDrop={editable ? onDrop(i) : undefined}
                  onDragEnd={editable ? () => setDrag(null) : undefined}
                >
                  {editable && <span className="drag-handle" aria-hidden="true">⋮⋮</span>}
                  <button
                    type="button"
                    className="track-main"
                    onClick={() => playFrom(open, i)}
                    disabled={!available}
                    aria-label={available ? `Play ${t.title} from the playlist` : `${t.title}: unavailable, no longer in the library`}
                    title={available ? undefined : 'No longer in the library: it cannot be played'}
                    data-testid="playlist-track-play"
                  >
                    <span className="track-title">{t.title}</span>
                    <span className="track-sub">
                      {!available && (
                        <>
                          <span className="unavailable-tag" id={noteId}>(unavailable)</span>{' '}
                        </>
                      )}
                      {[t.artist, formatTime(t.duration_ms / 1000)].filter(Boolean).join(' · ')}
                    </span>
                  </button>
                  {editable && (
                    <div className="row-actions">
                      <button type="button" className="icon-btn small" onClick={() => step('up')} disabled={i === 0} aria-label={`Move ${t.title} up`} aria-describedby={noteId} data-testid="playlist-track-up">
                        <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 6l6 8H6z" /></svg>
                      </button>
                      <button type="button" className="icon-btn small" onClick={() => step('down')} disabled={i === total - 1} aria-label={`Move ${t.title} down`} aria-describedby={noteId} data-testid="playlist-track-down">
                        <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 18l-6-8h12z" /></svg>
                      </button>
                      <button
                        type="button"
                        className="icon-btn small"
                        onClick={() => {
                          focusRow.current = { removedAt: i };
                          attempt(`remove “${t.title}”`, api.removeAt(open.id, i));
                        }}
                        aria-label={`Remove ${t.title} from the playlist`}
                        aria-describedby={noteId}
                        data-testid="playlist-track-remove"
                      >
                        <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18" stroke="currentColor" strokeWidth="2.2" /></svg>
                      </button>
                    </div>
                  )}
                </li>
              );
            })}
          </ol>
        )}
      </section>
    );
  }

  // ------------------------------------------------------------------ all playlists
  const cancelOnEscape = (e: KeyboardEvent) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      if (renaming) focusNext.current = renaming.id;
      setRenaming(null);
      setConfirmDelete(null);
    }
  };

  return (
    <section ref={sectionRef} className="card playlists" aria-labelledby="playlists-title" data-testid="playlists" data-syncing={api.syncing || undefined}>
      <div className="card-head">
        <h2 id="playlists-title">Playlists</h2>
        <span className="muted small" aria-live="polite" data-testid="playlists-status">
          {api.loading ? 'loading…' : `${api.playlists.length} playlist${api.playlists.length === 1 ? '' : 's'}`}
        </span>
      </div>
      <form className="playlist-create" onSubmit={create}>
        <input
          type="text"
          className="search"
          placeholder="New playlist name"
          value={newName}
          maxLength={NAME_MAX}
          onChange={(e) => setNewName(e.target.value)}
          aria-label="New playlist name"
          data-testid="playlist-create-name"
        />
        <button type="submit" className="btn primary" disabled={!newName.trim() || creating} data-testid="playlist-create">
          Create
        </button>
      </form>
      {notice && (
        <p className="notice" role="status">
          {notice}{' '}
          <button type="button" className="link-btn" onClick={() => setNotice(null)}>OK</button>
        </p>
      )}
      {problem && <Problem text={problem} onDismiss={() => setProblem(null)} />}
      {api.error && (
        <div className="notice bad" role="alert">
          Could not load the playlists: {api.error}{' '}
          <button type="button" className="link-btn" onClick={api.refresh}>Retry</button>
        </div>
      )}
      <ul className="track-list playlist-list" data-testid="playlist-list">
        {api.playlists.map((p) => {
          const mine = !p.owner || p.owner === userId;
          return (
            <li key={p.id} className="track-row playlist-row" data-testid="playlist-item" data-playlist-id={p.id} data-name={p.name} onKeyDown={cancelOnEscape}>
              {renaming?.id === p.id ? (
                <form className="playlist-inline" onSubmit={saveRename}>
                  <input
                    type="text"
                    className="search"
                    value={renaming.name}
                    maxLength={NAME_MAX}
                    onChange={(e) => setRenaming({ id: p.id, name: e.target.value })}
                    aria-label={`New name for ${p.name}`}
                    data-testid="playlist-rename-input"
                    autoFocus
                  />
                  <button type="submit" className="btn primary small-btn" data-testid="playlist-rename-save">Save</button>
                  <button type="button" className="btn small-btn" onClick={() => { focusNext.current = p.id; setRenaming(null); }}>Cancel</button>
                </form>
              ) : confirmDelete === p.id ? (
                <div className="playlist-inline" role="group" aria-label={`Delete ${p.name}?`}>
                  <span className="playlist-confirm">Delete “{p.name}”?</span>
                  <button
                    type="button"
                    className="btn danger small-btn"
                    onClick={() => {
                      setConfirmDelete(null);
                      attempt(`delete “${p.name}”`, api.delete(p.id));
                    }}
                    data-testid="playlist-delete-confirm"
                    autoFocus
                  >
                    Delete
                  </button>
                  <button type="button" className="btn small-btn" onClick={() => { focusNext.current = p.id; setConfirmDelete(null); }}>Cancel</button>
                </div>
              ) : (
                <>
                  <button type="button" className="track-main" onClick={() => openPlaylist(p.id)} aria-label={`Open playlist ${p.name}`} data-testid="playlist-open">
                    <span className="track-title">{p.name}</span>
                    <span className="track-sub" data-testid="playlist-summary">{summary(p, userId)}</span>
                  </button>
                  <div className="row-actions">
                    <button type="button" className="icon-btn small" onClick={() => playAll(p)} disabled={!p.tracks.some(playable)} aria-label={`Play ${p.name}`} title="Play" data-testid="playlist-play">
                      <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M8 5v14l11-7z" /></svg>
                    </button>
                    {mine && (
                      <>
                        <button type="button" className="icon-btn small" onClick={() => setRenaming({ id: p.id, name: p.name })} aria-label={`Rename ${p.name}`} title="Rename" data-testid="playlist-rename">
                          <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 17.5V20h2.5L17 9.5 14.5 7zM19.7 6.8a1 1 0 0 0 0-1.4l-1.1-1.1a1 1 0 0 0-1.4 0l-1.3 1.3 2.5 2.5z" /></svg>
                        </button>
                        <button type="button" className="icon-btn small" onClick={() => setConfirmDelete(p.id)} aria-label={`Delete ${p.name}`} title="Delete" data-testid="playlist-delete">
                          <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M9 3h6l1 2h4v2H4V5h4zM6 9h12l-1 12H7z" /></svg>
                        </button>
                      </>
                    )}
                  </div>
                </>
              )}
            </li>
          );
        })}
        {!api.loading && !api.error && api.playlists.length === 0 && (
          <li className="empty muted small">No playlist yet: name one above, then add tracks from the library.</li>
        )}
      </ul>
    </section>
  );
}

function Problem({ text, onDismiss }: { text: string; onDismiss: () => void }) {
  return (
    <div className="notice bad" role="alert" data-testid="playlists-error">
      {text}{' '}
      <button type="button" className="link-btn" onClick={onDismiss}>Dismiss</button>
    </div>
  );
}
