// The spec's `useWebSocket` hook, made robust: same-origin URL, reconnection with capped
// exponential backoff and jitter (reset once a connection opens), the last 100 events kept
// (each with a sequence number that only grows, a stable key for lists), non-JSON frames
// ignored, `sendCommand` telling whether the command went out, and `subscribe` for listeners
// that must see every event.
//
// The server's `/api/ws` may not exist (yet, or behind some proxy): the hook then stays
// 'disconnected' and keeps retrying slowly; nothing else in the app depends on it.

import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { getApiBase } from '../api';
import { parseEvent, type WebSocketCommand, type WebSocketEvent } from '../protocol';

export type ConnectionStatus = 'connecting' | 'connected' | 'disconnected';

export interface BackoffOptions {
  /** First retry delay, ms. */
  initialMs: number;
  /** Longest delay between retries, ms. */
  maxMs: number;
  /** Growth factor per failed attempt. */
  factor: number;
  /** Share of the delay randomised, 0-1 (0.5 = between 50% and 100% of the computed delay). */
  jitter: number;
}

export interface UseWebSocketOptions {
  /** Full `ws(s)://` URL of the endpoint, without query. Default: same origin, `/api/ws`. */
  url?: string;
  backoff?: Partial<BackoffOptions>;
  /** How many events to keep. */
  maxEvents?: number;
  /** Give up on an attempt that has not opened after this long, ms. */
  connectTimeoutMs?: number;
}

/** An event as kept in the hook's history. */
export interface ReceivedEvent {
  /** 1, 2, 3… in order of arrival for this hook, never reused (not even across reconnections). */
  seq: number;
  event: WebSocketEvent;
  /** When it arrived, ms since epoch. */
  receivedAt: number;
}

export interface WebSocketApi {
  connectionStatus: ConnectionStatus;
  /** The last events, oldest first (the `event` of each `history` entry). */
  events: WebSocketEvent[];
  /** The same events with their sequence numbers, oldest first. */
  history: ReceivedEvent[];
  connect: (userId?: string, token?: string) => void;
  sendCommand: (command: WebSocketCommand) => boolean;
  /**
   * Calls `listener` with every event as it arrives (outside React's rendering, none dropped);
   * returns the unsubscribe function. For code that must not miss one, e.g. a CommandResponse.
   */
  subscribe: (listener: (event: WebSocketEvent) => void) => () => void;
  disconnect: () => void;
  /** Attempts since the last successful open (0 when connected). */
  retryCount: number;
  /** When the next attempt is due (ms since epoch), if one is scheduled. */
  nextRetryAt: number | null;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000, factor: 2, jitter: 0.5 };
const MAX_EVENTS = 100;

/** Delay before retry number `attempt` (0-based). */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const exp = Math.min(opts.maxMs, opts.initialMs * Math.pow(opts.factor, Math.max(0, attempt)));
  const jitter = Math.min(1, Math.max(0, opts.jitter));
  return Math.round(exp * (1 - jitter) + exp * jitter * random());
}

/** `ws(s)://{host}/api/ws` for the page's origin (or the configured API base). */
export function defaultWebSocketUrl(): string {
  const base = getApiBase();
  if (base) return `${base.replace(/^http/, 'ws')}/api/ws`;
  if (typeof location === 'undefined') return 'ws://127.0.0.1:8082/api/ws';
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api/ws`;
}

export function useWebSocket(options: UseWebSocketOptions = {}): WebSocketApi {
  const [connectionStatus, setConnectionStatus] = useState<ConnectionStatus>('disconnected');
  const [history, setHistory] = useState<ReceivedEvent[]>([]);
  const events = useMemo(() => history.map((r) => r.event), [history]);
  const seqRef = useRef(0);
  const [retryCount, setRetryCount] = useState(0);
  const [nextRetryAt, setNextRetryAt] = useState<number | null>(null);

  const optsRef = useRef(options);
  optsRef.current = options;

  const socketRef = useRef<WebSocket | null>(null);
  const timerRef = useRef<ReturnType<typeof setTimeout> | null>(null);
  const attemptRef = useRef(0);
  /** False once disconnect() was called (or the component unmounted): no more retries. */
  const wantedRef = useRef(false);
  const paramsRef = useRef<{ userId?: string; token?: string }>({});
  const openRef = useRef<() => void>(() => {});
  const listenersRef = useRef(new Set<(event: WebSocketEvent) => void>());

  const clearTimer = () => {
    if (timerRef.current !== null) {
      clearTimeout(timerRef.current);
      timerRef.current = null;
    }
    setNextRetryAt(null);
  };

  const closeSocket = () => {
    const ws = socketRef.current;
    socketRef.current = null;
    if (!ws) return;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onerror = null;
    ws.onclose = null;
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) {
      try {
        ws.close(1000, 'client closed');
      } catch {
        // Closing a socket that never opened may throw in some implementations.
      }
    }
  };

  const scheduleRetry = () => {
    if (!wantedRef.current || timerRef.current !== null) return;
    const backoff = { ...DEFAULT_BACKOFF, ...optsRef.current.backoff };
    const delay = backoffDelay(attemptRef.current, backoff);
    attemptRef.current += 1;
    setRetryCount(attemptRef.current);
    setNextRetryAt(Date.now() + delay);
    timerRef.current = setTimeout(() => {
      timerRef.current = null;
      setNextRetryAt(null);
      if (wantedRef.current) openRef.current();
    }, delay);
  };

  openRef.current = () => {
    closeSocket();
    const params = new URLSearchParams();
    const { userId, token } = paramsRef.current;
    if (userId) params.append('user_id', userId);
    if (token) params.append('token', token);
    const base = optsRef.current.url ?? defaultWebSocketUrl();
    const query = params.toString();
    const url = query ? `${base}?${query}` : base;

    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      // A malformed URL throws synchronously: treat as a failed attempt.
      setConnectionStatus('disconnected');
      scheduleRetry();
      return;
    }
    socketRef.current = ws;
    setConnectionStatus('connecting');
    // A handshake that hangs (a proxy holding the request) counts as a failure too.
    const openTimer = setTimeout(() => {
      if (socketRef.current === ws && ws.readyState === WebSocket.CONNECTING) {
        closeSocket();
        setConnectionStatus('disconnected');
        scheduleRetry();
      }
    }, optsRef.current.connectTimeoutMs ?? 10_000);

    ws.onopen = () => {
      clearTimeout(openTimer);
      if (socketRef.current !== ws) return;
      attemptRef.current = 0;
      setRetryCount(0);
      setConnectionStatus('connected');
    };
    ws.onmessage = (msg: MessageEvent) => {
      if (socketRef.current !== ws) return;
      const event = parseEvent(msg.data);
      if (!event) return; // Binary or non-JSON frames are not part of the protocol.
      const max = Math.max(1, optsRef.current.maxEvents ?? MAX_EVENTS);
      const entry: ReceivedEvent = { seq: ++seqRef.current, event, receivedAt: Date.now() };
      setHistory((prev) => (prev.length >= max ? [...prev.slice(prev.length - max + 1), entry] : [...prev, entry]));
      for (const listener of [...listenersRef.current]) {
        try {
          listener(event);
        } catch (err) {
          // One faulty listener must not stop the others (nor the socket).
          setTimeout(() => {
            throw err;
          });
        }
      }
    };
    ws.onerror = () => {
      // The close event that always follows does the bookkeeping; browsers give no detail here.
    };
    ws.onclose = () => {
      clearTimeout(openTimer);
      if (socketRef.current !== ws) return;
      socketRef.current = null;
      setConnectionStatus('disconnected');
      scheduleRetry();
    };
  };

  const connect = useCallback((userId?: string, token?: string) => {
    paramsRef.current = { userId, token };
    wantedRef.current = true;
    attemptRef.current = 0;
    setRetryCount(0);
    clearTimer();
    openRef.current();
  }, []);

  const disconnect = useCallback(() => {
    wantedRef.current = false;
    clearTimer();
    closeSocket();
    attemptRef.current = 0;
    setRetryCount(0);
    setConnectionStatus('disconnected');
  }, []);

  const sendCommand = useCallback((command: WebSocketCommand): boolean => {
    const ws = socketRef.current;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(command));
      return true;
    } catch {
      return false;
    }
  }, []);

  const subscribe = useCallback((listener: (event: WebSocketEvent) => void) => {
    const listeners = listenersRef.current;
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);

  // Stop everything when the component goes away.
  useEffect(
    () => () => {
      wantedRef.current = false;
      if (timerRef.current !== null) clearTimeout(timerRef.current);
      timerRef.current = null;
      closeSocket();
    },
    [],
  );

  return { connectionStatus, events, history, connect, sendCommand, subscribe, disconnect, retryCount, nextRetryAt };
}
