// The clients import protocol v1's facts from src/protocol (the page through /protocol.js) instead of
// keeping copies: no close code, endpoint path or default config value is written out in the web page's
// scripts or the SDK's sources (comments aside). And the layers point one way: clients import nothing
// of the server, the engine or the models; src/protocol imports none of them nor the clients.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_PATH } from '../src/protocol/constants.ts';
import { DEFAULT_CONFIG } from '../src/protocol/controls.ts';
import { CLOSE_CODES } from '../src/protocol/errors.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const SOURCES = [
  ...readdirSync(join(ROOT, 'clients/web'))
    .filter((f) => f.endsWith('.js'))
    .map((f) => `clients/web/${f}`),
  ...readdirSync(join(ROOT, 'clients/sdk'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `clients/sdk/${f}`),
];

/** 1000 (normal closure) is left out: it is also the number of ms in a second. */
const CLOSE_CODE_VALUES = Object.values(CLOSE_CODES).filter((c) => c !== CLOSE_CODES.NORMAL);

/** The code without comments (a line comment starts a line or follows a space; `ws://` in a string stays). */
function code(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|\s)\/\/[^\n]*/g, '$1');
}

/** What in `source` copies a protocol fact, one line each. */
function copies(source: string): string[] {
  const found: string[] = [];
  const text = code(source);
  for (const c of CLOSE_CODE_VALUES) if (new RegExp(`(?<![\\w.])${c}(?![\\w.])`).test(text)) found.push(`close code ${c}`);
  if (text.includes(`'${PROTOCOL_PATH}'`) || text.includes(`"${PROTOCOL_PATH}"`) || text.includes(`${PROTOCOL_PATH}\``))
    found.push(`the path ${PROTOCOL_PATH}`);
  for (const key of Object.keys(DEFAULT_CONFIG)) {
    if (new RegExp(`\\b${key}\\s*:\\s*-?\\d`).test(text)) found.push(`a config value written out (${key}: <number>)`);
  }
  return found;
}

describe('clients keep no copy of the protocol', () => {
  it('finds the copies it looks for', () => {
    const old = `const RECONNECT_CODES = new Set([1001, 1006, 1011, 1013]);
const DEFAULT_CONFIG = { temperature: 1, topK: 250, topP: 0, guidance: 3, seed: 0 };
const url = \`ws://\${location.host}/v1/ws\`;
if (code === 4401) stop(); // 4403 in a comment is fine`;
    expect(copies(old)).toEqual([
      'close code 1001',
      'close code 1006',
      'close code 1011',
      'close code 1013',
      'close code 4401',
      'the path /v1/ws',
      'a config value written out (temperature: <number>)',
      'a config value written out (topK: <number>)',
      'a config value written out (topP: <number>)',
      'a config value written out (guidance: <number>)',
      'a config value written out (seed: <number>)',
    ]);
    expect(copies('setTimeout(open, delay / 1000); x = 10013; y = 1.0011;')).toEqual([]);
  });

  it.each(SOURCES)('%s imports them', (file) => {
    expect(copies(readFileSync(join(ROOT, file), 'utf8'))).toEqual([]);
  });

  it('the web page has no copy of the msgpack options: it encodes with the protocol module', () => {
    for (const file of SOURCES.filter((f) => f.startsWith('clients/web/'))) {
      expect(code(readFileSync(join(ROOT, file), 'utf8')), file).not.toMatch(/\bPackr\b|\bmsgpackr\b/);
    }
  });
});

/** Every .ts and .js file under `dir` (relative to the root), recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = `${dir}/${name}`;
    if (statSync(join(ROOT, path)).isDirectory()) return filesUnder(path);
    return /\.(ts|js)$/.test(name) ? [path] : [];
  });
}

/** The module specifiers `file` imports (static and dynamic). */
function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);
}

describe('layers', () => {
  it('clients/ imports nothing under src/server, src/stream or src/models', () => {
    for (const file of filesUnder('clients')) {
      for (const spec of imports(file)) expect(spec, file).not.toMatch(/src\/(server|stream|models)\//);
    }
  });

  it('src/protocol imports nothing of the server, the engine, the models or the clients', () => {
    for (const file of filesUnder('src/protocol')) {
      for (const spec of imports(file)) expect(spec, file).not.toMatch(/^\.\.\/(server|stream|models)\/|clients\//);
    }
  });
});
