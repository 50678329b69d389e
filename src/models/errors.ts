// Errors about model files. Each carries a stable code and the file it is about, so that a user who
// points --model at the wrong directory learns which file is wrong and how.
export type CheckpointErrorCode =
  | 'CHECKPOINT_MISSING_FILE'
  | 'CHECKPOINT_TRUNCATED'
  | 'CHECKPOINT_CORRUPT'
  | 'CHECKPOINT_MISSING_TENSOR'
  | 'CHECKPOINT_SHAPE'
  | 'CHECKPOINT_DTYPE'
  | 'CHECKPOINT_CONFIG';

export class CheckpointError extends Error {
  constructor(readonly code: CheckpointErrorCode, readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'CheckpointError';
  }
}
