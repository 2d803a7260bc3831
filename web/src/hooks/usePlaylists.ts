// The listener's playlists (`/api/playlists`), kept in step with every other tab and device of
// the same user: any `PlaylistUpdated` (or `PlaylistShared`) event on the WebSocket re-fetches
// the list, debounced so that a burst of events costs one request.
//
// Consistency rules:
// - a list answer is shown only if its request started after the last event (or local change)
//   seen: an answer that may predate an event is dropped, and the re-fetch the event scheduled
//   replaces it (a newer request also aborts an older one still in flight);
// - while local changes are in flight, list answers are dropped too; the changes are applied
//   to the list at once (optimistically, for rename / delete / remove / move) so that quick
//   successive clicks work on the list as it will be, and run one after the other; once the last
//   one is answered its result is shown and the list is re-fetched;
// - each (re)connection of the WebSocket re-fetches (events may have been missed meanwhile).
//
// Adding a track goes through the spec's `AddToPlaylist` command when the socket is open (its
// `CommandResponse` carries the updated playlist), else through REST; everything else is REST.

import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import {
  addPlaylistTrack,
  createPlaylist,
  deletePlaylist,
  getPlaylist,
  listPlaylists,
  movePlaylistTrack,
  removePlaylistTrack,
  renamePlaylist,
  type ApiIdentity,
  type Playlist,
} from '../api';
import { newCommandId, type PlaylistCommandResponse, type WebSocketEvent } from '../protocol';
import { useRealtime } from '../realtime';
import type { WebSocketApi } from './useWebSocket';

export type PlaylistSocket = Pick<WebSocketApi, 'connectionStatus' | 'subscribe' | 'sendCommand'>;

export interface UsePlaylistsOptions {
  /** The WebSocket to listen to and send `AddToPlaylist` on. Default: the app's (`useRealtime`). */
  ws?: PlaylistSocket;
  /** Events within this long of the first one cost one re-fetch, ms. */
  debounceMs?: number;
  /** How long to wait for the `CommandResponse` to `AddToPlaylist`, ms. */
  commandTimeoutMs?: number;
}

export interface PlaylistsApi {
  /** Own and shared playlists, most recently updated first. */
  playlists: Playlist[];
  /** True until the first list arrives (for this identity). */
  loading: boolean;
  /** Why the last list request failed, if it did (the previous list stays). */
  error: string | null;
  /** A re-fetch is due or in flight. */
  syncing: boolean;
  refresh: () => void;
  create: (name: string) => Promise<Playlist>;
  rename: (playlistId: string, name: string) => Promise<Playlist>;
  delete: (playlistId: string) => Promise<void>;
  /** Inserts at the 0-based `position`, or appends. Over the WebSocket when it is open. */
  addTrack: (playlistId: string, trackId: string, position?: number | null) => Promise<Playlist>;
  /** Removes the entry at the 0-based `position`. */
  removeAt: (playlistId: string, position: number) => Promise<Playlist>;
  move: (playlistId: string, from: number, to: number) => Promise<Playlist>;
}

export const PLAYLIST_DEBOUNCE_MS = 120;
const COMMAND_TIMEOUT_MS = 8000;
/** After this many list answers dropped in a row (a storm of events), show the next one anyway. */
const MAX_DROPPED = 4;

type Edit = (list: Playlist[]) => Playlist[];

interface PendingCommand {
  resolve: (r: PlaylistCommandResponse) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function isPlaylist(v: unknown): v is Playlist {
  if (v === null || typeof v !== 'object') return false;
  const p = v as Partial<Playlist>;
  return typeof p.id === 'string' && typeof p.name === 'string' && Array.isArray(p.tracks);
}

/** Most recently updated first; equal times keep their order. */
function byUpdated(list: Playlist[]): Playlist[] {
  return [...list].sort((a, b) => (b.updated_at ?? 0) - (a.updated_at ?? 0));
}

/** `list` with `p` replacing its namesake (or added), re-sorted. */
export function upsertPlaylist(list: Playlist[], p: Playlist): Playlist[] {
  const i = list.findIndex((x) => x.id === p.id);
  return byUpdated(i < 0 ? [p, ...list] : list.map((x) => (x.id === p.id ? p : x)));
}

/** The entries of `p` with the one at `from` moved to `to`. */
export function moveEntry<T>(items: readonly T[], from: number, to: number): T[] {
  const next = [...items];
  if (from < 0 || from >= next.length || to < 0 || to >= next.length) return next;
  const [item] = next.splice(from, 1);
  next.splice(to, 0, item);
  return next;
}

function editTracks(id: string, f: (tracks: Playlist['tracks']) => Playlist['tracks']): Edit {
  return (list) => list.map((p) => (p.id === id ? { ...p, tracks: f(p.tracks) } : p));
}

export function usePlaylists(userId: string, token?: string | null, options: UsePlaylistsOptions = {}): PlaylistsApi {
  const realtime = useRealtime();
  const ws = options.ws ?? realtime;

  const [playlists, setPlaylists] = useState<Playlist[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [syncing, setSyncing] = useState(false);

  const optsRef = useRef(options);
  optsRef.current = options;
  const wsRef = useRef(ws);
  wsRef.current = ws;
  const whoRef = useRef<ApiIdentity>({ userId, token: token || null });

  const mountedRef = useRef(true);
  /** Every list request and every invalidation takes the next number. */
  const seqRef = useRef(0);
  /** Answers to requests numbered at or below this may predate something seen since. */
  const floorRef = useRef(0);
  const droppedRef = useRef(0);
  const timerRef = useRef<ReturnType<typeof setTimeout> | null>(null);
  const ctrlRef = useRef<AbortController | null>(null);
  /** Local changes sent and not answered yet, and the results waiting for the last of them. */
  const mutatingRef = useRef(0);
  const resultsRef = useRef<Edit[]>([]);
  const chainRef = useRef<Promise<unknown>>(Promise.resolve());
  const pendingRef = useRef(new Map<string, PendingCommand>());

  const fetchNowRef = useRef<() => void>(() => {});
  fetchNowRef.current = () => {
    if (timerRef.current !== null) {
      clearTimeout(timerRef.current);
      timerRef.current = null;
    }
    ctrlRef.current?.abort();
    const ctrl = new AbortController();
    ctrlRef.current = ctrl;
    const mine = ++seqRef.current;
    setSyncing(true);
    listPlaylists(whoRef.current, ctrl.signal).then(
      (list) => {
        if (ctrl.signal.aborted || !mountedRef.current) return;
        ctrlRef.current = null;
        const stale = mine <= floorRef.current && droppedRef.current < MAX_DROPPED;
        if (mutatingRef.current > 0 || stale) {
          // A re-fetch is scheduled (by the event, or when the local changes are answered).
          if (stale) droppedRef.current += 1;
          setSyncing(timerRef.current !== null || mutatingRef.current > 0);
          return;
        }
        droppedRef.current = 0;
        setPlaylists(list);
        setError(null);
        setLoading(false);
        setSyncing(timerRef.current !== null);
      },
      (err: unknown) => {
        if (ctrl.signal.aborted || !mountedRef.current) return;
        ctrlRef.current = null;
        setError(message(err));
        setLoading(false);
        setSyncing(timerRef.current !== null);
      },
    );
  };

  /** Re-fetches soon: the first call of a burst starts the timer, the others ride along. */
  const schedule = useCallback((delay?: number) => {
    if (!mountedRef.current || timerRef.current !== null) return;
    setSyncing(true);
    timerRef.current = setTimeout(() => {
      timerRef.current = null;
      fetchNowRef.current();
    }, delay ?? optsRef.current.debounceMs ?? PLAYLIST_DEBOUNCE_MS);
  }, []);

  /** Something changed on the server: answers to requests already sent may be stale. */
  const invalidate = useCallback(() => {
    floorRef.current = ++seqRef.current;
    schedule();
  }, [schedule]);

  const refresh = useCallback(() => {
    floorRef.current = ++seqRef.current;
    fetchNowRef.current();
  }, []);

  // ------------------------------------------------------------------ identity: (re)load
  useEffect(() => {
    mountedRef.current = true;
    whoRef.current = { userId, token: token || null };
    setPlaylists([]);
    setLoading(true);
    setError(null);
    droppedRef.current = 0;
    floorRef.current = ++seqRef.current;
    fetchNowRef.current();
    return () => {
      if (timerRef.current !== null) clearTimeout(timerRef.current);
      timerRef.current = null;
      ctrlRef.current?.abort();
      ctrlRef.current = null;
    };
  }, [userId, token]);

  useEffect(() => {
    mountedRef.current = true;
    const pending = pendingRef.current;
    return () => {
      mountedRef.current = false;
      for (const [, p] of pending) {
        clearTimeout(p.timer);
        p.reject(new Error('closed'));
      }
      pending.clear();
    };
  }, []);

  // ------------------------------------------------------------------ WebSocket events
  const { subscribe, connectionStatus } = ws;
  useEffect(
    () =>
      subscribe((e: WebSocketEvent) => {
        if (e.event === 'PlaylistUpdated' || e.event === 'PlaylistShared') {
          invalidate();
        } else if (e.event === 'CommandResponse') {
          const p = pendingRef.current.get(e.command_id);
          if (p) {
            pendingRef.current.delete(e.command_id);
            clearTimeout(p.timer);
            p.resolve(e as PlaylistCommandResponse);
          }
        }
      }),
    [subscribe, invalidate],
  );

  const statusRef = useRef(connectionStatus);
  useEffect(() => {
    const before = statusRef.current;
    statusRef.current = connectionStatus;
    if (before === connectionStatus) return;
    if (connectionStatus === 'connected') {
      schedule(); // events may have been missed while disconnected
    } else if (before === 'connected') {
      for (const [id, p] of pendingRef.current) {
        clearTimeout(p.timer);
        p.reject(new Error('the real-time connection closed before the server answered'));
        pendingRef.current.delete(id);
      }
    }
  }, [connectionStatus, schedule]);

  // ------------------------------------------------------------------ changes
  /**
   * Runs `op` after the changes already queued; `optimistic` edits the list now, `settle` edits
   * it with the answer once no other change is in flight. Then the list is re-fetched.
   */
  const mutate = useCallback(
    <T,>(optimistic: Edit | null, op: (who: ApiIdentity) => Promise<T>, settle: (result: T) => Edit): Promise<T> => {
      const who = whoRef.current;
      mutatingRef.current += 1;
      if (optimistic) {
        floorRef.current = ++seqRef.current;
        setPlaylists(optimistic);
      }
      const run = () => op(who);
      const done = chainRef.current.then(run, run);
      chainRef.current = done.catch(() => undefined);
      const finish = (edit: Edit | null) => {
        mutatingRef.current -= 1;
        if (!mountedRef.current) return;
        if (edit) resultsRef.current.push(edit);
        floorRef.current = ++seqRef.current;
        if (mutatingRef.current === 0) {
          const edits = resultsRef.current;
          resultsRef.current = [];
          if (edits.length) setPlaylists((list) => edits.reduce((l, f) => f(l), list));
        }
        schedule();
      };
      return done.then(
        (result) => {
          finish(settle(result));
          return result;
        },
        (err: unknown) => {
          finish(null); // the re-fetch puts back what an optimistic edit got wrong
          throw err;
        },
      );
    },
    [schedule],
  );

  /** `AddToPlaylist` over the socket; null when it is not open (or the command did not go out). */
  const addOverSocket = useCallback(
    (playlistId: string, trackId: string, position: number | null): Promise<PlaylistCommandResponse> | null => {
      const socket = wsRef.current;
      if (socket.connectionStatus !== 'connected') return null;
      const commandId = newCommandId('playlist_add');
      let settled: Promise<PlaylistCommandResponse> | null = new Promise<PlaylistCommandResponse>((resolve, reject) => {
        const timer = setTimeout(() => {
          pendingRef.current.delete(commandId);
          reject(new Error('the server did not answer AddToPlaylist in time'));
        }, optsRef.current.commandTimeoutMs ?? COMMAND_TIMEOUT_MS);
        pendingRef.current.set(commandId, { resolve, reject, timer });
      });
      const sent = socket.sendCommand({ command: 'AddToPlaylist', command_id: commandId, playlist_id: playlistId, track_id: trackId, position });
      if (!sent) {
        const p = pendingRef.current.get(commandId);
        if (p) clearTimeout(p.timer);
        pendingRef.current.delete(commandId);
        settled = null;
      }
      return settled;
    },
    [],
  );

  const create = useCallback(
    (name: string) => mutate(null, (who) => createPlaylist(name, who), (p) => (list) => upsertPlaylist(list, p)),
    [mutate],
  );

  const rename = useCallback(
    (id: string, name: string) =>
      mutate(
        (list) => list.map((p) => (p.id === id ? { ...p, name } : p)),
        (who) => renamePlaylist(id, name, who),
        (p) => (list) => upsertPlaylist(list, p),
      ),
    [mutate],
  );

  const remove = useCallback(
    (id: string) =>
      mutate(
        (list) => list.filter((p) => p.id !== id),
        (who) => deletePlaylist(id, who),
        () => (list) => list.filter((p) => p.id !== id),
      ),
    [mutate],
  );

  const addTrack = useCallback(
    (id: string, trackId: string, position?: number | null) =>
      mutate(
        null,
        async (who) => {
          const answer = addOverSocket(id, trackId, position ?? null);
          if (answer) {
            const res = await answer;
            if (res.success) return isPlaylist(res.data) ? res.data : getPlaylist(id, who);
            // Refused over the socket (a server without playlist commands, say): REST says why,
            // or does it. A refusal changed nothing, so this cannot add the track twice.
          }
          return addPlaylistTrack(id, trackId, position, who);
        },
        (p) => (list) => upsertPlaylist(list, p),
      ),
    [mutate, addOverSocket],
  );

  const removeAt = useCallback(
    (id: string, position: number) =>
      mutate(
        editTracks(id, (tracks) => tracks.filter((_, i) => i !== position)),
        (who) => removePlaylistTrack(id, position, who),
        (p) => (list) => upsertPlaylist(list, p),
      ),
    [mutate],
  );

  const move = useCallback(
    (id: string, from: number, to: number) =>
      mutate(
        editTracks(id, (tracks) => moveEntry(tracks, from, to)),
        (who) => movePlaylistTrack(id, from, to, who),
        (p) => (list) => upsertPlaylist(list, p),
      ),
    [mutate],
  );

  return useMemo(
    () => ({ playlists, loading, error, syncing, refresh, create, rename, delete: remove, addTrack, removeAt, move }),
    [playlists, loading, error, syncing, refresh, create, rename, remove, addTrack, removeAt, move],
  );
}
