// One WebSocket connection for the whole app, shared through context: the player sends its
// commands on it, and the panels read its events.

import { createContext, useContext, useEffect, type ReactNode } from 'react';
import { useWebSocket, type WebSocketApi } from './hooks/useWebSocket';

const RealtimeContext = createContext<WebSocketApi | null>(null);

const offline: WebSocketApi = {
  connectionStatus: 'disconnected',
  events: [],
  history: [],
  connect: () => {},
  sendCommand: () => false,
  subscribe: () => () => {},
  disconnect: () => {},
  retryCount: 0,
  nextRetryAt: null,
};

export function RealtimeProvider({ userId, token, children }: { userId: string; token: string; children: ReactNode }) {
  const ws = useWebSocket();
  const { connect, disconnect } = ws;
  useEffect(() => {
    connect(userId, token || undefined);
    return () => disconnect();
  }, [connect, disconnect, userId, token]);
  return <RealtimeContext.Provider value={ws}>{children}</RealtimeContext.Provider>;
}

/** The app's WebSocket, or an always-disconnected stand-in outside a provider. */
export function useRealtime(): WebSocketApi {
  return useContext(RealtimeContext) ?? offline;
}
