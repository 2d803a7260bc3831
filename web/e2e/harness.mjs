// Shared by the end-to-end script and the Vitest suites that need a server: start a real
// stream-server on a free port, wait until it is healthy, mint tokens for it, launch Debian's
// Chromium through playwright-core.

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

/**
 * Throws unless this build of the server knows `serve --web-dir`: the end-to-end test drives the
 * page the server itself serves at `/`, never a stand-in.
 */
export function requireWebDir() {
  let help;
  try {
    help = execFileSync(SERVER_BIN, ['serve', '--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`\`${SERVER_BIN} serve --help\` failed: ${err?.message ?? err}`);
  }
  if (!help.includes('--web-dir')) {
    throw new Error(`${SERVER_BIN} has no \`serve --web-dir\`: it cannot serve the player at / (rebuild it from this checkout)`);
  }
}

/** A token for `user`, minted by `stream-server token` with the secret of `dataDir`. */
export function mintToken(dataDir, user, { admin = false } = {}) {
  const args = ['token', '--data-dir', dataDir, '--user', user, '--ttl', '1h'];
  if (admin) args.push('--admin');
  return execFileSync(SERVER_BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
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
 * Starts `stream-server serve` on a free port: the demo library, or `library` when given; a fresh
 * data dir unless `dataDir` is given (then kept); `args` are passed on (`--auth-mode open`…).
 * Returns { base, port, dataDir, proc, stop(), logs() }.
 * @param {{ webDir?: string | null, dataDir?: string | null, library?: string | null, args?: string[] }} [opts]
 */
export async function startServer({ webDir = null, dataDir = null, library = null, args: extra = [] } = {}) {
  if (!existsSync(SERVER_BIN)) throw new Error(`no stream-server binary at ${SERVER_BIN} (build it, or set STREAM_SERVER_BIN)`);
  const port = await freePort();
  const ownDataDir = !dataDir;
  const dir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'stream-server-e2e-'));
  const args = ['serve', ...(library ? ['--library', library] : ['--demo']), '--data-dir', dir, '--bind', `127.0.0.1:${port}`, ...extra];
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
  return { base, port, dataDir: dir, proc, stop, logs: () => output };
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
