// The protocol layer for the web page: src/protocol/index.ts (and msgpackr) bundled by esbuild into
// one ES module, in memory, on the first request, then served from memory. The page imports it from
// /protocol.js, so it shares the server's definitions instead of keeping a copy.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** Where the page imports the protocol module from. */
export const PROTOCOL_MODULE_URL = '/protocol.js';

const ENTRY = fileURLToPath(new URL('../protocol/index.ts', import.meta.url));

let bundle: Promise<string> | null = null;

/** The bundled module's source (built once per process; a failed build is tried again next time). */
function protocolModule(): Promise<string> {
  bundle ??= build({
    entryPoints: [ENTRY],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
  }).then(
    (result) => result.outputFiles[0]!.text,
    (err: unknown) => {
      bundle = null;
      throw err;
    },
  );
  return bundle;
}

/** Answers a GET or HEAD of PROTOCOL_MODULE_URL. */
export async function serveProtocolModule(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const source = await protocolModule();
  res.writeHead(200, {
    'Content-Type': 'text/javascript; charset=utf-8',
    'Content-Length': Buffer.byteLength(source),
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : source);
}
