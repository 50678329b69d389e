// The kernel's send queues (Linux): /proc/self/net/tcp and tcp6 list every TCP socket of this network
// namespace with tx_queue, the bytes written to it that the peer has not acknowledged yet. Node 20 cannot
// bound a socket's kernel buffer, so the Ogg listeners' backlog is measured here instead.
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6, type Socket } from 'node:net';
import { endianness } from 'node:os';

/** Socket key -> tx_queue bytes (sockets with a non-empty queue only); null when the OS does not tell. */
export async function readKernelSendQueues(): Promise<Map<string, number> | null> {
  if (process.platform !== 'linux') return null;
  const queues = new Map<string, number>();
  let readable = false;
  for (const file of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(file, 'latin1');
    } catch {
      continue; // tcp6 is missing where IPv6 is off
    }
    readable = true;
    // "sl local_address rem_address st tx_queue:rx_queue ...", addresses as HEXADDR:HEXPORT.
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 5) continue;
      const tx = Number.parseInt(f[4]!.slice(0, f[4]!.indexOf(':')), 16);
      if (tx > 0) queues.set(`${f[2]}/${f[1]!.slice(f[1]!.indexOf(':') + 1)}`, tx);
    }
  }
  return readable ? queues : null;
}

/**
 * The socket as /proc/self/net/tcp{,6} names it: "REMOTEADDR:REMOTEPORT/LOCALPORT" in upper-case hex,
 * the address as the kernel prints it (each 32-bit word in host byte order). Null if not known.
 */
export function kernelSocketKey(socket: Socket): string | null {
  const { remoteAddress, remotePort, localPort } = socket;
  if (remoteAddress === undefined || remotePort === undefined || localPort === undefined) return null;
  const bytes = addressBytes(remoteAddress);
  if (bytes === null) return null;
  const littleEndian = endianness() === 'LE';
  let hex = '';
  for (let i = 0; i < bytes.length; i += 4) {
    const word = bytes.slice(i, i + 4);
    if (littleEndian) word.reverse();
    for (const b of word) hex += b.toString(16).padStart(2, '0');
  }
  const port = (p: number): string => p.toString(16).padStart(4, '0');
  return `${hex}:${port(remotePort)}/${port(localPort)}`.toUpperCase();
}

/** The 4 (IPv4) or 16 (IPv6, IPv4-mapped included) bytes of an address as Node prints it. */
function addressBytes(address: string): number[] | null {
  if (isIPv4(address)) return address.split('.').map(Number);
  if (!isIPv6(address)) return null;
  let a = address.replace(/%.*$/, ''); // zone id
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, v4.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = a.split('::') as [string, string | undefined];
  const words = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const groups =
    tail === undefined
      ? words(head)
      : [...words(head), ...Array<string>(8 - words(head).length - words(tail).length).fill('0'), ...words(tail)];
  if (groups.length !== 8) return null;
  return groups.flatMap((g) => {
    const v = Number.parseInt(g, 16);
    return [v >> 8, v & 0xff];
  });
}
