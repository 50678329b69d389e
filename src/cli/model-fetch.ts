// `riverrun model fetch REPO [--revision R] [--dir D]`: downloads a MusicGen checkpoint from the
// Hugging Face hub and prints the directory to pass to `--model DIR`.

import { parseArgs } from 'node:util';
import { fetchCheckpoint } from '../models/hub.ts';
import type { FetchProgress } from '../models/hub.ts';
import { UsageError } from './usage-error.ts';

export const MODEL_FETCH_USAGE = `Usage: riverrun model fetch REPO [--revision R] [--dir D]

Download a MusicGen checkpoint (safetensors) from the Hugging Face hub.

  REPO              hub repo id, e.g. facebook/musicgen-small
  -r, --revision R  branch, tag or commit (default: main)
  -d, --dir D       target directory (default: $RIVERRUN_CACHE/models/<owner>--<name>,
                    RIVERRUN_CACHE defaulting to ~/.cache/riverrun)
  -h, --help        show this help

Environment: HF_TOKEN (private or gated repos), HF_ENDPOINT (hub mirror).
Interrupted downloads resume where they stopped when the command is run again.
Prints the checkpoint directory on stdout; pass it to --model.`;


/** Where the command writes; tests swap these for buffers. */
export interface ModelFetchIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown; isTTY?: boolean };
  signal?: AbortSignal;
}

export async function runModelFetch(args: string[], io: ModelFetchIo = { stdout: process.stdout, stderr: process.stderr }): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        revision: { type: 'string', short: 'r' },
        dir: { type: 'string', short: 'd' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(`riverrun model fetch: ${(err as Error).message}`, MODEL_FETCH_USAGE);
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.stdout.write(`${MODEL_FETCH_USAGE}\n`);
    return;
  }
  if (positionals.length === 0) throw new UsageError('riverrun model fetch: missing REPO (e.g. facebook/musicgen-small)', MODEL_FETCH_USAGE);
  if (positionals.length > 1) throw new UsageError(`riverrun model fetch: expected one REPO, got ${positionals.join(' ')}`, MODEL_FETCH_USAGE);
  if (values.revision === '') throw new UsageError('riverrun model fetch: --revision must not be empty', MODEL_FETCH_USAGE);
  if (values.dir === '') throw new UsageError('riverrun model fetch: --dir must not be empty', MODEL_FETCH_USAGE);

  const bar = new ProgressReporter(io.stderr);
  let result;
  try {
    result = await fetchCheckpoint({
      repo: positionals[0] as string,
      ...(values.revision !== undefined ? { revision: values.revision } : {}),
      ...(values.dir !== undefined ? { dir: values.dir } : {}),
      onProgress: (p) => bar.update(p),
      ...(io.signal !== undefined ? { signal: io.signal } : {}),
    });
  } finally {
    bar.end();
  }
  io.stderr.write(`fetched ${result.files.length} files into ${result.dir}\n`);
  io.stdout.write(`${result.dir}\n`);
}

/**
 * On a TTY: one status line per file, rewritten in place with `\r` (at most ~10 times a second).
 * Otherwise (logs, CI): a line when a file starts, every 10% of large files, and when it is done.
 */
class ProgressReporter {
  private current: string | undefined;
  private lastDraw = 0;
  private lastDecile = 0;
  private startedAt = 0;
  private startBytes = 0;
  private finished = new Set<string>();
  private readonly tty: boolean;

  constructor(private readonly out: { write(chunk: string): unknown; isTTY?: boolean }) {
    this.tty = out.isTTY === true;
  }

  update(p: FetchProgress): void {
    if (this.finished.has(p.file)) {
      if (p.received >= p.total) return;
      // The downloader started this file over (e.g. a corrupt resumed prefix): report it afresh.
      this.finished.delete(p.file);
    }
    const now = Date.now();
    if (p.file !== this.current) {
      this.end();
      this.current = p.file;
      this.startedAt = now;
      this.startBytes = p.received;
      this.lastDecile = p.total > 0 ? Math.floor((p.received / p.total) * 10) : 0;
      this.lastDraw = 0;
      if (p.total > 0 && p.received >= p.total) {
        // First report already complete: the file was on disk from an earlier run.
        this.finish(p, 'already present');
        return;
      }
      if (!this.tty) {
        const resumed = p.received > 0 ? `, resuming at ${formatBytes(p.received)}` : '';
        this.out.write(`${p.file}: fetching ${p.total > 0 ? formatBytes(p.total) : 'unknown size'}${resumed}\n`);
      }
    }
    const done = p.total > 0 && p.received >= p.total;
    if (this.tty) {
      if (done || now - this.lastDraw >= 100) {
        this.lastDraw = now;
        this.out.write(`\r\x1b[K${this.line(p, now)}`);
      }
    } else if (p.total >= 10 * 1024 * 1024) {
      const decile = Math.floor((p.received / p.total) * 10);
      if (decile > this.lastDecile && decile < 10) {
        this.lastDecile = decile;
        this.out.write(`${p.file}: ${decile * 10}% (${formatBytes(p.received)} / ${formatBytes(p.total)})\n`);
      }
    }
    if (done) this.finish(p, 'done');
  }

  /** Closes the current TTY line (e.g. before an error message is printed below it). */
  end(): void {
    if (this.current !== undefined && !this.finished.has(this.current) && this.tty) this.out.write('\n');
    this.current = undefined;
  }

  private finish(p: FetchProgress, how: string): void {
    this.finished.add(p.file);
    this.current = undefined;
    const line = `${p.file}: ${how} (${formatBytes(p.received)})`;
    this.out.write(this.tty ? `\r\x1b[K${line}\n` : `${line}\n`);
  }

  private line(p: FetchProgress, now: number): string {
    const secs = (now - this.startedAt) / 1000;
    const rate = secs > 0.5 ? `  ${formatBytes((p.received - this.startBytes) / secs)}/s` : '';
    if (p.total <= 0) return `${p.file}  ${formatBytes(p.received)}${rate}`;
    const frac = Math.min(1, p.received / p.total);
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    return `${p.file}  [${bar}] ${(frac * 100).toFixed(0).padStart(3)}%  ${formatBytes(p.received)} / ${formatBytes(p.total)}${rate}`;
  }
}

function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}
