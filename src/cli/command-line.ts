// Argument parsing shared by every riverrun command: strict flags, --help, and usage errors that main()
// prints with the command's usage (exit code 2).
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from './usage-error.ts';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values<O extends Options> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: true }>>['values'];

export interface CommandLine<O extends Options> {
  values: Values<O>;
  positionals: string[];
  /** Throws a UsageError naming the command. */
  fail(message: string): never;
}

/**
 * Parses `args` for `riverrun <command>`. `options` must include `help` (boolean); with --help the usage
 * is printed and null returned. Positionals are refused unless `positionals` is true.
 */
export function parseCommandLine<O extends Options>(
  command: string,
  usage: string,
  args: string[],
  options: O,
  { positionals = false, out = process.stdout }: { positionals?: boolean; out?: { write(chunk: string): unknown } } = {},
): CommandLine<O> | null {
  const fail = (message: string): never => {
    throw new UsageError(`riverrun ${command}: ${message}`, usage);
  };
  let parsed: { values: Values<O>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (err) {
    return fail((err as Error).message);
  }
  if ((parsed.values as Record<string, unknown>).help === true) {
    out.write(`${usage}\n`);
    return null;
  }
  if (!positionals && parsed.positionals.length > 0) fail(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  return { values: parsed.values, positionals: parsed.positionals, fail };
}
