// `riverrun listen`: record a channel of a Riverrun server to an Ogg Opus file (the packets as received)
// or a WAV file (decoded, 48 kHz float), through the SDK (clients/sdk). Also the recorder that
// `riverrun session` uses.
import { closeSync, openSync, writeSync } from 'node:fs';
import { extname } from 'node:path';
import { type AudioMessage, type PcmFrame, RiverrunClient, type SessionSpec, type SetupCompleteMessage } from '../../clients/sdk/index.ts';
import { PACKETS_PER_SECOND, SAMPLE_RATE } from '../protocol/constants.ts';
import { OggOpusMuxer } from '../stream/ogg-muxer.ts';
import { encodeWavFloat32 } from '../stream/wav.ts';
import { parseCommandLine } from './command-line.ts';

const LISTEN_USAGE = `Usage: riverrun listen [--url ws://HOST:PORT] --channel ID [--seconds N] [--token T] --out FILE.ogg|FILE.wav

Record a channel of a Riverrun server (protocol v1 over WebSocket).

  --url URL          server (default ws://localhost:8080; /v1/ws is added when the URL has no path)
  --channel ID       channel to listen to, e.g. radio
  --seconds N        stop after N seconds of audio (N x 50 packets of 20 ms); default: until Ctrl-C
  --token T          access token (env RIVERRUN_TOKEN)
  --out FILE         .ogg / .opus: Ogg Opus, the packets as received (no re-encoding);
                     .wav: decoded to 32-bit float PCM, 48 kHz, the channel's 1 or 2 channels

Ctrl-C (or SIGTERM) ends the file cleanly. The connection is re-established with backoff if it drops.`;

export const DEFAULT_URL = 'ws://localhost:8080';

export type OutputFormat = 'ogg' | 'wav';

/** The output format from the file name, or null when the extension is not one we write. */
export function outputFormat(path: string): OutputFormat | null {
  const ext = extname(path).toLowerCase();
  if (ext === '.ogg' || ext === '.opus' || ext === '.oga') return 'ogg';
  if (ext === '.wav') return 'wav';
  return null;
}

/** Parses a --seconds value: a positive number, or throws a message. */
export function parseSeconds(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new Error(`--seconds must be a positive number (got ${JSON.stringify(v)})`);
  return n;
}

// ---------------------------------------------------------------------------------------------------
// Output files

interface AudioFileWriter {
  /** Packets (20 ms each) written so far. */
  readonly packets: number;
  /** Seconds of audio written so far. */
  readonly seconds: number;
  finish(): void;
}

/**
 * Ogg Opus: the packets as they arrive, pages of 5 packets, EOS on finish. The newest packet is held
 * until the next batch or finish(), so that the EOS page carries the last packet and the end position
 * (RFC 7845: no empty EOS page, whatever the packet count).
 */
class OggWriter implements AudioFileWriter {
  private readonly fd: number;
  private readonly muxer: OggOpusMuxer;
  private held: Uint8Array | null = null;
  packets = 0;

  constructor(path: string, setup: SetupCompleteMessage) {
    this.muxer = new OggOpusMuxer({
      channels: setup.audio.channels,
      preSkip: setup.audio.preSkip,
      tags: { ENCODER: 'riverrun listen', ...(setup.channel !== undefined && { TITLE: setup.channel }) },
    });
    this.fd = openSync(path, 'w');
    writeSync(this.fd, this.muxer.headers());
  }

  get seconds(): number {
    return this.packets / PACKETS_PER_SECOND;
  }

  write(packets: readonly Uint8Array[]): void {
    const nonEmpty = packets.filter((p) => p.length > 0);
    if (nonEmpty.length === 0) return;
    const ready = [...(this.held ? [this.held] : []), ...nonEmpty.slice(0, -1)];
    this.held = nonEmpty.at(-1)!;
    const pages = this.muxer.push(ready.map((data) => ({ data })));
    if (pages.length > 0) writeSync(this.fd, pages);
    this.packets += nonEmpty.length;
  }

  finish(): void {
    writeSync(this.fd, this.muxer.end(this.held ? [{ data: this.held }] : []));
    this.held = null;
    closeSync(this.fd);
  }
}

/** WAV, 32-bit float: the header first with sizes patched on finish, so nothing is held in memory. */
class WavWriter implements AudioFileWriter {
  private readonly fd: number;
  private dataBytes = 0;
  packets = 0;

  constructor(
    path: string,
    private readonly channels: number,
  ) {
    this.fd = openSync(path, 'w');
    writeSync(this.fd, encodeWavFloat32(new Float32Array(0), SAMPLE_RATE, channels));
  }

  get seconds(): number {
    return this.dataBytes / (4 * this.channels * SAMPLE_RATE);
  }

  write(frame: PcmFrame): void {
    const n = frame.samples;
    const out = new Float32Array(n * this.channels);
    for (let c = 0; c < this.channels; c++) {
      const data = frame.channelData[c] ?? frame.channelData[0]!;
      for (let i = 0; i < n; i++) out[i * this.channels + c] = data[i]!;
    }
    writeSync(this.fd, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
    this.dataBytes += out.byteLength;
    this.packets++;
  }

  finish(): void {
    // The sizes encodeWavFloat32 wrote for no samples, now for the data written (offsets as it lays them out).
    const at = (value: number, position: number): void => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(Math.min(value, 0xffffffff), 0);
      writeSync(this.fd, b, 0, 4, position);
    };
    at(50 + this.dataBytes, 4); // RIFF size
    at(this.dataBytes / (4 * this.channels), 46); // fact: samples per channel
    at(this.dataBytes, 54); // data size
    closeSync(this.fd);
  }
}

// ---------------------------------------------------------------------------------------------------
// Recording

export interface RecordOptions {
  /** For messages: "riverrun listen". */
  command: string;
  url: string;
  token?: string;
  target: { listen: string } | { session: SessionSpec };
  /** Stop after this much audio (seconds x 50 packets); undefined: until a signal. */
  seconds?: number;
  out: string;
  format: OutputFormat;
  /** Called once connected (a session's steering from stdin); returns the function that detaches it. */
  attach?: (client: RiverrunClient, log: (line: string) => void) => () => void;
}

/**
 * Connects, writes the audio to `out` until `seconds` of audio or SIGINT / SIGTERM, then ends the file
 * cleanly. Rejects when the first connection fails, or when the connection ends for good while recording
 * (the file is finished first).
 */
export async function record(options: RecordOptions): Promise<void> {
  const log = (line: string): void => {
    process.stderr.write(`${options.command}: ${line}\n`);
  };
  const limit = options.seconds === undefined ? Number.POSITIVE_INFINITY : Math.max(1, Math.round(options.seconds * PACKETS_PER_SECOND));
  const client = new RiverrunClient();
  let writer: OggWriter | WavWriter | null = null;
  let format: SetupCompleteMessage['audio'] | null = null;
  let stopped = false;
  let detach: (() => void) | null = null;
  let finished!: () => void;
  let failed!: (err: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    finished = resolve;
    failed = reject;
  });

  const stop = (err?: Error): void => {
    if (stopped) return;
    stopped = true;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    detach?.();
    if (writer !== null) {
      writer.finish();
      log(`wrote ${options.out}: ${writer.seconds.toFixed(2)} s of audio (${writer.packets} packets)`);
    }
    void client.close().then(() => (err ? failed(err) : finished()));
  };
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    signalled = true;
    log(writer === null ? `${signal}: stopping` : `${signal}: finishing ${options.out}`);
    stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  client.on('setup', (setup) => {
    if (stopped) return;
    const a = setup.audio;
    if (format === null) {
      format = a;
      try {
        writer = options.format === 'ogg' ? new OggWriter(options.out, setup) : new WavWriter(options.out, a.channels);
      } catch (err) {
        stop(new Error(`cannot write ${options.out}: ${(err as Error).message}`));
        return;
      }
      const what = 'listen' in options.target ? `channel ${setup.channel ?? options.target.listen}` : `session ${setup.sessionId}`;
      log(
        `recording ${what} (${setup.model.name}${setup.model.random ? ', random weights' : ''}, ${a.channels === 2 ? 'stereo' : 'mono'}) to ${options.out}`,
      );
    } else if (a.channels !== format.channels) {
      stop(new Error(`the audio format changed after reconnecting (${format.channels} → ${a.channels} channels)`));
    }
  });
  client.on('audio', (msg: AudioMessage) => {
    if (stopped || !(writer instanceof OggWriter)) return;
    const take = msg.packets.slice(0, Math.max(0, limit - writer.packets));
    writer.write(take);
    if (writer.packets >= limit) stop();
  });
  client.on('pcm', (frame) => {
    if (stopped || !(writer instanceof WavWriter)) return;
    writer.write(frame);
    if (writer.packets >= limit) stop();
  });
  client.on('error', (e) => log(`${e.fatal ? 'fatal ' : ''}error ${e.code}${e.field ? ` (${e.field})` : ''}: ${e.message}`));
  client.on('reconnecting', (e) => log(`reconnecting in ${(e.delayMs / 1000).toFixed(1)} s (attempt ${e.attempt})`));
  client.on('reconnect', (e) => log(`reconnected (${e.setup.sessionId})`));
  client.on('close', (e) => {
    if (e.willReconnect) log(`connection lost (${e.code}${e.reason ? ` ${e.reason}` : ''})`);
    else if (!stopped && format !== null)
      stop(new Error(`connection closed (${e.code}${e.error ? ` ${e.error.code}` : e.reason ? ` ${e.reason}` : ''})`));
  });

  try {
    await client.connect({ url: options.url, token: options.token, decode: options.format === 'wav', ...options.target });
  } catch (err) {
    stop();
    await done.catch(() => {});
    if (signalled) return;
    throw new Error(`cannot connect to ${options.url}: ${(err as Error).message}`);
  }
  if (!stopped && options.attach !== undefined) detach = options.attach(client, log);
  await done;
}

// ---------------------------------------------------------------------------------------------------
// riverrun listen

export async function runListen(args: string[]): Promise<void> {
  const line = parseCommandLine('listen', LISTEN_USAGE, args, {
    url: { type: 'string' },
    channel: { type: 'string' },
    seconds: { type: 'string' },
    token: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (!line) return;
  const { values, fail } = line;
  if (!values.channel) fail('--channel ID is required');
  if (!values.out) fail('--out FILE.ogg|FILE.wav is required');
  const format = outputFormat(values.out!) ?? fail(`--out must end in .ogg, .opus or .wav (got ${JSON.stringify(values.out)})`);
  let seconds: number | undefined;
  try {
    seconds = parseSeconds(values.seconds);
  } catch (err) {
    fail((err as Error).message);
  }
  const url = checkUrl(values.url ?? DEFAULT_URL, fail);
  await record({
    command: 'riverrun listen',
    url,
    token: values.token ?? process.env.RIVERRUN_TOKEN,
    target: { listen: values.channel! },
    seconds,
    out: values.out!,
    format,
  });
}

/** The URL as given, after checking that the SDK can use it (ws, wss, http, https). */
export function checkUrl(url: string, fail: (msg: string) => never): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return fail(`--url must be a URL like ws://HOST:PORT (got ${JSON.stringify(url)})`);
  }
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(u.protocol)) fail(`--url must start with ws:// or wss:// (got ${JSON.stringify(url)})`);
  return url;
}
