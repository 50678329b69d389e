// The parser of what clients send over protocol v1: one frame, checked (frame-check.ts), decoded with
// maps as Map objects (so a `__proto__` key is an ordinary key, reported as an unknown field, and never
// touches a prototype), then validated field by field against src/protocol's message definitions and
// ranges. The parsed messages are built field by field. Also validates the prompts and config of the
// channels in a channels file, with the same rules.
import { decodeUntrusted, type FrameData, frameBytes } from '../protocol/codec.ts';
import { type GenerationConfig, PLAYBACK_ACTIONS, type PlaybackAction, type WeightedPrompt } from '../protocol/controls.ts';
import { ProtocolError } from '../protocol/errors.ts';
import {
  CHANNEL_ID_PATTERN,
  CONFIG_RANGES,
  DEFAULT_PROTOCOL_LIMITS,
  MAX_MESSAGE_ID_CHARS,
  MAX_PING_ID_CHARS,
  MAX_RESUME_CHARS,
  MAX_TOKEN_CHARS,
  MAX_VALUES,
  type NumberRange,
  type ProtocolLimits,
  TRANSITION_MS_RANGE,
  WEIGHT_RANGE,
} from '../protocol/limits.ts';
import {
  CLIENT_MESSAGE_FIELDS,
  CLIENT_MESSAGE_TYPES,
  type ClientMessage,
  type ClientMessageType,
  type MessageId,
  PROMPT_FIELDS,
  type PromptsMessage,
  RESUME_FIELDS,
  SESSION_FIELDS,
  type SessionSpec,
  type SetupMessage,
} from '../protocol/messages.ts';
import { bad, checkFrame, quote } from './frame-check.ts';

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

const CONFIG_FIELDS = Object.keys(CONFIG_RANGES) as (keyof GenerationConfig)[];

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
  const resume = get(m, 'resume');
  const asked = [listen, session, resume].filter((v) => v !== undefined).length;
  if (asked === 0) throw invalid('listen', 'setup needs listen (a channel id), session or resume');
  // The field at fault is the second one given.
  if (asked > 1)
    throw invalid(listen !== undefined && session !== undefined ? 'session' : 'resume', 'setup takes one of listen, session and resume');
  if (resume !== undefined) {
    const r = fieldsOf(resume, 'resume', 'setup', RESUME_FIELDS);
    const id = get(r, 'session');
    const token = get(r, 'token');
    if (id === undefined) throw invalid('resume.session', 'is required');
    if (token === undefined) throw invalid('resume.token', 'is required');
    msg.resume = { session: string(id, 'resume.session', MAX_RESUME_CHARS), token: string(token, 'resume.token', MAX_RESUME_CHARS) };
  }
  if (session !== undefined) {
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

/** A ping's id (required by parseFields): a finite number or a string of at most MAX_PING_ID_CHARS characters. */
function pingId(m: Map<unknown, unknown>): MessageId | undefined {
  const id = m.get('id');
  if (id === undefined || id === null) return undefined;
  if (typeof id === 'number') {
    if (!Number.isFinite(id)) throw invalid('id', `must be a finite number or a string, got ${id}`);
    return id;
  }
  if (typeof id === 'string' && id.length <= MAX_PING_ID_CHARS * 2 && codePoints(id) <= MAX_PING_ID_CHARS) return id;
  throw invalid('id', `must be a number or a string of at most ${MAX_PING_ID_CHARS} characters, got ${describe(id)}`);
}

function isMessageId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_MESSAGE_ID_CHARS * 2 && codePoints(id) <= MAX_MESSAGE_ID_CHARS;
}

/** The optional `id` of a message other than ping: a string of 1..MAX_MESSAGE_ID_CHARS characters. */
function messageId(m: Map<unknown, unknown>): string | undefined {
  const id = m.get('id');
  if (id === undefined || id === null) return undefined;
  if (!isMessageId(id)) throw invalid('id', `must be a string of 1 to ${MAX_MESSAGE_ID_CHARS} characters, got ${describe(id)}`);
  return id;
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
      const id = pingId(m);
      if (id === undefined) throw invalid('id', 'is required');
      return { type, id };
    }
  }
}

/** A parsed client frame: the message, or the error that refuses it with the message's id when known. */
export type ParsedFrame = { message: ClientMessage } | { error: ProtocolError; id?: MessageId };

/**
 * Decodes and validates one client frame, as parseClientMessage does, without throwing: a refused
 * message comes back as its error, with the message's `id` when the frame got as far as a valid one.
 */
export function parseClientFrame(
  data: FrameData,
  limits: Readonly<ProtocolLimits> = DEFAULT_PROTOCOL_LIMITS,
  isBinary = true,
): ParsedFrame {
  let id: MessageId | undefined;
  try {
    return { message: parseFrame(data, limits, isBinary, (v) => (id = v)) };
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return id === undefined ? { error: err } : { error: err, id };
  }
}

/**
 * Decodes and validates one client frame. Throws ProtocolError (bad_message, unknown_type,
 * unknown_field, invalid_field, prompt_too_long, too_many_prompts); the first problem found is the one
 * reported. Prompt texts come back trimmed. Nil in an optional field counts as absent.
 * Pass ws's `isBinary`: text frames are refused (bad_message).
 */
export function parseClientMessage(
  data: FrameData,
  limits: Readonly<ProtocolLimits> = DEFAULT_PROTOCOL_LIMITS,
  isBinary = true,
): ClientMessage {
  return parseFrame(data, limits, isBinary, () => {});
}

/** The parser; `gotId` learns the message's id as soon as it is known to be valid. */
function parseFrame(data: FrameData, limits: Readonly<ProtocolLimits>, isBinary: boolean, gotId: (id: MessageId) => void): ClientMessage {
  if (!isBinary) throw bad('text frame; send each message as one binary frame');
  const view = frameBytes(data);
  if (view === null) throw bad('not a binary frame');
  const bytes = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  checkFrame(bytes, Math.max(MAX_VALUES, 64 + 8 * limits.maxPrompts));
  let value: unknown;
  try {
    value = decodeUntrusted(bytes);
  } catch (err) {
    throw bad(`not msgpack (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!(value instanceof Map)) throw bad(`the message must be a msgpack map, got ${describe(value)}`);
  const type: unknown = value.get('type');
  if (type === undefined) throw bad('the map has no `type` field');
  if (typeof type !== 'string') throw bad(`\`type\` must be a string, got ${describe(type)}`);
  if (!(CLIENT_MESSAGE_TYPES as readonly string[]).includes(type)) {
    // A newer message type may carry an id too: echo it when it is a valid one.
    const id = value.get('id');
    if (isMessageId(id)) gotId(id);
    throw new ProtocolError('unknown_type', quote(type));
  }
  const t = type as ClientMessageType;
  // The id first, so that the error about any other field can echo it.
  const id = t === 'ping' ? pingId(value) : messageId(value);
  if (id !== undefined) gotId(id);
  const msg = parseFields(t, fieldsOf(value, '', t, CLIENT_MESSAGE_FIELDS[t]), limits);
  if (msg.type !== 'ping' && typeof id === 'string') msg.id = id;
  return msg;
}
