// HTTP API of stream-server: the types of its JSON payloads and a small fetch wrapper.
//
// The wire types (`Track`, `ClientCapabilities`, `AdaptiveProfile`, `PerformanceMetrics`, the
// playlists' `PlaylistView` / `EntryView`...) come from the Rust definitions via ts-rs: `cargo test`
// regenerates `src/generated/`, and CI checks that the generated files are committed. Do not
// re-declare them by hand here: import them, and build the web-only types from them.
//
// In the browser every URL is relative to the page's origin (the server serves the app, or the
// Vite dev server proxies to it). Tests running outside a browser set an absolute base with
// `setApiBase('http://127.0.0.1:PORT')`.

import type { AdaptiveProfile } from './generated/AdaptiveProfile';
import type { ClientCapabilities } from './generated/ClientCapabilities';
import type { CreateSession } from './generated/CreateSession';
import type { EntryView } from './generated/EntryView';
import type { MetricsAck } from './generated/MetricsAck';
import type { MetricsReport } from './generated/MetricsReport';
import type { PerformanceMetrics } from './generated/PerformanceMetrics';
import type { PlaylistView } from './generated/PlaylistView';
import type { SessionCreated } from './generated/SessionCreated';
import type { StreamingSession } from './generated/StreamingSession';
import type { StreamingStats } from './generated/StreamingStats';
import type { Track } from './generated/Track';

export type {
  AdaptiveProfile,
  ClientCapabilities,
  CreateSession,
  EntryView,
  MetricsReport,
  PerformanceMetrics,
  PlaylistView,
  StreamingSession,
  StreamingStats,
  Track,
};
export type { ConnectionType } from './generated/ConnectionType';
export type { DeviceType } from './generated/DeviceType';

/** `POST /api/streaming/session`'s answer (Rust: `SessionCreated`). */
export type CreateSessionResponse = SessionCreated;
/** A metrics report's answer: the quality the server now recommends (Rust: `MetricsAck`). */
export type MetricsResponse = MetricsAck;

/** The server's JSON error body: `{error, code}`. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string | null;
  constructor(status: number, message: string, code: string | null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

let apiBase = '';

/** Sets the origin prepended to every API path ('' = same origin). For tests and embedding. */
export function setApiBase(base: string): void {
  apiBase = base.replace(/\/+$/, '');
}

export function getApiBase(): string {
  return apiBase;
}

/** `path` (starting with '/') made absolute against the configured base, if any. */
export function apiUrl(path: string): string {
  return `${apiBase}${path}`;
}

export async function fetchJson<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(apiUrl(path), {
    ...init,
    headers: { Accept: 'application/json', ...(init?.body ? { 'Content-Type': 'application/json' } : {}), ...init?.headers },
  });
  const text = await res.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!res.ok) {
    const err = (body ?? {}) as { error?: unknown; code?: unknown };
    const message = typeof err.error === 'string' ? err.error : `${res.status} ${res.statusText || 'error'}`;
    throw new ApiError(res.status, message, typeof err.code === 'string' ? err.code : null);
  }
  return body as T;
}

export function listTracks(q: string, signal?: AbortSignal): Promise<Track[]> {
  const query = q.trim() ? `?q=${encodeURIComponent(q.trim())}` : '';
  return fetchJson<Track[]>(`/api/tracks${query}`, { signal });
}

export function createSession(
  trackId: string,
  capabilities: ClientCapabilities,
  signal?: AbortSignal,
  userId?: string | null,
): Promise<CreateSessionResponse> {
  const body: CreateSession = { track_id: trackId, client_capabilities: capabilities };
  if (userId) body.user_id = userId;
  return fetchJson<CreateSessionResponse>('/api/streaming/session', {
    method: 'POST',
    body: JSON.stringify(body),
    signal,
  });
}

/** A whole, non-negative number of ms, or undefined (never NaN). */
function wholeMs(v: number | undefined): number | undefined {
  return v !== undefined && Number.isFinite(v) ? Math.max(0, Math.round(v)) : undefined;
}

export function reportMetrics(sessionId: string, metrics: MetricsReport): Promise<MetricsResponse> {
  const body: MetricsReport = {
    ...metrics,
    position_ms: wholeMs(metrics.position_ms),
    startup_ms: wholeMs(metrics.startup_ms),
    current_quality: metrics.current_quality || undefined,
  };
  return fetchJson<MetricsResponse>(`/api/streaming/session/${encodeURIComponent(sessionId)}/metrics`, {
    method: 'POST',
    body: JSON.stringify(body), // undefined fields are left out
  });
}

/** `DELETE /api/streaming/session/{id}?position_ms=`: `keepalive` lets it outlive the page. */
export function endSessionUrl(sessionId: string, positionMs?: number): string {
  const pos = wholeMs(positionMs);
  const query = pos !== undefined ? `?position_ms=${pos}` : '';
  return apiUrl(`/api/streaming/session/${encodeURIComponent(sessionId)}${query}`);
}

/** Ends a session; never rejects (an already-ended session answers 404). */
export async function endSession(sessionId: string, positionMs?: number, keepalive = false): Promise<void> {
  try {
    await fetch(endSessionUrl(sessionId, positionMs), { method: 'DELETE', keepalive });
  } catch {
    // Best effort: the server expires idle sessions anyway.
  }
}

export function getStreamingStats(signal?: AbortSignal): Promise<StreamingStats> {
  return fetchJson<StreamingStats>('/api/streaming/stats', { signal });
}

export function hlsMasterPath(trackId: string, sessionId?: string | null): string {
  const base = `/hls/${encodeURIComponent(trackId)}/master.m3u8`;
  return sessionId ? `${base}?session_id=${encodeURIComponent(sessionId)}` : base;
}

export function progressivePath(trackId: string, quality?: string | null): string {
  const base = `/stream/${encodeURIComponent(trackId)}`;
  return quality ? `${base}?quality=${encodeURIComponent(quality)}` : base;
}

// ---------------------------------------------------------------------------------------------
// Playlists: `/api/playlists`. Every request names the listener: `Authorization: Bearer <token>`
// when the app has a token, else `?user_id=`.
// ---------------------------------------------------------------------------------------------

/**
 * One entry of a playlist (the same track may appear more than once). `available` is false once
 * the track has left the library (the entry is kept).
 */
export type PlaylistEntry = EntryView;

/**
 * A playlist as the server shows it: `owner` is the owner's user id (only the owner may rename or
 * delete it), `updated_at` / `created_at` are ms since epoch, `shared_with` the users who see it
 * (and its changes) too.
 */
export type Playlist = PlaylistView;

/** Who is asking: the same identity as the WebSocket's. */
export interface ApiIdentity {
  userId: string;
  token?: string | null;
}

/** `path` with `?user_id=` appended, unless a token names the listener (sent as a header). */
export function identifiedPath(path: string, who: ApiIdentity): string {
  if (who.token) return path;
  return `${path}${path.includes('?') ? '&' : '?'}user_id=${encodeURIComponent(who.userId)}`;
}

function identifiedInit(who: ApiIdentity, init: RequestInit = {}): RequestInit {
  return who.token ? { ...init, headers: { ...init.headers, Authorization: `Bearer ${who.token}` } } : init;
}

function playlistPath(id?: string, rest = ''): string {
  return id === undefined ? '/api/playlists' : `/api/playlists/${encodeURIComponent(id)}${rest}`;
}

/** The listener's playlists and those shared with them, most recently updated first. */
export async function listPlaylists(who: ApiIdentity, signal?: AbortSignal): Promise<Playlist[]> {
  const list = await fetchJson<Playlist[]>(identifiedPath(playlistPath(), who), identifiedInit(who, { signal }));
  return Array.isArray(list) ? list : [];
}

/** One playlist; an `ApiError` with status 404 when it is gone (or not visible to this listener). */
export function getPlaylist(id: string, who: ApiIdentity, signal?: AbortSignal): Promise<Playlist> {
  return fetchJson<Playlist>(identifiedPath(playlistPath(id), who), identifiedInit(who, { signal }));
}

export function createPlaylist(name: string, who: ApiIdentity): Promise<Playlist> {
  return fetchJson<Playlist>(identifiedPath(playlistPath(), who), identifiedInit(who, { method: 'POST', body: JSON.stringify({ name }) }));
}

export function renamePlaylist(id: string, name: string, who: ApiIdentity): Promise<Playlist> {
  return fetchJson<Playlist>(identifiedPath(playlistPath(id), who), identifiedInit(who, { method: 'PATCH', body: JSON.stringify({ name }) }));
}

export async function deletePlaylist(id: string, who: ApiIdentity): Promise<void> {
  await fetchJson<null>(identifiedPath(playlistPath(id), who), identifiedInit(who, { method: 'DELETE' }));
}

/** Inserts `trackId` at the 0-based `position` (appends when absent). */
export function addPlaylistTrack(id: string, trackId: string, position: number | null | undefined, who: ApiIdentity): Promise<Playlist> {
  const body: { track_id: string; position?: number } = { track_id: trackId };
  if (position !== undefined && position !== null) body.position = position;
  return fetchJson<Playlist>(identifiedPath(playlistPath(id, '/tracks'), who), identifiedInit(who, { method: 'POST', body: JSON.stringify(body) }));
}

/** Removes the entry at the 0-based `position`. */
export function removePlaylistTrack(id: string, position: number, who: ApiIdentity): Promise<Playlist> {
  return fetchJson<Playlist>(identifiedPath(playlistPath(id, `/tracks/${position}`), who), identifiedInit(who, { method: 'DELETE' }));
}

/** Moves the entry at `from` to `to` (both 0-based). */
export function movePlaylistTrack(id: string, from: number, to: number, who: ApiIdentity): Promise<Playlist> {
  return fetchJson<Playlist>(identifiedPath(playlistPath(id, '/move'), who), identifiedInit(who, { method: 'POST', body: JSON.stringify({ from, to }) }));
}

/** A playlist entry as a queueable `Track` (what the playlist knows of it; the rest left blank). */
export function entryAsTrack(entry: PlaylistEntry): Track {
  return {
    id: entry.track_id,
    filename: '',
    title: entry.title,
    artist: entry.artist,
    album: null,
    genre: null,
    duration_ms: entry.duration_ms,
    sample_rate: 0,
    channels: 0,
    codec: '',
    samples: 0,
    version: '',
  };
}
