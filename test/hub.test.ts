// One piece, over 400 lines: every fetch case runs against the same local fake hub and CDN defined at its top.
// fetchCheckpoint / `riverrun model fetch` against a local fake of the Hugging Face hub: an API
// server plus a separate "CDN" server (another origin) that LFS files are redirected to.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { runModelFetch } from '../src/cli/model-fetch.ts';
import { UsageError } from '../src/cli/usage-error.ts';
import type { FetchProgress } from '../src/models/hub.ts';
import { fetchCheckpoint, HubError, hubCacheDir } from '../src/models/hub.ts';

interface FixtureFile {
  content: Buffer;
  lfs: boolean;
}
interface Fixture {
  sha: string;
  files: Record<string, FixtureFile>;
  /** When set, the hub answers 401 unless this bearer token is sent. */
  token?: string;
}
interface Seen {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  range: string | undefined;
  authorization: string | undefined;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

class FakeHub {
  readonly repos = new Map<string, Fixture>();
  readonly seen: Seen[] = [];
  /** CDN serves content that does not match the advertised sha256. */
  lie = false;
  /** CDN ignores Range headers and always answers 200 with the whole file. */
  ignoreRange = false;
  /** CDN cuts the connection after this many bytes of the next full (non-range) GET. */
  dropAfter: number | undefined;
  hubUrl = '';
  cdnUrl = '';
  private hub: Server = createServer((q, s) => this.onHub(q, s));
  private cdn: Server = createServer((q, s) => this.onCdn(q, s));

  async start(): Promise<void> {
    this.hubUrl = await listen(this.hub);
    this.cdnUrl = await listen(this.cdn);
  }

  async stop(): Promise<void> {
    for (const s of [this.hub, this.cdn]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }

  cdnGets(): Seen[] {
    return this.seen.filter((r) => r.server === 'cdn' && r.method === 'GET');
  }

  private record(server: 'hub' | 'cdn', req: IncomingMessage): void {
    this.seen.push({
      server,
      method: req.method ?? '',
      url: req.url ?? '',
      range: req.headers.range,
      authorization: req.headers.authorization,
    });
  }

  private onHub(req: IncomingMessage, res: ServerResponse) {
    this.record('hub', req);
    const url = new URL(req.url ?? '/', this.hubUrl);
    const parts = url.pathname.split('/').slice(1).map(decodeURIComponent);
    const api = parts[0] === 'api' && parts[1] === 'models' && parts[4] === 'revision';
    const repoId = api ? `${parts[2]}/${parts[3]}` : `${parts[0]}/${parts[1]}`;
    const fx = this.repos.get(repoId);
    if (fx === undefined) return error(res, 404, 'RepoNotFound', 'Repository not found');
    if (fx.token !== undefined && req.headers.authorization !== `Bearer ${fx.token}`) {
      return error(res, 401, 'GatedRepo', 'Access to this model is restricted');
    }
    const rev = api ? parts[5] : parts[3];
    if (rev !== 'main' && rev !== fx.sha) return error(res, 404, 'RevisionNotFound', 'Invalid rev id');
    if (api) {
      const siblings = Object.keys(fx.files).map((rfilename) => ({ rfilename }));
      return json(res, { id: repoId, sha: fx.sha, siblings });
    }
    if (parts[2] !== 'resolve') return error(res, 404, 'EntryNotFound', 'no such route');
    const name = parts.slice(4).join('/');
    const file = fx.files[name];
    if (file === undefined) return error(res, 404, 'EntryNotFound', 'Entry not found');
    res.setHeader('X-Repo-Commit', fx.sha);
    if (file.lfs) {
      // Like the real hub: LFS files redirect to a CDN with the metadata on the redirect itself.
      const hash = sha256(file.content);
      res.writeHead(302, {
        Location: `${this.cdnUrl}/repos/${hash}?signed=1`,
        'X-Linked-Etag': `"${hash}"`,
        'X-Linked-Size': String(file.content.length),
        ETag: `W/"${hash}"`,
        'Content-Length': '0',
      });
      return void res.end();
    }
    res.setHeader('ETag', `"${gitSha1(file.content)}"`);
    serveBytes(req, res, file.content, true);
  }

  private onCdn(req: IncomingMessage, res: ServerResponse) {
    this.record('cdn', req);
    const hash = new URL(req.url ?? '/', this.cdnUrl).pathname.split('/')[2];
    for (const fx of this.repos.values()) {
      for (const f of Object.values(fx.files)) {
        if (f.lfs && sha256(f.content) === hash) {
          let body = f.content;
          if (this.lie) {
            body = Buffer.from(body);
            body[body.length - 1] = (body[body.length - 1] ?? 0) ^ 0xff;
          }
          if (this.dropAfter !== undefined && req.method === 'GET' && req.headers.range === undefined) {
            const n = this.dropAfter;
            this.dropAfter = undefined;
            res.writeHead(200, { 'Content-Length': body.length });
            res.write(body.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 20));
            return;
          }
          return serveBytes(req, res, body, !this.ignoreRange);
        }
      }
    }
    res.writeHead(404).end();
  }
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

function json(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function error(res: ServerResponse, status: number, code: string, message: string): void {
  const text = JSON.stringify({ error: message });
  res.writeHead(status, { 'Content-Type': 'application/json', 'X-Error-Code': code, 'X-Error-Message': message });
  res.end(text);
}

function serveBytes(req: IncomingMessage, res: ServerResponse, body: Buffer, rangeOk: boolean): void {
  const m = rangeOk ? /^bytes=(\d+)-$/.exec(req.headers.range ?? '') : null;
  if (m !== null) {
    const start = Number(m[1]);
    if (start >= body.length) {
      res.writeHead(416, { 'Content-Range': `bytes */${body.length}` });
      return void res.end();
    }
    res.writeHead(206, {
      'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}`,
      'Content-Length': body.length - start,
      'Accept-Ranges': 'bytes',
    });
    return void res.end(req.method === 'HEAD' ? undefined : body.subarray(start));
  }
  res.writeHead(200, { 'Content-Length': body.length, 'Accept-Ranges': rangeOk ? 'bytes' : 'none' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

const text = (s: string): FixtureFile => ({ content: Buffer.from(s), lfs: false });
const blob = (n: number): FixtureFile => ({ content: randomBytes(n), lfs: true });

function musicgenFixture(): Fixture {
  return {
    sha: 'a'.repeat(40),
    files: {
      '.gitattributes': text('*.safetensors filter=lfs\n'),
      'README.md': text('# musicgen\n'),
      'config.json': text('{"model_type":"musicgen"}\n'),
      'generation_config.json': text('{"max_length":1500}\n'),
      'model.safetensors': blob(1_500_000),
      'pytorch_model.bin': blob(1000),
      'tokenizer.json': text('{"version":"1.0"}\n'),
      'tokenizer_config.json': text('{}\n'),
      'special_tokens_map.json': text('{}\n'),
      'spiece.model': blob(5000),
    },
  };
}

let hub: FakeHub;
let tmp: string;

beforeEach(async () => {
  hub = new FakeHub();
  await hub.start();
  hub.repos.set('facebook/musicgen-small', musicgenFixture());
  tmp = await mkdtemp(join(tmpdir(), 'riverrun-hub-'));
  // The developer's own environment must not leak into the tests.
  vi.stubEnv('HF_TOKEN', undefined);
  vi.stubEnv('HF_ENDPOINT', undefined);
  vi.stubEnv('RIVERRUN_CACHE', join(tmp, 'cache'));
});

afterEach(async () => {
  vi.unstubAllEnvs();
  await hub.stop();
  await rm(tmp, { recursive: true, force: true });
});

async function expectHubError(p: Promise<unknown>, code: string): Promise<HubError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HubError);
  expect((err as HubError).code).toBe(code);
  return err as HubError;
}

const fixtureFile = (repo: string, name: string): Buffer => {
  const f = hub.repos.get(repo)?.files[name];
  if (f === undefined) throw new Error(`no fixture ${name}`);
  return f.content;
};

describe('fetchCheckpoint', () => {
  it('downloads the MusicGen files, following the CDN redirect, and verifies them', async () => {
    const dir = join(tmp, 'out');
    const progress: FetchProgress[] = [];
    const result = await fetchCheckpoint({
      repo: 'facebook/musicgen-small',
      dir,
      endpoint: hub.hubUrl,
      onProgress: (p) => progress.push(p),
    });

    expect(result.dir).toBe(dir);
    expect(result.files).toEqual([
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
      'spiece.model',
      'model.safetensors',
    ]);
    for (const f of result.files) {
      expect((await readFile(join(dir, f))).equals(fixtureFile('facebook/musicgen-small', f))).toBe(true);
    }
    const onDisk = await readdir(dir);
    expect(onDisk).not.toContain('pytorch_model.bin');
    expect(onDisk).not.toContain('README.md');
    expect(onDisk.filter((f) => f.endsWith('.incomplete'))).toEqual([]);

    // Pinned to the commit the API reported, and the weights came from the CDN host.
    const resolves = hub.seen.filter((r) => r.server === 'hub' && r.url.includes('/resolve/'));
    expect(resolves.every((r) => r.url.includes(`/resolve/${'a'.repeat(40)}/`))).toBe(true);
    expect(hub.cdnGets().length).toBe(2);

    const last = progress.filter((p) => p.file === 'model.safetensors').at(-1);
    expect(last).toEqual({ file: 'model.safetensors', received: 1_500_000, total: 1_500_000 });
  });

  it('skips files that are already complete on a second run', async () => {
    const dir = join(tmp, 'out');
    await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl });
    hub.seen.length = 0;
    const again = await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl });
    expect(again.files).toContain('model.safetensors');
    expect(hub.seen.filter((r) => r.method === 'GET' && r.url.includes('/resolve/'))).toEqual([]);
    expect(hub.cdnGets()).toEqual([]);
  });

  it('re-verifies a weights file it did not record and re-fetches it if it is wrong', async () => {
    const dir = join(tmp, 'out');
    await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl });
    await rm(join(dir, '.riverrun-fetch.json'));
    await writeFile(join(dir, 'model.safetensors'), randomBytes(1_500_000)); // right size, wrong bytes
    hub.seen.length = 0;
    await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl });
    expect(hub.cdnGets().map((r) => r.url)).toEqual([
      expect.stringContaining(sha256(fixtureFile('facebook/musicgen-small', 'model.safetensors'))),
    ]);
    expect((await readFile(join(dir, 'model.safetensors'))).equals(fixtureFile('facebook/musicgen-small', 'model.safetensors'))).toBe(true);
  });

  it('resumes a partial .incomplete download with a Range request', async () => {
    const dir = join(tmp, 'out');
    const weights = fixtureFile('facebook/musicgen-small', 'model.safetensors');
    await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl, files: ['config.json'] });
    await writeFile(join(dir, 'model.safetensors.incomplete'), weights.subarray(0, 600_000));
    hub.seen.length = 0;

    const progress: FetchProgress[] = [];
    await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl, onProgress: (p) => progress.push(p) });

    const gets = hub.cdnGets();
    expect(gets.length).toBe(2); // spiece.model fresh, model.safetensors resumed
    expect(gets.find((r) => r.url.includes(sha256(weights)))?.range).toBe('bytes=600000-');
    expect((await readFile(join(dir, 'model.safetensors'))).equals(weights)).toBe(true);
    expect(existsSync(join(dir, 'model.safetensors.incomplete'))).toBe(false);
    expect(progress.find((p) => p.file === 'model.safetensors')?.received).toBe(600_000);
  });

  it('keeps the partial file when the connection drops, and resumes it on the next run', async () => {
    const dir = join(tmp, 'out');
    const weights = fixtureFile('facebook/musicgen-small', 'model.safetensors');
    hub.dropAfter = 500_000;
    const err = await expectHubError(
      fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl, files: ['model.safetensors'] }),
      'HUB_NETWORK',
    );
    expect(err.message).toContain('model.safetensors');
    expect(err.message).toContain('resume');
    const partial = await readFile(join(dir, 'model.safetensors.incomplete'));
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.equals(weights.subarray(0, partial.length))).toBe(true);

    hub.seen.length = 0;
    await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl, files: ['model.safetensors'] });
    expect(hub.cdnGets()[0]?.range).toBe(`bytes=${partial.length}-`);
    expect((await readFile(join(dir, 'model.safetensors'))).equals(weights)).toBe(true);
  });

  it('stops on abort without wrapping the AbortError', async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await fetchCheckpoint({
      repo: 'facebook/musicgen-small',
      dir: join(tmp, 'out'),
      endpoint: hub.hubUrl,
      signal: ac.signal,
    }).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(HubError);
    expect((err as Error).name).toBe('AbortError');
  });

  it('starts over once when a resumed download turns out corrupt', async () => {
    const dir = join(tmp, 'out');
    const weights = fixtureFile('facebook/musicgen-small', 'model.safetensors');
    await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl, files: ['config.json'] });
    await writeFile(join(dir, 'model.safetensors.incomplete'), randomBytes(400_000));
    hub.seen.length = 0;
    await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl, files: ['model.safetensors'] });
    expect(hub.cdnGets().map((r) => r.range)).toEqual(['bytes=400000-', undefined]);
    expect((await readFile(join(dir, 'model.safetensors'))).equals(weights)).toBe(true);
  });

  it('restarts from scratch when the server ignores the Range header', async () => {
    const dir = join(tmp, 'out');
    const weights = fixtureFile('facebook/musicgen-small', 'model.safetensors');
    hub.ignoreRange = true;
    await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl, files: ['config.json'] });
    // A stale prefix that does not even match: a 200 must overwrite it, not append to it.
    await writeFile(join(dir, 'model.safetensors.incomplete'), randomBytes(700_000));
    await fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl });
    expect(hub.cdnGets().find((r) => r.url.includes(sha256(weights)))?.range).toBe('bytes=700000-');
    expect((await readFile(join(dir, 'model.safetensors'))).equals(weights)).toBe(true);
  });

  it('detects a checksum mismatch, names the file and leaves no file behind', async () => {
    const dir = join(tmp, 'out');
    hub.lie = true;
    const err = await expectHubError(
      fetchCheckpoint({ repo: 'facebook/musicgen-small', dir, endpoint: hub.hubUrl, files: ['model.safetensors'] }),
      'HUB_CHECKSUM',
    );
    const expected = sha256(fixtureFile('facebook/musicgen-small', 'model.safetensors'));
    expect(err.message).toContain('model.safetensors');
    expect(err.message).toContain(expected);
    expect(err.message).toMatch(/got [0-9a-f]{64}/);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    expect(existsSync(join(dir, 'model.safetensors.incomplete'))).toBe(false);
  });

  it('explains a 401 by pointing at HF_TOKEN and the licence page', async () => {
    hub.repos.set('org/gated', { ...musicgenFixture(), token: 'hf_secret' });
    const err = await expectHubError(
      fetchCheckpoint({ repo: 'org/gated', dir: join(tmp, 'out'), endpoint: hub.hubUrl }),
      'HUB_UNAUTHORIZED',
    );
    expect(err.message).toContain('HF_TOKEN');
    expect(err.message).toContain('org/gated');
    expect(err.message).toContain(`${hub.hubUrl}/org/gated`);
    expect(err.message).toContain('licence');
  });

  it('sends the token as a Bearer header to the hub but not to the CDN', async () => {
    hub.repos.set('org/gated', { ...musicgenFixture(), token: 'hf_secret' });
    await fetchCheckpoint({ repo: 'org/gated', dir: join(tmp, 'a'), endpoint: hub.hubUrl, token: 'hf_secret' });
    const hubReqs = hub.seen.filter((r) => r.server === 'hub');
    expect(hubReqs.length).toBeGreaterThan(0);
    expect(hubReqs.every((r) => r.authorization === 'Bearer hf_secret')).toBe(true);
    expect(hub.seen.filter((r) => r.server === 'cdn').every((r) => r.authorization === undefined)).toBe(true);

    // HF_TOKEN is the default.
    hub.seen.length = 0;
    vi.stubEnv('HF_TOKEN', 'hf_secret');
    await fetchCheckpoint({ repo: 'org/gated', dir: join(tmp, 'b'), endpoint: hub.hubUrl, files: ['config.json'] });
    expect(hub.seen.filter((r) => r.server === 'hub').every((r) => r.authorization === 'Bearer hf_secret')).toBe(true);
  });

  it('says which token is wrong when HF_TOKEN is rejected', async () => {
    hub.repos.set('org/gated', { ...musicgenFixture(), token: 'hf_secret' });
    const err = await expectHubError(
      fetchCheckpoint({ repo: 'org/gated', dir: join(tmp, 'out'), endpoint: hub.hubUrl, token: 'hf_wrong' }),
      'HUB_UNAUTHORIZED',
    );
    expect(err.message).toMatch(/HF_TOKEN was rejected/);
  });

  it('reports a missing repo or revision as HUB_NOT_FOUND', async () => {
    const repoErr = await expectHubError(
      fetchCheckpoint({ repo: 'nobody/nothing', dir: join(tmp, 'out'), endpoint: hub.hubUrl }),
      'HUB_NOT_FOUND',
    );
    expect(repoErr.message).toContain('nobody/nothing');
    expect(repoErr.message).toContain('not found');
    const revErr = await expectHubError(
      fetchCheckpoint({ repo: 'facebook/musicgen-small', revision: 'v9', dir: join(tmp, 'out'), endpoint: hub.hubUrl }),
      'HUB_NOT_FOUND',
    );
    expect(revErr.message).toContain('v9');
  });

  it('rejects a repo without safetensors weights', async () => {
    const fx = musicgenFixture();
    delete fx.files['model.safetensors'];
    hub.repos.set('old/musicgen', fx);
    const err = await expectHubError(
      fetchCheckpoint({ repo: 'old/musicgen', dir: join(tmp, 'out'), endpoint: hub.hubUrl }),
      'HUB_NO_SAFETENSORS',
    );
    expect(err.message).toContain('old/musicgen');
    expect(err.message).toContain('safetensors');
    expect(err.message).toContain('pytorch_model.bin');
    expect(hub.seen.filter((r) => r.url.includes('/resolve/'))).toEqual([]);
  });

  it('fetches the shards of a sharded checkpoint', async () => {
    const fx = musicgenFixture();
    delete fx.files['model.safetensors'];
    fx.files['model-00001-of-00002.safetensors'] = blob(40_000);
    fx.files['model-00002-of-00002.safetensors'] = blob(30_000);
    const index = {
      metadata: { total_size: 70_000 },
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' },
    };
    fx.files['model.safetensors.index.json'] = text(JSON.stringify(index));
    hub.repos.set('big/musicgen', fx);
    const dir = join(tmp, 'out');
    const result = await fetchCheckpoint({ repo: 'big/musicgen', dir, endpoint: hub.hubUrl });
    expect(result.files.slice(-3)).toEqual([
      'model.safetensors.index.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
    ]);
    for (const f of result.files) expect((await readFile(join(dir, f))).equals(fx.files[f]?.content ?? Buffer.alloc(0))).toBe(true);
  });

  it('uses HF_ENDPOINT and the RIVERRUN_CACHE default directory', async () => {
    vi.stubEnv('HF_ENDPOINT', hub.hubUrl);
    const result = await fetchCheckpoint({ repo: 'facebook/musicgen-small', files: ['config.json'] });
    expect(result.dir).toBe(join(tmp, 'cache', 'models', 'facebook--musicgen-small'));
    expect(hubCacheDir('facebook/musicgen-small')).toBe(result.dir);
    expect(hubCacheDir('facebook/musicgen-small', 'refs/pr/1')).toBe(join(tmp, 'cache', 'models', 'facebook--musicgen-small@refs--pr--1'));
    expect(await readFile(join(result.dir, 'config.json'), 'utf8')).toContain('musicgen');
    expect(hub.seen.length).toBeGreaterThan(0);
  });

  it('names the endpoint and HF_ENDPOINT when the hub is unreachable', async () => {
    const url = hub.hubUrl;
    await hub.stop();
    hub = new FakeHub(); // afterEach stops this fresh, never-started one
    const err = await expectHubError(
      fetchCheckpoint({ repo: 'facebook/musicgen-small', dir: join(tmp, 'out'), endpoint: url }),
      'HUB_NETWORK',
    );
    expect(err.message).toContain(url);
    expect(err.message).toContain('HF_ENDPOINT');
  });

  it('rejects a malformed repo id', async () => {
    await expectHubError(fetchCheckpoint({ repo: 'not a repo', endpoint: hub.hubUrl }), 'HUB_BAD_REPO');
    await expectHubError(fetchCheckpoint({ repo: '../etc', endpoint: hub.hubUrl }), 'HUB_BAD_REPO');
  });
});

describe('runModelFetch', () => {
  const capture = (isTTY: boolean) => {
    const out: string[] = [];
    const err: string[] = [];
    return {
      out,
      err,
      io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s), isTTY } },
    };
  };

  it('downloads into --dir and prints the directory', async () => {
    vi.stubEnv('HF_ENDPOINT', hub.hubUrl);
    const dir = join(tmp, 'cli');
    const c = capture(false);
    await runModelFetch(['facebook/musicgen-small', '--dir', dir, '--revision', 'main'], c.io);
    expect(c.out.join('')).toBe(`${dir}\n`);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(true);
    const log = c.err.join('');
    expect(log).toContain('model.safetensors: fetching 1.5 MB');
    expect(log).toContain('model.safetensors: done');
    expect(log).not.toContain('\r');
  });

  it('draws a carriage-return progress line on a TTY', async () => {
    vi.stubEnv('HF_ENDPOINT', hub.hubUrl);
    const c = capture(true);
    await runModelFetch(['facebook/musicgen-small', '-d', join(tmp, 'cli')], c.io);
    expect(c.err.join('')).toContain('\r\u001b[Kmodel.safetensors: done (1.5 MB)\n');
    const c2 = capture(true);
    await runModelFetch(['facebook/musicgen-small', '-d', join(tmp, 'cli')], c2.io);
    expect(c2.err.join('')).toContain('model.safetensors: already present');
  });

  it('rejects unknown flags, a missing repo and extra arguments with usage', async () => {
    const c = capture(false);
    await expect(runModelFetch(['facebook/musicgen-small', '--bogus'], c.io)).rejects.toThrow(/--bogus[\s\S]*Usage: riverrun model fetch/);
    await expect(runModelFetch(['facebook/musicgen-small', '--bogus'], c.io)).rejects.toBeInstanceOf(UsageError);
    await expect(runModelFetch([], c.io)).rejects.toThrow(/missing REPO/);
    await expect(runModelFetch(['a/b', 'c/d'], c.io)).rejects.toThrow(/expected one REPO/);
    expect(hub.seen).toEqual([]);
  });

  it('passes hub errors through', async () => {
    vi.stubEnv('HF_ENDPOINT', hub.hubUrl);
    const c = capture(false);
    await expect(runModelFetch(['nobody/nothing', '--dir', join(tmp, 'x')], c.io)).rejects.toMatchObject({ code: 'HUB_NOT_FOUND' });
  });

  it('prints help', async () => {
    const c = capture(false);
    await runModelFetch(['--help'], c.io);
    expect(c.out.join('')).toContain('Usage: riverrun model fetch REPO');
  });
});
