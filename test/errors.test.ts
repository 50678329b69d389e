// One error convention (src/errors.ts): every family's codes are unique across families, follow the
// naming rule, and appear in docs/errors.md with the same close code and HTTP status, and the table
// names no code that does not exist.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLIENT_EVENT_ERRORS, CONNECT_ERRORS } from '../clients/sdk/errors.ts';
import { USAGE_ERRORS } from '../src/cli/usage-error.ts';
import { CLUSTER_ERRORS } from '../src/cluster/cluster-errors.ts';
import type { ErrorCodeSpec, ErrorRegistry } from '../src/errors.ts';
import { CHECKPOINT_ERRORS } from '../src/models/errors.ts';
import { HUB_ERRORS } from '../src/models/hub.ts';
import { PROTOCOL_ERRORS } from '../src/protocol/errors.ts';
import { AUDIO_FILE_ERRORS } from '../src/stream/audio-file.ts';
import { CODEC_STREAM_ERRORS } from '../src/stream/codec-stream.ts';
import { ENGINE_ERRORS } from '../src/stream/engine-errors.ts';

const REGISTRIES: Record<string, ErrorRegistry> = {
  PROTOCOL_ERRORS,
  CLIENT_EVENT_ERRORS,
  CONNECT_ERRORS,
  ENGINE_ERRORS,
  AUDIO_FILE_ERRORS,
  CODEC_STREAM_ERRORS,
  CHECKPOINT_ERRORS,
  HUB_ERRORS,
  CLUSTER_ERRORS,
  USAGE_ERRORS,
};
/** Families whose codes travel in protocol v1's `code` fields: lower_snake. */
const LOWER_SNAKE = new Set(['PROTOCOL_ERRORS', 'CLIENT_EVENT_ERRORS']);

const DOC = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

interface DocumentedCode {
  closeCode: number | undefined;
  httpStatus: number | undefined;
}

/** The rows of the table: | `code` | family | raised in | fatal | close code | HTTP | meaning |. */
function documentedCodes(): Map<string, DocumentedCode> {
  const rows = [...DOC.matchAll(/^\| `([A-Za-z_]+)` \|(.*)\|$/gm)];
  const codes = new Map<string, DocumentedCode>();
  for (const row of rows) {
    const cells = row[2]!.split(' | ').map((c) => c.trim());
    const num = (cell: string | undefined): number | undefined => (cell === undefined || cell === '–' ? undefined : Number(cell));
    expect(codes.has(row[1]!), `${row[1]} twice in docs/errors.md`).toBe(false);
    codes.set(row[1]!, { closeCode: num(cells[3]), httpStatus: num(cells[4]) });
  }
  return codes;
}

const all: [string, string, ErrorCodeSpec][] = Object.entries(REGISTRIES).flatMap(([family, registry]) =>
  Object.entries(registry).map(([code, spec]): [string, string, ErrorCodeSpec] => [family, code, spec]),
);

describe('error codes of every family', () => {
  it('are unique across registries', () => {
    const seen = new Map<string, string>();
    for (const [family, code] of all) {
      expect(seen.get(code), `${code} is in ${seen.get(code)} and ${family}`).toBeUndefined();
      seen.set(code, family);
    }
  });

  it('follow the naming rule: wire codes lower_snake, in-process codes UPPER_SNAKE', () => {
    for (const [family, code] of all) expect(code, family).toMatch(LOWER_SNAKE.has(family) ? /^[a-z]+(_[a-z]+)*$/ : /^[A-Z]+(_[A-Z]+)*$/);
    for (const code of Object.keys(CLIENT_EVENT_ERRORS)) expect(code).toMatch(/^client_/);
  });

  it('each have a meaning', () => {
    for (const [family, code, spec] of all) expect(spec.meaning.length, `${family}.${code}`).toBeGreaterThan(0);
  });

  it('are all in docs/errors.md, with their close code and HTTP status', () => {
    const documented = documentedCodes();
    for (const [family, code, spec] of all) {
      expect(documented.get(code), `${family}.${code} is not in docs/errors.md`).toEqual({
        closeCode: spec.closeCode,
        httpStatus: spec.httpStatus,
      });
    }
  });

  it('docs/errors.md names no code that does not exist', () => {
    const known = new Set(all.map(([, code]) => code));
    for (const code of documentedCodes().keys()) expect(known.has(code), `${code} is documented but in no registry`).toBe(true);
  });
});
