// Live Ogg Opus over HTTP: `GET /…/stream.ogg` answers an endless chunked audio/ogg body that browsers'
// <audio>, ffplay, VLC and mpv play directly.
//
// Every response has its own OggOpusMuxer (own serial, page sequence and granule from 0): it gets the two
// header pages first, then the pages of the packets the source emits from the moment it joined; never
// the history. A client that does not keep up is dropped: more than maxBufferedBytes behind, counting
// what waits in Node (the response's and socket's queues) and, where the OS tells, what the kernel holds
// unacknowledged. The kernel part matters: Node 20 cannot shrink a TCP socket's send buffer (no
// SO_SNDBUF), and Linux grows it to megabytes, so a client that stops reading fills the kernel for
// minutes before Node sees any backpressure. OggStreams samples the kernel's per-socket queue from
// /proc/self/net/tcp{,6} (Linux) every second; elsewhere only Node's queue counts. A dropped client is
// reset (RST), so the kernel frees its queue at once instead of keeping it for an orphaned socket. A
// drop costs the other listeners nothing, as each response is written on its own and nothing waits for
// a slow one. OggStreams also caps the listeners (503 `busy`, Retry-After). On shutdown the server ends
// every response cleanly with an EOS page (handle.end() or OggStreams.endAll()).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PROTOCOL_ERRORS } from '../protocol/errors.ts';
import type { OggMuxerStats } from '../stream/ogg-muxer.ts';
import { OggOpusMuxer } from '../stream/ogg-muxer.ts';
import { kernelSocketKey, readKernelSendQueues } from './kernel-send-queues.ts';
import type { PacketSource } from './packet-source.ts';

/**
 * Why a response closed: `ended` (handle.end / endAll, EOS page sent), `client-closed` (the client went
 * away), `slow-client` (dropped: more than maxBufferedBytes behind), `error` (socket or stream error),
 * `head` (a HEAD request, headers only), `method-not-allowed` (405), `busy` (503: at the listener cap).
 */
export type OggCloseReason = 'ended' | 'client-closed' | 'slow-client' | 'error' | 'head' | 'method-not-allowed' | 'busy';

export interface OggStreamOptions {
  /**
   * Drop the client when it is more than this many bytes behind: unsent in Node, plus unacknowledged in
   * the kernel where OggStreams samples it (checkBehind). Must hold at least one batch of the source
   * (the engine emits 0.5 s batches) with margin: a few seconds of audio, e.g. 128 KiB for 64-128
   * kbit/s streams.
   */
  maxBufferedBytes: number;
  /** Called once, when the response has closed (for whatever reason). */
  onClose?: (reason: OggCloseReason) => void;
  /** Audio packets per Ogg page (default DEFAULT_MAX_PACKETS_PER_PAGE in ogg-muxer.ts: 5 = 100 ms). */
  maxPacketsPerPage?: number;
  /**
   * The longest a packet waits in a partly filled page before that page is sent anyway (default 150 ms),
   * for sources that emit fewer packets at a time than a page holds.
   */
  maxPageDelayMs?: number;
  /** After end(), destroy the response if the client has not taken the last bytes within this (2000 ms). */
  endTimeoutMs?: number;
  /** OpusTags vendor and comments of every stream. */
  vendor?: string;
  tags?: Record<string, string>;
}

export interface OggStreamHandle {
  /** Ends the stream cleanly: pending packets and an EOS page, then the end of the chunked body. */
  end(): void;
  readonly closed: boolean;
  /** The close reason, once closed. */
  readonly reason: OggCloseReason | null;
  /** Resolves with the close reason when the response has closed. */
  readonly done: Promise<OggCloseReason>;
  /** What the muxer has written (null for HEAD and refused requests). */
  readonly stats: OggMuxerStats | null;
  /**
   * Takes a new sample of the bytes the kernel holds unacknowledged for this client, and drops it
   * (`slow-client`) if that and Node's queue are now more than maxBufferedBytes.
   */
  checkBehind(kernelBytes: number): void;
}

const OGG_RESPONSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'audio/ogg',
  'Cache-Control': 'no-cache, no-store',
  'X-Content-Type-Options': 'nosniff',
};

const DEFAULT_MAX_PAGE_DELAY_MS = 150;
const DEFAULT_END_TIMEOUT_MS = 2000;
/** Seconds a refused (busy) listener is asked to wait before it tries again. */
const BUSY_RETRY_AFTER_S = 10;
const DEFAULT_KERNEL_SAMPLE_MS = 1000;

/**
 * Closes the response's socket with a TCP reset rather than a FIN: the kernel drops what it still holds
 * for a client that does not read, instead of keeping it (for minutes) for the orphaned socket.
 */
function resetSocket(res: ServerResponse): void {
  const socket = res.socket;
  if (socket && !socket.destroyed) {
    try {
      socket.resetAndDestroy();
    } catch {
      // Not a TCP socket (resetAndDestroy throws): destroy below.
    }
  }
  res.destroy();
}

/**
 * Serves `source` as a live Ogg Opus stream on `res` (GET), or only the response headers (HEAD); other
 * methods get 405. No Content-Length: the body is chunked (HTTP/1.1) or close-delimited (HTTP/1.0).
 */
export function serveOggStream(
  req: IncomingMessage,
  res: ServerResponse,
  source: PacketSource,
  options: OggStreamOptions,
): OggStreamHandle {
  const { maxBufferedBytes } = options;
  if (!(maxBufferedBytes > 0)) throw new RangeError(`maxBufferedBytes must be > 0 (got ${maxBufferedBytes})`);
  const maxPageDelayMs = options.maxPageDelayMs ?? DEFAULT_MAX_PAGE_DELAY_MS;
  const endTimeoutMs = options.endTimeoutMs ?? DEFAULT_END_TIMEOUT_MS;

  let closed = false;
  let reason: OggCloseReason | null = null;
  /** Reason decided by this side (end, drop, error) before the 'close' event. */
  let closing: OggCloseReason | null = null;
  let muxer: OggOpusMuxer | null = null;
  let unsubscribe: (() => void) | null = null;
  let pageTimer: NodeJS.Timeout | null = null;
  let endTimer: NodeJS.Timeout | null = null;
  /** The kernel's unacknowledged bytes for this client, as last sampled (0 where unknown). */
  let kernelBytes = 0;
  let resolveDone!: (reason: OggCloseReason) => void;
  const done = new Promise<OggCloseReason>((resolve) => {
    resolveDone = resolve;
  });

  const stopSource = (): void => {
    if (pageTimer) clearTimeout(pageTimer);
    pageTimer = null;
    if (unsubscribe) {
      const u = unsubscribe;
      unsubscribe = null;
      u();
    }
  };

  const onClosed = (): void => {
    if (closed) return;
    closed = true;
    stopSource();
    if (endTimer) clearTimeout(endTimer);
    endTimer = null;
    reason = closing ?? (res.writableFinished ? 'ended' : 'client-closed');
    resolveDone(reason);
    options.onClose?.(reason);
  };

  /** Drops the client at once (no EOS: it is too far behind, or the socket failed). */
  const drop = (why: OggCloseReason): void => {
    if (closed) return;
    closing ??= why;
    stopSource();
    if (why === 'slow-client') resetSocket(res);
    else res.destroy();
  };

  // writableLength: bytes queued in the response and in the socket's user-space buffer, i.e. what the
  // kernel would not take yet; kernelBytes: what it took and the client has not acknowledged. A client
  // that reads keeps both near zero.
  const tooFarBehind = (): boolean => res.writableLength + kernelBytes > maxBufferedBytes;

  const write = (bytes: Buffer): void => {
    if (closed || closing || bytes.length === 0) return;
    res.write(bytes);
    if (tooFarBehind()) drop('slow-client');
  };

  const flushPage = (): void => {
    pageTimer = null;
    if (!muxer || closed || closing) return;
    write(muxer.flush());
  };

  const onPackets = (packets: readonly { data: Uint8Array }[]): void => {
    if (!muxer || closed || closing) return;
    let pages: Buffer;
    try {
      pages = muxer.push(packets);
    } catch {
      // A malformed packet (e.g. empty) from the source: this stream's timing would be wrong from here.
      drop('error');
      return;
    }
    if (pages.length > 0 && pageTimer) {
      clearTimeout(pageTimer);
      pageTimer = null;
    }
    if (muxer.pendingPackets > 0 && !pageTimer) pageTimer = setTimeout(flushPage, maxPageDelayMs);
    write(pages);
  };

  const end = (): void => {
    if (closed || closing) return;
    closing = 'ended';
    stopSource();
    res.end(muxer ? muxer.end() : undefined);
    endTimer = setTimeout(() => resetSocket(res), endTimeoutMs);
    endTimer.unref();
  };

  const handle: OggStreamHandle = {
    end,
    get closed() {
      return closed;
    },
    get reason() {
      return reason;
    },
    done,
    get stats() {
      return muxer ? muxer.stats : null;
    },
    checkBehind(bytes: number) {
      kernelBytes = bytes;
      if (!closed && !closing && tooFarBehind()) drop('slow-client');
    },
  };

  res.on('close', onClosed);
  res.on('error', () => {
    closing ??= 'error';
  });

  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    closing = 'method-not-allowed';
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' });
    res.end('method not allowed\n');
    return handle;
  }
  res.writeHead(200, OGG_RESPONSE_HEADERS);
  if (method === 'HEAD') {
    closing = 'head';
    res.end();
    return handle;
  }

  const { format } = source;
  muxer = new OggOpusMuxer({
    channels: format.channels,
    preSkip: format.preSkip,
    maxPacketsPerPage: options.maxPacketsPerPage,
    vendor: options.vendor,
    tags: options.tags,
  });
  write(muxer.headers());
  try {
    // A source may call the listener from inside subscribe() (a channel hands over its backlog).
    unsubscribe = source.subscribe(onPackets);
  } catch {
    drop('error');
  }
  // Dropped from inside subscribe(), or the client already gone: don't leak the listener.
  if (closed || closing) stopSource();
  return handle;
}

export interface OggStreamsOptions {
  /** Open streams at most (default: no cap); one more is answered 503 `busy` with Retry-After. */
  maxListeners?: number;
  /** How often the kernel's unacknowledged bytes per client are sampled, where the OS tells (ms; 1000). */
  kernelSampleMs?: number;
}

/**
 * The open Ogg responses of a server: capped in number, checked against what the kernel holds for
 * each (Linux), and ended all at once with an EOS page on shutdown.
 */
export class OggStreams {
  /** Each open stream and its socket's key in /proc/self/net/tcp{,6} (null when not known). */
  private readonly open = new Map<OggStreamHandle, string | null>();
  private readonly maxListeners: number;
  private readonly kernelSampleMs: number;
  private sampler: NodeJS.Timeout | null = null;
  private sampling = false;
  /** The OS does not tell (not Linux, or /proc unreadable): only Node's queues count. */
  private noKernelQueues = false;

  constructor(options: OggStreamsOptions = {}) {
    this.maxListeners = options.maxListeners ?? Number.POSITIVE_INFINITY;
    this.kernelSampleMs = options.kernelSampleMs ?? DEFAULT_KERNEL_SAMPLE_MS;
  }

  get size(): number {
    return this.open.size;
  }

  serve(req: IncomingMessage, res: ServerResponse, source: PacketSource, options: OggStreamOptions): OggStreamHandle {
    if (this.open.size >= this.maxListeners) return refuseBusy(res, this.maxListeners, options);
    const handle = serveOggStream(req, res, source, options);
    if (!handle.closed) {
      this.open.set(handle, kernelSocketKey(req.socket));
      void handle.done.then(() => this.open.delete(handle));
      this.startSampling();
    }
    return handle;
  }

  /** Ends every open stream (EOS page, end of body); resolves when all have closed. */
  endAll(): Promise<void> {
    const handles = [...this.open.keys()];
    for (const h of handles) h.end();
    return Promise.all(handles.map((h) => h.done)).then(() => undefined);
  }

  private startSampling(): void {
    if (this.sampler || this.noKernelQueues) return;
    this.sampler = setInterval(() => void this.sample(), this.kernelSampleMs);
    this.sampler.unref();
  }

  private stopSampling(): void {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
  }

  private async sample(): Promise<void> {
    if (this.open.size === 0) return this.stopSampling();
    if (this.sampling) return;
    this.sampling = true;
    try {
      const queues = await readKernelSendQueues();
      if (queues === null) {
        this.noKernelQueues = true;
        this.stopSampling();
        return;
      }
      for (const [handle, key] of this.open) if (key !== null) handle.checkBehind(queues.get(key) ?? 0);
    } finally {
      this.sampling = false;
    }
  }
}

/** 503 `busy` with Retry-After, as a handle that is already closed. */
function refuseBusy(res: ServerResponse, max: number, options: OggStreamOptions): OggStreamHandle {
  res.writeHead(PROTOCOL_ERRORS.busy.httpStatus, {
    'Content-Type': 'text/plain',
    'Retry-After': String(BUSY_RETRY_AFTER_S),
    'Cache-Control': 'no-store',
  });
  res.end(`busy: the server has ${max} Ogg listeners; try again later\n`);
  options.onClose?.('busy');
  return {
    end() {},
    closed: true,
    reason: 'busy',
    done: Promise.resolve('busy'),
    stats: null,
    checkBehind() {},
  };
}
