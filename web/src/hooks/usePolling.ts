// Polls an async loader every `intervalMs` while the page is visible.

import { useEffect, useRef, useState } from 'react';

export interface Polled<T> {
  data: T | null;
  error: string | null;
  updatedAt: number | null;
}

export function usePolling<T>(load: (signal: AbortSignal) => Promise<T>, intervalMs: number): Polled<T> {
  const [state, setState] = useState<Polled<T>>({ data: null, error: null, updatedAt: null });
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    let ctrl: AbortController | null = null;
    let stopped = false;

    const tick = async () => {
      timer = null;
      if (stopped) return;
      if (typeof document === 'undefined' || document.visibilityState !== 'hidden') {
        ctrl = new AbortController();
        try {
          const data = await loadRef.current(ctrl.signal);
          if (!stopped) setState({ data, error: null, updatedAt: Date.now() });
        } catch (err) {
          if (!stopped && !ctrl.signal.aborted) {
            setState((s) => ({ ...s, error: err instanceof Error ? err.message : String(err) }));
          }
        }
      }
      if (!stopped) timer = setTimeout(tick, intervalMs);
    };
    const onVisible = () => {
      if (document.visibilityState === 'visible' && timer !== null) {
        clearTimeout(timer);
        void tick();
      }
    };
    void tick();
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      ctrl?.abort();
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [intervalMs]);

  return state;
}
