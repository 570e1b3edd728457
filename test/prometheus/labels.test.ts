// Label selection as a scraper sees it: zones, protocol, destination ports and the top N destination
// prefixes with "other", scraped over HTTP from the exporter's endpoint (and, when Debian's Prometheus is
// installed, by the Prometheus server from the real agent, answering PromQL). Totals stay exact; the
// output stays clean for promtool.
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FlowBatch, FlowFlags, type FlowInit } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { prometheusExporterConfig } from '../../packages/exporters/src/prometheus/config.js';
import { PrometheusExporter } from '../../packages/exporters/src/prometheus/exporter.js';
import { AgentProcess, freePort, withTmpDir } from '../harness/agent.js';
import { PrometheusServer, type PromSample, prometheusTool } from '../harness/prometheus-server.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of an exposition in the text format. */
function parse(body: string): Sample[] {
  const out: Sample[] = [];
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const T0 = Date.parse('2026-01-01T00:00:00Z');

const WEB = {
  'src.k8s.namespace.name': 'shop',
  'src.k8s.workload.kind': 'Deployment',
  'src.k8s.workload.name': 'web',
  'src.k8s.pod.name': 'web-7c9d8-x2k8p',
  'src.cloud.availability_zone': 'eu-west-1a',
};

function flow(
  protocol: number,
  dstIp: string,
  dstPort: number,
  tx: number,
  attributes: Record<string, string>,
): FlowInit {
  return {
    timeStart: T0,
    timeEnd: T0 + 10_000,
    protocol,
    srcIp: '10.0.1.5',
    srcPort: 40000,
    dstIp,
    dstPort,
    txBytes: tx,
    rxBytes: 0,
    txPackets: 1,
    rxPackets: 0,
    flags: FlowFlags.InitiatorKnown,
    attributes: { ...WEB, ...attributes },
  };
}

const running: PrometheusExporter[] = [];
afterEach(async () => {
  for (const e of running.splice(0)) await e.shutdown();
});

describe('prometheus exporter: label selection over HTTP', () => {
  it('scraped: zones, protocol, listener ports, top N prefixes with "other"; totals exact; promtool clean', async () => {
    const e = new PrometheusExporter(
      testSettings('exporter', 'prometheus'),
      prometheusExporterConfig.parse({
        endpoint: '127.0.0.1:0',
        self_metrics: false,
        labels: { include: ['dst_port'], exclude: ['dst_service'], dst_prefix: { top: 2 } },
      }),
    );
    running.push(e);
    await e.start();
    const db = {
      'dst.kind': 'pod',
      'dst.k8s.namespace.name': 'shop',
      'dst.k8s.workload.kind': 'StatefulSet',
      'dst.k8s.workload.name': 'db',
      'dst.cloud.availability_zone': 'eu-west-1b',
      'traffic.class': 'cross_zone',
    };
    const ext = { 'dst.kind': 'external_public', 'traffic.class': 'internet_egress' };
    const rows: FlowInit[] = [
      flow(6, '10.0.2.9', 5432, 700, db),
      flow(17, '10.96.0.10', 53, 30, {
        'dst.kind': 'service',
        'dst.k8s.namespace.name': 'kube-system',
        'dst.k8s.service.name': 'kube-dns',
        'traffic.class': 'same_zone',
      }),
    ];
    // 300 distinct addresses in 100 /24s: the first two /24s seen keep their name, the rest is "other".
    for (let i = 0; i < 300; i++) rows.push(flow(6, `198.18.${i % 100}.${1 + (i % 250)}`, 443, 10 + i, ext));
    const total = rows.reduce((n, r) => n + (r.txBytes ?? 0), 0);
    e.export(FlowBatch.from(rows));

    const res = await fetch(e.url() as string, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-encoding')).toBe('gzip');
    const body = await res.text();
    const tx = parse(body).filter((s) => s.name === 'netmon_flow_bytes_total' && s.labels.direction === 'tx');
    expect(tx.reduce((n, s) => n + s.value, 0)).toBe(total);
    const web = {
      src_namespace: 'shop',
      src_workload_kind: 'Deployment',
      src_workload: 'web',
      src_zone: 'eu-west-1a',
    };
    expect(tx.find((s) => s.labels.dst_workload === 'db')?.labels).toEqual({
      ...web,
      dst_namespace: 'shop',
      dst_workload_kind: 'StatefulSet',
      dst_workload: 'db',
      dst_zone: 'eu-west-1b',
      dst_kind: 'pod',
      dst_port: '5432',
      protocol: '6',
      traffic_class: 'cross_zone',
      direction: 'tx',
    });
    expect(tx.find((s) => s.labels.protocol === '17')).toMatchObject({
      labels: { dst_namespace: 'kube-system', dst_kind: 'service', dst_port: '53' },
      value: 30,
    });
    const byPrefix = new Map(
      tx.filter((s) => s.labels.dst_prefix).map((s) => [s.labels.dst_prefix, s.value]),
    );
    // i ≡ 0 and i ≡ 1 (mod 100): 10+0 + 10+100 + 10+200, and 11 + 111 + 211.
    expect(byPrefix).toEqual(
      new Map([
        ['198.18.0.0/24', 330],
        ['198.18.1.0/24', 333],
        ['other', 300 * 10 + (299 * 300) / 2 - 330 - 333],
      ]),
    );
    // External destinations have no port label.
    expect(tx.filter((s) => s.labels.dst_prefix && s.labels.dst_port)).toEqual([]);
    if (prometheusTool('promtool')) {
      const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
      expect(`${r.stdout}${r.stderr}`).toBe('');
      expect(r.status).toBe(0);
    }
  });
});

describe.runIf(prometheusTool('prometheus'))('label selection scraped by the Prometheus server', () => {
  it('PromQL sums by zone, port and prefix equal the replayed file’s; at most top + 1 prefix values', async () => {
    await withTmpDir(async (dir) => {
      let x = 2024;
      const next = () => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        return x >>> 0;
      };
      const zones = ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'];
      interface Rec {
        srcZone: string;
        dstZone?: string;
        port?: number;
        prefix?: string;
        tx: number;
        line: string;
      }
      const recs: Rec[] = [];
      for (let i = 0; i < 600; i++) {
        const t = T0 + Math.floor(i / 60) * 10_000;
        const srcZone = zones[next() % 3];
        const tx = 1 + (next() % 1_000_000);
        const external = next() % 2 === 0;
        const attributes: Record<string, string> = { ...WEB, 'src.cloud.availability_zone': srcZone };
        let dstIp: string;
        let port: number;
        let rec: Rec;
        if (external) {
          dstIp = `203.0.${next() % 12}.${1 + (next() % 250)}`;
          port = 443;
          Object.assign(attributes, { 'dst.kind': 'external_public', 'traffic.class': 'internet_egress' });
          rec = { srcZone, prefix: `${dstIp.split('.').slice(0, 3).join('.')}.0/24`, tx, line: '' };
        } else {
          const dstZone = zones[next() % 3];
          dstIp = '10.0.2.9';
          port = [5432, 6379][next() % 2];
          Object.assign(attributes, {
            'dst.kind': 'pod',
            'dst.k8s.namespace.name': 'shop',
            'dst.k8s.workload.name': 'db',
            'dst.cloud.availability_zone': dstZone,
            'traffic.class': dstZone === srcZone ? 'same_zone' : 'cross_zone',
          });
          rec = { srcZone, dstZone, port, tx, line: '' };
        }
        rec.line = JSON.stringify({
          time_start: new Date(t).toISOString(),
          time_end: new Date(t + 10_000).toISOString(),
          family: 4,
          protocol: 6,
          src_ip: '10.0.1.5',
          src_port: 30000 + i,
          dst_ip: dstIp,
          dst_port: port,
          tx_bytes: tx,
          rx_bytes: 0,
          tx_packets: 1,
          rx_packets: 0,
          attributes: { ...attributes, 'flow.initiator_known': true },
        });
        recs.push(rec);
      }
      await writeFile(path.join(dir, 'flows.jsonl'), `${recs.map((r) => r.line).join('\n')}\n`);
      const sumBy = (key: (r: Rec) => string | undefined) => {
        const m = new Map<string, number>();
        for (const r of recs) {
          const k = key(r);
          if (k !== undefined) m.set(k, (m.get(k) ?? 0) + r.tx);
        }
        return m;
      };
      const total = recs.reduce((n, r) => n + r.tx, 0);
      const agentPort = await freePort();
      await writeFile(
        path.join(dir, 'agent.yaml'),
        `receivers: { file: { path: ./flows.jsonl, batch_size: 50 } }
exporters:
  prometheus:
    endpoint: 127.0.0.1:${agentPort}
    labels: { include: [dst_port], dst_prefix: { top: 3 } }
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
        const asMap = (r: PromSample[], label: string) =>
          new Map(r.map((s) => [s.metric[label] ?? '', Number(s.value[1])]));
        await p.eventually('sum(netmon_flow_bytes_total{direction="tx"})', (r) =>
          expect(Number(r[0]?.value[1])).toBe(total),
        );
        await p.eventually('sum by (src_zone) (netmon_flow_bytes_total{direction="tx"})', (r) =>
          expect(asMap(r, 'src_zone')).toEqual(sumBy((x) => x.srcZone)),
        );
        await p.eventually(
          'sum by (dst_zone) (netmon_flow_bytes_total{direction="tx",dst_kind="pod"})',
          (r) => expect(asMap(r, 'dst_zone')).toEqual(sumBy((x) => x.dstZone)),
        );
        await p.eventually('sum by (dst_port) (netmon_flow_bytes_total{direction="tx"})', (r) =>
          expect(asMap(r, 'dst_port')).toEqual(
            new Map([...sumBy((x) => (x.port ? String(x.port) : '')).entries()]),
          ),
        );
        await p.eventually(
          'sum by (dst_prefix) (netmon_flow_bytes_total{direction="tx",dst_kind="external_public"})',
          (r) => {
            const got = asMap(r, 'dst_prefix');
            const file = sumBy((x) => x.prefix);
            const named = [...got.keys()].filter((k) => k !== 'other');
            // Three prefixes by name, each with exactly its bytes; the other nine summed under "other".
            expect(named).toHaveLength(3);
            for (const k of named) expect(got.get(k)).toBe(file.get(k));
            const rest = [...file.entries()]
              .filter(([k]) => !named.includes(k))
              .reduce((n, [, v]) => n + v, 0);
            expect(got.get('other')).toBe(rest);
          },
        );
      } finally {
        await prometheus?.stop();
        agent.signal('SIGTERM');
        await agent.exit();
      }
    });
  }, 60_000);
});
