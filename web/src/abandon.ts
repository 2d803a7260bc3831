// When to give up on a segment request that is heading for a stall, and which rung to ask for
// instead: the rule `bench/abr/src/ours.rs` measures in the simulator (docs/benchmarks.md,
// "With request abandonment"), ported as is.
//
// Why our own: hls.js's emergency switch-down never fires on our three-rung audio ladder (it
// only aborts to a rung above the lowest, and only when that rung loads before the buffer runs
// out), so a listener whose link dies mid-segment waits for the whole top-rung segment. In the
// simulator, hls.js's choices with this rule in place of its own never score worse; on the 3G
// traces with a 30 s buffer they rebuffer 7 % less at full speed, 1 % at half (the player runs
// it before hls.js's own rule, which on this ladder does not fire anyway).

/** A request is not judged before it has streamed this long (seconds after the first byte). */
export const ABANDON_WATCH_S = 1.0;

/** A second of stall weighs as a segment at the top bitrate, as in the score. */
const STALL_WEIGHT = 1.0;

/** A request in flight, as the player sees it. */
export interface InFlight {
  /** Bitrate of every rung, kbit/s, ascending (the request's rung is an index into it). */
  rungsKbps: number[];
  /** The rung being fetched. */
  rung: number;
  /** Media seconds of the segment. */
  segmentS: number;
  /** Bytes of the segment (Content-Length, or what its bitrate makes it). */
  bytesTotal: number;
  bytesLoaded: number;
  /** Seconds since the request went out. */
  elapsedS: number;
  /** Seconds from request to first byte (measured, or the player's estimate before one came). */
  ttfbS: number;
  /** Media buffered ahead of the playhead, seconds. */
  bufferS: number;
  /** The player's throughput estimate, kbit/s (for a link that has sent nothing yet). */
  estimateKbps: number;
  /** Playback is running (a request during start-up or a pause is left alone). */
  playing: boolean;
  /** Seconds a lower rung costs before its segment can be asked for, per rung (its playlist,
   * when the player has not loaded it yet); none when absent. */
  extraS?: number[];
}

/**
 * The rung to re-request the segment at, or `null` to let the request run: cut when the stall
 * this request is heading for, less the lower rung's, outweighs the bitrate given up and the
 * switch, on the score's scale (a second of stall against a segment at the top bitrate). With
 * no byte yet the link is assumed dead as long again as it has been (outages are heavy-tailed),
 * then to carry the estimate. A lower rung's segment is taken as its bitrate times the
 * segment's duration.
 */
export function abandonTo(f: InFlight): number | null {
  const streaming = f.elapsedS - f.ttfbS;
  const kbps = f.rungsKbps;
  if (!f.playing || f.rung <= 0 || f.rung >= kbps.length || !(streaming >= ABANDON_WATCH_S)) {
    return null;
  }
  const remaining = Math.max(0, f.bytesTotal - f.bytesLoaded);
  const rate = f.bytesLoaded / streaming; // bytes/s
  const estimate = Math.max(0, f.estimateKbps) * 125; // bytes/s
  // Seconds until `bytes` more arrive on this link, as it looks now.
  const wait = (bytes: number): number => {
    if (rate > 0) return bytes / rate;
    if (estimate > 0) return streaming + bytes / estimate;
    return Number.POSITIVE_INFINITY;
  };
  const stallHere = Math.max(0, wait(remaining) - f.bufferS);
  if (!(stallHere > 0)) return null;
  const top = kbps[kbps.length - 1];
  let best: number | null = null;
  let bestGain = 0;
  for (let r = 0; r < f.rung; r++) {
    const size = (kbps[r] * 125) * f.segmentS;
    const stall = Math.max(0, f.ttfbS + (f.extraS?.[r] ?? 0) + wait(size) - f.bufferS);
    const givenUp = (kbps[f.rung] - kbps[r]) / top;
    // A stall that cannot end (nothing arrives, no estimate) is no reason to pick one rung over
    // another: compare only finite stalls.
    const saved = Number.isFinite(stallHere) && Number.isFinite(stall) ? stallHere - stall : 0;
    const gain = STALL_WEIGHT * saved - 2 * givenUp;
    if (gain > bestGain) {
      bestGain = gain;
      best = r;
    }
  }
  return best;
}
