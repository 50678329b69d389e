/** A command line that cannot be run as given; main() prints it with the command's usage and exits 2. */
export class UsageError extends Error {
  readonly code = 'USAGE';
  constructor(message: string, readonly usage: string) {
    super(`${message}\n\n${usage}`);
    this.name = 'UsageError';
  }
}
