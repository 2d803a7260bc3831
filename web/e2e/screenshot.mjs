// Screenshots of the player on a desktop and a phone viewport, for looking at the UI:
//   npm run build && node e2e/screenshot.mjs [outDir]
// Starts its own stream-server (serving web/dist with --web-dir when the server has it, else
// through `vite preview`), plays the first track for a few seconds, saves desktop.png/phone.png.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { REPO_DIR, WEB_DIR, launchChromium, serverHasWebDir, startPreview, startServer } from './harness.mjs';

const outDir = path.resolve(process.argv[2] ?? path.join(REPO_DIR, 'target', 'web-e2e'));
mkdirSync(outDir, { recursive: true });

const useWebDir = serverHasWebDir();
const server = await startServer({ webDir: useWebDir ? path.join(WEB_DIR, 'dist') : null });
const preview = useWebDir ? null : await startPreview(server.base);
const appBase = preview ? preview.base : server.base;
console.log(`app at ${appBase} (${useWebDir ? 'served by stream-server' : 'vite preview'})`);

const shots = [
  { name: 'desktop', viewport: { width: 1280, height: 900 } },
  {
    name: 'phone',
    viewport: { width: 390, height: 844 },
    isMobile: true,
    userAgent:
      'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36',
  },
];

try {
  for (const shot of shots) {
    const { context, close } = await launchChromium(shot);
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      page.on('console', (msg) => console.log(`[${shot.name} console.${msg.type()}] ${msg.text()}`));
      page.on('pageerror', (err) => console.log(`[${shot.name} pageerror] ${err.message}`));
      await page.goto(appBase + '/');
      await page.getByTestId('track-row').first().waitFor();
      await page.getByTestId('track-row').nth(1).locator('button.track-main').click();
      await page.waitForFunction(() => {
        const a = document.querySelector('audio');
        return a && a.currentTime > 6;
      }, null, { timeout: 30_000 });
      await page.waitForTimeout(1500);
      const file = path.join(outDir, `${shot.name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      console.log(`saved ${file}`);
    } finally {
      await close();
    }
  }
} finally {
  await preview?.stop();
  await server.stop();
}
