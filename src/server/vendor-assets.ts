// Browser builds of npm packages that the web client loads, served from node_modules under /vendor/.
// An explicit allow-list: nothing else in node_modules is reachable over HTTP.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * URL path under /vendor/ -> file, resolved from this module. The package's `exports` map does not list
 * its browser build (a bare `pkg/dist/...` specifier throws ERR_PACKAGE_PATH_NOT_EXPORTED), so the file
 * is named by its path in the project's node_modules.
 * - opus-decoder: UMD build (WASM inlined); sets globalThis['opus-decoder'] = {OpusDecoder, OpusDecoderWebWorker}.
 *   clients/web/decode-worker.js loads it with importScripts.
 * The page's msgpack comes with the protocol module (protocol-module.ts), not from here.
 */
const ASSETS: Record<string, string> = {
  '/vendor/opus-decoder.min.js': '../../node_modules/opus-decoder/dist/opus-decoder.min.js',
};

/** Absolute file for a /vendor/ URL path, or null. */
export function vendorAsset(urlPath: string): string | null {
  const spec = Object.hasOwn(ASSETS, urlPath) ? ASSETS[urlPath] : undefined;
  if (spec === undefined) return null;
  try {
    return require.resolve(spec);
  } catch {
    return null;
  }
}
