// Smoke test of server.mjs: starts it on a free port and checks the protocol subset that
// bench/ws_fanout.py relies on. `node smoke.mjs` (or `npm test`); exits non-zero on failure.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const serverPath = fileURLToPath(new URL('./server.mjs', import.meta.url));
const child = spawn(process.execPath, [serverPath, '--port', '0', '--max-buffered-bytes', '65536'], { stdio: ['ignore', 'inherit', 'pipe'] });
const timer = setTimeout(() => { console.error('smoke test timed out'); child.kill(); process.exit(1); }, 60_000);

async function baseUrl() {
  let err = '';
  for await (const chunk of child.stderr) {
    err += chunk;
    const m = err.match(/listening on (http:\/\/[^/]+)\//);
    if (m) return m[1];
  }
  throw new Error(`server exited: ${err}`);
}

/** A client that collects every event, with a helper to wait for one that matches. */
function client(base, userId) {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/api/ws?user_id=${userId}`);
  const events = [];
  const waiters = [];
  ws.on('message', (data) => {
    const ev = JSON.parse(data.toString());
    events.push(ev);
    for (const w of waiters.splice(0)) {
      if (w.pred(ev)) w.resolve(ev); else waiters.push(w);
    }
  });
  const next = (pred) => {
    const seen = events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => waiters.push({ pred, resolve }));
  };
  const command = async (cmd) => {
    ws.send(JSON.stringify(cmd));
    return next((e) => e.event === 'CommandResponse' && e.command_id === cmd.command_id);
  };
  return { ws, events, next, command, open: once(ws, 'open') };
}

async function post(base, body, headers = {}) {
  const r = await fetch(`${base}/api/admin/message`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
  });
  await r.arrayBuffer();
  return r.status;
}

try {
  const base = await baseUrl();
  assert.equal((await fetch(`${base}/healthz`)).status, 200);

  const a = client(base, 'a'); // subscribes to ServerMessage
  const b = client(base, 'b'); // subscribes to LiveStats only: must not see ServerMessage
  const c = client(base, 'c'); // no subscription: sees every event
  await Promise.all([a.open, b.open, c.open]);

  const ra = await a.command({ command: 'Subscribe', command_id: 'c1', events: ['ServerMessage'], filters: null });
  assert.deepEqual(ra, { event: 'CommandResponse', command_id: 'c1', success: true, data: { subscribed: ['ServerMessage'], filters: {} }, error: null });
  const rb = await b.command({ command: 'Subscribe', command_id: 'c2', events: ['LiveStats'], filters: null });
  assert.equal(rb.success, true);
  const bad = await b.command({ command: 'Subscribe', command_id: 'c3', events: ['Nope'], filters: null });
  assert.equal(bad.success, false);
  assert.match(bad.error, /unknown events/);
  const ping = await c.command({ command: 'Ping', command_id: 'p1' });
  assert.equal(ping.success, true);
  assert.equal(typeof ping.data.pong, 'number');
  const other = await c.command({ command: 'Play', command_id: 'x1', track_id: 't' });
  assert.equal(other.success, false);
  c.ws.send('not json');
  const invalid = await c.next((e) => e.event === 'CommandResponse' && e.command_id === '' && /invalid/.test(e.error));
  assert.equal(invalid.success, false);

  assert.equal(await post(base, { message: 'hello', level: 'Info' }), 202);
  assert.equal(await post(base, { message: 'second' }), 202);
  const want = { event: 'ServerMessage', message: 'hello', level: 'Info' };
  assert.deepEqual(await a.next((e) => e.event === 'ServerMessage'), want);
  assert.deepEqual(await c.next((e) => e.event === 'ServerMessage'), want);
  await a.next((e) => e.message === 'second');
  await c.next((e) => e.message === 'second');
  assert.equal(b.events.filter((e) => e.event === 'ServerMessage').length, 0, 'b did not subscribe to ServerMessage');

  // Exactly one response per command, and nothing else but what was asked for.
  assert.equal(a.events.filter((e) => e.event === 'CommandResponse').length, 1);
  assert.equal(a.events.length, 3);

  assert.equal(await post(base, { message: 'x' }, { origin: 'http://evil.example' }), 403);
  assert.equal(await post(base, { message: '   ' }), 400);
  assert.equal(await post(base, { message: 'ok', level: 'Loud' }), 400);

  // Unsubscribing from everything means every event again, as in stream-server.
  const un = await b.command({ command: 'Unsubscribe', command_id: 'u1', events: ['LiveStats'] });
  assert.deepEqual(un.data, { subscribed: [] });
  assert.equal(await post(base, { message: 'third' }), 202);
  await b.next((e) => e.message === 'third');

  const stats = await (await fetch(`${base}/api/ws/stats`)).json();
  assert.equal(stats.current_connections, 3);
  assert.equal(stats.events_broadcasted, 3);

  // A reader that stops reading is dropped once its unsent bytes pass the bound (the server
  // under test runs with --max-buffered-bytes 65536), and the others still get everything.
  c.ws.pause(); // stops reading the socket (a paused socket does not see the close either)
  const long = 'x'.repeat(1900);
  const slowDrops = async () => (await (await fetch(`${base}/api/ws/stats`)).json()).slow_reader_disconnects;
  let posts = 0;
  while (posts < 20_000 && (posts % 50 !== 0 || (await slowDrops()) === 0)) {
    assert.equal(await post(base, { message: `${posts}:${long}` }), 202);
    posts++;
  }
  assert.equal(await slowDrops(), 1, 'the stalled reader was never dropped');
  await a.next((e) => e.message === `${posts - 1}:${long}`);
  const after = await (await fetch(`${base}/api/ws/stats`)).json();
  assert.equal(after.current_connections, 2);
  console.error(`stalled reader dropped within ${posts} broadcasts of ${long.length + 10} bytes`);

  for (const x of [a, b]) x.ws.close();
  console.log('node-server smoke test: 1 passed, 0 failed');
} catch (e) {
  console.error(e);
  console.log('node-server smoke test: 0 passed, 1 failed');
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  child.kill();
}
