// Protocol v1: the messages of the WebSocket at /v1/ws, both ways, and the strict parser of what clients
// send. docs/protocol.md is the description for client authors; this file is the definition.
//
// Every message is one binary WebSocket frame holding one msgpack map with a string `type`.
// Client frames are untrusted: before msgpackr sees one, checkFrame() walks its bytes once and refuses
// anything the protocol never needs (extension types, which msgpackr turns into records, Dates,
// RegExps, typed arrays, structured-clone references; non-string map keys; duplicate keys; nesting
// deeper than MAX_NESTING; containers that declare more entries than the frame has bytes; trailing
// bytes). So decoding allocates at most in proportion to the frame, which ws already caps at
// maxPayload. msgpackr then decodes maps as Map objects, so a `__proto__` key is an ordinary key (reported
// as an unknown field) and never touches a prototype; the parsed messages are built field by field.
import { Packr, Unpackr } from 'msgpackr';
import { type GenerationConfig, PLAYBACK_ACTIONS, type PlaybackAction, type WeightedPrompt } from '../protocol/controls.ts';
import { type ErrorMessage, ProtocolError } from './errors.ts';
import type { AudioFormat } from './packet-source.ts';

export type { ErrorMessage } from './errors.ts';
export type { AudioFormat } from './packet-source.ts';

export const PROTOCOL_VERSION = 1;
/** The WebSocket endpoint of protocol v1. */
export const PROTOCOL_PATH = '/v1/ws';

// ---------------------------------------------------------------------------------------------------
// Limits and ranges

/** Limits on what one client message may carry (configurable per server). */
export interface ProtocolLimits {
  /** Longest prompt text, in Unicode code points after trimming. */
  maxPromptChars: number;
  /** Most prompts in one message (each prompt is a decoder row of the stream at every step). */
  maxPrompts: number;
}

/**
 * 300 code points is past what the text encoder reads anyway (64 T5 tokens, roughly 250-300 characters
 * of English); 4 prompts keep a stream at 5 decoder rows (4 conditioned + 1 unconditioned) and at most 9
 * while it cross-fades to 4 new ones.
 */
export const DEFAULT_PROTOCOL_LIMITS: Readonly<ProtocolLimits> = Object.freeze({ maxPromptChars: 300, maxPrompts: 4 });

export interface NumberRange {
  readonly min: number;
  readonly max: number;
  readonly integer: boolean;
}

/** MusicGen codebook size: top-k beyond it keeps every token, like 0. */
export const CODEBOOK_SIZE = 2048;

/**
 * Accepted values of the generation config. The defaults are DEFAULT_CONFIG in src/stream/controls.ts.
 * - temperature 0..5: 0 samples greedily; MusicGen sounds right around 0.8-1.3 and turns to noise
 *   past ~2; 5 leaves room to experiment without being meaningless.
 * - topK 0..2048 (integer): 0 = off; the codebook has 2048 tokens.
 * - topP 0..1: 0 = off (1 keeps everything too).
 * - guidance 0..10: classifier-free guidance scale, 0 = unconditioned, 1 = conditioned only (no
 *   guidance), 3 = MusicGen's default; beyond ~10 the logits blow up and the music falls apart.
 * - seed 0..2^32-1 (integer).
 */
export const CONFIG_RANGES: Readonly<Record<keyof GenerationConfig, NumberRange>> = Object.freeze({
  temperature: { min: 0, max: 5, integer: false },
  topK: { min: 0, max: CODEBOOK_SIZE, integer: true },
  topP: { min: 0, max: 1, integer: false },
  guidance: { min: 0, max: 10, integer: false },
  seed: { min: 0, max: 0xffff_ffff, integer: true },
});

/** A prompt's weight: relative, normalised over the prompts; at least one prompt must be above 0. */
export const WEIGHT_RANGE: NumberRange = Object.freeze({ min: 0, max: 100, integer: false });
/** Length of the cross-fade to new prompts, in ms (0 = at once). */
export const TRANSITION_MS_RANGE: NumberRange = Object.freeze({ min: 0, max: 60_000, integer: false });
/** Longest token, in code points. */
export const MAX_TOKEN_CHARS = 4096;
/** Longest ping id (a string), in code points. */
export const MAX_PING_ID_CHARS = 64;
export const CHANNEL_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Deepest nesting of maps and arrays in a client frame (v1 needs 4). */
export const MAX_NESTING = 8;
/**
 * Most values (map keys included) in a client frame; v1 needs under 60 with 4 prompts. Bounds the work
 * per frame: a full 64 KiB frame of tiny maps would otherwise cost milliseconds to refuse.
 * parseClientMessage raises it when maxPrompts is set high.
 */
export const MAX_VALUES = 1024;

// ---------------------------------------------------------------------------------------------------
// Client → server

/** Prompts and config of a personal session, set at setup. */
export interface SessionSpec {
  prompts?: WeightedPrompt[];
  /** Omitted fields take their defaults. */
  config?: Partial<GenerationConfig>;
  /** A short clip (WAV or Ogg Opus bytes) that the stream continues from. */
  audio?: Uint8Array;
  /** Also send the codec tokens of every frame (`codes` messages). */
  tapCodes?: boolean;
}

export interface SetupMessage {
  type: 'setup';
  token?: string;
  /** Channel to listen to. */
  listen?: string;
  /** Create a personal stream for this connection. Exactly one of listen and session. */
  session?: SessionSpec;
}

export interface PromptsMessage {
  type: 'prompts';
  prompts: WeightedPrompt[];
  /** Cross-fade length in ms (default 0: at once). */
  transitionMs?: number;
}

export interface ConfigMessage {
  type: 'config';
  /** The whole config: omitted fields return to their defaults. */
  config: Partial<GenerationConfig>;
}

export interface PlaybackMessage {
  type: 'playback';
  action: PlaybackAction;
}

export interface PingMessage {
  type: 'ping';
  id: string | number;
}

export type ClientMessage = SetupMessage | PromptsMessage | ConfigMessage | PlaybackMessage | PingMessage;
export type ClientMessageType = ClientMessage['type'];
export const CLIENT_MESSAGE_TYPES: readonly ClientMessageType[] = ['setup', 'prompts', 'config', 'playback', 'ping'];
/** The messages that steer a stream (subject to roles, no_stream and the steering rate). */
export const STEERING_MESSAGE_TYPES: readonly ClientMessageType[] = ['prompts', 'config', 'playback'];

// ---------------------------------------------------------------------------------------------------
// Server → client

export interface ModelInfo {
  name: string;
  /** True when the weights are random (a preset for tests and benchmarks): the audio is noise. */
  random: boolean;
}

export interface SetupCompleteMessage {
  type: 'setup_complete';
  sessionId: string;
  /** The channel listened to, when setup asked for one. */
  channel?: string;
  audio: AudioFormat;
  model: ModelInfo;
}

export interface AudioMessage {
  type: 'audio';
  /** seq of the first packet; the others follow without gaps. */
  seq: number;
  /** pts (48 kHz samples) of the first packet; each packet adds 960. */
  pts: number;
  /** Opus packets, one per 20 ms. */
  packets: readonly Uint8Array[];
  /** The control version (prompts + config) that produced this audio. */
  control: number;
}

export interface AppliedMessage {
  type: 'applied';
  control: number;
  prompts: readonly WeightedPrompt[];
  config: GenerationConfig;
  /** pts of the first audio generated under this control. */
  pts: number;
}

export interface StatusMessage {
  type: 'status';
  /** Audio generated ahead of real time, in ms. */
  leadMs: number;
  /** Generation speed as a multiple of real time. */
  rtf: number;
  /** Times the stream ran dry since it started. */
  underruns: number;
  /** Listeners of the channel (channels only). */
  listeners?: number;
}

export interface PongMessage {
  type: 'pong';
  id: string | number;
}

/** The codec tokens of one complete frame (sessions that asked for them with `session.tapCodes`). */
export interface CodesMessage {
  type: 'codes';
  /** Frame index (50 per second; frame f starts at pts f * 960). */
  frame: number;
  /** One code per codebook. */
  codes: number[];
}

export type ServerMessage =
  | SetupCompleteMessage
  | AudioMessage
  | AppliedMessage
  | StatusMessage
  | ErrorMessage
  | PongMessage
  | CodesMessage;
export type ServerMessageType = ServerMessage['type'];
export const SERVER_MESSAGE_TYPES: readonly ServerMessageType[] = [
  'setup_complete',
  'audio',
  'applied',
  'status',
  'error',
  'pong',
  'codes',
];

// ---------------------------------------------------------------------------------------------------
// Frame check: the bytes of one client frame, before msgpackr decodes them

function bad(why: string): ProtocolError<'bad_message'> {
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

// ---------------------------------------------------------------------------------------------------
// Parsing client messages

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, structuredClone: false, moreTypes: false, int64AsType: 'number' });

/** Text for a message, at most `max` code units, JSON-quoted. */
function quote(s: string, max = 64): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (v instanceof Map) return 'a map';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'binary data';
  if (typeof v === 'string') return `the string ${quote(v, 32)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return typeof v;
}

function child(path: string, key: string): string {
  const k = /^[A-Za-z_$][\w$]*$/.test(key) ? key : quote(key, 32);
  if (path === '') return k === key ? key : `[${k}]`;
  return k === key ? `${path}.${key}` : `${path}[${k}]`;
}

function invalid(path: string, why: string): ProtocolError<'invalid_field'> {
  return new ProtocolError('invalid_field', path, why);
}

function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++, n++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  return n;
}

type Fields = Map<string, unknown>;

/** A map whose keys are all in `allowed` (keys are strings: checkFrame saw to it). */
function fieldsOf(v: unknown, path: string, messageType: string, allowed: readonly string[]): Fields {
  if (!(v instanceof Map)) throw invalid(path, `must be a map, got ${describe(v)}`);
  for (const key of (v as Map<string, unknown>).keys()) {
    if (!allowed.includes(key)) throw new ProtocolError('unknown_field', child(path, key), messageType);
  }
  return v as Fields;
}

/** A field's value; nil counts as absent. */
function get(m: Fields, key: string): unknown {
  const v = m.get(key);
  return v === null ? undefined : v;
}

function required(m: Fields, key: string, path: string): unknown {
  const v = get(m, key);
  if (v === undefined) throw invalid(child(path, key), 'is required');
  return v;
}

function number(v: unknown, path: string, range: NumberRange): number {
  const what = range.integer ? 'an integer' : 'a number';
  if (typeof v !== 'number') throw invalid(path, `must be ${what} in ${range.min}..${range.max}, got ${describe(v)}`);
  if (!Number.isFinite(v)) throw invalid(path, `must be a finite number, got ${v}`);
  if (range.integer && !Number.isInteger(v)) throw invalid(path, `must be an integer, got ${v}`);
  if (v < range.min || v > range.max) throw invalid(path, `must be in ${range.min}..${range.max}, got ${v}`);
  return v;
}

function string(v: unknown, path: string, maxChars: number): string {
  if (typeof v !== 'string') throw invalid(path, `must be a string, got ${describe(v)}`);
  if (v.length === 0) throw invalid(path, 'must not be empty');
  if (v.length > maxChars * 2 || codePoints(v) > maxChars) throw invalid(path, `must be at most ${maxChars} characters long`);
  return v;
}

const PROMPT_FIELDS = ['text', 'weight'] as const;
const CONFIG_FIELDS = Object.keys(CONFIG_RANGES) as (keyof GenerationConfig)[];
const SESSION_FIELDS = ['prompts', 'config', 'audio', 'tapCodes'] as const;

/** Fields of each client message, `type` included. */
export const CLIENT_MESSAGE_FIELDS: Readonly<Record<ClientMessageType, readonly string[]>> = Object.freeze({
  setup: ['type', 'token', 'listen', 'session'],
  prompts: ['type', 'prompts', 'transitionMs'],
  config: ['type', 'config'],
  playback: ['type', 'action'],
  ping: ['type', 'id'],
});

function parsePrompts(v: unknown, path: string, messageType: string, limits: ProtocolLimits): WeightedPrompt[] {
  if (!Array.isArray(v)) throw invalid(path, `must be an array of {text, weight}, got ${describe(v)}`);
  if (v.length === 0) throw invalid(path, 'needs at least one prompt');
  if (v.length > limits.maxPrompts) throw new ProtocolError('too_many_prompts', path, v.length, limits.maxPrompts);
  const prompts: WeightedPrompt[] = [];
  const seen = new Map<string, number>();
  for (let i = 0; i < v.length; i++) {
    const at = `${path}[${i}]`;
    const m = fieldsOf(v[i], at, messageType, PROMPT_FIELDS);
    const raw = required(m, 'text', at);
    if (typeof raw !== 'string') throw invalid(`${at}.text`, `must be a string, got ${describe(raw)}`);
    const text = raw.trim();
    if (text.length === 0) throw invalid(`${at}.text`, 'must not be empty');
    const chars = codePoints(text);
    if (chars > limits.maxPromptChars) throw new ProtocolError('prompt_too_long', `${at}.text`, chars, limits.maxPromptChars);
    const weight = number(required(m, 'weight', at), `${at}.weight`, WEIGHT_RANGE);
    const twin = seen.get(text);
    if (twin !== undefined) throw invalid(`${at}.text`, `repeats ${path}[${twin}].text; give each text once`);
    seen.set(text, i);
    prompts.push({ text, weight });
  }
  if (!prompts.some((p) => p.weight > 0)) throw invalid(path, 'at least one prompt needs a weight above 0');
  return prompts;
}

function parseConfig(v: unknown, path: string, messageType: string): Partial<GenerationConfig> {
  const m = fieldsOf(v, path, messageType, CONFIG_FIELDS);
  const config: Partial<GenerationConfig> = {};
  for (const key of CONFIG_FIELDS) {
    const value = get(m, key);
    if (value !== undefined) config[key] = number(value, child(path, key), CONFIG_RANGES[key]);
  }
  return config;
}

/** JSON objects as the Maps msgpack decoding gives, so that configuration files share the validation. */
function jsonToFields(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(jsonToFields);
  if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array))
    return new Map(Object.entries(v).map(([k, x]) => [k, jsonToFields(x)]));
  return v;
}

/**
 * Checks the prompts and config of a configured stream (a channel in a channels file) with the rules
 * of protocol v1; throws a ProtocolError naming the field at `path`.
 */
export function parseStreamControls(
  prompts: unknown,
  config: unknown,
  path: string,
  limits: ProtocolLimits = DEFAULT_PROTOCOL_LIMITS,
): { prompts: WeightedPrompt[]; config?: Partial<GenerationConfig> } {
  const out: { prompts: WeightedPrompt[]; config?: Partial<GenerationConfig> } = {
    prompts: parsePrompts(jsonToFields(prompts), `${path}.prompts`, 'channel', limits),
  };
  if (config !== undefined && config !== null) out.config = parseConfig(jsonToFields(config), `${path}.config`, 'channel');
  return out;
}

function parseSetup(m: Fields, limits: ProtocolLimits): SetupMessage {
  const msg: SetupMessage = { type: 'setup' };
  const token = get(m, 'token');
  if (token !== undefined) msg.token = string(token, 'token', MAX_TOKEN_CHARS);
  const listen = get(m, 'listen');
  if (listen !== undefined) {
    if (typeof listen !== 'string') throw invalid('listen', `must be a channel id (string), got ${describe(listen)}`);
    if (!CHANNEL_ID_PATTERN.test(listen))
      throw invalid('listen', `${quote(listen)} is not a channel id (1-64 of a-z 0-9 _ -, starting with a letter or digit)`);
    msg.listen = listen;
  }
  const session = get(m, 'session');
  if (listen === undefined && session === undefined) throw invalid('listen', 'setup needs listen (a channel id) or session');
  if (session !== undefined) {
    if (listen !== undefined) throw invalid('session', 'setup takes listen or session, not both');
    const s = fieldsOf(session, 'session', 'setup', SESSION_FIELDS);
    const spec: SessionSpec = {};
    const prompts = get(s, 'prompts');
    if (prompts !== undefined) spec.prompts = parsePrompts(prompts, 'session.prompts', 'setup', limits);
    const config = get(s, 'config');
    if (config !== undefined) spec.config = parseConfig(config, 'session.config', 'setup');
    const audio = get(s, 'audio');
    if (audio !== undefined) {
      if (!(audio instanceof Uint8Array) || audio.byteLength === 0)
        throw invalid('session.audio', `must be the bytes of a WAV or Ogg Opus file, got ${describe(audio)}`);
      spec.audio = audio;
    }
    const tapCodes = get(s, 'tapCodes');
    if (tapCodes !== undefined) {
      if (typeof tapCodes !== 'boolean') throw invalid('session.tapCodes', `must be true or false, got ${describe(tapCodes)}`);
      spec.tapCodes = tapCodes;
    }
    msg.session = spec;
  }
  return msg;
}

function parseFields(type: ClientMessageType, m: Fields, limits: ProtocolLimits): ClientMessage {
  switch (type) {
    case 'setup':
      return parseSetup(m, limits);
    case 'prompts': {
      const msg: PromptsMessage = { type, prompts: parsePrompts(required(m, 'prompts', ''), 'prompts', type, limits) };
      const t = get(m, 'transitionMs');
      if (t !== undefined) msg.transitionMs = number(t, 'transitionMs', TRANSITION_MS_RANGE);
      return msg;
    }
    case 'config':
      return { type, config: parseConfig(required(m, 'config', ''), 'config', type) };
    case 'playback': {
      const action = required(m, 'action', '');
      if (typeof action !== 'string' || !(PLAYBACK_ACTIONS as readonly string[]).includes(action)) {
        throw invalid('action', `must be one of ${PLAYBACK_ACTIONS.join(', ')}, got ${describe(action)}`);
      }
      return { type, action: action as PlaybackAction };
    }
    case 'ping': {
      const id = required(m, 'id', '');
      if (typeof id === 'number') {
        if (!Number.isFinite(id)) throw invalid('id', `must be a finite number or a string, got ${id}`);
        return { type, id };
      }
      if (typeof id === 'string' && id.length <= MAX_PING_ID_CHARS * 2 && codePoints(id) <= MAX_PING_ID_CHARS) return { type, id };
      throw invalid('id', `must be a number or a string of at most ${MAX_PING_ID_CHARS} characters, got ${describe(id)}`);
    }
  }
}

function toBuffer(data: Buffer | ArrayBuffer | Uint8Array | readonly Buffer[]): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data as readonly Buffer[]);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  const u8 = data as Uint8Array;
  // a fresh view: msgpackr caches a DataView on the object it decodes
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/**
 * Decodes and validates one client frame. Throws ProtocolError (bad_message, unknown_type,
 * unknown_field, invalid_field, prompt_too_long, too_many_prompts); the first problem found is the one
 * reported. Prompt texts come back trimmed. Nil in an optional field counts as absent.
 * Pass ws's `isBinary`: text frames are refused (bad_message).
 */
export function parseClientMessage(
  data: Buffer | ArrayBuffer | Uint8Array | readonly Buffer[],
  limits: Readonly<ProtocolLimits> = DEFAULT_PROTOCOL_LIMITS,
  isBinary = true,
): ClientMessage {
  if (!isBinary) throw bad('text frame; send each message as one binary frame');
  const bytes = toBuffer(data);
  checkFrame(bytes, Math.max(MAX_VALUES, 64 + 8 * limits.maxPrompts));
  let value: unknown;
  try {
    value = unpackr.unpack(bytes);
  } catch (err) {
    throw bad(`not msgpack (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!(value instanceof Map)) throw bad(`the message must be a msgpack map, got ${describe(value)}`);
  const type: unknown = value.get('type');
  if (type === undefined) throw bad('the map has no `type` field');
  if (typeof type !== 'string') throw bad(`\`type\` must be a string, got ${describe(type)}`);
  if (!(CLIENT_MESSAGE_TYPES as readonly string[]).includes(type)) throw new ProtocolError('unknown_type', quote(type));
  const t = type as ClientMessageType;
  const m = fieldsOf(value, '', t, CLIENT_MESSAGE_FIELDS[t]);
  return parseFields(t, m, limits);
}

// ---------------------------------------------------------------------------------------------------
// Encoding server messages

// Records off (plain msgpack that any decoder reads), fixmaps for small maps. Uint8Arrays and Buffers
// become msgpack bin. Each pack() returns a new slice that later packs do not overwrite.
const packr = new Packr({ useRecords: false, variableMapSize: true, moreTypes: false });

function promptsOut(prompts: readonly WeightedPrompt[]): WeightedPrompt[] {
  return prompts.map((p) => ({ text: p.text, weight: p.weight }));
}

/** The message with only its protocol fields, none undefined (msgpackr would encode undefined as an extension). */
function wireShape(msg: ServerMessage): Record<string, unknown> {
  switch (msg.type) {
    case 'setup_complete': {
      const a = msg.audio;
      const out: Record<string, unknown> = { type: msg.type, sessionId: msg.sessionId };
      if (msg.channel !== undefined) out.channel = msg.channel;
      out.audio = { codec: a.codec, sampleRate: a.sampleRate, channels: a.channels, frameMs: a.frameMs, preSkip: a.preSkip };
      out.model = { name: msg.model.name, random: msg.model.random };
      return out;
    }
    case 'audio':
      return { type: msg.type, seq: msg.seq, pts: msg.pts, packets: msg.packets, control: msg.control };
    case 'applied': {
      const c = msg.config;
      const config = { temperature: c.temperature, topK: c.topK, topP: c.topP, guidance: c.guidance, seed: c.seed };
      return { type: msg.type, control: msg.control, prompts: promptsOut(msg.prompts), config, pts: msg.pts };
    }
    case 'status': {
      const out: Record<string, unknown> = { type: msg.type, leadMs: msg.leadMs, rtf: msg.rtf, underruns: msg.underruns };
      if (msg.listeners !== undefined) out.listeners = msg.listeners;
      return out;
    }
    case 'error': {
      const out: Record<string, unknown> = { type: msg.type, code: msg.code, message: msg.message, fatal: msg.fatal };
      if (msg.field !== undefined) out.field = msg.field;
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

/** One server message as the bytes of one binary frame. Audio packets are msgpack bin. */
export function encodeServerMessage(msg: ServerMessage): Buffer {
  return packr.pack(wireShape(msg));
}

const clientUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/**
 * Decodes a server frame, for clients and tests. It trusts the server: no validation. Unknown fields and
 * message types are passed through (v1 grows by adding them; clients ignore what they do not know).
 */
export function decodeServerMessage(data: Buffer | ArrayBuffer | Uint8Array): ServerMessage {
  return clientUnpackr.unpack(toBuffer(data)) as ServerMessage;
}
