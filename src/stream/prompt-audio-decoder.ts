// Audio prompts decoded off the calling thread: the main thread hands the uploaded bytes to one worker
// (prompt-audio-worker.ts) and gets mono audio at the codec's rate back, or the AudioFileError that
// decoding in place would have thrown. A worker that dies fails its pending requests and is replaced on
// the next one.
import type { Worker } from 'node:worker_threads';
import { AUDIO_FILE_ERRORS, AudioFileError, type DecodeAudioOptions } from './audio-file.ts';
import type { PromptAudioReply, PromptAudioRequest } from './prompt-audio-worker.ts';
import { spawnTsWorker } from './ts-worker.ts';

interface Waiting {
  resolve: (audio: Float32Array) => void;
  reject: (err: Error) => void;
}

export class PromptAudioDecoder {
  #worker: Worker | null = null;
  readonly #waiting = new Map<number, Waiting>();
  #next = 0;
  #closed = false;

  /** Decodes, downmixes to mono and resamples to targetRate, as decodeToMono does. */
  decode(bytes: Uint8Array, targetRate: number, options: DecodeAudioOptions = {}): Promise<Float32Array> {
    if (this.#closed) return Promise.reject(new Error('the prompt audio decoder is closed'));
    const id = this.#next++;
    const done = new Promise<Float32Array>((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
    const worker = this.#ensureWorker();
    worker.ref();
    worker.postMessage({ id, bytes, targetRate, options } satisfies PromptAudioRequest);
    return done;
  }

  /** Requests in flight. */
  get pending(): number {
    return this.#waiting.size;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = null;
    if (worker) await worker.terminate();
    this.#failAll(new Error('the prompt audio decoder is closed'));
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = spawnTsWorker(new URL('./prompt-audio-worker.ts', import.meta.url), null);
    worker.on('message', (reply: PromptAudioReply) => this.#settle(reply));
    worker.on('error', (err) => this.#lost(worker, err));
    worker.on('exit', (code) => this.#lost(worker, new Error(`prompt audio worker exited with code ${code}`)));
    this.#worker = worker;
    return worker;
  }

  #settle(reply: PromptAudioReply): void {
    const w = this.#waiting.get(reply.id);
    if (!w) return;
    this.#waiting.delete(reply.id);
    if (this.#waiting.size === 0) this.#worker?.unref(); // an idle decoder never keeps the process alive
    if ('audio' in reply) {
      w.resolve(reply.audio);
      return;
    }
    const { code, message } = reply.error;
    w.reject(
      code !== undefined && code in AUDIO_FILE_ERRORS
        ? new AudioFileError(code as keyof typeof AUDIO_FILE_ERRORS, message)
        : new Error(message),
    );
  }

  #lost(worker: Worker, err: Error): void {
    if (this.#worker !== worker) return;
    this.#worker = null;
    this.#failAll(err);
  }

  #failAll(err: Error): void {
    for (const w of this.#waiting.values()) w.reject(err);
    this.#waiting.clear();
  }
}
