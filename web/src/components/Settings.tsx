// Who am I (user id, optional token) and the state of the real-time channel.

import { useEffect, useState, type FormEvent } from 'react';
import type { ConnectionStatus } from '../hooks/useWebSocket';

interface Props {
  userId: string;
  token: string;
  onSave: (userId: string, token: string) => void;
  status: ConnectionStatus;
  onReconnect: () => void;
  onClose: () => void;
}

export function Settings({ userId, token, onSave, status, onReconnect, onClose }: Props) {
  const [u, setU] = useState(userId);
  const [t, setT] = useState(token);
  useEffect(() => {
    setU(userId);
    setT(token);
  }, [userId, token]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    onSave(u, t);
    onClose();
  };

  return (
    <form className="card settings" onSubmit={submit} aria-label="Settings" data-testid="settings">
      <div className="field">
        <label htmlFor="user-id">User id</label>
        <input id="user-id" value={u} onChange={(e) => setU(e.target.value)} autoComplete="username" spellCheck={false} data-testid="user-id" />
      </div>
      <div className="field">
        <label htmlFor="token">Token <span className="muted">(optional)</span></label>
        <input id="token" type="password" value={t} onChange={(e) => setT(e.target.value)} autoComplete="current-password" />
      </div>
      <div className="settings-actions">
        <span className="muted small">Real-time: {status}</span>
        <button type="button" className="btn" onClick={onReconnect}>Reconnect</button>
        <button type="button" className="btn" onClick={onClose}>Cancel</button>
        <button type="submit" className="btn primary">Save</button>
      </div>
    </form>
  );
}
