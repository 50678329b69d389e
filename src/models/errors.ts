// Errors about model files. Each carries a stable code and the file it is about, so that a user who
// points --model at the wrong directory learns which file is wrong and how.
import { type ErrorRegistry, RiverrunError } from '../errors.ts';

export const CHECKPOINT_ERRORS = {
  CHECKPOINT_MISSING_FILE: { meaning: 'A file the model needs is not in the model directory.' },
  CHECKPOINT_TRUNCATED: { meaning: 'A weights file ends before the data its header promises.' },
  CHECKPOINT_CORRUPT: { meaning: 'A file cannot be parsed (bad safetensors header, bad JSON, bad ONNX).' },
  CHECKPOINT_MISSING_TENSOR: { meaning: 'A tensor the architecture needs is not in the weights.' },
  CHECKPOINT_SHAPE: { meaning: 'A tensor has a shape that disagrees with the config.' },
  CHECKPOINT_DTYPE: { meaning: 'A tensor has a dtype the loader cannot read.' },
  CHECKPOINT_CONFIG: { meaning: 'config.json is missing a field, or describes an architecture Riverrun does not run.' },
} as const satisfies ErrorRegistry;

export type CheckpointErrorCode = keyof typeof CHECKPOINT_ERRORS;

export class CheckpointError extends RiverrunError<CheckpointErrorCode> {
  constructor(
    code: CheckpointErrorCode,
    readonly file: string,
    detail: string,
  ) {
    super(code, `${file}: ${detail}`);
  }
}
