import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentProcess, freePort, ROOT, withTmpDir } from './harness/agent.js';

const SAMPLE = path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl');

interface FinalCounts {
  components: {
    kind: string;
    id: string;
    items: { in: number; out: number; dropped: number; failed: number };
  }[];
  queues: Record<string, unknown>[];
}

const items = (final: FinalCounts, kind: string, id: string) =>
  final.components.find((c) => c.kind === kind && c.id === id)?.items;

describe('replay end to end (real CLI)', () => {
  it('file receiver → file exporter reproduces its input byte for byte (golden)', async () => {
    await withTmpDir(async (dir) => {
      const out = path.join(dir, 'out.jsonl');
      const config = path.join(dir, 'replay.yaml');
      await writeFile(
        config,
        `receivers: { file: { path: ${JSON.stringify(SAMPLE)} } }
exporters: { file: { path: ./out.jsonl } }
service: { pipelines: { flows: { receivers: [file], exporters: [file] } } }
`,
      );
      const agent = new AgentProcess(['run', '-c', config]);
      await agent.waitForLog((l) => l.msg === 'replay finished');
      agent.signal('SIGTERM');
      expect(await agent.exit()).toBe(0);
      const input = await readFile(SAMPLE, 'utf8');
      expect(input.split('\n').length).toBeGreaterThan(50);
      expect(await readFile(out, 'utf8')).toBe(input);
    });
  });

  it('SIGTERM in the middle of a paced replay loses nothing already read', async () => {
    await withTmpDir(async (dir) => {
      const config = path.join(dir, 'drain.yaml');
      // Six 10 s intervals at 20x: one interval every 0.5 s. Batches of 5 through a stage that holds each
      // for 60 ms, so every interval leaves batches queued behind the slow stage for a while.
      await writeFile(
        config,
        `receivers: { file: { path: ${JSON.stringify(SAMPLE)}, batch_size: 5, pace: recorded, speed: 20 } }
processors: { plugin/slow: { module: ${JSON.stringify(path.join(ROOT, 'test/testdata/slow-plugin.mjs'))}, options: { delay_ms: 60 } } }
exporters: { file: { path: ./out.jsonl } }
service:
  pipelines: { flows: { receivers: [file], processors: [plugin/slow], exporters: [file] } }
`,
      );
      const agent = new AgentProcess(['run', '-c', config]);
      await agent.waitForLog(
        (l) => l.msg === 'netmon is running; SIGTERM or Ctrl-C stops it after draining in-flight data',
      );
      await new Promise((r) => setTimeout(r, 1100));
      agent.signal('SIGTERM');
      expect(await agent.exit()).toBe(0);
      const final = (await agent.waitForLog((l) => l.msg === 'final item counts')) as unknown as FinalCounts;
      const read = items(final, 'receiver', 'file')?.out ?? 0;
      const input = (await readFile(SAMPLE, 'utf8')).split('\n').filter(Boolean);
      // Stopped mid-file: some records were read, not all.
      expect(agent.logs.some((l) => l.msg === 'replay finished')).toBe(false);
      expect(read).toBeGreaterThan(0);
      expect(read).toBeLessThan(input.length);
      // Everything read went through the slow stage to the file, in order, nothing twice.
      expect(items(final, 'processor', 'plugin/slow')).toEqual({
        in: read,
        out: read,
        dropped: 0,
        filtered: 0,
        failed: 0,
      });
      expect(items(final, 'exporter', 'file')).toEqual({ in: read, out: read, dropped: 0, failed: 0 });
      // The queue's counters spelt as /status spells them.
      expect(final.queues).toEqual([
        { pipeline: 'flows', receiver: 'file', capacity: 64, depth: 0, dropped_batches: 0, dropped_items: 0 },
      ]);
      const written = (await readFile(path.join(dir, 'out.jsonl'), 'utf8')).split('\n').filter(Boolean);
      expect(written).toEqual(input.slice(0, read));
    });
  });

  it('runs the example plugin from config (two config files merged)', async () => {
    await withTmpDir(async (dir) => {
      const override = path.join(dir, 'to-file.yaml');
      await writeFile(
        override,
        `receivers: { file: { pace: none, loop: false } }
exporters: { file: { path: ${JSON.stringify(path.join(dir, 'out.jsonl'))} } }
service: { pipelines: { flows: { exporters: [file] } } }
`,
      );
      const agent = new AgentProcess(['run', '-c', 'configs/examples/plugin.yaml', '-c', override]);
      await agent.waitForLog((l) => l.msg === 'replay finished');
      agent.signal('SIGTERM');
      expect(await agent.exit()).toBe(0);
      const rows = (await readFile(path.join(dir, 'out.jsonl'), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map(
          (l) => JSON.parse(l) as { protocol: number; dst_port: number; attributes: Record<string, unknown> },
        );
      expect(rows.length).toBeGreaterThan(50);
      for (const r of rows) {
        const expected =
          r.protocol === 6 && r.dst_port === 443
            ? 'https'
            : r.protocol === 17 && r.dst_port === 53
              ? 'dns'
              : undefined;
        if (expected) expect(r.attributes['app.protocol']).toBe(expected);
      }
      expect(rows.some((r) => r.attributes['app.protocol'] === 'https')).toBe(true);
    });
  });

  it('configs/examples/replay.yaml as shipped: workloads, classes and dollars in Prometheus within a minute', async () => {
    await withTmpDir(async (dir) => {
      const port = await freePort();
      const agent = new AgentProcess(['run', '--config', 'configs/examples/replay.yaml'], {
        env: {
          NETMON_PROMETHEUS_ENDPOINT: `127.0.0.1:${port}`,
          NETMON_HEALTH_ENDPOINT: '127.0.0.1:0',
          NETMON_OUTPUT: path.join(dir, 'flows.jsonl'),
        },
      });
      try {
        const cost = new Map<string, number>();
        const until = Date.now() + 60_000;
        while (Date.now() < until) {
          const body = await fetch(`http://127.0.0.1:${port}/metrics`)
            .then((r) => r.text())
            .catch(() => '');
          cost.clear();
          for (const line of body.split('\n')) {
            const m = /^netmon_flow_cost_usd_total\{(.*)\} (\S+)$/.exec(line);
            if (m) cost.set(m[1], Number(m[2]));
          }
          if ([...cost.values()].some((v) => v > 0)) break;
          await new Promise((r) => setTimeout(r, 250));
        }
        // Cross-zone traffic between two Deployments of the shop, priced by AWS's list price.
        const crossZone = [...cost].filter(
          ([labels, usd]) =>
            labels.includes('src_workload="frontend"') &&
            labels.includes('dst_workload="catalog"') &&
            labels.includes('traffic_class="cross_zone"') &&
            usd > 0,
        );
        expect(crossZone.length, [...cost.keys()].join('\n')).toBeGreaterThan(0);
        // The sample's records already carry workloads, zones and classes, so the labels above would be
        // there with k8s_attributes doing nothing. No record names a Service: only the cluster snapshot
        // (replay-cluster.json) can, from the EndpointSlice that lists the pod dialled. CoreDNS is
        // dialled as kube-dns, a name no workload has. All of the first interval is one batch, so it is
        // in the scrape that showed the first dollars.
        for (const [labels] of crossZone) expect(labels).toContain('dst_service="catalog"');
        const dns = [...cost.keys()].filter((labels) => labels.includes('dst_workload="coredns"'));
        expect(dns.length, [...cost.keys()].join('\n')).toBeGreaterThan(0);
        for (const labels of dns) expect(labels).toContain('dst_service="kube-dns"');
        // Same-node traffic is known and costs nothing.
        const sameNode = [...cost].filter(([labels]) => labels.includes('traffic_class="same_node"'));
        expect(sameNode.length).toBeGreaterThan(0);
        for (const [, usd] of sameNode) expect(usd).toBe(0);
        expect(agent.logs.some((l) => String(l.msg).startsWith('snapshot: '))).toBe(true);
      } finally {
        agent.signal('SIGTERM');
        expect(await agent.exit()).toBe(0);
      }
    });
  }, 90_000);
});
