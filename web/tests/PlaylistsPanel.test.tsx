// The playlists panel and the library's "add to playlist" menu, in two "tabs" of the same user
// rendered side by side, against the real stream-server (tests/liveServer.ts).
//
// The server is started twice on one data dir: first with the demo library, to make playlists
// of its tracks; then with a library holding only two of those files, so that the entries of the
// other two are no longer in the library (`available: false`), as after a rescan without them.

import { act, cleanup, fireEvent, render, waitFor, within } from '@testing-library/react';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { useEffect } from 'react';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { setApiBase, type Playlist, type Track } from '../src/api';
import { Library } from '../src/components/Library';
import { PlaylistsPanel } from '../src/components/PlaylistsPanel';
import { formatTime } from '../src/format';
import { usePlaylists } from '../src/hooks/usePlaylists';
import { useQueue, type Queue } from '../src/hooks/useQueue';
import { useWebSocket } from '../src/hooks/useWebSocket';
import { freshUser, recordTraffic, restAs, startLiveServer, type LiveServer, type Traffic } from './liveServer';

const FAST = { initialMs: 40, maxMs: 400, factor: 2, jitter: 0 };

/** What App's Shell wires together, minus the player. */
function Tab({ userId, onQueue }: { userId: string; onQueue?: (q: Queue) => void }) {
  const ws = useWebSocket({ backoff: FAST });
  const { connect, disconnect } = ws;
  useEffect(() => {
    connect(userId);
    return () => disconnect();
  }, [connect, disconnect, userId]);
  const playlists = usePlaylists(userId, null, { ws, debounceMs: 40 });
  const queue = useQueue();
  useEffect(() => {
    onQueue?.(queue);
  }, [queue, onQueue]);
  return (
    <div data-ws={ws.connectionStatus}>
      <Library
        currentTrackId={queue.current?.track.id ?? null}
        onPlay={(t: Track) => queue.playNow(t)}
        onQueue={(t: Track) => queue.add(t)}
        playlists={playlists.playlists}
        userId={userId}
        onAddToPlaylist={(id, t) => playlists.addTrack(id, t.id)}
      />
      <PlaylistsPanel
        api={playlists}
        userId={userId}
        currentTrackId={queue.current?.track.id ?? null}
        onPlay={queue.playAll}
        onQueue={(tracks) => tracks.forEach((t) => queue.add(t))}
      />
    </div>
  );
}

async function openTab(userId: string, onQueue?: (q: Queue) => void) {
  const r = render(<Tab userId={userId} onQueue={onQueue} />);
  const ui = within(r.container);
  await waitFor(() => expect(r.container.firstElementChild?.getAttribute('data-ws')).toBe('connected'));
  await waitFor(() => expect(ui.getAllByTestId('track-row')).toHaveLength(library.length));
  await waitFor(() => expect(ui.getByTestId('playlists-status').textContent).not.toBe('loading…'));
  return { ...r, ui };
}

const trackTitles = (ui: ReturnType<typeof within>) =>
  ui.queryAllByTestId('playlist-track').map((li: HTMLElement) => li.querySelector('.track-title')?.textContent);

const ids = (p: Playlist) => p.tracks.map((t) => t.track_id);

let server: LiveServer;
let traffic: Traffic;
let dataDir = '';
let libraryDir = '';
/** The library of the second start: two of the demo tracks. */
let library: Track[] = [];
/** Two demo tracks left out of it. */
let goneIds: string[] = [];
/** The kept tracks, in the order they were put in the playlists. */
let keptIds: string[] = [];
const kept = (i: number) => library.find((t) => t.id === keptIds[i])!;
/** Playlists made before, now with entries out of the library. */
let trip: { owner: string; id: string };
let lost: { owner: string; id: string };

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'stream-server-playlists-'));
  libraryDir = mkdtempSync(path.join(tmpdir(), 'stream-server-library-'));
  // 1. The demo library: playlists of four tracks.
  const first = await startLiveServer({ dataDir });
  let demo: Track[];
  try {
    demo = await restAs(first, 'setup').tracks();
    expect(demo.length).toBeGreaterThanOrEqual(4);
    const [a, b, x, y] = demo;
    trip = { owner: freshUser('trip'), id: '' };
    const t = await restAs(first, trip.owner).create('Trip');
    for (const id of [a.id, x.id, b.id]) await restAs(first, trip.owner).add(t.id, id);
    trip.id = t.id;
    lost = { owner: freshUser('lost'), id: '' };
    const l = await restAs(first, lost.owner).create('Lost');
    for (const id of [x.id, y.id]) await restAs(first, lost.owner).add(l.id, id);
    lost.id = l.id;
    goneIds = [x.id, y.id];
    keptIds = [a.id, b.id];
    // 2. A library with only the first two files (same relative paths, so the same track ids).
    for (const keep of [a, b]) {
      const to = path.join(libraryDir, keep.filename);
      mkdirSync(path.dirname(to), { recursive: true });
      cpSync(path.join(dataDir, 'demo-library', keep.filename), to);
    }
  } finally {
    await first.stop();
  }
  server = await startLiveServer({ dataDir, library: libraryDir });
  library = await restAs(server, 'setup').tracks();
  expect(library.map((t) => t.id).sort()).toEqual(demo.slice(0, 2).map((t) => t.id).sort());
  traffic = recordTraffic();
  setApiBase(server.base);
}, 180_000);
beforeEach(() => traffic.reset());
afterEach(() => {
  cleanup();
  traffic.reset();
});
afterAll(async () => {
  traffic?.restore();
  setApiBase('');
  await server?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  if (libraryDir) rmSync(libraryDir, { recursive: true, force: true });
});

describe('PlaylistsPanel and the library menu', () => {
  it('creates, fills, reorders and empties a playlist in one tab while the other follows', async () => {
    const ann = freshUser('ann');
    let queue: Queue | null = null;
    const tab1 = await openTab(ann, (q) => {
      queue = q;
    });
    const tab2 = await openTab(ann);
    const [alpha, bravo] = library;

    // No playlist yet: the library's menu is there but disabled.
    const menu = () => tab1.ui.getAllByTestId('playlist-add');
    expect(menu()).toHaveLength(library.length);
    expect((menu()[0] as HTMLSelectElement).disabled).toBe(true);
    expect(menu()[0].getAttribute('aria-label')).toBe(`Add ${alpha.title} to a playlist`);

    // Create: the button is disabled until there is a name.
    const create = tab1.ui.getByTestId('playlist-create') as HTMLButtonElement;
    expect(create.disabled).toBe(true);
    fireEvent.change(tab1.ui.getByTestId('playlist-create-name'), { target: { value: '  Road trip ' } });
    fireEvent.click(create);
    await waitFor(() => expect(tab1.ui.getAllByTestId('playlist-item')).toHaveLength(1));
    expect(tab1.ui.getByTestId('playlist-item').getAttribute('data-name')).toBe('Road trip');
    expect((tab1.ui.getByTestId('playlist-create-name') as HTMLInputElement).value).toBe('');
    const id = tab1.ui.getByTestId('playlist-item').getAttribute('data-playlist-id')!;
    await waitFor(() => expect(tab2.ui.queryAllByTestId('playlist-item')).toHaveLength(1));

    // Add two library tracks from tab 1's menu (AddToPlaylist over the WebSocket).
    await waitFor(() => expect((menu()[0] as HTMLSelectElement).disabled).toBe(false));
    const rows = tab1.ui.getAllByTestId('track-row');
    const rowOf = (t: Track) => rows.find((r) => r.getAttribute('data-track-id') === t.id)!;
    fireEvent.change(within(rowOf(alpha)).getByTestId('playlist-add'), { target: { value: id } });
    await waitFor(() => expect(tab1.ui.getByTestId('playlist-add-status').textContent).toBe(`Added “${alpha.title}” to “Road trip”.`));
    fireEvent.change(within(rowOf(bravo)).getByTestId('playlist-add'), { target: { value: id } });
    await waitFor(() => expect(tab1.ui.getByTestId('playlist-summary').textContent).toMatch(/^2 tracks/));
    expect(traffic.commands.filter((c) => c.command.command === 'AddToPlaylist')).toHaveLength(2);

    // Tab 2 shows it without a reload; open it there.
    await waitFor(() => expect(tab2.ui.getByTestId('playlist-summary').textContent).toMatch(/^2 tracks/));
    fireEvent.click(tab2.ui.getByRole('button', { name: 'Open playlist Road trip' }));
    expect(tab2.ui.getByTestId('playlist-name').textContent).toBe('Road trip');
    expect(trackTitles(tab2.ui)).toEqual([alpha.title, bravo.title]);
    expect(document.activeElement).toBe(tab2.ui.getByTestId('playlist-back'));

    // Open it in tab 1 too; reorder with the buttons in tab 2: tab 1 follows.
    fireEvent.click(tab1.ui.getByTestId('playlist-open'));
    expect(trackTitles(tab1.ui)).toEqual([alpha.title, bravo.title]);
    const up = tab2.ui.getAllByTestId('playlist-track-up');
    expect((up[0] as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(tab2.ui.getByRole('button', { name: `Move ${bravo.title} up` }));
    expect(trackTitles(tab2.ui)).toEqual([bravo.title, alpha.title]); // at once
    await waitFor(() => expect(trackTitles(tab1.ui)).toEqual([bravo.title, alpha.title]));

    // Drag-and-drop does the same.
    const items = tab1.ui.getAllByTestId('playlist-track');
    const dataTransfer = { effectAllowed: '', dropEffect: '', setData: () => {}, getData: () => '' };
    fireEvent.dragStart(items[1], { dataTransfer });
    fireEvent.dragOver(items[0], { dataTransfer });
    fireEvent.drop(items[0], { dataTransfer });
    expect(trackTitles(tab1.ui)).toEqual([alpha.title, bravo.title]);
    await waitFor(() => expect(trackTitles(tab2.ui)).toEqual([alpha.title, bravo.title]));

    // Play from the second track: the queue becomes the playlist, starting there.
    fireEvent.click(tab1.ui.getByRole('button', { name: `Play ${bravo.title} from the playlist` }));
    await waitFor(() => expect(queue!.current?.track.id).toBe(bravo.id));
    expect(queue!.items.map((i) => i.track.id)).toEqual([alpha.id, bravo.id]);
    fireEvent.click(tab1.ui.getByTestId('playlist-play-all'));
    await waitFor(() => expect(queue!.current?.track.id).toBe(alpha.id));

    // Remove in tab 2: tab 1 follows.
    fireEvent.click(tab2.ui.getByRole('button', { name: `Remove ${alpha.title} from the playlist` }));
    await waitFor(() => expect(trackTitles(tab1.ui)).toEqual([bravo.title]));
    expect(ids(await restAs(server, ann).get(id))).toEqual([bravo.id]);
  });

  it('renames inline, deletes after a confirmation, and tells the other tab it is gone', async () => {
    const ann = freshUser('ann');
    const tab1 = await openTab(ann);
    const tab2 = await openTab(ann);
    fireEvent.change(tab1.ui.getByTestId('playlist-create-name'), { target: { value: 'Focus' } });
    fireEvent.submit(tab1.ui.getByTestId('playlist-create-name').closest('form')!);
    await waitFor(() => expect(tab2.ui.queryAllByTestId('playlist-item')).toHaveLength(1));
    fireEvent.click(tab2.ui.getByTestId('playlist-open'));

    // Rename in tab 1; tab 2 (open on it) shows the new name.
    fireEvent.click(tab1.ui.getByRole('button', { name: 'Rename Focus' }));
    const input = tab1.ui.getByTestId('playlist-rename-input') as HTMLInputElement;
    expect(input.value).toBe('Focus');
    fireEvent.change(input, { target: { value: 'Deep focus' } });
    fireEvent.click(tab1.ui.getByTestId('playlist-rename-save'));
    expect(tab1.ui.getByTestId('playlist-item').getAttribute('data-name')).toBe('Deep focus');
    await waitFor(() => expect(tab2.ui.getByTestId('playlist-name').textContent).toBe('Deep focus'));

    // Delete asks first; Cancel keeps it.
    fireEvent.click(tab1.ui.getByRole('button', { name: 'Delete Deep focus' }));
    fireEvent.click(tab1.ui.getByRole('button', { name: 'Cancel' }));
    expect(tab1.ui.getAllByTestId('playlist-item')).toHaveLength(1);
    expect(await restAs(server, ann).list()).toHaveLength(1);
    fireEvent.click(tab1.ui.getByRole('button', { name: 'Delete Deep focus' }));
    fireEvent.click(tab1.ui.getByTestId('playlist-delete-confirm'));
    expect(tab1.ui.queryAllByTestId('playlist-item')).toHaveLength(0);
    await waitFor(async () => expect(await restAs(server, ann).list()).toHaveLength(0));

    // Tab 2 had it open: back to the list, with a word about it.
    await waitFor(() => expect(tab2.ui.getByRole('status').textContent).toContain('“Deep focus” is gone'));
    expect(tab2.ui.queryByTestId('playlist-detail')).toBeNull();
    expect(tab2.ui.queryAllByTestId('playlist-item')).toHaveLength(0);
  });

  it('shows a playlist shared by someone else read-only, and keeps it out of the library menu', async () => {
    const ann = freshUser('ann');
    const bob = freshUser('bob');
    const [alpha] = library;
    const mix = await restAs(server, bob).create('Bob’s mix');
    await restAs(server, bob).add(mix.id, alpha.id);
    await restAs(server, bob).share(mix.id, [ann]);
    const tab = await openTab(ann);
    await waitFor(() => expect(tab.ui.getAllByTestId('playlist-item')).toHaveLength(1));
    expect(tab.ui.getByTestId('playlist-summary').textContent).toBe(`1 track · ${formatTime(alpha.duration_ms / 1000)} · shared by ${bob}`);
    expect(tab.ui.queryByTestId('playlist-rename')).toBeNull();
    expect(tab.ui.queryByTestId('playlist-delete')).toBeNull();
    const menu = tab.ui.getAllByTestId('playlist-add')[0] as HTMLSelectElement;
    expect(menu.disabled).toBe(true);
    expect(within(menu).queryByRole('option', { name: 'Bob’s mix' })).toBeNull();

    // Open: it plays, but offers no reordering or removal.
    fireEvent.click(tab.ui.getByTestId('playlist-open'));
    expect(tab.ui.getAllByTestId('playlist-track')).toHaveLength(1);
    expect(tab.ui.getByText(`Shared with you by ${bob}: only they can change it.`)).toBeTruthy();
    expect(tab.ui.queryByTestId('playlist-track-up')).toBeNull();
    expect(tab.ui.queryByTestId('playlist-track-remove')).toBeNull();
    expect(tab.ui.getByTestId('playlist-track').getAttribute('draggable')).toBe('false');
  });

  it('marks the entries no longer in the library, plays and queues around them, and still lets the owner move or remove them', async () => {
    const [alpha, bravo] = [kept(0), kept(1)];
    // Trip is [alpha, gone, bravo]: the server keeps the entry of a track no longer in the library
    // (titled by its id, as the server has nothing else to name it with).
    const gone = goneIds[0];
    const both = formatTime((alpha.duration_ms + bravo.duration_ms) / 1000);
    expect(ids(await restAs(server, trip.owner).get(trip.id))).toEqual([alpha.id, gone, bravo.id]);
    let queue: Queue | null = null;
    const tab = await openTab(trip.owner, (q) => {
      queue = q;
    });
    await waitFor(() => expect(tab.ui.getAllByTestId('playlist-item')).toHaveLength(1));
    // The count keeps the entry; the duration is what plays.
    expect(tab.ui.getByTestId('playlist-summary').textContent).toBe(`3 tracks · 1 unavailable · ${both}`);

    // Play from the list: the queue skips it.
    fireEvent.click(tab.ui.getByRole('button', { name: 'Play Trip' }));
    await waitFor(() => expect(queue!.items.map((i) => i.track.id)).toEqual([alpha.id, bravo.id]));
    expect(queue!.current?.track.id).toBe(alpha.id);

    // Open: shown in its place, struck and said to be unavailable, in words and to assistive tech.
    fireEvent.click(tab.ui.getByTestId('playlist-open'));
    expect(trackTitles(tab.ui)).toEqual([alpha.title, gone, bravo.title]);
    const rows = tab.ui.getAllByTestId('playlist-track');
    expect(rows.map((r) => r.getAttribute('data-available'))).toEqual(['true', 'false', 'true']);
    expect(rows[1].classList.contains('unavailable')).toBe(true);
    expect(rows[0].classList.contains('unavailable')).toBe(false);
    expect(within(rows[1]).getByText('(unavailable)')).toBeTruthy();
    expect(within(rows[0]).queryByText('(unavailable)')).toBeNull();
    expect(tab.ui.getByTestId('playlist-unavailable-note').textContent).toBe(
      '1 track no longer in the library: playing or queueing the playlist skips it. You can still move or remove it.',
    );

    // Not playable: its play button is disabled and named for what it is.
    expect(tab.ui.queryByRole('button', { name: `Play ${gone} from the playlist` })).toBeNull();
    const dead = tab.ui.getByRole('button', { name: `${gone}: unavailable, no longer in the library` }) as HTMLButtonElement;
    expect(dead.disabled).toBe(true);
    expect(dead).toBe(within(rows[1]).getByTestId('playlist-track-play'));
    fireEvent.click(dead);
    expect(queue!.current?.track.id).toBe(alpha.id);
    expect(within(rows[0]).getByTestId<HTMLButtonElement>('playlist-track-play').disabled).toBe(false);

    // Play from the track after it: the queue is the playable entries, starting at that one.
    fireEvent.click(tab.ui.getByRole('button', { name: `Play ${bravo.title} from the playlist` }));
    await waitFor(() => expect(queue!.current?.track.id).toBe(bravo.id));
    expect(queue!.items.map((i) => i.track.id)).toEqual([alpha.id, bravo.id]);
    expect(queue!.index).toBe(1);

    // Add all to queue and Play all skip it too.
    fireEvent.click(tab.ui.getByRole('button', { name: 'Add all to queue' }));
    await waitFor(() => expect(queue!.items.map((i) => i.track.id)).toEqual([alpha.id, bravo.id, alpha.id, bravo.id]));
    fireEvent.click(tab.ui.getByTestId('playlist-play-all'));
    await waitFor(() => expect(queue!.items.map((i) => i.track.id)).toEqual([alpha.id, bravo.id]));
    expect(queue!.current?.track.id).toBe(alpha.id);

    // The owner can still move it (its buttons say it is unavailable too)...
    const up = tab.ui.getByRole('button', { name: `Move ${gone} up` }) as HTMLButtonElement;
    expect(up.disabled).toBe(false);
    expect(document.getElementById(up.getAttribute('aria-describedby')!)?.textContent).toBe('(unavailable)');
    fireEvent.click(up);
    expect(trackTitles(tab.ui)).toEqual([gone, alpha.title, bravo.title]);
    await waitFor(async () => expect(ids(await restAs(server, trip.owner).get(trip.id))).toEqual([gone, alpha.id, bravo.id]));
    await waitFor(() => expect(tab.ui.getAllByTestId('playlist-track')[0].getAttribute('data-available')).toBe('false'));

    // ...and remove it: the playlist is whole again.
    const remove = tab.ui.getByRole('button', { name: `Remove ${gone} from the playlist` }) as HTMLButtonElement;
    expect(remove.disabled).toBe(false);
    expect(document.getElementById(remove.getAttribute('aria-describedby')!)?.textContent).toBe('(unavailable)');
    expect(tab.ui.getByRole('button', { name: `Remove ${alpha.title} from the playlist` }).hasAttribute('aria-describedby')).toBe(false);
    fireEvent.click(remove);
    expect(trackTitles(tab.ui)).toEqual([alpha.title, bravo.title]);
    await waitFor(async () => expect(ids(await restAs(server, trip.owner).get(trip.id))).toEqual([alpha.id, bravo.id]));
    await waitFor(() => expect(tab.ui.getByTestId('playlist-summary').textContent).toBe(`2 tracks · ${both}`));
    expect(tab.ui.queryByTestId('playlist-unavailable-note')).toBeNull();
    expect(tab.ui.queryByText('(unavailable)')).toBeNull();
  });

  it('offers nothing to play when no entry is in the library any more, and still lets the owner clean up', async () => {
    // Lost is [x, y], both out of the library now.
    const [x, y] = goneIds;
    expect(ids(await restAs(server, lost.owner).get(lost.id))).toEqual([x, y]);
    let queue: Queue | null = null;
    const tab = await openTab(lost.owner, (q) => {
      queue = q;
    });
    await waitFor(() => expect(tab.ui.getAllByTestId('playlist-item')).toHaveLength(1));
    expect(tab.ui.getByTestId('playlist-summary').textContent).toBe('2 tracks · 2 unavailable');
    const playList = tab.ui.getByRole('button', { name: 'Play Lost' }) as HTMLButtonElement;
    expect(playList.disabled).toBe(true);
    fireEvent.click(playList);
    expect(queue!.items).toEqual([]);

    fireEvent.click(tab.ui.getByTestId('playlist-open'));
    expect((tab.ui.getByTestId('playlist-play-all') as HTMLButtonElement).disabled).toBe(true);
    expect((tab.ui.getByRole('button', { name: 'Add all to queue' }) as HTMLButtonElement).disabled).toBe(true);
    expect(tab.ui.getByTestId('playlist-unavailable-note').textContent).toBe(
      'None of its tracks is in the library any more: there is nothing to play. You can still move or remove them.',
    );
    expect(tab.ui.getAllByText('(unavailable)')).toHaveLength(2);
    for (const b of tab.ui.getAllByTestId<HTMLButtonElement>('playlist-track-play')) expect(b.disabled).toBe(true);
    fireEvent.click(tab.ui.getByTestId('playlist-play-all'));
    expect(queue!.items).toEqual([]);

    // Reorder and remove still work.
    fireEvent.click(tab.ui.getByRole('button', { name: `Move ${y} up` }));
    await waitFor(async () => expect(ids(await restAs(server, lost.owner).get(lost.id))).toEqual([y, x]));
    fireEvent.click(tab.ui.getByRole('button', { name: `Remove ${x} from the playlist` }));
    await waitFor(async () => expect(ids(await restAs(server, lost.owner).get(lost.id))).toEqual([y]));
    await waitFor(() => expect(trackTitles(tab.ui)).toEqual([y]));
    expect(tab.ui.getByTestId('playlist-summary').textContent).toBe('1 track · 1 unavailable');
  });

  it('says why a track could not be added', async () => {
    const ann = freshUser('ann');
    const mine = await restAs(server, ann).create('Mine');
    const tab = await openTab(ann);
    const menu = () => tab.ui.getAllByTestId('playlist-add')[0] as HTMLSelectElement;
    await waitFor(() => expect(menu().disabled).toBe(false));
    const first = tab.ui.getAllByTestId('track-row')[0].querySelector('.track-title')?.textContent;
    // Deleted from another device; this tab picks it before its re-fetch (debounced) lands: the
    // command, then REST, both refuse.
    await act(async () => {
      await restAs(server, ann).remove(mine.id);
      fireEvent.change(menu(), { target: { value: mine.id } });
    });
    const status = await waitFor(() => {
      const el = tab.ui.getByTestId('playlist-add-status');
      expect(el.textContent).toMatch(/^Could not add/);
      return el;
    });
    expect(status.textContent).toBe(`Could not add “${first}” to “Mine”: no playlist "${mine.id}"`);
    expect(status.getAttribute('role')).toBe('alert');
    const add = traffic.commands.find((c) => c.command.command === 'AddToPlaylist');
    expect(add?.command).toMatchObject({ playlist_id: mine.id });
    expect(traffic.requests.filter((r) => r.method === 'POST' && r.path === `/api/playlists/${mine.id}/tracks`)).toHaveLength(1);
    // And the list catches up with the server.
    await waitFor(() => expect(tab.ui.queryAllByTestId('playlist-item')).toHaveLength(0));
  });
});
