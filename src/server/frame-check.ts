// The check of one client frame's bytes, before msgpack decoding. Client frames are untrusted:
// checkFrame() walks the bytes once and refuses anything protocol v1 never needs (extension types,
// which msgpackr turns into records, Dates, RegExps, typed arrays, structured-clone references;
// non-string map keys; duplicate keys; nesting deeper than MAX_NESTING; containers that declare more
// entries than the frame has bytes; trailing bytes; strings that are not valid UTF-8, which msgpackr
// would decode with U+FFFD in place of the bad bytes). So decoding allocates at most in proportion to the
// frame, which ws already caps at maxPayload.
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from '../protocol/errors.ts';
import { MAX_NESTING, MAX_VALUES } from '../protocol/limits.ts';

export function bad(why: string): ProtocolError<'bad_message'> {
  return new ProtocolError('bad_message', why);
}

interface OpenContainer {
  /** items still to read (a map counts keys and values) */
  left: number;
  /** keys seen so far (latin1 of their bytes); null for arrays */
  keys: Set<string> | null;
}

type ValueKind = 'bytes' | 'str' | 'array' | 'map';

/** What a msgpack type byte starts: a kind and its payload bytes (or, for arrays and maps, entries). */
function header(t: number, uint: (bytes: number) => number): [ValueKind, number] {
  if (t <= 0x7f || t >= 0xe0) return ['bytes', 0]; // fixints
  if (t <= 0x8f) return ['map', t & 0x0f];
  if (t <= 0x9f) return ['array', t & 0x0f];
  if (t <= 0xbf) return ['str', t & 0x1f];
  switch (t) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      return ['bytes', 0]; // nil, false, true
    case 0xc1:
      throw bad('the never-used byte 0xc1');
    case 0xc4:
      return ['bytes', uint(1)]; // bin 8/16/32
    case 0xc5:
      return ['bytes', uint(2)];
    case 0xc6:
      return ['bytes', uint(4)];
    case 0xcc:
    case 0xd0:
      return ['bytes', 1]; // uint 8, int 8
    case 0xcd:
    case 0xd1:
      return ['bytes', 2];
    case 0xca:
    case 0xce:
    case 0xd2:
      return ['bytes', 4]; // float 32, uint 32, int 32
    case 0xcb:
    case 0xcf:
    case 0xd3:
      return ['bytes', 8]; // float 64, uint 64, int 64
    case 0xd9:
      return ['str', uint(1)];
    case 0xda:
      return ['str', uint(2)];
    case 0xdb:
      return ['str', uint(4)];
    case 0xdc:
      return ['array', uint(2)];
    case 0xdd:
      return ['array', uint(4)];
    case 0xde:
      return ['map', uint(2)];
    case 0xdf:
      return ['map', uint(4)];
    default:
      throw bad('msgpack extension types are not accepted'); // 0xc7-0xc9, 0xd4-0xd8
  }
}

/**
 * Walks one msgpack value that must fill `b` exactly. Throws bad_message on anything protocol v1 does
 * not use or that could make decoding costly; allocates at most in proportion to `b`.
 */
export function checkFrame(b: Buffer, maxValues = MAX_VALUES): void {
  const end = b.length;
  if (end === 0) throw bad('empty frame');
  const stack: OpenContainer[] = [];
  let pos = 0;
  let values = 0;
  const uint = (bytes: number): number => {
    if (pos + bytes > end) throw bad('truncated: the frame ends inside a value');
    const v = b.readUIntBE(pos, bytes);
    pos += bytes;
    return v;
  };
  for (;;) {
    const top = stack[stack.length - 1];
    const wantKey = top !== undefined && top.keys !== null && top.left % 2 === 0;
    if (pos >= end) throw bad('truncated: the frame ends inside a value');
    if (++values > maxValues) throw bad(`more than ${maxValues} values in one message`);
    const t = b[pos++]!;
    // kind of value, and n = payload bytes (scalars, strings, binary) or entries (arrays, maps)
    const [kind, n] = header(t, uint);
    if (wantKey && kind !== 'str') throw bad('map keys must be strings');
    if (kind === 'array' || kind === 'map') {
      if (stack.length >= MAX_NESTING) throw bad(`maps and arrays nested deeper than ${MAX_NESTING} levels`);
      const items = kind === 'map' ? n * 2 : n;
      if (items > end - pos) throw bad(`${kind === 'map' ? 'a map' : 'an array'} of ${n} entries in ${end - pos} remaining bytes`);
      if (items > 0) {
        stack.push({ left: items, keys: kind === 'map' ? new Set() : null });
        continue;
      }
    } else {
      if (n > end - pos) throw bad('truncated: the frame ends inside a value');
      // Strict UTF-8 (no overlong forms, no surrogates), checked natively on the string's own bytes.
      if (kind === 'str' && n > 0 && !isUtf8(b.subarray(pos, pos + n))) throw bad('a string that is not valid UTF-8');
      if (wantKey) {
        const key = b.toString('latin1', pos, pos + n);
        if (top.keys!.has(key)) throw bad(`duplicate key ${quote(b.toString('utf8', pos, pos + n))}`);
        top.keys!.add(key);
      }
      pos += n;
    }
    // one item is complete; so are the containers it completes
    let root = true;
    for (let c = stack[stack.length - 1]; c !== undefined; c = stack[stack.length - 1]) {
      if (--c.left > 0) {
        root = false;
        break;
      }
      stack.pop();
    }
    if (root) break;
  }
  if (pos !== end) throw bad(`${end - pos} bytes after the end of the message`);
}

/** Text for a message, at most `max` code units, JSON-quoted. */
export function quote(s: string, max = 64): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}
