// Text tokenizer for the T5 text encoder: a Hugging Face tokenizer.json (SentencePiece Unigram for
// MusicGen's t5-base) loaded with @huggingface/tokenizers. tokenizer_config.json next to it is read
// when present (it names the special tokens).
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { CheckpointError } from './errors.ts';

export interface TextTokenizer {
  /** Token ids of `text`, ending with `</s>` (id 1 for T5), as the T5 tokenizer returns them. */
  encode(text: string): number[];
}

type Json = Record<string, unknown>;

async function readJsonObject(path: string, what: string): Promise<Json> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      'CHECKPOINT_MISSING_FILE',
      path,
      code === 'ENOENT' ? `is missing (${what})` : `cannot be read: ${(err as Error).message}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError('CHECKPOINT_CORRUPT', path, `is not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new CheckpointError('CHECKPOINT_CORRUPT', path, 'is not a JSON object');
  return value as Json;
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

/** Loads `path` (a tokenizer.json). Errors are CheckpointErrors naming the file. */
export async function loadTokenizer(path: string): Promise<TextTokenizer> {
  const json = await readJsonObject(path, 'the text tokenizer of the checkpoint');
  const configPath = join(dirname(path), 'tokenizer_config.json');
  let config: Json = {};
  try {
    config = await readJsonObject(configPath, '');
  } catch (err) {
    if (!(err instanceof CheckpointError && err.code === 'CHECKPOINT_MISSING_FILE')) throw err;
  }
  // Plain strings only: the library expects e.g. eos_token: "</s>", while HF may write an object.
  const eosToken = tokenContent(config.eos_token) ?? '</s>';
  const libConfig: Json = { ...config, eos_token: eosToken };
  for (const key of ['bos_token', 'pad_token', 'unk_token']) {
    const v = tokenContent(config[key]);
    if (v === undefined) delete libConfig[key];
    else libConfig[key] = v;
  }
  for (const key of ['model', 'normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) {
    if (!(key in json)) {
      if (key === 'model') throw new CheckpointError('CHECKPOINT_CORRUPT', path, 'has no "model" (is this a Hugging Face tokenizer.json?)');
      json[key] = null;
    }
  }
  if (!Array.isArray(json.added_tokens)) json.added_tokens = [];

  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, libConfig);
  } catch (err) {
    throw new CheckpointError('CHECKPOINT_CORRUPT', path, `cannot be loaded as a tokenizer: ${(err as Error).message}`);
  }
  const eosId = tokenizer.token_to_id(eosToken);
  if (eosId === undefined) throw new CheckpointError('CHECKPOINT_CORRUPT', path, `has no ${eosToken} token`);
  const hasPostProcessor = json.post_processor !== null;

  return {
    encode(text: string): number[] {
      const ids = tokenizer.encode(text).ids;
      // T5's post-processor appends </s>; a tokenizer.json without one still gets it.
      if (!hasPostProcessor || ids[ids.length - 1] !== eosId) ids.push(eosId);
      return ids;
    },
  };
}
