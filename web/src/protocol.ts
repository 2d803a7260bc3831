// The WebSocket protocol between the player and stream-server (`/api/ws`).
//
// Commands (client → server) are JSON objects tagged by `"command"`; events (server → client) are
// tagged by `"event"`, as serde's internally tagged enums write them. These types mirror the Rust
// `WebSocketCommand` / `WebSocketEvent` enums of the spec and are written by hand for now: they
// will be generated from the Rust types later, so keep them all in this one file.

import type { Playlist } from './api';

export type PlaylistAction = 'Added' | 'Removed' | 'Reordered' | 'Cleared';
export type MessageLevel = 'Info' | 'Warning' | 'Error';

// ---------------------------------------------------------------------------------------------
// Commands (client → server)
// ---------------------------------------------------------------------------------------------

export interface PlayCommand {
  command: 'Play';
  command_id: string;
  track_id: string;
  start_position_ms?: number | null;
}

export interface PauseCommand {
  command: 'Pause';
  command_id: string;
  track_id: string;
}

export interface StopCommand {
  command: 'Stop';
  command_id: string;
  track_id: string;
}

export interface SeekCommand {
  command: 'Seek';
  command_id: string;
  track_id: string;
  position_ms: number;
}

/** Answered by a `CommandResponse` whose `data` is the updated `Playlist` (`PlaylistCommandResponse`). */
export interface AddToPlaylistCommand {
  command: 'AddToPlaylist';
  command_id: string;
  playlist_id: string;
  track_id: string;
  /** 0-based; null appends. */
  position?: number | null;
}

/** Removes the first occurrence of `track_id`; answered like `AddToPlaylist`. */
export interface RemoveFromPlaylistCommand {
  command: 'RemoveFromPlaylist';
  command_id: string;
  playlist_id: string;
  track_id: string;
}

export interface SubscribeCommand {
  command: 'Subscribe';
  command_id: string;
  events: string[];
  filters?: Record<string, string> | null;
}

export interface UnsubscribeCommand {
  command: 'Unsubscribe';
  command_id: string;
  events: string[];
}

export interface GetStatusCommand {
  command: 'GetStatus';
  command_id: string;
}

export interface PingCommand {
  command: 'Ping';
  command_id: string;
}

export type WebSocketCommand =
  | PlayCommand
  | PauseCommand
  | StopCommand
  | SeekCommand
  | AddToPlaylistCommand
  | RemoveFromPlaylistCommand
  | SubscribeCommand
  | UnsubscribeCommand
  | GetStatusCommand
  | PingCommand;

export type CommandName = WebSocketCommand['command'];

// ---------------------------------------------------------------------------------------------
// Events (server → client)
// ---------------------------------------------------------------------------------------------

export interface PlaybackStartedEvent {
  event: 'PlaybackStarted';
  track_id: string;
  user_id: string;
  timestamp: number;
}

export interface PlaybackPausedEvent {
  event: 'PlaybackPaused';
  track_id: string;
  user_id: string;
  position_ms: number;
}

export interface PlaybackResumedEvent {
  event: 'PlaybackResumed';
  track_id: string;
  user_id: string;
  position_ms: number;
}

export interface PlaybackStoppedEvent {
  event: 'PlaybackStopped';
  track_id: string;
  user_id: string;
  total_played_ms: number;
}

export interface PlaybackProgressEvent {
  event: 'PlaybackProgress';
  track_id: string;
  user_id: string;
  position_ms: number;
  buffer_percentage: number;
}

/**
 * Any change to a playlist the connection's user owns or shares, from any tab, REST or
 * WebSocket. Creation, rename and deletion come as `Cleared` with `track_id: null`: clients
 * re-fetch rather than patch their copy.
 */
export interface PlaylistUpdatedEvent {
  event: 'PlaylistUpdated';
  playlist_id: string;
  action: PlaylistAction;
  track_id?: string | null;
  position?: number | null;
}

export interface PlaylistSharedEvent {
  event: 'PlaylistShared';
  playlist_id: string;
  from_user: string;
  to_users: string[];
}

export interface TrackLikedEvent {
  event: 'TrackLiked';
  track_id: string;
  user_id: string;
  total_likes: number;
}

export interface TrackSharedEvent {
  event: 'TrackShared';
  track_id: string;
  from_user: string;
  to_users: string[];
  message?: string | null;
}

export interface UserFollowedEvent {
  event: 'UserFollowed';
  follower_id: string;
  followed_id: string;
}

export interface ServerMessageEvent {
  event: 'ServerMessage';
  message: string;
  level: MessageLevel;
}

export interface RateLimitWarningEvent {
  event: 'RateLimitWarning';
  remaining_requests: number;
  reset_time_seconds: number;
}

export interface CommandResponseEvent {
  event: 'CommandResponse';
  command_id: string;
  success: boolean;
  data?: unknown;
  error?: string | null;
}

/** The answer to `AddToPlaylist` / `RemoveFromPlaylist`: the playlist after the change. */
export interface PlaylistCommandResponse extends CommandResponseEvent {
  data?: Playlist | null;
}

export interface LiveTrackStats {
  track_id: string;
  title: string;
  artist: string;
  current_listeners: number;
}

export interface LiveStatsEvent {
  event: 'LiveStats';
  concurrent_listeners: number;
  top_tracks: LiveTrackStats[];
  server_load: number;
}

/** An addition to the spec: the server moved a streaming session to another quality. */
export interface QualityChangedEvent {
  event: 'QualityChanged';
  session_id: string;
  track_id: string;
  from: string;
  to: string;
  reason: string;
}

export type WebSocketEvent =
  | PlaybackStartedEvent
  | PlaybackPausedEvent
  | PlaybackResumedEvent
  | PlaybackStoppedEvent
  | PlaybackProgressEvent
  | PlaylistUpdatedEvent
  | PlaylistSharedEvent
  | TrackLikedEvent
  | TrackSharedEvent
  | UserFollowedEvent
  | ServerMessageEvent
  | RateLimitWarningEvent
  | CommandResponseEvent
  | LiveStatsEvent
  | QualityChangedEvent;

export type EventName = WebSocketEvent['event'];

export const EVENT_NAMES: readonly EventName[] = [
  'PlaybackStarted',
  'PlaybackPaused',
  'PlaybackResumed',
  'PlaybackStopped',
  'PlaybackProgress',
  'PlaylistUpdated',
  'PlaylistShared',
  'TrackLiked',
  'TrackShared',
  'UserFollowed',
  'ServerMessage',
  'RateLimitWarning',
  'CommandResponse',
  'LiveStats',
  'QualityChanged',
];

/**
 * Parses one text frame into an event. Returns null for anything that is not a JSON object with
 * a string `event` tag (non-JSON frames, arrays, commands echoed back...). Unknown event names
 * are kept: a newer server may send events this client does not know yet, and the feed shows them.
 */
export function parseEvent(data: unknown): WebSocketEvent | null {
  if (typeof data !== 'string') return null;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const tag = (value as { event?: unknown }).event;
  if (typeof tag !== 'string' || tag.length === 0) return null;
  return value as WebSocketEvent;
}

export function isKnownEvent(e: { event: string }): e is WebSocketEvent {
  return (EVENT_NAMES as readonly string[]).includes(e.event);
}

let commandCounter = 0;

/** A command id unique within this page: `{prefix}_{time}_{counter}`. */
export function newCommandId(prefix: string): string {
  commandCounter = (commandCounter + 1) % 1_000_000;
  return `${prefix}_${Date.now().toString(36)}_${commandCounter}`;
}
