// infra/grafana/riverrun.json: every series a panel asks for is one the server exports
// (src/server/metrics.ts) or a recording rule of infra/prometheus/rules.yml, so a renamed metric cannot
// leave a panel empty unnoticed. Each query is also run against a live Prometheus in test/cluster.test.ts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../src/server/metrics.ts';

interface Panel {
  id: number;
  title: string;
  datasource: { uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets: { refId: string; expr: string }[];
}

const dashboard = JSON.parse(readFileSync(new URL('../infra/grafana/riverrun.json', import.meta.url), 'utf8')) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string }[] };
};

function dashboardQueries(): string[] {
  return dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
}

describe('infra/grafana/riverrun.json', () => {
  it('asks only for series the server exports or the rules record', async () => {
    const exported = new Set<string>();
    for (const m of await new Metrics().registry.getMetricsAsJSON()) {
      exported.add(m.name);
      if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(m.name + s);
    }
    const rules = readFileSync(new URL('../infra/prometheus/rules.yml', import.meta.url), 'utf8');
    const recorded = new Set([...rules.matchAll(/record: (\S+)/g)].map((m) => m[1]!));
    const scrape = new Set(['up']);
    for (const expr of dashboardQueries()) {
      const names = [...expr.matchAll(/\b(riverrun[a-z0-9_:]*|process_[a-z_]+|up)\b(?=[{[\s)]|$)/g)].map((m) => m[1]!);
      expect(names.length, expr).toBeGreaterThan(0);
      for (const n of names) expect(exported.has(n) || recorded.has(n) || scrape.has(n), `${n} in ${expr}`).toBe(true);
    }
  });

  it('is a well-formed dashboard: unique panel ids, every panel on the datasource variable, on the grid', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard.templating.list.map((v) => v.name)).toContain('datasource');
    for (const p of dashboard.panels) {
      // Grafana's variable syntax, not a template literal.
      expect(p.datasource.uid).toBe(`$${'{datasource}'}`);
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
      expect(p.targets.length).toBeGreaterThan(0);
    }
  });
});
