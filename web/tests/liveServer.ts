// What the playlist suites share: a real stream-server (e2e/harness.mjs, `--auth-mode open` so
// that a bare `?user_id=` names the listener, as the app does on a private network; tokens minted
// by `stream-server token` for the token path), a REST client of their own acting as "another
// device" of a user, and a recorder of what the code under test sends.
//
// The recorder does not answer anything: requests go to the real server unchanged (fetch is
// wrapped, not replaced), WebSocket frames too (a subclass of the `ws` client that the hooks get
// as the global WebSocket). It can only simulate the network: delay the delivery of a list answer,
// cut a client's connections, or keep new ones from reaching the server.

import { vi } from 'vitest';
import { WebSocket as NodeWebSocket } from 'ws';
// Plain JS shared with the e2e script (typed by inference: allowJs).
import { mintToken, startServer } from '../e2e/harness.mjs';
import type { Playlist, Track } from '../src/api';
import type { WebSocketCommand } from '../src/protocol';

export interface LiveServer {
  base: string;
  dataDir: string;
  stop: () => Promise<void>;
  logs: () => string;
}

/** `stream-server serve --auth-mode open` (the demo library unless `library` is given). */
export async function startLiveServer(opts: { dataDir?: string; library?: string } = {}): Promise<LiveServer> {
  return (await startServer({ dataDir: opts.dataDir ?? null, library: opts.library ?? null, args: ['--auth-mode', 'open'] })) as LiveServer;
}

export function tokenFor(server: LiveServer, user: string): string {
  return mintToken(server.dataDir, user);
}

/** The real fetch, kept before any wrapping: for the tests' own requests (not recorded). */
const realFetch: typeof fetch = globalThis.fetch.bind(globalThis);

/** A REST client acting as `user` from another device (its requests are not recorded). */
export function restAs(server: LiveServer, user: string) {
  const call = async <T,>(method: string, path: string, body?: unknown): Promise<T> => {
    const url = `${server.base}${path}${path.includes('?') ? '&' : '?'}user_id=${encodeURIComponent(user)}`;
    const res = await realFetch(url, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} as ${user}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : null) as T;
  };
  return {
    tracks: () => call<Track[]>('GET', '/api/tracks'),
    list: () => call<Playlist[]>('GET', '/api/playlists'),
    get: (id: string) => call<Playlist>('GET', `/api/playlists/${id}`),
    create: (name: string) => call<Playlist>('POST', '/api/playlists', { name }),
    rename: (id: string, name: string) => call<Playlist>('PATCH', `/api/playlists/${id}`, { name }),
    remove: (id: string) => call<null>('DELETE', `/api/playlists/${id}`),
    add: (id: string, trackId: string, position?: number) =>
      call<Playlist>('POST', `/api/playlists/${id}/tracks`, position === undefined ? { track_id: trackId } : { track_id: trackId, position }),
    share: (id: string, to: string[]) => call<Playlist>('POST', `/api/playlists/${id}/share`, { to_users: to }),
  };
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | null;
  body: unknown;
}

/** Who a WebSocket URL names: its `user_id`, or the `sub` of its token. */
function socketUser(url: URL): string | null {
  const user = url.searchParams.get('user_id');
  if (user) return user;
  const token = url.searchParams.get('token');
  if (!token) return null;
  try {
    return (JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { sub?: string }).sub ?? null;
  } catch {
    return null;
  }
}

export interface Traffic {
  requests: RecordedRequest[];
  /** Commands sent by the code under test, with the user its connection named. */
  commands: { user: string | null; command: WebSocketCommand }[];
  /** `GET /api/playlists` sent so far. */
  listGets: () => number;
  /** While > 0, the answers to list GETs sent meanwhile reach the caller this much later (ms). */
  listDelayMs: number;
  /** While true, new WebSocket connections fail (the server is unreachable for the hooks). */
  offline: boolean;
  /** Open WebSocket connections of the code under test (of `user`, if given). */
  connections: (user?: string) => number;
  /** Connections opened so far. */
  connectionsOpened: () => number;
  /** Cuts every open connection of the code under test (as a network failure would). */
  dropAll: () => void;
  reset: () => void;
  restore: () => void;
}

/**
 * Records what the code under test sends: installs a pass-through fetch wrapper and a recording
 * WebSocket class as the global one.
 */
export function recordTraffic(): Traffic {
  const requests: RecordedRequest[] = [];
  const commands: Traffic['commands'] = [];
  const sockets = new Map<NodeWebSocket, string | null>();
  let opened = 0;
  const state = { listDelayMs: 0, offline: false };

  const spy = vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const headers = new Headers(init?.headers);
    let body: unknown = null;
    if (typeof init?.body === 'string' && init.body) {
      try {
        body = JSON.parse(init.body);
      } catch {
        body = init.body;
      }
    }
    requests.push({ method, path: url.pathname, query: url.searchParams, authorization: headers.get('authorization'), body });
    const delay = method === 'GET' && url.pathname === '/api/playlists' ? state.listDelayMs : 0;
    const res = await realFetch(input, init);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    return res;
  });

  class RecordingWebSocket extends NodeWebSocket {
    private readonly user: string | null;
    constructor(address: string | URL, protocols?: string | string[]) {
      const url = new URL(String(address));
      // "Offline": nothing listens on the discard port, the connection is refused at once.
      const target = state.offline ? `ws://127.0.0.1:9${url.pathname}${url.search}` : url.toString();
      super(target, protocols);
      this.user = socketUser(url);
      if (!state.offline) {
        this.on('open', () => {
          opened += 1;
          sockets.set(this, this.user);
        });
        this.on('close', () => sockets.delete(this));
      }
    }
    override send(...args: unknown[]): void {
      const [data] = args;
      if (typeof data === 'string') {
        try {
          commands.push({ user: this.user, command: JSON.parse(data) as WebSocketCommand });
        } catch {
          // not JSON: not a command
        }
      }
      (NodeWebSocket.prototype.send as (...a: unknown[]) => void).apply(this, args);
    }
  }
  const previous = (globalThis as { WebSocket?: unknown }).WebSocket;
  (globalThis as { WebSocket?: unknown }).WebSocket = RecordingWebSocket;

  return {
    requests,
    commands,
    listGets: () => requests.filter((r) => r.method === 'GET' && r.path === '/api/playlists').length,
    get listDelayMs() {
      return state.listDelayMs;
    },
    set listDelayMs(v: number) {
      state.listDelayMs = v;
    },
    get offline() {
      return state.offline;
    },
    set offline(v: boolean) {
      state.offline = v;
    },
    connections: (user) => [...sockets.values()].filter((u) => user === undefined || u === user).length,
    connectionsOpened: () => opened,
    dropAll: () => {
      for (const s of sockets.keys()) s.terminate();
    },
    reset: () => {
      requests.length = 0;
      commands.length = 0;
      state.listDelayMs = 0;
      state.offline = false;
    },
    restore: () => {
      spy.mockRestore();
      (globalThis as { WebSocket?: unknown }).WebSocket = previous;
    },
  };
}

let users = 0;
/** A user id no other test of this run uses: the tests share one server. */
export function freshUser(name: string): string {
  users += 1;
  return `${name}-${users}`;
}
