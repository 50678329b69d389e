import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Where Riverrun keeps downloaded checkpoints, compiled graphs and generated presets. */
export function defaultCacheRoot(): string {
  const env = process.env.RIVERRUN_CACHE;
  return env !== undefined && env !== '' ? resolve(env) : join(homedir(), '.cache', 'riverrun');
}
