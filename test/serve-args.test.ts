// `riverrun serve` configuration: flags, environment, channels files, and clear errors.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../src/cli/serve.ts';
import { UsageError } from '../src/cli/usage-error.ts';

const work = mkdtempSync(join(tmpdir(), 'riverrun-serve-args-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function channelsFile(content: unknown): string {
  const path = join(work, `channels-${Math.random()}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('riverrun serve configuration', () => {
  it('defaults: one radio channel, port 8080, anyone may open a session', () => {
    const c = parseServeArgs([], {})!;
    expect(c.port).toBe(8080);
    expect(c.channels.map((x) => x.id)).toEqual(['radio']);
    expect(c.anonymousRole).toBe('session');
    expect(c.modelDir).toBeNull();
  });

  it('per-address, pending-setup and failed-token limits: defaults, flags and range checks', () => {
    const d = parseServeArgs([], {})!.limits;
    expect(d).toMatchObject({
      maxConnectionsPerAddress: 64,
      maxSessionsPerAddress: 4,
      maxPendingSetups: 128,
      maxPendingPerAddress: 8,
      setupTimeoutMs: 5000,
      authFailuresAllowed: 5,
      authBackoffMs: 1000,
    });
    const c = parseServeArgs(
      [
        ...['--max-connections-per-address', '10', '--max-sessions-per-address', '2', '--max-pending-setups', '50'],
        ...['--max-pending-per-address', '3', '--setup-timeout-ms', '2000', '--auth-failures', '0', '--auth-backoff-ms', '250'],
      ],
      {},
    )!.limits;
    expect(c).toMatchObject({
      maxConnectionsPerAddress: 10,
      maxSessionsPerAddress: 2,
      maxPendingSetups: 50,
      maxPendingPerAddress: 3,
      setupTimeoutMs: 2000,
      authFailuresAllowed: 0,
      authBackoffMs: 250,
    });
    expect(() => parseServeArgs(['--max-connections-per-address', '0'], {})).toThrow(/--max-connections-per-address must be an integer/);
    expect(() => parseServeArgs(['--setup-timeout-ms', '50'], {})).toThrow(/--setup-timeout-ms must be an integer in \[100, /);
  });

  it('flags win over the environment; tokens make anonymous connections listeners', () => {
    const c = parseServeArgs(['--port', '9000', '--token', 'abc:operator'], {
      PORT: '7000',
      RIVERRUN_MODEL: '/m',
      RIVERRUN_TOKENS: 'x:listener',
      RIVERRUN_PRECISION: 'q4',
    })!;
    expect(c.port).toBe(9000);
    expect(c.modelDir).toBe('/m');
    expect(c.precision).toBe('q4');
    expect([...c.tokens]).toEqual([['abc', 'operator']]);
    expect(c.anonymousRole).toBe('listener');
    const e = parseServeArgs([], { RIVERRUN_TOKENS: 'x:listener, y:session', RIVERRUN_ALLOWED_ORIGINS: 'https://a.example' })!;
    expect([...e.tokens]).toEqual([
      ['x', 'listener'],
      ['y', 'session'],
    ]);
    expect(e.allowedOrigins).toEqual(['https://a.example']);
  });

  it('rejects bad values with usage errors that say what is wrong', () => {
    const bad: [string[], RegExp][] = [
      [['--precision', 'q3'], /--precision must be one of fp32, q8, q4/],
      [['--device', 'tpu'], /--device must be one of/],
      [['--port', '99999'], /--port must be an integer/],
      [['--token', 'nocolon'], /TOKEN:ROLE/],
      [['--token', 'a:admin'], /TOKEN:ROLE/],
      [['--anonymous-role', 'root'], /--anonymous-role/],
      [['--frobnicate'], /Unknown option/],
      [['stray'], /unexpected argument/],
    ];
    for (const [args, message] of bad) {
      expect(() => parseServeArgs(args, {}), args.join(' ')).toThrow(UsageError);
      expect(() => parseServeArgs(args, {}), args.join(' ')).toThrow(message);
    }
  });

  it('live Ogg limits: --max-ogg-listeners and --ogg-max-behind-kb, with defaults and range checks', () => {
    const d = parseServeArgs([], {})!;
    expect(d.limits.maxOggListeners).toBe(1000);
    expect(d.limits.oggMaxBehindBytes).toBe(128 * 1024);
    const c = parseServeArgs(['--max-ogg-listeners', '5', '--ogg-max-behind-kb', '16'], {})!;
    expect(c.limits.maxOggListeners).toBe(5);
    expect(c.limits.oggMaxBehindBytes).toBe(16 * 1024);
    expect(parseServeArgs(['--max-ogg-listeners', '0'], {})!.limits.maxOggListeners).toBe(0); // Ogg off
    expect(() => parseServeArgs(['--max-ogg-listeners', '1.5'], {})).toThrow(/--max-ogg-listeners must be an integer/);
    expect(() => parseServeArgs(['--ogg-max-behind-kb', '2'], {})).toThrow(/--ogg-max-behind-kb must be an integer in \[4, /);
  });

  it('reads a channels file and checks it with the protocol rules', () => {
    const ok = channelsFile([
      { id: 'lofi', name: 'Lofi', prompts: [{ text: 'lofi beat', weight: 1 }], config: { temperature: 0.9 }, channels: 1 },
    ]);
    const c = parseServeArgs(['--channels', ok], {})!;
    expect(c.channels).toEqual([
      {
        id: 'lofi',
        name: 'Lofi',
        prompts: [{ text: 'lofi beat', weight: 1 }],
        config: { temperature: 0.9 },
        channels: 1,
        icecast: undefined,
        whenIdle: undefined,
        idleAfterMs: undefined,
      },
    ]);
    const idle = channelsFile([{ id: 'a', prompts: [{ text: 'a', weight: 1 }], whenIdle: 'run', idleAfterMs: 0 }]);
    expect(parseServeArgs(['--channels', idle], {})!.channels[0]).toMatchObject({ whenIdle: 'run', idleAfterMs: 0 });
    const cases: [unknown, RegExp][] = [
      ['not json', /cannot read channels file/],
      [[], /non-empty JSON list/],
      [[{ id: 'Bad Id', prompts: [{ text: 'a', weight: 1 }] }], /id must match/],
      [[{ id: 'a', prompts: [] }], /needs at least one prompt/],
      [[{ id: 'a', prompts: [{ text: 'a', weight: 1 }], config: { topP: 3 } }], /config\.topP/],
      [[{ id: 'a', prompts: [{ text: 'a', weight: 1 }], config: { seed: 1, warp: 9 } }], /warp/],
      [[{ id: 'a', prompts: [{ text: 'a', weight: 1 }], extra: 1 }], /unknown field "extra"/],
      [[{ id: 'a', prompts: [{ text: 'a', weight: 1 }], whenIdle: 'sleep' }], /whenIdle must be "pause" or "run", got "sleep"/],
      [[{ id: 'a', prompts: [{ text: 'a', weight: 1 }], idleAfterMs: -1 }], /idleAfterMs must be an integer number of ms/],
      [[{ id: 'a', prompts: [{ text: 'a', weight: 1 }], idleAfterMs: 1.5 }], /idleAfterMs must be an integer number of ms/],
      [[{ id: 'a', prompts: [{ text: 'a', weight: 1 }], idleAfterMs: 1e12 }], /idleAfterMs must be an integer number of ms/],
      [
        [
          { id: 'a', prompts: [{ text: 'a', weight: 1 }] },
          { id: 'a', prompts: [{ text: 'b', weight: 1 }] },
        ],
        /duplicate id a/,
      ],
    ];
    for (const [content, message] of cases) expect(() => parseServeArgs(['--channels', channelsFile(content)], {})).toThrow(message);
  });

  it('--help prints the usage and returns null', () => {
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => out.push(s) > 0) as typeof process.stdout.write;
    try {
      expect(parseServeArgs(['--help'], {})).toBeNull();
    } finally {
      process.stdout.write = write;
    }
    expect(out.join('')).toContain('Usage: riverrun serve');
  });
});
