// Access to ../shared/fixtures/musicgen-tiny: the checkpoint and its reference tensors.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../src/models/safetensors.ts';

export const FIXTURE_DIR = fileURLToPath(new URL('../../shared/fixtures/musicgen-tiny/', import.meta.url));

if (!existsSync(FIXTURE_DIR)) throw new Error(`fixture not found at ${FIXTURE_DIR}: tests expect ../shared beside the checkout`);

let reference: SafetensorsFile | null = null;
export function ref(): SafetensorsFile {
  reference ??= SafetensorsFile.open(`${FIXTURE_DIR}reference.safetensors`);
  return reference;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
