// The model used when none is given: a random tiny checkpoint, written once into the cache. It lets
// `npm start` and `riverrun generate` run on a fresh machine with no download (it sounds like noise;
// setup_complete.model.random tells clients so).
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCacheRoot } from './cache-root.ts';
import { writeRandomCheckpoint } from './presets.ts';

export async function defaultModelDir(log: (message: string) => void = () => {}): Promise<string> {
  const dir = join(defaultCacheRoot(), 'models', 'riverrun-random-tiny');
  if (existsSync(join(dir, 'config.json'))) return dir;
  log(`writing the default random tiny checkpoint to ${dir}`);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  writeRandomCheckpoint(tmp, 'tiny', { seed: 0 });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}
