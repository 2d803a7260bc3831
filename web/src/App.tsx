import { useCallback, useState } from 'react';
import { getStreamingStats, type Track } from './api';
import { AdaptiveAudioPlayer } from './components/AdaptiveAudioPlayer';
import { EventFeed } from './components/EventFeed';
import { Library } from './components/Library';
import { LiveStatsPanel } from './components/LiveStatsPanel';
import { PlaylistsPanel } from './components/PlaylistsPanel';
import { QueuePanel } from './components/QueuePanel';
import { ServerStatsPanel } from './components/ServerStatsPanel';
import { Settings } from './components/Settings';
import { usePlaylists } from './hooks/usePlaylists';
import { usePolling } from './hooks/usePolling';
import { useQueue } from './hooks/useQueue';
import { useUserIdentity } from './hooks/useUserIdentity';
import { RealtimeProvider, useRealtime } from './realtime';

export function App() {
  const identity = useUserIdentity();
  return (
    <RealtimeProvider userId={identity.userId} token={identity.token}>
      <Shell identity={identity} />
    </RealtimeProvider>
  );
}

const STATS_PERIOD_MS = 5000;

function Shell({ identity }: { identity: ReturnType<typeof useUserIdentity> }) {
  const queue = useQueue();
  const ws = useRealtime();
  const playlists = usePlaylists(identity.userId, identity.token, { ws });
  const [showSettings, setShowSettings] = useState(false);
  const stats = usePolling(getStreamingStats, STATS_PERIOD_MS);
  const current = queue.current;

  const onEnded = useCallback(() => {
    queue.next();
  }, [queue]);

  const { addTrack } = playlists;
  const addToPlaylist = useCallback((playlistId: string, t: Track) => addTrack(playlistId, t.id), [addTrack]);
  const queueAll = useCallback((tracks: Track[]) => tracks.forEach((t) => queue.add(t)), [queue]);

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <svg viewBox="0 0 24 24" aria-hidden="true" className="logo"><path d="M3 10h2v4H3zM7 7h2v10H7zM11 4h2v16h-2zM15 8h2v8h-2zM19 11h2v2h-2z" /></svg>
          <span>stream-server</span>
        </div>
        <div className="topbar-right">
          <span className={`status-pill ${ws.connectionStatus}`} data-testid="ws-status" title="Real-time channel (WebSocket)">
            <span className="dot" aria-hidden="true" />
            {ws.connectionStatus === 'connected' ? 'live' : ws.connectionStatus === 'connecting' ? 'connecting' : 'offline'}
          </span>
          <button
            type="button"
            className="user-btn"
            onClick={() => setShowSettings((v) => !v)}
            aria-expanded={showSettings}
            aria-controls="settings-area"
            data-testid="settings-toggle"
          >
            <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm0 2c-4 0-8 2-8 5v1h16v-1c0-3-4-5-8-5z" /></svg>
            <span className="user-name">{identity.userId}</span>
          </button>
        </div>
      </header>
      {showSettings && (
        <div id="settings-area" className="settings-area">
          <Settings
            userId={identity.userId}
            token={identity.token}
            onSave={identity.setIdentity}
            status={ws.connectionStatus}
            onReconnect={() => ws.connect(identity.userId, identity.token || undefined)}
            onClose={() => setShowSettings(false)}
          />
        </div>
      )}

      <main className="layout">
        <div className="area-player">
          <AdaptiveAudioPlayer
            trackId={current?.track.id ?? ''}
            track={current?.track ?? null}
            startToken={queue.playSeq}
            autoPlay
            onEnded={onEnded}
            onNext={queue.next}
            onPrevious={queue.previous}
            hasNext={queue.hasNext}
            hasPrevious={queue.hasPrevious}
            profiles={stats.data?.profiles}
          />
        </div>
        <div className="area-library">
          <Library
            currentTrackId={current?.track.id ?? null}
            onPlay={(t: Track) => queue.playNow(t)}
            onQueue={(t: Track) => queue.add(t)}
            playlists={playlists.playlists}
            userId={identity.userId}
            onAddToPlaylist={addToPlaylist}
          />
          <QueuePanel queue={queue} />
        </div>
        <div className="area-panels panels">
            <EventFeed history={ws.history} status={ws.connectionStatus} retryCount={ws.retryCount} nextRetryAt={ws.nextRetryAt} />
            <LiveStatsPanel events={ws.events} />
            <ServerStatsPanel stats={stats} />
            {/* Playlists: REST for the changes (AddToPlaylist over the WebSocket for adding from
                the library), kept live across tabs by PlaylistUpdated events. */}
            <PlaylistsPanel
              api={playlists}
              userId={identity.userId}
              currentTrackId={current?.track.id ?? null}
              onPlay={queue.playAll}
              onQueue={queueAll}
            />
        </div>
      </main>
      <footer className="footer muted small">
        Space play/pause · ← → seek 10 s
      </footer>
    </div>
  );
}
