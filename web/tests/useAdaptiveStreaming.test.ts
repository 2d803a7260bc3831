// useAdaptiveStreaming against the REAL stream-server binary:
//   ${STREAM_SERVER_BIN:-../target/debug/stream-server} serve --demo --data-dir <tmp> --bind 127.0.0.1:<port>

import { act, renderHook } from '@testing-library/react';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
// Plain JS shared with the e2e script (typed by inference: allowJs).
import { startServer } from '../e2e/harness.mjs';
import { ApiError, endSessionUrl, fetchJson, listTracks, setApiBase, type StreamingSession, type Track } from '../src/api';
import { useAdaptiveStreaming } from '../src/hooks/useAdaptiveStreaming';

interface RunningServer {
  base: string;
  stop: () => Promise<void>;
  logs: () => string;
}

let server: RunningServer;
let tracks: Track[];

/** URIs of the variants of a master playlist, in order. */
async function variants(url: string): Promise<string[]> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('mpegurl');
  const text = await res.text();
  expect(text.startsWith('#EXTM3U')).toBe(true);
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

beforeAll(async () => {
  server = (await startServer()) as RunningServer;
  setApiBase(server.base);
  tracks = await listTracks('');
}, 120_000);

afterAll(async () => {
  setApiBase('');
  await server?.stop();
});

describe('useAdaptiveStreaming against stream-server', () => {
  it('lists the demo library', () => {
    expect(tracks.length).toBe(4);
    for (const t of tracks) {
      expect(typeof t.id).toBe('string');
      expect(t.title.length).toBeGreaterThan(0);
      expect(t.duration_ms).toBeGreaterThanOrEqual(30_000);
      expect(t.sample_rate).toBeGreaterThan(0);
    }
  });

  it('searches the library', async () => {
    const some = tracks[0];
    const found = await listTracks(some.title.slice(0, 5));
    expect(found.map((t) => t.id)).toContain(some.id);
    expect(await listTracks('zzz-no-such-track-zzz')).toEqual([]);
  });

  it('starts a phone on 3G at the mobile profile, and lists it first in the master', async () => {
    const { result } = renderHook(() => useAdaptiveStreaming());
    const track = tracks[0];
    let sessionId = '';
    await act(async () => {
      sessionId = await result.current.createStreamingSession(track.id, {
        estimated_bandwidth_kbps: 150,
        connection_type: 'Cellular3G',
        device_type: 'Mobile',
      });
    });
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.current.currentQuality).toBe('mobile');
    expect(result.current.session?.initialProfile).toMatchObject({ quality_id: 'mobile', codec: 'aac', bitrate_kbps: 96, sample_rate: 22050 });
    expect(result.current.qualityReason).toContain('Cellular3G');

    const master = result.current.getHLSMasterPlaylist(track.id);
    expect(master).toBe(`${server.base}/hls/${track.id}/master.m3u8?session_id=${sessionId}`);
    expect(result.current.session?.masterPlaylist).toBe(`/hls/${track.id}/master.m3u8?session_id=${sessionId}`);
    const uris = await variants(master);
    expect(uris[0]).toBe('mobile/playlist.m3u8');
    expect(uris).not.toContain('low/playlist.m3u8'); // the MP3 rung is not in the AAC master

    // What the server now holds for the session.
    const session = await fetchJson<StreamingSession>(`/api/streaming/session/${sessionId}`);
    expect(session.current_quality).toBe('mobile');
    expect(session.client_capabilities).toMatchObject({ connection_type: 'Cellular3G', device_type: 'Mobile', estimated_bandwidth_kbps: 150, preferred_quality: null });
  });

  it('sends the buffer depth: 2 min by default, then the listener\'s choice, kept in localStorage', async () => {
    localStorage.removeItem('stream-server.bufferAhead');
    try {
      const { result } = renderHook(() => useAdaptiveStreaming());
      expect(result.current.bufferAheadSeconds).toBe(120);
      let first = '';
      await act(async () => {
        first = await result.current.createStreamingSession(tracks[0].id);
      });
      expect(result.current.session?.capabilities.buffer_duration_ms).toBe(120_000);
      const held = await fetchJson<StreamingSession>(`/api/streaming/session/${first}`);
      expect(held.client_capabilities.buffer_duration_ms).toBe(120_000);

      act(() => result.current.setBufferAheadSeconds(20));
      expect(result.current.bufferAheadSeconds).toBe(20);
      expect(localStorage.getItem('stream-server.bufferAhead')).toBe('20');
      let second = '';
      await act(async () => {
        second = await result.current.createStreamingSession(tracks[0].id);
      });
      const held2 = await fetchJson<StreamingSession>(`/api/streaming/session/${second}`);
      expect(held2.client_capabilities.buffer_duration_ms).toBe(20_000);
      // A later page starts from the stored choice.
      const { result: later } = renderHook(() => useAdaptiveStreaming());
      expect(later.current.bufferAheadSeconds).toBe(20);
      await act(async () => {
        await result.current.endStreamingSession(first);
        await result.current.endStreamingSession(second);
      });
    } finally {
      localStorage.removeItem('stream-server.bufferAhead');
    }
  });

  it('starts a desktop on 5 Mbit/s Ethernet at the high profile', async () => {
    const { result } = renderHook(() => useAdaptiveStreaming());
    const track = tracks[1];
    let sessionId = '';
    await act(async () => {
      sessionId = await result.current.createStreamingSession(track.id, {
        estimated_bandwidth_kbps: 5000,
        connection_type: 'Ethernet',
        device_type: 'Desktop',
      });
    });
    expect(result.current.currentQuality).toBe('high');
    expect(result.current.session?.initialProfile).toMatchObject({ quality_id: 'high', bitrate_kbps: 320, sample_rate: 44100 });
    const uris = await variants(result.current.getHLSMasterPlaylist(track.id, sessionId));
    expect(uris[0]).toBe('high/playlist.m3u8');
    // Each variant's media playlist is there.
    for (const uri of uris) {
      const res = await fetch(`${server.base}/hls/${track.id}/${uri}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('#EXT-X-ENDLIST');
    }
  });

  it('gives the master without a session when there is none', () => {
    const { result } = renderHook(() => useAdaptiveStreaming());
    expect(result.current.getHLSMasterPlaylist('abc')).toBe(`${server.base}/hls/abc/master.m3u8`);
    expect(result.current.getHLSMasterPlaylist('abc', null)).toBe(`${server.base}/hls/abc/master.m3u8`);
  });

  it('reports performance metrics for the session', async () => {
    const { result } = renderHook(() => useAdaptiveStreaming());
    let sessionId = '';
    await act(async () => {
      sessionId = await result.current.createStreamingSession(tracks[2].id, {
        estimated_bandwidth_kbps: 5000,
        connection_type: 'Wifi',
        device_type: 'Desktop',
      });
    });
    let answer: Awaited<ReturnType<typeof result.current.reportMetrics>> = null;
    await act(async () => {
      answer = await result.current.reportMetrics({
        buffer_health_percentage: 80,
        download_speed_kbps: 3000,
        packet_loss_percentage: 0,
        latency_ms: 40,
        rebuffer_count: 0,
        rebuffer_duration_ms: 0,
        quality_switches: 0,
      });
    });
    expect(answer).toEqual({ session_id: sessionId, current_quality: 'high' });
    expect(result.current.serverQuality).toBe('high');
    const session = await fetchJson<StreamingSession>(`/api/streaming/session/${sessionId}`);
    expect(session.performance_metrics).toMatchObject({ buffer_health_percentage: 80, download_speed_kbps: 3000, latency_ms: 40 });
  });

  it('sends the listener id from localStorage when creating a session', async () => {
    localStorage.setItem('stream-server.userId', 'listener-test');
    const bodies: unknown[] = [];
    const realFetch = globalThis.fetch;
    const spy = vi.spyOn(globalThis, 'fetch').mockImplementation((input, init) => {
      if (String(input).endsWith('/api/streaming/session') && typeof init?.body === 'string') bodies.push(JSON.parse(init.body));
      return realFetch(input, init);
    });
    try {
      const { result } = renderHook(() => useAdaptiveStreaming());
      let sessionId = '';
      await act(async () => {
        sessionId = await result.current.createStreamingSession(tracks[3].id);
      });
      // Accepted by the server (it refuses unknown fields).
      expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
      expect(bodies).toEqual([expect.objectContaining({ track_id: tracks[3].id, user_id: 'listener-test' })]);
    } finally {
      spy.mockRestore();
      localStorage.removeItem('stream-server.userId');
    }
  });

  it('reports position, the quality played and the startup time; the answer follows the quality', async () => {
    const { result } = renderHook(() => useAdaptiveStreaming());
    let sessionId = '';
    await act(async () => {
      sessionId = await result.current.createStreamingSession(tracks[2].id, {
        estimated_bandwidth_kbps: 5000,
        connection_type: 'Wifi',
        device_type: 'Desktop',
      });
    });
    expect(result.current.currentQuality).toBe('high');
    const base = {
      buffer_health_percentage: 70,
      download_speed_kbps: 400,
      packet_loss_percentage: 0,
      latency_ms: 60,
      rebuffer_count: 0,
      rebuffer_duration_ms: 0,
      quality_switches: 1,
    };
    let answer: Awaited<ReturnType<typeof result.current.reportMetrics>> = null;
    await act(async () => {
      // Fractions are rounded to whole ms on the way out.
      answer = await result.current.reportMetrics({ ...base, position_ms: 12_345.6, current_quality: 'mobile', startup_ms: 850.4 });
    });
    expect(answer).toEqual({ session_id: sessionId, current_quality: 'mobile' });
    expect(result.current.serverQuality).toBe('mobile');
    let session = await fetchJson<StreamingSession>(`/api/streaming/session/${sessionId}`);
    expect(session.current_quality).toBe('mobile');

    await act(async () => {
      // No startup this time; a NaN position is left out, not sent.
      answer = await result.current.reportMetrics({ ...base, quality_switches: 2, position_ms: Number.NaN, current_quality: 'medium' });
    });
    expect(answer).toEqual({ session_id: sessionId, current_quality: 'medium' });
    expect(result.current.serverQuality).toBe('medium');
    session = await fetchJson<StreamingSession>(`/api/streaming/session/${sessionId}`);
    expect(session.current_quality).toBe('medium');
    expect(session.performance_metrics).toMatchObject({ download_speed_kbps: 400 });
    // The player's count already includes its switches: the server does not count them twice.
    expect(session.performance_metrics.quality_switches).toBe(2);

    // An unknown profile is refused.
    let error: unknown = null;
    await act(async () => {
      await result.current.reportMetrics({ ...base, current_quality: 'ultra' }).catch((e: unknown) => {
        error = e;
      });
    });
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBeGreaterThanOrEqual(400);
    expect((error as ApiError).status).toBeLessThan(500);
  });

  it('ends the session with DELETE; the session is gone afterwards', async () => {
    const { result } = renderHook(() => useAdaptiveStreaming());
    let sessionId = '';
    await act(async () => {
      sessionId = await result.current.createStreamingSession(tracks[0].id);
    });
    expect(endSessionUrl(sessionId, 4321.7)).toBe(`${server.base}/api/streaming/session/${sessionId}?position_ms=4322`);
    expect(endSessionUrl(sessionId, Number.NaN)).toBe(`${server.base}/api/streaming/session/${sessionId}`);
    // What the player sends: the raw DELETE answers 204.
    const res = await fetch(endSessionUrl(sessionId, 4321.7), { method: 'DELETE', keepalive: true });
    expect(res.status).toBe(204);
    const gone = await fetch(`${server.base}/api/streaming/session/${sessionId}`);
    expect(gone.status).toBe(404);
    // Ending it again (404) does not throw.
    await expect(result.current.endStreamingSession(sessionId, 5000)).resolves.toBeUndefined();
    const again = await fetch(endSessionUrl(sessionId, 5000), { method: 'DELETE' });
    expect(again.status).toBe(404);

    // Through the hook: the current session by default.
    let second = '';
    await act(async () => {
      second = await result.current.createStreamingSession(tracks[1].id);
    });
    expect((await fetch(`${server.base}/api/streaming/session/${second}`)).status).toBe(200);
    await act(async () => {
      await result.current.endStreamingSession(undefined, 1000);
    });
    expect((await fetch(`${server.base}/api/streaming/session/${second}`)).status).toBe(404);
    // Metrics for an ended session are refused with 404.
    let error: unknown = null;
    await act(async () => {
      await result.current
        .reportMetrics({
          buffer_health_percentage: 50,
          download_speed_kbps: 300,
          packet_loss_percentage: 0,
          latency_ms: 10,
          rebuffer_count: 0,
          rebuffer_duration_ms: 0,
          quality_switches: 0,
        })
        .catch((e: unknown) => {
          error = e;
        });
    });
    expect((error as ApiError).status).toBe(404);
  });

  it('honours a quality the listener picked, with adaptation off', async () => {
    const { result } = renderHook(() => useAdaptiveStreaming());
    await act(async () => {
      await result.current.createStreamingSession(tracks[0].id, {
        estimated_bandwidth_kbps: 5000,
        connection_type: 'Ethernet',
        device_type: 'Desktop',
        preferred_quality: 'mobile',
        adaptive_enabled: false,
      });
    });
    expect(result.current.currentQuality).toBe('mobile');
    expect(result.current.qualityReason).toContain('your choice');
  });

  it('rejects an unknown track with the server error', async () => {
    const { result } = renderHook(() => useAdaptiveStreaming());
    let error: unknown = null;
    await act(async () => {
      await result.current.createStreamingSession('no-such-track').catch((e: unknown) => {
        error = e;
      });
    });
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(404);
    expect((error as ApiError).code).toBeTruthy();
    expect(result.current.session).toBeNull();
  });
});
