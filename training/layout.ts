// Helper for the Python training code (run with `node --import tsx training/layout.ts ...`):
//   specs CONFIG.json        -> JSON [[name, shape], ...] of tensorSpecs(config) (src/models/presets/tensor-specs.ts)
//   random-tiny DIR          -> writes the random `tiny` preset checkpoint into DIR
//   tokenize TOKENIZER.json  -> reads a JSON list of strings on stdin, prints their ids with the real
//                               loader (src/models/tokenizer.ts, @huggingface/tokenizers)
import { readFileSync } from 'node:fs';
import { tensorSpecs } from '../src/models/presets/tensor-specs.ts';
import { writeRandomCheckpoint } from '../src/models/presets.ts';
import { loadTokenizer } from '../src/models/tokenizer.ts';

const [cmd, arg] = process.argv.slice(2);
if (cmd === 'specs' && arg) {
  const config = JSON.parse(readFileSync(arg, 'utf8')) as Record<string, unknown>;
  process.stdout.write(`${JSON.stringify(tensorSpecs(config, arg).map((s) => [s.name, s.shape]))}\n`);
} else if (cmd === 'random-tiny' && arg) {
  writeRandomCheckpoint(arg, 'tiny', { seed: 0 });
} else if (cmd === 'tokenize' && arg) {
  const tok = await loadTokenizer(arg);
  const texts = JSON.parse(readFileSync(0, 'utf8')) as string[];
  process.stdout.write(`${JSON.stringify(texts.map((t) => tok.encode(t)))}\n`);
} else {
  process.stderr.write(
    'usage: node --import tsx training/layout.ts specs CONFIG.json | random-tiny DIR | tokenize TOKENIZER.json < texts.json\n',
  );
  process.exitCode = 2;
}
