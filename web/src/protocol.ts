// The WebSocket protocol between the player and stream-server (`/api/ws`).
//
// The wire types come from the Rust definitions (`WebSocketCommand` / `WebSocketEvent` and what
// they embed) via ts-rs: `cargo test` regenerates `src/generated/`, and CI checks that the
// generated files are committed. Do not re-declare them by hand here: import them, and derive
// any narrower name the app needs from them (`Extract<>`, indexed access).
//
// Commands (client → server) are JSON objects tagged by `"command"`; events (server → client) are
// tagged by `"event"`, as serde's internally tagged enums write them. An `Option` field is always
// sent as `null` when empty (the types say `T | null`, not optional).

import type { PlaylistView } from './generated/PlaylistView';
import type { WebSocketCommand } from './generated/WebSocketCommand';
import type { WebSocketEvent } from './generated/WebSocketEvent';

export type { WebSocketCommand, WebSocketEvent };
export type { LiveTrackStats } from './generated/LiveTrackStats';
export type { MessageLevel } from './generated/MessageLevel';
export type { PlaylistAction } from './generated/PlaylistAction';
export type { JsonValue } from './generated/serde_json/JsonValue';

// ---------------------------------------------------------------------------------------------
// Commands (client → server)
// ---------------------------------------------------------------------------------------------

export type CommandName = WebSocketCommand['command'];
/** The command tagged `C`. */
export type CommandOf<C extends CommandName> = Extract<WebSocketCommand, { command: C }>;

export type PlayCommand = CommandOf<'Play'>;
export type PauseCommand = CommandOf<'Pause'>;
export type StopCommand = CommandOf<'Stop'>;
export type SeekCommand = CommandOf<'Seek'>;
/**
 * `position` is 0-based; null appends. Answered by a `CommandResponse` whose `data` is the updated
 * playlist (`PlaylistCommandResponse`).
 */
export type AddToPlaylistCommand = CommandOf<'AddToPlaylist'>;
/** Removes the first occurrence of `track_id`; answered like `AddToPlaylist`. */
export type RemoveFromPlaylistCommand = CommandOf<'RemoveFromPlaylist'>;
export type SubscribeCommand = CommandOf<'Subscribe'>;
export type UnsubscribeCommand = CommandOf<'Unsubscribe'>;
export type GetStatusCommand = CommandOf<'GetStatus'>;
export type PingCommand = CommandOf<'Ping'>;

// ---------------------------------------------------------------------------------------------
// Events (server → client)
// ---------------------------------------------------------------------------------------------

export type EventName = WebSocketEvent['event'];
/** The event tagged `E`. */
export type EventOf<E extends EventName> = Extract<WebSocketEvent, { event: E }>;

export type PlaybackStartedEvent = EventOf<'PlaybackStarted'>;
export type PlaybackPausedEvent = EventOf<'PlaybackPaused'>;
export type PlaybackResumedEvent = EventOf<'PlaybackResumed'>;
export type PlaybackStoppedEvent = EventOf<'PlaybackStopped'>;
export type PlaybackProgressEvent = EventOf<'PlaybackProgress'>;
/**
 * Any change to a playlist the connection's user owns or shares, from any tab, REST or
 * WebSocket. Creation, rename and deletion come as `Cleared` with `track_id: null`: clients
 * re-fetch rather than patch their copy.
 */
export type PlaylistUpdatedEvent = EventOf<'PlaylistUpdated'>;
export type PlaylistSharedEvent = EventOf<'PlaylistShared'>;
export type TrackLikedEvent = EventOf<'TrackLiked'>;
export type TrackSharedEvent = EventOf<'TrackShared'>;
export type UserFollowedEvent = EventOf<'UserFollowed'>;
export type ServerMessageEvent = EventOf<'ServerMessage'>;
export type RateLimitWarningEvent = EventOf<'RateLimitWarning'>;
export type CommandResponseEvent = EventOf<'CommandResponse'>;
export type LiveStatsEvent = EventOf<'LiveStats'>;
/** An addition to the spec: the server moved a streaming session to another quality. */
export type QualityChangedEvent = EventOf<'QualityChanged'>;

/**
 * The answer to `AddToPlaylist` / `RemoveFromPlaylist`: the playlist after the change. Only the
 * web side knows this about `data` (the Rust type says `serde_json::Value`), so it is narrowed
 * here; `interface ... extends` also checks that a `PlaylistView` is a valid `JsonValue`.
 */
export interface PlaylistCommandResponse extends CommandResponseEvent {
  data: PlaylistView | null;
}

/** Every event name, in the order of the Rust enum; the `satisfies` check below keeps it complete. */
export const EVENT_NAMES = [
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
] as const satisfies readonly EventName[];

// A compile error here means the Rust enum gained an event that EVENT_NAMES lacks.
type MissingEventNames = Exclude<EventName, (typeof EVENT_NAMES)[number]>;
const allEventNamesListed: [MissingEventNames] extends [never] ? true : MissingEventNames = true;
void allEventNamesListed;

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
