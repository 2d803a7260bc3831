// hls.js's ABR controller with our abandonment rule (src/abandon.ts) checked before its own.
//
// hls.js checks a fragment in flight every 100 ms in a private arrow function
// (`_abandonRulesCheck`, abr-controller.ts in hls.js 1.7.4, the version package-lock.json pins);
// a subclass replaces that property and falls back to the original when our rule keeps the
// request. Cutting a request is done as hls.js's own emergency switch-down does it: set the
// next level, abort the fragment's loader, forget it, and tell the stream controller
// (`FRAG_LOAD_EMERGENCY_ABORTED`), which requests that stretch again at that level; like
// hls.js, the estimate is reset to the new level's bitrate when it was above what that level
// needs (else the stale estimate asks for the top rung again), but the cut request is not
// sampled (measuring the same link twice cost score in the simulator). Rung choice otherwise
// stays hls.js's.

import Hls, { Events } from 'hls.js/light';
import { abandonTo } from './abandon';

/** The parts of hls.js's AbrController the rule reads and drives (private in its typings). */
interface AbrInternals {
  hls: Hls | null;
  fragCurrent: {
    level: number;
    duration: number;
    bitrate?: number;
    stats: {
      aborted: boolean;
      loaded: number;
      total: number;
      loading: { start: number; first: number };
    };
    abortRequests(): void;
  } | null;
  partCurrent: unknown;
  _abandonRulesCheck: ((levelLoaded?: unknown) => void) | null;
  clearTimer(): void;
  resetEstimator(bitrate?: number): void;
}

/** Called with the rung a request was cut at and the rung asked for instead (tests, logs). */
export type OnAbandon = (from: number, to: number) => void;

/** A controller class for `new Hls({ abrController })`; `onAbandon` hears every cut. */
export function listenerAbrController(onAbandon?: OnAbandon): typeof Hls.DefaultConfig.abrController {
  const BaseAbr = Hls.DefaultConfig.abrController;
  class ListenerAbrController extends BaseAbr {
    constructor(hls: Hls) {
      super(hls);
      const self = this as unknown as AbrInternals;
      const theirs = self._abandonRulesCheck;
      self._abandonRulesCheck = (levelLoaded?: unknown) => {
        if (!self.hls) return;
        if (cutIfDue(self, onAbandon)) return;
        theirs?.(levelLoaded);
      };
    }
  }
  return ListenerAbrController as unknown as typeof Hls.DefaultConfig.abrController;
}

/** Applies our rule to the fragment in flight; true when it cut the request. */
function cutIfDue(ctrl: AbrInternals, onAbandon?: OnAbandon): boolean {
  const { hls, fragCurrent: frag } = ctrl;
  const media = hls?.media;
  if (!hls || !frag || !media || ctrl.partCurrent || !hls.autoLevelEnabled || !hls.hasEnoughToStart) return false;
  const stats = frag.stats;
  if (stats.aborted || (stats.loaded > 0 && stats.loaded === stats.total)) return false;
  const levels = hls.levels;
  const rung = frag.level;
  if (rung <= hls.minAutoLevel || rung >= levels.length) return false;
  const now = performance.now();
  const ttfbS = stats.loading.first > 0 ? (stats.loading.first - stats.loading.start) / 1000 : hls.ttfbEstimate / 1000;
  const rungsKbps = levels.map((l) => (l.averageBitrate || l.bitrate) / 1000);
  const expected = Math.round(((frag.bitrate || levels[rung].averageBitrate || levels[rung].bitrate) * frag.duration) / 8);
  const to = abandonTo({
    rungsKbps,
    rung,
    segmentS: frag.duration,
    bytesTotal: stats.total > 0 ? stats.total : Math.max(expected, stats.loaded),
    bytesLoaded: stats.loaded,
    elapsedS: (now - stats.loading.start) / 1000,
    ttfbS,
    bufferS: (hls.mainForwardBufferInfo?.len ?? 0) / Math.max(1e-3, Math.abs(media.playbackRate || 1)),
    estimateKbps: hls.bandwidthEstimate / 1000,
    // Started (enough buffered to start, once) and not paused; stalled included: the buffer is
    // what ran out.
    playing: !media.paused && media.playbackRate > 0,
    // A level whose playlist is not loaded yet costs one more round trip first.
    extraS: levels.map((l) => (l.details ? 0 : ttfbS)),
  });
  if (to === null || to < hls.minAutoLevel) return false;
  hls.nextLoadLevel = to;
  // As hls.js's own switch-down: only when the level controller took the switch.
  if (hls.nextLoadLevel !== to) return false;
  ctrl.clearTimer();
  frag.abortRequests();
  ctrl.fragCurrent = null;
  ctrl.partCurrent = null;
  const bitrate = levels[to].bitrate;
  if (hls.bandwidthEstimate * hls.config.abrBandWidthUpFactor > bitrate) ctrl.resetEstimator(bitrate);
  hls.trigger(Events.FRAG_LOAD_EMERGENCY_ABORTED, { frag, part: null, stats } as never);
  onAbandon?.(rung, to);
  return true;
}
