import { type ErrorRegistry, RiverrunError } from '../errors.ts';

export const USAGE_ERRORS = {
  USAGE: { meaning: 'The command line cannot be run as given; the CLI prints the usage and exits 2.' },
} as const satisfies ErrorRegistry;

/** A command line that cannot be run as given; main() prints it with the command's usage and exits 2. */
export class UsageError extends RiverrunError<'USAGE'> {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super('USAGE', `${message}\n\n${usage}`);
  }
}
