// The play queue: an ordered list of tracks and the position being played.

import { useCallback, useMemo, useState } from 'react';
import type { Track } from '../api';

export interface QueueItem {
  /** Unique within the queue (the same track may be queued twice). */
  key: string;
  track: Track;
}

export interface Queue {
  items: QueueItem[];
  index: number; // -1 = nothing playing
  current: QueueItem | null;
  /** Changes each time playback of `current` should (re)start from the top. */
  playSeq: number;
  /** Plays `track` now: queued right after the current item, and made current. */
  playNow: (track: Track) => void;
  add: (track: Track) => void;
  /** Replaces the queue with `tracks` and plays the one at `start` (a playlist, say). */
  playAll: (tracks: Track[], start?: number) => void;
  remove: (key: string) => void;
  jump: (key: string) => void;
  next: () => boolean;
  previous: () => boolean;
  move: (key: string, delta: number) => void;
  clear: () => void;
  hasNext: boolean;
  hasPrevious: boolean;
}

let keySeq = 0;
const newKey = () => `q${++keySeq}`;

interface QueueState {
  items: QueueItem[];
  index: number;
  /** Bumped whenever the listener asks to (re)start playback of the current item. */
  seq: number;
}

export function useQueue(): Queue {
  const [state, setState] = useState<QueueState>({ items: [], index: -1, seq: 0 });

  const playNow = useCallback((track: Track) => {
    setState(({ items, index, seq }) => {
      if (index >= 0 && items[index]?.track.id === track.id) {
        return { items, index, seq: seq + 1 }; // same track again: restart it
      }
      const at = index + 1;
      const next = [...items.slice(0, at), { key: newKey(), track }, ...items.slice(at)];
      return { items: next, index: at, seq: seq + 1 };
    });
  }, []);

  const add = useCallback((track: Track) => {
    setState(({ items, index, seq }) => {
      const next = [...items, { key: newKey(), track }];
      return { items: next, index: index < 0 ? next.length - 1 : index, seq };
    });
  }, []);

  const playAll = useCallback((tracks: Track[], start = 0) => {
    setState(({ seq }) => {
      if (tracks.length === 0) return { items: [], index: -1, seq: seq + 1 };
      const items = tracks.map((track) => ({ key: newKey(), track }));
      return { items, index: Math.min(Math.max(0, start), items.length - 1), seq: seq + 1 };
    });
  }, []);

  const remove = useCallback((key: string) => {
    setState(({ items, index, seq }) => {
      const at = items.findIndex((i) => i.key === key);
      if (at < 0) return { items, index, seq };
      const next = items.filter((i) => i.key !== key);
      let idx = index;
      if (at < index) idx = index - 1;
      else if (at === index) idx = Math.min(index, next.length - 1);
      return { items: next, index: next.length ? idx : -1, seq: at === index ? seq + 1 : seq };
    });
  }, []);

  const jump = useCallback((key: string) => {
    setState(({ items, index, seq }) => {
      const at = items.findIndex((i) => i.key === key);
      return at >= 0 ? { items, index: at, seq: seq + 1 } : { items, index, seq };
    });
  }, []);

  const move = useCallback((key: string, delta: number) => {
    setState(({ items, index, seq }) => {
      const at = items.findIndex((i) => i.key === key);
      const to = at + delta;
      if (at < 0 || to < 0 || to >= items.length) return { items, index, seq };
      const next = [...items];
      const [item] = next.splice(at, 1);
      next.splice(to, 0, item);
      const currentKey = items[index]?.key;
      return { items: next, index: currentKey ? next.findIndex((i) => i.key === currentKey) : index, seq };
    });
  }, []);

  const clear = useCallback(() => setState(({ seq }) => ({ items: [], index: -1, seq: seq + 1 })), []);

  const hasNext = state.index >= 0 && state.index < state.items.length - 1;
  const hasPrevious = state.index > 0;

  const step = useCallback((delta: number) => {
    setState(({ items, index, seq }) => {
      const to = index + delta;
      if (to < 0 || to >= items.length) return { items, index, seq };
      return { items, index: to, seq: seq + 1 };
    });
  }, []);

  /** Moves to the next item; false when there is none. */
  const next = useCallback((): boolean => {
    step(1);
    return hasNext;
  }, [step, hasNext]);

  const previous = useCallback((): boolean => {
    step(-1);
    return hasPrevious;
  }, [step, hasPrevious]);

  const current = state.index >= 0 ? (state.items[state.index] ?? null) : null;

  return useMemo(
    () => ({ items: state.items, index: state.index, current, playSeq: state.seq, playNow, add, playAll, remove, jump, next, previous, move, clear, hasNext, hasPrevious }),
    [state, current, playNow, add, playAll, remove, jump, next, previous, move, clear, hasNext, hasPrevious],
  );
}
