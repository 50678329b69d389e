// The one shape of every error Riverrun raises on purpose: a stable `code` that callers branch on (never
// the message), a message for people, and, where the error crosses a boundary, the HTTP status or
// WebSocket close code it maps to. Each family keeps a registry of its codes beside its class;
// docs/errors.md is the table of all of them and test/errors.test.ts checks that codes are unique
// across families and all documented.

export interface ErrorCodeSpec {
  /** What the code means, for people (docs/errors.md says the same). */
  readonly meaning: string;
  /** The HTTP status used when this error answers an HTTP request. */
  readonly httpStatus?: number;
  /** The WebSocket close code used when this error ends a connection. */
  readonly closeCode?: number;
}

export type ErrorRegistry<C extends string = string> = Readonly<Record<C, ErrorCodeSpec>>;

export class RiverrunError<C extends string = string> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}
