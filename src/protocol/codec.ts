// The msgpack of protocol v1, both ways, for the server, the SDK and the web page: one frame = one
// msgpack map. Plain msgpack only: records off (any decoder reads it), no extension types (the server
// refuses them), small maps as fixmaps. Uint8Arrays become msgpack bin. Each pack() returns a new slice
// that later packs do not overwrite.
import { Packr, Unpackr } from 'msgpackr';
import type { WeightedPrompt } from './controls.ts';
import type { ServerMessage } from './messages.ts';

const packr = new Packr({ useRecords: false, variableMapSize: true, moreTypes: false });
/** Maps as plain objects; 64-bit integers as numbers (pts past 2^32 may come as float64 or uint64). */
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
/**
 * For untrusted frames: maps as Map objects, so that a `__proto__` key is an ordinary key and never
 * touches a prototype; no records, no structured clones, no extra types.
 */
const untrustedUnpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: false,
  structuredClone: false,
  moreTypes: false,
  int64AsType: 'number',
});

/** What WebSocket implementations deliver: ArrayBuffer, a typed array or Buffer, or a list of Buffers. */
export type FrameData = ArrayBuffer | ArrayBufferView | readonly Uint8Array[];

/**
 * The bytes of a binary frame as a fresh view (msgpackr caches a DataView on the object it decodes); a
 * Buffer stays a Buffer, so that bin values decode as Buffers in Node. Null for anything else.
 */
export function frameBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (data instanceof Uint8Array) return data.subarray(0);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data) && data.every((d) => d instanceof Uint8Array)) {
    const parts = data as Uint8Array[];
    const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    return bytes;
  }
  return null; // a text frame or a Blob: not protocol v1
}

/** Drops undefined fields, recursively (msgpackr would encode undefined as an extension, which the server refuses). */
function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = withoutUndefined(v);
    return out;
  }
  return value;
}

/** One client message as the bytes of one binary frame (undefined fields left out). */
export function encodeMessage(message: { type: string } & Record<string, unknown>): Uint8Array {
  return packr.pack(withoutUndefined(message));
}

/**
 * One server frame as a message (a map with a string `type`), or null when it is not one. Trusts the
 * server: unknown fields and message types are passed through (v1 grows by adding them; clients ignore
 * what they do not know). Throws when the bytes are not msgpack.
 */
export function decodeMessage(data: unknown): ({ type: string } & Record<string, unknown>) | null {
  const bytes = frameBytes(data);
  if (bytes === null) return null;
  const value: unknown = unpackr.unpack(bytes);
  if (value === null || typeof value !== 'object' || typeof (value as { type?: unknown }).type !== 'string') return null;
  return value as { type: string } & Record<string, unknown>;
}

/** An untrusted frame's value, maps as Map objects (the server checks the bytes first). */
export function decodeUntrusted(bytes: Uint8Array): unknown {
  return untrustedUnpackr.unpack(bytes);
}

function promptsOut(prompts: readonly WeightedPrompt[]): WeightedPrompt[] {
  return prompts.map((p) => ({ text: p.text, weight: p.weight }));
}

/** The message with only its protocol fields, none undefined. */
function wireShape(msg: ServerMessage): Record<string, unknown> {
  switch (msg.type) {
    case 'setup_complete': {
      const a = msg.audio;
      const out: Record<string, unknown> = { type: msg.type, sessionId: msg.sessionId };
      if (msg.channel !== undefined) out.channel = msg.channel;
      out.audio = { codec: a.codec, sampleRate: a.sampleRate, channels: a.channels, frameMs: a.frameMs, preSkip: a.preSkip };
      out.model = { name: msg.model.name, random: msg.model.random };
      if (msg.resume !== undefined) out.resume = { session: msg.resume.session, token: msg.resume.token };
      if (msg.resumed !== undefined) out.resumed = msg.resumed;
      return out;
    }
    case 'audio':
      return { type: msg.type, seq: msg.seq, pts: msg.pts, packets: msg.packets, control: msg.control };
    case 'applied': {
      const c = msg.config;
      const config = { temperature: c.temperature, topK: c.topK, topP: c.topP, guidance: c.guidance, seed: c.seed };
      const out: Record<string, unknown> = { type: msg.type, control: msg.control, prompts: promptsOut(msg.prompts), config, pts: msg.pts };
      if (msg.id !== undefined) out.id = msg.id;
      return out;
    }
    case 'status': {
      const out: Record<string, unknown> = { type: msg.type, leadMs: msg.leadMs, rtf: msg.rtf, underruns: msg.underruns };
      if (msg.listeners !== undefined) out.listeners = msg.listeners;
      return out;
    }
    case 'error': {
      const out: Record<string, unknown> = { type: msg.type, code: msg.code, message: msg.message, fatal: msg.fatal };
      if (msg.field !== undefined) out.field = msg.field;
      if (msg.id !== undefined) out.id = msg.id;
      return out;
    }
    case 'pong':
      return { type: msg.type, id: msg.id };
    case 'codes':
      return { type: msg.type, frame: msg.frame, codes: msg.codes };
    default: {
      const never: never = msg;
      throw new TypeError(`not a server message: ${JSON.stringify(never)}`);
    }
  }
}

/** One server message as the bytes of one binary frame, with its protocol fields only. Audio packets are msgpack bin. */
export function encodeServerMessage(msg: ServerMessage): ReturnType<Packr['pack']> {
  return packr.pack(wireShape(msg));
}
