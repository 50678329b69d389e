// Memory after session churn, engine alone (run by `npm run bench -- --only churn`, once per malloc
// setting, each in its own process): the demo model's engine with a radio stream, then waves of 6
// sessions that live 0.4 s each. Prints one JSON line per sample: sessions served, RSS, and the part of
// it in glibc's per-thread heaps (the 64 MiB mappings malloc gives each thread that allocates).
import { readFileSync } from 'node:fs';
import { DEMO_MODEL_DIR } from '../src/models/default-model.ts';
import { Engine } from '../src/stream/engine.ts';

const sessions = Number(process.argv[2] ?? 600);
const MiB = 2 ** 20;

/** RSS of the 64 MiB-aligned anonymous mappings (glibc's thread heaps), from /proc/self/smaps. */
function threadHeapsMiB(): number {
  let kb = 0;
  let heap = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const start = Number.parseInt(m[1]!, 16);
      heap = m[3] === '' && start % (64 * MiB) === 0 && Number.parseInt(m[2]!, 16) - start <= 64 * MiB;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && heap) kb += Number(rss[1]);
  }
  return kb / 1024;
}

const sample = (served: number): void =>
  console.log(JSON.stringify({ sessions: served, rssMiB: process.memoryUsage().rss / MiB, threadHeapsMiB: threadHeapsMiB() }));

const engine = await Engine.start({ modelDir: DEMO_MODEL_DIR, engine: { windowFrames: 500, keepFrames: 200 } });
await engine.createStream('radio', { prompts: [{ text: 'calm piano', weight: 1 }], config: { seed: 1 } });
await new Promise((r) => setTimeout(r, 2000));
sample(0);
for (let served = 0; served < sessions; ) {
  const ids = Array.from({ length: 6 }, (_, i) => `c${served + i}`);
  const texts = ['drums', 'jazz', 'ambient pad'];
  await Promise.all(ids.map((id, i) => engine.createStream(id, { prompts: [{ text: texts[i % 3]!, weight: 1 }], config: { seed: i } })));
  await new Promise((r) => setTimeout(r, 400));
  await Promise.all(ids.map((id) => engine.closeStream(id)));
  served += ids.length;
  if (served % 150 === 0) sample(served);
}
await new Promise((r) => setTimeout(r, 10_000));
sample(sessions); // after 10 s idle
await engine.close();
