// Worker thread that encodes prompt text, so that a new prompt never holds up the step loop.
import { parentPort, workerData } from 'node:worker_threads';
import { ModelBundle } from '../models/model-bundle.ts';
import type { WorkerModelOptions } from './engine-protocol.ts';

const options = (workerData as { data: WorkerModelOptions }).data;
const model = await ModelBundle.load(options.modelDir, {
  precision: options.precision,
  cacheDir: options.cacheDir,
  threads: 1,
  graphs: ['text_encoder'],
});
const port = parentPort!;
port.on('message', (msg: { id: number; text: string } | { close: true }) => {
  if ('close' in msg) {
    void model.close().then(() => process.exit(0));
    return;
  }
  void (async () => {
    try {
      const e = await model.encodeText([model.tokenize(msg.text)]);
      port.postMessage(
        { id: msg.id, tokens: e.tokens, keys: e.keys, values: e.values },
        [...e.keys, ...e.values].map((a) => a.buffer as ArrayBuffer),
      );
    } catch (err) {
      port.postMessage({ id: msg.id, error: (err as Error).message });
    }
  })();
});
port.postMessage({ ready: true });
