// Who may connect and set up now: connections, connections that have not sent setup yet, personal
// sessions (each server-wide and per client address), and a backoff for addresses that keep sending
// wrong tokens. Everything is decided synchronously, so a slot is taken before any await and no burst
// of concurrent setups can pass a cap. The address is the socket's peer address (no proxy headers are
// trusted); IPv6 clients are grouped by /64, the block one host usually gets.
import { ProtocolError } from '../protocol/errors.ts';

export interface AdmissionLimits {
  /** WebSocket connections at once, server-wide and per address. */
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** Connections that have not sent setup yet, server-wide and per address. */
  maxPendingSetups: number;
  maxPendingPerAddress: number;
  /** Personal sessions at once, server-wide and per address. */
  maxSessions: number;
  maxSessionsPerAddress: number;
  /** Failed tokens an address may send before it backs off. */
  authFailuresAllowed: number;
  /** The first backoff (ms); it doubles with each further failure, up to AUTH_BACKOFF_MAX_MS. */
  authBackoffMs: number;
}

export type RefusalReason = 'connections' | 'pending' | 'sessions' | 'auth';

export interface AdmissionOptions {
  now?: () => number;
  /** Called once per refusal, for metrics. */
  onRefused?: (reason: RefusalReason) => void;
  /** Addresses remembered for failed tokens (least recently failed forgotten first). */
  maxAuthEntries?: number;
}

export interface AdmissionStats {
  connections: number;
  pending: number;
  sessions: number;
  /** Addresses with at least one connection or session. */
  addresses: number;
  /** Addresses remembered for failed tokens, and those of them backing off now. */
  authTracked: number;
  authBlocked: number;
}

const AUTH_BACKOFF_MAX_MS = 5 * 60_000;
/** An address with no failed token for this long starts over. */
const AUTH_FORGET_MS = 15 * 60_000;
const MAX_AUTH_ENTRIES = 10_000;

interface PerAddress {
  connections: number;
  pending: number;
  sessions: number;
}

interface AuthRecord {
  failures: number;
  lastFailure: number;
  blockedUntil: number;
}

/** The key an address is counted under: IPv4 (IPv4-mapped IPv6 too) as is, IPv6 by its /64. */
export function addressKey(remote: string | undefined): string {
  if (!remote) return 'unknown';
  const a = remote.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1]!;
  if (!a.includes(':')) return a;
  const [head = '', tail] = a.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

export class Admission {
  private readonly now: () => number;
  private readonly onRefused: (reason: RefusalReason) => void;
  private readonly maxAuthEntries: number;
  private readonly perAddress = new Map<string, PerAddress>();
  /** Insertion order is the order of last failure: the first entry is the stalest. */
  private readonly auth = new Map<string, AuthRecord>();
  private connections = 0;
  private pending = 0;
  private sessions = 0;

  constructor(
    readonly limits: AdmissionLimits,
    options: AdmissionOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.onRefused = options.onRefused ?? (() => {});
    this.maxAuthEntries = options.maxAuthEntries ?? MAX_AUTH_ENTRIES;
  }

  /** Admits a new connection (it counts as pending until setupStarted), or throws ProtocolError('busy'). */
  admit(address: string): Ticket {
    const l = this.limits;
    const mine = this.perAddress.get(address) ?? { connections: 0, pending: 0, sessions: 0 };
    let refusal: string | null = null;
    if (this.connections >= l.maxConnections) refusal = `the server has ${l.maxConnections} connections`;
    else if (mine.connections >= l.maxConnectionsPerAddress) refusal = `${l.maxConnectionsPerAddress} connections from your address`;
    else if (this.pending >= l.maxPendingSetups) refusal = `${l.maxPendingSetups} connections are waiting to set up`;
    else if (mine.pending >= l.maxPendingPerAddress)
      refusal = `${l.maxPendingPerAddress} connections from your address are waiting to set up`;
    if (refusal !== null) {
      this.onRefused(this.connections >= l.maxConnections || mine.connections >= l.maxConnectionsPerAddress ? 'connections' : 'pending');
      throw new ProtocolError('busy', refusal);
    }
    this.perAddress.set(address, mine);
    mine.connections++;
    mine.pending++;
    this.connections++;
    this.pending++;
    return new Ticket(this, address, mine);
  }

  /** Takes a session slot for the address now; the returned function gives it back (once). */
  reserveSession(address: string, mine: PerAddress): () => void {
    const l = this.limits;
    if (this.sessions >= l.maxSessions || mine.sessions >= l.maxSessionsPerAddress) {
      this.onRefused('sessions');
      throw new ProtocolError(
        'busy',
        this.sessions >= l.maxSessions
          ? `all ${l.maxSessions} personal sessions are in use`
          : `${l.maxSessionsPerAddress} personal sessions from your address`,
      );
    }
    this.sessions++;
    mine.sessions++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.sessions--;
      mine.sessions--;
      this.forgetIfIdle(address, mine);
    };
  }

  /** @internal Ticket's bookkeeping. */
  endPending(mine: PerAddress): void {
    mine.pending--;
    this.pending--;
  }

  /** @internal Ticket's bookkeeping. */
  endConnection(address: string, mine: PerAddress): void {
    mine.connections--;
    this.connections--;
    this.forgetIfIdle(address, mine);
  }

  private forgetIfIdle(address: string, mine: PerAddress): void {
    if (mine.connections === 0 && mine.sessions === 0 && this.perAddress.get(address) === mine) this.perAddress.delete(address);
  }

  /** Throws ProtocolError('rate_limited') while the address is backing off after failed tokens. */
  checkAuth(address: string): void {
    const rec = this.authRecord(address);
    const now = this.now();
    if (rec && now < rec.blockedUntil) {
      this.onRefused('auth');
      throw new ProtocolError(
        'rate_limited',
        `${rec.failures} wrong tokens from your address; setup with a token is refused for ${Math.ceil((rec.blockedUntil - now) / 1000)} s`,
      );
    }
  }

  /** Counts a wrong token; from the authFailuresAllowed-th on, each one starts a (doubling) backoff. */
  authFailed(address: string): void {
    const now = this.now();
    const rec = this.authRecord(address) ?? { failures: 0, lastFailure: now, blockedUntil: 0 };
    rec.failures++;
    rec.lastFailure = now;
    const over = rec.failures - this.limits.authFailuresAllowed;
    if (over >= 0) rec.blockedUntil = now + Math.min(AUTH_BACKOFF_MAX_MS, this.limits.authBackoffMs * 2 ** Math.min(over, 30));
    // Re-inserted last: the map stays ordered by last failure, so the stalest entries go first.
    this.auth.delete(address);
    this.auth.set(address, rec);
    for (const [key, r] of this.auth) {
      if (this.auth.size <= this.maxAuthEntries && now - r.lastFailure <= AUTH_FORGET_MS) break;
      this.auth.delete(key);
    }
  }

  private authRecord(address: string): AuthRecord | undefined {
    const rec = this.auth.get(address);
    if (rec && this.now() - rec.lastFailure > AUTH_FORGET_MS) {
      this.auth.delete(address);
      return undefined;
    }
    return rec;
  }

  stats(): AdmissionStats {
    const now = this.now();
    let authBlocked = 0;
    for (const r of this.auth.values()) if (now < r.blockedUntil) authBlocked++;
    return {
      connections: this.connections,
      pending: this.pending,
      sessions: this.sessions,
      addresses: this.perAddress.size,
      authTracked: this.auth.size,
      authBlocked,
    };
  }
}

/** One admitted connection's share of the counts, from admit() to release(). */
export class Ticket {
  private pending = true;
  private released = false;

  constructor(
    private readonly admission: Admission,
    readonly address: string,
    private readonly mine: PerAddress,
  ) {}

  /** The connection sent setup: it no longer counts as waiting. */
  setupStarted(): void {
    if (!this.pending) return;
    this.pending = false;
    this.admission.endPending(this.mine);
  }

  /** A personal session slot, taken now (throws busy at a cap); call the result to give it back. */
  reserveSession(): () => void {
    return this.admission.reserveSession(this.address, this.mine);
  }

  checkAuth(): void {
    this.admission.checkAuth(this.address);
  }

  authFailed(): void {
    this.admission.authFailed(this.address);
  }

  /** The connection is gone. Session slots are given back on their own. Safe to call twice. */
  release(): void {
    if (this.released) return;
    this.setupStarted();
    this.released = true;
    this.admission.endConnection(this.address, this.mine);
  }
}
