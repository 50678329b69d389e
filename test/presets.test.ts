// One piece, over 400 lines: every preset file (config, tokenizer, tensors, values) is checked against the same fixtures and writer.
// Random checkpoints (src/models/presets.ts), the tokenizer wrapper and `riverrun model tiny`.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runModelTiny } from '../src/cli/model-tiny.ts';
import { UsageError } from '../src/cli/usage-error.ts';
import { Checkpoint } from '../src/models/checkpoint.ts';
import { parseMusicgenConfig } from '../src/models/config.ts';
import { CheckpointError } from '../src/models/errors.ts';
import { presetConfig, presetGenerationConfig } from '../src/models/presets/config-files.ts';
import { tensorSpecs } from '../src/models/presets/tensor-specs.ts';
import { presetTokenizerFiles, presetVocab } from '../src/models/presets/tokenizer-files.ts';
import { presetWeightBytes, writeRandomCheckpoint } from '../src/models/presets.ts';
import { SafetensorsFile } from '../src/models/safetensors.ts';
import { sinusoidalPositions } from '../src/models/sinusoidal.ts';
import { loadTokenizer } from '../src/models/tokenizer.ts';

const FIXTURE = '/work/shared/fixtures/musicgen-tiny';
const fixtureConfig = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;

let root: string;
let tinyDir: string;
const PROMPTS = [
  'slow piano',
  'Upbeat techno with heavy drums, 128 BPM!',
  '  lofi\thip hop\nbeats  ',
  'a dark ambient drone (C minor) #42 ~ "quiet" & calm?',
];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'riverrun-presets-'));
  tinyDir = join(root, 'tiny');
  writeRandomCheckpoint(tinyDir, 'tiny', { seed: 7 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const shapesOf = (f: SafetensorsFile): Map<string, number[]> => new Map([...f.tensors].map(([k, v]) => [k, v.shape]));

describe('tensor layout', () => {
  it('derives exactly the fixture checkpoint keys and shapes from the fixture config', () => {
    const f = SafetensorsFile.open(join(FIXTURE, 'model.safetensors'));
    try {
      const derived = new Map(tensorSpecs(fixtureConfig).map((s) => [s.name, s.shape]));
      expect(derived).toEqual(shapesOf(f));
    } finally {
      f.close();
    }
  });

  it('reproduces the fixture sinusoidal position table (float32 steps)', () => {
    const f = SafetensorsFile.open(join(FIXTURE, 'model.safetensors'));
    try {
      const ref = f.float32('decoder.model.decoder.embed_positions.weights', [256, 48]);
      const mine = sinusoidalPositions(256, 48);
      let maxDiff = 0;
      for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - mine[i]!));
      // PyTorch's float32 exp/sin differ from correctly rounded ones by an ulp now and then.
      expect(maxDiff).toBeLessThan(2e-5);
      for (let i = 0; i < 21 * 48; i++) expect(Math.abs(ref[i]! - mine[i]!)).toBeLessThan(1e-6);
    } finally {
      f.close();
    }
  });
});

describe('tiny preset', () => {
  it('writes a checkpoint that Checkpoint.open parses, marked random', () => {
    const ckpt = Checkpoint.open(tinyDir);
    expect(ckpt.rawConfig.riverrun_random).toBe(true);
    expect(ckpt.rawConfig._name_or_path).toBe('riverrun/random-tiny');
    expect(ckpt.rawConfig.riverrun_seed).toBe(7);
    expect(ckpt.tokenizerPath).toBe(join(tinyDir, 'tokenizer.json'));
    const c = ckpt.config;
    expect(c.textEncoder).toMatchObject({
      dModel: 32,
      numLayers: 2,
      numHeads: 4,
      dKv: 8,
      dFf: 64,
      feedForward: 'relu',
      padId: 0,
      eosId: 1,
    });
    expect(c.textEncoder.vocabSize).toBe(presetVocab('tiny').length);
    expect(c.decoder).toMatchObject({
      hidden: 64,
      numLayers: 2,
      numHeads: 4,
      ffnDim: 128,
      vocabSize: 2048,
      padId: 2048,
      numCodebooks: 4,
      maxPositions: 2048,
    });
    expect(c.codec).toMatchObject({
      samplingRate: 32000,
      hop: 640,
      numFilters: 4,
      hiddenSize: 16,
      codebookDim: 16,
      codebookSize: 2048,
      upsamplingRatios: [8, 5, 4, 4],
    });
    expect(ckpt.generation).toMatchObject({ guidanceScale: 3, topK: 250, doSample: true, maxLength: 1500 });
    const gen = JSON.parse(readFileSync(join(tinyDir, 'generation_config.json'), 'utf8'));
    expect(gen).toMatchObject({ bos_token_id: 2048, pad_token_id: 2048, decoder_start_token_id: 2048 });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'model.safetensors']) {
      expect(() => readFileSync(join(tinyDir, f))).not.toThrow();
    }
  });

  it('has the same keys as the fixture model and the shapes its config implies', () => {
    const ckpt = Checkpoint.open(tinyDir);
    const w = ckpt.openWeights();
    const fixture = SafetensorsFile.open(join(FIXTURE, 'model.safetensors'));
    try {
      const mine = shapesOf(w.files[0]!);
      expect([...mine.keys()].sort()).toEqual([...fixture.tensors.keys()].sort());
      expect(mine).toEqual(new Map(tensorSpecs(ckpt.rawConfig).map((s) => [s.name, s.shape])));
      expect(w.files[0]!.metadata).toEqual({ format: 'pt' });
      for (const info of w.files[0]!.tensors.values()) expect(info.dtype).toBe('F32');
      const V = presetVocab('tiny').length;
      const expected: Record<string, number[]> = {
        'text_encoder.shared.weight': [V, 32],
        'text_encoder.encoder.embed_tokens.weight': [V, 32],
        'text_encoder.encoder.block.0.layer.0.SelfAttention.q.weight': [32, 32],
        'text_encoder.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight': [32, 4],
        'text_encoder.encoder.block.1.layer.1.DenseReluDense.wi.weight': [64, 32],
        'text_encoder.encoder.block.1.layer.1.DenseReluDense.wo.weight': [32, 64],
        'enc_to_dec_proj.weight': [64, 32],
        'enc_to_dec_proj.bias': [64],
        'decoder.model.decoder.embed_tokens.3.weight': [2049, 64],
        'decoder.model.decoder.embed_positions.weights': [2048, 64],
        'decoder.model.decoder.layers.1.encoder_attn.k_proj.weight': [64, 64],
        'decoder.model.decoder.layers.1.fc1.weight': [128, 64],
        'decoder.model.decoder.layers.1.fc2.weight': [64, 128],
        'decoder.model.decoder.layer_norm.bias': [64],
        'decoder.lm_heads.2.weight': [2048, 64],
        'audio_encoder.encoder.layers.0.conv.weight_v': [4, 1, 7],
        'audio_encoder.encoder.layers.12.conv.weight_v': [64, 32, 16],
        'audio_encoder.encoder.layers.13.lstm.weight_hh_l1': [256, 64],
        'audio_encoder.encoder.layers.15.conv.weight_v': [16, 64, 7],
        'audio_encoder.decoder.layers.0.conv.weight_v': [64, 16, 7],
        'audio_encoder.decoder.layers.3.conv.weight_g': [64, 1, 1],
        'audio_encoder.decoder.layers.3.conv.weight_v': [64, 32, 16],
        'audio_encoder.decoder.layers.3.conv.bias': [32],
        'audio_encoder.decoder.layers.13.block.1.conv.weight_v': [2, 4, 3],
        'audio_encoder.decoder.layers.15.conv.weight_v': [1, 4, 7],
        'audio_encoder.quantizer.layers.3.codebook.embed': [2048, 16],
        'audio_encoder.quantizer.layers.3.codebook.embed_avg': [2048, 16],
        'audio_encoder.quantizer.layers.3.codebook.cluster_size': [2048],
        'audio_encoder.quantizer.layers.3.codebook.inited': [1],
      };
      for (const [name, shape] of Object.entries(expected)) expect([name, mine.get(name)]).toEqual([name, shape]);
    } finally {
      fixture.close();
      w.close();
    }
  });

  it('initialises with O(1), finite values; tied and derived tensors are consistent', () => {
    const w = Checkpoint.open(tinyDir).openWeights();
    try {
      const stats = (a: Float32Array): { mean: number; std: number; maxAbs: number } => {
        let s = 0;
        let s2 = 0;
        let m = 0;
        for (const x of a) {
          s += x;
          s2 += x * x;
          m = Math.max(m, Math.abs(x));
        }
        const mean = s / a.length;
        return { mean, std: Math.sqrt(s2 / a.length - mean * mean), maxAbs: m };
      };
      for (const name of w.files[0]!.tensors.keys()) {
        const a = w.get(name);
        expect(
          a.every((x) => Number.isFinite(x)),
          name,
        ).toBe(true);
        expect(stats(a).maxAbs, name).toBeLessThan(10);
      }
      expect(w.get('text_encoder.shared.weight')).toEqual(w.get('text_encoder.encoder.embed_tokens.weight'));
      expect(w.get('audio_encoder.quantizer.layers.1.codebook.embed')).toEqual(
        w.get('audio_encoder.quantizer.layers.1.codebook.embed_avg'),
      );
      expect(w.get('audio_encoder.quantizer.layers.0.codebook.cluster_size').every((x) => x === 1)).toBe(true);
      expect([...w.get('audio_encoder.quantizer.layers.0.codebook.inited')]).toEqual([1]);
      expect(w.get('decoder.model.decoder.embed_positions.weights')).toEqual(sinusoidalPositions(2048, 64));

      const close = (name: string, mean: number, std: number): void => {
        const s = stats(w.get(name));
        expect(Math.abs(s.mean - mean), name).toBeLessThan(0.1 * std + 0.02);
        expect(s.std / std, name).toBeGreaterThan(0.85);
        expect(s.std / std, name).toBeLessThan(1.15);
      };
      close('text_encoder.shared.weight', 0, 1);
      close('text_encoder.encoder.block.0.layer.0.SelfAttention.q.weight', 0, (32 * 8) ** -0.5);
      close('text_encoder.encoder.block.1.layer.1.DenseReluDense.wo.weight', 0, 64 ** -0.5);
      close('decoder.model.decoder.embed_tokens.0.weight', 0, 0.5);
      close('decoder.model.decoder.layers.0.fc1.weight', 0, 64 ** -0.5);
      close('decoder.lm_heads.0.weight', 0, 64 ** -0.5);
      close('audio_encoder.decoder.layers.3.conv.weight_v', 0, 1);
      close('audio_encoder.quantizer.layers.0.codebook.embed', 0, 0.4);
      close('audio_encoder.quantizer.layers.3.codebook.embed', 0, 0.15);
      const ln = stats(w.get('decoder.model.decoder.layers.0.final_layer_norm.weight'));
      expect(ln.mean).toBeGreaterThan(0.9);
      expect(ln.mean).toBeLessThan(1.1);
      const lstm = stats(w.get('audio_encoder.decoder.layers.1.lstm.weight_ih_l0'));
      expect(lstm.maxAbs).toBeLessThanOrEqual(1 / 8);
      expect(lstm.std).toBeGreaterThan(0.06);
      // Transposed convs: weight_g scaled by sqrt(out * stride / in) = sqrt(stride / 2).
      expect(stats(w.get('audio_encoder.decoder.layers.3.conv.weight_g')).mean).toBeCloseTo(2, 0);
    } finally {
      w.close();
    }
  });

  it('is deterministic per seed', () => {
    const again = join(root, 'tiny-again');
    const other = join(root, 'tiny-other');
    writeRandomCheckpoint(again, 'tiny', { seed: 7 });
    writeRandomCheckpoint(other, 'tiny', { seed: 8 });
    const bytes = (d: string, f = 'model.safetensors'): Buffer => readFileSync(join(d, f));
    expect(bytes(again).equals(bytes(tinyDir))).toBe(true);
    expect(bytes(again, 'config.json').equals(bytes(tinyDir, 'config.json'))).toBe(true);
    expect(bytes(other).length).toBe(bytes(tinyDir).length);
    expect(bytes(other).equals(bytes(tinyDir))).toBe(false);
    expect(bytes(other, 'tokenizer.json').equals(bytes(tinyDir, 'tokenizer.json'))).toBe(true);
    // Every random tensor changes with the seed.
    const a = SafetensorsFile.open(join(tinyDir, 'model.safetensors'));
    const b = SafetensorsFile.open(join(other, 'model.safetensors'));
    try {
      for (const name of a.tensors.keys()) {
        const fixed = name.endsWith('embed_positions.weights') || name.endsWith('cluster_size') || name.endsWith('inited');
        expect([name, Buffer.from(a.float32(name).buffer).equals(Buffer.from(b.float32(name).buffer))]).toEqual([name, fixed]);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('reports progress up to the total and replaces an earlier random checkpoint', () => {
    const dir = join(root, 'progress');
    writeRandomCheckpoint(dir, 'tiny', { seed: 1 });
    const seen: Array<[number, number]> = [];
    writeRandomCheckpoint(dir, 'tiny', { seed: 2, onProgress: (d, t) => seen.push([d, t]) });
    expect(seen.length).toBeGreaterThan(0);
    const total = presetWeightBytes('tiny');
    expect(seen.every(([, t]) => t === total)).toBe(true);
    expect(seen.every(([d], i) => i === 0 || d > seen[i - 1]![0])).toBe(true);
    expect(seen.at(-1)![0]).toBe(total);
    const f = SafetensorsFile.open(join(dir, 'model.safetensors'));
    try {
      const last = [...f.tensors.values()].reduce((m, t) => Math.max(m, t.end), 0);
      expect(last - [...f.tensors.values()].reduce((m, t) => Math.min(m, t.begin), Infinity)).toBe(total);
    } finally {
      f.close();
    }
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).riverrun_seed).toBe(2);
  });

  it('never overwrites a real checkpoint', () => {
    const dir = join(root, 'real');
    mkdirSync(dir);
    const real = JSON.stringify({ ...fixtureConfig });
    writeFileSync(join(dir, 'config.json'), real);
    expect(() => writeRandomCheckpoint(dir, 'tiny')).toThrow(/refusing to overwrite/);
    expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe(real);
    const weightsOnly = join(root, 'weights-only');
    mkdirSync(weightsOnly);
    writeFileSync(join(weightsOnly, 'model.safetensors'), 'not ours');
    expect(() => writeRandomCheckpoint(weightsOnly, 'tiny')).toThrow(/refusing to overwrite/);
    expect(readFileSync(join(weightsOnly, 'model.safetensors'), 'utf8')).toBe('not ours');
  });

  it('rejects bad seeds and presets', () => {
    expect(() => writeRandomCheckpoint(join(root, 'bad'), 'tiny', { seed: -1 })).toThrow(RangeError);
    expect(() => writeRandomCheckpoint(join(root, 'bad'), 'tiny', { seed: 1.5 })).toThrow(RangeError);
    expect(() => writeRandomCheckpoint(join(root, 'bad'), 'huge' as 'tiny')).toThrow(/unknown preset/);
  });
});

describe('tokenizer', () => {
  it('encodes prompts T5-style: known words, ending with </s>, no <unk> for ASCII text', async () => {
    const tok = await loadTokenizer(join(tinyDir, 'tokenizer.json'));
    const vocab = presetVocab('tiny');
    const id = (piece: string): number => vocab.findIndex(([p]) => p === piece);
    expect(tok.encode('slow piano')).toEqual([id('\u2581slow'), id('\u2581piano'), 1]);
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('lofi  hip hop')).toEqual(tok.encode(' lofi hip\thop\n'));
    for (const p of PROMPTS) {
      const ids = tok.encode(p);
      expect(ids.at(-1)).toBe(1);
      expect(ids.slice(0, -1)).not.toContain(1);
      expect(ids).not.toContain(2);
      expect(ids).not.toContain(0);
      expect(Math.max(...ids)).toBeLessThan(vocab.length);
    }
    let ascii = '';
    for (let c = 0x20; c <= 0x7e; c++) ascii += String.fromCharCode(c);
    expect(tok.encode(ascii)).not.toContain(2);
    expect(tok.encode('slow ☃ piano')).toContain(2);
  });

  it('writes T5 tokenizer files', () => {
    const files = presetTokenizerFiles('tiny');
    const t = files['tokenizer.json'] as {
      model: { type: string; unk_id: number; vocab: Array<[string, number]> };
      post_processor: { type: string };
      added_tokens: Array<{ id: number; content: string }>;
    };
    expect(t.model.type).toBe('Unigram');
    expect(t.model.unk_id).toBe(2);
    expect(t.model.vocab.slice(0, 3).map(([p]) => p)).toEqual(['<pad>', '</s>', '<unk>']);
    expect(new Set(t.model.vocab.map(([p]) => p)).size).toBe(t.model.vocab.length);
    expect(t.post_processor.type).toBe('TemplateProcessing');
    expect(t.added_tokens.map((a) => [a.id, a.content])).toEqual([
      [0, '<pad>'],
      [1, '</s>'],
      [2, '<unk>'],
    ]);
    expect(JSON.parse(readFileSync(join(tinyDir, 'tokenizer.json'), 'utf8'))).toEqual(files['tokenizer.json']);
    expect(files['special_tokens_map.json']).toEqual({ eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' });
    expect(t.model.vocab.length).toBeGreaterThan(300);
    expect(t.model.vocab.length).toBeLessThan(1000);
  });

  it('names the file in its errors', async () => {
    await expect(loadTokenizer(join(root, 'nope', 'tokenizer.json'))).rejects.toThrow(join(root, 'nope', 'tokenizer.json'));
    await expect(loadTokenizer(join(root, 'nope', 'tokenizer.json'))).rejects.toBeInstanceOf(CheckpointError);
    const bad = join(root, 'bad-tokenizer.json');
    writeFileSync(bad, '{"model": ');
    await expect(loadTokenizer(bad)).rejects.toThrow(bad);
    writeFileSync(bad, '{"version": "1.0"}');
    await expect(loadTokenizer(bad)).rejects.toThrow(bad);
  });
});

describe('small preset (config and tokenizer only)', () => {
  it("has facebook/musicgen-small's dimensions", () => {
    const raw = presetConfig('small');
    expect(raw.riverrun_random).toBe(true);
    expect(raw._name_or_path).toBe('riverrun/random-small');
    const c = parseMusicgenConfig(raw, 'config.json');
    expect(c.textEncoder).toMatchObject({
      vocabSize: 32128,
      dModel: 768,
      numLayers: 12,
      numHeads: 12,
      dKv: 64,
      dFf: 3072,
      feedForward: 'relu',
    });
    expect(c.decoder).toMatchObject({
      hidden: 1024,
      numLayers: 24,
      numHeads: 16,
      ffnDim: 4096,
      vocabSize: 2048,
      padId: 2048,
      maxPositions: 2048,
      numCodebooks: 4,
    });
    expect(c.codec).toMatchObject({
      samplingRate: 32000,
      hiddenSize: 128,
      numFilters: 64,
      codebookSize: 2048,
      codebookDim: 128,
      numLstmLayers: 2,
      numResidualLayers: 1,
      compress: 2,
      hop: 640,
    });
    expect(presetGenerationConfig('small')).toMatchObject({ guidance_scale: 3, top_k: 250, do_sample: true, max_length: 1500 });
    const specs = new Map(tensorSpecs(raw).map((s) => [s.name, s.shape]));
    expect(specs.get('text_encoder.shared.weight')).toEqual([32128, 768]);
    expect(specs.get('enc_to_dec_proj.weight')).toEqual([1024, 768]);
    expect(specs.get('decoder.model.decoder.layers.23.fc1.weight')).toEqual([4096, 1024]);
    expect(specs.get('audio_encoder.decoder.layers.1.lstm.weight_ih_l1')).toEqual([4096, 1024]);
    expect(specs.get('audio_encoder.quantizer.layers.3.codebook.embed')).toEqual([2048, 128]);
    // Same key families as the fixture, with 12 T5 blocks and 24 decoder layers.
    const fixtureKeys = tensorSpecs(fixtureConfig).map((s) => s.name.replace(/\.(block|layers)\.\d+\./, '.$1.N.'));
    const smallKeys = [...specs.keys()].map((n) => n.replace(/\.(block|layers)\.\d+\./, '.$1.N.'));
    expect(new Set(smallKeys)).toEqual(new Set(fixtureKeys));
    // ~2.5 GB of float32 (musicgen-small plus the duplicated tied T5 embedding).
    const bytes = presetWeightBytes('small');
    expect(bytes).toBeGreaterThan(2.3e9);
    expect(bytes).toBeLessThan(2.6e9);
  });

  it('has a 32128-piece tokenizer that agrees with the tiny one on music words', async () => {
    const files = presetTokenizerFiles('small');
    const vocab = (files['tokenizer.json'].model as { vocab: Array<[string, number]> }).vocab;
    expect(vocab.length).toBe(32128);
    expect(new Set(vocab.map(([p]) => p)).size).toBe(32128);
    const dir = join(root, 'small-tokenizer');
    mkdirSync(dir);
    for (const [name, value] of Object.entries(files)) writeFileSync(join(dir, name), JSON.stringify(value));
    const small = await loadTokenizer(join(dir, 'tokenizer.json'));
    const tiny = await loadTokenizer(join(tinyDir, 'tokenizer.json'));
    expect(small.encode('slow piano')).toEqual(tiny.encode('slow piano'));
    for (const p of PROMPTS) {
      const ids = small.encode(p);
      expect(ids.at(-1)).toBe(1);
      expect(ids).not.toContain(2);
      expect(Math.max(...ids)).toBeLessThan(32128);
    }
  });
});

describe('riverrun model tiny', () => {
  const io = (): { out: string[]; err: string[]; io: { stdout: { write(c: string): void }; stderr: { write(c: string): void } } } => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { stdout: { write: (c) => void out.push(c) }, stderr: { write: (c) => void err.push(c) } } };
  };

  it('writes the checkpoint and prints its directory', async () => {
    const dir = join(root, 'cli');
    const t = io();
    await runModelTiny(['--out', dir, '--seed', '7'], t.io);
    expect(t.out.join('')).toBe(`${dir}\n`);
    expect(readFileSync(join(dir, 'model.safetensors')).equals(readFileSync(join(tinyDir, 'model.safetensors')))).toBe(true);
    const h = io();
    await runModelTiny(['--help'], h.io);
    expect(h.out.join('')).toContain('--preset');
  });

  it('rejects bad command lines with a usage error', async () => {
    const bad = [
      [],
      ['--out'],
      ['--out', join(root, 'x'), '--preset', 'large'],
      ['--out', join(root, 'x'), '--seed', 'abc'],
      ['--out', join(root, 'x'), '--seed', '-3'],
      ['--out', join(root, 'x'), '--seed', '4294967296'],
      ['--out', join(root, 'x'), '--frobnicate'],
      ['--out', join(root, 'x'), 'extra'],
    ];
    for (const args of bad) await expect(runModelTiny(args, io().io), args.join(' ')).rejects.toBeInstanceOf(UsageError);
    await expect(runModelTiny(['--out', join(root, 'x'), '--preset', 'large'], io().io)).rejects.toThrow(/unknown preset "large"/);
    await expect(runModelTiny([], io().io)).rejects.toThrow(/--out DIR is required/);
  });
});
