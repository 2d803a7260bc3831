// A live chart in plain SVG: bitrate being played and the bandwidth estimate (left axis, kbps)
// and seconds buffered ahead (right axis), over the last couple of minutes. Drawn at the width it
// is given on screen, so its labels keep their size on a phone.

import { useEffect, useRef, useState, type RefObject } from 'react';
import { formatKbps } from '../format';

export interface ChartSample {
  t: number; // ms since epoch
  bitrateKbps: number | null;
  bufferS: number;
  bandwidthKbps: number | null;
}

interface Props {
  samples: ChartSample[];
  windowSeconds: number;
  bufferTargetSeconds: number;
}

const DEFAULT_W = 600;
const PAD = { left: 44, right: 40, top: 12, bottom: 24 };

function niceCeil(v: number): number {
  if (v <= 0) return 100;
  const steps = [100, 200, 250, 400, 500, 800, 1000, 1500, 2000, 3000, 5000, 10_000, 20_000];
  return steps.find((s) => s >= v) ?? Math.ceil(v / 10_000) * 10_000;
}

function path(points: [number, number][]): string {
  return points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${x.toFixed(1)},${y.toFixed(1)}`).join('');
}

function useWidth<T extends HTMLElement>(): [RefObject<T | null>, number] {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(DEFAULT_W);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver((entries) => {
      const w = Math.round(entries[0]?.contentRect.width ?? 0);
      if (w > 0) setWidth(w);
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, width];
}

export function BitrateChart({ samples, windowSeconds, bufferTargetSeconds }: Props) {
  const [ref, measured] = useWidth<HTMLElement>();
  const W = Math.max(260, measured);
  const H = W < 480 ? 160 : 190;
  const now = samples.length ? samples[samples.length - 1].t : Date.now();
  const t0 = now - windowSeconds * 1000;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;

  const maxBitrate = Math.max(0, ...samples.map((s) => s.bitrateKbps ?? 0));
  // The estimate can be far above the ladder (a LAN): the axis follows the ladder, the estimate is clipped.
  const kbpsMax = niceCeil(Math.max(maxBitrate * 1.25, 400));
  const secMax = Math.max(bufferTargetSeconds, Math.ceil(Math.max(0, ...samples.map((s) => s.bufferS))));

  const x = (t: number) => PAD.left + ((t - t0) / (windowSeconds * 1000)) * plotW;
  const yK = (k: number) => PAD.top + plotH - (Math.min(k, kbpsMax) / kbpsMax) * plotH;
  const yS = (s: number) => PAD.top + plotH - (Math.min(s, secMax) / secMax) * plotH;

  // Bitrate as a step line (it changes per segment); gaps where nothing played.
  const bitrateSegments: [number, number][][] = [];
  let current: [number, number][] = [];
  for (const s of samples) {
    if (s.bitrateKbps == null || s.bitrateKbps <= 0) {
      if (current.length) bitrateSegments.push(current);
      current = [];
      continue;
    }
    const px = x(s.t);
    const py = yK(s.bitrateKbps);
    if (current.length) current.push([px, current[current.length - 1][1]]);
    current.push([px, py]);
  }
  if (current.length) bitrateSegments.push(current);

  const bw = samples.filter((s) => s.bandwidthKbps != null && s.bandwidthKbps > 0).map((s) => [x(s.t), yK(s.bandwidthKbps as number)] as [number, number]);
  const buf = samples.map((s) => [x(s.t), yS(s.bufferS)] as [number, number]);
  const bufArea = buf.length > 1 ? `${path(buf)}L${buf[buf.length - 1][0].toFixed(1)},${yS(0)}L${buf[0][0].toFixed(1)},${yS(0)}Z` : '';

  const kTicks = [0, kbpsMax / 2, kbpsMax];
  const sTicks = [0, secMax / 2, secMax];
  const last = samples[samples.length - 1];

  return (
    <figure className="chart" data-testid="bitrate-chart" ref={ref}>
      <svg viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img" aria-label="Bitrate and buffer over the last two minutes">
        <rect x={PAD.left} y={PAD.top} width={plotW} height={plotH} className="chart-bg" />
        {kTicks.map((k) => (
          <g key={`k${k}`}>
            <line x1={PAD.left} x2={PAD.left + plotW} y1={yK(k)} y2={yK(k)} className="chart-grid" />
            <text x={PAD.left - 6} y={yK(k) + 4} textAnchor="end" className="chart-label">{Math.round(k)}</text>
          </g>
        ))}
        {sTicks.map((s) => (
          <text key={`s${s}`} x={PAD.left + plotW + 6} y={yS(s) + 4} className="chart-label">{Math.round(s)}s</text>
        ))}
        {(W < 480 ? [0, 60, 120] : [0, 30, 60, 90, 120]).filter((v) => v <= windowSeconds).map((ago) => (
          <text key={`t${ago}`} x={x(now - ago * 1000)} y={H - 6} textAnchor={ago === 0 ? 'end' : ago === windowSeconds ? 'start' : 'middle'} className="chart-label">
            {ago === 0 ? 'now' : `-${ago}s`}
          </text>
        ))}
        <text x={PAD.left} y={PAD.top - 2} className="chart-label" dy="-1">kbps</text>
        {bufArea && <path d={bufArea} className="chart-buffer-area" />}
        {buf.length > 1 && <path d={path(buf)} className="chart-buffer" />}
        {bw.length > 1 && <path d={path(bw)} className="chart-bandwidth" />}
        {bitrateSegments.map((seg, i) => (seg.length > 1 ? <path key={i} d={path(seg)} className="chart-bitrate" /> : null))}
      </svg>
      <figcaption className="chart-legend">
        <span className="lg lg-bitrate">bitrate {last?.bitrateKbps ? formatKbps(last.bitrateKbps) : ''}</span>
        <span className="lg lg-bandwidth">bandwidth est. {last?.bandwidthKbps ? formatKbps(last.bandwidthKbps) : ''}</span>
        <span className="lg lg-buffer">buffer {last ? `${last.bufferS.toFixed(1)} s` : ''}</span>
      </figcaption>
    </figure>
  );
}
