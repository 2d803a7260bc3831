// End-to-end: the built player (web/dist) served by a real stream-server, driven in Debian's
// headless Chromium through playwright-core: play, keyboard, quality under a throttled link, and
// playlists kept live across two tabs of the same listener (e2e/playlists.mjs).
//
//   npm run test:e2e            (builds first)
//   node e2e/player.e2e.mjs     (uses the existing web/dist)
//
// Env: STREAM_SERVER_BIN (default ../target/debug/stream-server), CHROMIUM_PATH
// (default /usr/bin/chromium), E2E_OUT (screenshot folder, default ../target/web-e2e).
// Prints `N passed, M failed` and exits non-zero when anything failed.

import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { REPO_DIR, WEB_DIR, launchChromium, serverHasWebDir, startPreview, startServer } from './harness.mjs';
import { playlistsInTwoTabs } from './playlists.mjs';

const DIST = path.join(WEB_DIR, 'dist');
const OUT = path.resolve(process.env.E2E_OUT ?? path.join(REPO_DIR, 'target', 'web-e2e'));
/** Quality ids from best to worst (the AAC ladder the master lists). */
const RANK = { high: 3, medium: 2, mobile: 1 };
/** Throttled link: ~140 kbit/s down, 150 ms latency (the mobile rung needs ~106 kbit/s). */
const THROTTLE = { offline: false, latency: 150, downloadThroughput: (140 * 1000) / 8, uploadThroughput: (140 * 1000) / 8 };

const results = [];
let failed = 0;
const log = (...a) => console.log(...a);

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    log(`  ✓ ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (err) {
    failed += 1;
    results.push({ name, ok: false, err });
    log(`  ✗ ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n      ${String(err?.stack ?? err).split('\n').slice(0, 6).join('\n      ')}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (!existsSync(path.join(DIST, 'index.html'))) {
    throw new Error(`${DIST}/index.html is missing: run \`npm run build\` first`);
  }
  mkdirSync(OUT, { recursive: true });

  const webDir = serverHasWebDir();
  const server = await startServer({ webDir: webDir ? DIST : null });
  let preview = null;
  if (!webDir) {
    log('! this stream-server has no --web-dir: serving web/dist through `vite preview` instead');
    preview = await startPreview(server.base);
  }
  const base = preview ? preview.base : server.base;
  log(`stream-server at ${server.base}; app at ${base}/ (${webDir ? 'served by stream-server --web-dir' : 'vite preview'})`);

  const { context, close } = await launchChromium({ viewport: { width: 1280, height: 900 } });
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  const watchConsole = (p, label = '') => {
    p.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(`${label}${msg.text()}`);
    });
    p.on('pageerror', (err) => consoleErrors.push(`${label}pageerror: ${err.message}`));
  };
  watchConsole(page);

  const audio = () =>
    page.evaluate(() => {
      const a = document.querySelector('audio');
      return a ? { t: a.currentTime, paused: a.paused, ended: a.ended, duration: a.duration, readyState: a.readyState } : null;
    });
  const attr = (testId, name) =>
    page.evaluate(([id, n]) => document.querySelector(`[data-testid="${id}"]`)?.getAttribute(n) ?? null, [testId, name]);
  const text = (testId) => page.evaluate((id) => document.querySelector(`[data-testid="${id}"]`)?.textContent ?? null, testId);
  const quality = () => attr('current-quality', 'data-quality');

  let startQuality = null;
  try {
    await test('loads / and lists the demo library', async () => {
      const res = await page.goto(`${base}/`);
      assert(res && res.ok(), `GET / answered ${res?.status()}`);
      await page.getByTestId('track-row').first().waitFor({ timeout: 15_000 });
      const n = await page.getByTestId('track-row').count();
      assert(n === 4, `expected 4 demo tracks, saw ${n}`);
    });

    await test('plays a track: audio.currentTime advances', async () => {
      // The longest demo track leaves the most room for the throttling test below.
      const rows = page.getByTestId('track-row');
      const durations = await rows.locator('.track-duration').allTextContents();
      const secs = durations.map((d) => d.split(':').reduce((acc, x) => acc * 60 + Number(x), 0));
      const longest = secs.indexOf(Math.max(...secs));
      await rows.nth(longest).locator('button.track-main').click();
      await page.waitForFunction(() => (document.querySelector('audio')?.currentTime ?? 0) > 1, null, { timeout: 30_000 });
      const a1 = await audio();
      await sleep(2000);
      const a2 = await audio();
      assert(a2.t > a1.t + 1, `currentTime did not advance: ${a1.t} → ${a2.t}`);
      assert(!a2.paused, 'audio is paused');
      const mode = await page.getByTestId('playback-mode').textContent();
      assert(mode === 'hls.js', `expected hls.js playback, got ${mode}`);
      startQuality = await quality();
      assert(startQuality in RANK, `unexpected starting quality ${startQuality}`);
      const state = await page.getByTestId('play-button').getAttribute('data-state');
      assert(state === 'playing', `play button says ${state}`);
      log(`      started on "${startQuality}" (${await page.getByTestId('quality-reason').textContent()})`);
    });

    await test('keyboard: space pauses and resumes, → seeks forward 10 s', async () => {
      await page.locator('body').click({ position: { x: 5, y: 5 } });
      await page.keyboard.press('Space');
      await page.waitForFunction(() => document.querySelector('audio')?.paused === true, null, { timeout: 5000 });
      await page.keyboard.press('Space');
      await page.waitForFunction(() => document.querySelector('audio')?.paused === false, null, { timeout: 5000 });
      const before = (await audio()).t;
      await page.keyboard.press('ArrowRight');
      await page.waitForFunction((b) => (document.querySelector('audio')?.currentTime ?? 0) >= b + 9, before, { timeout: 5000 });
      await page.keyboard.press('ArrowLeft');
      await page.waitForFunction((b) => (document.querySelector('audio')?.currentTime ?? 0) < b + 5, before, { timeout: 5000 });
      await page.waitForFunction(() => {
        const a = document.querySelector('audio');
        return a && !a.paused && a.readyState >= 3;
      }, null, { timeout: 10_000 });
    });

    await test('under a ~140 kbit/s link the quality steps down without a long stall', async () => {
      // Play the track from the top again on a fresh session, so the whole track is ahead.
      // Record what the media element goes through, for the log.
      await page.evaluate(() => {
        const a = document.querySelector('audio');
        window.__mediaLog = [];
        for (const type of ['waiting', 'playing', 'seeking', 'stalled', 'ended']) {
          a.addEventListener(type, () => window.__mediaLog.push({ type, t: Number(a.currentTime.toFixed(1)) }));
        }
      });
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      const startQ = await quality();
      log(`      before throttling: playing "${startQ}", loading "${await attr('loading-quality', 'data-quality') ?? startQ}"`);
      assert(startQ && RANK[startQ] > RANK.mobile, `already on ${startQ}: nothing to step down from`);
      await cdp.send('Network.emulateNetworkConditions', THROTTLE);
      const t0 = Date.now();
      log(`      throttled at media time ${(await audio()).t.toFixed(1)} s, playing "${startQ}"`);
      let loadingDownAt = null;
      let playingDownAt = null;
      let stallMs = 0;
      let longestStallMs = 0;
      let stallStart = null;
      let lastT = (await audio()).t;
      let finalQ = startQ;
      while (Date.now() - t0 < 90_000) {
        await sleep(250);
        const a = await audio();
        const now = Date.now();
        const q = await quality();
        const loading = await attr('loading-quality', 'data-quality');
        if (loadingDownAt === null && loading && RANK[loading] < RANK[startQ]) {
          loadingDownAt = now - t0;
          log(`      +${(loadingDownAt / 1000).toFixed(1)} s: hls.js loads "${loading}" `);
        }
        if (q && RANK[q] < RANK[startQ]) {
          playingDownAt = now - t0;
          finalQ = q;
          log(`      +${(playingDownAt / 1000).toFixed(1)} s: playing "${q}" — ${await text('quality-reason')}`);
          break;
        }
        // A stall: not paused, not ended, and the clock did not move.
        const moving = a.t > lastT + 0.05;
        if (!a.paused && !a.ended && !moving) {
          if (stallStart === null) stallStart = now;
        } else if (stallStart !== null) {
          const d = now - stallStart;
          stallMs += d;
          longestStallMs = Math.max(longestStallMs, d);
          stallStart = null;
        }
        lastT = a.t;
        if (a.ended) break;
      }
      if (stallStart !== null) {
        stallMs += Date.now() - stallStart;
        longestStallMs = Math.max(longestStallMs, Date.now() - stallStart);
      }
      const rebuffers = await text('rebuffer-count');
      const mediaLog = await page.evaluate(() => window.__mediaLog ?? []);
      log(`      media events while throttled: ${mediaLog.map((e) => `${e.type}@${e.t}s`).join(' ') || 'none'}`);
      log(`      stalled ${(stallMs / 1000).toFixed(1)} s in all (longest ${(longestStallMs / 1000).toFixed(1)} s), rebuffers counted: ${rebuffers}`);
      mkdirSync(OUT, { recursive: true });
      await page.screenshot({ path: path.join(OUT, 'player.png'), fullPage: true });
      log(`      screenshot: ${path.join(OUT, 'player.png')}`);
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      assert(playingDownAt !== null, `quality did not step down from "${startQ}" within 90 s (still "${finalQ}")`);
      assert(RANK[finalQ] < RANK[startQ], `quality went ${startQ} → ${finalQ}`);
      assert(longestStallMs < 8000, `a stall of ${(longestStallMs / 1000).toFixed(1)} s`);
    });

    await test('playlists: a second tab of the same user follows every change live, and vice versa', async () => {
      await playlistsInTwoTabs({ context, page, base, watchConsole, log, screenshot: path.join(OUT, 'playlists.png') });
    });

    await test('no console errors (the real-time channel included, in both tabs)', async () => {
      assert(consoleErrors.length === 0, `console errors:\n${consoleErrors.join('\n')}`);
    });
  } finally {
    await close();
    await preview?.stop();
    await server.stop();
  }
}

try {
  await main();
} catch (err) {
  failed += 1;
  results.push({ name: 'setup', ok: false, err });
  log(`setup failed: ${err?.stack ?? err}`);
}
const passed = results.filter((r) => r.ok).length;
log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
