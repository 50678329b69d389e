// One piece, over 400 lines: the fetch protocol (repo info, a pinned commit, resumable verified downloads, the
// manifest) shares one context and reads top to bottom.
//
// Downloads a MusicGen checkpoint from the Hugging Face hub (or a mirror named by HF_ENDPOINT).
//
// Layout: files land directly in the target directory with their repo-relative names, so the
// directory can be handed to `--model DIR` as is. Partial downloads live in `<file>.incomplete`
// and are resumed with a Range request; finished files are verified (size, and sha256 for LFS
// files) before being renamed into place. A small manifest (`.riverrun-fetch.json`) remembers
// what was verified so a re-run skips finished files without re-hashing gigabytes.

import type { Hash } from 'node:crypto';
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { type ErrorRegistry, RiverrunError } from '../errors.ts';
import { defaultCacheRoot } from './cache-root.ts';

export const HUB_ERRORS = {
  HUB_BAD_REPO: { meaning: 'The repo id is not of the form owner/name.' },
  HUB_UNAUTHORIZED: { meaning: 'The hub answered 401/403: a private or gated repo, a missing or rejected token.' },
  HUB_NOT_FOUND: { meaning: 'The hub answered 404: the repo, revision or file does not exist.' },
  HUB_NO_SAFETENSORS: { meaning: 'The repo has no safetensors weights (e.g. only pytorch_model.bin).' },
  HUB_MISSING_FILE: { meaning: 'A required or requested file is not in the repo.' },
  HUB_CHECKSUM: { meaning: 'A downloaded file has the wrong size or sha256.' },
  HUB_NETWORK: { meaning: 'The endpoint is unreachable, or the connection dropped mid-download.' },
  HUB_HTTP: { meaning: 'The hub answered another unexpected HTTP status.' },
  HUB_PROTOCOL: { meaning: 'The hub answered something that cannot be parsed.' },
} as const satisfies ErrorRegistry;

export type HubErrorCode = keyof typeof HUB_ERRORS;

export class HubError extends RiverrunError<HubErrorCode> {}

export interface FetchProgress {
  file: string;
  /**
   * Bytes of `file` on disk so far, including bytes resumed from an earlier run. Drops back to 0
   * when a download has to start over (server ignored the Range, or a resumed prefix was bad).
   */
  received: number;
  /** Expected size in bytes, or 0 when the hub did not say. */
  total: number;
}

export interface FetchCheckpointOptions {
  /** Hub repo id, e.g. `facebook/musicgen-small`. */
  repo: string;
  /** Branch, tag or commit; default `main`. */
  revision?: string;
  /** Target directory; default {@link hubCacheDir}. */
  dir?: string;
  /** Hub base URL; default `$HF_ENDPOINT` or `https://huggingface.co`. */
  endpoint?: string;
  /** Access token for private/gated repos; default `$HF_TOKEN`. */
  token?: string;
  /** Exact list of repo files to download instead of the default MusicGen selection. */
  files?: string[];
  onProgress?: (p: FetchProgress) => void;
  signal?: AbortSignal;
}

export interface FetchCheckpointResult {
  /** Absolute directory holding the checkpoint (what `--model DIR` expects). */
  dir: string;
  /** Repo-relative names of the files present in `dir`, in download order. */
  files: string[];
}

/** Files a MusicGen checkpoint needs besides the weights; each is fetched only if the repo has it. */
const OPTIONAL_FILES = ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'spiece.model'];
const SINGLE_WEIGHTS = 'model.safetensors';
const SHARD_INDEX = 'model.safetensors.index.json';
const MANIFEST = '.riverrun-fetch.json';
const MAX_REDIRECTS = 10;
const SHA256_RE = /^[0-9a-f]{64}$/;

/**
 * Where a fetched checkpoint lands by default: `<cache root>/models/<owner>--<name>`, with `@<revision>` appended
 * when the revision is not `main` (slashes in the revision, as in `refs/pr/1`, become `--`).
 */
export function hubCacheDir(repo: string, revision = 'main'): string {
  const base = repo.replaceAll('/', '--');
  const suffix = revision === 'main' ? '' : `@${revision.replaceAll('/', '--')}`;
  return join(defaultCacheRoot(), 'models', base + suffix);
}

export async function fetchCheckpoint(options: FetchCheckpointOptions): Promise<FetchCheckpointResult> {
  const repo = options.repo.trim();
  validateRepo(repo);
  const revision = options.revision ?? 'main';
  const endpoint = (options.endpoint ?? nonEmpty(process.env.HF_ENDPOINT) ?? 'https://huggingface.co').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(endpoint) || !URL.canParse(endpoint)) {
    throw new HubError('HUB_NETWORK', `invalid hub endpoint "${endpoint}": expected an http(s) URL (check HF_ENDPOINT)`);
  }
  const token = options.token ?? nonEmpty(process.env.HF_TOKEN);
  const dir = resolve(options.dir ?? hubCacheDir(repo, revision));
  const ctx: Ctx = { repo, revision, endpoint, token, signal: options.signal, onProgress: options.onProgress };

  const info = await fetchRepoInfo(ctx);
  // Download everything from the commit the revision pointed at when we started, so a push to
  // the branch halfway through cannot leave us with a mix of two versions.
  ctx.commit = info.sha ?? revision;

  const siblings = new Set(info.siblings);
  const wanted = options.files ?? selectDefaultFiles(repo, revision, siblings);
  for (const f of wanted) {
    checkRelativePath(repo, f);
    if (!siblings.has(f)) {
      throw new HubError('HUB_MISSING_FILE', `${repo}@${revision} has no file ${f}`);
    }
  }

  await mkdir(dir, { recursive: true });
  const manifest = await loadManifest(dir);
  const done: string[] = [];
  const fetchOne = async (file: string): Promise<void> => {
    await fetchFile(ctx, dir, file, manifest);
    done.push(file);
  };

  for (const file of wanted) await fetchOne(file);

  // Sharded checkpoints list their shards in the index; fetch them once we have it.
  if (options.files === undefined && wanted.includes(SHARD_INDEX)) {
    for (const shard of await readShardList(repo, join(dir, SHARD_INDEX))) {
      checkRelativePath(repo, shard);
      if (!siblings.has(shard)) {
        throw new HubError('HUB_MISSING_FILE', `${repo}@${revision}: ${SHARD_INDEX} names shard ${shard}, which the repo does not have`);
      }
      if (!done.includes(shard)) await fetchOne(shard);
    }
  }

  return { dir, files: done };
}

// ---------------------------------------------------------------------------------------------

interface Ctx {
  repo: string;
  revision: string;
  /** Commit sha the downloads are pinned to (falls back to the revision name). */
  commit?: string;
  endpoint: string;
  token: string | undefined;
  signal: AbortSignal | undefined;
  onProgress: ((p: FetchProgress) => void) | undefined;
}

interface FileMeta {
  size: number | undefined;
  etag: string | undefined;
  /** Set for LFS files, whose ETag is the sha256 of the content. */
  sha256: string | undefined;
}

interface ManifestEntry {
  size: number;
  mtimeMs: number;
  etag?: string;
  sha256: string;
}

interface Manifest {
  files: Record<string, ManifestEntry>;
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

function validateRepo(repo: string): void {
  const part = '[A-Za-z0-9][A-Za-z0-9._-]*';
  if (!new RegExp(`^(${part}/)?${part}$`).test(repo) || repo.includes('..')) {
    throw new HubError('HUB_BAD_REPO', `invalid Hugging Face repo id "${repo}": expected owner/name, e.g. facebook/musicgen-small`);
  }
}

// Repo file names come from the server; never let one escape the target directory.
function checkRelativePath(repo: string, file: string): void {
  const parts = file.split('/');
  if (file === '' || file.startsWith('/') || file.includes('\\') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new HubError('HUB_PROTOCOL', `${repo}: refusing unsafe file name "${file}"`);
  }
}

function selectDefaultFiles(repo: string, revision: string, siblings: Set<string>): string[] {
  if (!siblings.has('config.json')) {
    throw new HubError('HUB_MISSING_FILE', `${repo}@${revision} has no config.json; is it a MusicGen checkpoint?`);
  }
  let weights: string;
  if (siblings.has(SINGLE_WEIGHTS)) weights = SINGLE_WEIGHTS;
  else if (siblings.has(SHARD_INDEX)) weights = SHARD_INDEX;
  else {
    const other = [...siblings].filter((f) => /\.(bin|pt|pth|ckpt|h5|msgpack)$/.test(f));
    const found = other.length > 0 ? ` (it only has ${other.join(', ')})` : '';
    throw new HubError(
      'HUB_NO_SAFETENSORS',
      `${repo}@${revision} has no ${SINGLE_WEIGHTS} or ${SHARD_INDEX}${found}. Riverrun needs safetensors weights; ` +
        `pick a revision that has them or convert the checkpoint to safetensors.`,
    );
  }
  // Small files first so a bad repo fails fast, before gigabytes of weights.
  return ['config.json', ...OPTIONAL_FILES.filter((f) => siblings.has(f)), weights];
}

async function readShardList(repo: string, indexPath: string): Promise<string[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (err) {
    throw new HubError('HUB_PROTOCOL', `${repo}: cannot parse ${SHARD_INDEX}: ${(err as Error).message}`, { cause: err });
  }
  const map = (parsed as { weight_map?: unknown }).weight_map;
  if (typeof map !== 'object' || map === null) {
    throw new HubError('HUB_PROTOCOL', `${repo}: ${SHARD_INDEX} has no weight_map`);
  }
  const shards = new Set<string>();
  for (const v of Object.values(map)) if (typeof v === 'string') shards.add(v);
  return [...shards].sort();
}

function apiUrl(ctx: Ctx): string {
  return `${ctx.endpoint}/api/models/${ctx.repo}/revision/${encodeURIComponent(ctx.revision)}`;
}

function resolveUrl(ctx: Ctx, file: string): string {
  const rev = encodeURIComponent(ctx.commit ?? ctx.revision);
  return `${ctx.endpoint}/${ctx.repo}/resolve/${rev}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

async function fetchRepoInfo(ctx: Ctx): Promise<{ sha: string | undefined; siblings: string[] }> {
  const what = `repo info for ${ctx.repo}@${ctx.revision}`;
  const { res } = await hubRequest(ctx, apiUrl(ctx), 'GET', { Accept: 'application/json' }, what, undefined, () => true);
  await throwForStatus(ctx, res, undefined);
  let body: unknown;
  try {
    body = await res.json();
  } catch (err) {
    throw new HubError('HUB_PROTOCOL', `${ctx.endpoint} returned invalid JSON for ${what}; is HF_ENDPOINT a Hugging Face hub?`, {
      cause: err,
    });
  }
  const b = body as { sha?: unknown; siblings?: unknown };
  if (!Array.isArray(b.siblings)) {
    throw new HubError('HUB_PROTOCOL', `${ctx.endpoint} returned no file list (siblings) for ${what}`);
  }
  const siblings = b.siblings
    .map((s: unknown) => (s as { rfilename?: unknown } | null)?.rfilename)
    .filter((s): s is string => typeof s === 'string');
  return { sha: typeof b.sha === 'string' && b.sha !== '' ? b.sha : undefined, siblings };
}

/**
 * Sends a request, following redirects by hand: HEAD requests stop at the first hop that carries
 * the LFS metadata headers (the CDN behind the redirect knows nothing about the repo), and the
 * token is only sent to the hub's own origin, never to a CDN on another host.
 */
async function hubRequest(
  ctx: Ctx,
  url: string,
  method: 'GET' | 'HEAD',
  extraHeaders: Record<string, string>,
  what: string,
  file: string | undefined,
  follow: (res: Response) => boolean,
): Promise<{ res: Response; hops: Headers[] }> {
  const hubOrigin = new URL(ctx.endpoint).origin;
  const hops: Headers[] = [];
  let current = url;
  for (let i = 0; ; i++) {
    const headers: Record<string, string> = {
      'User-Agent': 'riverrun (model fetch)',
      // Sizes and hashes refer to the raw bytes; a transparently decompressed body would not match.
      'Accept-Encoding': 'identity',
      ...extraHeaders,
    };
    if (ctx.token !== undefined && new URL(current).origin === hubOrigin) headers.Authorization = `Bearer ${ctx.token}`;
    let res: Response;
    try {
      res = await fetch(current, { method, headers, redirect: 'manual', signal: ctx.signal });
    } catch (err) {
      throw wrapNetworkError(ctx, err, what, file);
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location !== null && follow(res)) {
      hops.push(res.headers);
      await res.body?.cancel().catch(() => undefined);
      if (i >= MAX_REDIRECTS) throw new HubError('HUB_HTTP', `too many redirects while fetching ${what} from ${ctx.endpoint}`);
      current = new URL(location, current).href;
      continue;
    }
    return { res, hops };
  }
}

function wrapNetworkError(ctx: Ctx, err: unknown, what: string, file: string | undefined): unknown {
  if (ctx.signal?.aborted === true || (err as { name?: unknown })?.name === 'AbortError') return err;
  if (err instanceof HubError) return err;
  // Local file-system errors (ENOSPC, EACCES, ...) carry a syscall; pass them through untouched.
  if (typeof (err as { syscall?: unknown })?.syscall === 'string') return err;
  const cause = (err as { cause?: { code?: unknown; message?: unknown } })?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : '';
  const msg = typeof cause?.message === 'string' ? cause.message : String((err as Error)?.message ?? '');
  const detail = code !== '' && !msg.includes(code) ? `${code}: ${msg}` : msg;
  const resume = file !== undefined ? ' Run the command again to resume the download.' : '';
  return new HubError(
    'HUB_NETWORK',
    `network error fetching ${what} from ${ctx.endpoint} (${detail || String(err)}).${resume} ` +
      `Check your connection, or set HF_ENDPOINT to a reachable hub mirror.`,
    { cause: err },
  );
}

async function throwForStatus(ctx: Ctx, res: Response, file: string | undefined): Promise<void> {
  if (res.ok) return;
  const serverMsg = await errorMessageOf(res);
  const suffix = serverMsg !== '' ? ` (hub says: ${serverMsg})` : '';
  const target = file !== undefined ? `${file} from ${ctx.repo}@${ctx.revision}` : `${ctx.repo}@${ctx.revision}`;
  const page = `${ctx.endpoint}/${ctx.repo}`;
  if (res.status === 401 || res.status === 403) {
    const tokenAdvice =
      ctx.token === undefined
        ? 'If the repo is private or gated, set HF_TOKEN to a Hugging Face access token'
        : 'The token in HF_TOKEN was rejected or has no access; check HF_TOKEN';
    throw new HubError(
      'HUB_UNAUTHORIZED',
      `access denied (HTTP ${res.status}) fetching ${target}${suffix}. ${tokenAdvice} ` +
        `and accept the model licence on ${page} while logged in. (A 401 can also mean the repo does not exist.)`,
    );
  }
  if (res.status === 404) {
    const errorCode = res.headers.get('x-error-code');
    const what =
      file !== undefined && errorCode !== 'RepoNotFound' && errorCode !== 'RevisionNotFound'
        ? `file ${file} not found in ${ctx.repo}@${ctx.revision}`
        : `repo ${ctx.repo} or revision ${ctx.revision} not found`;
    throw new HubError('HUB_NOT_FOUND', `${what} on ${ctx.endpoint} (HTTP 404)${suffix}`);
  }
  throw new HubError('HUB_HTTP', `unexpected HTTP ${res.status} fetching ${target} from ${ctx.endpoint}${suffix}`);
}

async function errorMessageOf(res: Response): Promise<string> {
  const header = res.headers.get('x-error-message');
  let text = '';
  try {
    text = await res.text();
  } catch {
    // The message is a nicety; the status already tells what happened.
  }
  if (header !== null && header !== '') return header;
  try {
    const j = JSON.parse(text) as { error?: unknown };
    if (typeof j.error === 'string') return j.error;
  } catch {
    // Not JSON: fall through to the raw text.
  }
  return text.trim().slice(0, 200);
}

function parseEtag(raw: string | null | undefined): string | undefined {
  if (raw === null || raw === undefined) return undefined;
  return raw
    .trim()
    .replace(/^W\//, '')
    .replace(/^"(.*)"$/, '$1');
}

function parseSize(raw: string | null | undefined): number | undefined {
  if (raw === null || raw === undefined || !/^\d+$/.test(raw.trim())) return undefined;
  return Number(raw.trim());
}

/** Learns a file's size and hash from a HEAD on the resolve URL (before any CDN redirect). */
async function fetchFileMeta(ctx: Ctx, file: string): Promise<FileMeta> {
  const what = `${file} from ${ctx.repo}@${ctx.revision}`;
  const hasLinked = (h: Headers): boolean => h.get('x-linked-size') !== null && h.get('x-linked-etag') !== null;
  const { res, hops } = await hubRequest(ctx, resolveUrl(ctx, file), 'HEAD', {}, what, file, (r) => !hasLinked(r.headers));
  const all = [...hops, res.headers];
  const stoppedAtRedirect = res.status >= 300 && res.status < 400 && hasLinked(res.headers);
  if (!stoppedAtRedirect) await throwForStatus(ctx, res, file);

  const first = (name: string): string | null => {
    for (const h of all) {
      const v = h.get(name);
      if (v !== null) return v;
    }
    return null;
  };
  const etag = parseEtag(first('x-linked-etag') ?? res.headers.get('etag'));
  const size = parseSize(first('x-linked-size')) ?? (res.ok ? parseSize(res.headers.get('content-length')) : undefined);
  const lower = etag?.toLowerCase();
  return { size, etag, sha256: lower !== undefined && SHA256_RE.test(lower) ? lower : undefined };
}

async function fetchFile(ctx: Ctx, dir: string, file: string, manifest: Manifest): Promise<void> {
  const dest = join(dir, ...file.split('/'));
  const rel = relative(dir, dest);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel))
    throw new HubError('HUB_PROTOCOL', `${ctx.repo}: refusing unsafe file name "${file}"`);
  const tmp = `${dest}.incomplete`;
  await mkdir(dirname(dest), { recursive: true });

  const meta = await fetchFileMeta(ctx, file);
  const total = meta.size ?? 0;
  const progress = (received: number): void => ctx.onProgress?.({ file, received, total });

  if (await isComplete(dest, meta, manifest.files[file])) {
    progress(total);
    return;
  }

  let start = (await statOrUndefined(tmp))?.size ?? 0;
  if (meta.size !== undefined && start > meta.size) {
    // Longer than the real file: it belongs to some other version; start over.
    await rm(tmp, { force: true });
    start = 0;
  }
  let hash: Hash;
  if (start > 0 && start === meta.size) {
    // An earlier run got every byte but stopped before verifying; nothing left to fetch.
    hash = createHash('sha256');
    await hashFile(tmp, hash, ctx.signal);
  } else {
    hash = await download(ctx, file, tmp, start, progress);
  }
  if (start > 0 && meta.sha256 !== undefined && hash.copy().digest('hex') !== meta.sha256) {
    // The kept prefix may come from another version of the file (or be corrupt): rather than
    // failing, give it one clean download from byte 0 before judging the server.
    await rm(tmp, { force: true });
    hash = await download(ctx, file, tmp, 0, progress);
  }

  const got = (await stat(tmp)).size;
  if (meta.size !== undefined && got < meta.size) {
    throw new HubError(
      'HUB_NETWORK',
      `download of ${file} from ${ctx.repo} ended early at ${got} of ${meta.size} bytes (${ctx.endpoint}). Run the command again to resume.`,
    );
  }
  const digest = hash.digest('hex');
  if (meta.size !== undefined && got !== meta.size) {
    await rm(tmp, { force: true });
    throw new HubError(
      'HUB_CHECKSUM',
      `${file} from ${ctx.repo}: size mismatch, expected ${meta.size} bytes, got ${got}; the partial file was deleted`,
    );
  }
  if (meta.sha256 !== undefined && digest !== meta.sha256) {
    await rm(tmp, { force: true });
    throw new HubError(
      'HUB_CHECKSUM',
      `${file} from ${ctx.repo}: sha256 mismatch, expected ${meta.sha256}, got ${digest}; the download was deleted`,
    );
  }
  await rename(tmp, dest);
  const st = await stat(dest);
  manifest.files[file] = { size: st.size, mtimeMs: st.mtimeMs, etag: meta.etag, sha256: digest };
  await saveManifest(dir, manifest);
  progress(st.size);
}

/**
 * Streams the file into `tmp`, continuing after the `start` bytes already there when the server
 * honours the Range request. Returns the sha256 state over the whole of `tmp`.
 */
async function download(ctx: Ctx, file: string, tmp: string, start: number, progress: (received: number) => void): Promise<Hash> {
  const what = `${file} from ${ctx.repo}@${ctx.revision}`;
  const range: Record<string, string> = start > 0 ? { Range: `bytes=${start}-` } : {};
  let { res } = await hubRequest(ctx, resolveUrl(ctx, file), 'GET', range, what, file, () => true);

  let append = false;
  if (start > 0 && res.status === 206 && contentRangeStart(res.headers.get('content-range')) === start) {
    append = true;
  } else if (start > 0 && res.status === 416) {
    // The partial file is not a prefix the server can continue; fetch the whole thing.
    await res.body?.cancel().catch(() => undefined);
    ({ res } = await hubRequest(ctx, resolveUrl(ctx, file), 'GET', {}, what, file, () => true));
  } else if (start > 0 && res.status === 206) {
    await res.body?.cancel().catch(() => undefined);
    throw new HubError(
      'HUB_PROTOCOL',
      `${ctx.endpoint} answered the range request for ${what} with the wrong range (${res.headers.get('content-range')})`,
    );
  }
  // A 200 to a range request means the server ignored the range: restart from byte 0.
  if (!append) {
    await throwForStatus(ctx, res, file);
    start = 0;
  }
  if (res.body === null) throw new HubError('HUB_PROTOCOL', `${ctx.endpoint} sent no body for ${what}`);
  const h = createHash('sha256');
  // Hashing the kept prefix while the response waits lets us verify without a second full read.
  if (append) {
    try {
      await hashFile(tmp, h, ctx.signal);
    } catch (err) {
      await res.body.cancel().catch(() => undefined);
      throw err;
    }
  }

  let received = start;
  progress(received);
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      received += chunk.length;
      progress(received);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(
      Readable.fromWeb(res.body as WebReadableStream<Uint8Array>),
      tap,
      createWriteStream(tmp, { flags: append ? 'a' : 'w' }),
      ctx.signal !== undefined ? { signal: ctx.signal } : {},
    );
  } catch (err) {
    throw wrapNetworkError(ctx, err, what, file);
  }
  return h;
}

function contentRangeStart(raw: string | null): number | undefined {
  const m = raw === null ? null : /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(raw.trim());
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

async function isComplete(dest: string, meta: FileMeta, entry: ManifestEntry | undefined): Promise<boolean> {
  const st = await statOrUndefined(dest);
  if (st === undefined || !st.isFile()) return false;
  if (meta.size !== undefined && st.size !== meta.size) return false;
  if (entry !== undefined && entry.size === st.size && entry.mtimeMs === st.mtimeMs) {
    // Verified on an earlier run and untouched since: trust it if it is still the hub's version.
    if (meta.sha256 !== undefined) return entry.sha256 === meta.sha256;
    if (meta.etag !== undefined) return entry.etag === meta.etag;
    return true;
  }
  // Not recorded (e.g. copied in by hand): only an LFS hash lets us vouch for it without refetching.
  if (meta.sha256 !== undefined) {
    const h = createHash('sha256');
    await hashFile(dest, h, undefined);
    return h.digest('hex') === meta.sha256;
  }
  return false;
}

async function hashFile(path: string, hash: Hash, signal: AbortSignal | undefined): Promise<void> {
  for await (const chunk of createReadStream(path, signal !== undefined ? { signal } : {})) hash.update(chunk as Buffer);
}

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function loadManifest(dir: string): Promise<Manifest> {
  try {
    const parsed = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Partial<Manifest>;
    if (typeof parsed.files === 'object' && parsed.files !== null) return { files: parsed.files };
  } catch {
    // Missing or corrupt: files will be re-verified (or re-fetched) and the manifest rewritten.
  }
  return { files: {} };
}

async function saveManifest(dir: string, manifest: Manifest): Promise<void> {
  const path = join(dir, MANIFEST);
  await writeFile(`${path}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
}
