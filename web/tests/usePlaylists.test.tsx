// usePlaylists against a real server speaking the playlists contract (tests/playlistServer.ts:
// node:http for REST, a `ws` WebSocketServer for the events and commands), each "tab" with its
// own real WebSocket connection through useWebSocket.

import { act, cleanup, renderHook, waitFor } from '@testing-library/react';
import { useEffect } from 'react';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket as NodeWebSocket } from 'ws';
import { setApiBase, type Playlist } from '../src/api';
import { moveEntry, usePlaylists, type PlaylistsApi } from '../src/hooks/usePlaylists';
import { useWebSocket, type WebSocketApi } from '../src/hooks/useWebSocket';
import { CATALOG, catalogEntry, startPlaylistServer, type PlaylistServer } from './playlistServer';

const FAST = { initialMs: 40, maxMs: 400, factor: 2, jitter: 0 };
const DEBOUNCE_MS = 60;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const [A, B, C] = CATALOG.map((t) => t.id);

interface Tab {
  ws: WebSocketApi;
  pl: PlaylistsApi;
}

/** One browser tab: the app's WebSocket (connected unless `offline`) and the playlists hook. */
function useTab(userId: string, token?: string, offline = false): Tab {
  const ws = useWebSocket({ backoff: FAST });
  const { connect, disconnect } = ws;
  useEffect(() => {
    if (!offline) connect(userId, token);
    return () => disconnect();
  }, [connect, disconnect, userId, token, offline]);
  const pl = usePlaylists(userId, token, { ws, debounceMs: DEBOUNCE_MS, commandTimeoutMs: 2000 });
  return { ws, pl };
}

async function openTab(userId: string, { token, offline = false }: { token?: string; offline?: boolean } = {}) {
  const r = renderHook(() => useTab(userId, token, offline));
  await waitFor(() => expect(r.result.current.pl.loading).toBe(false));
  if (!offline) await waitFor(() => expect(r.result.current.ws.connectionStatus).toBe('connected'));
  // Let the re-fetch that follows the connection land.
  await sleep(DEBOUNCE_MS * 2);
  await waitFor(() => expect(r.result.current.pl.syncing).toBe(false));
  return r;
}

const names = (list: Playlist[]) => list.map((p) => p.name);
const trackIds = (list: Playlist[], id: string) => list.find((p) => p.id === id)?.tracks.map((t) => t.track_id);

beforeAll(() => {
  // Node 20 has no WebSocket global; the `ws` client implements the browser API the hook uses.
  (globalThis as { WebSocket?: unknown }).WebSocket = NodeWebSocket;
});

let server: PlaylistServer;
beforeEach(async () => {
  server = await startPlaylistServer();
  setApiBase(server.base); // REST and the default WebSocket URL
});
afterEach(async () => {
  cleanup(); // unmounts what a failed test left mounted
  await server.close();
});
afterAll(() => setApiBase(''));

describe('usePlaylists', () => {
  it('loads the user’s own and shared playlists, newest first, naming the user with ?user_id', async () => {
    server.playlists.set('old', { id: 'old', name: 'Old', owner: 'ann', tracks: [catalogEntry(A)], updated_at: 1000, created_at: 1000, shared_with: [] });
    server.playlists.set('new', { id: 'new', name: 'New', owner: 'bob', tracks: [], updated_at: 2000, created_at: 2000, shared_with: ['ann'] });
    server.playlists.set('bobs', { id: 'bobs', name: 'Bob only', owner: 'bob', tracks: [], updated_at: 3000, created_at: 3000, shared_with: [] });
    const { result, unmount } = await openTab('ann');
    expect(names(result.current.pl.playlists)).toEqual(['New', 'Old']);
    expect(result.current.pl.error).toBeNull();
    const gets = server.requests.filter((r) => r.method === 'GET' && r.path === '/api/playlists');
    expect(gets.length).toBeGreaterThanOrEqual(1);
    for (const r of gets) {
      expect(r.query.get('user_id')).toBe('ann');
      expect(r.authorization).toBeNull();
    }
    unmount();
  });

  it('sends the token as a Bearer header instead of ?user_id', async () => {
    server.playlists.set('x', { id: 'x', name: 'Mine', owner: 'cat', tracks: [], updated_at: 1, created_at: 1, shared_with: [] });
    // The socket stays offline here: this is about the REST identity only.
    const { result, unmount } = await openTab('cat', { token: 'tok-cat', offline: true });
    expect(names(result.current.pl.playlists)).toEqual(['Mine']);
    await act(async () => {
      await result.current.pl.rename('x', 'Still mine');
    });
    for (const r of server.requests.filter((q) => q.path.startsWith('/api/playlists'))) {
      expect(r.authorization).toBe('Bearer tok-cat');
      expect(r.query.has('user_id')).toBe(false);
    }
    unmount();
  });

  it('creates, adds, reorders, removes, renames and deletes; the list follows at once', async () => {
    const { result, unmount } = await openTab('ann');
    let created!: Playlist;
    await act(async () => {
      created = await result.current.pl.create('Road trip');
    });
    expect(created).toMatchObject({ name: 'Road trip', owner: 'ann', tracks: [] });
    expect(names(result.current.pl.playlists)).toEqual(['Road trip']);
    expect(server.requests.find((r) => r.method === 'POST' && r.path === '/api/playlists')?.body).toEqual({ name: 'Road trip' });

    await act(async () => {
      await result.current.pl.addTrack(created.id, A);
      await result.current.pl.addTrack(created.id, B);
      await result.current.pl.addTrack(created.id, C, 0);
    });
    expect(trackIds(result.current.pl.playlists, created.id)).toEqual([C, A, B]);

    await act(async () => {
      await result.current.pl.move(created.id, 2, 0);
    });
    expect(trackIds(result.current.pl.playlists, created.id)).toEqual([B, C, A]);
    expect(server.requests.find((r) => r.path.endsWith('/move'))?.body).toEqual({ from: 2, to: 0 });

    await act(async () => {
      await result.current.pl.removeAt(created.id, 1);
    });
    expect(trackIds(result.current.pl.playlists, created.id)).toEqual([B, A]);
    expect(server.requests.some((r) => r.method === 'DELETE' && r.path === `/api/playlists/${created.id}/tracks/1`)).toBe(true);

    await act(async () => {
      await result.current.pl.rename(created.id, 'Long drive');
    });
    expect(names(result.current.pl.playlists)).toEqual(['Long drive']);

    await act(async () => {
      await result.current.pl.delete(created.id);
    });
    expect(result.current.pl.playlists).toEqual([]);
    await sleep(DEBOUNCE_MS * 3);
    expect(result.current.pl.playlists).toEqual([]);
    unmount();
  });

  it('applies quick successive moves in order (each on the list as the previous one left it)', async () => {
    server.playlists.set('q', { id: 'q', name: 'Q', owner: 'ann', tracks: [A, B, C].map(catalogEntry), updated_at: 1, created_at: 1, shared_with: [] });
    const { result, unmount } = await openTab('ann');
    // Three clicks on "up" for C without waiting: C goes to the top, then B down... as on screen.
    let p1!: Promise<unknown>, p2!: Promise<unknown>;
    act(() => {
      p1 = result.current.pl.move('q', 2, 1);
    });
    expect(trackIds(result.current.pl.playlists, 'q')).toEqual([A, C, B]); // at once, optimistically
    act(() => {
      p2 = result.current.pl.move('q', 1, 0);
    });
    expect(trackIds(result.current.pl.playlists, 'q')).toEqual([C, A, B]);
    await act(async () => {
      await Promise.all([p1, p2]);
    });
    expect(server.playlists.get('q')!.tracks.map((t) => t.track_id)).toEqual([C, A, B]);
    await waitFor(() => expect(result.current.pl.syncing).toBe(false));
    expect(trackIds(result.current.pl.playlists, 'q')).toEqual([C, A, B]);
    unmount();
  });

  it('re-fetches on PlaylistUpdated, and a burst of events costs one fetch', async () => {
    server.playlists.set('p', { id: 'p', name: 'Mix', owner: 'ann', tracks: [], updated_at: 1, created_at: 1, shared_with: [] });
    const { result, unmount } = await openTab('ann');
    expect(trackIds(result.current.pl.playlists, 'p')).toEqual([]);

    // Another client changes it: the event alone brings the change here.
    const before = server.listGets();
    server.change('p', (p) => p.tracks.push(catalogEntry(A)), 'Added');
    await waitFor(() => expect(trackIds(result.current.pl.playlists, 'p')).toEqual([A]));
    expect(server.listGets()).toBe(before + 1);

    // Ten changes in a row: one re-fetch, and the list shows the last state.
    const start = server.listGets();
    for (let i = 0; i < 10; i++) {
      server.change('p', (p) => {
        p.name = `Mix ${i}`;
      });
    }
    await waitFor(() => expect(names(result.current.pl.playlists)).toEqual(['Mix 9']));
    await sleep(DEBOUNCE_MS * 4);
    expect(server.listGets() - start).toBe(1);

    // A playlist shared with this user appears too (PlaylistShared).
    server.playlists.set('s', { id: 's', name: 'From Bob', owner: 'bob', tracks: [], updated_at: Date.now() + 10_000, created_at: 1, shared_with: ['ann'] });
    server.emitTo('ann', { event: 'PlaylistShared', playlist_id: 's', from_user: 'bob', to_users: ['ann'] });
    await waitFor(() => expect(names(result.current.pl.playlists)).toEqual(['From Bob', 'Mix 9']));
    unmount();
  });

  it('never shows a list that may predate an event: a slow, older answer is dropped', async () => {
    server.playlists.set('p', { id: 'p', name: 'One', owner: 'ann', tracks: [], updated_at: 1, created_at: 1, shared_with: [] });
    const { result, unmount } = await openTab('ann');
    expect(names(result.current.pl.playlists)).toEqual(['One']);

    // The next list answer is slow and says "Two"...
    server.listDelayMs = 400;
    const gets = server.listGets();
    server.change('p', (p) => {
      p.name = 'Two';
    });
    await waitFor(() => expect(server.listGets()).toBe(gets + 1)); // the slow request reached the server
    // ...while it is on its way, "Three" happens: its re-fetch is fast (and aborts the slow one,
    // which happy-dom, unlike a browser, reports as "socket hang up").
    server.listDelayMs = 0;
    server.change('p', (p) => {
      p.name = 'Three';
    });
    await waitFor(() => expect(names(result.current.pl.playlists)).toEqual(['Three']));
    // The slow "Two" arrives (or was aborted) after "Three": it must not be shown.
    const seen: string[][] = [];
    for (let i = 0; i < 10; i++) {
      seen.push(names(result.current.pl.playlists));
      await sleep(60);
    }
    expect(seen.every((n) => n[0] === 'Three')).toBe(true);
    unmount();
  });

  it('keeps two tabs of the same user in step, and keeps other users out', async () => {
    const tab1 = await openTab('ann');
    const tab2 = await openTab('ann');
    const other = await openTab('bob');
    expect(server.connections('ann')).toBe(2);

    // Tab 1 creates a playlist and adds two library tracks (over the WebSocket: AddToPlaylist).
    let id = '';
    await act(async () => {
      id = (await tab1.result.current.pl.create('Road trip')).id;
    });
    await act(async () => {
      await tab1.result.current.pl.addTrack(id, A);
      await tab1.result.current.pl.addTrack(id, B);
    });
    const adds = server.commands.filter((c) => c.command.command === 'AddToPlaylist');
    expect(adds.map((c) => c.command)).toEqual([
      expect.objectContaining({ playlist_id: id, track_id: A, position: null }),
      expect.objectContaining({ playlist_id: id, track_id: B, position: null }),
    ]);
    expect(adds.every((c) => c.user === 'ann')).toBe(true);
    expect(server.requests.some((r) => r.method === 'POST' && r.path.endsWith('/tracks'))).toBe(false);
    expect(trackIds(tab1.result.current.pl.playlists, id)).toEqual([A, B]);

    // Tab 2 follows, without being asked.
    await waitFor(() => expect(trackIds(tab2.result.current.pl.playlists, id)).toEqual([A, B]));
    expect(names(tab2.result.current.pl.playlists)).toEqual(['Road trip']);

    // Tab 2 reorders and removes; tab 1 follows.
    await act(async () => {
      await tab2.result.current.pl.move(id, 1, 0);
    });
    await waitFor(() => expect(trackIds(tab1.result.current.pl.playlists, id)).toEqual([B, A]));
    await act(async () => {
      await tab2.result.current.pl.removeAt(id, 1);
    });
    await waitFor(() => expect(trackIds(tab1.result.current.pl.playlists, id)).toEqual([B]));

    // Tab 1 renames it, tab 2 deletes it: both converge on the server's state.
    await act(async () => {
      await tab1.result.current.pl.rename(id, 'Long drive');
    });
    await waitFor(() => expect(names(tab2.result.current.pl.playlists)).toEqual(['Long drive']));
    await act(async () => {
      await tab2.result.current.pl.delete(id);
    });
    await waitFor(() => expect(tab1.result.current.pl.playlists).toEqual([]));
    expect(tab2.result.current.pl.playlists).toEqual([]);

    // Bob saw none of it.
    expect(other.result.current.pl.playlists).toEqual([]);
    expect(server.requests.filter((r) => r.query.get('user_id') === 'bob').every((r) => r.method === 'GET')).toBe(true);
    tab1.unmount();
    tab2.unmount();
    other.unmount();
  });

  it('adds over REST when the socket is not connected, and re-fetches by itself', async () => {
    server.playlists.set('p', { id: 'p', name: 'Mix', owner: 'ann', tracks: [], updated_at: 1, created_at: 1, shared_with: [] });
    const { result, unmount } = await openTab('ann', { offline: true });
    expect(result.current.ws.connectionStatus).toBe('disconnected');
    let answer!: Playlist;
    await act(async () => {
      answer = await result.current.pl.addTrack('p', C, 0);
    });
    expect(answer.tracks.map((t) => t.track_id)).toEqual([C]);
    expect(server.commands).toHaveLength(0);
    const post = server.requests.find((r) => r.method === 'POST' && r.path === '/api/playlists/p/tracks');
    expect(post?.body).toEqual({ track_id: C, position: 0 });
    expect(trackIds(result.current.pl.playlists, 'p')).toEqual([C]);

    // No events without a socket: after a change of its own, the hook re-fetches the list.
    const before = server.listGets();
    await waitFor(() => expect(server.listGets()).toBe(before + 1));
    unmount();
  });

  it('falls back to REST when the server refuses the AddToPlaylist command', async () => {
    server.playlists.set('p', { id: 'p', name: 'Mix', owner: 'ann', tracks: [], updated_at: 1, created_at: 1, shared_with: [] });
    server.refuseCommands = true;
    const { result, unmount } = await openTab('ann');
    await act(async () => {
      await result.current.pl.addTrack('p', A);
    });
    expect(server.commands.map((c) => c.command.command)).toEqual(['AddToPlaylist']);
    expect(server.requests.filter((r) => r.method === 'POST' && r.path === '/api/playlists/p/tracks')).toHaveLength(1);
    expect(server.playlists.get('p')!.tracks.map((t) => t.track_id)).toEqual([A]); // once
    expect(trackIds(result.current.pl.playlists, 'p')).toEqual([A]);
    unmount();
  });

  it('rejects a refused change and puts the server’s state back', async () => {
    server.playlists.set('bobs', { id: 'bobs', name: 'Bob’s', owner: 'bob', tracks: [], updated_at: 1, created_at: 1, shared_with: ['ann'] });
    const { result, unmount } = await openTab('ann');
    let failure: unknown = null;
    await act(async () => {
      await result.current.pl.rename('bobs', 'Mine now').catch((err: unknown) => {
        failure = err;
      });
    });
    expect(failure).toMatchObject({ name: 'ApiError', status: 403, code: 'not_owner' });
    await waitFor(() => expect(names(result.current.pl.playlists)).toEqual(['Bob’s']));
    unmount();
  });

  it('re-fetches after the socket reconnects (events missed while it was down)', async () => {
    server.playlists.set('p', { id: 'p', name: 'Before', owner: 'ann', tracks: [], updated_at: 1, created_at: 1, shared_with: [] });
    const { result, unmount } = await openTab('ann');
    // Changed without an event (as if while this tab was away), then the connection drops.
    server.playlists.get('p')!.name = 'While away';
    const opened = server.connectionsOpened();
    server.dropAll();
    await waitFor(() => expect(server.connectionsOpened()).toBe(opened + 1));
    await waitFor(() => expect(result.current.ws.connectionStatus).toBe('connected'));
    await waitFor(() => expect(names(result.current.pl.playlists)).toEqual(['While away']));
    unmount();
  });

  it('reports a list that cannot be loaded', async () => {
    const { result, unmount } = await openTab(''); // no user id: the server answers 401
    expect(result.current.pl.error).toBe('who are you?');
    expect(result.current.pl.playlists).toEqual([]);
    unmount();
  });
});

describe('moveEntry', () => {
  it('moves one item, and leaves out-of-range moves alone', () => {
    expect(moveEntry(['a', 'b', 'c'], 0, 2)).toEqual(['b', 'c', 'a']);
    expect(moveEntry(['a', 'b', 'c'], 2, 0)).toEqual(['c', 'a', 'b']);
    expect(moveEntry(['a', 'b', 'c'], 1, 3)).toEqual(['a', 'b', 'c']);
  });
});
