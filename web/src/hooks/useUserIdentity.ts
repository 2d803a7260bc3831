// Who this listener is, for now: an id kept in localStorage (`listener-xxxx`) and an optional
// token, both editable in the settings area. Real accounts will replace this.

import { useCallback, useState } from 'react';

const USER_KEY = 'stream-server.userId';
const TOKEN_KEY = 'stream-server.token';

export function generateUserId(random: () => number = Math.random): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < 4; i++) s += alphabet[Math.floor(random() * alphabet.length)];
  return `listener-${s}`;
}

function read(key: string): string | null {
  try {
    return globalThis.localStorage?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

function write(key: string, value: string): void {
  try {
    if (value) globalThis.localStorage?.setItem(key, value);
    else globalThis.localStorage?.removeItem(key);
  } catch {
    // No storage (private mode): the value lasts for this page only.
  }
}

/** The listener id kept in localStorage, if any (for analytics attribution). */
export function storedUserId(): string | null {
  const v = read(USER_KEY)?.trim();
  return v ? v : null;
}

function initialUserId(): string {
  const stored = read(USER_KEY);
  if (stored && stored.trim()) return stored;
  const id = generateUserId();
  write(USER_KEY, id);
  return id;
}

export interface UserIdentity {
  userId: string;
  token: string;
  setIdentity: (userId: string, token: string) => void;
}

export function useUserIdentity(): UserIdentity {
  const [userId, setUserId] = useState<string>(initialUserId);
  const [token, setToken] = useState<string>(() => read(TOKEN_KEY) ?? '');
  const setIdentity = useCallback((nextUser: string, nextToken: string) => {
    const u = nextUser.trim() || generateUserId();
    const t = nextToken.trim();
    write(USER_KEY, u);
    write(TOKEN_KEY, t);
    setUserId(u);
    setToken(t);
  }, []);
  return { userId, token, setIdentity };
}
