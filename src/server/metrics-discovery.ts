// Prometheus file-based service discovery: the server writes its own scrape target to DIR/<id>.json
// when it starts listening and removes it when it stops, so a Prometheus whose file_sd_configs reads
// DIR/*.json finds every worker (infra/prometheus/prometheus.yml). A worker that dies keeps its file:
// its target's `up` goes to 0, which is what the worker-down alert watches.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class MetricsTarget {
  private readonly file: string;

  /** Writes the target (host:port of /metrics) with a `worker` label; the rename makes it appear whole. */
  constructor(dir: string, worker: string, address: string) {
    mkdirSync(dir, { recursive: true });
    this.file = join(dir, `${worker}.json`);
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify([{ targets: [address], labels: { worker } }])}\n`);
    renameSync(tmp, this.file);
  }

  remove(): void {
    rmSync(this.file, { force: true });
  }
}
