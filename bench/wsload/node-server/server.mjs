// A Node.js `ws` broadcast server speaking the subset of stream-server's WebSocket protocol
// that bench/ws_fanout.py exercises, on the same routes, so that the same load tool
// (bench/wsload) measures both servers in the same run.
//
//   GET  /healthz              -> 200 "ok"
//   GET  /api/ws?user_id=ID    -> WebSocket upgrade (JSON text frames)
//        commands: Subscribe, Unsubscribe, Ping -> exactly one CommandResponse each;
//        anything else -> CommandResponse { success: false, error }
//   POST /api/admin/message    -> 202, and {"event":"ServerMessage","message":…,"level":…}
//        to every connection that subscribed to ServerMessage (or to nothing, which means
//        every event, as in stream-server). Operator only: loopback peer, no Origin header.
//   GET  /api/ws/stats         -> {"current_connections", "messages_sent",
//        "slow_reader_disconnects", "events_broadcasted"} (the same names as stream-server's)
//
// Written for speed the way one would in production: no permessage-deflate, each broadcast
// serialised once into a Buffer (so `ws` neither re-serialises nor re-encodes it per
// recipient), subscribers indexed by event name (a broadcast touches only the connections that
// want it), and slow readers bounded: a connection whose unsent bytes (`bufferedAmount`)
// exceed the bound is skipped and terminated, as stream-server drops a reader whose bounded
// queue (256 frames) is full. Heartbeat pings every 20 s, as stream-server sends them.
//
// Usage: node server.mjs [--port PORT] [--host HOST] [--max-buffered-bytes N]
// PORT may be 0 (any free port); the address is printed to stderr as
// "listening on http://127.0.0.1:PORT/".

import http from 'node:http';
import { WebSocketServer, WebSocket } from 'ws';

const EVENT_NAMES = new Set([
  'PlaybackStarted', 'PlaybackPaused', 'PlaybackResumed', 'PlaybackStopped', 'PlaybackProgress',
  'PlaylistUpdated', 'PlaylistShared', 'TrackLiked', 'TrackShared', 'UserFollowed',
  'ServerMessage', 'RateLimitWarning', 'CommandResponse', 'LiveStats', 'QualityChanged',
]);
const LEVELS = new Set(['Info', 'Warning', 'Error']);
/** Largest WebSocket message accepted, as stream-server's MAX_MESSAGE. */
const MAX_MESSAGE = 64 * 1024;
/** Largest admin request body accepted. */
const MAX_BODY = 64 * 1024;
const PING_EVERY_MS = 20_000;

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  return fallback;
}

const port = Number(arg('--port', process.env.PORT ?? '8083'));
const host = arg('--host', process.env.HOST ?? '127.0.0.1');
// Unsent bytes allowed per connection before it counts as a slow reader. stream-server bounds
// each connection to 256 queued frames (≈ 18 KiB of these benchmark messages); this bound is
// more generous, never stricter.
const maxBuffered = Number(arg('--max-buffered-bytes', process.env.MAX_BUFFERED_BYTES ?? String(256 * 1024)));
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid port: ${port}`);
  process.exit(2);
}

const stats = { messagesSent: 0, slowDisconnects: 0, eventsBroadcasted: 0 };
/** Every open connection (for heartbeats and stats). */
const clients = new Set();
/** Connections with no subscription: they receive every broadcast event. */
const everyone = new Set();
/** Event name -> connections subscribed to it. */
const subscribers = new Map();
for (const name of EVENT_NAMES) subscribers.set(name, new Set());

const TEXT = { binary: false };

function respond(ws, commandId, success, data, error) {
  if (ws.readyState !== WebSocket.OPEN) return;
  ws.send(JSON.stringify({
    event: 'CommandResponse',
    command_id: commandId,
    success,
    data: data ?? null,
    error: error ?? null,
  }));
  stats.messagesSent++;
}

function subscribedList(ws) {
  return ws.subs === null ? [] : [...ws.subs];
}

function subscribe(ws, events, filters) {
  if (ws.subs === null) {
    ws.subs = new Set();
    everyone.delete(ws);
  }
  for (const e of events) {
    if (!ws.subs.has(e)) {
      ws.subs.add(e);
      subscribers.get(e).add(ws);
    }
  }
  if (filters !== undefined && filters !== null) {
    ws.filters = Object.keys(filters).length === 0 ? null : filters;
  }
}

function unsubscribe(ws, events) {
  if (ws.subs === null) return;
  for (const e of events) {
    if (ws.subs.delete(e)) subscribers.get(e)?.delete(ws);
  }
  // As in stream-server: no subscription left means every event.
  if (ws.subs.size === 0) {
    ws.subs = null;
    everyone.add(ws);
  }
}

function forget(ws) {
  clients.delete(ws);
  everyone.delete(ws);
  if (ws.subs !== null) {
    for (const e of ws.subs) subscribers.get(e)?.delete(ws);
  }
}

function onCommand(ws, data, isBinary) {
  if (isBinary) {
    respond(ws, '', false, null, 'binary frames are not supported: send JSON text');
    return;
  }
  let cmd;
  try {
    cmd = JSON.parse(data.toString('utf8'));
  } catch (e) {
    respond(ws, '', false, null, `invalid command: ${e.message}`);
    return;
  }
  if (cmd === null || typeof cmd !== 'object' || Array.isArray(cmd)) {
    respond(ws, '', false, null, 'invalid command: not an object');
    return;
  }
  const id = typeof cmd.command_id === 'string' ? cmd.command_id : '';
  if (typeof cmd.command_id !== 'string') {
    respond(ws, id, false, null, 'invalid command: missing field `command_id`');
    return;
  }
  switch (cmd.command) {
    case 'Subscribe':
    case 'Unsubscribe': {
      const events = cmd.events;
      if (!Array.isArray(events) || !events.every((e) => typeof e === 'string')) {
        respond(ws, id, false, null, 'invalid command: `events` must be a list of event names');
        return;
      }
      const filters = cmd.filters;
      if (cmd.command === 'Subscribe' && filters !== undefined && filters !== null
        && (typeof filters !== 'object' || Array.isArray(filters)
          || !Object.values(filters).every((v) => typeof v === 'string'))) {
        respond(ws, id, false, null, 'invalid command: `filters` must map names to strings');
        return;
      }
      const unknown = events.filter((e) => !EVENT_NAMES.has(e));
      if (unknown.length > 0) {
        respond(ws, id, false, null,
          `unknown events ${JSON.stringify(unknown)}; known: ${[...EVENT_NAMES].join(', ')}`);
        return;
      }
      if (cmd.command === 'Subscribe') {
        subscribe(ws, events, filters);
        respond(ws, id, true, { subscribed: subscribedList(ws), filters: ws.filters ?? {} });
      } else {
        unsubscribe(ws, events);
        respond(ws, id, true, { subscribed: subscribedList(ws) });
      }
      return;
    }
    case 'Ping':
      respond(ws, id, true, { pong: Math.floor(Date.now() / 1000) });
      return;
    default:
      respond(ws, id, false, null,
        `unsupported command ${JSON.stringify(cmd.command)} (this benchmark peer implements Subscribe, Unsubscribe, Ping)`);
  }
}

/** Filters compare the event's own fields, as strings (track attributes are not modelled). */
function passes(filters, event) {
  for (const k in filters) {
    const v = event[k];
    if (v === undefined || v === null || typeof v === 'object' || String(v) !== filters[k]) {
      return false;
    }
  }
  return true;
}

/**
 * Sends `payload` (the event, already serialised) to the open connections of `set` that pass
 * their filters; pushes slow readers onto `slow`.
 */
function deliver(set, event, payload, slow) {
  for (const ws of set) {
    if (ws.readyState !== WebSocket.OPEN) continue;
    if (ws.filters !== null && !passes(ws.filters, event)) continue;
    if (ws.bufferedAmount > maxBuffered) {
      slow.push(ws);
      continue;
    }
    ws.send(payload, TEXT);
    stats.messagesSent++;
  }
}

function broadcast(event) {
  const payload = Buffer.from(JSON.stringify(event));
  const slow = [];
  deliver(everyone, event, payload, slow);
  deliver(subscribers.get(event.event), event, payload, slow);
  stats.eventsBroadcasted++;
  for (const ws of slow) {
    // Terminate after the loops: the sets are not changed while being iterated.
    stats.slowDisconnects++;
    forget(ws);
    ws.terminate();
  }
}

function isLoopback(req) {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('127.') || a === '::1' || a.startsWith('::ffff:127.');
}

/** The machine's own operator: loopback, not a browser page (Origin), not behind a proxy. */
function isOperator(req) {
  const h = req.headers;
  return isLoopback(req) && h.origin === undefined && h['x-forwarded-for'] === undefined
    && h.forwarded === undefined && h['x-real-ip'] === undefined;
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function apiError(res, status, error, message) {
  sendJson(res, status, { error, message });
}

function adminMessage(req, res) {
  if (!isOperator(req)) {
    apiError(res, 403, 'forbidden', 'an admin token is needed');
    req.resume();
    return;
  }
  const chunks = [];
  let size = 0;
  let tooBig = false;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) tooBig = true;
    else chunks.push(c);
  });
  req.on('end', () => {
    if (tooBig) {
      apiError(res, 413, 'too_large', 'request body too large');
      return;
    }
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      apiError(res, 400, 'invalid_json', e.message);
      return;
    }
    if (body === null || typeof body !== 'object' || typeof body.message !== 'string') {
      apiError(res, 400, 'invalid_json', 'missing field `message`');
      return;
    }
    const level = body.level ?? 'Info';
    if (!LEVELS.has(level)) {
      apiError(res, 400, 'invalid_json', `unknown level ${JSON.stringify(level)}`);
      return;
    }
    // Control characters other than newlines are dropped, as in stream-server.
    // eslint-disable-next-line no-control-regex
    const message = body.message.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, '');
    const chars = [...message].length;
    if (message.trim() === '' || chars > 2000) {
      apiError(res, 400, 'invalid', 'a message is 1 to 2000 characters');
      return;
    }
    broadcast({ event: 'ServerMessage', message, level });
    res.writeHead(202, { 'content-length': 0 });
    res.end();
  });
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?', 1)[0];
  if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
    res.end(req.method === 'HEAD' ? undefined : 'ok');
  } else if (path === '/api/admin/message' && req.method === 'POST') {
    adminMessage(req, res);
  } else if (path === '/api/ws/stats' && req.method === 'GET') {
    sendJson(res, 200, {
      current_connections: clients.size,
      messages_sent: stats.messagesSent,
      slow_reader_disconnects: stats.slowDisconnects,
      events_broadcasted: stats.eventsBroadcasted,
    });
  } else {
    apiError(res, 404, 'not_found', 'no such route');
    req.resume();
  }
});
// The publisher keeps its connections busy; never close them under it.
server.keepAliveTimeout = 60_000;

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: MAX_MESSAGE,
});

server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => socket.destroy());
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname !== '/api/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    return;
  }
  // A bare user_id is believed from this machine only, as stream-server does.
  const claimed = url.searchParams.get('user_id')?.trim() || null;
  const userId = claimed !== null && isLoopback(req) ? claimed : null;
  wss.handleUpgrade(req, socket, head, (ws) => {
    // Every property set here, in this order, so all connections share one object shape.
    ws.userId = userId;
    ws.subs = null;
    ws.filters = null;
    ws.isAlive = true;
    clients.add(ws);
    everyone.add(ws);
    ws.on('message', (data, isBinary) => onCommand(ws, data, isBinary));
    ws.on('pong', () => { ws.isAlive = true; });
    ws.on('close', () => forget(ws));
    ws.on('error', () => forget(ws));
  });
});

// Heartbeat: ping everyone every 20 s; a connection that did not answer the previous ping is
// gone (stream-server drops connections idle for 90 s; its clients answer its pings).
const heartbeat = setInterval(() => {
  for (const ws of clients) {
    if (!ws.isAlive) {
      forget(ws);
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, PING_EVERY_MS);
heartbeat.unref();

server.listen(port, host, () => {
  const addr = server.address();
  console.error(`listening on http://${host}:${addr.port}/`);
});

function shutdown() {
  for (const ws of clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
