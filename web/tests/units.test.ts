// Pure pieces: capability detection, URL helpers, event parsing, the queue, buffer health.

import { act, renderHook } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { entryAsTrack, hlsMasterPath, identifiedPath, progressivePath, type Track } from '../src/api';
import {
  BUFFER_AHEAD_S,
  DATA_SAVER_BUFFER_S,
  bufferAheadSeconds,
  detectCapabilities,
  detectConnectionType,
  detectDeviceType,
  estimateBandwidthKbps,
} from '../src/capabilities';
import { bufferHealthPercent, segmentLossPercent } from '../src/components/AdaptiveAudioPlayer';
import { describeEvent } from '../src/components/EventFeed';
import { formatKbps, formatTime, qualityFromUrl } from '../src/format';
import { useQueue } from '../src/hooks/useQueue';
import { generateUserId } from '../src/hooks/useUserIdentity';
import { newCommandId, parseEvent } from '../src/protocol';

const DESKTOP_UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36';
const ANDROID_PHONE = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36';
const ANDROID_TABLET = 'Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36';
const IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1';
const IPADOS = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15';

describe('capabilities', () => {
  it('maps navigator.connection to a connection type', () => {
    expect(detectConnectionType({ connection: { type: 'wifi', effectiveType: '4g' } })).toBe('Wifi');
    expect(detectConnectionType({ connection: { type: 'ethernet' } })).toBe('Ethernet');
    expect(detectConnectionType({ connection: { type: 'cellular', effectiveType: '3g' } })).toBe('Cellular3G');
    expect(detectConnectionType({ connection: { effectiveType: 'slow-2g' } })).toBe('Cellular2G');
    expect(detectConnectionType({ connection: { effectiveType: '2g' } })).toBe('Cellular2G');
    expect(detectConnectionType({ connection: { effectiveType: '4g' } })).toBe('Cellular4G');
    expect(detectConnectionType({ connection: {} })).toBe('Unknown');
    expect(detectConnectionType({ connection: null })).toBe('Unknown');
  });

  it('reads the downlink in kbit/s', () => {
    expect(estimateBandwidthKbps({ connection: { downlink: 1.45 } })).toBe(1450);
    expect(estimateBandwidthKbps({ connection: { downlink: 0 } })).toBe(0);
    expect(estimateBandwidthKbps({})).toBe(0);
  });

  it('guesses the device from the user agent and screen', () => {
    expect(detectDeviceType({ userAgent: DESKTOP_UA })).toBe('Desktop');
    expect(detectDeviceType({ userAgent: ANDROID_PHONE })).toBe('Mobile');
    expect(detectDeviceType({ userAgent: IPHONE })).toBe('Mobile');
    expect(detectDeviceType({ userAgent: ANDROID_TABLET })).toBe('Tablet');
    expect(detectDeviceType({ userAgent: IPADOS, maxTouchPoints: 5 })).toBe('Tablet');
    expect(detectDeviceType({ userAgent: IPADOS, maxTouchPoints: 0 })).toBe('Desktop');
    expect(detectDeviceType({ userAgent: 'Mozilla/5.0 (Linux; Android 12; Automotive) Chrome/120' })).toBe('CarAudio');
    expect(detectDeviceType({ userAgent: 'Sonos/80.1 (ZPS1)' })).toBe('SmartSpeaker');
    expect(detectDeviceType({ userAgent: 'Mozilla/5.0 (CrKey armv7l 1.5.16041) Chrome/31' })).toBe('SmartSpeaker');
    expect(detectDeviceType({ userAgent: '' })).toBe('Unknown');
  });

  it('keeps 2 min buffered ahead unless Save-Data or the listener says otherwise', () => {
    expect(BUFFER_AHEAD_S).toBe(120);
    expect(DATA_SAVER_BUFFER_S).toBe(20);
    const plain = { connection: { effectiveType: '3g' } };
    const saveData = { connection: { effectiveType: '3g', saveData: true } };
    // Nothing stored: 120 s, or 20 s when the browser asks to save data.
    expect(bufferAheadSeconds(null, plain)).toBe(120);
    expect(bufferAheadSeconds(null, {})).toBe(120);
    expect(bufferAheadSeconds(null, { connection: null })).toBe(120);
    expect(bufferAheadSeconds(null, { connection: { saveData: false } })).toBe(120);
    expect(bufferAheadSeconds(null, saveData)).toBe(20);
    // The listener's choice wins, either way.
    expect(bufferAheadSeconds('20', plain)).toBe(20);
    expect(bufferAheadSeconds('20', {})).toBe(20);
    expect(bufferAheadSeconds('120', saveData)).toBe(120);
    // Anything else stored is ignored: the default applies.
    for (const garbage of ['', '60', '20 ', '120.0', 'true', 'null', '{"s":20}']) {
      expect(bufferAheadSeconds(garbage, plain)).toBe(120);
      expect(bufferAheadSeconds(garbage, saveData)).toBe(20);
    }
  });

  it('builds the capabilities the session endpoint takes', () => {
    const caps = detectCapabilities(
      { adaptiveEnabled: true, preferredQuality: null, bufferAheadSeconds: 120 },
      { connection: { downlink: 0.15, effectiveType: '3g' }, userAgent: ANDROID_PHONE },
    );
    expect(caps).toEqual({
      estimated_bandwidth_kbps: 150,
      buffer_duration_ms: 120_000,
      connection_type: 'Cellular3G',
      device_type: 'Mobile',
      preferred_quality: null,
      adaptive_enabled: true,
    });
    // The data-saver depth goes to the server as it is.
    const saver = detectCapabilities(
      { adaptiveEnabled: false, preferredQuality: 'mobile', bufferAheadSeconds: 20 },
      { connection: { downlink: 0.15, effectiveType: '3g', saveData: true }, userAgent: ANDROID_PHONE },
    );
    expect(saver.buffer_duration_ms).toBe(20_000);
    expect(saver.preferred_quality).toBe('mobile');
    expect(saver.adaptive_enabled).toBe(false);
  });
});

describe('helpers', () => {
  it('names the quality from a media playlist URL', () => {
    expect(qualityFromUrl('http://h:1/hls/abc/mobile/playlist.m3u8')).toBe('mobile');
    expect(qualityFromUrl('/hls/abc/high/playlist.m3u8?x=1')).toBe('high');
    expect(qualityFromUrl('medium/playlist.m3u8')).toBe('medium');
    expect(qualityFromUrl('/hls/abc/master.m3u8')).toBeNull();
    expect(qualityFromUrl(undefined)).toBeNull();
  });

  it('builds the HLS and progressive paths', () => {
    expect(hlsMasterPath('t1')).toBe('/hls/t1/master.m3u8');
    expect(hlsMasterPath('t1', 's-1')).toBe('/hls/t1/master.m3u8?session_id=s-1');
    expect(progressivePath('t1')).toBe('/stream/t1');
    expect(progressivePath('t1', 'low')).toBe('/stream/t1?quality=low');
  });

  it('formats times and rates', () => {
    expect(formatTime(0)).toBe('0:00');
    expect(formatTime(65.9)).toBe('1:05');
    expect(formatTime(3725)).toBe('1:02:05');
    expect(formatTime(Number.NaN)).toBe('0:00');
    expect(formatKbps(850)).toBe('850 kbps');
    expect(formatKbps(25_000)).toBe('25.0 Mbps');
    expect(formatKbps(0)).toBe('—');
  });

  it('measures buffer health against what can still be buffered', () => {
    expect(bufferHealthPercent(10, 0, 48, 20)).toBe(50);
    expect(bufferHealthPercent(25, 0, 48, 20)).toBe(100);
    expect(bufferHealthPercent(0, 10, 48, 20)).toBe(0);
    // Near the end, the rest of the track is all there is to buffer.
    expect(bufferHealthPercent(5, 43, 48, 20)).toBe(100);
    expect(bufferHealthPercent(2.5, 43, 48, 20)).toBe(50);
    expect(bufferHealthPercent(0, 47.8, 48, 20)).toBe(100);
    expect(bufferHealthPercent(10, 0, Number.NaN, 20)).toBe(50);
  });

  it('reports the share of failed segment requests as the loss proxy', () => {
    expect(segmentLossPercent(0, 0)).toBe(0);
    expect(segmentLossPercent(12, 0)).toBe(0);
    expect(segmentLossPercent(3, 1)).toBe(25);
    expect(segmentLossPercent(2, 1)).toBe(33.3);
    expect(segmentLossPercent(0, 4)).toBe(100);
  });

  it('generates listener ids and command ids', () => {
    expect(generateUserId()).toMatch(/^listener-[a-z0-9]{4}$/);
    const a = newCommandId('play');
    const b = newCommandId('play');
    expect(a).toMatch(/^play_/);
    expect(a).not.toBe(b);
  });
});

describe('protocol', () => {
  it('parses events and refuses everything else', () => {
    expect(parseEvent('{"event":"TrackLiked","track_id":"t","user_id":"u","total_likes":3}')).toEqual({
      event: 'TrackLiked',
      track_id: 't',
      user_id: 'u',
      total_likes: 3,
    });
    expect(parseEvent('not json')).toBeNull();
    expect(parseEvent('null')).toBeNull();
    expect(parseEvent('[{"event":"x"}]')).toBeNull();
    expect(parseEvent('{"command":"Ping","command_id":"1"}')).toBeNull();
    expect(parseEvent('{"event":""}')).toBeNull();
    expect(parseEvent(new ArrayBuffer(4))).toBeNull();
  });

  it('describes each event for the feed', () => {
    expect(describeEvent({ event: 'PlaylistUpdated', playlist_id: 'p1', action: 'Added', track_id: 't1', position: 2 })).toBe('playlist p1: Added t1 at 2');
    expect(describeEvent({ event: 'ServerMessage', message: 'maintenance at 2am', level: 'Warning' })).toBe('[Warning] maintenance at 2am');
    expect(describeEvent({ event: 'CommandResponse', command_id: 'c1', success: false, data: null, error: 'nope' })).toBe('c1: failed (nope)');
    expect(describeEvent({ event: 'QualityChanged', session_id: '0123456789', user_id: 'u1', track_id: 't', from: 'high', to: 'mobile', reason: 'throughput' })).toBe(
      'session 01234567: high → mobile (throughput)',
    );
  });
});

function track(id: string): Track {
  return { id, filename: `${id}.wav`, title: id.toUpperCase(), artist: null, album: null, genre: null, duration_ms: 40_000, sample_rate: 44100, channels: 2, codec: 'pcm_s16le', samples: 40 * 44100, version: `v1-${id}` };
}

describe('useQueue', () => {
  it('plays, queues, moves, removes and steps', () => {
    const { result } = renderHook(() => useQueue());
    expect(result.current.current).toBeNull();
    act(() => result.current.add(track('a')));
    expect(result.current.current?.track.id).toBe('a');
    act(() => result.current.add(track('b')));
    act(() => result.current.add(track('c')));
    expect(result.current.items.map((i) => i.track.id)).toEqual(['a', 'b', 'c']);
    expect(result.current.hasNext).toBe(true);
    expect(result.current.hasPrevious).toBe(false);

    const seq = result.current.playSeq;
    act(() => {
      result.current.next();
    });
    expect(result.current.current?.track.id).toBe('b');
    expect(result.current.playSeq).toBe(seq + 1);

    // Play now: right after the current one, and current.
    act(() => result.current.playNow(track('d')));
    expect(result.current.items.map((i) => i.track.id)).toEqual(['a', 'b', 'd', 'c']);
    expect(result.current.current?.track.id).toBe('d');

    // The same track again restarts it.
    const s2 = result.current.playSeq;
    act(() => result.current.playNow(track('d')));
    expect(result.current.items).toHaveLength(4);
    expect(result.current.playSeq).toBe(s2 + 1);

    // Reorder keeps the current item current.
    const dKey = result.current.current!.key;
    act(() => result.current.move(dKey, -2));
    expect(result.current.items.map((i) => i.track.id)).toEqual(['d', 'a', 'b', 'c']);
    expect(result.current.current?.key).toBe(dKey);

    // Removing the current item moves on to the next.
    act(() => result.current.remove(dKey));
    expect(result.current.current?.track.id).toBe('a');
    act(() => {
      result.current.previous();
    });
    expect(result.current.current?.track.id).toBe('a');
    const cKey = result.current.items[2].key;
    act(() => result.current.jump(cKey));
    expect(result.current.current?.track.id).toBe('c');
    expect(result.current.hasNext).toBe(false);
    act(() => {
      result.current.next();
    });
    expect(result.current.current?.track.id).toBe('c');
    act(() => result.current.clear());
    expect(result.current.current).toBeNull();
    expect(result.current.items).toEqual([]);
  });
});

describe('useQueue.playAll', () => {
  it('replaces the queue with a playlist and starts where asked', () => {
    const { result } = renderHook(() => useQueue());
    act(() => result.current.add(track('x')));
    const seq = result.current.playSeq;
    act(() => result.current.playAll([track('a'), track('b'), track('c')], 1));
    expect(result.current.items.map((i) => i.track.id)).toEqual(['a', 'b', 'c']);
    expect(result.current.current?.track.id).toBe('b');
    expect(result.current.playSeq).toBe(seq + 1);
    expect(result.current.hasNext).toBe(true);
    expect(result.current.hasPrevious).toBe(true);
    act(() => result.current.playAll([track('a')], 5)); // out of range: the last one
    expect(result.current.current?.track.id).toBe('a');
    act(() => result.current.playAll([]));
    expect(result.current.current).toBeNull();
  });
});

describe('playlist helpers', () => {
  it('names the listener with ?user_id, or leaves it to the token', () => {
    expect(identifiedPath('/api/playlists', { userId: 'ann b' })).toBe('/api/playlists?user_id=ann%20b');
    expect(identifiedPath('/api/x?y=1', { userId: 'u' })).toBe('/api/x?y=1&user_id=u');
    expect(identifiedPath('/api/playlists', { userId: 'u', token: 'jwt' })).toBe('/api/playlists');
  });

  it('makes a queueable track of a playlist entry', () => {
    expect(entryAsTrack({ track_id: 't1', title: 'One', artist: null, duration_ms: 1000, available: true })).toMatchObject({
      id: 't1',
      title: 'One',
      artist: null,
      duration_ms: 1000,
    });
  });
});
