// Protocol v1 in one module: what the server, the SDK, the CLI and the web page share. The server
// bundles this file for the page (src/server/protocol-module.ts serves it as /protocol.js).
export * from './codec.ts';
export * from './constants.ts';
export * from './controls.ts';
export * from './errors.ts';
export * from './limits.ts';
export * from './messages.ts';
export * from './reconnect.ts';
