// A small real server speaking the playlists contract, for the tests: node:http for the REST
// routes (`/api/playlists...`, and `/api/tracks` for the library) and a `ws` WebSocketServer on
// the same port at `/api/ws` for the events and the AddToPlaylist / RemoveFromPlaylist commands.
// As stream-server: only the owner may change a playlist (a share is read-only), and every
// change emits `PlaylistUpdated` to each connection of the owner and of the users it is shared
// with.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket as NodeWebSocket, WebSocketServer } from 'ws';
import type { Playlist, PlaylistEntry, Track } from '../src/api';
import type { PlaylistAction, WebSocketCommand } from '../src/protocol';

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | null;
  body: unknown;
}

export interface PlaylistServer {
  base: string;
  wsUrl: string;
  requests: RecordedRequest[];
  commands: { user: string | null; command: WebSocketCommand }[];
  /** How many `GET /api/playlists` were answered. */
  listGets: () => number;
  /** Delay (ms) of the answers to the list GETs received while set; the answer is the state at arrival. */
  listDelayMs: number;
  /** While true, playlist commands over the WebSocket are answered `success: false`. */
  refuseCommands: boolean;
  /** The server-side state, to change it behind the clients' backs. */
  playlists: Map<string, Playlist>;
  /** Changes a playlist as another client would, and emits the event. */
  change: (id: string, f: (p: Playlist) => void, action?: PlaylistAction) => void;
  /** Sends an event to every connection of `user`. */
  emitTo: (user: string, event: unknown) => void;
  connections: (user?: string) => number;
  /** WebSocket connections accepted so far. */
  connectionsOpened: () => number;
  dropAll: () => void;
  close: () => Promise<void>;
}

export const CATALOG: Track[] = ['alpha', 'bravo', 'charlie', 'delta'].map((id, i) => ({
  id: `t-${id}`,
  filename: `${id}.flac`,
  title: id[0].toUpperCase() + id.slice(1),
  artist: i % 2 ? 'The Testers' : null,
  album: null,
  genre: null,
  duration_ms: 60_000 + i * 1000,
  sample_rate: 44100,
  channels: 2,
  codec: 'flac',
  samples: (60 + i) * 44100,
  version: `v1-${id}`,
}));

function entry(trackId: string): PlaylistEntry | null {
  const t = CATALOG.find((x) => x.id === trackId);
  return t ? { track_id: t.id, title: t.title, artist: t.artist, duration_ms: t.duration_ms, available: true } : null;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    msg: string,
  ) {
    super(msg);
  }
}

export async function startPlaylistServer(): Promise<PlaylistServer> {
  const playlists = new Map<string, Playlist>();
  const requests: RecordedRequest[] = [];
  const commands: PlaylistServer['commands'] = [];
  let listGets = 0;
  let opened = 0;
  let nextId = 1;
  let lastStamp = 0;
  const stamp = () => (lastStamp = Math.max(Date.now(), lastStamp + 1));
  const sockets = new Map<NodeWebSocket, string | null>();

  const copy = (p: Playlist): Playlist => JSON.parse(JSON.stringify(p)) as Playlist;
  const visible = (p: Playlist, user: string) => p.owner === user || p.shared_with.includes(user);

  const emitTo = (user: string, event: unknown) => {
    const text = JSON.stringify(event);
    for (const [socket, who] of sockets) if (who === user && socket.readyState === NodeWebSocket.OPEN) socket.send(text);
  };
  const emit = (p: Playlist, action: PlaylistAction, trackId: string | null, position: number | null) => {
    for (const user of new Set([p.owner, ...p.shared_with])) {
      emitTo(user, { event: 'PlaylistUpdated', playlist_id: p.id, action, track_id: trackId, position });
    }
  };

  const find = (id: string, user: string): Playlist => {
    const p = playlists.get(id);
    if (!p || !visible(p, user)) throw new HttpError(404, 'unknown_playlist', `no playlist ${id}`);
    return p;
  };
  const owned = (id: string, user: string): Playlist => {
    const p = find(id, user);
    if (p.owner !== user) throw new HttpError(403, 'not_owner', 'only the owner may change it');
    return p;
  };
  const addTrack = (p: Playlist, trackId: string, position: number | null | undefined) => {
    const e = entry(trackId);
    if (!e) throw new HttpError(404, 'track_not_found', `no track ${trackId}`);
    const at = position == null ? p.tracks.length : Math.min(Math.max(0, position), p.tracks.length);
    p.tracks.splice(at, 0, e);
    p.updated_at = stamp();
    emit(p, 'Added', trackId, at);
  };

  const state = { listDelayMs: 0, refuseCommands: false };

  const route = async (method: string, parts: string[], user: string, body: Record<string, unknown>): Promise<[number, unknown]> => {
    // parts: ['api', 'playlists', id?, sub?, arg?]
    const [, , id, sub, arg] = parts;
    if (!id) {
      if (method === 'GET') {
        listGets += 1;
        const list = [...playlists.values()].filter((p) => visible(p, user)).sort((a, b) => b.updated_at - a.updated_at).map(copy);
        if (state.listDelayMs > 0) await new Promise((r) => setTimeout(r, state.listDelayMs));
        return [200, list];
      }
      if (method === 'POST') {
        const name = typeof body.name === 'string' ? body.name.trim() : '';
        if (!name) throw new HttpError(400, 'invalid_name', 'a playlist needs a name');
        const now = stamp();
        const p: Playlist = { id: `pl-${nextId++}`, name, owner: user, tracks: [], updated_at: now, created_at: now, shared_with: [] };
        playlists.set(p.id, p);
        emit(p, 'Cleared', null, null);
        return [201, copy(p)];
      }
    } else if (!sub) {
      if (method === 'GET') return [200, copy(find(id, user))];
      if (method === 'PATCH') {
        const p = owned(id, user);
        if (typeof body.name !== 'string' || !body.name.trim()) throw new HttpError(400, 'invalid_name', 'a playlist needs a name');
        p.name = body.name.trim();
        p.updated_at = stamp();
        emit(p, 'Cleared', null, null);
        return [200, copy(p)];
      }
      if (method === 'DELETE') {
        const p = owned(id, user);
        playlists.delete(id);
        emit(p, 'Cleared', null, null);
        return [204, null];
      }
    } else if (sub === 'tracks') {
      const p = owned(id, user);
      if (method === 'POST' && arg === undefined) {
        addTrack(p, String(body.track_id ?? ''), body.position as number | undefined);
        return [200, copy(p)];
      }
      if (method === 'DELETE' && arg !== undefined) {
        const at = Number(arg);
        if (!Number.isInteger(at) || at < 0 || at >= p.tracks.length) throw new HttpError(400, 'bad_position', `no entry at ${arg}`);
        const [gone] = p.tracks.splice(at, 1);
        p.updated_at = stamp();
        emit(p, 'Removed', gone.track_id, at);
        return [200, copy(p)];
      }
    } else if (sub === 'move' && method === 'POST') {
      const p = owned(id, user);
      const from = Number(body.from);
      const to = Number(body.to);
      const n = p.tracks.length;
      if (![from, to].every((x) => Number.isInteger(x) && x >= 0 && x < n)) throw new HttpError(400, 'bad_position', 'from/to out of range');
      const [e] = p.tracks.splice(from, 1);
      p.tracks.splice(to, 0, e);
      p.updated_at = stamp();
      emit(p, 'Reordered', e.track_id, to);
      return [200, copy(p)];
    }
    throw new HttpError(405, 'method_not_allowed', `${method} ${parts.join('/')}`);
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Access-Control-Allow-Origin': '*',
    });
    res.end(status === 204 || body === null ? undefined : JSON.stringify(body));
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://x');
        const method = req.method ?? 'GET';
        if (method === 'OPTIONS') {
          res.writeHead(204, {
            'Access-Control-Allow-Origin': '*',
            'Access-Control-Allow-Methods': 'GET, POST, PATCH, DELETE, OPTIONS',
            'Access-Control-Allow-Headers': 'Content-Type, Authorization, Accept',
          });
          res.end();
          return;
        }
        let body: Record<string, unknown> = {};
        const raw = Buffer.concat(chunks).toString();
        if (raw) {
          try {
            body = JSON.parse(raw) as Record<string, unknown>;
          } catch {
            send(res, 400, { error: 'bad JSON', code: 'bad_json' });
            return;
          }
        }
        const authorization = req.headers.authorization ?? null;
        requests.push({ method, path: url.pathname, query: url.searchParams, authorization, body: raw ? body : null });
        const parts = url.pathname.split('/').filter(Boolean);
        if (parts[0] === 'api' && parts[1] === 'tracks') {
          const q = (url.searchParams.get('q') ?? '').toLowerCase();
          send(res, 200, CATALOG.filter((t) => !q || t.title.toLowerCase().includes(q)));
          return;
        }
        if (parts[0] !== 'api' || parts[1] !== 'playlists') {
          send(res, 404, { error: 'not found', code: 'not_found' });
          return;
        }
        // Identity: a bearer token `tok-<user>`, else ?user_id=.
        const bearer = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
        const user = bearer ? (bearer.startsWith('tok-') ? bearer.slice(4) : null) : url.searchParams.get('user_id');
        if (!user) {
          send(res, 401, { error: 'who are you?', code: 'unauthenticated' });
          return;
        }
        try {
          const [status, out] = await route(method, parts, user, body);
          send(res, status, out);
        } catch (err) {
          if (err instanceof HttpError) send(res, err.status, { error: err.message, code: err.code });
          else send(res, 500, { error: String(err), code: 'internal' });
        }
      })();
    });
  });

  const wss = new WebSocketServer({ server, path: '/api/ws' });
  wss.on('connection', (socket, req) => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const user = query.get('user_id');
    sockets.set(socket, user);
    opened += 1;
    socket.on('close', () => sockets.delete(socket));
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      let cmd: WebSocketCommand;
      try {
        cmd = JSON.parse(data.toString()) as WebSocketCommand;
      } catch {
        return;
      }
      commands.push({ user, command: cmd });
      const reply = (success: boolean, payload: unknown, error: string | null = null) =>
        socket.send(JSON.stringify({ event: 'CommandResponse', command_id: cmd.command_id, success, data: payload, error }));
      if (cmd.command !== 'AddToPlaylist' && cmd.command !== 'RemoveFromPlaylist') {
        reply(true, { command: cmd.command });
        return;
      }
      if (state.refuseCommands) return reply(false, null, 'playlists are not available on this server yet');
      if (!user) return reply(false, null, 'anonymous connections may only listen: connect with a user');
      try {
        const p = owned(cmd.playlist_id, user);
        if (cmd.command === 'AddToPlaylist') {
          addTrack(p, cmd.track_id, cmd.position);
        } else {
          const at = p.tracks.findIndex((t) => t.track_id === cmd.track_id);
          if (at < 0) throw new HttpError(404, 'not_in_playlist', `${cmd.track_id} is not in the playlist`);
          p.tracks.splice(at, 1);
          p.updated_at = stamp();
          emit(p, 'Removed', cmd.track_id, at);
        }
        reply(true, copy(p));
      } catch (err) {
        reply(false, null, err instanceof Error ? err.message : String(err));
      }
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  const base = `http://127.0.0.1:${port}`;

  return {
    base,
    wsUrl: `ws://127.0.0.1:${port}/api/ws`,
    requests,
    commands,
    listGets: () => listGets,
    get listDelayMs() {
      return state.listDelayMs;
    },
    set listDelayMs(v: number) {
      state.listDelayMs = v;
    },
    get refuseCommands() {
      return state.refuseCommands;
    },
    set refuseCommands(v: boolean) {
      state.refuseCommands = v;
    },
    playlists,
    change: (id, f, action = 'Cleared') => {
      const p = playlists.get(id);
      if (!p) throw new Error(`no playlist ${id}`);
      f(p);
      p.updated_at = stamp();
      emit(p, action, null, null);
    },
    emitTo,
    connectionsOpened: () => opened,
    connections: (user) => [...sockets.values()].filter((u) => user === undefined || u === user).length,
    dropAll: () => {
      for (const s of sockets.keys()) s.terminate();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets.keys()) s.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An entry of the catalog, for expectations. */
export function catalogEntry(trackId: string): PlaylistEntry {
  const e = entry(trackId);
  if (!e) throw new Error(`no track ${trackId}`);
  return e;
}
