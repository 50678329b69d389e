// `npm run soak -- [--minutes 10] [--out DIR]`: a bounded soak of one real server process (the embedded
// demo model, as `npm start` runs it) under a mixed load from this process: healthy radio listeners over
// WebSocket and Ogg/HTTP, session churn with abrupt disconnects, listener churn, a steered session, and
// hostile frames. Every 5 s it samples the server's RSS, CPU, event-loop lag and underruns from
// /metrics, and the healthy listeners' own underruns (a packet later than a 500 ms jitter buffer
// allows). Writes DIR/soak.json and DIR/soak.svg, and DIR/soak.png when Chromium is installed.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { decodeMessage, encodeMessage } from '../src/protocol/codec.ts';
import { SAMPLE_RATE } from '../src/protocol/constants.ts';
import { type SoakSample, soakChart } from './soak-chart.ts';

const { values: args } = parseArgs({
  options: { minutes: { type: 'string', default: '10' }, out: { type: 'string', default: 'bench/soak' } },
});
const minutes = Number(args.minutes);
if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, got ${args.minutes}`);
const outDir = args.out!;
const SAMPLE_MS = 5000;
const JITTER_BUFFER_S = 0.5;
const WS_LISTENERS = 20;
const OGG_LISTENERS = 5;
const PROMPTS = ['calm ambient piano', 'fast drums', 'dark synth bass', 'bright glass arpeggios', 'lofi beat'];
const log = (s: string): void => void process.stderr.write(`${s}\n`);

/** Each kind of client connects from its own loopback addresses (Linux routes all of 127/8 to lo), as
 * distinct clients on the internet would, so the server's per-address limits apply to each, not to all. */
let nextHost = 0;
const clientAddress = (kind: number): string => `127.0.${kind}.${1 + (nextHost++ % 250)}`;
const HEALTHY = 1;
const CHURN = 2;
const HOSTILE = 3;

// ---- the server ---------------------------------------------------------------------------------
async function startServerProcess(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    new URL('../bin/riverrun', import.meta.url).pathname,
    // Every client here is 127.0.0.1: let that one address take all 6 sessions (the default is 4 per address).
    [...['serve', '--port', '0', '--host', '127.0.0.1', '--max-sessions', '6'], ...['--log-level', 'info']],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.length > 1e6) out = out.slice(-1e5);
  });
  child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
  const end = Date.now() + 120_000;
  for (;;) {
    const port = Number(/"port":(\d+)/.exec(out)?.[1] ?? 0);
    if (port) return { child, port };
    if (Date.now() > end || child.exitCode !== null) throw new Error(`server did not start:\n${out.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** Sum of a metric's samples (all label sets), or undefined when absent. */
function metric(text: string, name: string, labels = ''): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith(' ') || rest.startsWith('{'))) continue;
    if (labels && !rest.includes(labels)) continue;
    sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

// ---- load ---------------------------------------------------------------------------------------
const counts = { sessions: 0, sessionsRefused: 0, listenerChurn: 0, hostileFrames: 0, hostileErrors: 0, steering: 0 };

/** A radio listener that keeps its own jitter-buffer clock and counts late packets. */
class HealthyListener {
  underruns = 0;
  packets = 0;
  private anchor: { wall: number; pts: number } | null = null;
  private readonly ws: WebSocket;

  constructor(url: string) {
    this.ws = new WebSocket(url, { localAddress: clientAddress(HEALTHY) });
    this.ws.on('open', () => this.ws.send(encodeMessage({ type: 'setup', listen: 'radio' })));
    this.ws.on('message', (data: Buffer) => {
      const m = decodeMessage(data);
      if (m?.type !== 'audio') return;
      const now = performance.now() / 1000;
      const pts = Number(m.pts);
      this.packets += (m.packets as unknown[]).length;
      if (!this.anchor) this.anchor = { wall: now, pts };
      const due = this.anchor.wall + (pts - this.anchor.pts) / SAMPLE_RATE + JITTER_BUFFER_S;
      if (now > due) {
        this.underruns++;
        this.anchor = { wall: now, pts }; // the buffer refills from here, as a player's would
      }
    });
    this.ws.on('error', () => {});
  }

  close(): void {
    this.ws.terminate();
  }
}

/** An Ogg/HTTP listener that reads as fast as the server sends; a gap over 2 s counts as an underrun. */
class OggListener {
  bytes = 0;
  underruns = 0;
  private last = 0;
  private readonly req;

  constructor(url: string) {
    this.req = get(url, { localAddress: clientAddress(HEALTHY) }, (res) => {
      res.on('data', (d: Buffer) => {
        const now = performance.now();
        if (this.last && now - this.last > 2000) this.underruns++;
        this.last = now;
        this.bytes += d.length;
      });
    });
    this.req.on('error', () => {});
  }

  close(): void {
    this.req.destroy();
  }
}

/** Opens a session, takes some audio, and drops the connection without a close handshake. */
function churnSession(url: string): void {
  const ws = new WebSocket(url, { localAddress: clientAddress(CHURN) });
  let audio = 0;
  const kill = setTimeout(() => ws.terminate(), 15_000);
  ws.on('open', () =>
    ws.send(encodeMessage({ type: 'setup', session: { prompts: [{ text: PROMPTS[counts.sessions % PROMPTS.length]!, weight: 1 }] } })),
  );
  ws.on('message', (data: Buffer) => {
    const m = decodeMessage(data);
    if (m?.type === 'setup_complete') counts.sessions++;
    if (m?.type === 'error' && m.code === 'busy') counts.sessionsRefused++;
    if (m?.type === 'audio' && ++audio === 25) {
      clearTimeout(kill);
      ws.terminate();
    }
  });
  ws.on('error', () => {});
  ws.on('close', () => clearTimeout(kill));
}

function churnListener(url: string): void {
  const ws = new WebSocket(url, { localAddress: clientAddress(CHURN) });
  ws.on('open', () => ws.send(encodeMessage({ type: 'setup', listen: 'radio' })));
  ws.on('error', () => {});
  setTimeout(() => ws.terminate(), 1000 + Math.random() * 2000);
  counts.listenerChurn++;
}

/** Garbage a hostile client sends after a valid setup: random bytes, a text frame, bad types and fields, a huge string. */
function hostile(url: string): void {
  const ws = new WebSocket(url, { localAddress: clientAddress(HOSTILE) });
  ws.on('open', () => {
    const frames: (Buffer | string | Uint8Array)[] = [
      encodeMessage({ type: 'setup', listen: 'radio' }),
      randomBytes(64),
      'not msgpack',
      encodeMessage({ type: 'no_such_type' }),
      encodeMessage({ type: 'setup', listen: 'radio', extra: 1 }),
      encodeMessage({ type: 'prompts', prompts: 'x'.repeat(10_000) }),
      Buffer.from([0xc1]),
      encodeMessage({ type: 'ping', id: 'x'.repeat(500) }),
    ];
    for (const f of frames) ws.send(f);
    counts.hostileFrames += frames.length;
    setTimeout(() => ws.terminate(), 500);
  });
  ws.on('message', (data: Buffer) => {
    if (decodeMessage(data)?.type === 'error') counts.hostileErrors++;
  });
  ws.on('error', () => {});
}

/** A session that stays and changes its prompts every 5 s. */
function steeredSession(url: string): WebSocket {
  const ws = new WebSocket(url, { localAddress: clientAddress(HEALTHY) });
  ws.on('open', () => ws.send(encodeMessage({ type: 'setup', session: { prompts: [{ text: PROMPTS[0]!, weight: 1 }] } })));
  const timer = setInterval(() => {
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(
      encodeMessage({ type: 'prompts', prompts: [{ text: PROMPTS[counts.steering % PROMPTS.length]!, weight: 1 }], transitionMs: 1000 }),
    );
    counts.steering++;
  }, 5000);
  ws.on('close', () => clearInterval(timer));
  ws.on('error', () => {});
  return ws;
}

// ---- the run ------------------------------------------------------------------------------------

const { child, port } = await startServerProcess();
const base = `http://127.0.0.1:${port}`;
const wsUrl = `ws://127.0.0.1:${port}/v1/ws`;
log(`server on port ${port}; soaking for ${minutes} min`);
const listeners = Array.from({ length: WS_LISTENERS }, () => new HealthyListener(wsUrl));
const oggs = Array.from({ length: OGG_LISTENERS }, () => new OggListener(`${base}/v1/channels/radio.ogg`));
const steered = steeredSession(wsUrl);
const timers = [
  setInterval(() => churnSession(wsUrl), 2000),
  setInterval(() => churnListener(wsUrl), 1000),
  setInterval(() => hostile(wsUrl), 1000),
];

const samples: SoakSample[] = [];
const started = performance.now();
let lastCpu: { s: number; at: number } | undefined;
while (performance.now() - started < minutes * 60_000) {
  await new Promise((r) => setTimeout(r, SAMPLE_MS));
  const text = await fetchText(`${base}/metrics`);
  const at = performance.now();
  const cpu = metric(text, 'process_cpu_seconds_total') ?? 0;
  const cpuPercent = lastCpu ? (100 * (cpu - lastCpu.s)) / ((at - lastCpu.at) / 1000) : 0;
  lastCpu = { s: cpu, at };
  const s: SoakSample = {
    t: (at - started) / 1000,
    rssMiB: (metric(text, 'process_resident_memory_bytes') ?? 0) / 2 ** 20,
    cpuPercent,
    lagP99Ms: (metric(text, 'nodejs_eventloop_lag_p99_seconds') ?? 0) * 1000,
    serverUnderruns: metric(text, 'riverrun_underruns', 'stream="radio"') ?? 0,
    listenerUnderruns: listeners.reduce((n, l) => n + l.underruns, 0),
    oggUnderruns: oggs.reduce((n, l) => n + l.underruns, 0),
    streams: metric(text, 'riverrun_streams') ?? 0,
  };
  samples.push(s);
  log(
    `${s.t.toFixed(0)} s: RSS ${s.rssMiB.toFixed(0)} MiB, CPU ${s.cpuPercent.toFixed(0)} %, lag p99 ${s.lagP99Ms.toFixed(1)} ms, ` +
      `underruns radio ${s.serverUnderruns} / listeners ${s.listenerUnderruns} / ogg ${s.oggUnderruns}, streams ${s.streams}`,
  );
}

for (const t of timers) clearInterval(t);
for (const l of listeners) l.close();
for (const o of oggs) o.close();
steered.terminate();
child.kill('SIGTERM');

const afterFirstMinute = samples.find((s) => s.t >= 60) ?? samples[0]!;
const last = samples.at(-1)!;
// RSS follows live memory (bin/riverrun gives large blocks back to the system when freed), so it swings
// by tens of MiB between samples as sessions come and go: a minute's median is its value, not one sample.
const medianRss = (from: number, to: number): number => {
  const v = samples.filter((s) => s.t >= from && s.t < to).map((s) => s.rssMiB);
  v.sort((a, b) => a - b);
  return v.length > 0 ? v[Math.floor(v.length / 2)]! : Number.NaN;
};
const secondMinute = medianRss(60, 120);
const lastMinute = medianRss(last.t - 60, last.t + 1);
const summary = {
  minutes,
  rssSecondMinuteMedianMiB: secondMinute,
  rssLastMinuteMedianMiB: lastMinute,
  rssLastOverSecondMinute: lastMinute / secondMinute,
  rssSampleAfterFirstMinuteMiB: afterFirstMinute.rssMiB,
  rssSampleEndMiB: last.rssMiB,
  maxLagP99Ms: Math.max(...samples.map((s) => s.lagP99Ms)),
  healthyListenerUnderruns: last.listenerUnderruns,
  oggListenerUnderruns: last.oggUnderruns,
  radioUnderruns: last.serverUnderruns,
  packetsPerListener: listeners.reduce((n, l) => n + l.packets, 0) / listeners.length,
  oggBytesPerListener: oggs.reduce((n, l) => n + l.bytes, 0) / oggs.length,
  ...counts,
};
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'soak.json'), `${JSON.stringify({ date: new Date().toISOString(), summary, samples }, null, 2)}\n`);
const svg = soakChart(samples, `Riverrun soak: ${minutes} min, demo model, ${WS_LISTENERS} + ${OGG_LISTENERS} radio listeners`);
writeFileSync(join(outDir, 'soak.svg'), svg);
if (existsSync('/usr/bin/chromium')) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
  const page = await browser.newPage({ viewport: { width: 900, height: 620 } });
  await page.setContent(`<body style="margin:0">${svg}</body>`);
  await page.screenshot({ path: join(outDir, 'soak.png') });
  await browser.close();
}
console.log(JSON.stringify(summary, null, 2));
process.exit(0);
