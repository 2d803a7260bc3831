// The abandonment rule (src/abandon.ts), on the cases the simulator's copy is tested with
// (bench/abr/src/ours.rs): 5 s segments of 96/192/320 kbit/s (60, 120, 200 kB).

import { describe, expect, it } from 'vitest';
import { ABANDON_WATCH_S, abandonTo, type InFlight } from '../src/abandon';

const RUNGS = [96, 192, 320];

/** The top-rung request `elapsedS` after it went out, on a link of `kbps` since its first byte,
 * with `bufferS` buffered when it went out (playback drains it meanwhile). */
function topRequest(kbps: number, elapsedS: number, bufferS: number, over: Partial<InFlight> = {}): InFlight {
  const ttfbS = 0.1;
  const loaded = Math.min(200_000, Math.max(0, elapsedS - ttfbS) * kbps * 125);
  return {
    rungsKbps: RUNGS,
    rung: 2,
    segmentS: 5,
    bytesTotal: 200_000,
    bytesLoaded: loaded,
    elapsedS,
    ttfbS,
    bufferS: Math.max(0, bufferS - elapsedS),
    estimateKbps: 1000,
    playing: true,
    ...over,
  };
}

/** The first check (every 100 ms) at which the rule cuts, and the rung it asks for. */
function firstCut(at: (elapsedS: number) => InFlight, untilS = 30): [number, number] | null {
  for (let i = 1; i <= untilS * 10; i++) {
    const t = i / 10;
    const r = abandonTo(at(t));
    if (r !== null) return [t, r];
  }
  return null;
}

describe('abandonment', () => {
  it('cuts for the rung whose saved silence outweighs what it gives up', () => {
    // 100 kbit/s with 8 s buffered: the top segment would stall 8 s, 192's 2.75 s, 96's none.
    const slow = firstCut((t) => topRequest(100, t, 8));
    expect(slow).not.toBeNull();
    const [at, rung] = slow!;
    expect(rung).toBe(0);
    // Judged only after a second of streaming.
    expect(at).toBeGreaterThanOrEqual(0.1 + ABANDON_WATCH_S - 1e-9);
    expect(at).toBeLessThan(1.2);
    // 200 kbit/s, 7 s buffered: the top segment would stall about 1 s; 192's arrives in time
    // and gives up less than 96's.
    expect(firstCut((t) => topRequest(200, t, 7))?.[1]).toBe(1);
    // A request that arrives in time is left alone.
    expect(firstCut((t) => topRequest(200, t, 12), 8)).toBeNull();
  });

  it('cuts a dead link only when the smaller segment saves enough', () => {
    const dead = (estimateKbps: number) => (t: number) => topRequest(0, t, 25, { estimateKbps });
    // At 1 Mbit/s every rung arrives within about a second of another once the link returns:
    // not worth a lower rung, however long the outage.
    expect(firstCut(dead(1000))).toBeNull();
    // At 150 kbit/s the top segment needs 10.7 s once the link returns, 192's 6.4 s: cut once
    // the outage has lasted long enough for that to matter, for the rung that still arrives.
    const cut = firstCut(dead(150));
    expect(cut).not.toBeNull();
    expect(cut![1]).toBe(1);
    expect(cut![0]).toBeGreaterThan(5);
    expect(cut![0]).toBeLessThan(12);
    // No estimate and nothing arriving: no rung can be shown to be better.
    expect(firstCut(dead(0))).toBeNull();
  });

  it('counts the round trip a lower rung needs for its playlist', () => {
    // 160 kbit/s, 8 s buffered: the top segment would stall 2.1 s, 192's just arrives in time
    // and gives up less than 96's; if 192's playlist must come first (1.5 s), 192 stalls 0.7 s
    // and 96's is the better cut.
    const noPlaylist = (t: number) => topRequest(160, t, 8, { extraS: [0, 1.5, 0] });
    expect(firstCut((t) => topRequest(160, t, 8))?.[1]).toBe(1);
    expect(firstCut(noPlaylist)?.[1]).toBe(0);
  });

  it('leaves alone what it must not cut', () => {
    const stalled = (over: Partial<InFlight>) => abandonTo(topRequest(100, 3, 0.5, over));
    expect(stalled({})).toBe(0);
    // Start-up or a pause: the buffer is not draining.
    expect(stalled({ playing: false })).toBeNull();
    // Already at the lowest rung.
    expect(stalled({ rung: 0, bytesTotal: 60_000, bytesLoaded: 30_000 })).toBeNull();
    // Hostile numbers: an unknown rung, a clock that went backwards.
    expect(stalled({ rung: 7 })).toBeNull();
    expect(stalled({ elapsedS: -1 })).toBeNull();
    expect(abandonTo({ ...topRequest(100, 3, 0.5), elapsedS: Number.NaN })).toBeNull();
  });
});
