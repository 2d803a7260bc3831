// usePlaylists against the real stream-server (tests/liveServer.ts: `serve --demo --auth-mode
// open`, one server for the file, a fresh user per test), each "tab" with its own real WebSocket
// connection through useWebSocket. Another device of the same user is played by REST calls of
// the test's own; what the hooks send is recorded on the way (fetch and WebSocket pass through).

import { act, cleanup, renderHook, waitFor } from '@testing-library/react';
import { useEffect } from 'react';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { setApiBase, type Playlist } from '../src/api';
import { moveEntry, usePlaylists, type PlaylistsApi } from '../src/hooks/usePlaylists';
import { useWebSocket, type WebSocketApi } from '../src/hooks/useWebSocket';
import { freshUser, recordTraffic, restAs, startLiveServer, tokenFor, type LiveServer, type Traffic } from './liveServer';

const FAST = { initialMs: 40, maxMs: 400, factor: 2, jitter: 0 };
const DEBOUNCE_MS = 60;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Tab {
  ws: WebSocketApi;
  pl: PlaylistsApi;
}

interface TabOptions {
  token?: string;
  /** No WebSocket at all. */
  offline?: boolean;
  /** The WebSocket connects without naming the user (the server lets it listen, not act). */
  anonymousSocket?: boolean;
  debounceMs?: number;
}

/** One browser tab: the app's WebSocket (connected unless `offline`) and the playlists hook. */
function useTab(userId: string, { token, offline = false, anonymousSocket = false, debounceMs = DEBOUNCE_MS }: TabOptions): Tab {
  const ws = useWebSocket({ backoff: FAST });
  const { connect, disconnect } = ws;
  useEffect(() => {
    if (!offline) {
      if (anonymousSocket) connect();
      else connect(userId, token);
    }
    return () => disconnect();
  }, [connect, disconnect, userId, token, offline, anonymousSocket]);
  const pl = usePlaylists(userId, token, { ws, debounceMs, commandTimeoutMs: 4000 });
  return { ws, pl };
}

async function openTab(userId: string, opts: TabOptions = {}) {
  const r = renderHook(() => useTab(userId, opts));
  await waitFor(() => expect(r.result.current.pl.loading).toBe(false));
  if (!opts.offline) await waitFor(() => expect(r.result.current.ws.connectionStatus).toBe('connected'));
  // Let the re-fetch that follows the connection land.
  await sleep((opts.debounceMs ?? DEBOUNCE_MS) * 2);
  await waitFor(() => expect(r.result.current.pl.syncing).toBe(false));
  return r;
}

const names = (list: Playlist[]) => list.map((p) => p.name);
const trackIds = (list: Playlist[], id: string) => list.find((p) => p.id === id)?.tracks.map((t) => t.track_id);

let server: LiveServer;
let traffic: Traffic;
let A: string, B: string, C: string;

beforeAll(async () => {
  server = await startLiveServer();
  [A, B, C] = (await restAs(server, 'setup').tracks()).map((t) => t.id);
  traffic = recordTraffic();
  setApiBase(server.base); // REST and the default WebSocket URL
}, 120_000);
beforeEach(() => traffic.reset());
afterEach(() => {
  cleanup(); // unmounts what a failed test left mounted
  traffic.reset();
});
afterAll(async () => {
  traffic?.restore();
  setApiBase('');
  await server?.stop();
});

describe('usePlaylists against stream-server', () => {
  it('loads the user’s own and shared playlists, newest first, naming the user with ?user_id', async () => {
    const ann = freshUser('ann');
    const bob = freshUser('bob');
    const old = await restAs(server, ann).create('Old');
    await restAs(server, ann).add(old.id, A);
    await sleep(5);
    const fresh = await restAs(server, bob).create('New');
    await restAs(server, bob).share(fresh.id, [ann]);
    await sleep(5);
    await restAs(server, bob).create('Bob only');
    const { result, unmount } = await openTab(ann);
    expect(names(result.current.pl.playlists)).toEqual(['New', 'Old']);
    expect(trackIds(result.current.pl.playlists, old.id)).toEqual([A]);
    expect(result.current.pl.error).toBeNull();
    const gets = traffic.requests.filter((r) => r.method === 'GET' && r.path === '/api/playlists');
    expect(gets.length).toBeGreaterThanOrEqual(1);
    for (const r of gets) {
      expect(r.query.get('user_id')).toBe(ann);
      expect(r.authorization).toBeNull();
    }
    unmount();
  });

  it('sends the token as a Bearer header instead of ?user_id', async () => {
    const cat = freshUser('cat');
    const mine = await restAs(server, cat).create('Mine');
    const token = tokenFor(server, cat);
    // The socket stays offline here: this is about the REST identity only.
    const { result, unmount } = await openTab(cat, { token, offline: true });
    expect(names(result.current.pl.playlists)).toEqual(['Mine']);
    await act(async () => {
      await result.current.pl.rename(mine.id, 'Still mine');
    });
    expect((await restAs(server, cat).get(mine.id)).name).toBe('Still mine');
    const sent = traffic.requests.filter((q) => q.path.startsWith('/api/playlists'));
    expect(sent.length).toBeGreaterThanOrEqual(2);
    for (const r of sent) {
      expect(r.authorization).toBe(`Bearer ${token}`);
      expect(r.query.has('user_id')).toBe(false);
    }
    unmount();
  });

  it('creates, adds, reorders, removes, renames and deletes; the list follows at once', async () => {
    const ann = freshUser('ann');
    const { result, unmount } = await openTab(ann);
    let created!: Playlist;
    await act(async () => {
      created = await result.current.pl.create('Road trip');
    });
    expect(created).toMatchObject({ name: 'Road trip', owner: ann, tracks: [] });
    expect(names(result.current.pl.playlists)).toEqual(['Road trip']);
    expect(traffic.requests.find((r) => r.method === 'POST' && r.path === '/api/playlists')?.body).toEqual({ name: 'Road trip' });

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
    expect(traffic.requests.find((r) => r.path.endsWith('/move'))?.body).toEqual({ from: 2, to: 0 });

    await act(async () => {
      await result.current.pl.removeAt(created.id, 1);
    });
    expect(trackIds(result.current.pl.playlists, created.id)).toEqual([B, A]);
    expect(traffic.requests.some((r) => r.method === 'DELETE' && r.path === `/api/playlists/${created.id}/tracks/1`)).toBe(true);
    // The server holds the same.
    expect((await restAs(server, ann).get(created.id)).tracks.map((t) => t.track_id)).toEqual([B, A]);

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
    expect(await restAs(server, ann).list()).toEqual([]);
    unmount();
  });

  it('applies quick successive moves in order (each on the list as the previous one left it)', async () => {
    const ann = freshUser('ann');
    const q = await restAs(server, ann).create('Q');
    for (const t of [A, B, C]) await restAs(server, ann).add(q.id, t);
    const { result, unmount } = await openTab(ann);
    // Two clicks on "up" for C without waiting: C goes to the top, as on screen.
    let p1!: Promise<unknown>, p2!: Promise<unknown>;
    act(() => {
      p1 = result.current.pl.move(q.id, 2, 1);
    });
    expect(trackIds(result.current.pl.playlists, q.id)).toEqual([A, C, B]); // at once, optimistically
    act(() => {
      p2 = result.current.pl.move(q.id, 1, 0);
    });
    expect(trackIds(result.current.pl.playlists, q.id)).toEqual([C, A, B]);
    await act(async () => {
      await Promise.all([p1, p2]);
    });
    expect((await restAs(server, ann).get(q.id)).tracks.map((t) => t.track_id)).toEqual([C, A, B]);
    await waitFor(() => expect(result.current.pl.syncing).toBe(false));
    expect(trackIds(result.current.pl.playlists, q.id)).toEqual([C, A, B]);
    unmount();
  });

  it('re-fetches on PlaylistUpdated, and a burst of events costs one fetch', async () => {
    const ann = freshUser('ann');
    const bob = freshUser('bob');
    const other = restAs(server, ann); // another device of the same listener
    const p = await other.create('Mix');
    // A longer debounce than the others: the burst below must fit in it on a busy machine.
    const debounceMs = 400;
    const { result, unmount } = await openTab(ann, { debounceMs });
    expect(trackIds(result.current.pl.playlists, p.id)).toEqual([]);

    // Another client changes it: the event alone brings the change here.
    const before = traffic.listGets();
    await other.add(p.id, A);
    await waitFor(() => expect(trackIds(result.current.pl.playlists, p.id)).toEqual([A]));
    expect(traffic.listGets()).toBe(before + 1);
    expect(result.current.ws.events.some((e) => e.event === 'PlaylistUpdated' && e.playlist_id === p.id)).toBe(true);

    // Ten changes at once: one re-fetch, and the list shows the last state.
    const start = traffic.listGets();
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 10 }, () => other.add(p.id, B)));
    const burstMs = Date.now() - t0;
    await waitFor(() => expect(trackIds(result.current.pl.playlists, p.id)).toHaveLength(11));
    await sleep(debounceMs * 2);
    if (burstMs < debounceMs / 2) expect(traffic.listGets() - start).toBe(1);
    else expect(traffic.listGets() - start).toBeLessThanOrEqual(Math.ceil(burstMs / debounceMs) + 1);

    // A playlist shared with this user appears too (PlaylistShared).
    await sleep(5);
    const shared = await restAs(server, bob).create('From Bob');
    await restAs(server, bob).share(shared.id, [ann]);
    await waitFor(() => expect(names(result.current.pl.playlists)).toEqual(['From Bob', 'Mix']));
    unmount();
  });

  it('never shows a list that may predate an event: a slow, older answer is dropped', async () => {
    const ann = freshUser('ann');
    const other = restAs(server, ann);
    const p = await other.create('One');
    const { result, unmount } = await openTab(ann);
    expect(names(result.current.pl.playlists)).toEqual(['One']);

    // The next list answer is slow to come back and says "Two"...
    traffic.listDelayMs = 600;
    const gets = traffic.listGets();
    await other.rename(p.id, 'Two');
    await waitFor(() => expect(traffic.listGets()).toBe(gets + 1)); // the slow request went out
    // ...while it is on its way, "Three" happens: its re-fetch is fast (and aborts the slow one).
    traffic.listDelayMs = 0;
    await other.rename(p.id, 'Three');
    await waitFor(() => expect(names(result.current.pl.playlists)).toEqual(['Three']));
    // The slow "Two" arrives after "Three": it must not be shown.
    const seen: string[][] = [];
    for (let i = 0; i < 12; i++) {
      seen.push(names(result.current.pl.playlists));
      await sleep(60);
    }
    expect(seen.every((n) => n[0] === 'Three')).toBe(true);
    unmount();
  });

  it('keeps two tabs of the same user in step, and keeps other users out', async () => {
    const ann = freshUser('ann');
    const bob = freshUser('bob');
    const tab1 = await openTab(ann);
    const tab2 = await openTab(ann);
    const other = await openTab(bob);
    expect(traffic.connections(ann)).toBe(2);

    // Tab 1 creates a playlist and adds two library tracks (over the WebSocket: AddToPlaylist).
    let id = '';
    await act(async () => {
      id = (await tab1.result.current.pl.create('Road trip')).id;
    });
    await act(async () => {
      await tab1.result.current.pl.addTrack(id, A);
      await tab1.result.current.pl.addTrack(id, B);
    });
    const adds = traffic.commands.filter((c) => c.command.command === 'AddToPlaylist');
    expect(adds.map((c) => c.command)).toEqual([
      expect.objectContaining({ playlist_id: id, track_id: A, position: null }),
      expect.objectContaining({ playlist_id: id, track_id: B, position: null }),
    ]);
    expect(adds.every((c) => c.user === ann)).toBe(true);
    expect(traffic.requests.some((r) => r.method === 'POST' && r.path.endsWith('/tracks'))).toBe(false);
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

    // Bob saw none of it: no event about the playlist, and only reads of his own list.
    expect(other.result.current.pl.playlists).toEqual([]);
    expect(other.result.current.ws.events.some((e) => e.event === 'PlaylistUpdated' && e.playlist_id === id)).toBe(false);
    expect(tab2.result.current.ws.events.some((e) => e.event === 'PlaylistUpdated' && e.playlist_id === id)).toBe(true);
    expect(traffic.requests.filter((r) => r.query.get('user_id') === bob).every((r) => r.method === 'GET')).toBe(true);
    tab1.unmount();
    tab2.unmount();
    other.unmount();
  });

  it('adds over REST when the socket is not connected, and re-fetches by itself', async () => {
    const ann = freshUser('ann');
    const p = await restAs(server, ann).create('Mix');
    const { result, unmount } = await openTab(ann, { offline: true });
    expect(result.current.ws.connectionStatus).toBe('disconnected');
    let answer!: Playlist;
    await act(async () => {
      answer = await result.current.pl.addTrack(p.id, C, 0);
    });
    expect(answer.tracks.map((t) => t.track_id)).toEqual([C]);
    expect(traffic.commands).toHaveLength(0);
    const post = traffic.requests.find((r) => r.method === 'POST' && r.path === `/api/playlists/${p.id}/tracks`);
    expect(post?.body).toEqual({ track_id: C, position: 0 });
    expect(trackIds(result.current.pl.playlists, p.id)).toEqual([C]);

    // No events without a socket: after a change of its own, the hook re-fetches the list.
    const before = traffic.listGets();
    await waitFor(() => expect(traffic.listGets()).toBe(before + 1));
    unmount();
  });

  it('falls back to REST when the server refuses the AddToPlaylist command', async () => {
    const ann = freshUser('ann');
    const p = await restAs(server, ann).create('Mix');
    // The socket does not name the user: stream-server lets it listen, and refuses its commands.
    const { result, unmount } = await openTab(ann, { anonymousSocket: true });
    await act(async () => {
      await result.current.pl.addTrack(p.id, A);
    });
    expect(traffic.commands.map((c) => c.command.command)).toEqual(['AddToPlaylist']);
    const refusal = result.current.ws.events.find((e) => e.event === 'CommandResponse' && e.command_id === traffic.commands[0].command.command_id);
    expect(refusal).toMatchObject({ success: false });
    expect(traffic.requests.filter((r) => r.method === 'POST' && r.path === `/api/playlists/${p.id}/tracks`)).toHaveLength(1);
    expect((await restAs(server, ann).get(p.id)).tracks.map((t) => t.track_id)).toEqual([A]); // once
    expect(trackIds(result.current.pl.playlists, p.id)).toEqual([A]);
    unmount();
  });

  it('rejects a refused change and puts the server’s state back', async () => {
    const ann = freshUser('ann');
    const bob = freshUser('bob');
    const bobs = await restAs(server, bob).create('Bob’s');
    await restAs(server, bob).share(bobs.id, [ann]);
    const { result, unmount } = await openTab(ann);
    expect(names(result.current.pl.playlists)).toEqual(['Bob’s']);
    let failure: unknown = null;
    await act(async () => {
      await result.current.pl.rename(bobs.id, 'Mine now').catch((err: unknown) => {
        failure = err;
      });
    });
    expect(failure).toMatchObject({ name: 'ApiError', status: 403, code: 'not_owner' });
    await waitFor(() => expect(names(result.current.pl.playlists)).toEqual(['Bob’s']));
    expect((await restAs(server, bob).get(bobs.id)).name).toBe('Bob’s');
    unmount();
  });

  it('re-fetches after the socket reconnects (events missed while it was down)', async () => {
    const ann = freshUser('ann');
    const p = await restAs(server, ann).create('Before');
    const { result, unmount } = await openTab(ann);
    // The connection drops and cannot come back for a while...
    traffic.offline = true;
    const opened = traffic.connectionsOpened();
    traffic.dropAll();
    await waitFor(() => expect(result.current.ws.connectionStatus).not.toBe('connected'));
    // ...meanwhile it changes elsewhere (the event reaches no connection of this tab)...
    await restAs(server, ann).rename(p.id, 'While away');
    await sleep(DEBOUNCE_MS * 3);
    expect(names(result.current.pl.playlists)).toEqual(['Before']);
    // ...then the network is back: reconnected, and the list caught up.
    traffic.offline = false;
    await waitFor(() => expect(traffic.connectionsOpened()).toBe(opened + 1), { timeout: 5000 });
    await waitFor(() => expect(result.current.ws.connectionStatus).toBe('connected'));
    await waitFor(() => expect(names(result.current.pl.playlists)).toEqual(['While away']));
    unmount();
  });

  it('reports a list that cannot be loaded', async () => {
    const { result, unmount } = await openTab('', { offline: true }); // no user: the server answers 401
    const r = traffic.requests.find((q) => q.path === '/api/playlists');
    expect(r?.query.has('user_id')).toBe(true);
    expect(result.current.pl.error).toMatch(/who you are/);
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
