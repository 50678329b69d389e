// Browser builds of npm packages that the web client loads, served from node_modules under /vendor/.
// An explicit allow-list: nothing else in node_modules is reachable over HTTP.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** URL path under /vendor/ -> package-relative file. */
const ASSETS: Record<string, string> = {};

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
