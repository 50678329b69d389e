// Static files of the web client. Paths are resolved inside the root and anything that escapes it
// (.., encoded slashes, NUL) is refused, so a URL can never read files outside clients/web.
import { createReadStream, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { vendorAsset } from './vendor-assets.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.wasm': 'application/wasm',
  '.ico': 'image/x-icon',
};

/** Resolves a URL path to a file under `root`, or null when it is not a plain file inside it. */
function resolveStatic(root: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const relative = normalize(decoded === '/' ? '/index.html' : decoded.endsWith('/') ? `${decoded}index.html` : decoded);
  if (relative.split('/').includes('..')) return null;
  const full = join(root, relative);
  const base = root.endsWith(sep) ? root : root + sep;
  if (!full.startsWith(base)) return null;
  try {
    return statSync(full).isFile() ? full : null;
  } catch {
    return null;
  }
}

/** Serves a file of `root` (or an allow-listed /vendor/ asset); returns false when there is none. */
export function serveStatic(root: string, req: IncomingMessage, res: ServerResponse, urlPath: string): boolean {
  const file = urlPath.startsWith('/vendor/') ? vendorAsset(urlPath) : resolveStatic(root, urlPath);
  if (!file) return false;
  res.writeHead(200, {
    'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
  });
  if (req.method === 'HEAD') {
    res.end();
    return true;
  }
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
  return true;
}
