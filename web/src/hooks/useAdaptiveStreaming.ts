// The spec's `useAdaptiveStreaming` hook, made real: the streaming session is created with what
// the browser knows of its link and device, and the hook carries the session, the quality being
// played and why, and the buffer health the player measures.

import { useCallback, useRef, useState } from 'react';
import {
  apiUrl,
  createSession,
  endSession,
  hlsMasterPath,
  reportMetrics as postMetrics,
  type AdaptiveProfile,
  type ClientCapabilities,
  type MetricsReport,
  type MetricsResponse,
} from '../api';
import { bufferAheadSeconds, detectCapabilities, type BufferAheadSeconds } from '../capabilities';
import { storedUserId } from './useUserIdentity';

export interface StreamingSessionInfo {
  sessionId: string;
  trackId: string;
  initialProfile: AdaptiveProfile;
  capabilities: ClientCapabilities;
  masterPlaylist: string;
}

export interface AdaptiveStreaming {
  /** Quality id being played (`high`, `medium`, `mobile`, `low`...). */
  currentQuality: string;
  /** Seconds buffered ahead as a percentage of the buffer target, 0-100. */
  bufferHealth: number;
  /** Whether the player may switch quality by itself (hls.js ABR). */
  isAdaptive: boolean;
  setIsAdaptive: (adaptive: boolean) => void;
  /** Creates a session on the server and returns its id; sets the initial quality. */
  createStreamingSession: (trackId: string, overrides?: Partial<ClientCapabilities>) => Promise<string>;
  /** URL of the HLS master playlist; carries the session so the server lists its profile first. */
  getHLSMasterPlaylist: (trackId: string, sessionId?: string | null) => string;

  // Additions to the spec's shape, for the player.
  session: StreamingSessionInfo | null;
  /** Why `currentQuality` is what it is, in words. */
  qualityReason: string;
  setCurrentQuality: (quality: string, reason: string) => void;
  setBufferHealth: (percent: number) => void;
  /** The quality the user asked for (null = let the server and ABR decide). */
  preferredQuality: string | null;
  setPreferredQuality: (quality: string | null) => void;
  /** Seconds of audio to keep buffered ahead (the listener's choice, else the default; see
   * `bufferAheadSeconds`); sent as `buffer_duration_ms` with every later session. */
  bufferAheadSeconds: BufferAheadSeconds;
  /** The listener's choice of buffer depth, kept in localStorage. */
  setBufferAheadSeconds: (seconds: BufferAheadSeconds) => void;
  /** Sends a PerformanceMetrics report (plus position, quality played, startup time) for the
   * current session; resolves to the server's answer. */
  reportMetrics: (metrics: MetricsReport) => Promise<MetricsResponse | null>;
  /** Ends a session on the server (default: the current one); never rejects. */
  endStreamingSession: (sessionId?: string | null, positionMs?: number) => Promise<void>;
  /** The quality the server's monitor thinks this session should have (from the last report). */
  serverQuality: string | null;
  /** The latest session, synchronously (state updates land on the next render). */
  getSession: () => StreamingSessionInfo | null;
}

const ADAPTIVE_KEY = 'stream-server.adaptive';
/** The listener's explicit buffer depth, "120" or "20" (anything else is ignored). */
export const BUFFER_AHEAD_KEY = 'stream-server.bufferAhead';

function readAdaptive(): boolean {
  try {
    return globalThis.localStorage?.getItem(ADAPTIVE_KEY) !== 'false';
  } catch {
    return true;
  }
}

function readBufferAhead(): BufferAheadSeconds {
  let stored: string | null = null;
  try {
    stored = globalThis.localStorage?.getItem(BUFFER_AHEAD_KEY) ?? null;
  } catch {
    // Storage disabled: the default (Save-Data aware) applies.
  }
  return bufferAheadSeconds(stored);
}

export function describeInitialProfile(caps: ClientCapabilities, profile: AdaptiveProfile): string {
  if (caps.preferred_quality && caps.preferred_quality === profile.quality_id) {
    return `server: your choice (${profile.quality_id})`;
  }
  const link =
    caps.estimated_bandwidth_kbps > 0
      ? `${caps.connection_type}, ~${caps.estimated_bandwidth_kbps} kbps`
      : caps.connection_type;
  return `server: initial profile for ${link} (${caps.device_type})`;
}

export function useAdaptiveStreaming(): AdaptiveStreaming {
  const [currentQuality, setQuality] = useState<string>('medium');
  const [qualityReason, setQualityReason] = useState<string>('no session yet');
  const [bufferHealth, setBufferHealthState] = useState<number>(100);
  const [isAdaptive, setIsAdaptiveState] = useState<boolean>(readAdaptive);
  const [preferredQuality, setPreferredQuality] = useState<string | null>(null);
  const [bufferAhead, setBufferAheadState] = useState<BufferAheadSeconds>(readBufferAhead);
  const [session, setSession] = useState<StreamingSessionInfo | null>(null);
  const [serverQuality, setServerQuality] = useState<string | null>(null);

  // Latest values for the stable callbacks below.
  const stateRef = useRef({ isAdaptive, preferredQuality, bufferAhead });
  stateRef.current = { isAdaptive, preferredQuality, bufferAhead };
  const requestSeq = useRef(0);
  const latestSession = useRef<StreamingSessionInfo | null>(null);
  const getSession = useCallback(() => latestSession.current, []);

  const setIsAdaptive = useCallback((adaptive: boolean) => {
    setIsAdaptiveState(adaptive);
    try {
      globalThis.localStorage?.setItem(ADAPTIVE_KEY, String(adaptive));
    } catch {
      // Private mode or no storage: the choice lasts for this page only.
    }
  }, []);

  const setBufferAheadSeconds = useCallback((seconds: BufferAheadSeconds) => {
    // At once, for a session created before the next render (the player's next track).
    stateRef.current = { ...stateRef.current, bufferAhead: seconds };
    setBufferAheadState(seconds);
    try {
      globalThis.localStorage?.setItem(BUFFER_AHEAD_KEY, String(seconds));
    } catch {
      // Private mode or no storage: the choice lasts for this page only.
    }
  }, []);

  const createStreamingSession = useCallback(
    async (trackId: string, overrides?: Partial<ClientCapabilities>): Promise<string> => {
      const seq = ++requestSeq.current;
      const { isAdaptive: adaptive, preferredQuality: preferred, bufferAhead: seconds } = stateRef.current;
      const capabilities: ClientCapabilities = {
        ...detectCapabilities({ adaptiveEnabled: adaptive, preferredQuality: preferred, bufferAheadSeconds: seconds }),
        ...overrides,
      };
      const res = await createSession(trackId, capabilities, undefined, storedUserId());
      // A later call (the listener skipped to another track) wins.
      if (seq === requestSeq.current) {
        const info: StreamingSessionInfo = {
          sessionId: res.session_id,
          trackId,
          initialProfile: res.initial_profile,
          capabilities,
          masterPlaylist: res.master_playlist,
        };
        latestSession.current = info;
        setSession(info);
        setQuality(res.initial_profile.quality_id);
        setQualityReason(describeInitialProfile(capabilities, res.initial_profile));
        setServerQuality(res.initial_profile.quality_id);
      }
      return res.session_id;
    },
    [],
  );

  const getHLSMasterPlaylist = useCallback((trackId: string, sessionId?: string | null): string => {
    let id = sessionId;
    if (id === undefined) {
      const s = latestSession.current;
      id = s && s.trackId === trackId ? s.sessionId : null;
    }
    return apiUrl(hlsMasterPath(trackId, id));
  }, []);

  const setCurrentQuality = useCallback((quality: string, reason: string) => {
    setQuality(quality);
    setQualityReason(reason);
  }, []);

  const setBufferHealth = useCallback((percent: number) => {
    const v = Number.isFinite(percent) ? Math.min(100, Math.max(0, percent)) : 0;
    setBufferHealthState(Math.round(v));
  }, []);

  const reportMetrics = useCallback(async (metrics: MetricsReport): Promise<MetricsResponse | null> => {
    const s = latestSession.current;
    if (!s) return null;
    const res = await postMetrics(s.sessionId, metrics);
    if (latestSession.current?.sessionId === s.sessionId) setServerQuality(res.current_quality);
    return res;
  }, []);

  const endStreamingSession = useCallback(async (sessionId?: string | null, positionMs?: number): Promise<void> => {
    const id = sessionId === undefined ? latestSession.current?.sessionId : sessionId;
    if (!id) return;
    await endSession(id, positionMs);
  }, []);

  return {
    currentQuality,
    bufferHealth,
    isAdaptive,
    setIsAdaptive,
    createStreamingSession,
    getHLSMasterPlaylist,
    session,
    qualityReason,
    setCurrentQuality,
    setBufferHealth,
    preferredQuality,
    setPreferredQuality,
    bufferAheadSeconds: bufferAhead,
    setBufferAheadSeconds,
    reportMetrics,
    endStreamingSession,
    serverQuality,
    getSession,
  };
}
