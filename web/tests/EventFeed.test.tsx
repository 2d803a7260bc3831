// The live event feed: rows keyed by the hook's sequence numbers (stable once the history is at
// its cap), and a polite live region that speaks only the notable events.

import { cleanup, render, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { EventFeed } from '../src/components/EventFeed';
import type { ReceivedEvent } from '../src/hooks/useWebSocket';
import type { WebSocketEvent } from '../src/protocol';

const progress = (i: number): WebSocketEvent => ({ event: 'PlaybackProgress', track_id: 't', user_id: 'u', position_ms: i * 1000, buffer_percentage: 50 });
const stats = (n: number): WebSocketEvent => ({ event: 'LiveStats', concurrent_listeners: n, top_tracks: [], server_load: 0.1 });
const received = (seq: number, event: WebSocketEvent): ReceivedEvent => ({ seq, event, receivedAt: 0 });

/** What useWebSocket keeps after `n` progress events: the last 100, numbered 1..n. */
function historyOf(n: number, make: (i: number) => WebSocketEvent = progress): ReceivedEvent[] {
  const all = Array.from({ length: n }, (_, i) => received(i + 1, make(i + 1)));
  return all.slice(-100);
}

function feed(history: ReceivedEvent[]) {
  return <EventFeed history={history} status="connected" retryCount={0} nextRetryAt={null} />;
}

afterEach(cleanup);

describe('EventFeed', () => {
  it('keeps each row on its event once the history is full (stable keys)', () => {
    const h = historyOf(120);
    const { container, rerender } = render(feed(h));
    const rows = () => [...container.querySelectorAll<HTMLLIElement>('[data-testid="event-list"] li')];
    expect(rows()).toHaveLength(30);
    expect(rows()[0].getAttribute('data-seq')).toBe('120');
    const row120 = rows()[0];
    const row100 = rows()[20];
    expect(row100.textContent).toContain('at 100 s');

    // One more event: the history stays at 100 (the oldest drops), everything shifts by one.
    const next = [...h.slice(1), received(121, progress(121))];
    rerender(feed(next));
    expect(rows()[0].getAttribute('data-seq')).toBe('121');
    // The same DOM nodes still show the same events: React kept them by key.
    expect(rows()[1]).toBe(row120);
    expect(rows()[21]).toBe(row100);
    expect(row100.textContent).toContain('at 100 s');
    expect(new Set(rows().map((r) => r.getAttribute('data-seq'))).size).toBe(30);
  });

  it('does not announce LiveStats or progress; announces quality changes, playlist updates and messages', () => {
    let h = historyOf(50, (i) => (i % 2 ? progress(i) : stats(i)));
    const { container, rerender } = render(feed(h));
    const ui = within(container);
    const list = ui.getByTestId('event-list');
    // The list itself is not a live region (nor inside one).
    expect(list.getAttribute('aria-live')).toBe('off');
    expect(list.closest('[aria-live="polite"],[aria-live="assertive"],[role="log"]')).toBeNull();
    // Still reachable and scrollable from the keyboard.
    expect(list.getAttribute('tabindex')).toBe('0');
    const live = ui.getByTestId('event-announcer');
    expect(live.getAttribute('aria-live')).toBe('polite');
    expect(live.textContent).toBe('');

    // High-frequency events: the live region stays silent.
    let seq = 50;
    const push = (e: WebSocketEvent) => {
      h = [...h, received(++seq, e)].slice(-100);
      rerender(feed(h));
    };
    for (let i = 0; i < 10; i++) push(i % 2 ? stats(i) : progress(i));
    expect(live.textContent).toBe('');

    push({ event: 'QualityChanged', session_id: '0123456789abcdef', user_id: 'u1', track_id: 't1', from: 'high', to: 'mobile', reason: 'buffer low' });
    expect(live.textContent).toBe('session 01234567: high → mobile (buffer low)');
    // Chatter after it does not replace (or repeat) the announcement.
    push(stats(3));
    push(progress(77));
    expect(live.textContent).toBe('session 01234567: high → mobile (buffer low)');

    push({ event: 'PlaylistUpdated', playlist_id: 'p1', action: 'Added', track_id: 't9', position: 2 });
    expect(live.textContent).toBe('playlist p1: Added t9 at 2');
    push({ event: 'ServerMessage', message: 'Maintenance at noon', level: 'Warning' });
    expect(live.textContent).toBe('[Warning] Maintenance at noon');
    push({ event: 'PlaylistShared', playlist_id: 'p2', from_user: 'bob', to_users: ['ann'] });
    expect(live.textContent).toBe('bob shared playlist p2 with ann');
    // The list shows everything, newest first.
    expect(list.querySelector('li')?.textContent).toContain('PlaylistShared');
  });
});
