// infra/k8s/*.yaml against the Kubernetes schemas (kubernetes-models; the Prometheus Operator's CRDs
// from @kubernetes-models/prometheus-operator): every document is an object its API knows, with valid
// fields. No cluster is reachable here, so this is what is checked (docs/deploy.md says so).
import { readdirSync, readFileSync } from 'node:fs';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const DIR = new URL('../infra/k8s/', import.meta.url);
const docs = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((file) =>
    parseAllDocuments(readFileSync(new URL(file, DIR), 'utf8')).map((d) => ({ file, object: d.toJS() as Record<string, unknown> })),
  );

type Model = new (o: never) => { validate(): void };
/** The model (schema) of each apiVersion/kind the manifests use; another kind fails the test. */
const MODELS: Record<string, Model> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

describe('infra/k8s', () => {
  it('every manifest validates against its schema', () => {
    expect(docs.length).toBeGreaterThan(8);
    for (const { file, object } of docs) {
      const what = `${file}: ${object.apiVersion}/${object.kind} ${(object.metadata as { name: string }).name}`;
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      expect(Model, `${what} has no schema here`).toBeDefined();
      expect(() => new Model!(object as never).validate(), what).not.toThrow();
    }
  });

  it('has what a GPU worker pool needs: GPU requests and a node selector, probes, preStop, a PDB, an HPA, a ServiceMonitor', () => {
    const find = (kind: string, name: string) =>
      docs.find((d) => d.object.kind === kind && (d.object.metadata as { name: string }).name === name)?.object;
    const worker = find('StatefulSet', 'riverrun-worker') as {
      spec: { template: { spec: { nodeSelector: object; containers: Record<string, unknown>[] } } };
    };
    const c = worker.spec.template.spec.containers[0]! as {
      resources: { requests: Record<string, unknown> };
      readinessProbe: { httpGet: { path: string } };
      livenessProbe: { httpGet: { path: string } };
      lifecycle: { preStop: unknown };
    };
    expect(c.resources.requests['nvidia.com/gpu']).toBe(1);
    expect(worker.spec.template.spec.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.lifecycle.preStop).toBeDefined();
    for (const [kind, name] of [
      ['PodDisruptionBudget', 'riverrun-worker'],
      ['HorizontalPodAutoscaler', 'riverrun-worker'],
      ['ServiceMonitor', 'riverrun-worker'],
      ['PrometheusRule', 'riverrun'],
      ['StatefulSet', 'riverrun-redis'],
      ['Deployment', 'riverrun-haproxy'],
    ])
      expect(find(kind!, name!), `${kind} ${name}`).toBeDefined();
  });

  it("the PrometheusRule holds infra/prometheus/rules.yml's groups", () => {
    const rule = docs.find((d) => d.object.kind === 'PrometheusRule')!.object as { spec: { groups: unknown } };
    const rules = parseAllDocuments(readFileSync(new URL('../infra/prometheus/rules.yml', import.meta.url), 'utf8'))[0]!.toJS() as {
      groups: unknown;
    };
    expect(rule.spec.groups).toEqual(rules.groups);
  });
});
