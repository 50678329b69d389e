// The shipped Prometheus config and rules, checked by Debian's promtool: the rules parse, the unit tests
// in rules.test.yml pass (each alert fires on the series that should fire it, and not before), and the
// config is valid. Prometheus itself scraping live workers is in test/cluster.test.ts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const DIR = new URL('../infra/prometheus/', import.meta.url).pathname;

describe('infra/prometheus', () => {
  it('promtool check rules: the recording and alert rules are valid', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', 'rules.yml'], { cwd: DIR });
    expect(stdout).toContain('SUCCESS: 8 rules found');
  });

  it('promtool test rules: every alert fires when it should, and not before', async () => {
    const { stdout } = await run('promtool', ['test', 'rules', 'rules.test.yml'], { cwd: DIR });
    expect(stdout).toContain('SUCCESS');
  });

  it('promtool check config: the scrape config and its rule file', async () => {
    const { stdout } = await run('promtool', ['check', 'config', 'prometheus.yml'], { cwd: DIR });
    expect(stdout).toContain('SUCCESS');
  });
});
