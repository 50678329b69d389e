// The soak's chart as SVG: one panel per measure over time (RSS, CPU, event-loop lag, underruns), each
// with its own y scale from 0 to the panel's maximum.

interface Series {
  label: string;
  color: string;
  values: number[];
}

interface Panel {
  title: string;
  unit: string;
  series: Series[];
}

const WIDTH = 900;
const PANEL_HEIGHT = 140;
const LEFT = 70;
const RIGHT = 20;
const TOP = 30;

/** One 5 s sample of the soak. */
export interface SoakSample {
  /** Seconds since the load started. */
  t: number;
  rssMiB: number;
  cpuPercent: number;
  lagP99Ms: number;
  serverUnderruns: number;
  listenerUnderruns: number;
  oggUnderruns: number;
  streams: number;
}

export function soakChart(samples: readonly SoakSample[], title: string): string {
  const t = samples.map((s) => s.t);
  const panels: Panel[] = [
    { title: 'server RSS', unit: 'MiB', series: [{ label: 'RSS', color: '#2563eb', values: samples.map((s) => s.rssMiB) }] },
    { title: 'server CPU', unit: '% of a core', series: [{ label: 'CPU', color: '#16a34a', values: samples.map((s) => s.cpuPercent) }] },
    { title: 'event-loop lag p99', unit: 'ms', series: [{ label: 'lag', color: '#d97706', values: samples.map((s) => s.lagP99Ms) }] },
    {
      title: 'underruns (cumulative)',
      unit: 'count',
      series: [
        { label: 'radio stream', color: '#dc2626', values: samples.map((s) => s.serverUnderruns) },
        { label: 'WebSocket listeners', color: '#7c3aed', values: samples.map((s) => s.listenerUnderruns) },
        { label: 'Ogg listeners', color: '#0891b2', values: samples.map((s) => s.oggUnderruns) },
      ],
    },
  ];
  const height = TOP + panels.length * PANEL_HEIGHT + 30;
  const tMax = Math.max(1, ...t);
  const x = (v: number): number => LEFT + ((WIDTH - LEFT - RIGHT) * v) / tMax;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${LEFT}" y="18" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  for (const [i, panel] of panels.entries()) {
    const top = TOP + i * PANEL_HEIGHT + 10;
    const bottom = top + PANEL_HEIGHT - 40;
    const yMax = niceMax(Math.max(0, ...panel.series.flatMap((s) => s.values)));
    const y = (v: number): number => bottom - ((bottom - top) * v) / yMax;
    parts.push(
      `<text x="${LEFT}" y="${top - 2}" font-weight="bold">${escapeXml(panel.title)} (${escapeXml(panel.unit)})</text>`,
      `<line x1="${LEFT}" y1="${bottom}" x2="${WIDTH - RIGHT}" y2="${bottom}" stroke="#999"/>`,
      `<line x1="${LEFT}" y1="${top}" x2="${LEFT}" y2="${bottom}" stroke="#999"/>`,
      `<text x="${LEFT - 6}" y="${top + 4}" text-anchor="end">${fmt(yMax)}</text>`,
      `<text x="${LEFT - 6}" y="${bottom + 4}" text-anchor="end">0</text>`,
    );
    for (const [k, s] of panel.series.entries()) {
      const points = s.values.map((v, j) => `${x(t[j]!).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${points}"/>`);
      if (panel.series.length > 1) {
        parts.push(
          `<text x="${WIDTH - RIGHT - 170}" y="${top + 14 + 14 * k}" fill="${s.color}">${escapeXml(s.label)}: ${fmt(s.values.at(-1) ?? 0)}</text>`,
        );
      }
    }
  }
  const axis = TOP + panels.length * PANEL_HEIGHT - 10;
  for (let k = 0; k <= 5; k++) {
    const v = (tMax * k) / 5;
    parts.push(`<text x="${x(v).toFixed(1)}" y="${axis + 4}" text-anchor="middle">${(v / 60).toFixed(1)} min</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 1 : 0);
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
