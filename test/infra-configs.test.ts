// The deployment files checked by the real tools that read them: Debian's docker-compose validates
// infra/compose.yaml (no Docker daemon needed), and haproxy -c checks infra/haproxy/haproxy.cfg with
// each of the ways its servers are given (infra/local/cluster.sh, compose, Kubernetes).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

const run = promisify(execFile);
const INFRA = new URL('../infra/', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'riverrun-infra-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('infra/compose.yaml', () => {
  it('is valid for docker-compose, with every service and every file it mounts', async () => {
    const { stdout } = await run('docker-compose', ['-f', join(INFRA, 'compose.yaml'), 'config']);
    const config = parse(stdout) as {
      services: Record<
        string,
        { volumes?: { type?: string; source?: string }[] | string[]; environment?: Record<string, string>; command?: string[] }
      >;
    };
    expect(Object.keys(config.services).sort()).toEqual(['grafana', 'haproxy', 'prometheus', 'redis', 'worker1', 'worker2', 'worker3']);
    for (const [name, s] of Object.entries(config.services)) {
      for (const v of s.volumes ?? []) {
        const source = typeof v === 'string' ? v.split(':')[0]! : (v.source ?? '');
        if (source.startsWith('/')) expect(existsSync(source), `${name} mounts ${source}`).toBe(true);
      }
    }
    for (const w of ['worker1', 'worker2', 'worker3']) {
      expect(config.services[w]!.environment).toMatchObject({ RIVERRUN_REDIS: 'redis://redis:6379' });
      expect(config.services[w]!.command).toEqual([
        'serve',
        '--worker-id',
        w.replace('worker', 'w'),
        '--advertise-url',
        `http://${w}:8080`,
      ]);
    }
  });
});

describe('infra/haproxy/haproxy.cfg', () => {
  const base = readFileSync(join(INFRA, 'haproxy/haproxy.cfg'), 'utf8');
  const env = {
    ...process.env,
    RIVERRUN_FRONT: '127.0.0.1:1',
    RIVERRUN_HAPROXY_STATS: '127.0.0.1:2',
    RIVERRUN_HAPROXY_SOCKET: join(work, 'h.sock'),
  };
  const check = async (name: string, servers: string): Promise<void> => {
    const file = join(work, `${name}.cfg`);
    writeFileSync(file, base + servers);
    const r = await run('haproxy', ['-c', '-f', file], { env }).catch((e: { stdout: string; stderr: string }) => e);
    expect(`${r.stdout}${r.stderr}`, name).toContain('Configuration file is valid');
  };

  it('is valid with servers as cluster.sh, compose and Kubernetes give them', async () => {
    await check('local', '    server w1 127.0.0.1:9001 check\n    server w2 127.0.0.1:9002 check\n');
    await check('compose', readFileSync(join(INFRA, 'docker/haproxy-servers.cfg'), 'utf8'));
    const k8s = parseAllDocuments(readFileSync(join(INFRA, 'k8s/haproxy.yaml'), 'utf8'))
      .map((d) => d.toJS() as { kind: string; data?: Record<string, string> })
      .find((d) => d.kind === 'ConfigMap')!;
    await check('k8s', k8s.data!['servers.cfg']!);
  });
});
