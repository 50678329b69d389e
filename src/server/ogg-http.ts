// Live Ogg Opus over HTTP: `GET /…/stream.ogg` answers an endless chunked audio/ogg body that browsers'
// <audio>, ffplay, VLC and mpv play directly.
//
// Every response has its own OggOpusMuxer (own serial, page sequence and granule from 0): it gets the two
// header pages first, then the pages of the packets the source emits from the moment it joined; never
// the history. A client that does not keep up (its unsent data, in Node and in the socket's user-space
// buffer, above maxBufferedBytes) is dropped by destroying its response; it costs the other listeners
// nothing, as each response is written on its own and nothing waits for a slow one. On shutdown the
// server ends every response cleanly with an EOS page (handle.end() or OggStreams.endAll()).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OggMuxerStats } from '../stream/ogg-muxer.ts';
import { OggOpusMuxer } from '../stream/ogg-muxer.ts';
import type { PacketSource } from './packet-source.ts';

/**
 * Why a response closed: `ended` (handle.end / endAll, EOS page sent), `client-closed` (the client went
 * away), `slow-client` (dropped: more than maxBufferedBytes unsent), `error` (socket or stream error),
 * `head` (a HEAD request, headers only), `method-not-allowed` (405).
 */
export type OggCloseReason = 'ended' | 'client-closed' | 'slow-client' | 'error' | 'head' | 'method-not-allowed';

export interface OggStreamOptions {
  /**
   * Drop the client when more than this many bytes wait to be sent to it. Must hold at least one
   * batch of the source (the engine emits 0.5 s batches) with margin: a few seconds of audio, e.g.
   * 256 KiB for 64-128 kbit/s streams.
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
}

const OGG_RESPONSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'audio/ogg',
  'Cache-Control': 'no-cache, no-store',
  'X-Content-Type-Options': 'nosniff',
};

const DEFAULT_MAX_PAGE_DELAY_MS = 150;
const DEFAULT_END_TIMEOUT_MS = 2000;

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

  /** Drops the client at once (no EOS: its buffer is full or the socket failed). */
  const drop = (why: OggCloseReason): void => {
    if (closed) return;
    closing ??= why;
    stopSource();
    res.destroy();
  };

  const write = (bytes: Buffer): void => {
    if (closed || closing || bytes.length === 0) return;
    res.write(bytes);
    // writableLength: bytes queued in the response and in the socket's user-space buffer, i.e. what the
    // kernel would not take; a client that reads keeps it near zero.
    if (res.writableLength > maxBufferedBytes) drop('slow-client');
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
    endTimer = setTimeout(() => res.destroy(), endTimeoutMs);
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

/** The open Ogg responses of a server, so that shutdown can end them all with an EOS page. */
export class OggStreams {
  private readonly open = new Set<OggStreamHandle>();

  get size(): number {
    return this.open.size;
  }

  serve(req: IncomingMessage, res: ServerResponse, source: PacketSource, options: OggStreamOptions): OggStreamHandle {
    const handle = serveOggStream(req, res, source, options);
    if (!handle.closed) {
      this.open.add(handle);
      void handle.done.then(() => this.open.delete(handle));
    }
    return handle;
  }

  /** Ends every open stream (EOS page, end of body); resolves when all have closed. */
  endAll(): Promise<void> {
    const handles = [...this.open];
    for (const h of handles) h.end();
    return Promise.all(handles.map((h) => h.done)).then(() => undefined);
  }
}
