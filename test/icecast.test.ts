// One piece, over 400 lines: the real icecast2 and the fake-server tests share the same source harness and packet generator.
// IcecastSource against a real icecast2 (Debian's package) on loopback, plus fake-server tests of the
// handshake and backpressure paths that need no icecast2.
//
// icecast2 refuses to run as root ("You should not run icecast2 as root") unless the config has a
// <security><changeowner> section; so as root the generated config drops privileges to the package's
// `icecast2` user (or `nobody`), and as any other user it runs as that user. Its logs go to stderr
// ("-"), so it never writes to the temp dir after reading its config.

import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { OggOpusDecoder } from 'ogg-opus-decoder';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { PACKET_SAMPLES } from '../src/protocol/constants.ts';
import type { OpusStreamFormat } from '../src/protocol/messages.ts';
import type { IcecastState } from '../src/server/icecast.ts';
import { IcecastSource, parseIcecastUrl } from '../src/server/icecast.ts';
import type { PacketSource } from '../src/server/packet-source.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';
import type { StampedPacket } from '../src/stream/engine-core.ts';
import { OPUS_PRE_SKIP, OpusPacketizer } from '../src/stream/opus-packetizer.ts';

// ---------------------------------------------------------------------------------------------------
// helpers

function findIcecast(): string | null {
  for (const name of ['icecast2', 'icecast']) {
    try {
      const p = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
      if (p) return p;
    } catch {
      // not on PATH
    }
  }
  return null;
}

const ICECAST = findIcecast();
const IN_CI = Boolean(process.env.CI);
if (!ICECAST && !IN_CI)
  console.warn('test/icecast.test.ts: icecast2 is not installed (apt-get install icecast2): skipping the real-server tests');

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Real Opus packets of a 440 Hz sine, emitted at real-time pace (a batch every ~20 ms) for as long as it runs. */
class SineSource implements PacketSource {
  readonly id = 'sine';
  readonly format: OpusStreamFormat = { codec: 'opus', sampleRate: 48000, channels: 2, frameMs: 20, preSkip: OPUS_PRE_SKIP };
  private readonly listeners = new Set<(p: StampedPacket[]) => void>();
  private readonly packetizer = new OpusPacketizer({ channels: 2, bitrate: 64000, complexity: 5 });
  private readonly frame = new Float32Array(PACKET_SAMPLES);
  private timer: NodeJS.Timeout | null = null;
  private t0 = 0;
  private sent = 0;

  get subscribers(): number {
    return this.listeners.size;
  }

  start(): void {
    this.t0 = performance.now();
    this.timer = setInterval(() => this.tick(), 20);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  subscribe(listener: (packets: StampedPacket[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private tick(): void {
    const due = Math.floor((performance.now() - this.t0) / 20);
    const batch: StampedPacket[] = [];
    while (this.sent < due) {
      for (let i = 0; i < PACKET_SAMPLES; i++)
        this.frame[i] = 0.3 * Math.sin((2 * Math.PI * 440 * (this.sent * PACKET_SAMPLES + i)) / 48000);
      for (const p of this.packetizer.push(this.frame)) batch.push({ ...p, control: 0 });
      this.sent++;
    }
    if (batch.length > 0) for (const l of this.listeners) l(batch);
  }
}

interface OggPage {
  flags: number;
  granule: bigint;
  serial: number;
  seq: number;
  body: Buffer;
}

/** Splits bytes into Ogg pages (no CRC check: the decoder does that); a trailing partial page is left out. */
function oggPages(bytes: Buffer): { pages: OggPage[]; complete: number } {
  const pages: OggPage[] = [];
  let at = 0;
  while (at + 27 <= bytes.length) {
    if (bytes.toString('latin1', at, at + 4) !== 'OggS') throw new Error(`no Ogg capture pattern at byte ${at}`);
    const nseg = bytes[at + 26]!;
    if (at + 27 + nseg > bytes.length) break;
    let len = 0;
    for (let i = 0; i < nseg; i++) len += bytes[at + 27 + i]!;
    const end = at + 27 + nseg + len;
    if (end > bytes.length) break;
    pages.push({
      flags: bytes[at + 5]!,
      granule: bytes.readBigInt64LE(at + 6),
      serial: bytes.readUInt32LE(at + 14),
      seq: bytes.readUInt32LE(at + 18),
      body: bytes.subarray(at + 27 + nseg, end),
    });
    at = end;
  }
  return { pages, complete: at };
}

/** GETs url; resolves with the bytes received after `ms` (or when the server ends the response). */
function listen(url: string, ms: number): Promise<{ status: number; contentType: string; bytes: Buffer; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const req = http.get(url, (res) => {
      let ended = false;
      const finish = (): void => {
        clearTimeout(timer);
        req.destroy();
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type'] ?? ''),
          bytes: Buffer.concat(chunks),
          ended,
        });
      };
      const timer = setTimeout(finish, ms);
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        ended = true;
        finish();
      });
      res.on('error', () => finish());
    });
    req.on('error', reject);
  });
}

interface Decoded {
  samples: number;
  rms: number;
  /** zero crossings per second of channel 0 / 2: the tone's frequency */
  freq: number;
  errors: number;
  sampleRate: number;
}

async function decodeOgg(bytes: Buffer): Promise<Decoded> {
  const { complete } = oggPages(bytes);
  const decoder = new OggOpusDecoder();
  await decoder.ready;
  try {
    const out = await decoder.decodeFile(new Uint8Array(bytes.subarray(0, complete)));
    const x = out.channelData[0] ?? new Float32Array(0);
    // Skip the first 100 ms (a listener joining mid-stream may start on a concealed/ramping frame).
    const from = Math.min(x.length, 4800);
    let sum = 0;
    let crossings = 0;
    for (let i = from; i < x.length; i++) {
      sum += x[i]! * x[i]!;
      if (i > from && x[i - 1]! < 0 && x[i]! >= 0) crossings++;
    }
    const n = x.length - from;
    return {
      samples: out.samplesDecoded,
      rms: n > 0 ? Math.sqrt(sum / n) : 0,
      freq: n > 0 ? (crossings * 48000) / n : 0,
      errors: out.errors.length,
      sampleRate: out.sampleRate,
    };
  } finally {
    decoder.free();
  }
}

function expectOpusStream(bytes: Buffer): OggPage[] {
  const { pages } = oggPages(bytes);
  expect(pages.length).toBeGreaterThan(3);
  expect(pages[0]!.body.toString('latin1', 0, 8)).toBe('OpusHead');
  expect(pages[0]!.flags & 0x02).toBe(0x02); // BOS
  expect(pages[0]!.body[9]).toBe(2); // channels
  expect(pages[0]!.body.readUInt16LE(10)).toBe(OPUS_PRE_SKIP);
  expect(pages[1]!.body.toString('latin1', 0, 8)).toBe('OpusTags');
  return pages;
}

/** A local Icecast 2.4 process with a generated config. */
class Icecast {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'riverrun-icecast-'));
  readonly config = path.join(this.dir, 'icecast.xml');
  proc: ChildProcess | null = null;
  output: string[] = [];
  readonly all: ChildProcess[] = [];

  constructor(
    readonly port: number,
    readonly sourcePassword: string,
  ) {
    writeFileSync(this.config, this.xml());
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private xml(): string {
    // As root, icecast2 must drop privileges; the Debian package creates icecast2:icecast.
    let security = '<chroot>0</chroot>';
    if (process.getuid?.() === 0) {
      let user = 'nobody';
      try {
        execFileSync('id', ['-u', 'icecast2'], { stdio: 'ignore' });
        user = 'icecast2';
      } catch {
        // no icecast2 user: nobody
      }
      const group = execFileSync('id', ['-gn', user], { encoding: 'utf8' }).trim();
      security += `<changeowner><user>${user}</user><group>${group}</group></changeowner>`;
    }
    return `<icecast>
  <location>test</location><admin>test@localhost</admin>
  <limits>
    <clients>20</clients><sources>4</sources><queue-size>524288</queue-size>
    <client-timeout>30</client-timeout><header-timeout>5</header-timeout><source-timeout>5</source-timeout>
    <burst-on-connect>1</burst-on-connect><burst-size>65536</burst-size>
  </limits>
  <authentication>
    <source-password>${this.sourcePassword}</source-password>
    <admin-user>admin</admin-user><admin-password>admin-${this.sourcePassword}</admin-password>
  </authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>${this.port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <fileserve>1</fileserve>
  <paths>
    <basedir>${this.dir}</basedir><logdir>${this.dir}</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot>
  </paths>
  <logging><accesslog>-</accesslog><errorlog>-</errorlog><loglevel>3</loglevel></logging>
  <security>${security}</security>
</icecast>
`;
  }

  async start(): Promise<void> {
    const proc = spawn(ICECAST!, ['-c', this.config], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.all.push(proc);
    const keep = (d: Buffer): void => {
      this.output.push(...d.toString().split('\n').filter(Boolean));
      if (this.output.length > 200) this.output.splice(0, this.output.length - 200);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    let exited: number | null = null;
    proc.on('exit', (code) => (exited = code ?? -1));
    try {
      await until(
        'icecast2 to listen',
        async () => {
          if (exited !== null) throw new Error(`icecast2 exited with ${exited}:\n${this.output.slice(-20).join('\n')}`);
          return (await this.status()) !== null;
        },
        10_000,
        50,
      );
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** The mounts icecast2 lists in status-json.xsl (null when it does not answer). */
  async status(): Promise<string[] | null> {
    try {
      const res = await fetch(`${this.base}/status-json.xsl`, { signal: AbortSignal.timeout(1000) });
      if (res.status !== 200) return null;
      // status-json.xsl of 2.4.4 can emit invalid JSON for some titles: only listenurl is needed here.
      const text = await res.text();
      return [...text.matchAll(/"listenurl":"[^"]*?:\d+(\/[^"]*)"/g)].map((m) => m[1]!);
    } catch {
      return null;
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill(signal);
    await gone;
  }

  async cleanup(): Promise<void> {
    for (const p of this.all) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

interface Log {
  level: 'info' | 'warn';
  msg: string;
}

// ---------------------------------------------------------------------------------------------------

describe('parseIcecastUrl', () => {
  it('reads user, password, host, port and mount; logs never see the password', () => {
    const t = parseIcecastUrl('http://source:p%40ss@127.0.0.1:8000/radio.ogg');
    expect(t).toMatchObject({
      secure: false,
      host: '127.0.0.1',
      port: 8000,
      hostHeader: '127.0.0.1:8000',
      mount: '/radio.ogg',
      user: 'source',
      password: 'p@ss',
    });
    expect(t.display).not.toContain('p%40ss');
    expect(parseIcecastUrl('http://:pw@[::1]:8000/a.ogg')).toMatchObject({ host: '::1', user: 'source', port: 8000 });
    expect(() => parseIcecastUrl('http://source@host:8000/a.ogg')).toThrow(/password/);
    expect(() => parseIcecastUrl('http://source:pw@host:8000/')).toThrow(/mount/);
    expect(() => parseIcecastUrl('ftp://source:pw@host/a.ogg')).toThrow(/http/);
  });
});

describe('IcecastSource against a fake server', () => {
  const servers: net.Server[] = [];
  afterAll(() => {
    for (const s of servers) s.close();
  });

  async function fakeServer(onSocket: (s: net.Socket, request: string) => void): Promise<number> {
    const srv = net.createServer((sock) => {
      let head = '';
      const onData = (d: Buffer): void => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        sock.off('data', onData);
        onSocket(sock, head);
      };
      sock.on('data', onData);
      sock.on('error', () => {});
    });
    servers.push(srv);
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    return (srv.address() as net.AddressInfo).port;
  }

  /** Floods: one 100-packet batch of 2000-byte "packets" every 5 ms (40 MB/s: loopback's kernel buffers fill fast). */
  function floodSource(): PacketSource & { stop(): void } {
    const listeners = new Set<(p: StampedPacket[]) => void>();
    // A valid TOC byte (code 0, 20 ms CELT), then filler: the muxer only reads the TOC.
    const data = new Uint8Array(2000);
    data[0] = 0xfc;
    let seq = 0;
    const timer = setInterval(() => {
      const batch: StampedPacket[] = [];
      for (let i = 0; i < 100; i++, seq++) batch.push({ seq, pts: seq * 960, data, control: 0 });
      for (const l of listeners) l(batch);
    }, 5);
    return {
      id: 'flood',
      format: { codec: 'opus', sampleRate: 48000, channels: 2, frameMs: 20, preSkip: OPUS_PRE_SKIP },
      subscribe(l) {
        listeners.add(l);
        return () => listeners.delete(l);
      },
      stop: () => clearInterval(timer),
    };
  }

  it('sends a well-formed PUT and reports a refusal with the server reason, then retries', async () => {
    const requests: string[] = [];
    const port = await fakeServer((sock, req) => {
      requests.push(req);
      sock.end('HTTP/1.0 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nMountpoint in use');
    });
    const logs: Log[] = [];
    const src = new IcecastSource({
      url: `http://source:hunter2@127.0.0.1:${port}/live.ogg`,
      source: floodSource(),
      name: 'River\r\nX-Evil: 1',
      description: 'test',
      genre: 'ambient',
      log: (level, msg) => logs.push({ level, msg }),
      backoff: { initialMs: 50, maxMs: 100 },
    });
    src.start();
    await until('two attempts', () => requests.length >= 2, 3000);
    await src.stop();
    expect(src.state).toBe('stopped');
    const req = requests[0]!;
    expect(req.startsWith('PUT /live.ogg HTTP/1.1\r\n')).toBe(true);
    expect(req).toContain(`\r\nHost: 127.0.0.1:${port}\r\n`);
    expect(req).toContain(`\r\nAuthorization: Basic ${Buffer.from('source:hunter2').toString('base64')}\r\n`);
    expect(req).toContain('\r\nContent-Type: audio/ogg\r\n');
    expect(req).toContain('\r\nExpect: 100-continue\r\n');
    expect(req).toContain('\r\nIce-Name: River X-Evil: 1\r\n'); // no header injection
    expect(req).toContain('\r\nIce-Genre: ambient\r\n');
    expect(req).toContain('\r\nIce-Audio-Info: channels=2;samplerate=48000\r\n');
    const warn = logs.find((l) => l.level === 'warn');
    expect(warn?.msg).toMatch(/403 Forbidden: Mountpoint in use/);
    expect(warn?.msg).not.toContain('hunter2');
    expect(src.lastError).toMatch(/Mountpoint in use/);
  });

  it('drops a stalled connection when its buffer passes the bound, and reconnects', async () => {
    let accepted = 0;
    const port = await fakeServer((sock) => {
      accepted++;
      sock.write('HTTP/1.1 100 Continue\r\n\r\n');
      sock.pause(); // never read: the kernel buffers fill, then the socket's own buffer grows
    });
    const flood = floodSource();
    const logs: Log[] = [];
    const src = new IcecastSource({
      url: `http://source:pw@127.0.0.1:${port}/live.ogg`,
      source: flood,
      log: (level, msg) => logs.push({ level, msg }),
      backoff: { initialMs: 50, maxMs: 100 },
      maxBufferedBytes: 64 * 1024,
    });
    const states = new Set<IcecastState>();
    const watch = setInterval(() => states.add(src.state), 2);
    src.start();
    try {
      await until('a reconnect after a backpressure drop', () => accepted >= 2 && src.state === 'streaming', 8000);
      expect(logs.some((l) => l.level === 'warn' && /not keeping up/.test(l.msg))).toBe(true);
      expect(src.connections).toBeGreaterThanOrEqual(2);
      expect(states.has('waiting')).toBe(true);
    } finally {
      clearInterval(watch);
      flood.stop();
      await src.stop();
    }
  });

  it('times out a server that never answers', async () => {
    const port = await fakeServer(() => {});
    const logs: Log[] = [];
    const src = new IcecastSource({
      url: `http://source:pw@127.0.0.1:${port}/live.ogg`,
      source: floodSource(),
      log: (level, msg) => logs.push({ level, msg }),
      backoff: { initialMs: 1000, maxMs: 1000 },
      handshakeTimeoutMs: 200,
    });
    src.start();
    await until('the timeout', () => src.state === 'waiting', 2000);
    expect(src.lastError).toMatch(/no response/);
    await src.stop();
  });
});

describe.runIf(!ICECAST && IN_CI)('icecast2 (CI)', () => {
  it('is installed', () => {
    expect.fail('icecast2 is not installed but CI is set: .ci/run must apt-get install icecast2');
  });
});

describe.skipIf(!ICECAST)('IcecastSource with a real icecast2', () => {
  const PASSWORD = `pw${Math.floor(Math.random() * 1e9)}`;
  let ice: Icecast;
  const sine = new SineSource();
  let src: IcecastSource;
  const logs: Log[] = [];
  const mount = '/riverrun.ogg';

  beforeAll(async () => {
    ice = new Icecast(await freePort(), PASSWORD);
    await ice.start();
    sine.start();
    src = new IcecastSource({
      url: `http://source:${PASSWORD}@127.0.0.1:${ice.port}${mount}`,
      source: sine,
      name: 'riverrun test',
      description: 'a 440 Hz sine',
      genre: 'test',
      log: (level, msg) => logs.push({ level, msg }),
      backoff: { initialMs: 200, maxMs: 1000 },
    });
  }, 20_000);

  afterAll(async () => {
    sine.stop();
    await src?.stop();
    await ice?.cleanup();
  });

  it('streams real Opus: a listener gets Ogg Opus that decodes to the tone', async () => {
    src.start();
    expect(src.state).toBe('connecting');
    await until('streaming', () => src.state === 'streaming', 5000);
    await until('the mount to be listed', async () => (await ice.status())?.includes(mount) === true, 3000, 100);
    await sleep(500);
    const got = await listen(`${ice.base}${mount}`, 2500);
    expect(got.status).toBe(200);
    expect(got.contentType).toMatch(/ogg/);
    const pages = expectOpusStream(got.bytes);
    expect(new Set(pages.map((p) => p.serial)).size).toBe(1);
    const d = await decodeOgg(got.bytes);
    expect(d.errors).toBe(0);
    expect(d.sampleRate).toBe(48000);
    expect(d.samples).toBeGreaterThan(48000); // > 1 s (burst + 2.5 s live)
    expect(d.rms).toBeGreaterThan(0.1); // 0.3 amplitude sine: 0.21
    expect(d.freq).toBeGreaterThan(430);
    expect(d.freq).toBeLessThan(450);
  }, 20_000);

  it('another source on the same mount is refused with the server reason', async () => {
    const other: Log[] = [];
    const dup = new IcecastSource({
      url: `http://source:${PASSWORD}@127.0.0.1:${ice.port}${mount}`,
      source: sine,
      log: (level, msg) => other.push({ level, msg }),
      backoff: { initialMs: 5000, maxMs: 5000 },
    });
    dup.start();
    await until('the refusal', () => dup.state === 'waiting', 3000);
    await dup.stop();
    expect(other[0]?.msg).toMatch(/403.*Mountpoint in use/);
    expect(src.state).toBe('streaming');
  }, 10_000);

  it('wrong password: a clear 401 error, and it keeps retrying', async () => {
    const bad: Log[] = [];
    const wrong = new IcecastSource({
      url: `http://source:not-${PASSWORD}@127.0.0.1:${ice.port}/other.ogg`,
      source: sine,
      log: (level, msg) => bad.push({ level, msg }),
      backoff: { initialMs: 100, maxMs: 200 },
    });
    wrong.start();
    try {
      await until('two refusals', () => bad.filter((l) => l.level === 'warn').length >= 2, 5000);
      expect(bad[0]!.msg).toMatch(/401 Authentication Required.*check the source user and password/);
      expect(bad[0]!.msg).not.toContain(`not-${PASSWORD}`);
      expect(wrong.lastError).toMatch(/401/);
      expect(['waiting', 'connecting']).toContain(wrong.state);
      expect(wrong.connections).toBe(0);
      expect(await ice.status()).not.toContain('/other.ogg');
    } finally {
      await wrong.stop();
    }
    expect(wrong.state).toBe('stopped');
  }, 10_000);

  it('reconnects after icecast2 is killed and restarted; a new listener gets audio again', async () => {
    expect(src.state).toBe('streaming');
    const before = src.connections;
    await ice.kill('SIGKILL');
    await until('the drop to be noticed', () => src.state !== 'streaming', 5000);
    expect(logs.some((l) => l.level === 'warn' && /lost connection/.test(l.msg))).toBe(true);
    await sleep(300); // a refused dial or two while icecast2 is down
    await ice.start();
    await until('streaming again', () => src.state === 'streaming', 5000);
    expect(src.connections).toBe(before + 1);
    await until('the mount to be listed again', async () => (await ice.status())?.includes(mount) === true, 3000, 100);
    await sleep(500);
    const got = await listen(`${ice.base}${mount}`, 2000);
    expect(got.status).toBe(200);
    expectOpusStream(got.bytes);
    const d = await decodeOgg(got.bytes);
    expect(d.errors).toBe(0);
    expect(d.samples).toBeGreaterThan(24000);
    expect(d.rms).toBeGreaterThan(0.1);
  }, 25_000);

  it('stop() ends the stream with an EOS page and the mount disappears', async () => {
    expect(src.state).toBe('streaming');
    const listening = listen(`${ice.base}${mount}`, 5000);
    await sleep(700);
    const t0 = Date.now();
    await src.stop();
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(src.state).toBe('stopped');
    expect(sine.subscribers).toBe(0);
    await until('the mount to disappear', async () => (await ice.status())?.includes(mount) === false, 3000, 100);
    const got = await listening;
    expect(got.ended).toBe(true); // icecast2 closed the listener when the source left
    const { pages } = oggPages(got.bytes);
    expect(pages.at(-1)!.flags & 0x04).toBe(0x04); // EOS
  }, 15_000);
});

describe.skipIf(!ICECAST)('a Riverrun channel relayed by a real icecast2', () => {
  const PASSWORD = `pw${Math.floor(Math.random() * 1e9)}`;
  let ice: Icecast;
  let server: RiverrunServer;
  const work = mkdtempSync(path.join(os.tmpdir(), 'riverrun-icecast-server-'));

  beforeAll(async () => {
    ice = new Icecast(await freePort(), PASSWORD);
    await ice.start();
    writeRandomCheckpoint(path.join(work, 'tiny'), 'tiny', { seed: 0 });
    const channels = path.join(work, 'channels.json');
    writeFileSync(
      channels,
      JSON.stringify([
        {
          id: 'radio',
          name: 'Test Radio',
          prompts: [{ text: 'calm piano', weight: 1 }],
          icecast: `http://source:${PASSWORD}@127.0.0.1:${ice.port}/radio.ogg`,
        },
      ]),
    );
    const config = parseServeArgs(
      ['--model', path.join(work, 'tiny'), '--channels', channels, '--port', '0', '--host', '127.0.0.1', '--lead-ms', '1000'],
      {},
    )!;
    server = await startServer(config, { log: pino({ level: 'silent' }), cacheDir: path.join(work, 'cache') });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await ice?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('the channel configured with an icecast URL reaches icecast2 listeners as Ogg Opus', async () => {
    await until('the mount to be listed', async () => (await ice.status())?.includes('/radio.ogg') === true, 10_000, 100);
    const got = await listen(`${ice.base}/radio.ogg`, 2500);
    expect(got.status).toBe(200);
    const pages = expectOpusStream(got.bytes);
    expect(pages.length).toBeGreaterThan(3);
    const d = await decodeOgg(got.bytes);
    expect(d.errors).toBe(0);
    expect(d.sampleRate).toBe(48000);
    expect(d.samples).toBeGreaterThan(48000);
    expect(d.rms).toBeGreaterThan(0);
  }, 30_000);
});
