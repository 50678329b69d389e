// A minimal protocol v1 client for tests: msgpack frames over a real WebSocket, with waiting helpers.
import { pack, unpack } from 'msgpackr';
import WebSocket from 'ws';

export type Msg = Record<string, unknown> & { type: string };

export class TestClient {
  readonly messages: Msg[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.messages.push(unpack(data) as Msg);
      this.notify();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.notify();
    });
  }

  static async connect(url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(url, options);
    const client = new TestClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  send(msg: unknown): void {
    this.ws.send(pack(msg));
  }

  sendRaw(data: Buffer | string): void {
    this.ws.send(data);
  }

  of(type: string): Msg[] {
    return this.messages.filter((m) => m.type === type);
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `check` returns a value (not undefined/false). */
  async until<T>(check: () => T | undefined | false, ms = 10_000, what = 'condition'): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = check();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > end)
        throw new Error(
          `timed out waiting for ${what}; last messages: ${JSON.stringify(this.messages.slice(-3).map((m) => ({ ...m, packets: undefined })))}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for the next message of `type` after the `after`-th one of that type. */
  next(type: string, after = this.of(type).length, ms?: number): Promise<Msg> {
    return this.until(() => this.of(type)[after], ms, `a ${type} message`);
  }

  async waitClosed(ms = 10_000): Promise<{ code: number; reason: string }> {
    return this.until(() => this.closed ?? undefined, ms, 'close');
  }

  close(): void {
    this.ws.close();
  }
}
