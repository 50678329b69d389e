// Who may read the HTTP endpoints that carry a server's content: the channel list and the live Ogg
// streams need a role (any role), as a WebSocket listener does; /metrics needs the operator role. A
// request carries its token as `Authorization: Bearer TOKEN` or, for players that cannot set headers
// (an <audio> element, VLC), as `?token=TOKEN`. Without a token the request has the anonymous role. A
// server without tokens has no roles to tell apart and serves everything to everyone. Wrong tokens count
// towards the same per-address backoff as WebSocket setups.
import { ProtocolError } from '../protocol/errors.ts';
import type { Admission } from './admission.ts';
import type { Role, ServerConfig } from './config.ts';

export type HttpNeed = 'any role' | 'operator';

/** The token a request carries, if any. */
function requestToken(headers: { authorization?: string }, url: URL): string | undefined {
  const auth = headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) throw new ProtocolError('unauthorized', 'the Authorization header must be "Bearer TOKEN"');
    return m[1];
  }
  return url.searchParams.get('token') ?? undefined;
}

/**
 * Checks that a request may read what needs `need`; throws ProtocolError `unauthorized` (no or an unknown
 * token), `forbidden` (a role below the need) or `rate_limited` (the address is backing off).
 */
export function checkHttpAccess(
  need: HttpNeed,
  request: { headers: { authorization?: string }; url: URL; address: string },
  config: Pick<ServerConfig, 'tokens' | 'anonymousRole'>,
  admission: Admission,
): void {
  if (config.tokens.size === 0) return;
  const { address } = request;
  const token = requestToken(request.headers, request.url);
  let role: Role;
  if (token !== undefined) {
    admission.checkAuth(address);
    const known = config.tokens.get(token);
    if (!known) {
      admission.authFailed(address);
      throw new ProtocolError('unauthorized', 'unknown token');
    }
    role = known;
  } else {
    if (config.anonymousRole === 'none') throw new ProtocolError('unauthorized', 'a token is required');
    role = config.anonymousRole;
  }
  if (need === 'operator' && role !== 'operator') throw new ProtocolError('forbidden', 'this needs an operator token');
}
