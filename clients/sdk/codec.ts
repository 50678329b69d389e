// Frames of protocol v1: one msgpack map per binary WebSocket frame, both ways.
import { Packr, Unpackr } from 'msgpackr';

// Plain msgpack: no records, no extension types (the server refuses them), small maps as fixmaps.
const packr = new Packr({ useRecords: false, variableMapSize: true, moreTypes: false });
// Maps as plain objects; 64-bit integers as numbers (pts past 2^32 may come as float64 or uint64).
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** Drops undefined fields, recursively (msgpackr would encode undefined as an extension, which the server refuses). */
function clean(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clean);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = clean(v);
    return out;
  }
  return value;
}

/** One client message as the bytes of one binary frame. */
export function encodeMessage(message: { type: string } & Record<string, unknown>): Uint8Array {
  return packr.pack(clean(message));
}

/**
 * One server frame as a message (a map with a string `type`), or null when it is not one. Accepts what
 * WebSocket implementations deliver: ArrayBuffer, a typed array / Buffer, or a list of Buffers.
 */
export function decodeMessage(data: unknown): ({ type: string } & Record<string, unknown>) | null {
  let bytes: Uint8Array;
  if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else if (Array.isArray(data) && data.every((d) => d instanceof Uint8Array)) {
    const parts = data as Uint8Array[];
    bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
  } else return null; // a text frame or a Blob: not protocol v1
  const value: unknown = unpackr.unpack(bytes);
  if (value === null || typeof value !== 'object' || typeof (value as { type?: unknown }).type !== 'string') return null;
  return value as { type: string } & Record<string, unknown>;
}
