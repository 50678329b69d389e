// `riverrun model fetch REPO [--revision R] [--dir D]`: downloads a MusicGen checkpoint from the
// Hugging Face hub and prints the directory to pass to `--model DIR`.

import type { FetchProgress } from '../models/hub.ts';
import { fetchCheckpoint } from '../models/hub.ts';
import { parseCommandLine } from './command-line.ts';
import { formatBytes, progressBar } from './progress.ts';

const MODEL_FETCH_USAGE = `Usage: riverrun model fetch REPO [--revision R] [--dir D]

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
  const line = parseCommandLine(
    'model fetch',
    MODEL_FETCH_USAGE,
    args,
    {
      revision: { type: 'string', short: 'r' },
      dir: { type: 'string', short: 'd' },
      help: { type: 'boolean', short: 'h' },
    },
    { positionals: true, out: io.stdout },
  );
  if (!line) return;
  const { values, positionals, fail } = line;
  if (positionals.length === 0) fail('missing REPO (e.g. facebook/musicgen-small)');
  if (positionals.length > 1) fail(`expected one REPO, got ${positionals.join(' ')}`);
  if (values.revision === '') fail('--revision must not be empty');
  if (values.dir === '') fail('--dir must not be empty');

  const bar = new ProgressReporter(io.stderr);
  let result: Awaited<ReturnType<typeof fetchCheckpoint>>;
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
    return `${p.file}  ${progressBar(p.received, p.total, (now - this.startedAt) / 1000, this.startBytes)}`;
  }
}
