// The library: `GET /api/tracks?q=`, searched as the listener types (debounced, stale answers
// dropped).

import { useEffect, useState } from 'react';
import { listTracks, type Track } from '../api';

export interface TracksState {
  tracks: Track[];
  loading: boolean;
  error: string | null;
}

export function useTracks(query: string, debounceMs = 250, reloadKey = 0): TracksState {
  const [state, setState] = useState<TracksState>({ tracks: [], loading: true, error: null });

  useEffect(() => {
    const ctrl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    const timer = setTimeout(() => {
      listTracks(query, ctrl.signal)
        .then((tracks) => setState({ tracks: Array.isArray(tracks) ? tracks : [], loading: false, error: null }))
        .catch((err: unknown) => {
          if (ctrl.signal.aborted) return;
          setState((s) => ({ ...s, loading: false, error: err instanceof Error ? err.message : String(err) }));
        });
    }, query ? debounceMs : 0);
    return () => {
      clearTimeout(timer);
      ctrl.abort();
    };
  }, [query, debounceMs, reloadKey]);

  return state;
}
