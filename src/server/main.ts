// `riverrun serve`: starts the server and stops it cleanly on SIGTERM / SIGINT.
import { pino } from 'pino';
import { parseServeArgs, SERVE_USAGE } from './config.ts';
import { startServer } from './server.ts';

export async function runServe(args: string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return;
  }
  const config = parseServeArgs(args);
  const log = pino({ level: config.logLevel, base: { service: 'riverrun' } });
  const server = await startServer(config, { log });
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'shutting down');
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      void server.close().then(resolve, (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        resolve();
      });
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
}
