// The spec's `AdaptiveAudioPlayer`, made real.
//
// Source, best first: hls.js over Media Source Extensions; the browser's own HLS (Safari, iOS);
// the progressive `/stream/{id}` file. The streaming session is created first, so the server's
// choice of starting profile (from the link and device) is the first variant played. The player
// reports PerformanceMetrics every 5 s while playing (with the position, the profile actually
// played and, once, the startup time) and tells the WebSocket what the listener does (Play,
// Pause, Seek; progress as a Seek at most every 10 s). Play and Pause go out only when the state
// changes, and a burst of toggles (Space pressed repeatedly) sends at most the final state; a drag
// of the seek slider moves the playhead once, when it is committed (released, or held still for
// 300 ms), and sends one Seek. The session is ended (DELETE) when the player moves to another
// track, and with a keepalive fetch on `pagehide`.

import Hls, { ErrorDetails, Events, ErrorTypes, type ErrorData, type FragLoadedData, type Level } from 'hls.js/light';
import { useCallback, useEffect, useMemo, useRef, useState, type ChangeEvent } from 'react';
import { apiUrl, endSession, progressivePath, type AdaptiveProfile, type MetricsReport, type Track } from '../api';
import { BUFFER_AHEAD_S, DATA_SAVER_BUFFER_S, type BufferAheadSeconds } from '../capabilities';
import { formatKbps, formatTime, qualityFromUrl } from '../format';
import { useAdaptiveStreaming } from '../hooks/useAdaptiveStreaming';
import { newCommandId } from '../protocol';
import { listenerAbrController } from '../listenerAbr';
import { useRealtime } from '../realtime';
import { BitrateChart, type ChartSample } from './BitrateChart';

export type PlaybackMode = 'hls.js' | 'native-hls' | 'progressive';

export interface AdaptiveAudioPlayerProps {
  trackId: string;
  /** For the title line; the player works from the id alone. */
  track?: Track | null;
  /** Changes whenever playback of `trackId` should start again from the top. */
  startToken?: number;
  autoPlay?: boolean;
  onEnded?: () => void;
  onNext?: () => void;
  onPrevious?: () => void;
  hasNext?: boolean;
  hasPrevious?: boolean;
  /** The server's quality ladder (from /api/streaming/stats), to name bitrates exactly. */
  profiles?: AdaptiveProfile[];
}

type PlayState = 'Play' | 'Pause';

/**
 * The share of segment requests that failed in a report window, in percent: an application-level
 * proxy for packet loss (the browser exposes no transport-level loss). Each failed attempt (an
 * hls.js FRAG_LOAD_ERROR or FRAG_LOAD_TIMEOUT, retries included) counts as one request, each
 * fragment loaded as another; 0 when nothing failed or nothing was requested.
 */
export function segmentLossPercent(fragmentsLoaded: number, fragmentsFailed: number): number {
  const requests = fragmentsLoaded + fragmentsFailed;
  if (requests <= 0 || fragmentsFailed <= 0) return 0;
  return Math.round((fragmentsFailed / requests) * 1000) / 10;
}

interface LevelInfo {
  index: number;
  quality: string;
  bitrateKbps: number;
}

const METRICS_PERIOD_MS = 5000;
const PROGRESS_PERIOD_MS = 10_000;
const SAMPLE_PERIOD_MS = 1000;
const CHART_WINDOW_S = 120;
const SEEK_STEP_S = 10;
/** A slider held still this long (or released) commits the seek. */
const SCRUB_COMMIT_MS = 300;
/** Play/Pause toggles closer together than this are sent as one command: the final state. */
const PLAY_PAUSE_COALESCE_MS = 250;
const VOLUME_KEY = 'stream-server.volume';
/** The server's profiles, when its ladder is not known yet. */
const DEFAULT_QUALITIES = ['high', 'medium', 'mobile', 'low'];
/** The buffer depths the listener can pick, as the select lists them. */
const BUFFER_AHEAD_CHOICES: { seconds: BufferAheadSeconds; label: string }[] = [
  { seconds: BUFFER_AHEAD_S, label: '2 min ahead' },
  { seconds: DATA_SAVER_BUFFER_S, label: '20 s ahead (data saver)' },
];

/** Where the last bandwidth estimate of this page is kept between tracks (bits/s). */
let lastBandwidthEstimate: number | null = null;

function levelUrl(level: Level): string | null {
  const u = (level as { url?: string[] | string }).url;
  if (Array.isArray(u)) return u[0] ?? null;
  if (typeof u === 'string') return u;
  try {
    return level.uri;
  } catch {
    return null;
  }
}

function bufferedAhead(audio: HTMLAudioElement): number {
  const t = audio.currentTime;
  const b = audio.buffered;
  for (let i = 0; i < b.length; i++) {
    // A small tolerance: the playhead can sit a few ms before the first buffered range.
    if (b.start(i) <= t + 0.25 && t < b.end(i)) return Math.max(0, b.end(i) - t);
  }
  return 0;
}

/** Buffer health: seconds ahead against what can still be buffered (the target, or the rest of
 * the track near its end), as a percentage. */
export function bufferHealthPercent(ahead: number, currentTime: number, duration: number, target: number): number {
  const remaining = Number.isFinite(duration) && duration > 0 ? duration - currentTime : target;
  const want = Math.min(target, remaining);
  if (want <= 0.5) return 100;
  return Math.max(0, Math.min(100, (ahead / want) * 100));
}

function readVolume(): number {
  try {
    const v = Number(globalThis.localStorage?.getItem(VOLUME_KEY));
    return Number.isFinite(v) && v >= 0 && v <= 1 && globalThis.localStorage?.getItem(VOLUME_KEY) !== null ? v : 0.8;
  } catch {
    return 0.8;
  }
}

export function AdaptiveAudioPlayer({
  trackId,
  track,
  startToken = 0,
  autoPlay = true,
  onEnded,
  onNext,
  onPrevious,
  hasNext = false,
  hasPrevious = false,
  profiles,
}: AdaptiveAudioPlayerProps) {
  const streaming = useAdaptiveStreaming();
  const {
    createStreamingSession,
    getHLSMasterPlaylist,
    currentQuality,
    qualityReason,
    setCurrentQuality,
    bufferHealth,
    setBufferHealth,
    isAdaptive,
    setIsAdaptive,
    setPreferredQuality,
    bufferAheadSeconds,
    setBufferAheadSeconds,
    reportMetrics,
    session,
    serverQuality,
    getSession,
  } = streaming;
  const { sendCommand, events } = useRealtime();

  const audioRef = useRef<HTMLAudioElement>(null);
  const hlsRef = useRef<Hls | null>(null);
  const [mode, setMode] = useState<PlaybackMode | null>(null);
  const [status, setStatus] = useState<string>('Loading…');
  const [error, setError] = useState<string | null>(null);
  const [isPlaying, setIsPlaying] = useState(false);
  const [isWaiting, setIsWaiting] = useState(false);
  const [currentTime, setCurrentTime] = useState(0);
  const [duration, setDuration] = useState(0);
  const [volume, setVolume] = useState<number>(readVolume);
  const [muted, setMuted] = useState(false);
  const [levels, setLevels] = useState<LevelInfo[]>([]);
  const [loadingQuality, setLoadingQuality] = useState<string | null>(null);
  const [samples, setSamples] = useState<ChartSample[]>([]);
  const [bandwidthKbps, setBandwidthKbps] = useState<number | null>(null);
  const [stats, setStats] = useState({ rebuffers: 0, rebufferMs: 0, switches: 0, latencyMs: 0, abandoned: 0 });
  /** Where the seek slider's thumb is while the listener drags it (null otherwise). */
  const [scrubTime, setScrubTime] = useState<number | null>(null);
  const scrubRef = useRef<{ value: number | null; timer: ReturnType<typeof setTimeout> | null }>({ value: null, timer: null });

  // Per-track playback bookkeeping, read by timers and media events.
  const m = useRef({
    started: false, // playback began (rebuffers count only after this)
    waitingSince: null as number | null,
    lastSeekAt: -Infinity,
    rebufferCount: 0,
    rebufferMs: 0,
    qualitySwitches: 0,
    playingLevel: null as number | null,
    latencyMs: 0,
    measuredKbps: 0,
    lastProgressSent: 0,
    seekCommandTimer: null as ReturnType<typeof setTimeout> | null,
    // Play/Pause as last sent to the server, as wanted now, and the timer that sends the latter.
    sentState: null as PlayState | null,
    wantState: null as PlayState | null,
    stateTimer: null as ReturnType<typeof setTimeout> | null,
    // Segment requests of the current metrics window (see segmentLossPercent).
    fragmentsLoaded: 0,
    fragmentsFailed: 0,
    reasonForLevel: new Map<number, string>(),
    sessionReported: true,
    trackId,
    sessionId: null as string | null, // this track's streaming session, once created
    playRequestedAt: null as number | null, // performance.now() of the listener's play action
    startupMs: null as number | null, // play action → first `playing`
    startupSent: false,
  });

  const adaptiveRef = useRef(isAdaptive);
  adaptiveRef.current = isAdaptive;
  const reasonRef = useRef(qualityReason);
  reasonRef.current = qualityReason;
  const onEndedRef = useRef(onEnded);
  onEndedRef.current = onEnded;
  const profilesRef = useRef(profiles);
  profilesRef.current = profiles;
  const sessionRef = useRef(session);
  sessionRef.current = session;
  const preferredRef = useRef(streaming.preferredQuality);
  preferredRef.current = streaming.preferredQuality;
  const bufferAheadRef = useRef(bufferAheadSeconds);
  bufferAheadRef.current = bufferAheadSeconds;
  const sendCommandRef = useRef(sendCommand);
  sendCommandRef.current = sendCommand;

  const profileKbps = useCallback((quality: string, fallbackBps: number): number => {
    const p = profilesRef.current?.find((x) => x.quality_id === quality);
    if (p) return p.bitrate_kbps;
    if (session?.initialProfile.quality_id === quality) return session.initialProfile.bitrate_kbps;
    return Math.round(fallbackBps / 1000);
  }, [session]);
  const profileKbpsRef = useRef(profileKbps);
  profileKbpsRef.current = profileKbps;

  // ------------------------------------------------------------------ source set-up per track
  useEffect(() => {
    const audio = audioRef.current;
    if (!audio || !trackId) return;
    let cancelled = false;
    const book = m.current;
    if (book.seekCommandTimer) clearTimeout(book.seekCommandTimer);
    if (book.stateTimer) clearTimeout(book.stateTimer);
    const scrub = scrubRef.current;
    if (scrub.timer) clearTimeout(scrub.timer);
    scrub.timer = null;
    scrub.value = null;
    setScrubTime(null);
    m.current = {
      started: false,
      waitingSince: null,
      lastSeekAt: -Infinity,
      rebufferCount: 0,
      rebufferMs: 0,
      qualitySwitches: 0,
      playingLevel: null,
      latencyMs: 0,
      measuredKbps: 0,
      lastProgressSent: 0,
      seekCommandTimer: null,
      sentState: null,
      wantState: null,
      stateTimer: null,
      fragmentsLoaded: 0,
      fragmentsFailed: 0,
      reasonForLevel: new Map(),
      sessionReported: true,
      trackId,
      sessionId: null,
      // Picking the track is the listener's play action when it autoplays.
      playRequestedAt: autoPlay ? performance.now() : null,
      startupMs: null,
      startupSent: false,
    };
    let ownSessionId: string | null = null;
    setError(null);
    setStatus('Creating streaming session…');
    setLevels([]);
    setLoadingQuality(null);
    setCurrentTime(0);
    setDuration(0);
    setStats({ rebuffers: 0, rebufferMs: 0, switches: 0, latencyMs: 0, abandoned: 0 });

    const start = async () => {
      let sessionId: string | null = null;
      let initial: AdaptiveProfile | null = null;
      let capsKbps = 0;
      try {
        const id = await createStreamingSession(trackId);
        if (cancelled) {
          // The listener moved on while the session was being created.
          void endSession(id, 0);
          return;
        }
        sessionId = id;
        ownSessionId = id;
        m.current.sessionId = id;
      } catch (err) {
        if (cancelled) return;
        setError(`No streaming session (${err instanceof Error ? err.message : String(err)}); playing with server defaults.`);
      }
      if (cancelled) return;
      // The hook's state is not visible in this closure yet: read what the session answered.
      const s = streaming.getSession();
      if (s && s.sessionId === sessionId) {
        initial = s.initialProfile;
        capsKbps = s.capabilities.estimated_bandwidth_kbps;
      }
      const master = getHLSMasterPlaylist(trackId, sessionId);

      if (Hls.isSupported()) {
        setMode('hls.js');
        const hls = new Hls({
          autoStartLoad: false,
          // The listener's buffer depth (2 min by default, to ride out tunnels; 20 s to save
          // data), changed in place by chooseBufferAhead. For audio, hls.js's size-based rule
          // (8 × maxBufferSize / bitrate) would buffer up to maxMaxBufferLength (600 s by
          // default): cap both, so the setting is what is fetched and what we report against.
          // On a QuotaExceededError hls.js halves maxMaxBufferLength itself and carries on.
          maxBufferLength: bufferAheadRef.current,
          maxMaxBufferLength: bufferAheadRef.current,
          backBufferLength: 30,
          // Seed ABR with what we know of the link: the last track's estimate, else the browser's.
          abrEwmaDefaultEstimate: lastBandwidthEstimate ?? (capsKbps > 0 ? capsKbps * 1000 : 500_000),
          capLevelToPlayerSize: false,
          enableWorker: true,
          // A segment request heading for a stall is cut for a smaller one by our rule
          // (src/abandon.ts): hls.js's own never fires on a three-rung audio ladder.
          abrController: listenerAbrController((from, to) => {
            if (cancelled) return;
            const name = (i: number) => {
              const lvl = hlsRef.current?.levels[i];
              return lvl ? (qualityFromUrl(levelUrl(lvl)) ?? lvl.name) : String(i);
            };
            m.current.reasonForLevel.set(to, `ABR: a ${name(from)} segment was heading for a stall; asked for ${name(to)} instead`);
            setStats((s) => ({ ...s, abandoned: s.abandoned + 1 }));
          }),
        });
        hlsRef.current = hls;

        hls.on(Events.MANIFEST_PARSED, (_e, data) => {
          if (cancelled) return;
          const infos: LevelInfo[] = data.levels.map((lvl, index) => {
            const q = qualityFromUrl(levelUrl(lvl)) ?? (lvl.name || `level ${index}`);
            return { index, quality: q, bitrateKbps: profileKbpsRef.current(q, lvl.averageBitrate || lvl.bitrate) };
          });
          setLevels(infos);
          // Start on the server's profile (listed first in a session's master).
          const want = initial?.quality_id;
          const idx = want ? infos.findIndex((l) => l.quality === want) : -1;
          const startLevel = idx >= 0 ? idx : hls.firstLevel;
          hls.startLevel = startLevel;
          m.current.reasonForLevel.set(startLevel, reasonRef.current);
          if (!adaptiveRef.current) {
            const pref = preferredRef.current;
            const p = pref ? infos.findIndex((l) => l.quality === pref) : -1;
            hls.loadLevel = p >= 0 ? p : startLevel;
          }
          hls.startLoad();
          setStatus('Buffering…');
        });

        hls.on(Events.LEVEL_SWITCHING, (_e, data) => {
          if (cancelled) return;
          const lvl = hls.levels[data.level];
          const q = lvl ? (qualityFromUrl(levelUrl(lvl)) ?? lvl.name) : String(data.level);
          setLoadingQuality(q);
          if (!m.current.reasonForLevel.has(data.level) || m.current.playingLevel !== null) {
            const reason = hls.autoLevelEnabled
              ? `ABR: bandwidth estimate ${formatKbps(hls.bandwidthEstimate / 1000)}`
              : `manual: you picked ${q}`;
            m.current.reasonForLevel.set(data.level, reason);
          }
        });

        hls.on(Events.LEVEL_SWITCHED, (_e, data) => {
          if (cancelled) return;
          const lvl = hls.levels[data.level];
          if (!lvl) return;
          const q = qualityFromUrl(levelUrl(lvl)) ?? lvl.name;
          if (m.current.playingLevel !== null && m.current.playingLevel !== data.level) {
            m.current.qualitySwitches += 1;
            setStats((s) => ({ ...s, switches: m.current.qualitySwitches }));
          }
          m.current.playingLevel = data.level;
          setCurrentQuality(q, m.current.reasonForLevel.get(data.level) ?? reasonRef.current);
        });

        hls.on(Events.FRAG_LOADED, (_e, data: FragLoadedData) => {
          const st = data.frag.stats;
          const latency = st.loading.first - st.loading.start;
          const transfer = st.loading.end - st.loading.first;
          if (latency >= 0 && Number.isFinite(latency)) m.current.latencyMs = Math.round(latency);
          if (transfer > 0 && st.loaded > 0) m.current.measuredKbps = Math.round((st.loaded * 8) / transfer);
          m.current.fragmentsLoaded += 1;
          lastBandwidthEstimate = hls.bandwidthEstimate;
          setBandwidthKbps(Math.round(hls.bandwidthEstimate / 1000));
          setStats((s) => ({ ...s, latencyMs: m.current.latencyMs }));
        });

        let networkRetries = 0;
        let mediaRecoveries = 0;
        hls.on(Events.ERROR, (_e, data: ErrorData) => {
          if (cancelled) return;
          // Every failed segment attempt, retried by hls.js (non-fatal) or not: for the loss figure.
          if (data.details === ErrorDetails.FRAG_LOAD_ERROR || data.details === ErrorDetails.FRAG_LOAD_TIMEOUT) {
            m.current.fragmentsFailed += 1;
          }
          if (!data.fatal) return;
          if (data.type === ErrorTypes.NETWORK_ERROR && networkRetries < 3) {
            networkRetries += 1;
            setStatus(`Network error, retrying (${networkRetries}/3)…`);
            setTimeout(() => !cancelled && hls.startLoad(), 1000 * networkRetries);
            return;
          }
          if (data.type === ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2) {
            mediaRecoveries += 1;
            if (mediaRecoveries === 2) hls.swapAudioCodec();
            hls.recoverMediaError();
            return;
          }
          // Give up on HLS: play the whole file progressively.
          hls.destroy();
          hlsRef.current = null;
          setError(`HLS failed (${data.details}); falling back to progressive download.`);
          playProgressive(initial);
        });

        hls.loadSource(master);
        hls.attachMedia(audio);
      } else if (audio.canPlayType('application/vnd.apple.mpegurl')) {
        setMode('native-hls');
        audio.src = master;
        if (initial) setCurrentQuality(initial.quality_id, `${reasonRef.current} — native HLS: the browser switches variants itself`);
        setStatus('Buffering…');
      } else {
        playProgressive(initial);
      }
      if (autoPlay) {
        audio.play().catch(() => {
          // Autoplay refused (no user gesture yet): wait for the play button.
          if (!cancelled) {
            m.current.playRequestedAt = null;
            setStatus('Press play');
          }
        });
        // The listener picked this track: that is their Play.
        m.current.lastProgressSent = Date.now();
        m.current.wantState = 'Play';
        // Naming the streaming session makes this the play the session started in analytics.
        if (sendCommandRef.current({ command: 'Play', command_id: newCommandId('play'), track_id: trackId, start_position_ms: 0, session_id: m.current.sessionId ?? undefined })) {
          m.current.sentState = 'Play';
        }
      }
    };

    function playProgressive(initial: AdaptiveProfile | null) {
      if (!audio) return;
      setMode('progressive');
      setLevels([]);
      const q = initial?.quality_id ?? null;
      audio.src = apiUrl(progressivePath(trackId, q));
      if (initial) setCurrentQuality(initial.quality_id, `${reasonRef.current} — progressive: fixed for the whole track`);
      if (autoPlay) {
        audio.play().catch(() => {
          if (cancelled) return;
          m.current.playRequestedAt = null;
          setStatus('Press play');
        });
      }
    }

    void start();

    return () => {
      cancelled = true;
      // End this track's session where playback stopped (before the element is reset).
      if (ownSessionId) {
        const positionMs = audio.currentTime * 1000;
        if (m.current.sessionId === ownSessionId) {
          m.current.sessionId = null;
          m.current.sessionReported = false;
        }
        void endSession(ownSessionId, positionMs);
        ownSessionId = null;
      }
      const hls = hlsRef.current;
      hlsRef.current = null;
      if (hls) hls.destroy();
      audio.pause();
      audio.removeAttribute('src');
      audio.load();
      // Tell the server this track stopped (if anything was played).
      if (m.current.started) {
        sendCommandRef.current({ command: 'Stop', command_id: newCommandId('stop'), track_id: trackId });
      }
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [trackId, startToken]);

  // ------------------------------------------------------------------ media element events
  useEffect(() => {
    const audio = audioRef.current;
    if (!audio) return;
    const onPlay = () => setIsPlaying(true);
    const onPause = () => setIsPlaying(false);
    const onPlaying = () => {
      setIsPlaying(true);
      setIsWaiting(false);
      setStatus('Playing');
      const b = m.current;
      b.started = true;
      if (b.startupMs === null && b.playRequestedAt !== null) {
        b.startupMs = Math.max(0, Math.round(performance.now() - b.playRequestedAt));
      }
      if (b.waitingSince !== null) {
        b.rebufferMs += performance.now() - b.waitingSince;
        b.waitingSince = null;
        setStats((s) => ({ ...s, rebufferMs: Math.round(b.rebufferMs) }));
      }
    };
    const onWaiting = () => {
      setIsWaiting(true);
      const b = m.current;
      // A stall after playback started, not caused by the listener seeking, is a rebuffer.
      const afterSeek = audio.seeking || performance.now() - b.lastSeekAt < 1500;
      if (b.started && !afterSeek && b.waitingSince === null) {
        b.waitingSince = performance.now();
        b.rebufferCount += 1;
        setStats((s) => ({ ...s, rebuffers: b.rebufferCount }));
        setStatus('Rebuffering…');
      }
    };
    const onTime = () => {
      setCurrentTime(audio.currentTime);
      const b = m.current;
      const now = Date.now();
      if (!audio.paused && b.started && now - b.lastProgressSent >= PROGRESS_PERIOD_MS) {
        // Progress goes out as a Seek, at most every 10 s (the spec's protocol has no Progress).
        if (b.lastProgressSent !== 0) {
          sendCommandRef.current({
            command: 'Seek',
            command_id: newCommandId('progress'),
            track_id: b.trackId,
            position_ms: Math.round(audio.currentTime * 1000),
          });
        }
        b.lastProgressSent = now;
      }
    };
    const onSeeking = () => {
      m.current.lastSeekAt = performance.now();
    };
    const onDuration = () => setDuration(Number.isFinite(audio.duration) ? audio.duration : 0);
    const onEnd = () => {
      setIsPlaying(false);
      // Played to the end: pressing play again is a new Play.
      m.current.sentState = null;
      m.current.wantState = null;
      setStatus('Ended');
      onEndedRef.current?.();
    };
    const onMediaError = () => {
      const code = audio.error?.code;
      if (code && !hlsRef.current) setError(`The browser could not play this track (media error ${code}).`);
    };
    audio.addEventListener('play', onPlay);
    audio.addEventListener('pause', onPause);
    audio.addEventListener('playing', onPlaying);
    audio.addEventListener('waiting', onWaiting);
    audio.addEventListener('timeupdate', onTime);
    audio.addEventListener('seeking', onSeeking);
    audio.addEventListener('durationchange', onDuration);
    audio.addEventListener('loadedmetadata', onDuration);
    audio.addEventListener('ended', onEnd);
    audio.addEventListener('error', onMediaError);
    return () => {
      audio.removeEventListener('play', onPlay);
      audio.removeEventListener('pause', onPause);
      audio.removeEventListener('playing', onPlaying);
      audio.removeEventListener('waiting', onWaiting);
      audio.removeEventListener('timeupdate', onTime);
      audio.removeEventListener('seeking', onSeeking);
      audio.removeEventListener('durationchange', onDuration);
      audio.removeEventListener('loadedmetadata', onDuration);
      audio.removeEventListener('ended', onEnd);
      audio.removeEventListener('error', onMediaError);
    };
  }, []);

  useEffect(() => {
    const audio = audioRef.current;
    if (!audio) return;
    audio.volume = volume;
    audio.muted = muted;
    try {
      globalThis.localStorage?.setItem(VOLUME_KEY, String(volume));
    } catch {
      // ignore
    }
  }, [volume, muted]);

  // ------------------------------------------------------------------ sampling: buffer + chart
  useEffect(() => {
    const timer = setInterval(() => {
      const audio = audioRef.current;
      if (!audio || !audio.src) return;
      const ahead = bufferedAhead(audio);
      setBufferHealth(bufferHealthPercent(ahead, audio.currentTime, audio.duration, bufferAheadRef.current));
      const hls = hlsRef.current;
      let kbps = 0;
      if (hls && m.current.playingLevel !== null) {
        const lvl = hls.levels[m.current.playingLevel];
        if (lvl) kbps = profileKbpsRef.current(qualityFromUrl(levelUrl(lvl)) ?? '', lvl.averageBitrate || lvl.bitrate);
      } else if (sessionRef.current) {
        kbps = sessionRef.current.initialProfile.bitrate_kbps;
      }
      const bw = hls ? Math.round(hls.bandwidthEstimate / 1000) : null;
      const now = Date.now();
      setSamples((prev) => {
        const cutoff = now - CHART_WINDOW_S * 1000;
        const kept = prev.filter((s) => s.t >= cutoff);
        kept.push({ t: now, bitrateKbps: audio.paused && !kbps ? null : kbps, bufferS: ahead, bandwidthKbps: bw });
        return kept;
      });
    }, SAMPLE_PERIOD_MS);
    return () => clearInterval(timer);
  }, [setBufferHealth]);

  // ------------------------------------------------------------------ metrics every 5 s while playing
  useEffect(() => {
    if (!isPlaying || !session) return;
    const timer = setInterval(() => {
      const audio = audioRef.current;
      if (!audio || audio.paused) return;
      const b = m.current;
      if (!b.sessionReported) return;
      // Only this track's own session (the hook's may still be the previous track's).
      if (!b.sessionId || getSession()?.sessionId !== b.sessionId) return;
      const hls = hlsRef.current;
      const ahead = bufferedAhead(audio);
      const stalledMs = b.waitingSince !== null ? performance.now() - b.waitingSince : 0;
      // The profile actually played, from the hls.js level's URL (as the panel shows it).
      let playing: string | null = null;
      if (hls && b.playingLevel !== null) {
        const lvl = hls.levels[b.playingLevel];
        playing = lvl ? qualityFromUrl(levelUrl(lvl)) : null;
      }
      const known = profilesRef.current?.map((p) => p.quality_id) ?? DEFAULT_QUALITIES;
      const position = audio.currentTime * 1000;
      const sendStartup = b.startupMs !== null && !b.startupSent;
      const metrics: MetricsReport = {
        buffer_health_percentage: Math.round(bufferHealthPercent(ahead, audio.currentTime, audio.duration, bufferAheadRef.current) * 10) / 10,
        download_speed_kbps: Math.max(0, Math.round(hls ? hls.bandwidthEstimate / 1000 : b.measuredKbps)),
        packet_loss_percentage: segmentLossPercent(b.fragmentsLoaded, b.fragmentsFailed),
        latency_ms: Math.max(0, Math.round(b.latencyMs)),
        rebuffer_count: b.rebufferCount,
        rebuffer_duration_ms: Math.round(b.rebufferMs + stalledMs),
        quality_switches: b.qualitySwitches,
        position_ms: Number.isFinite(position) ? Math.max(0, Math.round(position)) : undefined,
        current_quality: playing && known.includes(playing) ? playing : undefined,
        startup_ms: sendStartup && b.startupMs !== null ? b.startupMs : undefined,
      };
      // The next window starts now.
      b.fragmentsLoaded = 0;
      b.fragmentsFailed = 0;
      reportMetrics(metrics).then((res) => {
        if (res && sendStartup) b.startupSent = true;
      }).catch((err: unknown) => {
        // An expired session (404) stops the reports for this track; other errors are transient.
        if (err && typeof err === 'object' && 'status' in err && (err as { status: number }).status === 404) {
          b.sessionReported = false;
        }
      });
    }, METRICS_PERIOD_MS);
    return () => clearInterval(timer);
  }, [isPlaying, session, reportMetrics, getSession]);

  // ------------------------------------------------------------------ end the session on page exit
  useEffect(() => {
    const onPageHide = () => {
      const b = m.current;
      const id = b.sessionId;
      if (!id) return;
      b.sessionId = null;
      b.sessionReported = false;
      // DELETE cannot go by sendBeacon: a keepalive fetch outlives the page.
      void endSession(id, (audioRef.current?.currentTime ?? 0) * 1000, true);
    };
    window.addEventListener('pagehide', onPageHide);
    return () => window.removeEventListener('pagehide', onPageHide);
  }, []);

  // ------------------------------------------------------------------ controls
  /**
   * The listener wants `want`: tell the server once the toggling settles, and only if it differs
   * from what the server was last told (Space pressed three times quickly sends one Pause; twice,
   * nothing).
   */
  const requestState = useCallback((want: PlayState) => {
    const b = m.current;
    b.wantState = want;
    if (b.stateTimer) clearTimeout(b.stateTimer);
    b.stateTimer = setTimeout(() => {
      b.stateTimer = null;
      if (m.current !== b || b.wantState === null || b.wantState === b.sentState) return;
      const state = b.wantState;
      const sent =
        state === 'Play'
          ? sendCommandRef.current({
              command: 'Play',
              command_id: newCommandId('play'),
              track_id: b.trackId,
              start_position_ms: Math.round((audioRef.current?.currentTime ?? 0) * 1000),
              session_id: b.sessionId ?? undefined,
            })
          : sendCommandRef.current({ command: 'Pause', command_id: newCommandId('pause'), track_id: b.trackId });
      if (sent) b.sentState = state;
    }, PLAY_PAUSE_COALESCE_MS);
  }, []);

  const play = useCallback(() => {
    const audio = audioRef.current;
    if (!audio || !trackId || !audio.paused) return;
    // The listener's play action, for the startup time (first start of this track only).
    if (!m.current.started && m.current.playRequestedAt === null) m.current.playRequestedAt = performance.now();
    audio.play().catch((err: unknown) => {
      if (!m.current.started) m.current.playRequestedAt = null;
      setStatus(err instanceof Error && err.name === 'NotAllowedError' ? 'Press play' : 'Could not start playback');
    });
    m.current.lastProgressSent = Date.now();
    requestState('Play');
  }, [requestState, trackId]);

  const pause = useCallback(() => {
    const audio = audioRef.current;
    if (!audio || !trackId || audio.paused) return;
    audio.pause();
    requestState('Pause');
  }, [requestState, trackId]);

  const togglePlay = useCallback(() => {
    const audio = audioRef.current;
    if (!audio || !trackId) return;
    if (audio.paused) play();
    else pause();
  }, [play, pause, trackId]);

  const seekTo = useCallback(
    (seconds: number) => {
      const audio = audioRef.current;
      if (!audio) return;
      const max = Number.isFinite(audio.duration) ? audio.duration : seconds;
      const t = Math.max(0, Math.min(max, seconds));
      audio.currentTime = t;
      setCurrentTime(t);
      // Coalesce a drag of the slider into one Seek command.
      const b = m.current;
      if (b.seekCommandTimer) clearTimeout(b.seekCommandTimer);
      b.seekCommandTimer = setTimeout(() => {
        b.seekCommandTimer = null;
        b.lastProgressSent = Date.now();
        sendCommandRef.current({
          command: 'Seek',
          command_id: newCommandId('seek'),
          track_id: b.trackId,
          position_ms: Math.round((audioRef.current?.currentTime ?? t) * 1000),
        });
      }, 300);
    },
    [],
  );

  const seekBy = useCallback((delta: number) => {
    const audio = audioRef.current;
    if (audio) seekTo(audio.currentTime + delta);
  }, [seekTo]);

  // The seek slider: while it is dragged only the shown position follows the thumb; the playhead
  // moves once, when the drag is committed (released, or held still for SCRUB_COMMIT_MS).
  const commitScrub = useCallback(() => {
    const s = scrubRef.current;
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
    if (s.value === null) return;
    const t = s.value;
    s.value = null;
    setScrubTime(null);
    seekTo(t);
  }, [seekTo]);

  const scrubTo = useCallback(
    (seconds: number) => {
      if (!Number.isFinite(seconds)) return;
      const s = scrubRef.current;
      s.value = seconds;
      setScrubTime(seconds);
      if (s.timer) clearTimeout(s.timer);
      s.timer = setTimeout(commitScrub, SCRUB_COMMIT_MS);
    },
    [commitScrub],
  );

  // Space = play/pause, arrows = ±10 s, anywhere on the page but in form fields.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
      const el = e.target as HTMLElement | null;
      const tag = el?.tagName;
      if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || el?.isContentEditable) return;
      if (e.key === ' ' || e.code === 'Space') {
        if (tag === 'BUTTON' || tag === 'A') return; // the focused control handles Space itself
        e.preventDefault();
        togglePlay();
      } else if (e.key === 'ArrowRight') {
        e.preventDefault();
        seekBy(SEEK_STEP_S);
      } else if (e.key === 'ArrowLeft') {
        e.preventDefault();
        seekBy(-SEEK_STEP_S);
      }
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [togglePlay, seekBy]);

  // Lock-screen / headset controls.
  useEffect(() => {
    const ms = typeof navigator !== 'undefined' ? navigator.mediaSession : undefined;
    if (!ms || typeof MediaMetadata === 'undefined') return;
    ms.metadata = new MediaMetadata({
      title: track?.title ?? trackId,
      artist: track?.artist ?? '',
      album: track?.album ?? '',
    });
    const handlers: [MediaSessionAction, MediaSessionActionHandler | null][] = [
      ['play', () => play()],
      ['pause', () => pause()],
      ['seekbackward', () => seekBy(-SEEK_STEP_S)],
      ['seekforward', () => seekBy(SEEK_STEP_S)],
      ['previoustrack', hasPrevious && onPrevious ? () => onPrevious() : null],
      ['nexttrack', hasNext && onNext ? () => onNext() : null],
    ];
    for (const [action, handler] of handlers) {
      try {
        ms.setActionHandler(action, handler);
      } catch {
        // Not every browser knows every action.
      }
    }
  }, [track, trackId, play, pause, seekBy, hasNext, hasPrevious, onNext, onPrevious]);

  // ------------------------------------------------------------------ quality choice
  const chooseQuality = (e: ChangeEvent<HTMLSelectElement>) => {
    const value = e.target.value;
    const hls = hlsRef.current;
    if (value === 'auto') {
      setIsAdaptive(true);
      setPreferredQuality(null);
      if (hls) hls.nextLevel = -1;
      return;
    }
    setIsAdaptive(false);
    setPreferredQuality(value);
    const idx = levels.findIndex((l) => l.quality === value);
    if (hls && idx >= 0) {
      m.current.reasonForLevel.set(idx, `manual: you picked ${value}`);
      hls.nextLevel = idx;
    }
  };

  // ------------------------------------------------------------------ buffer depth choice
  // Applies at once to the hls.js instance playing (both are plain config fields its stream
  // controller reads on every tick: a deeper buffer starts loading again, a shallower one stops
  // fetching until the playhead catches up), to every later track, and to the capabilities of
  // every later session.
  const chooseBufferAhead = (e: ChangeEvent<HTMLSelectElement>) => {
    const seconds = BUFFER_AHEAD_CHOICES.find((c) => String(c.seconds) === e.target.value)?.seconds;
    if (seconds === undefined) return;
    setBufferAheadSeconds(seconds);
    bufferAheadRef.current = seconds;
    const hls = hlsRef.current;
    if (hls) {
      hls.config.maxBufferLength = seconds;
      hls.config.maxMaxBufferLength = seconds;
    }
  };

  // The server moved this session (QualityChanged over the WebSocket): say so.
  const serverNote = useMemo(() => {
    if (!session) return null;
    for (let i = events.length - 1; i >= 0; i--) {
      const ev = events[i];
      if (ev.event === 'QualityChanged' && ev.session_id === session.sessionId) {
        return `server moved this session ${ev.from} → ${ev.to} (${ev.reason})`;
      }
    }
    return null;
  }, [events, session]);

  const currentLevelInfo = levels.find((l) => l.quality === currentQuality);
  const currentKbps =
    currentLevelInfo?.bitrateKbps ??
    profiles?.find((p) => p.quality_id === currentQuality)?.bitrate_kbps ??
    (session?.initialProfile.quality_id === currentQuality ? session.initialProfile.bitrate_kbps : null);
  const currentProfile = profiles?.find((p) => p.quality_id === currentQuality) ??
    (session?.initialProfile.quality_id === currentQuality ? session.initialProfile : undefined);
  const hasTrack = Boolean(trackId);
  const bufferSeconds = samples.length ? samples[samples.length - 1].bufferS : 0;
  const healthClass = bufferHealth >= 60 ? 'good' : bufferHealth >= 25 ? 'warn' : 'bad';
  const sliderMax = duration > 0 ? duration : (track?.duration_ms ?? 0) / 1000;
  const shownTime = scrubTime ?? currentTime;

  return (
    <section className="adaptive-audio-player card" aria-label="Player" data-testid="player">
      <audio ref={audioRef} preload="auto" data-testid="audio" />

      <div className="now-playing">
        <div className="now-playing-text">
          <div className="np-title" data-testid="now-playing-title">{track?.title ?? (hasTrack ? trackId : 'Nothing playing')}</div>
          <div className="np-sub">
            {track ? [track.artist, track.album].filter(Boolean).join(' · ') || track.filename : 'Pick a track in the library'}
          </div>
        </div>
        <div className={`np-status ${isWaiting ? 'busy' : ''}`} data-testid="player-status" aria-live="polite">
          {hasTrack ? status : ''}
        </div>
      </div>

      <div className="transport">
        <button type="button" className="icon-btn" onClick={onPrevious} disabled={!hasPrevious} aria-label="Previous track" title="Previous track">
          <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 5h2v14H6zM20 5v14L9 12z" /></svg>
        </button>
        <button type="button" className="icon-btn" onClick={() => seekBy(-SEEK_STEP_S)} disabled={!hasTrack} aria-label="Back 10 seconds" title="Back 10 s (←)">
          <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M11 6v12l-8.5-6zM21 6v12l-8.5-6z" /></svg>
        </button>
        <button
          type="button"
          className="play-btn"
          onClick={togglePlay}
          disabled={!hasTrack}
          aria-label={isPlaying ? 'Pause' : 'Play'}
          title={isPlaying ? 'Pause (space)' : 'Play (space)'}
          data-testid="play-button"
          data-state={isPlaying ? 'playing' : 'paused'}
        >
          {isPlaying ? (
            <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 5h4v14H6zM14 5h4v14h-4z" /></svg>
          ) : (
            <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M7 4v16l13-8z" /></svg>
          )}
        </button>
        <button type="button" className="icon-btn" onClick={() => seekBy(SEEK_STEP_S)} disabled={!hasTrack} aria-label="Forward 10 seconds" title="Forward 10 s (→)">
          <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M13 6v12l8.5-6zM3 6v12l8.5-6z" /></svg>
        </button>
        <button type="button" className="icon-btn" onClick={onNext} disabled={!hasNext} aria-label="Next track" title="Next track">
          <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M16 5h2v14h-2zM4 5v14l11-7z" /></svg>
        </button>
      </div>

      <div className="seek-row">
        <span className="time" data-testid="current-time">{formatTime(shownTime)}</span>
        <input
          type="range"
          className="seek"
          min={0}
          max={sliderMax || 0}
          step={0.1}
          value={Math.min(shownTime, sliderMax || 0)}
          onChange={(e) => scrubTo(Number(e.target.value))}
          onPointerUp={commitScrub}
          onPointerCancel={commitScrub}
          onBlur={commitScrub}
          disabled={!hasTrack || !sliderMax}
          aria-label="Seek"
          aria-valuetext={`${formatTime(shownTime)} of ${formatTime(sliderMax)}`}
          data-testid="seek-slider"
        />
        <span className="time" data-testid="duration">{formatTime(sliderMax)}</span>
      </div>

      <div className="volume-row">
        <button type="button" className="icon-btn small" onClick={() => setMuted((v) => !v)} aria-label={muted ? 'Unmute' : 'Mute'} aria-pressed={muted}>
          {muted || volume === 0 ? (
            <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 9v6h4l5 5V4L7 9zM16 9l5 6M21 9l-5 6" stroke="currentColor" strokeWidth="2" fill="currentColor" /></svg>
          ) : (
            <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 9v6h4l5 5V4L7 9zm13.5 3A4.5 4.5 0 0 0 14 8v8a4.5 4.5 0 0 0 2.5-4z" /></svg>
          )}
        </button>
        <input
          type="range"
          className="volume"
          min={0}
          max={1}
          step={0.05}
          value={muted ? 0 : volume}
          onChange={(e) => {
            setVolume(Number(e.target.value));
            setMuted(false);
          }}
          aria-label="Volume"
          data-testid="volume"
        />
        <label className="quality-select">
          <span>Quality</span>
          <select value={isAdaptive ? 'auto' : (streaming.preferredQuality ?? currentQuality)} onChange={chooseQuality} data-testid="quality-select" disabled={mode !== 'hls.js' && mode !== null}>
            <option value="auto">Auto (adaptive)</option>
            {(levels.length ? [...levels].sort((a, b) => b.bitrateKbps - a.bitrateKbps) : []).map((l) => (
              <option key={l.index} value={l.quality}>
                {l.quality} · {l.bitrateKbps} kbps
              </option>
            ))}
          </select>
        </label>
        <label className="quality-select" title="How much audio to fetch ahead: more rides out tunnels and dead spots, less wastes less data when you skip">
          <span>Buffer</span>
          <select value={String(bufferAheadSeconds)} onChange={chooseBufferAhead} data-testid="buffer-ahead" aria-label="Buffer ahead">
            {BUFFER_AHEAD_CHOICES.map((c) => (
              <option key={c.seconds} value={String(c.seconds)}>
                {c.label}
              </option>
            ))}
          </select>
        </label>
      </div>

      {error && <div className="notice warn" role="status">{error}</div>}

      <div className="player-panels">
        <div className="panel quality-panel">
          <h3>Current quality</h3>
          <div className="quality-value" data-testid="current-quality" data-quality={hasTrack ? currentQuality : ''}>
            {hasTrack ? (
              <>
                <span className={`quality-badge q-${currentQuality}`}>{currentQuality}</span>
                <span className="quality-detail">
                  {currentKbps ? `${currentKbps} kbps` : ''}
                  {currentProfile ? ` · ${currentProfile.codec.toUpperCase()} ${currentProfile.sample_rate / 1000} kHz` : ''}
                </span>
              </>
            ) : (
              <span className="muted">—</span>
            )}
          </div>
          <div className="quality-reason" data-testid="quality-reason">{hasTrack ? qualityReason : ''}</div>
          {hasTrack && loadingQuality && loadingQuality !== currentQuality && (
            <div className="quality-next" data-testid="loading-quality" data-quality={loadingQuality}>
              loading next segments in <strong>{loadingQuality}</strong>
            </div>
          )}
          {hasTrack && serverQuality && serverQuality !== currentQuality && isAdaptive && (
            <div className="quality-next muted" data-testid="server-quality">server's view of this session: {serverQuality}</div>
          )}
          {serverNote && <div className="quality-next muted">{serverNote}</div>}
          <dl className="mini-stats">
            <div><dt>Mode</dt><dd data-testid="playback-mode">{mode ?? '—'}</dd></div>
            <div><dt>Bandwidth est.</dt><dd data-testid="bandwidth-estimate">{formatKbps(bandwidthKbps)}</dd></div>
            <div><dt>Latency</dt><dd>{stats.latencyMs ? `${stats.latencyMs} ms` : '—'}</dd></div>
            <div><dt>Switches</dt><dd>{stats.switches}</dd></div>
          </dl>
        </div>

        <div className="panel buffer-panel">
          <h3>Buffer health</h3>
          <div className="buffer-value" data-testid="buffer-health" data-value={bufferHealth}>
            <span className={`big ${healthClass}`}>{hasTrack ? `${bufferHealth}%` : '—'}</span>
            <span className="muted">{hasTrack ? `${bufferSeconds.toFixed(1)} s ahead · target ${bufferAheadSeconds} s` : ''}</span>
          </div>
          <div
            className="meter"
            role="meter"
            aria-label="Buffer health"
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={bufferHealth}
          >
            <div className={`meter-fill ${healthClass}`} style={{ width: `${hasTrack ? bufferHealth : 0}%` }} />
          </div>
          <dl className="mini-stats">
            <div><dt>Rebuffers</dt><dd data-testid="rebuffer-count">{stats.rebuffers}</dd></div>
            <div><dt>Cut requests</dt><dd data-testid="abandoned-count">{stats.abandoned}</dd></div>
            <div><dt>Stalled</dt><dd>{(stats.rebufferMs / 1000).toFixed(1)} s</dd></div>
            <div><dt>Session</dt><dd className="mono" title={session?.sessionId}>{session ? session.sessionId.slice(0, 8) : '—'}</dd></div>
          </dl>
        </div>
      </div>

      <div className="panel chart-panel">
        <h3>Last 2 minutes</h3>
        <BitrateChart samples={samples} windowSeconds={CHART_WINDOW_S} bufferTargetSeconds={bufferAheadSeconds} />
      </div>
    </section>
  );
}
