// One piece, over 400 lines: the page's tests share one Chromium, one server and the jitter-buffer harness.
// The web client (clients/web): the jitter buffer's logic in Node, then the real page in Debian's
// Chromium (playwright-core) against a real server running the tiny random preset. The page's audio
// graph is measured through its test hook (window.riverrun): frames the AudioWorklet rendered against
// wall time, RMS, underruns, and the control version of the audio playing.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { type RiverrunServer, startServer } from '../src/server/server.ts';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = new URL('..', import.meta.url).pathname;
const ARTIFACTS = join(ROOT, 'test-artifacts');
const SR = 48000;

// ------------------------------------------------------------------------ jitter buffer, in Node

interface JitterBufferLike {
  state: string;
  fill: number;
  target: number;
  rate: number;
  underruns: number;
  skippedFrames: number;
  driftFrames: number;
  playingPts: number;
  playingControl: number;
  push(channels: Float32Array[], pts: number, control: number): void;
  pull(l: Float32Array, r: Float32Array, n: number): void;
  pause(): void;
  resume(): void;
  reset(): void;
}
type JitterBufferCtor = new (sampleRate: number, options?: Record<string, number>) => JitterBufferLike;

// A plain-JS module (it is also the AudioWorklet): imported by URL, so it is not type-checked here.
const workletUrl = pathToFileURL(join(ROOT, 'clients/web/jitter-processor.js')).href;
const { JitterBuffer, DEFAULTS } = (await import(workletUrl)) as { JitterBuffer: JitterBufferCtor; DEFAULTS: Record<string, number> };

function tone(frames: number, start: number, amp = 0.5): Float32Array[] {
  const l = new Float32Array(frames);
  for (let i = 0; i < frames; i++) l[i] = amp * Math.sin((2 * Math.PI * 440 * (start + i)) / SR);
  return [l, l.slice()];
}

/** Plays `seconds` of a 20 ms-packet producer whose clock runs at `speed` (1.001 = 0.1 % fast). */
function simulate(
  jb: JitterBufferLike,
  seconds: number,
  speed: number,
  burstPackets = 1,
): { maxFill: number; minFill: number; settledMin: number; settledMax: number } {
  const l = new Float32Array(128);
  const r = new Float32Array(128);
  const chunk = 960 * burstPackets;
  const audio = tone(chunk, 0);
  let produced = 0;
  let pts = 0;
  let maxFill = 0;
  let minFill = Infinity;
  let settledMin = Infinity;
  let settledMax = 0;
  const total = seconds * SR;
  for (let t = 0; t < total; t += 128) {
    // The producer has made speed * t frames by now; it delivers them in whole bursts.
    while (produced + chunk <= (t + 128) * speed + chunk) {
      jb.push(audio, pts, 0);
      produced += chunk;
      pts += chunk;
    }
    jb.pull(l, r, 128);
    if (t > 2 * SR) {
      maxFill = Math.max(maxFill, jb.fill);
      minFill = Math.min(minFill, jb.fill);
    }
    if (t > total / 2) {
      settledMin = Math.min(settledMin, jb.fill);
      settledMax = Math.max(settledMax, jb.fill);
    }
  }
  const ms = (f: number): number => (f * 1000) / SR;
  return { maxFill: ms(maxFill), minFill: ms(minFill), settledMin: ms(settledMin), settledMax: ms(settledMax) };
}

describe('jitter buffer (clients/web/jitter-processor.js)', () => {
  it('waits for the target fill, then plays the audio in order', () => {
    const jb = new JitterBuffer(SR);
    const l = new Float32Array(128);
    const r = new Float32Array(128);
    expect(jb.state).toBe('idle');
    jb.push(tone(9600, 0), 0, 7); // 200 ms < 300 ms target
    jb.pull(l, r, 128);
    expect(jb.state).toBe('buffering');
    expect(l.every((v) => v === 0)).toBe(true);
    jb.push(tone(9600, 9600), 9600, 8); // 400 ms
    jb.pull(l, r, 128);
    expect(jb.state).toBe('playing');
    // After the 5 ms fade-in (240 frames), the output is the input: frames 512..639 on the 5th quantum.
    for (let i = 0; i < 4; i++) jb.pull(l, r, 128);
    const expected = tone(128, 512)[0]!;
    for (let i = 0; i < 128; i++) expect(l[i]).toBeCloseTo(expected[i]!, 6);
    expect(jb.playingControl).toBe(7);
    expect(jb.playingPts).toBe(640);
  });

  it('counts an underrun, outputs silence and re-buffers to the target before resuming', () => {
    const jb = new JitterBuffer(SR);
    const l = new Float32Array(128);
    const r = new Float32Array(128);
    jb.push(tone(SR / 2, 0), 0, 0); // 500 ms
    let played = 0;
    while (jb.state !== 'buffering' || played === 0) {
      jb.pull(l, r, 128);
      played += 128;
      if (played > SR) break;
    }
    expect(jb.underruns).toBe(1);
    expect(played).toBeGreaterThanOrEqual(SR / 2 - 128);
    expect(played).toBeLessThanOrEqual(SR / 2 + 128);
    jb.push(tone(9600, 0), 24000, 1); // 200 ms: not enough
    jb.pull(l, r, 128);
    expect(jb.state).toBe('buffering');
    expect(l.every((v) => v === 0)).toBe(true);
    // The underrun raised the target from 300 to 400 ms.
    jb.push(tone(4800, 0), 33600, 1); // 300 ms: still not enough
    jb.pull(l, r, 128);
    expect(jb.state).toBe('buffering');
    jb.push(tone(4800, 0), 38400, 1); // 400 ms: plays again
    jb.pull(l, r, 128);
    expect(jb.state).toBe('playing');
    expect(jb.underruns).toBe(1);
  });

  it('adapts the target: +100 ms per underrun up to 1 s, -50 ms per 30 s without one', () => {
    const jb = new JitterBuffer(SR);
    const l = new Float32Array(128);
    const r = new Float32Array(128);
    const targetMs = (): number => (jb.target * 1000) / SR;
    for (let k = 0; k < 10; k++) {
      jb.push(tone(SR * 1.2, 0), 0, 0);
      while (jb.underruns === k) jb.pull(l, r, 128);
    }
    expect(jb.underruns).toBe(10);
    expect(targetMs()).toBe(1000);
    // 61 s of steady real-time packets, no underrun: two decay steps.
    const s = simulate(jb, 61, 1);
    expect(jb.underruns).toBe(10);
    expect(targetMs()).toBe(900);
    expect(s.minFill).toBeGreaterThan(700);
  });

  it('pause keeps the buffer and counts no underrun; reset forgets it', () => {
    const jb = new JitterBuffer(SR);
    const l = new Float32Array(128);
    const r = new Float32Array(128);
    jb.push(tone(SR, 0), 0, 0);
    jb.pull(l, r, 128);
    jb.pause();
    const fill = jb.fill;
    for (let i = 0; i < 1000; i++) jb.pull(l, r, 128);
    expect(jb.fill).toBe(fill);
    expect(jb.underruns).toBe(0);
    jb.resume();
    jb.pull(l, r, 128);
    expect(jb.state).toBe('playing');
    jb.reset();
    expect(jb.fill).toBe(0);
    expect(jb.state).toBe('idle');
  });

  it('caps the fill: a burst of 5 s drops the oldest audio down to 2 s', () => {
    const jb = new JitterBuffer(SR);
    jb.push(tone(5 * SR, 0), 0, 0);
    expect((jb.fill * 1000) / SR).toBeCloseTo(DEFAULTS.capToMs!, 0);
    expect((jb.skippedFrames * 1000) / SR).toBeCloseTo(3000, 0);
  });

  it('drift correction holds the fill near the target when the sender clock is 0.1 % fast or slow', () => {
    // Without correction, 0.1 % over 10 minutes is +-600 ms: the buffer would overflow its band or run dry.
    for (const speed of [1.001, 0.999]) {
      const jb = new JitterBuffer(SR);
      const s = simulate(jb, 600, speed);
      expect(jb.underruns).toBe(0);
      const target = DEFAULTS.targetMs!;
      const band = DEFAULTS.bandMs!;
      // Settled: the 2 s minimum stays within the band around the target (plus one packet of sawtooth).
      expect(s.settledMin).toBeGreaterThan(target - band - 25);
      expect(s.settledMax).toBeLessThan(target + band + 25);
      // The correction made up for the drift: 0.1 % of 600 s = 600 ms, minus what the fill absorbed.
      const driftMs = (jb.driftFrames * 1000) / SR;
      expect(Math.abs(driftMs)).toBeGreaterThan(400);
      expect(Math.sign(driftMs)).toBe(speed > 1 ? 1 : -1);
    }
  });

  it('drains a large initial fill (a server lead) slowly, without underruns, with bursty arrivals', () => {
    const jb = new JitterBuffer(SR);
    jb.push(tone(SR * 1.5, 0), 0, 0); // the channel's lead arrives at once
    const s = simulate(jb, 900, 1, 25); // then 500 ms bursts in real time, as the server sends them
    expect(jb.underruns).toBe(0);
    // The excess (about 1.1 s above target + band) is drained at 0.25 %, 2.5 ms per second: ~7.5 minutes.
    expect(s.settledMax).toBeLessThan(DEFAULTS.targetMs! + DEFAULTS.bandMs! + 520);
    expect(s.settledMin).toBeGreaterThan(DEFAULTS.targetMs! - DEFAULTS.bandMs! - 25);
  });
});

// ------------------------------------------------------------------------- the page, in Chromium

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && !process.env.CI) {
  console.warn(
    `[web.test] SKIPPED the browser tests: ${CHROMIUM} is missing (apt-get install chromium). CI installs it and fails without it.`,
  );
}

describe.runIf(!haveChromium && !!process.env.CI)('web client in Chromium (CI)', () => {
  it('has Debian chromium installed', () => {
    expect.fail(`${CHROMIUM} is missing: CI must install Debian's chromium package (see .ci/run)`);
  });
});

describe.skipIf(!haveChromium)(`web client in Chromium${haveChromium ? '' : ` (skipped: ${CHROMIUM} missing)`}`, () => {
  let work: string;
  let server: RiverrunServer;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'riverrun-web-'));
    writeRandomCheckpoint(join(work, 'tiny'), 'tiny', { seed: 0 });
    const config = parseServeArgs(
      [
        '--model',
        join(work, 'tiny'),
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--token',
        'op-secret:operator',
        '--anonymous-role',
        'session',
        '--lead-ms',
        '1000',
        '--window-seconds',
        '4',
      ],
      {},
    )!;
    server = await startServer(config, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--autoplay-policy=no-user-gesture-required',
        '--use-fake-ui-for-media-stream',
      ],
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** What the page exposes as window.riverrun (clients/web/app.js), as far as the tests read it. */
  interface Hook {
    stats(): Stats | null;
    statsHistory(): Stats[];
    lastControl: number;
    nowPlaying(): { control: number; prompts: { text: string; weight: number }[] | null; config: Record<string, number> | null } | null;
    audioInfo(): { sampleRate: number; state: string; baseLatency: number; outputLatency: number };
    analyserRms(): number;
    change(): { appliedAfterMs: number; heardAfterMs: number };
    timeline(): { connectAt: number; setupAt: number; firstAudioAt: number; playingAt: number };
    errors(): unknown[];
    controls(): { control: number; prompts: { text: string; weight: number }[]; config: Record<string, number>; fromSetup?: boolean }[];
  }
  /** The page's global scope (no DOM lib in this project's tsconfig). */
  interface G {
    riverrun: Hook;
    innerWidth: number;
    document: { documentElement: { scrollWidth: number } };
  }

  interface Stats {
    framesRendered: number;
    receivedAt: number;
    sampleRate: number;
    state: string;
    fillMs: number;
    underruns: number;
    rms: number;
    rate: number;
    playingControl: number;
    driftMs: number;
  }

  async function openPage(
    options: Parameters<Browser['newContext']>[0] = {},
  ): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`);
    });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    await page.goto(server.url);
    return { context, page, problems };
  }

  const stats = (page: Page): Promise<Stats | null> => page.evaluate(() => (globalThis as unknown as G).riverrun.stats());

  async function waitPlaying(page: Page): Promise<void> {
    await page.waitForFunction(() => (globalThis as unknown as G).riverrun.stats()?.state === 'playing', null, { timeout: 20_000 });
  }

  it('listens to a channel: non-silent audio rendered at 48 kHz in real time, few underruns', async () => {
    const { context, page, problems } = await openPage({ viewport: { width: 1280, height: 900 } });
    await expect.poll(() => page.getByRole('button', { name: 'Listen to Riverrun Radio' }).count(), { timeout: 10_000 }).toBe(1);
    await page.getByRole('button', { name: 'Listen to Riverrun Radio' }).click();
    await waitPlaying(page);
    // Let the start settle, then measure over ~4 s of wall time.
    await page.waitForTimeout(1000);
    const s0 = (await stats(page))!;
    await page.waitForTimeout(4000);
    const s1 = (await stats(page))!;
    const wallS = (s1.receivedAt - s0.receivedAt) / 1000;
    const frames = s1.framesRendered - s0.framesRendered;
    const ratio = frames / (wallS * SR);
    const history = await page.evaluate(() => (globalThis as unknown as G).riverrun.statsHistory());
    const window4s = history.filter((h) => h.receivedAt > s0.receivedAt && h.receivedAt <= s1.receivedAt);
    const rmsMean = window4s.reduce((a, h) => a + h.rms, 0) / window4s.length;
    const silentPeriods = window4s.filter((h) => h.rms === 0).length;
    const tl = await page.evaluate(() => (globalThis as unknown as G).riverrun.timeline());
    console.log(
      `[web.test] channel start: setup_complete after ${(tl.setupAt! - tl.connectAt!).toFixed(0)} ms, first audio after ${(tl.firstAudioAt! - tl.connectAt!).toFixed(0)} ms, playing after ${(tl.playingAt! - tl.connectAt!).toFixed(0)} ms`,
    );
    const audio = await page.evaluate(() => (globalThis as unknown as G).riverrun.audioInfo());
    const analyserRms = await page.evaluate(() => (globalThis as unknown as G).riverrun.analyserRms());
    console.log(
      `[web.test] channel: ${frames} frames in ${wallS.toFixed(3)} s of wall time = ${(ratio * 100).toFixed(2)} % of 48 kHz; ` +
        `underruns ${s0.underruns} -> ${s1.underruns}; fill ${s0.fillMs.toFixed(0)} -> ${s1.fillMs.toFixed(0)} ms; ` +
        `rate ${s1.rate}; mean RMS ${rmsMean.toFixed(4)} (${silentPeriods}/${window4s.length} silent 100 ms periods); analyser RMS ${analyserRms.toFixed(4)}; ` +
        `context ${audio.sampleRate} Hz, base latency ${(audio.baseLatency * 1000).toFixed(1)} ms, output latency ${(audio.outputLatency * 1000).toFixed(1)} ms`,
    );
    expect(audio.sampleRate).toBe(48000);
    expect(s1.sampleRate).toBe(48000);
    expect(audio.state).toBe('running');
    expect(ratio).toBeGreaterThan(0.9);
    expect(ratio).toBeLessThan(1.1);
    expect(rmsMean).toBeGreaterThan(0.001);
    expect(silentPeriods).toBeLessThanOrEqual(1);
    expect(analyserRms).toBeGreaterThan(0);
    expect(s1.underruns - s0.underruns).toBeLessThanOrEqual(1);
    expect(s1.playingControl).toBeGreaterThanOrEqual(0);
    // The random-model notice, the stats and the now-playing line are on the page.
    await expect.poll(() => page.getByText('This server runs a random model: it sounds like noise').isVisible()).toBe(true);
    // A channel nobody steered plays control 0, which the server announced after setup_complete.
    await expect.poll(() => page.locator('#now-playing').innerText()).toMatch(/now playing:\s*control \d+/);
    expect(await page.locator('#st-buffer').innerText()).toMatch(/\d+ ms/);
    expect(problems).toEqual([]);
    await context.close();
  }, 60_000);

  it('a personal stream: a prompt changed in the mixer is applied and heard (now playing shows it)', async () => {
    const { context, page, problems } = await openPage({ viewport: { width: 1280, height: 900 } });
    await page.getByRole('button', { name: 'Start my own stream' }).click();
    await waitPlaying(page);
    // Control 0 is the server's `applied` (the session's starting prompts and config), not made up by the page.
    const control0 = (await page.evaluate(() => (globalThis as unknown as G).riverrun.controls())).find((c) => c.control === 0);
    expect(control0).toMatchObject({ prompts: [{ text: 'calm ambient piano with soft pads', weight: 1 }], config: { topK: 250 } });
    expect(control0).not.toHaveProperty('fromSetup');
    const first = page.getByLabel('Prompt 1 text');
    await first.fill('bright glass arpeggios');
    await page.getByLabel('Transition').fill('0');
    await page.getByRole('button', { name: 'Apply prompts' }).click();
    await page.waitForFunction(
      () => {
        const r = (globalThis as unknown as G).riverrun;
        return r.lastControl >= 1 && r.nowPlaying()?.prompts?.[0]?.text === 'bright glass arpeggios';
      },
      null,
      { timeout: 20_000 },
    );
    const np = await page.evaluate(() => (globalThis as unknown as G).riverrun.nowPlaying());
    expect(np).toMatchObject({
      prompts: [{ text: 'bright glass arpeggios', weight: 1 }],
      config: { temperature: 1, topK: 250, topP: 0, guidance: 3, seed: 0 },
    });
    await expect.poll(() => page.locator('#now-prompts').innerText()).toContain('bright glass arpeggios');
    const change = await page.evaluate(() => (globalThis as unknown as G).riverrun.change());
    const s = (await stats(page))!;
    console.log(
      `[web.test] session: change applied after ${change.appliedAfterMs.toFixed(0)} ms, heard after ${change.heardAfterMs.toFixed(0)} ms; fill ${s.fillMs.toFixed(0)} ms, underruns ${s.underruns}`,
    );
    // A config change goes through too (the whole config).
    await page.getByLabel('Temperature').fill('0.8');
    await page.getByRole('button', { name: 'Apply config' }).click();
    await page.waitForFunction(() => (globalThis as unknown as G).riverrun.nowPlaying()?.config?.temperature === 0.8, null, {
      timeout: 20_000,
    });
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(ARTIFACTS, 'web.png'), fullPage: true });
    const errors = await page.evaluate(() => (globalThis as unknown as G).riverrun.errors());
    expect(errors).toEqual([]);
    expect(problems).toEqual([]);
    await context.close();
  }, 60_000);

  it('on a server without anonymous access: the list asks for a token, and lists the channels with one', async () => {
    const config = parseServeArgs(
      ['--model', join(work, 'tiny'), '--port', '0', '--host', '127.0.0.1', '--token', 'ear-secret:listener', '--anonymous-role', 'none'],
      {},
    )!;
    const closed = await startServer(config, { log: pino({ level: 'silent' }), cacheDir: join(work, 'cache') });
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(closed.url);
      await page.getByText('this server needs an access token').waitFor({ timeout: 10_000 });
      await page.locator('#token').fill('ear-secret');
      await page.locator('#token').press('Enter');
      await page.getByRole('button', { name: 'Listen to Riverrun Radio' }).waitFor({ timeout: 10_000 });
      expect(await page.getByRole('link', { name: 'Ogg' }).getAttribute('href')).toBe('/v1/channels/radio.ogg?token=ear-secret');
    } finally {
      await context.close();
      await closed.close();
    }
  }, 60_000);

  it('fits a phone screen (390x844): no horizontal overflow', async () => {
    const { context, page, problems } = await openPage({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    await page.getByRole('button', { name: 'Listen to Riverrun Radio' }).click();
    await waitPlaying(page);
    await page.waitForTimeout(1500);
    const { scrollWidth, innerWidth } = await page.evaluate(() => {
      const g = globalThis as unknown as G;
      return { scrollWidth: g.document.documentElement.scrollWidth, innerWidth: g.innerWidth };
    });
    expect(innerWidth).toBe(390);
    expect(scrollWidth).toBeLessThanOrEqual(innerWidth);
    expect(await page.getByText('This server runs a random model: it sounds like noise').isVisible()).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'web-phone.png'), fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  }, 60_000);
});
