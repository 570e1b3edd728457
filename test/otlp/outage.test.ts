// The real CLI replays a generated flow file through the file receiver into the otlp exporter; an OTLP/gRPC
// sink in this process decodes the protobuf. The sink refuses everything (UNAVAILABLE) for a while, then
// recovers: every data point arrives, once, and the decoded sums are the file's.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentProcess, runCli, withTmpDir } from '../harness/agent.js';
import { OtlpSink, type SinkPoint } from '../harness/otlp-sink.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const INTERVALS = 12;
const PER_INTERVAL = 150;

interface Flow {
  tx: number;
  rx: number;
  txp: number;
  rxp: number;
  cost: number;
  attributes: Record<string, string | number>;
}

/** Deterministic flows of 12 workloads in 3 namespaces to pods, a service and the internet. */
function generate(): Flow[][] {
  let x = 987654321;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const classes = ['same_zone', 'cross_zone', 'internet_egress', 'same_node'];
  return Array.from({ length: INTERVALS }, () =>
    Array.from({ length: PER_INTERVAL }, () => {
      const w = next() % 12;
      const cls = classes[next() % classes.length];
      const attributes: Record<string, string | number> = {
        'src.k8s.namespace.name': `ns-${w % 3}`,
        'src.k8s.workload.kind': 'Deployment',
        'src.k8s.workload.name': `app-${w}`,
        'src.k8s.pod.name': `app-${w}-5d8f7-${next() % 4}`,
        'traffic.class': cls,
        'cost.usd': (next() % 1000) / 1e6,
      };
      if (cls === 'internet_egress') {
        attributes['dst.kind'] = 'external_public';
        attributes['dst.domain'] = `api-${next() % 3}.example.com`;
      } else {
        const d = next() % 12;
        Object.assign(attributes, {
          'dst.kind': 'pod',
          'dst.k8s.namespace.name': `ns-${d % 3}`,
          'dst.k8s.workload.kind': 'Deployment',
          'dst.k8s.workload.name': `app-${d}`,
        });
      }
      return {
        tx: next() % 2_000_000,
        rx: next() % 20_000_000,
        txp: next() % 2000,
        rxp: next() % 20000,
        cost: attributes['cost.usd'] as number,
        attributes,
      };
    }),
  );
}

function records(intervals: Flow[][]): string {
  const lines: string[] = [];
  intervals.forEach((flows, k) => {
    const start = T0 + k * 10_000;
    flows.forEach((f, i) => {
      lines.push(
        JSON.stringify({
          time_start: new Date(start).toISOString(),
          time_end: new Date(start + 10_000).toISOString(),
          family: 4,
          protocol: 6,
          src_ip: `10.0.${k}.${1 + (i % 250)}`,
          src_port: 30000 + i,
          dst_ip: '10.1.0.9',
          dst_port: 8080,
          tx_bytes: f.tx,
          rx_bytes: f.rx,
          tx_packets: f.txp,
          rx_packets: f.rxp,
          attributes: f.attributes,
        }),
      );
    });
  });
  return `${lines.join('\n')}\n`;
}

const sum = (points: SinkPoint[]) => points.reduce((n, p) => n + p.value, 0);
const identity = (p: SinkPoint) =>
  `${p.metric} ${JSON.stringify(Object.entries(p.attributes).sort())} ${p.start} ${p.end}`;

describe('otlp exporter end to end (real CLI, real gRPC)', () => {
  it('the sink refuses for a while, then recovers: every point arrives once, sums equal the file', async () => {
    await withTmpDir(async (dir) => {
      const intervals = generate();
      const flows = intervals.flat();
      await writeFile(path.join(dir, 'flows.jsonl'), records(intervals));
      const sink = await OtlpSink.start();
      try {
        // Down for 2 s from the first request: it and its retries fail (backoff 1 s, then 1.5 s) while
        // the replay (12 intervals at 40×: 0.25 s each) keeps queueing. Configured as for the Collector:
        // host:port, plaintext by tls.insecure.
        sink.failFor(2000, undefined, undefined, { fromNextCall: true });
        await writeFile(
          path.join(dir, 'agent.yaml'),
          `receivers:
  file: { path: ./flows.jsonl, batch_size: 50, pace: recorded, speed: 40 }
exporters:
  otlp:
    endpoint: 127.0.0.1:${sink.port}
    tls: { insecure: true }
    retry_on_failure: { initial_interval: 1s, randomization_factor: 0 }
    interval: 200ms
    granularity: pod
    headers: { x-tenant: e2e }
service:
  pipelines:
    flows: { receivers: [file], exporters: [otlp] }
`,
        );
        const agent = new AgentProcess(['run', '--config', path.join(dir, 'agent.yaml')], {
          // k8s.cluster.name comes from CLUSTER_NAME when resource does not set it.
          env: { NODE_NAME: 'node-e2e', CLUSTER_NAME: 'e2e-cluster' },
        });
        try {
          await agent.waitForLog((l) => l.msg === 'replay finished', 20_000);
          await agent.waitForLog((l) => l.msg === 'backend reachable again; sending resumed', 20_000);
        } finally {
          agent.signal('SIGTERM');
          expect(await agent.exit()).toBe(0);
        }
        expect(sink.refused).toBeGreaterThan(0);
        expect(agent.logs.some((l) => l.msg === 'send failed; will retry')).toBe(true);
        expect(agent.logs.some((l) => l.msg === 'stopped with points the backend never took')).toBe(false);

        const points = sink.points();
        // Nothing twice: one point per metric, attributes, start and end.
        const ids = points.map(identity);
        expect(new Set(ids).size).toBe(ids.length);
        const io = points.filter((p) => p.metric === 'netmon.flow.io');
        const packets = points.filter((p) => p.metric === 'netmon.flow.packet.count');
        const dir_ = (ps: SinkPoint[], d: string) =>
          ps.filter((p) => p.attributes['network.io.direction'] === d);
        expect(sum(dir_(io, 'transmit'))).toBe(flows.reduce((n, f) => n + f.tx, 0));
        expect(sum(dir_(io, 'receive'))).toBe(flows.reduce((n, f) => n + f.rx, 0));
        expect(sum(dir_(packets, 'transmit'))).toBe(flows.reduce((n, f) => n + f.txp, 0));
        expect(sum(dir_(packets, 'receive'))).toBe(flows.reduce((n, f) => n + f.rxp, 0));
        const cost = points.filter((p) => p.metric === 'netmon.flow.cost');
        expect(sum(cost)).toBeCloseTo(
          flows.reduce((n, f) => n + f.cost, 0),
          9,
        );
        // Per series, the delta points follow each other without gap or overlap.
        const bySeries = new Map<string, SinkPoint[]>();
        for (const p of dir_(io, 'transmit')) {
          const key = JSON.stringify(Object.entries(p.attributes).sort());
          bySeries.set(key, [...(bySeries.get(key) ?? []), p]);
        }
        for (const series of bySeries.values()) {
          series.sort((a, b) => (a.start < b.start ? -1 : 1));
          for (let i = 1; i < series.length; i++) expect(series[i].start).toBe(series[i - 1].end);
        }
        for (const p of points) {
          expect(p.temporality).toBe('delta');
          expect(p.resource).toMatchObject({
            'service.name': 'netmon',
            'service.instance.id': 'node-e2e',
            'k8s.node.name': 'node-e2e',
            'k8s.cluster.name': 'e2e-cluster',
          });
        }
        expect(sink.requests.every((r) => r.metadata['x-tenant'] === 'e2e' && r.encoding === 'gzip')).toBe(
          true,
        );
      } finally {
        await sink.close();
      }
    });
  }, 45_000);
});

describe('configs/examples/otlp.yaml', () => {
  it('is a valid configuration', async () => {
    const r = await runCli(['validate', '-c', 'configs/examples/otlp.yaml']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});
