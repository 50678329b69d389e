// Reading checkpoints: every way a checkpoint directory can be wrong gives an error naming the file.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '../src/models/checkpoint.ts';
import { CheckpointError } from '../src/models/errors.ts';
import { SafetensorsFile, writeSafetensors } from '../src/models/safetensors.ts';
import { FIXTURE_DIR } from './fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'riverrun-ckpt-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function copyFixture(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors']) copyFileSync(join(FIXTURE_DIR, f), join(dir, f));
  return dir;
}

function expectCheckpointError(fn: () => unknown, code: string, file: string, text: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CheckpointError);
  const e = caught as CheckpointError;
  expect(e.code).toBe(code);
  expect(e.message).toContain(file);
  expect(e.message).toMatch(text);
}

describe('checkpoint errors name the file and the problem', () => {
  it('a directory that does not exist', () => {
    expectCheckpointError(() => Checkpoint.open(join(work, 'absent')), 'CHECKPOINT_MISSING_FILE', 'absent', /not a directory/);
  });

  it('no config.json', () => {
    const dir = copyFixture('no-config');
    rmSync(join(dir, 'config.json'));
    expectCheckpointError(() => Checkpoint.open(dir), 'CHECKPOINT_MISSING_FILE', join(dir, 'config.json'), /missing/);
  });

  it('config.json that is not a MusicGen config', () => {
    const dir = copyFixture('not-musicgen');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama' }));
    expectCheckpointError(() => Checkpoint.open(dir), 'CHECKPOINT_CONFIG', 'config.json', /model_type is "llama"/);
  });

  it('no weights, or only pytorch_model.bin', () => {
    const dir = copyFixture('no-weights');
    rmSync(join(dir, 'model.safetensors'));
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    expectCheckpointError(() => Checkpoint.open(dir), 'CHECKPOINT_MISSING_FILE', 'model.safetensors', /pytorch_model.bin/);
  });

  it('a truncated model.safetensors (an interrupted download)', () => {
    const dir = copyFixture('truncated');
    truncateSync(join(dir, 'model.safetensors'), 1_000_000);
    const ck = Checkpoint.open(dir);
    expectCheckpointError(() => ck.openWeights(), 'CHECKPOINT_TRUNCATED', 'model.safetensors', /incomplete download/);
  });

  it('a file that is not safetensors', () => {
    const dir = copyFixture('garbage');
    writeFileSync(join(dir, 'model.safetensors'), Buffer.alloc(4096, 0xff));
    expectCheckpointError(() => Checkpoint.open(dir).openWeights(), 'CHECKPOINT_CORRUPT', 'model.safetensors', /header length/);
  });

  it('weights whose shapes do not match config.json', () => {
    const dir = copyFixture('mismatch');
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { decoder: { ffn_dim: number } };
    config.decoder.ffn_dim = 128;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const w = Checkpoint.open(dir).openWeights();
    expectCheckpointError(
      () => w.get('decoder.model.decoder.layers.0.fc1.weight', [128, 48]),
      'CHECKPOINT_SHAPE',
      'model.safetensors',
      /shape \[96,48\]/,
    );
    w.close();
  });
});

describe('safetensors', () => {
  it('reads F16 and BF16 tensors as float32', () => {
    const path = join(work, 'half.safetensors');
    // 1.5, -2, 0.099975586 in float16 and bfloat16.
    const f16 = Uint16Array.of(0x3e00, 0xc000, 0x2e66);
    const bf16 = Uint16Array.of(0x3fc0, 0xc000, 0x3dcc);
    const header = JSON.stringify({
      a: { dtype: 'F16', shape: [3], data_offsets: [0, 6] },
      b: { dtype: 'BF16', shape: [3], data_offsets: [6, 12] },
    }).padEnd(104, ' ');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(path, Buffer.concat([len, Buffer.from(header), Buffer.from(f16.buffer), Buffer.from(bf16.buffer)]));
    const f = SafetensorsFile.open(path);
    expect(Array.from(f.float32('a'))).toEqual([1.5, -2, 0.0999755859375]);
    expect(Array.from(f.float32('b'))).toEqual([1.5, -2, 0.099609375]);
    f.close();
  });

  it('round-trips what writeSafetensors writes', () => {
    const path = join(work, 'rt.safetensors');
    writeSafetensors(
      path,
      new Map([
        ['w', { dtype: 'F32', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) }],
        ['i', { dtype: 'I64', shape: [1], data: BigInt64Array.of(-5n) }],
      ]),
    );
    const f = SafetensorsFile.open(path);
    expect(Array.from(f.float32('w', [2, 2]))).toEqual([1, 2, 3, 4]);
    expect(Array.from(f.int64('i'))).toEqual([-5n]);
    expect(readFileSync(path).readBigUInt64LE(0) % 8n).toBe(0n);
    f.close();
  });
});
