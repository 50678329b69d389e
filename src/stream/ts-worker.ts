// Worker threads running this project's TypeScript, through a small JavaScript bootstrap that registers
// tsx's loader first. The worker's own data is in workerData.data.
import { Worker } from 'node:worker_threads';

const bootstrap = new URL('./worker-bootstrap.js', import.meta.url);

export function spawnTsWorker(entry: URL, data: unknown): Worker {
  return new Worker(bootstrap, { workerData: { entry: entry.href, data } });
}
