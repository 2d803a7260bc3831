// useWebSocket against a real WebSocket server (the `ws` package) speaking a tiny echo of the
// protocol: every command gets a CommandResponse; the test pushes events at will.

import { act, renderHook, waitFor } from '@testing-library/react';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket as NodeWebSocket, WebSocketServer } from 'ws';
import { backoffDelay, DEFAULT_BACKOFF, useWebSocket } from '../src/hooks/useWebSocket';
import type { WebSocketCommand } from '../src/protocol';

interface EchoServer {
  wss: WebSocketServer;
  url: string;
  /** Every connection attempt: time and query. */
  attempts: { at: number; query: URLSearchParams; accepted: boolean }[];
  received: WebSocketCommand[];
  /** While false, handshakes are refused with 503. */
  accept: boolean;
  push: (payload: unknown) => void;
  pushRaw: (data: string | Buffer) => void;
  dropAll: () => void;
  close: () => Promise<void>;
}

async function startEchoServer(): Promise<EchoServer> {
  const state = {
    attempts: [] as EchoServer['attempts'],
    received: [] as WebSocketCommand[],
    accept: true,
  };
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    path: '/api/ws',
    verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number) => void) => {
      const query = new URL(info.req.url ?? '/', 'http://x').searchParams;
      state.attempts.push({ at: Date.now(), query, accepted: state.accept });
      if (state.accept) done(true);
      else done(false, 503);
    },
  });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  wss.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      let cmd: WebSocketCommand;
      try {
        cmd = JSON.parse(data.toString()) as WebSocketCommand;
      } catch {
        return;
      }
      state.received.push(cmd);
      socket.send(
        JSON.stringify({ event: 'CommandResponse', command_id: cmd.command_id, success: true, data: { command: cmd.command }, error: null }),
      );
    });
  });
  const { port } = wss.address() as AddressInfo;
  const server: EchoServer = {
    wss,
    url: `ws://127.0.0.1:${port}/api/ws`,
    get attempts() {
      return state.attempts;
    },
    get received() {
      return state.received;
    },
    get accept() {
      return state.accept;
    },
    set accept(v: boolean) {
      state.accept = v;
    },
    push: (payload) => server.pushRaw(JSON.stringify(payload)),
    pushRaw: (data) => {
      for (const c of wss.clients) if (c.readyState === NodeWebSocket.OPEN) c.send(data);
    },
    dropAll: () => {
      for (const c of wss.clients) c.terminate();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
  return server;
}

const FAST = { initialMs: 40, maxMs: 400, factor: 2, jitter: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  // Node 20 has no WebSocket global; the `ws` client implements the browser API the hook uses.
  (globalThis as { WebSocket?: unknown }).WebSocket = NodeWebSocket;
});

let server: EchoServer;
beforeEach(async () => {
  server = await startEchoServer();
});
afterEach(async () => {
  await server.close();
});

describe('useWebSocket', () => {
  it('connects with user_id and token, and reports its status', async () => {
    const { result, unmount } = renderHook(() => useWebSocket({ url: server.url, backoff: FAST }));
    expect(result.current.connectionStatus).toBe('disconnected');
    act(() => result.current.connect('listener-ab12', 's3cret'));
    expect(result.current.connectionStatus).toBe('connecting');
    await waitFor(() => expect(result.current.connectionStatus).toBe('connected'));
    expect(server.attempts).toHaveLength(1);
    expect(server.attempts[0].query.get('user_id')).toBe('listener-ab12');
    expect(server.attempts[0].query.get('token')).toBe('s3cret');
    unmount();
  });

  it('sends commands and parses the events that come back', async () => {
    const { result, unmount } = renderHook(() => useWebSocket({ url: server.url, backoff: FAST }));
    act(() => result.current.connect('u1'));
    await waitFor(() => expect(result.current.connectionStatus).toBe('connected'));

    let sent = false;
    act(() => {
      sent = result.current.sendCommand({ command: 'Ping', command_id: 'ping_1' });
    });
    expect(sent).toBe(true);
    await waitFor(() => expect(result.current.events).toHaveLength(1));
    expect(result.current.events[0]).toEqual({
      event: 'CommandResponse',
      command_id: 'ping_1',
      success: true,
      data: { command: 'Ping' },
      error: null,
    });
    expect(server.received[0]).toEqual({ command: 'Ping', command_id: 'ping_1' });

    act(() => {
      result.current.sendCommand({ command: 'Seek', command_id: 'seek_1', track_id: 't1', position_ms: 12_000 });
    });
    await waitFor(() => expect(result.current.events).toHaveLength(2));
    expect(server.received[1]).toEqual({ command: 'Seek', command_id: 'seek_1', track_id: 't1', position_ms: 12_000 });

    server.push({ event: 'LiveStats', concurrent_listeners: 3, top_tracks: [], server_load: 0.25 });
    await waitFor(() => expect(result.current.events).toHaveLength(3));
    expect(result.current.events[2]).toMatchObject({ event: 'LiveStats', concurrent_listeners: 3 });
    unmount();
  });

  it('hands every event to subscribers as it arrives, until they unsubscribe', async () => {
    const { result, unmount } = renderHook(() => useWebSocket({ url: server.url, backoff: FAST, maxEvents: 5 }));
    act(() => result.current.connect('u1'));
    await waitFor(() => expect(result.current.connectionStatus).toBe('connected'));
    const seen: number[] = [];
    const off = result.current.subscribe((e) => {
      if (e.event === 'PlaybackProgress') seen.push(e.position_ms);
    });
    for (let i = 0; i < 20; i++) {
      server.push({ event: 'PlaybackProgress', track_id: 't', user_id: 'u', position_ms: i, buffer_percentage: 50 });
    }
    await waitFor(() => expect(seen).toHaveLength(20));
    expect(seen).toEqual([...Array(20).keys()]); // none lost, though only 5 are kept
    expect(result.current.events).toHaveLength(5);
    off();
    server.push({ event: 'PlaybackProgress', track_id: 't', user_id: 'u', position_ms: 99, buffer_percentage: 50 });
    await waitFor(() => expect(result.current.events.at(-1)).toMatchObject({ position_ms: 99 }));
    expect(seen).toHaveLength(20);
    unmount();
  });

  it('ignores frames that are not JSON events, without crashing', async () => {
    const { result, unmount } = renderHook(() => useWebSocket({ url: server.url, backoff: FAST }));
    act(() => result.current.connect());
    await waitFor(() => expect(result.current.connectionStatus).toBe('connected'));
    server.pushRaw('hello, not json');
    server.pushRaw('[1,2,3]');
    server.pushRaw('{"command":"Ping","command_id":"x"}');
    server.pushRaw(Buffer.from([0, 1, 2, 3]));
    server.push({ event: 'ServerMessage', message: 'after the junk', level: 'Info' });
    await waitFor(() => expect(result.current.events).toHaveLength(1));
    expect(result.current.events[0]).toMatchObject({ event: 'ServerMessage', message: 'after the junk' });
    expect(result.current.connectionStatus).toBe('connected');
    unmount();
  });

  it('keeps only the last 100 events', async () => {
    const { result, unmount } = renderHook(() => useWebSocket({ url: server.url, backoff: FAST }));
    act(() => result.current.connect());
    await waitFor(() => expect(result.current.connectionStatus).toBe('connected'));
    for (let i = 0; i < 150; i++) {
      server.push({ event: 'PlaybackProgress', track_id: 't', user_id: 'u', position_ms: i, buffer_percentage: 50 });
    }
    await waitFor(() => {
      const ev = result.current.events;
      expect(ev.at(-1)).toMatchObject({ position_ms: 149 });
    });
    const ev = result.current.events;
    expect(ev).toHaveLength(100);
    expect(ev[0]).toMatchObject({ position_ms: 50 });
    // The history holds the same events, each numbered in order of arrival: at the cap, the
    // numbers go on (151, 152…) instead of being reused, so they can key a list.
    const h = result.current.history;
    expect(h.map((r) => r.event)).toEqual(ev);
    expect(h.map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => 51 + i));
    // ...and across a reconnection.
    const attempts = server.attempts.length;
    server.dropAll();
    await waitFor(() => expect(server.attempts.length).toBe(attempts + 1));
    await waitFor(() => expect(result.current.connectionStatus).toBe('connected'));
    server.push({ event: 'ServerMessage', message: 'back', level: 'Info' });
    await waitFor(() => expect(result.current.history.at(-1)?.event).toMatchObject({ message: 'back' }));
    expect(result.current.history.at(-1)?.seq).toBe(151);
    expect(result.current.history[0].seq).toBe(52);
    unmount();
  });

  it('reconnects with growing delays after the server drops it, and resets once connected', async () => {
    const { result, unmount } = renderHook(() => useWebSocket({ url: server.url, backoff: FAST }));
    act(() => result.current.connect('u2'));
    await waitFor(() => expect(result.current.connectionStatus).toBe('connected'));

    // Drop the connection and refuse the next handshakes: the hook retries, further apart each time.
    server.accept = false;
    server.dropAll();
    await waitFor(() => expect(result.current.connectionStatus).not.toBe('connected'));
    await waitFor(() => expect(server.attempts.filter((a) => !a.accepted).length).toBeGreaterThanOrEqual(4), { timeout: 5000 });
    const refused = server.attempts.filter((a) => !a.accepted);
    const gaps = refused.slice(1).map((a, i) => a.at - refused[i].at);
    // Nominal delays 40, 80, 160, 320 ms (jitter 0): each gap at least the nominal one, and growing.
    expect(gaps[0]).toBeGreaterThanOrEqual(75);
    expect(gaps[1]).toBeGreaterThanOrEqual(155);
    expect(gaps[1]).toBeGreaterThan(gaps[0]);
    expect(gaps[2]).toBeGreaterThan(gaps[1]);
    expect(result.current.retryCount).toBeGreaterThanOrEqual(4);

    // Let it in again: connected, the retry counter reset, the same identity.
    server.accept = true;
    await waitFor(() => expect(result.current.connectionStatus).toBe('connected'), { timeout: 5000 });
    expect(result.current.retryCount).toBe(0);
    expect(server.attempts.at(-1)?.query.get('user_id')).toBe('u2');

    // A later drop starts again from the shortest delay.
    const before = server.attempts.length;
    const droppedAt = Date.now();
    server.dropAll();
    await waitFor(() => expect(server.attempts.length).toBeGreaterThan(before));
    expect(server.attempts[before].at - droppedAt).toBeLessThan(300);
    await waitFor(() => expect(result.current.connectionStatus).toBe('connected'));
    unmount();
  });

  it('does not reconnect after disconnect(), and sendCommand then reports false', async () => {
    const { result, unmount } = renderHook(() => useWebSocket({ url: server.url, backoff: FAST }));
    act(() => result.current.connect());
    await waitFor(() => expect(result.current.connectionStatus).toBe('connected'));
    act(() => result.current.disconnect());
    expect(result.current.connectionStatus).toBe('disconnected');
    const attempts = server.attempts.length;
    await sleep(400);
    expect(server.attempts.length).toBe(attempts);
    expect(result.current.connectionStatus).toBe('disconnected');
    let sent = true;
    act(() => {
      sent = result.current.sendCommand({ command: 'GetStatus', command_id: 'st_1' });
    });
    expect(sent).toBe(false);
    await sleep(50);
    expect(server.received).toHaveLength(0);
    unmount();
  });

  it('stays disconnected and keeps retrying while nothing listens', async () => {
    await server.close();
    const { result, unmount } = renderHook(() => useWebSocket({ url: server.url, backoff: FAST }));
    act(() => result.current.connect());
    await waitFor(() => expect(result.current.retryCount).toBeGreaterThanOrEqual(3), { timeout: 5000 });
    expect(result.current.connectionStatus).not.toBe('connected');
    expect(result.current.sendCommand({ command: 'Ping', command_id: 'p' })).toBe(false);
    unmount();
    server = await startEchoServer(); // for afterEach
  });

  it('stops retrying when the component unmounts', async () => {
    server.accept = false;
    const { result, unmount } = renderHook(() => useWebSocket({ url: server.url, backoff: FAST }));
    act(() => result.current.connect());
    await waitFor(() => expect(server.attempts.length).toBeGreaterThanOrEqual(2));
    unmount();
    const n = server.attempts.length;
    await sleep(500);
    expect(server.attempts.length).toBeLessThanOrEqual(n + 1); // at most one handshake in flight
  });
});

describe('backoffDelay', () => {
  it('grows exponentially up to the cap, with jitter inside bounds', () => {
    const opts = { ...DEFAULT_BACKOFF, jitter: 0 };
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, opts))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    const jittered = { ...DEFAULT_BACKOFF, jitter: 0.5 };
    expect(backoffDelay(2, jittered, () => 0)).toBe(2000);
    expect(backoffDelay(2, jittered, () => 0.999999)).toBe(4000);
    expect(backoffDelay(50, jittered, () => 1)).toBe(30000);
  });
});
