// The shipped default pipeline (configs/default.yaml), run by the real CLI against a real conntrack table,
// serves a /metrics page that `promtool check metrics` accepts without a single lint finding — the page
// users scrape, with flow series and every self-metric the agent registers, not a hand-made render.
// Root only: skipped locally without it, a failure in CI.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess, freePort } from '../harness/agent.js';
import { NetnsPair, privileged, startServers, TRAFFIC } from '../harness/netns.js';

function promtoolCheck(body: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool could not run (Debian package 'prometheus'): ${r.error.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe.runIf(privileged())('the default pipeline against the kernel', () => {
  let net: NetnsPair;
  let dir: string;

  beforeAll(async () => {
    net = await NetnsPair.create('nmd');
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-default-'));
    writeFileSync(path.join(dir, 'blob.bin'), Buffer.alloc(200_000, 7));
    await startServers(net, dir);
  });

  afterAll(async () => {
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves flow bytes and self-metrics that pass promtool check metrics with no finding', async () => {
    // configs/default.yaml as shipped, with one file merged on top that chooses the netfilter mode and
    // points conntrack at the test's namespace (instead of the machine's own table), reading faster.
    const overlay = path.join(dir, 'netns.yaml');
    writeFileSync(
      overlay,
      `receivers: { flows: { mode: netfilter, netfilter: { netns: ${net.path(net.b)}, read_interval: 300ms } } }\n`,
    );
    const metricsPort = await freePort();
    const agent = new AgentProcess(['run', '--config', 'configs/default.yaml', overlay], {
      env: {
        NETMON_STATE_DIR: dir,
        NETMON_OUTPUT: path.join(dir, 'flows.jsonl'),
        NETMON_HEALTH_ENDPOINT: '127.0.0.1:0',
        NETMON_PROMETHEUS_ENDPOINT: `127.0.0.1:${metricsPort}`,
        // No cluster: the agent runs standalone whatever the machine's environment says.
        KUBECONFIG: path.join(dir, 'no-kubeconfig'),
        KUBERNETES_SERVICE_HOST: '',
      },
    });
    try {
      await agent.waitForLog((l) => String(l.msg).startsWith('netmon is running'), 30_000);
      await net.exec(net.b, 'python3', [TRAFFIC, 'get', `http://${net.ipA}:8080/blob.bin`, '3']);

      let body = '';
      const until = Date.now() + 20_000;
      // The GETs' bytes reach the metrics after the next dump and delta.
      while (Date.now() < until) {
        body = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        if (/^netmon_flow_bytes_total\{.*direction="rx".*\} [1-9]/m.test(body)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const rx = body
        .split('\n')
        .filter((l) => l.startsWith('netmon_flow_bytes_total{') && l.includes('direction="rx"'))
        .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
      // Three GETs of 200,000 bytes each came back to the initiator, plus HTTP headers and TCP/IP overhead.
      expect(rx).toBeGreaterThanOrEqual(3 * 200_000);
      expect(rx).toBeLessThan(3 * 200_000 * 1.2);

      expect(body).toMatch(/^netmon_build_info\{.*version="\d+\.\d+\.\d+.*\} 1$/m);
      expect(body).toMatch(/^netmon_conntrack_accounting_enabled(\{[^}]*\})? 1$/m);
      expect(body).toMatch(/^# TYPE netmon_delta_flows_reset_total counter$/m);

      const { status, output } = promtoolCheck(body);
      expect(output).toBe('');
      expect(status).toBe(0);
    } finally {
      agent.signal('SIGTERM');
      expect(await agent.exit()).toBe(0);
    }
  }, 90_000);
});
