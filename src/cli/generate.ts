// `riverrun generate`: the whole pipeline in one process, written to a 32-bit float WAV.
import { writeFileSync } from 'node:fs';
import { defaultModelDir } from '../models/default-model.ts';
import { PRECISIONS, type Precision } from '../models/graphs/linear.ts';
import { DEVICES, type Device, ModelBundle } from '../models/model-bundle.ts';
import { generateOffline } from '../stream/offline-generate.ts';
import { writeWavFloat32 } from '../stream/wav.ts';
import { parseCommandLine } from './command-line.ts';

const GENERATE_USAGE = `Usage: riverrun generate [--model DIR] (--prompt TEXT | --prompt-ids 1,2,3) (--seconds S | --steps N)
                         --out FILE.wav [options]

Generate music offline and write it as a 32-bit float WAV at the codec's sample rate (32 kHz).

  --model DIR          Hugging Face MusicGen checkpoint directory (default: the embedded demo model)
  --prompt TEXT        text prompt (needs the checkpoint's tokenizer.json)
  --prompt-ids IDS     text token ids, comma separated, ending with </s> (id 1)
  --seconds S          audio length in seconds
  --steps N            decoder steps after the start token (max_new_tokens); gives N - 3 frames
  --seed N             random seed (default 0)
  --greedy             argmax instead of sampling
  --guidance G         classifier-free guidance scale (default: generation_config.json, else 3)
  --top-k K            keep the K most likely tokens (default: generation_config.json, else 250)
  --top-p P            nucleus sampling (default 0 = off)
  --temperature T      sampling temperature (default 1)
  --precision P        fp32 | q8 | q4 decoder weights (default fp32)
  --device D           cpu | cuda | webgpu (default cpu)
  --threads N          onnxruntime threads (default: all cores)
  --out FILE.wav       output file
  --codes-out FILE     also write the un-delayed codes as JSON {"codes": [[4 ints] per frame]}`;

export async function runGenerate(args: string[]): Promise<void> {
  const line = parseCommandLine('generate', GENERATE_USAGE, args, {
    model: { type: 'string' },
    prompt: { type: 'string' },
    'prompt-ids': { type: 'string' },
    seconds: { type: 'string' },
    steps: { type: 'string' },
    seed: { type: 'string' },
    greedy: { type: 'boolean' },
    guidance: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    temperature: { type: 'string' },
    precision: { type: 'string' },
    device: { type: 'string' },
    threads: { type: 'string' },
    out: { type: 'string' },
    'codes-out': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (!line) return;
  const { values, fail } = line;
  const num = (name: string, v: string | undefined, check: (n: number) => boolean, what: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || !check(n)) fail(`--${name} must be ${what} (got ${JSON.stringify(v)})`);
    return n;
  };
  if (!values.out) fail('--out FILE.wav is required');
  if ((values.prompt === undefined) === (values['prompt-ids'] === undefined)) fail('give exactly one of --prompt and --prompt-ids');
  if ((values.seconds === undefined) === (values.steps === undefined)) fail('give exactly one of --seconds and --steps');
  const precision = (values.precision ?? 'fp32') as Precision;
  if (!PRECISIONS.includes(precision)) fail(`--precision must be one of ${PRECISIONS.join(', ')}`);
  const device = (values.device ?? 'cpu') as Device;
  if (!DEVICES.includes(device)) fail(`--device must be one of ${DEVICES.join(', ')}`);
  const seconds = num('seconds', values.seconds, (n) => n > 0, 'a positive number');
  const stepsArg = num('steps', values.steps, (n) => Number.isInteger(n) && n >= 4, 'an integer >= 4');
  const seed = num('seed', values.seed, (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer') ?? 0;
  const threads = num('threads', values.threads, (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
  const guidanceArg = num('guidance', values.guidance, (n) => n >= 0, 'a non-negative number');
  const topKArg = num('top-k', values['top-k'], (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer');
  const topP = num('top-p', values['top-p'], (n) => n >= 0 && n <= 1, 'between 0 and 1') ?? 0;
  const temperature = num('temperature', values.temperature, (n) => n > 0, 'a positive number') ?? 1;
  let promptIds: number[] | undefined;
  if (values['prompt-ids'] !== undefined) {
    promptIds = values['prompt-ids'].split(',').map((s) => Number(s.trim()));
    if (promptIds.some((n) => !Number.isInteger(n) || n < 0)) fail('--prompt-ids must be comma-separated non-negative integers');
  }

  const modelDir = values.model ?? defaultModelDir();
  const model = await ModelBundle.load(modelDir, { precision, device, threads, log: (m) => process.stderr.write(`${m}\n`) });
  try {
    const { codec, decoder } = model.config;
    const ids = promptIds ?? model.tokenize(values.prompt!);
    if (ids.some((id) => id >= model.config.textEncoder.vocabSize))
      fail(`--prompt-ids must be below the text vocabulary size ${model.config.textEncoder.vocabSize}`);
    const frameRate = codec.samplingRate / codec.hop;
    const steps = stepsArg ?? Math.max(1, Math.round(seconds! * frameRate)) + decoder.numCodebooks - 1;
    const gen = model.checkpoint.generation;
    const started = performance.now();
    const result = await generateOffline(model, {
      promptIds: ids,
      steps,
      guidance: guidanceArg ?? gen.guidanceScale,
      sampling: { temperature: values.greedy ? 0 : temperature, topK: topKArg ?? gen.topK, topP },
      seed,
    });
    const elapsed = (performance.now() - started) / 1000;
    writeWavFloat32(values.out!, result.audio, codec.samplingRate);
    if (values['codes-out']) {
      const K = decoder.numCodebooks;
      const frames = Array.from({ length: result.frames }, (_, t) =>
        Array.from({ length: K }, (_, k) => Number(result.codes[k * result.frames + t])),
      );
      writeFileSync(values['codes-out'], `${JSON.stringify({ codes: frames })}\n`);
    }
    const audioSeconds = result.audio.length / codec.samplingRate;
    process.stderr.write(
      `wrote ${values.out}: ${result.frames} frames, ${audioSeconds.toFixed(2)} s of audio in ${elapsed.toFixed(2)} s (${(audioSeconds / elapsed).toFixed(2)}x real time)\n`,
    );
  } finally {
    await model.close();
  }
}
