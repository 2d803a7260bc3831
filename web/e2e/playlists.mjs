// The playlists scenario of the end-to-end test (player.e2e.mjs): two tabs of the same listener,
// each change made in one shown live in the other (PlaylistUpdated over the WebSocket, then a
// re-fetch), without any reload.
//
// Tab 1 creates a playlist; tab 2 lists it and opens it; tab 1 adds two library tracks from the
// library's playlist menu (AddToPlaylist over the WebSocket) and tab 2 shows each; tab 2 moves
// one up and removes the other, and tab 1 (open on the playlist too) follows.

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const LIVE_MS = 5000;

/** Titles of the open playlist's tracks, in order. */
function titles(page) {
  return page.evaluate(() => [...document.querySelectorAll('[data-testid="playlist-track"] .track-title')].map((e) => e.textContent));
}

async function waitTitles(page, expected, what) {
  try {
    await page.waitForFunction(
      (exp) =>
        JSON.stringify([...document.querySelectorAll('[data-testid="playlist-track"] .track-title')].map((e) => e.textContent)) ===
        JSON.stringify(exp),
      expected,
      { timeout: LIVE_MS },
    );
  } catch {
    throw new Error(`${what}: expected ${JSON.stringify(expected)} within ${LIVE_MS} ms, shows ${JSON.stringify(await titles(page))}`);
  }
}

/**
 * @param {object} o
 * @param {import('playwright-core').BrowserContext} o.context  the browser profile of `page`
 * @param {import('playwright-core').Page} o.page  tab 1, already showing the app
 * @param {string} o.base  the app's origin
 * @param {(page: import('playwright-core').Page, label?: string) => void} o.watchConsole
 * @param {(...a: unknown[]) => void} o.log
 * @param {string | null} [o.screenshot]  where to save tab 2 at the end
 * @param {string} [o.name]  the playlist's name
 */
export async function playlistsInTwoTabs({ context, page, base, watchConsole, log, screenshot = null, name = 'Road trip' }) {
  // Tab 2: the same browser profile, so the same listener id (localStorage).
  const page2 = await context.newPage();
  watchConsole(page2, '[tab 2] ');
  try {
    await page2.goto(`${base}/`);
    await page2.getByTestId('track-row').first().waitFor({ timeout: 15_000 });
    const user1 = await page.locator('.user-name').textContent();
    const user2 = await page2.locator('.user-name').textContent();
    assert(user1 && user1 === user2, `the tabs are different listeners: ${user1} / ${user2}`);
    for (const p of [page, page2]) {
      await p.waitForFunction(() => document.querySelector('[data-testid="ws-status"]')?.classList.contains('connected'), null, { timeout: 15_000 });
      // Gone if the page reloads: everything below must arrive live.
      await p.evaluate(() => {
        window.__sameDocument = true;
      });
    }

    // Tab 1 creates a playlist; tab 2 lists it and opens it (empty).
    const item = (p) => p.locator(`[data-testid="playlist-item"][data-name="${name}"]`);
    await page.getByTestId('playlist-create-name').fill(name);
    await page.getByTestId('playlist-create').click();
    await item(page).waitFor({ timeout: LIVE_MS });
    await item(page2).waitFor({ timeout: LIVE_MS });
    await item(page2).getByTestId('playlist-open').click();
    await page2.getByTestId('playlist-detail').waitFor({ timeout: LIVE_MS });
    assert((await page2.getByTestId('playlist-name').textContent()) === name, 'tab 2 opened another playlist');
    assert((await page2.getByTestId('playlist-track').count()) === 0, 'the new playlist is not empty');

    // Tab 1 adds two library tracks with the library's playlist menu; tab 2 shows each.
    const rows = page.getByTestId('track-row');
    const a = await rows.nth(0).locator('.track-title').textContent();
    const b = await rows.nth(1).locator('.track-title').textContent();
    await rows.nth(0).getByTestId('playlist-add').selectOption({ label: name });
    await page.getByTestId('playlist-add-status').filter({ hasText: `Added “${a}” to “${name}”` }).waitFor({ timeout: LIVE_MS });
    const t0 = Date.now();
    await waitTitles(page2, [a], 'tab 2 after tab 1 added a track');
    log(`      tab 2 showed the track tab 1 added after ${Date.now() - t0} ms`);
    await rows.nth(1).getByTestId('playlist-add').selectOption({ label: name });
    await waitTitles(page2, [a, b], 'tab 2 after tab 1 added a second track');

    // Tab 1 opens it too; tab 2 moves the second track up: tab 1 follows.
    await item(page).getByTestId('playlist-open').click();
    await waitTitles(page, [a, b], 'tab 1 opening the playlist');
    await page2.getByTestId('playlist-track').nth(1).getByTestId('playlist-track-up').click();
    await waitTitles(page2, [b, a], 'tab 2 after moving a track up');
    await waitTitles(page, [b, a], 'tab 1 after tab 2 reordered');

    // Tab 2 removes one: tab 1 follows.
    await page2.getByTestId('playlist-track').nth(1).getByTestId('playlist-track-remove').click();
    await waitTitles(page2, [b], 'tab 2 after removing a track');
    await waitTitles(page, [b], 'tab 1 after tab 2 removed a track');

    for (const [p, label] of [
      [page, 'tab 1'],
      [page2, 'tab 2'],
    ]) {
      assert(await p.evaluate(() => window.__sameDocument === true), `${label} reloaded`);
    }
    if (screenshot) {
      await page2.screenshot({ path: screenshot, fullPage: true });
      log(`      screenshot: ${screenshot}`);
    }
    // Back to the list in tab 1, as the rest of the run found it.
    await page.getByTestId('playlist-back').click();
  } finally {
    await page2.close().catch(() => {});
  }
}
