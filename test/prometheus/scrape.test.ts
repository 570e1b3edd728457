// Debian's Prometheus server scrapes a running agent (the real CLI replaying a generated flow file) and
// answers PromQL: the bytes it reports are the bytes in the file, per pod for kubezonnet's metric.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentProcess, freePort, withTmpDir } from '../harness/agent.js';
import { PrometheusServer, prometheusTool } from '../harness/prometheus-server.js';

interface Flow {
  tx: number;
  rx: number;
  cls: string;
  src?: [string, string];
  dst?: [string, string];
}

/** Deterministic flows: pods in two namespaces, some ends outside the cluster, a mix of classes. */
function generate(n: number): Flow[] {
  let x = 12345;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const pods: [string, string][] = [
    ['shop', 'web-7c9d8-x2k8p'],
    ['shop', 'web-7c9d8-q9w4n'],
    ['shop', 'cart-5b7f9-h6t2m'],
    ['pay', 'api-0'],
    ['pay', 'api-1'],
  ];
  const classes = ['same_zone', 'cross_zone', 'cross_zone', 'internet_egress', 'same_node'];
  return Array.from({ length: n }, () => {
    const cls = classes[next() % classes.length];
    return {
      tx: 1 + (next() % 5_000_000),
      rx: next() % 50_000_000,
      cls,
      src: pods[next() % pods.length],
      dst: cls === 'internet_egress' ? undefined : next() % 7 === 0 ? undefined : pods[next() % pods.length],
    };
  });
}

function record(f: Flow, i: number): string {
  const interval = Math.floor(i / 50);
  const t = Date.parse('2026-01-01T00:00:00Z') + interval * 10_000;
  const attributes: Record<string, string> = { 'traffic.class': f.cls };
  if (f.src) Object.assign(attributes, { 'src.k8s.namespace.name': f.src[0], 'src.k8s.pod.name': f.src[1] });
  if (f.dst) Object.assign(attributes, { 'dst.k8s.namespace.name': f.dst[0], 'dst.k8s.pod.name': f.dst[1] });
  return JSON.stringify({
    time_start: new Date(t).toISOString(),
    time_end: new Date(t + 10_000).toISOString(),
    family: 4,
    protocol: 6,
    src_ip: `10.0.1.${1 + (i % 200)}`,
    src_port: 30000 + i,
    dst_ip: '10.0.2.9',
    dst_port: 8080,
    tx_bytes: f.tx,
    rx_bytes: f.rx,
    tx_packets: 1 + (f.tx >> 10),
    rx_packets: 1 + (f.rx >> 10),
    attributes,
  });
}

describe.runIf(prometheusTool('prometheus'))('prometheus exporter scraped by the Prometheus server', () => {
  it('PromQL returns the bytes replayed: sum(netmon_flow_bytes_total), kubezonnet per pod, self-metrics', async () => {
    await withTmpDir(async (dir) => {
      const flows = generate(400);
      await writeFile(path.join(dir, 'flows.jsonl'), `${flows.map(record).join('\n')}\n`);
      const totalBytes = flows.reduce((n, f) => n + f.tx + f.rx, 0);
      const crossZone = new Map<string, number>();
      const add = (end: [string, string] | undefined, bytes: number) => {
        if (!end || bytes === 0) return;
        const k = `${end[0]}/${end[1]}`;
        crossZone.set(k, (crossZone.get(k) ?? 0) + bytes);
      };
      for (const f of flows) {
        if (f.cls !== 'cross_zone') continue;
        add(f.src, f.tx);
        add(f.dst, f.rx);
      }
      expect(crossZone.size).toBe(5);

      const agentPort = await freePort();
      await writeFile(
        path.join(dir, 'agent.yaml'),
        `receivers: { file: { path: ./flows.jsonl, batch_size: 64 } }
exporters: { prometheus: { endpoint: 127.0.0.1:${agentPort}, granularity: pod } }
service: { pipelines: { flows: { receivers: [file], exporters: [prometheus] } } }
`,
      );
      const agent = new AgentProcess(['run', '--config', path.join(dir, 'agent.yaml')]);
      let prometheus: PrometheusServer | undefined;
      try {
        await agent.waitForLog((l) => l.msg === 'serving Prometheus metrics');
        prometheus = await PrometheusServer.start(dir, `127.0.0.1:${agentPort}`);
        const p = prometheus;
        await agent.waitForLog((l) => l.msg === 'replay finished');

        await p.eventually('sum(netmon_flow_bytes_total)', (r) => {
          expect(r).toHaveLength(1);
          expect(Number(r[0].value[1])).toBe(totalBytes);
        });
        await p.eventually('pod_cross_zone_network_traffic_bytes_total', (r) => {
          const got = new Map(r.map((s) => [`${s.metric.namespace}/${s.metric.pod}`, Number(s.value[1])]));
          expect(got).toEqual(crossZone);
          expect(r[0].metric.job).toBe('netmon');
        });
        // The agent's self-metrics come with the same scrape.
        await p.eventually(
          'netmon_component_items_total{component="prometheus",direction="in",outcome="success"}',
          (r) => expect(r.map((s) => Number(s.value[1]))).toEqual([flows.length]),
        );
        await p.eventually('netmon_process_resident_memory_bytes', (r) =>
          expect(Number(r[0]?.value[1])).toBeGreaterThan(10e6),
        );
        const up = await p.query('up{job="netmon"}');
        expect(up.map((s) => s.value[1])).toEqual(['1']);
      } finally {
        await prometheus?.stop();
        agent.signal('SIGTERM');
        await agent.exit();
      }
    });
  }, 60_000);
});
