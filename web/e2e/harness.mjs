// Shared by the end-to-end script and the screenshot tool: start a real stream-server on a free
// port, wait until it is healthy, launch Debian's Chromium through playwright-core.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = path.resolve(WEB_DIR, '..');
export const SERVER_BIN = path.resolve(WEB_DIR, process.env.STREAM_SERVER_BIN ?? '../target/debug/stream-server');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Whether this build of the server knows `serve --web-dir`. */
export function serverHasWebDir() {
  try {
    const help = execFileSync(SERVER_BIN, ['serve', '--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return help.includes('--web-dir');
  } catch {
    return false;
  }
}

/** Status code of a GET, with node:http (not a test environment's fetch, which may log). */
function httpStatus(url) {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export async function waitHealthy(base, timeoutMs = 90_000, proc) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) throw new Error(`stream-server exited with code ${proc.exitCode} before it was ready`);
    try {
      const status = await httpStatus(`${base}/healthz`);
      if (status === 200) return;
      last = `status ${status}`;
    } catch (err) {
      last = String(err?.code ?? err?.message ?? err);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`stream-server at ${base} not healthy after ${timeoutMs} ms (${last})`);
}

/**
 * Starts `stream-server serve --demo` on a free port with a fresh data dir.
 * Returns { base, port, proc, stop(), logs() }.
 */
export async function startServer({ webDir = null, dataDir = null } = {}) {
  if (!existsSync(SERVER_BIN)) throw new Error(`no stream-server binary at ${SERVER_BIN} (build it, or set STREAM_SERVER_BIN)`);
  const port = await freePort();
  const ownDataDir = !dataDir;
  const dir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'stream-server-e2e-'));
  const args = ['serve', '--demo', '--data-dir', dir, '--bind', `127.0.0.1:${port}`];
  if (webDir) args.push('--web-dir', webDir);
  const proc = spawn(SERVER_BIN, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let output = '';
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await new Promise((resolve) => {
        const t = setTimeout(() => {
          proc.kill('SIGKILL');
          resolve();
        }, 5000);
        proc.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    if (ownDataDir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(base, 90_000, proc);
  } catch (err) {
    await stop();
    throw new Error(`${err.message}\n--- server output ---\n${output.slice(-4000)}`);
  }
  return { base, port, proc, stop, logs: () => output };
}

/** Starts `vite preview` of web/dist, proxying the API to `target`. Returns { base, stop }. */
export async function startPreview(target) {
  const port = await freePort();
  const vite = path.join(WEB_DIR, 'node_modules', 'vite', 'bin', 'vite.js');
  const proc = spawn(process.execPath, [vite, 'preview', '--host', '127.0.0.1', '--port', String(port), '--strictPort'], {
    cwd: WEB_DIR,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, STREAM_SERVER_URL: target },
  });
  let output = '';
  proc.stdout.on('data', (c) => (output += c));
  proc.stderr.on('data', (c) => (output += c));
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${base}/`);
      if (res.ok) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline || proc.exitCode !== null) {
      await stop();
      throw new Error(`vite preview did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { base, stop };
}

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** A persistent context on a fresh user-data-dir; returns { context, close }. */
export async function launchChromium({ viewport = { width: 1280, height: 900 }, isMobile = false, userAgent } = {}) {
  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'stream-server-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    isMobile,
    hasTouch: isMobile,
    deviceScaleFactor: isMobile ? 2 : 1,
    userAgent,
  });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}
