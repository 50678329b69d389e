// The model used when none is given: the demo checkpoint that ships in the repository (models/riverrun-demo,
// trained by training/ on procedural music, docs/demo-model.md). It is an ordinary Hugging Face MusicGen
// directory, loaded like any other: `npm start` plays music on a fresh machine with no download.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointError } from './errors.ts';

/** models/riverrun-demo at the repository root (this file is src/models/default-model.ts). */
export const DEMO_MODEL_DIR = fileURLToPath(new URL('../../models/riverrun-demo', import.meta.url));

export function defaultModelDir(): string {
  const weights = join(DEMO_MODEL_DIR, 'model.safetensors');
  if (!existsSync(weights))
    throw new CheckpointError(
      'CHECKPOINT_MISSING_FILE',
      weights,
      'the embedded demo model is missing (git checkout models/ restores it), or pass --model DIR',
    );
  return DEMO_MODEL_DIR;
}
