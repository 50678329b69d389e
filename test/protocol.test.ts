// One piece, over 400 lines: the parser's cases, the error registry and the docs checks all test the one protocol v1 surface.
import { readFileSync } from 'node:fs';
import { Packr, pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../src/protocol/controls.ts';
import {
  CLOSE_CODES,
  ERROR_CODES,
  type ErrorCode,
  errorMessage,
  isErrorCode,
  PROTOCOL_ERRORS,
  ProtocolError,
  RETIRED_ERROR_CODES,
  toProtocolError,
} from '../src/protocol/errors.ts';
import {
  CLIENT_MESSAGE_TYPES,
  type ClientMessage,
  CONFIG_RANGES,
  DEFAULT_PROTOCOL_LIMITS,
  decodeMessage,
  encodeServerMessage,
  type ProtocolLimits,
  SERVER_MESSAGE_TYPES,
  type ServerMessage,
} from '../src/protocol/index.ts';
import { checkFrame } from '../src/server/frame-check.ts';
import { parseClientFrame, parseClientMessage } from '../src/server/message-validation.ts';

/** docs/protocol.md with runs of spaces as one (its tables are padded). */
const DOC = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8').replace(/ {2,}/g, ' ');
/** docs/errors.md, the table of every code (protocol.md links to it), with runs of spaces as one. */
const ERRORS_DOC = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8').replace(/ {2,}/g, ' ');

/** The ProtocolError that parsing `frame` throws. */
function rejection(frame: Buffer | ArrayBuffer | Buffer[], limits?: ProtocolLimits, isBinary?: boolean): ProtocolError {
  try {
    parseClientMessage(frame, limits, isBinary);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error('parseClientMessage accepted the frame');
}

function codeOf(value: unknown, limits?: ProtocolLimits): ErrorCode {
  return rejection(pack(value), limits).code;
}

const hex = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');
/** msgpack str of `s` (fixstr or str8), for hand-built frames. */
function str(s: string): string {
  const b = Buffer.from(s, 'utf8');
  const head = b.length < 32 ? (0xa0 | b.length).toString(16) : `d9${b.length.toString(16).padStart(2, '0')}`;
  return head + b.toString('hex');
}

const PING = new Map<string, unknown>([
  ['type', 'ping'],
  ['id', 1],
]);
const prompt = (text: string, weight = 1) => ({ text, weight });

describe('parseClientMessage: frames that are not one msgpack map with a string type → bad_message', () => {
  const cases: [string, Buffer][] = [
    ['empty frame', Buffer.alloc(0)],
    ['the never-used byte 0xc1', hex('c1')],
    ['not msgpack at all (text)', Buffer.from('{"type":"ping","id":1}')],
    ['truncated string', hex('81 a4 74797065 a4 7069')],
    ['truncated map', hex('82 a4 74797065 a4 70696e67')],
    ['trailing bytes', Buffer.concat([pack(PING), hex('00')])],
    ['two messages in one frame', Buffer.concat([pack(PING), pack(PING)])],
    ['msgpack array', pack([{ type: 'ping', id: 1 }])],
    ['msgpack string', pack('ping')],
    ['msgpack nil', hex('c0')],
    ['binary', pack(Buffer.from('ping'))],
    ['map without type', pack({ id: 1 })],
    ['empty map', hex('80')],
    ['type is a number', pack({ type: 1, id: 1 })],
    ['type is nil', pack({ type: null, id: 1 })],
    ['type is a map', pack({ type: { name: 'ping' }, id: 1 })],
    [
      'non-string key',
      pack(
        new Map<unknown, unknown>([
          ['type', 'ping'],
          [1, 1],
        ]),
      ),
    ],
    [
      'non-string key, nested',
      pack(
        new Map<unknown, unknown>([
          ['type', 'config'],
          ['config', new Map([[true, 1]])],
        ]),
      ),
    ],
    ['duplicate key', hex(`83 ${str('type')} ${str('ping')} ${str('id')} 01 ${str('id')} 02`)],
    ['duplicate type key', hex(`83 ${str('type')} ${str('ping')} ${str('type')} ${str('setup')} ${str('id')} 01`)],
    ['timestamp extension', pack({ type: 'ping', id: new Date(0) })],
    ['msgpackr record extension', new Packr({ useRecords: true }).pack({ type: 'ping', id: 1 })],
    ['typed array extension', new Packr({ useRecords: false, moreTypes: true }).pack({ type: 'ping', id: new Float32Array(2) })],
    ['ext 0 (undefined)', hex(`82 ${str('type')} ${str('ping')} ${str('id')} d4 00 00`)],
    ['structured clone pointer', hex(`82 ${str('type')} ${str('ping')} ${str('id')} d6 70 00000001`)],
    ['nested 20 deep', hex(`82 ${str('type')} ${str('ping')} ${str('id')} ${'91'.repeat(20)} 00`)],
    ['array32 declaring 2^32-1 entries', hex('dd ffffffff 00')],
    ['map32 declaring 2^32-1 entries', hex(`df ffffffff ${str('type')} ${str('ping')}`)],
    ['str32 declaring 4 GiB', hex(`81 ${str('type')} db ffffffff 70696e67`)],
    ['bin32 declaring 4 GiB', hex(`82 ${str('type')} ${str('ping')} ${str('id')} c6 ffffffff 00`)],
    ['invalid UTF-8 in a string value', hex(`82 ${str('type')} ${str('ping')} ${str('id')} a2 fffe`)],
    ['invalid UTF-8 in a key', hex(`82 ${str('type')} ${str('ping')} a2 c328 01`)],
    ['a truncated UTF-8 sequence', hex(`82 ${str('type')} ${str('ping')} ${str('id')} a2 41e2`)],
    ['an overlong UTF-8 form', hex(`82 ${str('type')} ${str('ping')} ${str('id')} a2 c0af`)],
    ['a UTF-16 surrogate in UTF-8', hex(`82 ${str('type')} ${str('ping')} ${str('id')} a3 eda080`)],
    [
      'invalid UTF-8 in a prompt text',
      hex(`82 ${str('type')} ${str('prompts')} ${str('prompts')} 91 82 ${str('text')} a3 6162ff ${str('weight')} 01`),
    ],
  ];
  for (const [name, frame] of cases) {
    it(name, () => {
      const err = rejection(frame);
      expect(err.code).toBe('bad_message');
      expect(err.fatal).toBe(false);
      expect(err.message).toMatch(/^Malformed message: /);
    });
  }

  it('more values than MAX_VALUES (work per frame stays small)', () => {
    const junk = pack({ type: 'ping', id: 1, junk: Array.from({ length: 6000 }, (_, i) => ({ k: i })) });
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) expect(rejection(junk).message).toMatch(/more than 1024 values/);
    expect(performance.now() - t0).toBeLessThan(500);
    // a long but legal message is far below the cap
    expect(parseClientMessage(pack({ type: 'prompts', prompts: ['a', 'b', 'c', 'd'].map((t) => prompt(t.repeat(300))) }))).toMatchObject({
      type: 'prompts',
    });
  });

  it('a text frame, even with a valid msgpack payload', () => {
    expect(rejection(pack(PING), undefined, false).code).toBe('bad_message');
  });

  it('refuses huge declared sizes quickly, without allocating them', () => {
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) rejection(hex('dd ffffffff 00'));
    // a 1 MiB frame of nested one-element arrays: refused at the nesting limit, not by a stack overflow
    expect(rejection(Buffer.alloc(1 << 20, 0x91)).message).toMatch(/nested deeper/);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe('parseClientMessage: types and fields', () => {
  it('unknown type → unknown_type', () => {
    expect(codeOf({ type: 'pong', id: 1 })).toBe('unknown_type');
    expect(codeOf({ type: 'SETUP', listen: 'lofi' })).toBe('unknown_type');
    expect(codeOf({ type: '' })).toBe('unknown_type');
    const err = rejection(pack({ type: 'x'.repeat(10_000) }));
    expect(err.code).toBe('unknown_type');
    expect(err.message.length).toBeLessThan(200); // the type is not echoed whole
  });

  it('unknown field → unknown_field, naming it with its path', () => {
    const cases: [unknown, string][] = [
      [{ type: 'ping', id: 1, extra: true }, 'extra'],
      [{ type: 'setup', listen: 'lofi', model: 'large' }, 'model'],
      [{ type: 'setup', session: { prompts: [prompt('a')], bpm: 120 } }, 'session.bpm'],
      [{ type: 'setup', session: { config: { temperature: 1, top_k: 40 } } }, 'session.config.top_k'],
      [{ type: 'setup', resume: { session: 's', token: 't', seq: 3 } }, 'resume.seq'],
      [{ type: 'prompts', prompts: [{ text: 'a', weight: 1, mute: true }] }, 'prompts[0].mute'],
      [{ type: 'config', config: { bpm: 120 } }, 'config.bpm'],
      [{ type: 'playback', action: 'play', at: 0 }, 'at'],
      [{ type: 'ping', id: 1, 'odd key': 1 }, '["odd key"]'],
    ];
    for (const [msg, field] of cases) {
      const err = rejection(pack(msg));
      expect(err.code, JSON.stringify(msg)).toBe('unknown_field');
      expect(err.field).toBe(field);
      expect(errorMessage(err).field).toBe(field);
    }
  });

  it('__proto__, constructor and prototype keys are unknown fields and pollute nothing', () => {
    const polluting = new Map<string, unknown>([
      ['polluted', true],
      ['topK', 1],
    ]);
    const frames: [Map<string, unknown>, string][] = [
      [
        new Map<string, unknown>([
          ['type', 'ping'],
          ['id', 1],
          ['__proto__', polluting],
        ]),
        '__proto__',
      ],
      [
        new Map<string, unknown>([
          ['__proto__', polluting],
          ['type', 'ping'],
          ['id', 1],
        ]),
        '__proto__',
      ],
      [
        new Map<string, unknown>([
          ['type', 'config'],
          ['config', new Map([['__proto__', polluting]])],
        ]),
        'config.__proto__',
      ],
      [
        new Map<string, unknown>([
          ['type', 'config'],
          ['config', new Map([['constructor', polluting]])],
        ]),
        'config.constructor',
      ],
      [
        new Map<string, unknown>([
          ['type', 'prompts'],
          [
            'prompts',
            [
              new Map<string, unknown>([
                ['text', 'a'],
                ['weight', 1],
                ['prototype', polluting],
              ]),
            ],
          ],
        ]),
        'prompts[0].prototype',
      ],
    ];
    for (const [map, field] of frames) {
      const err = rejection(pack(map));
      expect(err.code).toBe('unknown_field');
      expect(err.field).toBe(field);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(Object.prototype).not.toHaveProperty('topK');
  });

  it('wrong types and out-of-range values → invalid_field, naming the field', () => {
    const cases: [unknown, string][] = [
      // setup
      [{ type: 'setup' }, 'listen'],
      [{ type: 'setup', token: 'abc' }, 'listen'],
      [{ type: 'setup', token: 42, listen: 'lofi' }, 'token'],
      [{ type: 'setup', token: '', listen: 'lofi' }, 'token'],
      [{ type: 'setup', token: 't'.repeat(4097), listen: 'lofi' }, 'token'],
      [{ type: 'setup', listen: 7 }, 'listen'],
      [{ type: 'setup', listen: '' }, 'listen'],
      [{ type: 'setup', listen: 'Lofi' }, 'listen'],
      [{ type: 'setup', listen: '-lofi' }, 'listen'],
      [{ type: 'setup', listen: '../etc' }, 'listen'],
      [{ type: 'setup', listen: 'a'.repeat(65) }, 'listen'],
      [{ type: 'setup', session: [] }, 'session'],
      [{ type: 'setup', session: 'yes' }, 'session'],
      [{ type: 'setup', listen: 'lofi', session: {} }, 'session'],
      [{ type: 'setup', session: { prompts: 'jazz' } }, 'session.prompts'],
      [{ type: 'setup', session: { config: [] } }, 'session.config'],
      [{ type: 'setup', session: { config: { seed: -1 } } }, 'session.config.seed'],
      [{ type: 'setup', resume: 'abc' }, 'resume'],
      [{ type: 'setup', session: {}, resume: { session: 's', token: 't' } }, 'resume'],
      [{ type: 'setup', listen: 'lofi', resume: { session: 's', token: 't' } }, 'resume'],
      [{ type: 'setup', resume: { token: 't' } }, 'resume.session'],
      [{ type: 'setup', resume: { session: 's' } }, 'resume.token'],
      [{ type: 'setup', resume: { session: '', token: 't' } }, 'resume.session'],
      [{ type: 'setup', resume: { session: 's', token: 't'.repeat(129) } }, 'resume.token'],
      [{ type: 'setup', resume: { session: 7, token: 't' } }, 'resume.session'],
      // prompts
      [{ type: 'prompts' }, 'prompts'],
      [{ type: 'prompts', prompts: null }, 'prompts'],
      [{ type: 'prompts', prompts: [] }, 'prompts'],
      [{ type: 'prompts', prompts: { text: 'a', weight: 1 } }, 'prompts'],
      [{ type: 'prompts', prompts: ['jazz'] }, 'prompts[0]'],
      [{ type: 'prompts', prompts: [[]] }, 'prompts[0]'],
      [{ type: 'prompts', prompts: [{ weight: 1 }] }, 'prompts[0].text'],
      [{ type: 'prompts', prompts: [{ text: 5, weight: 1 }] }, 'prompts[0].text'],
      [{ type: 'prompts', prompts: [{ text: Buffer.from('jazz'), weight: 1 }] }, 'prompts[0].text'],
      [{ type: 'prompts', prompts: [{ text: '', weight: 1 }] }, 'prompts[0].text'],
      [{ type: 'prompts', prompts: [{ text: ' \n\t ', weight: 1 }] }, 'prompts[0].text'],
      [{ type: 'prompts', prompts: [{ text: 'a' }] }, 'prompts[0].weight'],
      [{ type: 'prompts', prompts: [{ text: 'a', weight: '1' }] }, 'prompts[0].weight'],
      [{ type: 'prompts', prompts: [{ text: 'a', weight: true }] }, 'prompts[0].weight'],
      [{ type: 'prompts', prompts: [{ text: 'a', weight: -0.1 }] }, 'prompts[0].weight'],
      [{ type: 'prompts', prompts: [{ text: 'a', weight: 100.5 }] }, 'prompts[0].weight'],
      [{ type: 'prompts', prompts: [prompt('a'), { text: 'b', weight: NaN }] }, 'prompts[1].weight'],
      [{ type: 'prompts', prompts: [{ text: 'a', weight: Infinity }] }, 'prompts[0].weight'],
      [{ type: 'prompts', prompts: [{ text: 'a', weight: -Infinity }] }, 'prompts[0].weight'],
      [{ type: 'prompts', prompts: [prompt('a', 0), prompt('b', 0)] }, 'prompts'],
      [{ type: 'prompts', prompts: [prompt('rain'), prompt(' rain ')] }, 'prompts[1].text'],
      [{ type: 'prompts', prompts: [prompt('a')], transitionMs: -1 }, 'transitionMs'],
      [{ type: 'prompts', prompts: [prompt('a')], transitionMs: 60_001 }, 'transitionMs'],
      [{ type: 'prompts', prompts: [prompt('a')], transitionMs: '100' }, 'transitionMs'],
      [{ type: 'prompts', prompts: [prompt('a')], transitionMs: NaN }, 'transitionMs'],
      // config
      [{ type: 'config' }, 'config'],
      [{ type: 'config', config: 1 }, 'config'],
      [{ type: 'config', config: { temperature: -0.01 } }, 'config.temperature'],
      [{ type: 'config', config: { temperature: 5.01 } }, 'config.temperature'],
      [{ type: 'config', config: { temperature: NaN } }, 'config.temperature'],
      [{ type: 'config', config: { temperature: '1' } }, 'config.temperature'],
      [{ type: 'config', config: { topK: 40.5 } }, 'config.topK'],
      [{ type: 'config', config: { topK: 2049 } }, 'config.topK'],
      [{ type: 'config', config: { topK: -1 } }, 'config.topK'],
      [{ type: 'config', config: { topP: 1.01 } }, 'config.topP'],
      [{ type: 'config', config: { topP: -Infinity } }, 'config.topP'],
      [{ type: 'config', config: { guidance: 10.5 } }, 'config.guidance'],
      [{ type: 'config', config: { guidance: false } }, 'config.guidance'],
      [{ type: 'config', config: { seed: 2 ** 32 } }, 'config.seed'],
      [{ type: 'config', config: { seed: 1.5 } }, 'config.seed'],
      [{ type: 'config', config: { seed: -1 } }, 'config.seed'],
      [{ type: 'config', config: { seed: { value: 1 } } }, 'config.seed'],
      // playback
      [{ type: 'playback' }, 'action'],
      [{ type: 'playback', action: 'rewind' }, 'action'],
      [{ type: 'playback', action: 'PLAY' }, 'action'],
      [{ type: 'playback', action: 1 }, 'action'],
      [{ type: 'playback', action: ['play'] }, 'action'],
      // ping
      [{ type: 'ping' }, 'id'],
      [{ type: 'ping', id: null }, 'id'],
      [{ type: 'ping', id: 'x'.repeat(65) }, 'id'],
      [{ type: 'ping', id: NaN }, 'id'],
      [{ type: 'ping', id: true }, 'id'],
      [{ type: 'ping', id: { nested: { junk: [1, 2, { deeper: [] }] } } }, 'id'],
      [{ type: 'ping', id: Buffer.alloc(4) }, 'id'],
    ];
    for (const [msg, field] of cases) {
      const err = rejection(pack(msg));
      expect(err.code, `${JSON.stringify(msg)?.slice(0, 120)} → ${err.message}`).toBe('invalid_field');
      expect(err.field, err.message).toBe(field);
      expect(err.message).toContain(field);
      expect(err.fatal).toBe(false);
    }
  });

  it('prompt count and length limits → too_many_prompts, prompt_too_long', () => {
    const five = ['a', 'b', 'c', 'd', 'e'].map((t) => prompt(t));
    let err = rejection(pack({ type: 'prompts', prompts: five }));
    expect([err.code, err.field]).toEqual(['too_many_prompts', 'prompts']);
    err = rejection(pack({ type: 'setup', session: { prompts: five } }));
    expect([err.code, err.field]).toEqual(['too_many_prompts', 'session.prompts']);
    expect(parseClientMessage(pack({ type: 'prompts', prompts: five.slice(0, 4) }))).toMatchObject({ type: 'prompts' });
    expect(parseClientMessage(pack({ type: 'prompts', prompts: five }), { maxPromptChars: 300, maxPrompts: 5 })).toMatchObject({
      type: 'prompts',
    });

    const max = DEFAULT_PROTOCOL_LIMITS.maxPromptChars;
    expect(parseClientMessage(pack({ type: 'prompts', prompts: [prompt('x'.repeat(max))] }))).toMatchObject({ type: 'prompts' });
    err = rejection(pack({ type: 'prompts', prompts: [prompt('ok'), prompt('x'.repeat(max + 1))] }));
    expect([err.code, err.field]).toEqual(['prompt_too_long', 'prompts[1].text']);
    // counted in code points, after trimming
    expect(parseClientMessage(pack({ type: 'prompts', prompts: [prompt(`  ${'🎹'.repeat(max)}  `)] }))).toMatchObject({ type: 'prompts' });
    expect(codeOf({ type: 'prompts', prompts: [prompt('🎹'.repeat(max + 1))] })).toBe('prompt_too_long');
    expect(codeOf({ type: 'prompts', prompts: [prompt('abcdef')] }, { maxPromptChars: 5, maxPrompts: 4 })).toBe('prompt_too_long');
    expect(codeOf({ type: 'prompts', prompts: [prompt('x'.repeat(50_000))] })).toBe('prompt_too_long');
  });
});

describe('parseClientMessage: valid messages', () => {
  const valid: [unknown, ClientMessage][] = [
    [
      { type: 'setup', token: 'secret', listen: 'lofi' },
      { type: 'setup', token: 'secret', listen: 'lofi' },
    ],
    [
      { type: 'setup', listen: '0' },
      { type: 'setup', listen: '0' },
    ],
    [
      { type: 'setup', listen: `a${'_-9'.repeat(21)}` },
      { type: 'setup', listen: `a${'_-9'.repeat(21)}` },
    ],
    [
      { type: 'setup', session: {} },
      { type: 'setup', session: {} },
    ],
    [
      { type: 'setup', token: 't', session: { prompts: [{ text: ' warm synthwave ', weight: 1 }], config: { seed: 42, topK: 40 } } },
      { type: 'setup', token: 't', session: { prompts: [{ text: 'warm synthwave', weight: 1 }], config: { seed: 42, topK: 40 } } },
    ],
    [
      { type: 'prompts', prompts: [prompt('lofi hip hop', 1), prompt('rain', 0.3), prompt('vinyl crackle', 0)], transitionMs: 4000 },
      { type: 'prompts', prompts: [prompt('lofi hip hop', 1), prompt('rain', 0.3), prompt('vinyl crackle', 0)], transitionMs: 4000 },
    ],
    [
      { type: 'prompts', prompts: [prompt('a', 100)], transitionMs: 0 },
      { type: 'prompts', prompts: [prompt('a', 100)], transitionMs: 0 },
    ],
    [
      { type: 'config', config: {} },
      { type: 'config', config: {} },
    ],
    [
      { type: 'config', config: { temperature: 0, topK: 0, topP: 0, guidance: 0, seed: 0 } },
      { type: 'config', config: { temperature: 0, topK: 0, topP: 0, guidance: 0, seed: 0 } },
    ],
    [
      { type: 'config', config: { temperature: 5, topK: 2048, topP: 1, guidance: 10, seed: 2 ** 32 - 1 } },
      { type: 'config', config: { temperature: 5, topK: 2048, topP: 1, guidance: 10, seed: 2 ** 32 - 1 } },
    ],
    [
      { type: 'config', config: { ...DEFAULT_CONFIG } },
      { type: 'config', config: { ...DEFAULT_CONFIG } },
    ],
    ...['play', 'pause', 'stop', 'reset_context'].map((action): [unknown, ClientMessage] => [
      { type: 'playback', action },
      { type: 'playback', action } as ClientMessage,
    ]),
    [
      { type: 'ping', id: 7 },
      { type: 'ping', id: 7 },
    ],
    [
      { type: 'ping', id: -1.5 },
      { type: 'ping', id: -1.5 },
    ],
    [
      { type: 'ping', id: '' },
      { type: 'ping', id: '' },
    ],
    [
      { type: 'ping', id: 'é'.repeat(64) },
      { type: 'ping', id: 'é'.repeat(64) },
    ],
  ];

  it('parse to exactly the expected messages', () => {
    for (const [msg, expected] of valid) expect(parseClientMessage(pack(msg)), JSON.stringify(msg)).toStrictEqual(expected);
  });

  it('survive a pack / parse round trip unchanged', () => {
    for (const [, expected] of valid) expect(parseClientMessage(pack(expected))).toStrictEqual(expected);
  });

  it('every message may carry an id (a string of 1..64 characters), which parsing keeps', () => {
    const id = '☃'.repeat(64);
    expect(parseClientMessage(pack({ type: 'setup', listen: 'lofi', id }))).toStrictEqual({ type: 'setup', listen: 'lofi', id });
    expect(parseClientMessage(pack({ type: 'setup', resume: { session: 'session:1', token: 'k' }, id }))).toStrictEqual({
      type: 'setup',
      resume: { session: 'session:1', token: 'k' },
      id,
    });
    expect(parseClientMessage(pack({ type: 'playback', action: 'play', id: 'p' }))).toStrictEqual({
      type: 'playback',
      action: 'play',
      id: 'p',
    });
    expect(parseClientMessage(pack({ type: 'config', config: {}, id: 'c' }))).toStrictEqual({ type: 'config', config: {}, id: 'c' });
    expect(parseClientMessage(pack({ type: 'prompts', prompts: [prompt('a')], id: null }))).toStrictEqual({
      type: 'prompts',
      prompts: [prompt('a')],
    });
    for (const bad of ['', 'x'.repeat(65), 7, false, [1], Buffer.from('id')]) {
      const err = rejection(pack({ type: 'playback', action: 'play', id: bad }));
      expect([err.code, err.field], JSON.stringify(bad)).toEqual(['invalid_field', 'id']);
    }
  });

  it("parseClientFrame: a refused message's error comes with its id, when the id is valid", () => {
    const refused = (msg: unknown): [string, unknown] => {
      const r = parseClientFrame(pack(msg));
      if (!('error' in r)) throw new Error('accepted');
      return [r.error.code, r.id];
    };
    expect(refused({ type: 'config', config: { topP: 7 }, id: 'a' })).toEqual(['invalid_field', 'a']);
    expect(refused({ type: 'prompts', prompts: [], extra: 1, id: 'b' })).toEqual(['unknown_field', 'b']);
    expect(refused({ type: 'ping', id: 3, extra: 1 })).toEqual(['unknown_field', 3]);
    expect(refused({ type: 'dance', id: 'c' })).toEqual(['unknown_type', 'c']);
    expect(refused({ type: 'dance', id: 4 })).toEqual(['unknown_type', undefined]);
    expect(refused({ type: 'playback', action: 'play', id: 5 })).toEqual(['invalid_field', undefined]);
    expect(parseClientFrame(pack({ type: 'ping', id: 'x' }))).toStrictEqual({ message: { type: 'ping', id: 'x' } });
  });

  it('nil in an optional field counts as absent', () => {
    expect(parseClientMessage(pack({ type: 'setup', token: null, listen: 'lofi', session: null }))).toStrictEqual({
      type: 'setup',
      listen: 'lofi',
    });
    expect(parseClientMessage(pack({ type: 'config', config: { temperature: null, seed: 3 } }))).toStrictEqual({
      type: 'config',
      config: { seed: 3 },
    });
    expect(parseClientMessage(pack({ type: 'prompts', prompts: [prompt('a')], transitionMs: null }))).toStrictEqual({
      type: 'prompts',
      prompts: [prompt('a')],
    });
  });

  it('accepts any msgpack number encoding and any input form ws gives', () => {
    const seed64 = hex(`82 ${str('type')} ${str('config')} ${str('config')} 81 ${str('seed')} cf 00000000ffffffff`);
    expect(parseClientMessage(seed64)).toStrictEqual({ type: 'config', config: { seed: 2 ** 32 - 1 } });
    const topKFloat = hex(
      `82 ${str('type')} ${str('config')} ${str('config')} 81 ${str('topK')} cb ${Buffer.from(new Float64Array([40]).buffer)
        .reverse()
        .toString('hex')}`,
    );
    expect(parseClientMessage(topKFloat)).toStrictEqual({ type: 'config', config: { topK: 40 } });
    const tempFloat32 = hex(`82 ${str('type')} ${str('config')} ${str('config')} 81 ${str('temperature')} ca 3f000000`);
    expect(parseClientMessage(tempFloat32)).toStrictEqual({ type: 'config', config: { temperature: 0.5 } });
    const map16 = hex(`de 0002 ${str('type')} ${str('ping')} ${str('id')} 01`);
    expect(parseClientMessage(map16)).toStrictEqual({ type: 'ping', id: 1 });

    const frame = pack({ type: 'ping', id: 'abc' });
    const expected = { type: 'ping', id: 'abc' };
    expect(parseClientMessage(frame)).toStrictEqual(expected);
    expect(parseClientMessage(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length) as ArrayBuffer)).toStrictEqual(
      expected,
    );
    expect(parseClientMessage([frame.subarray(0, 3), frame.subarray(3, 7), frame.subarray(7)])).toStrictEqual(expected);
    const padded = Buffer.concat([hex('ffff'), frame, hex('ffff')]);
    expect(parseClientMessage(padded.subarray(2, 2 + frame.length))).toStrictEqual(expected);
  });
});

describe('error registry', () => {
  it('codes are unique, snake_case, match their keys and are never retired codes', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    expect(ERROR_CODES).toEqual(Object.keys(PROTOCOL_ERRORS));
    for (const code of ERROR_CODES) {
      expect(code).toMatch(/^[a-z][a-z_]*[a-z]$/);
      expect(isErrorCode(code)).toBe(true);
      expect(new ProtocolError(code as 'internal').code).toBe(code);
    }
    for (const code of RETIRED_ERROR_CODES) expect(ERROR_CODES).not.toContain(code);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode('__proto__')).toBe(false);
  });

  it("has every code the protocol issue names, and the cluster issue's no_session", () => {
    const named = [
      'no_session',
      'bad_message',
      'unknown_type',
      'invalid_field',
      'unknown_field',
      'setup_required',
      'already_setup',
      'unauthorized',
      'forbidden',
      'not_found',
      'no_stream',
      'busy',
      'rate_limited',
      'too_large',
      'prompt_too_long',
      'too_many_prompts',
      'slow_consumer',
      'shutting_down',
      'internal',
    ];
    expect([...ERROR_CODES].sort()).toEqual(named.sort());
  });

  it('close codes are standard ones or in the application range', () => {
    const known = new Set<number>(Object.values(CLOSE_CODES));
    for (const code of ERROR_CODES) {
      const { closeCode, message, meaning } = PROTOCOL_ERRORS[code];
      expect(known.has(closeCode), code).toBe(true);
      expect(
        closeCode === 1001 ||
          closeCode === 1008 ||
          closeCode === 1009 ||
          closeCode === 1011 ||
          closeCode === 1013 ||
          (closeCode >= 4000 && closeCode <= 4999),
      ).toBe(true);
      expect(message.length).toBeGreaterThan(0);
      expect(meaning.length).toBeGreaterThan(0);
    }
  });

  it('ProtocolError fills its template, carries fatal, close code, field; asFatal; errorMessage', () => {
    const e = new ProtocolError('invalid_field', 'config.topP', 'must be in 0..1, got 2');
    expect(e).toBeInstanceOf(Error);
    expect([e.code, e.fatal, e.closeCode, e.field, e.closeReason]).toEqual(['invalid_field', false, 1008, 'config.topP', 'invalid_field']);
    expect(e.message).toBe('Invalid field config.topP: must be in 0..1, got 2');
    expect(errorMessage(e)).toStrictEqual({ type: 'error', code: 'invalid_field', message: e.message, fatal: false, field: 'config.topP' });

    const f = e.asFatal();
    expect([f.code, f.fatal, f.closeCode, f.message, f.field]).toEqual(['invalid_field', true, 1008, e.message, 'config.topP']);
    expect(e.fatal).toBe(false);

    const busy = new ProtocolError('busy', 'all 8 sessions are in use');
    expect([busy.fatal, busy.closeCode, busy.field]).toEqual([true, 1013, undefined]);
    expect(errorMessage(busy)).toStrictEqual({
      type: 'error',
      code: 'busy',
      message: 'Server busy: all 8 sessions are in use',
      fatal: true,
    });
    expect(busy.asFatal()).toBe(busy);

    const internal = toProtocolError(new Error('secret path /home/x'));
    expect([internal.code, internal.fatal, internal.closeCode]).toEqual(['internal', true, 1011]);
    expect(internal.message).not.toContain('secret');
    expect(toProtocolError(busy)).toBe(busy);
  });

  it('template arity is checked at compile time', () => {
    // Never called: tsc (npm test) checks these lines.
    const typeChecks = (): void => {
      // @ts-expect-error invalid_field takes a field and a reason
      void new ProtocolError('invalid_field', 'config.topK');
      // @ts-expect-error internal takes no argument
      void new ProtocolError('internal', 'details');
      // @ts-expect-error not a code
      void new ProtocolError('no_such_code');
    };
    expect(typeof typeChecks).toBe('function');
  });

  it('docs/errors.md documents every code, with the same fatal flag and close code, and no other', () => {
    const rows = [
      ...ERRORS_DOC.matchAll(/^\| `([a-z_]+)` \| protocol v1 \(`ProtocolError`\) \| [^|]+ \| (yes|no) \| (\d{4}) \| (.+) \|$/gm),
    ];
    const documented = new Map(rows.map((m) => [m[1]!, { fatal: m[2] === 'yes', closeCode: Number(m[3]) }]));
    expect(rows.length).toBe(documented.size); // no code twice
    expect([...documented.keys()].sort()).toEqual([...ERROR_CODES].sort());
    for (const code of ERROR_CODES) {
      expect(documented.get(code), code).toEqual({ fatal: PROTOCOL_ERRORS[code].fatal, closeCode: PROTOCOL_ERRORS[code].closeCode });
    }
    // and no retired code is presented as live
    for (const code of RETIRED_ERROR_CODES) expect(documented.has(code)).toBe(false);
  });

  it('docs/protocol.md has a section for every message type, both ways', () => {
    for (const type of [...CLIENT_MESSAGE_TYPES, ...SERVER_MESSAGE_TYPES]) expect(DOC, type).toContain(`### \`${type}\``);
    for (const [field, range] of Object.entries(CONFIG_RANGES))
      expect(DOC).toContain(`| \`config.${field}\` | ${range.integer ? 'integer' : 'number'} | ${range.min}..${range.max} |`);
  });
});

describe('encodeServerMessage', () => {
  const audio = { codec: 'opus', sampleRate: 48000, channels: 2, frameMs: 20, preSkip: 312 } as const;
  const messages: ServerMessage[] = [
    { type: 'setup_complete', sessionId: 's-1', channel: 'lofi', audio, model: { name: 'musicgen-small', random: false } },
    { type: 'setup_complete', sessionId: 's-2', audio: { ...audio, channels: 1 }, model: { name: 'tiny', random: true } },
    {
      type: 'audio',
      seq: 1500,
      pts: 1_440_000,
      packets: [new Uint8Array([0xfc, 1, 2]), Buffer.from([0xfc, 3]), new Uint8Array(0)],
      control: 3,
    },
    { type: 'applied', control: 4, prompts: [prompt('lofi hip hop'), prompt('rain', 0.25)], config: { ...DEFAULT_CONFIG }, pts: 1_488_000 },
    { type: 'status', leadMs: 1850.5, rtf: 1.7, underruns: 0, listeners: 12 },
    { type: 'status', leadMs: 0, rtf: 0, underruns: 3 },
    errorMessage(new ProtocolError('invalid_field', 'config.topP', 'must be in 0..1, got 2')),
    errorMessage(new ProtocolError('busy', 'all sessions are in use')),
    { type: 'pong', id: 'abc' },
    { type: 'pong', id: 7 },
  ];

  it('decodes back to the same message, with any msgpack decoder', () => {
    for (const msg of messages) {
      const frame = encodeServerMessage(msg);
      expect(decodeMessage(frame), msg.type).toStrictEqual(
        msg.type === 'audio' ? { ...msg, packets: msg.packets.map((p) => Buffer.from(p)) } : msg,
      );
      // msgpackr's default decoder (records off) reads the same thing
      const plain = unpack(frame) as Record<string, unknown>;
      expect(plain.type).toBe(msg.type);
    }
  });

  it('sends audio packets as msgpack bin and no undefined / extension values', () => {
    const frame = encodeServerMessage({ type: 'audio', seq: 0, pts: 0, packets: [new Uint8Array([9, 8, 7])], control: 1 });
    expect(frame.includes(hex('c4 03 090807'))).toBe(true);
    const withUndefined = encodeServerMessage({
      type: 'setup_complete',
      sessionId: 's',
      channel: undefined,
      audio,
      model: { name: 'm', random: false },
    });
    expect(Object.keys(decodeMessage(withUndefined) ?? {})).toEqual(['type', 'sessionId', 'audio', 'model']);
    for (const msg of messages) {
      // the strict walker that checks client frames accepts it: plain msgpack, no extension types
      expect(() => checkFrame(encodeServerMessage(msg))).not.toThrow();
    }
  });

  it('drops fields that are not part of the protocol', () => {
    const extra = { type: 'pong', id: 1, secret: 'x' } as ServerMessage;
    expect(decodeMessage(encodeServerMessage(extra))).toStrictEqual({ type: 'pong', id: 1 });
    const applied = {
      type: 'applied',
      control: 1,
      prompts: [{ text: 'a', weight: 1, encoding: {} }],
      config: { ...DEFAULT_CONFIG, extra: 1 },
      pts: 0,
    } as unknown as ServerMessage;
    expect(decodeMessage(encodeServerMessage(applied))).toStrictEqual({
      type: 'applied',
      control: 1,
      prompts: [prompt('a')],
      config: { ...DEFAULT_CONFIG },
      pts: 0,
    });
  });

  it('keeps large pts exact and earlier frames intact', () => {
    const late: ServerMessage = { type: 'audio', seq: 2 ** 33 / 960, pts: 2 ** 33, packets: [Buffer.from([1])], control: 1 };
    expect(decodeMessage(encodeServerMessage(late))).toMatchObject({ pts: 2 ** 33, seq: 2 ** 33 / 960 });
    const first = encodeServerMessage(messages[2]!);
    const copy = Buffer.from(first);
    for (let i = 0; i < 5000; i++)
      encodeServerMessage({ type: 'audio', seq: i, pts: i * 960, packets: [Buffer.alloc(300, i & 0xff)], control: i });
    expect(first.equals(copy)).toBe(true);
  });
});
