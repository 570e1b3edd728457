import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  type ComponentSettings,
  DnsBatch,
  DnsRcode,
  DnsType,
  type Extension,
  FlowBatch,
  type FlowInit,
  registerSelfMetrics,
  type Signal,
  StatusBoard,
} from '@netmon/core';
import { describeConformance, testSettings } from '@netmon/core/testkit';
import { MetadataStore } from '@netmon/extensions';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { prometheusExporterConfig } from './config.js';
import { SCRAPE_DEADLINE_MS, scrapeDeadline } from './endpoint.js';
import { PrometheusExporter } from './exporter.js';
import { Exposition, negotiateFormat } from './exposition.js';
import { prometheusExporterFactory } from './factory.js';
import type { FlowFamilies } from './families.js';

const LOCAL = { endpoint: '127.0.0.1:0' };

describeConformance(prometheusExporterFactory, {
  config: LOCAL,
  signal: 'dns',
  sample: () =>
    DnsBatch.from([
      {
        time: Date.parse('2026-01-01T00:00:00Z'),
        clientIp: '10.0.0.1',
        question: 'api.stripe.com',
        answers: [{ name: 'api.stripe.com', type: DnsType.A, ttl: 30, ip: '203.0.113.7' }],
      },
    ]),
});

const T0 = Date.parse('2026-01-01T00:00:00Z');

function flow(tx: number, rx: number, attributes: FlowInit['attributes'] = {}): FlowInit {
  return {
    timeStart: T0,
    timeEnd: T0 + 10_000,
    protocol: 6,
    srcIp: '10.0.1.5',
    srcPort: 40000,
    dstIp: '10.0.2.9',
    dstPort: 8080,
    txBytes: tx,
    rxBytes: rx,
    txPackets: 2,
    rxPackets: 3,
    attributes,
  };
}

const web = {
  'src.k8s.namespace.name': 'shop',
  'src.k8s.workload.kind': 'Deployment',
  'src.k8s.workload.name': 'web',
  'src.k8s.pod.name': 'web-7c9d8-x2k8p',
  'dst.k8s.namespace.name': 'shop',
  'dst.k8s.workload.kind': 'StatefulSet',
  'dst.k8s.workload.name': 'db',
  'dst.k8s.pod.name': 'db-0',
  'dst.kind': 'pod',
  'traffic.class': 'cross_zone',
};

const running: PrometheusExporter[] = [];
afterEach(async () => {
  for (const e of running.splice(0)) await e.shutdown();
});

async function started(
  config: Record<string, unknown> = {},
  opts: { signals?: Signal[]; settings?: ComponentSettings; extensions?: Map<string, Extension> } = {},
): Promise<PrometheusExporter> {
  const settings =
    opts.settings ??
    testSettings('exporter', 'prometheus', {
      extensions: opts.extensions ?? new Map(),
      signals: opts.signals ?? ['flows'],
    });
  const e = new PrometheusExporter(
    settings,
    prometheusExporterConfig.parse({ ...LOCAL, self_metrics: false, ...config }),
  );
  running.push(e);
  await e.start();
  return e;
}

const text = async (e: PrometheusExporter, format: 'text' | 'openmetrics' = 'text', now?: number) =>
  Buffer.concat(await e.endpoint.render(format, now)).toString('utf8');

/** Polls until `check` is true (or fails after `ms`). */
async function until(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The sample lines of a family (no comments). */
const samples = (body: string, name: string) =>
  body.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

/** promtool, when installed; otherwise the reason (a failure under NETMON_REQUIRE_PRIVILEGED=1, as in CI). */
function promtool(): boolean {
  const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (!r.error && r.status === 0) return true;
  const reason = "promtool is not installed (Debian package 'prometheus'; scripts/bootstrap.sh installs it)";
  if (process.env.NETMON_REQUIRE_PRIVILEGED === '1')
    throw new Error(`NETMON_REQUIRE_PRIVILEGED=1 but ${reason}`);
  console.warn(`skipping promtool check: ${reason}`);
  return false;
}

function promtoolCheck(body: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('prometheus exporter config', () => {
  it('fills defaults from {}', () => {
    expect(prometheusExporterConfig.parse({})).toEqual({
      endpoint: '127.0.0.1:9464',
      max_connections: 16,
      granularity: 'workload',
      max_series: 10_000,
      expiration: 300_000,
      labels: {
        include: [],
        exclude: [],
        dst_domain: { top: 50 },
        dst_prefix: { top: 20, ipv4_prefix_length: 24, ipv6_prefix_length: 64, with_domain: false },
        dns_question: { top: 100 },
      },
      self_metrics: true,
    });
  });

  it('rejects bad endpoints, granularities and unknown keys', () => {
    for (const bad of [
      { endpoint: '9464' },
      { endpoint: 'localhost:99999' },
      { granularity: 'node' },
      { max_series: 1 },
      { expiration: '10' },
      // Shorter than a scrape interval: a series would go before its last bytes are scraped.
      { expiration: '30s' },
      { metric_expiration: '5m' },
      { max_connections: 0 },
      { max_connections: 1.5 },
      { max_connections: '16' },
    ]) {
      expect(prometheusExporterConfig.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
    expect(prometheusExporterConfig.parse({ endpoint: '[::1]:0' }).endpoint).toBe('[::1]:0');
  });
});

describe('prometheus exporter', () => {
  it('renders cumulative counters from deltas in the text format (exact)', async () => {
    const e = await started({ granularity: 'pod' });
    e.export(
      FlowBatch.from([flow(100, 2000, { ...web, 'cost.usd': 0.01 }), flow(5, 7, { 'dst.domain': 'x"y\\z' })]),
    );
    e.export(FlowBatch.from([flow(50, 1000, { ...web, 'cost.usd': 0.02 })]));
    const w =
      'src_namespace="shop",src_workload_kind="Deployment",src_workload="web",src_pod="web-7c9d8-x2k8p",dst_namespace="shop",dst_workload_kind="StatefulSet",dst_workload="db",dst_pod="db-0",dst_kind="pod",protocol="6",traffic_class="cross_zone"';
    const d = 'dst_domain="x\\"y\\\\z",protocol="6"';
    expect(await text(e)).toBe(
      [
        '# HELP netmon_flow_bytes_total Bytes between the two ends of connections, by direction: tx = sent by the source (the side that opened the connection), rx = sent back.',
        '# TYPE netmon_flow_bytes_total counter',
        `netmon_flow_bytes_total{${w},direction="tx"} 150`,
        `netmon_flow_bytes_total{${w},direction="rx"} 3000`,
        `netmon_flow_bytes_total{${d},direction="tx"} 5`,
        `netmon_flow_bytes_total{${d},direction="rx"} 7`,
        '# HELP netmon_flow_packets_total Packets between the two ends of connections, by direction (tx: from the source, rx: back to it).',
        '# TYPE netmon_flow_packets_total counter',
        `netmon_flow_packets_total{${w},direction="tx"} 4`,
        `netmon_flow_packets_total{${w},direction="rx"} 6`,
        `netmon_flow_packets_total{${d},direction="tx"} 2`,
        `netmon_flow_packets_total{${d},direction="rx"} 3`,
        '# HELP netmon_flow_cost_usd_total What the traffic cost in USD by the cloud’s billing rules (only series whose flows had a price).',
        '# TYPE netmon_flow_cost_usd_total counter',
        `netmon_flow_cost_usd_total{${w}} 0.03`,
        '# HELP pod_cross_zone_network_traffic_bytes_total Bytes a pod sent to another availability zone (polarsignals/kubezonnet’s metric): the source pod’s tx and the destination pod’s rx of cross_zone flows.',
        '# TYPE pod_cross_zone_network_traffic_bytes_total counter',
        'pod_cross_zone_network_traffic_bytes_total{namespace="shop",pod="web-7c9d8-x2k8p"} 150',
        'pod_cross_zone_network_traffic_bytes_total{namespace="shop",pod="db-0"} 3000',
        '',
      ].join('\n'),
    );
  });

  it('renders OpenMetrics: TYPE on the family name without _total, # EOF at the end', async () => {
    const e = await started({ granularity: 'namespace' });
    e.export(FlowBatch.from([flow(100, 2000, { ...web, 'cost.usd': 0 })]));
    const w =
      'src_namespace="shop",dst_namespace="shop",dst_kind="pod",protocol="6",traffic_class="cross_zone"';
    const body = await text(e, 'openmetrics');
    expect(body.split('\n').filter((l) => !l.startsWith('# HELP'))).toEqual([
      '# TYPE netmon_flow_bytes counter',
      `netmon_flow_bytes_total{${w},direction="tx"} 100`,
      `netmon_flow_bytes_total{${w},direction="rx"} 2000`,
      '# TYPE netmon_flow_packets counter',
      `netmon_flow_packets_total{${w},direction="tx"} 2`,
      `netmon_flow_packets_total{${w},direction="rx"} 3`,
      // A price of 0 (same-zone traffic that is free) is still a price.
      '# TYPE netmon_flow_cost_usd counter',
      `netmon_flow_cost_usd_total{${w}} 0`,
      '# TYPE pod_cross_zone_network_traffic_bytes counter',
      'pod_cross_zone_network_traffic_bytes_total{namespace="shop",pod="web-7c9d8-x2k8p"} 100',
      'pod_cross_zone_network_traffic_bytes_total{namespace="shop",pod="db-0"} 2000',
      '# EOF',
      '',
    ]);
    expect(body).toContain('# HELP netmon_flow_bytes Bytes between');
  });

  it('follows the granularity: workload drops pods, but the kubezonnet family keeps them', async () => {
    const e = await started({ granularity: 'workload' });
    e.export(
      FlowBatch.from([flow(1, 2, web), flow(3, 4, { ...web, 'src.k8s.pod.name': 'web-7c9d8-abcde' })]),
    );
    const body = await text(e);
    expect(samples(body, 'netmon_flow_bytes_total')).toEqual([
      'netmon_flow_bytes_total{src_namespace="shop",src_workload_kind="Deployment",src_workload="web",dst_namespace="shop",dst_workload_kind="StatefulSet",dst_workload="db",dst_kind="pod",protocol="6",traffic_class="cross_zone",direction="tx"} 4',
      'netmon_flow_bytes_total{src_namespace="shop",src_workload_kind="Deployment",src_workload="web",dst_namespace="shop",dst_workload_kind="StatefulSet",dst_workload="db",dst_kind="pod",protocol="6",traffic_class="cross_zone",direction="rx"} 6',
    ]);
    expect(samples(body, 'pod_cross_zone_network_traffic_bytes_total')).toEqual([
      'pod_cross_zone_network_traffic_bytes_total{namespace="shop",pod="web-7c9d8-x2k8p"} 1',
      'pod_cross_zone_network_traffic_bytes_total{namespace="shop",pod="web-7c9d8-abcde"} 3',
      'pod_cross_zone_network_traffic_bytes_total{namespace="shop",pod="db-0"} 6',
    ]);
  });

  it('counts only cross_zone rows with a pod for the kubezonnet metric', async () => {
    const e = await started();
    e.export(
      FlowBatch.from([
        flow(10, 20, { ...web, 'traffic.class': 'same_zone' }),
        flow(30, 40, {
          'traffic.class': 'cross_zone',
          'src.k8s.namespace.name': 'a',
          'src.k8s.pod.name': 'p',
        }),
        flow(50, 60, { 'traffic.class': 'internet_egress', 'src.k8s.pod.name': 'p' }),
      ]),
    );
    expect(samples(await text(e), 'pod_cross_zone_network_traffic_bytes_total')).toEqual([
      'pod_cross_zone_network_traffic_bytes_total{namespace="a",pod="p"} 30',
    ]);
  });

  it('sums new label sets past max_series into one overflow series, totals exact, and counts the rows', async () => {
    const e = await started({ max_series: 3, granularity: 'pod' });
    const rows = Array.from({ length: 10 }, (_, i) => flow(i + 1, 0, { 'src.k8s.pod.name': `p${i}` }));
    e.export(FlowBatch.from(rows));
    const lines = samples(await text(e), 'netmon_flow_bytes_total').filter((l) => l.includes('"tx"'));
    expect(lines).toEqual([
      'netmon_flow_bytes_total{src_pod="p0",protocol="6",direction="tx"} 1',
      'netmon_flow_bytes_total{src_pod="p1",protocol="6",direction="tx"} 2',
      'netmon_flow_bytes_total{otel_metric_overflow="true",direction="tx"} 52',
    ]);
    expect(e.tables[0].table.overflowRows).toBe(8);
  });

  it('removes series not updated within expiration (at a scrape)', async () => {
    const e = await started({ expiration: '1m', granularity: 'pod' });
    e.export(FlowBatch.from([flow(1, 1, { 'src.k8s.pod.name': 'old', 'traffic.class': 'cross_zone' })]));
    const now = Date.now();
    expect(samples(await text(e, 'text', now + 30_000), 'netmon_flow_bytes_total')).toHaveLength(2);
    expect(await text(e, 'text', now + 61_000)).toBe('');
    expect(e.tables.map((t) => t.removed.expired)).toEqual([1, 1]);
    // A new series after expiry starts again from the delta.
    e.export(FlowBatch.from([flow(5, 0, { 'src.k8s.pod.name': 'old' })]));
    expect(samples(await text(e), 'netmon_flow_bytes_total')[0]).toBe(
      'netmon_flow_bytes_total{src_pod="old",protocol="6",direction="tx"} 5',
    );
  });

  it('drops the series of pods the k8s_metadata store deleted; a pod recreated under its name keeps them', async () => {
    const store = new MetadataStore();
    const pod = (name: string, uid: string, ip: string) => ({
      uid,
      namespace: 'shop',
      name,
      nodeName: 'n1',
      phase: 'Running',
      hostNetwork: false,
      ips: [ip],
      workloadKind: 'StatefulSet',
      workloadName: 'db',
      labels: {},
    });
    store.upsertPod(pod('web-7c9d8-x2k8p', 'u1', '10.0.1.5'));
    store.upsertPod(pod('db-0', 'u2', '10.0.2.9'));
    const k8s = { store, standalone: false, synced: () => true, nodeName: 'n1' } as unknown as Extension;
    const e = await started({ granularity: 'pod' }, { extensions: new Map([['k8s_metadata', k8s]]) });
    e.export(
      FlowBatch.from([
        flow(1, 2, web),
        flow(3, 4, {
          'src.k8s.namespace.name': 'shop',
          'src.k8s.pod.name': 'db-0',
          'traffic.class': 'cross_zone',
        }),
        flow(5, 6, { 'src.k8s.namespace.name': 'other', 'src.k8s.pod.name': 'elsewhere' }),
      ]),
    );
    // db-0 is recreated under its name (a StatefulSet): its series stay. web's pod is deleted: it goes,
    // in every family, wherever it is src or dst.
    store.upsertPod(pod('db-0', 'u3', '10.0.2.10'));
    store.deletePod('u1');
    // The first scrape since shows web's series with all they counted; they go after it.
    expect(samples(await text(e), 'netmon_flow_bytes_total')).toHaveLength(6);
    const body = await text(e);
    expect(samples(body, 'netmon_flow_bytes_total')).toEqual([
      'netmon_flow_bytes_total{src_namespace="shop",src_pod="db-0",protocol="6",traffic_class="cross_zone",direction="tx"} 3',
      'netmon_flow_bytes_total{src_namespace="shop",src_pod="db-0",protocol="6",traffic_class="cross_zone",direction="rx"} 4',
      'netmon_flow_bytes_total{src_namespace="other",src_pod="elsewhere",protocol="6",direction="tx"} 5',
      'netmon_flow_bytes_total{src_namespace="other",src_pod="elsewhere",protocol="6",direction="rx"} 6',
    ]);
    expect(samples(body, 'pod_cross_zone_network_traffic_bytes_total')).toEqual([
      'pod_cross_zone_network_traffic_bytes_total{namespace="shop",pod="db-0"} 5',
    ]);
    expect(e.tables.map((t) => t.removed.pod_deleted)).toEqual([1, 1]);
    // A pod the store never knew (another node's, with scope node) is left to expiration.
    store.deletePodNamed('other', 'elsewhere');
    expect(samples(await text(e), 'netmon_flow_bytes_total')).toHaveLength(4);
  });

  /** A metadata store holding the `web` pod (10.0.1.5), as the k8s_metadata extension offers it. */
  function storeWithWeb() {
    const store = new MetadataStore();
    store.upsertPod({
      uid: 'u1',
      namespace: 'shop',
      name: 'web-7c9d8-x2k8p',
      nodeName: 'n1',
      phase: 'Running',
      hostNetwork: false,
      ips: ['10.0.1.5'],
      workloadKind: 'Deployment',
      workloadName: 'web',
      labels: {},
    });
    return { store, k8s: { store, standalone: false, synced: () => true } as unknown as Extension };
  }

  it('shows the bytes a deleted pod added since the previous scrape before its series go', async () => {
    const { store, k8s } = storeWithWeb();
    const e = await started(
      { granularity: 'pod', expiration: '1m' },
      { extensions: new Map([['k8s_metadata', k8s]]) },
    );
    const tx = (body: string) => samples(body, 'netmon_flow_bytes_total').filter((l) => l.includes('"tx"'));
    const zone = (body: string) => samples(body, 'pod_cross_zone_network_traffic_bytes_total');
    e.export(FlowBatch.from([flow(100, 1, web)]));
    expect(tx(await text(e))).toEqual([expect.stringMatching(/ 100$/)]);
    // The pod sends its last bytes and is deleted before the next scrape: that scrape shows them.
    e.export(FlowBatch.from([flow(23, 1, web)]));
    store.deletePod('u1');
    let body = await text(e);
    expect(tx(body)).toEqual([expect.stringMatching(/ 123$/)]);
    expect(zone(body)).toContain(
      'pod_cross_zone_network_traffic_bytes_total{namespace="shop",pod="web-7c9d8-x2k8p"} 123',
    );
    // Flows of the deleted pod that still come in (the last interval's) wait for a scrape too.
    e.export(FlowBatch.from([flow(7, 1, web)]));
    e.endpoint.sweep(Date.now());
    body = await text(e);
    expect(tx(body)).toEqual([expect.stringMatching(/ 130$/)]);
    // Shown: gone from every family at the next sweep (db-0, on the other end, is not deleted).
    body = await text(e);
    expect(samples(body, 'netmon_flow_bytes_total')).toEqual([]);
    expect(zone(body)).toEqual(['pod_cross_zone_network_traffic_bytes_total{namespace="shop",pod="db-0"} 3']);
    expect(e.tables.map((t) => t.removed.pod_deleted)).toEqual([1, 1]);
  });

  it('a deleted pod’s series that no scrape ever shows still go at expiration', async () => {
    const { store, k8s } = storeWithWeb();
    const e = await started(
      { granularity: 'pod', expiration: '1m' },
      { extensions: new Map([['k8s_metadata', k8s]]) },
    );
    e.export(FlowBatch.from([flow(1, 1, web)]));
    store.deletePod('u1');
    const now = Date.now();
    e.endpoint.sweep(now + 30_000);
    expect(e.tables[0].table.size).toBe(1);
    e.endpoint.sweep(now + 61_000);
    expect(e.tables.map((t) => t.table.size)).toEqual([0, 0]);
    expect(e.tables.map((t) => t.removed.expired)).toEqual([1, 2]);
  });

  it('a sweep in the middle of a scrape neither repeats nor skips the series that stay', async () => {
    const e = await started({ granularity: 'pod', expiration: '1m' });
    const families = e.flows as FlowFamilies;
    const now = Date.now();
    // 4000 series, every other one last updated 2 minutes ago: the sweep removes those.
    for (let i = 0; i < 4000; i++) {
      const batch = FlowBatch.from([flow(i, 0, { 'src.k8s.pod.name': `p${i}` })]);
      families.add(batch, i % 2 === 0 ? now : now - 120_000);
    }
    const out = new Exposition('text');
    const render = families.render(out);
    let body = '';
    for (let k = 0; k < 3; k++) {
      expect(render.next().done).toBe(false);
      body += out.take();
    }
    e.endpoint.sweep(now);
    expect(families.series.table.size).toBe(2000);
    for (const _ of render) body += out.take();
    body += out.take();
    const lines = samples(body, 'netmon_flow_bytes_total').filter((l) => l.includes('"tx"'));
    expect(new Set(lines).size).toBe(lines.length);
    const pods = new Set(lines.map((l) => Number(/src_pod="p(\d+)"/.exec(l)?.[1])));
    for (let i = 0; i < 4000; i += 2) expect(pods.has(i), `p${i}`).toBe(true);
    // Packets come after every byte series: the sweep was before them, so only survivors are there.
    expect(samples(body, 'netmon_flow_packets_total')).toHaveLength(2 * 2000);
  });

  it('a scraper that stops reading blocks neither sweeps nor other scrapes, and is cut off at its deadline', async () => {
    const e = await started({ granularity: 'pod', expiration: '1m', max_series: 100_000 });
    const long = 'x'.repeat(200);
    e.export(
      FlowBatch.from(
        Array.from({ length: 20_000 }, (_, i) =>
          flow(1, 1, { 'src.k8s.pod.name': `p${i}`, 'dst.domain': `${long}-${i}` }),
        ),
      ),
    );
    // About 20 MB of text (no gzip asked for): far more than the socket buffers take.
    const url = new URL(e.url() as string);
    const socket = connect(Number(url.port), url.hostname);
    await once(socket, 'connect');
    socket.pause(); // never reads
    socket.on('error', () => undefined);
    socket.write('GET /metrics HTTP/1.1\r\nHost: netmon\r\nX-Prometheus-Scrape-Timeout-Seconds: 1.5\r\n\r\n');
    await until(() => e.endpoint.inFlight === 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(e.endpoint.inFlight).toBe(1); // stuck on the socket
    // Sweeps go on: every series expires while the stuck scrape holds its place in the table.
    e.endpoint.sweep(Date.now() + 61_000);
    expect(e.tables[0].table.size).toBe(0);
    // Other scrapes are served meanwhile.
    const other = await fetch(e.url() as string);
    expect(other.status).toBe(200);
    expect(await other.text()).toBe('');
    // The stuck one is cut off at the deadline its scraper asked for, and counted.
    await until(() => e.endpoint.inFlight === 0, 5000);
    expect(e.endpoint.stats).toMatchObject({ scrapes: 1, aborted: 1 });
    socket.destroy();
  });

  it('takes the deadline of a scrape from Prometheus’ timeout header, within bounds', () => {
    expect(scrapeDeadline(undefined)).toBe(SCRAPE_DEADLINE_MS);
    expect(scrapeDeadline('10')).toBe(10_000);
    expect(scrapeDeadline('0.2')).toBe(1000);
    expect(scrapeDeadline('3600')).toBe(SCRAPE_DEADLINE_MS);
    expect(scrapeDeadline('soon')).toBe(SCRAPE_DEADLINE_MS);
    expect(scrapeDeadline(['2', '3'])).toBe(2000);
  });

  it('refuses cumulative batches and says to put delta first', async () => {
    const e = await started();
    const batch = new FlowBatch(4, 'cumulative');
    batch.push(flow(1, 1));
    expect(() => e.export(batch)).toThrow(/put the `delta` processor before this exporter/);
    expect(await text(e)).toBe('');
  });

  it('counts DNS lookups by domain and the client pod the store knows', async () => {
    const store = new MetadataStore();
    store.upsertPod({
      uid: 'u1',
      namespace: 'shop',
      name: 'web-1',
      nodeName: 'n1',
      phase: 'Running',
      hostNetwork: false,
      ips: ['10.0.1.5'],
      workloadKind: 'Deployment',
      workloadName: 'web',
      labels: {},
    });
    const k8s = { store, standalone: false, synced: () => true } as unknown as Extension;
    const e = await started(
      { granularity: 'workload' },
      { signals: ['dns'], extensions: new Map([['k8s_metadata', k8s]]) },
    );
    const lookup = (clientIp: string, question: string) => ({ time: T0, clientIp, question, answers: [] });
    e.export(
      DnsBatch.from([
        lookup('10.0.1.5', 'api.stripe.com'),
        lookup('10.0.1.5', 'API.Stripe.com.'),
        lookup('10.9.9.9', 'api.stripe.com'),
      ]),
    );
    expect(samples(await text(e), 'netmon_dns_lookups_total')).toEqual([
      'netmon_dns_lookups_total{src_namespace="shop",src_workload_kind="Deployment",src_workload="web",dst_domain="api.stripe.com",dns_response_code="NOERROR"} 2',
      'netmon_dns_lookups_total{dst_domain="api.stripe.com",dns_response_code="NOERROR"} 1',
    ]);
  });

  it('names a hostNetwork pod’s lookups by the pod UID of their cgroup, not by the node’s address', async () => {
    const store = new MetadataStore();
    const pod = (uid: string, name: string, ips: string[], hostNetwork: boolean, workloadName: string) =>
      store.upsertPod({
        uid,
        namespace: 'kube-system',
        name,
        nodeName: 'n1',
        phase: 'Running',
        hostNetwork,
        ips,
        workloadKind: 'DaemonSet',
        workloadName,
        labels: {},
      });
    store.upsertNode({ name: 'n1', ips: ['10.0.0.7'], podCidrs: [] });
    pod('uid-proxy', 'kube-proxy-x', ['10.0.0.7'], true, 'kube-proxy');
    pod('uid-coredns', 'coredns-y', ['10.0.1.9'], false, 'coredns');
    const k8s = { store, standalone: false, synced: () => true } as unknown as Extension;
    const e = await started(
      { granularity: 'pod' },
      { signals: ['dns'], extensions: new Map([['k8s_metadata', k8s]]) },
    );
    const lookup = (clientIp: string, podUid?: string) => ({
      time: T0,
      clientIp,
      question: 'kubernetes.default.svc',
      answers: [],
      ...(podUid ? { podUid } : {}),
    });
    e.export(
      DnsBatch.from([
        lookup('10.0.0.7', 'uid-proxy'),
        lookup('10.0.0.7'),
        // The UID wins over an address that names another pod.
        lookup('10.0.1.9', 'uid-proxy'),
        // Unknown UID: the address decides.
        lookup('10.0.1.9', 'uid-gone'),
      ]),
    );
    expect(samples(await text(e), 'netmon_dns_lookups_total')).toEqual([
      'netmon_dns_lookups_total{src_namespace="kube-system",src_workload_kind="DaemonSet",src_workload="kube-proxy",src_pod="kube-proxy-x",dst_domain="kubernetes.default.svc",dns_response_code="NOERROR"} 2',
      'netmon_dns_lookups_total{dst_domain="kubernetes.default.svc",dns_response_code="NOERROR"} 1',
      'netmon_dns_lookups_total{src_namespace="kube-system",src_workload_kind="DaemonSet",src_workload="coredns",src_pod="coredns-y",dst_domain="kubernetes.default.svc",dns_response_code="NOERROR"} 1',
    ]);
  });

  it('serves lookups by name and response code, the top N names and "other" with exact totals, and a latency histogram', async () => {
    const board = new StatusBoard();
    const e = await started(
      { labels: { dns_question: { top: 2 } } },
      { settings: testSettings('exporter', 'prometheus', { board, signals: ['dns'] }) },
    );
    const lookup = (question: string, rcode: number, latencyMs?: number) => ({
      time: T0,
      clientIp: '10.0.0.1',
      question,
      rcode,
      answers: [],
      ...(latencyMs === undefined ? {} : { latencyMs }),
    });
    e.export(
      DnsBatch.from([
        lookup('api.stripe.com', DnsRcode.NOERROR, 0.4),
        lookup('api.stripe.com', DnsRcode.NOERROR, 12),
        lookup('API.Stripe.com.', DnsRcode.NOERROR, 7000),
        lookup('api.stripe.com', DnsRcode.SERVFAIL),
        lookup('nope.example', DnsRcode.NXDOMAIN, 2),
        ...Array.from({ length: 500 }, (_, i) => lookup(`r${i}.t.example`, DnsRcode.NXDOMAIN, 30)),
      ]),
    );
    const body = await text(e);
    expect(samples(body, 'netmon_dns_lookups_total')).toEqual([
      'netmon_dns_lookups_total{dst_domain="api.stripe.com",dns_response_code="NOERROR"} 3',
      'netmon_dns_lookups_total{dst_domain="api.stripe.com",dns_response_code="SERVFAIL"} 1',
      'netmon_dns_lookups_total{dst_domain="nope.example",dns_response_code="NXDOMAIN"} 1',
      'netmon_dns_lookups_total{dst_domain="other",dns_response_code="NXDOMAIN"} 500',
    ]);
    const le = [
      '0.0005',
      '0.001',
      '0.0025',
      '0.005',
      '0.01',
      '0.025',
      '0.05',
      '0.1',
      '0.25',
      '0.5',
      '1',
      '2.5',
      '5',
      '+Inf',
    ];
    const histogram = (labels: string, cumulative: number[], sum: string, count: number) => [
      ...le.map((l, b) => `netmon_dns_lookup_duration_seconds_bucket{${labels},le="${l}"} ${cumulative[b]}`),
      `netmon_dns_lookup_duration_seconds_sum{${labels}} ${sum}`,
      `netmon_dns_lookup_duration_seconds_count{${labels}} ${count}`,
    ];
    const lines = body.split('\n');
    const family = lines.indexOf('# TYPE netmon_dns_lookup_duration_seconds histogram');
    expect(family).toBeGreaterThan(0);
    expect(lines[family - 1]).toMatch(/^# HELP netmon_dns_lookup_duration_seconds /);
    // SERVFAIL had no latency: no histogram for its series.
    expect(lines.slice(family + 1, family + 1 + 3 * 16)).toEqual([
      ...histogram(
        'dst_domain="api.stripe.com",dns_response_code="NOERROR"',
        [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3],
        // Summed in seconds as they came.
        String(0.4 / 1000 + 12 / 1000 + 7000 / 1000),
        3,
      ),
      ...histogram(
        'dst_domain="nope.example",dns_response_code="NXDOMAIN"',
        [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        '0.002',
        1,
      ),
      ...histogram(
        'dst_domain="other",dns_response_code="NXDOMAIN"',
        [0, 0, 0, 0, 0, 0, 500, 500, 500, 500, 500, 500, 500, 500],
        String(Array.from({ length: 500 }, () => 30 / 1000).reduce((a, b) => a + b, 0)),
        500,
      ),
    ]);
    expect(board.all()[0].details?.()).toMatchObject({
      series: { dns: 4 },
      dns_labels: {
        labels: ['src_namespace', 'src_workload_kind', 'src_workload', 'dst_domain', 'dns_response_code'],
        top_n: { dst_domain: { named: 2, top: 2, replaced: 0 } },
      },
    });
    if (!promtool()) return;
    const { status, output } = promtoolCheck(body);
    expect(output).toBe('');
    expect(status).toBe(0);
  });

  it('serves flows and dns of one exporter id on one endpoint, in the order of its signals', async () => {
    const board = new StatusBoard();
    const e = await started(
      {},
      { settings: testSettings('exporter', 'prometheus', { board, signals: ['dns', 'flows'] }) },
    );
    e.export(FlowBatch.from([flow(1, 2)]));
    e.export(DnsBatch.from([{ time: T0, clientIp: '10.0.0.1', question: 'a.example', answers: [] }]));
    const url = e.url() as string;
    const body = await (await fetch(url)).text();
    expect(samples(body, 'netmon_flow_bytes_total')).toHaveLength(2);
    expect(samples(body, 'netmon_dns_lookups_total')).toEqual([
      'netmon_dns_lookups_total{dst_domain="a.example",dns_response_code="NOERROR"} 1',
    ]);
    // The pipelines' order: a dns pipeline listed first is shown first.
    expect(body.indexOf('netmon_dns_lookups_total')).toBeLessThan(body.indexOf('netmon_flow_bytes_total'));
    expect(board.all()[0].details?.()).toMatchObject({
      signals: ['dns', 'flows'],
      series: { dns: 1, flows: 1, cross_zone: 0 },
    });
    await e.shutdown();
    await expect(fetch(url)).rejects.toThrow();
    await e.shutdown();
  });

  it('refuses a batch of a signal it does not serve', async () => {
    const e = await started({}, { signals: ['dns'] });
    expect(() => e.export(FlowBatch.from([flow(1, 2)]))).toThrow(
      'prometheus exporter: a flows batch, but this instance serves dns',
    );
    expect(await text(e)).toBe('');
  });

  it('closes the endpoint when shut down while it was starting', async () => {
    const e = new PrometheusExporter(
      testSettings('exporter', 'prometheus'),
      prometheusExporterConfig.parse({ ...LOCAL, self_metrics: false }),
    );
    const starting = e.start();
    const stopping = e.shutdown();
    await starting;
    await stopping;
    expect(e.url()).toBeUndefined();
  });

  it('serves /metrics over HTTP: negotiation, gzip, HEAD, 404 with a hint, 405', async () => {
    const e = await started();
    e.export(FlowBatch.from([flow(1, 2, web)]));
    const url = e.url() as string;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    const plain = await fetch(url, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(plain.headers.get('content-encoding')).toBeNull();
    // Streamed as it renders: the length is not known up front.
    expect(plain.headers.get('transfer-encoding')).toBe('chunked');
    expect(await plain.text()).toBe(await text(e));

    // What Prometheus 2.x sends.
    const accept =
      'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
    const res = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      import('node:http').then(({ get }) =>
        get(url, { headers: { accept, 'accept-encoding': 'gzip' } }, (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c) => chunks.push(c));
          r.on('end', () => resolve({ headers: r.headers, body: Buffer.concat(chunks) }));
        }).on('error', reject),
      );
    });
    expect(res.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(res.headers['content-encoding']).toBe('gzip');
    const om = gunzipSync(res.body).toString();
    expect(om.endsWith('# EOF\n')).toBe(true);
    expect(om).toContain('# TYPE netmon_flow_bytes counter');

    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');

    const missing = await fetch(url.replace('/metrics', '/'));
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('at /metrics');
    const post = await fetch(url, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect(e.endpoint.stats.scrapes).toBe(2); // HEAD renders nothing
  });

  it('fails to start with a clear message when the port is taken', async () => {
    const first = await started();
    const port = new URL(first.url() as string).port;
    const other = testSettings('exporter', 'prometheus/second');
    const second = new PrometheusExporter(
      other,
      prometheusExporterConfig.parse({ endpoint: `127.0.0.1:${port}` }),
    );
    // Another component of this agent may hold the port as well as another process: the message
    // does not claim to know which.
    await expect(second.start()).rejects.toThrow(
      `prometheus exporter: cannot listen on 127.0.0.1:${port}: EADDRINUSE (address already in use); another process or component (a second agent?) serves this port: set exporters::prometheus/second::endpoint`,
    );
    await second.shutdown();
  });

  it('describes its series, overflow and scrapes in the status', async () => {
    const board = new StatusBoard();
    const e = await started(
      { max_series: 2, granularity: 'pod' },
      { settings: testSettings('exporter', 'prometheus', { board }) },
    );
    e.export(
      FlowBatch.from([flow(1, 1, { 'src.k8s.pod.name': 'a' }), flow(1, 1, { 'src.k8s.pod.name': 'b' })]),
    );
    await (await fetch(e.url() as string)).text();
    const details = board.all()[0].details?.();
    expect(details).toMatchObject({
      signals: ['flows'],
      url: e.url(),
      series: { flows: 2, cross_zone: 0 },
      overflow_rows: { flows: 1, cross_zone: 0 },
      scrapes: 1,
      aborted_scrapes: 0,
      flow_labels: {
        labels: [
          'src_namespace',
          'src_workload_kind',
          'src_workload',
          'src_pod',
          'src_zone',
          'dst_namespace',
          'dst_workload_kind',
          'dst_workload',
          'dst_pod',
          'dst_zone',
          'dst_kind',
          'dst_service',
          'dst_domain',
          'dst_prefix',
          'protocol',
          'traffic_class',
        ],
        top_n: {
          dst_domain: { named: 0, top: 50, replaced: 0 },
          dst_prefix: { named: 0, top: 20, replaced: 0 },
        },
      },
    });
    expect(details?.last_scrape_bytes).toBeGreaterThan(100);
  });

  it('passes promtool check metrics', async () => {
    if (!promtool()) return;
    const e = await started();
    e.export(
      FlowBatch.from([
        flow(100, 2000, { ...web, 'cost.usd': 0.01, 'dst.domain': 'we"ird\\name\nx' }),
        flow(1e22, 0.5, { 'src.k8s.pod.name': 'ünïcode' }),
      ]),
    );
    const { status, output } = promtoolCheck(await text(e));
    expect(output).toBe('');
    expect(status).toBe(0);
  });
});

describe('prometheus exporter: a full render', () => {
  class Reader extends MetricReader {
    protected async onShutdown(): Promise<void> {}
    protected async onForceFlush(): Promise<void> {}
  }

  /**
   * Everything one endpoint can serve at once: flows (with cost, cross-zone pods, an overflow series past
   * max_series) and DNS lookups of one exporter instance serving both signals, and the agent's self-metrics from a real
   * MeterProvider (the framework's, and the exporter's own).
   */
  async function fullExporter(): Promise<{ exporter: PrometheusExporter; stop: () => Promise<void> }> {
    const reader = new Reader();
    const provider = new MeterProvider({ readers: [reader] });
    const board = new StatusBoard();
    const selfMetrics = async () => (await reader.collect()).resourceMetrics;
    const base = testSettings('exporter', 'prometheus', { board, selfMetrics });
    const stopSelf = registerSelfMetrics(provider.getMeter('netmon'), base.host);
    const meter = provider.getMeter('netmon/exporter/prometheus');
    const exporter = await started(
      { self_metrics: true, max_series: 4, granularity: 'pod' },
      { settings: { ...base, signals: ['flows', 'dns'], meter } },
    );
    exporter.export(
      FlowBatch.from([
        flow(100, 2000, { ...web, 'cost.usd': 0.01 }),
        ...Array.from({ length: 8 }, (_, i) =>
          flow(i + 1, 0, { 'src.k8s.pod.name': `p${i}`, 'dst.domain': 'we"ird\\name\nx' }),
        ),
      ]),
    );
    const lookup = (question: string, k: number) => ({
      time: T0,
      clientIp: '10.0.0.1',
      question,
      rcode: k % 2 === 0 ? DnsRcode.NOERROR : DnsRcode.NXDOMAIN,
      latencyMs: 0.3 + 900 * k,
      answers: [],
    });
    // Six domains, max_series 4: the last ones go to the overflow series.
    exporter.export(
      DnsBatch.from(
        ['api.stripe.com', 'ünïcode.example', 'a.example', 'b.example', 'c.example', 'd.example'].map(lookup),
      ),
    );
    // A histogram as components make them (bucket, sum and count lines).
    const latency = provider
      .getMeter('netmon/exporter/otlp')
      .createHistogram('netmon_test_latency', { unit: 's', advice: { explicitBucketBoundaries: [0.1, 1] } });
    latency.record(0.05);
    latency.record(2);
    return {
      exporter,
      stop: async () => {
        await exporter.shutdown();
        stopSelf();
        await provider.shutdown();
      },
    };
  }

  it('passes promtool check metrics with self-metrics, DNS and overflow series (text 0.0.4)', async () => {
    const { exporter, stop } = await fullExporter();
    try {
      const body = await text(exporter);
      // What the render holds, so the check below is about all of it.
      expect(samples(body, 'netmon_dns_lookups_total')).toHaveLength(4);
      expect(body).toContain('netmon_flow_bytes_total{otel_metric_overflow="true",direction="tx"}');
      expect(body).toContain('netmon_dns_lookups_total{otel_metric_overflow="true"} 3');
      expect(body).toContain(
        'netmon_dns_lookup_duration_seconds_bucket{dst_domain="ünïcode.example",dns_response_code="NXDOMAIN",le="1"} 1',
      );
      expect(body).toContain(
        'netmon_dns_lookup_duration_seconds_bucket{otel_metric_overflow="true",le="+Inf"} 3',
      );
      expect(body).toContain('pod_cross_zone_network_traffic_bytes_total{');
      expect(body).toContain('netmon_flow_cost_usd_total{');
      expect(body).toMatch(/^netmon_component_items_total\{/m);
      expect(body).toMatch(/^netmon_process_resident_memory_bytes /m);
      expect(body).toMatch(/^netmon_test_latency_seconds_bucket\{/m);
      if (!promtool()) return;
      const { status, output } = promtoolCheck(body);
      expect(output).toBe('');
      expect(status).toBe(0);
    } finally {
      await stop();
    }
  });

  it('passes promtool’s OpenMetrics parser with self-metrics, DNS and overflow series', async () => {
    const { exporter, stop } = await fullExporter();
    try {
      const body = await text(exporter, 'openmetrics');
      expect(body).toContain('netmon_dns_lookups_total{otel_metric_overflow="true"}');
      expect(body).toContain('# TYPE netmon_dns_lookup_duration_seconds histogram');
      expect(body).toMatch(/^netmon_dns_lookup_duration_seconds_count\{otel_metric_overflow="true"\} 3$/m);
      expect(body).toContain('netmon_flow_bytes_total{otel_metric_overflow="true",direction="tx"}');
      expect(body).toMatch(/^netmon_test_latency_seconds_bucket\{/m);
      if (!promtool()) return;
      // promtool check metrics parses the text format 0.0.4 only (an OpenMetrics HELP escape such as \"
      // fails it); its OpenMetrics backfill uses Prometheus' OpenMetrics parser, which wants a
      // timestamp on every sample: the same body with one appended to each sample line.
      const stamped = body.replace(/^([^#\n].*)$/gm, '$1 1767225600');
      const dir = mkdtempSync(join(tmpdir(), 'netmon-om-'));
      try {
        writeFileSync(join(dir, 'metrics.om'), stamped);
        const r = spawnSync(
          'promtool',
          ['tsdb', 'create-blocks-from', 'openmetrics', join(dir, 'metrics.om'), join(dir, 'out')],
          { encoding: 'utf8' },
        );
        // Every sample line made it into the block: samples, chunks and series in its summary table.
        const lines = body.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
        expect(`${r.stdout}${r.stderr}`).toMatch(new RegExp(`\\s${lines}\\s+${lines}\\s+${lines}\\s`));
        expect(r.status).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      await stop();
    }
  });
});

describe('negotiateFormat', () => {
  it('prefers OpenMetrics only when asked for at least as much as text', () => {
    expect(negotiateFormat(undefined)).toBe('text');
    expect(negotiateFormat('*/*')).toBe('text');
    expect(negotiateFormat('text/plain;version=0.0.4')).toBe('text');
    expect(negotiateFormat('application/openmetrics-text; version=1.0.0')).toBe('openmetrics');
    expect(negotiateFormat('text/plain;q=0.9,application/openmetrics-text;q=0.5')).toBe('text');
    expect(negotiateFormat('application/openmetrics-text;q=0')).toBe('text');
  });
});
