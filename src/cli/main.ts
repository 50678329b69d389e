// The `riverrun` command: dispatches to one module per subcommand.

import { runGenerate } from './generate.ts';
import { runListen } from './listen.ts';
import { runModelFetch } from './model-fetch.ts';
import { runModelTiny } from './model-tiny.ts';
import { runServe } from './serve.ts';
import { runSession } from './session.ts';
import { UsageError } from './usage-error.ts';

const USAGE = `Usage: riverrun COMMAND [options]

Commands:
  serve               start the server (riverrun serve --help)
  generate            generate music offline into a WAV file (riverrun generate --help)
  listen              record a channel of a server to an Ogg or WAV file (riverrun listen --help)
  session             record a personal stream, steered from standard input (riverrun session --help)
  model tiny          write a random checkpoint in the Hugging Face layout (riverrun model tiny --help)
  model fetch REPO    download a MusicGen checkpoint from the Hugging Face hub (riverrun model fetch --help)`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === 'serve') await runServe(rest);
    else if (command === 'generate') await runGenerate(rest);
    else if (command === 'listen') await runListen(rest);
    else if (command === 'session') await runSession(rest);
    else if (command === 'model' && rest[0] === 'tiny') await runModelTiny(rest.slice(1));
    else if (command === 'model' && rest[0] === 'fetch') await runModelFetch(rest.slice(1));
    else if (command === undefined || command === '--help' || command === '-h' || command === 'help') process.stdout.write(`${USAGE}\n`);
    else throw new UsageError(`riverrun: unknown command ${[command, ...rest.slice(0, 1)].join(' ')}`, USAGE);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`riverrun: ${e.code ? `[${e.code}] ` : ''}${e.message}\n`);
    return 1;
  }
}
