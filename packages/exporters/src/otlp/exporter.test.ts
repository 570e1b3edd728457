import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import path from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { DnsBatch, type Extension, FlowBatch, type FlowInit, type Signal, StatusBoard } from '@netmon/core';
import { describeConformance, runExporterInService, testSettings } from '@netmon/core/testkit';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import protobuf from 'protobufjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAckWorker } from '../../../../test/harness/grpc-ack-worker.js';
import {
  attributes,
  EXPORT_PATH,
  OtlpSink,
  type SinkPoint,
  type SinkRequest,
} from '../../../../test/harness/otlp-sink.js';
import { otlpExporterConfig } from './config.js';
import { OtlpExporter, type OtlpExporterOptions } from './exporter.js';
import { otlpExporterFactory } from './factory.js';
import { retryDelayMs, STATUS_DETAILS_KEY } from './grpc.js';
import { MAX_REQUEST_BYTES } from './metrics.js';
import type { NodeFacts } from './resource.js';

const TESTDATA = path.join(import.meta.dirname, 'testdata');
const pem = (name: string) => readFileSync(path.join(TESTDATA, name));

// Conformance against a live sink, filled in before the cases run. The sink runs in a worker thread: an
// in-process server's own timers (Node's HTTP date cache) would count as handles the exporter left. An
// unreachable endpoint would not do either: grpc-js keeps a failed subchannel's backoff timer (unref'd,
// inert) running after the channel is closed, until it fires.
const conformanceConfig = { endpoint: 'http://127.0.0.1:1', tls: { insecure: true } };
beforeAll(async () => {
  const conformanceSink = await startAckWorker([EXPORT_PATH]);
  conformanceConfig.endpoint = conformanceSink.endpoint;
  return async () => {
    expect(await conformanceSink.requests()).toBeGreaterThanOrEqual(2); // one per conformance run
    await conformanceSink.close();
  };
});
describeConformance(otlpExporterFactory, { config: conformanceConfig });
describeConformance(otlpExporterFactory, {
  config: conformanceConfig,
  signal: 'dns',
  sample: () =>
    DnsBatch.from([{ time: Date.now(), clientIp: '10.0.0.1', question: 'api.stripe.com', answers: [] }]),
});

const T0 = Date.parse('2026-01-01T00:00:00Z');
const NS = 1_000_000n;
const ns = (ms: number) => BigInt(ms) * NS;

function flow(attrs: FlowInit['attributes'], tx = 1000, rx = 5000, txp = 10, rxp = 20): FlowInit {
  return {
    timeStart: T0,
    timeEnd: T0 + 10_000,
    protocol: 6,
    srcIp: '10.0.0.1',
    srcPort: 40000,
    dstIp: '10.0.0.2',
    dstPort: 443,
    txBytes: tx,
    rxBytes: rx,
    txPackets: txp,
    rxPackets: rxp,
    attributes: attrs,
  };
}

const CART = {
  'src.k8s.namespace.name': 'shop',
  'src.k8s.workload.kind': 'Deployment',
  'src.k8s.workload.name': 'cart',
  'src.k8s.pod.name': 'cart-7d9f-abcde',
  'dst.kind': 'external_public',
  'dst.domain': 'api.stripe.com',
  'traffic.class': 'internet_egress',
};
const WEB = {
  'src.k8s.namespace.name': 'shop',
  'src.k8s.workload.kind': 'Deployment',
  'src.k8s.workload.name': 'web',
  'dst.kind': 'pod',
  'dst.k8s.namespace.name': 'shop',
  'dst.k8s.workload.kind': 'Deployment',
  'dst.k8s.workload.name': 'cart',
  'traffic.class': 'cross_zone',
};

const live: { exporters: OtlpExporter[]; sinks: OtlpSink[] } = { exporters: [], sinks: [] };
afterEach(async () => {
  await Promise.all(live.exporters.splice(0).map((e) => e.shutdown()));
  await Promise.all(live.sinks.splice(0).map((s) => s.close()));
});

async function sink(opts: Parameters<typeof OtlpSink.start>[0] = {}): Promise<OtlpSink> {
  const s = await OtlpSink.start(opts);
  live.sinks.push(s);
  return s;
}

/** An exporter on a manual clock; `interval` is long, so only `flush()` exports. */
function exporter(
  config: Record<string, unknown>,
  opts: OtlpExporterOptions & {
    signals?: Signal[];
    extensions?: Map<string, Extension>;
  } = {},
) {
  const clock = { t: T0 };
  const board = new StatusBoard();
  const settings = testSettings('exporter', 'otlp', {
    extensions: opts.extensions,
    board,
    signals: opts.signals ?? ['flows'],
  });
  // As the service does: starting, then ok once started.
  const state = board.register('exporter', 'otlp');
  board.set(state, 'starting');
  board.set(state, 'ok');
  const e = new OtlpExporter(
    settings,
    // Validated at the default interval (expiration is checked against it), then an hour, so the timer
    // never fires during a test.
    {
      ...otlpExporterConfig.parse({ tls: { insecure: true }, ...config }),
      interval: 3_600_000,
    },
    { now: () => clock.t, backoff: { initialMs: 10, maxMs: 50, jitter: 0 }, ...opts },
  );
  live.exporters.push(e);
  e.start();
  return { e, clock, state };
}

/**
 * A grpc-status-details-bin trailer: google.rpc.Status (code 8) with a google.rpc.ErrorInfo detail and,
 * when `retryDelayMs` is given, a google.rpc.RetryInfo, written field by field as a server encodes them.
 */
function statusDetails(opts: { retryDelayMs?: number }): Metadata {
  const any = (typeUrl: string, value: Uint8Array) =>
    protobuf.Writer.create().uint32(0x0a).string(typeUrl).uint32(0x12).bytes(value).finish();
  const status = protobuf.Writer.create().uint32(0x08).int32(8).uint32(0x12).string('slow down');
  const errorInfo = protobuf.Writer.create().uint32(0x0a).string('RATE_LIMITED').finish();
  status.uint32(0x1a).bytes(any('type.googleapis.com/google.rpc.ErrorInfo', errorInfo));
  if (opts.retryDelayMs !== undefined) {
    const d = opts.retryDelayMs;
    const duration = protobuf.Writer.create();
    if (Math.floor(d / 1000) > 0) duration.uint32(0x08).int64(Math.floor(d / 1000));
    if (d % 1000 > 0) duration.uint32(0x10).int32((d % 1000) * 1e6);
    const retryInfo = protobuf.Writer.create().uint32(0x0a).bytes(duration.finish()).finish();
    status.uint32(0x1a).bytes(any('type.googleapis.com/google.rpc.RetryInfo', retryInfo));
  }
  const m = new Metadata();
  m.set(STATUS_DETAILS_KEY, Buffer.from(status.finish()));
  return m;
}

const byMetric = (points: SinkPoint[], metric: string) => points.filter((p) => p.metric === metric);

/** A histogram data point as protobufjs decodes it (longs as strings); the sink's points() are Sums only. */
interface DecodedHistogramPoint {
  attributes?: Parameters<typeof attributes>[0];
  startTimeUnixNano?: string;
  timeUnixNano?: string;
  count?: string;
  sum?: number;
  bucketCounts?: string[];
  explicitBounds?: number[];
}
interface DecodedMetricWithHistogram {
  name: string;
  unit?: string;
  histogram?: { dataPoints?: DecodedHistogramPoint[]; aggregationTemporality?: string };
}
/** The metrics of a request, histograms included. */
const metricsOf = (r: SinkRequest): DecodedMetricWithHistogram[] =>
  (r.decoded.resourceMetrics ?? []).flatMap((rm) =>
    (rm.scopeMetrics ?? []).flatMap((sm) => (sm.metrics ?? []) as DecodedMetricWithHistogram[]),
  );
const find = (points: SinkPoint[], metric: string, attrs: Record<string, unknown>) =>
  points.filter((p) => p.metric === metric && Object.entries(attrs).every(([k, v]) => p.attributes[k] === v));

describe('otlp exporter', () => {
  it('sends names, units, temporality, attributes, resource and values that decode from protobuf', async () => {
    const s = await sink();
    const { e, clock } = exporter({ endpoint: s.endpoint, granularity: 'pod' });
    e.export(
      FlowBatch.from([
        flow({ ...CART, 'cost.usd': 0.25 }, 1000, 5000, 10, 20),
        flow({ ...CART, 'cost.usd': 0.5 }, 24, 76, 1, 2),
        flow(WEB, 300, 700, 3, 7),
      ]).seal(),
    );
    clock.t = T0 + 30_000;
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    const points = s.points();
    expect(points).toHaveLength(10);
    for (const p of points) {
      expect(p).toMatchObject({
        temporality: 'delta',
        monotonic: true,
        scope: 'netmon',
        start: ns(T0),
        end: ns(T0 + 30_000),
      });
      expect(p.resource).toMatchObject({ 'service.name': 'netmon', 'service.version': expect.any(String) });
    }
    const units = Object.fromEntries(points.map((p) => [p.metric, p.unit]));
    expect(units).toEqual({
      'netmon.flow.io': 'By',
      'netmon.flow.packet.count': '{packet}',
      'netmon.flow.cost': 'USD',
    });

    const cartTx = find(points, 'netmon.flow.io', {
      'src.k8s.workload.name': 'cart',
      'network.io.direction': 'transmit',
    });
    expect(cartTx).toHaveLength(1);
    // Absent attributes are left out; pod granularity keeps the pod.
    // The default labels add the protocol (an int, as in the flow record); a destination with a domain
    // gets no dst.prefix.
    expect(cartTx[0].attributes).toEqual({ ...CART, protocol: 6, 'network.io.direction': 'transmit' });
    expect(cartTx[0].value).toBe(1024);
    expect(
      find(points, 'netmon.flow.io', {
        'src.k8s.workload.name': 'cart',
        'network.io.direction': 'receive',
      })[0].value,
    ).toBe(5076);
    expect(
      find(points, 'netmon.flow.packet.count', {
        'src.k8s.workload.name': 'cart',
        'network.io.direction': 'transmit',
      })[0].value,
    ).toBe(11);
    expect(
      find(points, 'netmon.flow.packet.count', {
        'src.k8s.workload.name': 'web',
        'network.io.direction': 'receive',
      })[0].value,
    ).toBe(7);
    const cost = byMetric(points, 'netmon.flow.cost');
    expect(cost.map((p) => p.attributes['network.io.direction'])).toEqual([undefined, undefined]);
    expect(find(points, 'netmon.flow.cost', { 'src.k8s.workload.name': 'cart' })[0].value).toBeCloseTo(
      0.75,
      12,
    );
    expect(find(points, 'netmon.flow.cost', { 'src.k8s.workload.name': 'web' })[0].value).toBe(0);
  });

  it('granularity workload rolls pods up; no cost metric while nothing was priced', async () => {
    const s = await sink();
    const { e } = exporter({ endpoint: s.endpoint });
    e.export(FlowBatch.from([flow(CART), flow({ ...CART, 'src.k8s.pod.name': 'cart-7d9f-fghij' })]));
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    const points = s.points();
    expect(points.map((p) => p.metric)).toEqual([
      'netmon.flow.io',
      'netmon.flow.io',
      'netmon.flow.packet.count',
      'netmon.flow.packet.count',
    ]);
    expect(points[0].attributes['src.k8s.pod.name']).toBeUndefined();
    expect(points[0].value).toBe(2000);
  });

  it('delta: each interval carries what it added; an idle series skips intervals and stays contiguous', async () => {
    const s = await sink();
    const { e, clock } = exporter({ endpoint: s.endpoint });
    e.export(FlowBatch.from([flow(CART, 100), flow(WEB, 10)]));
    clock.t = T0 + 30_000;
    e.flush();
    e.export(FlowBatch.from([flow(CART, 7)]));
    clock.t = T0 + 60_000;
    e.flush();
    clock.t = T0 + 90_000;
    e.flush(); // nothing new: nothing sent
    e.export(FlowBatch.from([flow(WEB, 3)]));
    clock.t = T0 + 120_000;
    e.flush();
    await s.waitFor(() => s.requests.length === 3);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.requests).toHaveLength(3);
    const tx = (w: string) =>
      find(s.points(), 'netmon.flow.io', {
        'src.k8s.workload.name': w,
        'network.io.direction': 'transmit',
      }).map((p) => [p.start, p.end, p.value]);
    expect(tx('cart')).toEqual([
      [ns(T0), ns(T0 + 30_000), 100],
      [ns(T0 + 30_000), ns(T0 + 60_000), 7],
    ]);
    // web was idle from 30 s to 90 s: its next point starts where its previous one ended.
    expect(tx('web')).toEqual([
      [ns(T0), ns(T0 + 30_000), 10],
      [ns(T0 + 30_000), ns(T0 + 120_000), 3],
    ]);
  });

  it('cumulative: totals since the series appeared, every series each interval, nothing when nothing changed', async () => {
    const s = await sink();
    const { e, clock } = exporter({ endpoint: s.endpoint, temporality: 'cumulative' });
    clock.t = T0 + 5_000;
    e.export(FlowBatch.from([flow(CART, 100)]));
    clock.t = T0 + 30_000;
    e.flush();
    clock.t = T0 + 40_000;
    e.export(FlowBatch.from([flow(WEB, 10)]));
    clock.t = T0 + 60_000;
    e.flush();
    clock.t = T0 + 90_000;
    e.flush(); // unchanged: nothing sent
    await s.waitFor(() => s.requests.length === 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.requests).toHaveLength(2);
    const points = s.points();
    expect(points.every((p) => p.temporality === 'cumulative' && p.monotonic)).toBe(true);
    const tx = (w: string) =>
      find(points, 'netmon.flow.io', { 'src.k8s.workload.name': w, 'network.io.direction': 'transmit' }).map(
        (p) => [p.start, p.end, p.value],
      );
    expect(tx('cart')).toEqual([
      [ns(T0 + 5_000), ns(T0 + 30_000), 100],
      [ns(T0 + 5_000), ns(T0 + 60_000), 100],
    ]);
    expect(tx('web')).toEqual([[ns(T0 + 40_000), ns(T0 + 60_000), 10]]);
  });

  it('cuts 50k series into requests under 4 MiB that a sink with the default limit takes; every point arrives once', async () => {
    const s = await sink(); // gRPC's default 4 MiB receive limit
    const { e } = exporter({
      endpoint: s.endpoint,
      granularity: 'pod',
      compression: 'none',
      max_series: 60_000,
      max_points_per_request: 1_000_000, // only the byte limit cuts
    });
    const n = 50_000;
    const flows: FlowInit[] = [];
    for (let i = 0; i < n; i++) {
      flows.push(
        flow(
          {
            ...CART,
            'src.k8s.pod.name': `cart-7d9f5b6c4-${i.toString(36).padStart(5, '0')}`,
            'dst.domain': `shard-${i % 977}.payments.eu-west-1.example.com`,
          },
          i + 1,
          2 * i + 1,
          1,
          1,
        ),
      );
    }
    e.export(FlowBatch.from(flows));
    e.flush();
    await s.waitFor(() => s.pointCount >= n * 4 || s.refused > 0, 30_000);
    expect(s.refused).toBe(0);
    expect(s.requests.length).toBeGreaterThan(5);
    for (const r of s.requests) expect(r.bytes).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
    // The exporter knows each request's exact size before sending it.
    const last = (e as unknown as { last: { largest_request_bytes: number; requests: number } }).last;
    expect(last.requests).toBe(s.requests.length);
    expect(last.largest_request_bytes).toBe(Math.max(...s.requests.map((r) => r.bytes)));
    const tx = s
      .points()
      .filter((p) => p.metric === 'netmon.flow.io' && p.attributes['network.io.direction'] === 'transmit');
    expect(tx).toHaveLength(n);
    expect(new Set(tx.map((p) => p.attributes['src.k8s.pod.name'])).size).toBe(n);
    expect(tx.reduce((a, p) => a + p.value, 0)).toBe((n * (n + 1)) / 2);
  }, 60_000);

  it('max_points_per_request cuts too, keeping a series’ points together', async () => {
    const s = await sink();
    const { e } = exporter({ endpoint: s.endpoint, max_points_per_request: 10 });
    const flows = Array.from({ length: 7 }, (_, i) =>
      flow({ ...WEB, 'src.k8s.workload.name': `w${i}` }, i + 1),
    );
    e.export(FlowBatch.from(flows));
    e.flush();
    // 4 points per series (io ×2, packet.count ×2), at most 10 per request: two series each, then one.
    await s.waitFor(() => s.requests.length === 4);
    expect(
      s.requests.map(
        (r) => r.decoded.resourceMetrics?.[0].scopeMetrics?.[0].metrics?.[0].sum?.dataPoints?.length,
      ),
    ).toEqual([4, 4, 4, 2]);
    expect(s.points().filter((p) => p.metric === 'netmon.flow.io')).toHaveLength(14);
  });

  it('knows the encoded size exactly, whatever the strings (multi-byte, long)', async () => {
    const s = await sink();
    const { e } = exporter({
      endpoint: s.endpoint,
      compression: 'none',
      granularity: 'pod',
      resource: { 'k8s.cluster.name': 'prod-ünïcode' },
    });
    e.export(
      FlowBatch.from([
        flow({ ...CART, 'dst.domain': 'bücher.example.中国', 'cost.usd': 1e-9 }, 2 ** 40, 3),
        flow({ ...WEB, 'src.k8s.pod.name': 'x'.repeat(300) }, 1, 2 ** 33),
      ]),
    );
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    const last = (e as unknown as { last: { largest_request_bytes: number } }).last;
    expect(last.largest_request_bytes).toBe(s.requests[0].bytes);
    expect(
      find(s.points(), 'netmon.flow.io', {
        'dst.domain': 'bücher.example.中国',
        'network.io.direction': 'transmit',
      })[0].value,
    ).toBe(2 ** 40);
  });

  it('label selection: zones, dst.port and protocol as ints, dst.prefix top N with "other", decoded from protobuf', async () => {
    const s = await sink();
    const { e } = exporter({
      endpoint: s.endpoint,
      tls: { insecure: true },
      compression: 'none',
      labels: { include: ['dst_port'], exclude: ['*_workload_kind'], dst_prefix: { top: 1 } },
    });
    const zoned = { 'src.cloud.availability_zone': 'eu-west-1a' };
    const src = {
      'src.k8s.namespace.name': 'shop',
      'src.k8s.workload.kind': 'Deployment',
      'src.k8s.workload.name': 'web',
      ...zoned,
    };
    const out = (dstIp: string, tx: number) => ({
      ...flow({ ...src, 'dst.kind': 'external_public', 'traffic.class': 'internet_egress' }, tx, 0),
      dstIp,
    });
    const rows = [
      flow({ ...WEB, ...zoned, 'dst.cloud.availability_zone': 'eu-west-1b' }, 300, 700),
      out('2001:db8:1:2::10', 5),
      out('2001:db8:1:2::20', 6),
      // Other /64s: past the top 1, summed under "other".
      ...Array.from({ length: 20 }, (_, i) => out(`2001:db8:${i + 10}::1`, 100)),
    ];
    e.export(FlowBatch.from(rows));
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    const last = (e as unknown as { last: { largest_request_bytes: number } }).last;
    expect(last.largest_request_bytes).toBe(s.requests[0].bytes);
    const tx = byMetric(s.points(), 'netmon.flow.io').filter(
      (p) => p.attributes['network.io.direction'] === 'transmit',
    );
    const web = { 'src.k8s.namespace.name': 'shop', 'src.k8s.workload.name': 'web', ...zoned };
    expect(tx.map((p) => [p.attributes, p.value])).toEqual([
      [
        {
          ...web,
          'dst.k8s.namespace.name': 'shop',
          'dst.k8s.workload.name': 'cart',
          'dst.cloud.availability_zone': 'eu-west-1b',
          'dst.kind': 'pod',
          'dst.port': 443,
          protocol: 6,
          'traffic.class': 'cross_zone',
          'network.io.direction': 'transmit',
        },
        300,
      ],
      [
        {
          ...web,
          'dst.kind': 'external_public',
          'dst.prefix': '2001:db8:1:2::/64',
          protocol: 6,
          'traffic.class': 'internet_egress',
          'network.io.direction': 'transmit',
        },
        11,
      ],
      [
        {
          ...web,
          'dst.kind': 'external_public',
          'dst.prefix': 'other',
          protocol: 6,
          'traffic.class': 'internet_egress',
          'network.io.direction': 'transmit',
        },
        2000,
      ],
    ]);
  });

  it('resource: node, zone, region and provider from k8s_metadata; the config adds and removes', async () => {
    const s = await sink();
    const facts: NodeFacts & Extension = {
      nodeName: 'ip-10-0-1-7',
      store: {
        node: (name) =>
          name === 'ip-10-0-1-7' ? { zone: 'eu-west-1b', region: 'eu-west-1', provider: 'aws' } : undefined,
      },
      provider: () => 'gcp',
    };
    const { e } = exporter(
      {
        endpoint: s.endpoint,
        resource: {
          'k8s.cluster.name': 'prod-eu',
          'deployment.environment.name': 'prod',
          'service.version': '',
        },
      },
      { extensions: new Map([['k8s_metadata', facts]]) },
    );
    e.export(FlowBatch.from([flow(CART)]));
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    expect(s.points()[0].resource).toEqual({
      'service.name': 'netmon',
      'service.instance.id': 'ip-10-0-1-7',
      'k8s.node.name': 'ip-10-0-1-7',
      'cloud.provider': 'aws',
      'cloud.region': 'eu-west-1',
      'cloud.availability_zone': 'eu-west-1b',
      'k8s.cluster.name': 'prod-eu',
      'deployment.environment.name': 'prod',
    });
  });

  it('headers arrive as metadata; gzip is declared on the wire; compression none is identity', async () => {
    const s = await sink();
    const gz = exporter({
      endpoint: s.endpoint,
      headers: { authorization: 'Bearer s3cr3t', 'x-tenant': 'shop' },
    });
    gz.e.export(FlowBatch.from([flow(CART)]));
    gz.e.flush();
    await s.waitFor(() => s.requests.length === 1);
    expect(s.requests[0].metadata).toMatchObject({ authorization: 'Bearer s3cr3t', 'x-tenant': 'shop' });
    expect(s.requests[0].encoding).toBe('gzip');
    const plain = exporter({ endpoint: s.endpoint, compression: 'none' });
    plain.e.export(FlowBatch.from([flow(CART)]));
    plain.e.flush();
    await s.waitFor(() => s.requests.length === 2);
    expect(s.requests[1].encoding).toBe('identity');
    expect(s.requests[1].metadata.authorization).toBeUndefined();
  });

  it('retries UNAVAILABLE with backoff and reports it; every point arrives once, in order', async () => {
    const s = await sink();
    const { e, clock, state } = exporter({ endpoint: s.endpoint, max_points_per_request: 5 });
    s.failNext(5);
    for (let i = 1; i <= 3; i++) {
      e.export(FlowBatch.from([flow(CART, i), flow(WEB, 10 * i)]));
      clock.t = T0 + i * 30_000;
      e.flush();
    }
    await s.waitFor(() => s.refused >= 2);
    expect(state.status).toBe('recoverable_error');
    await s.waitFor(() => s.requests.length === 6);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.refused).toBe(5);
    expect(s.requests).toHaveLength(6);
    expect(state.status).toBe('ok');
    const tx = s
      .points()
      .filter((p) => p.metric === 'netmon.flow.io' && p.attributes['network.io.direction'] === 'transmit');
    const keys = tx.map((p) => `${p.attributes['src.k8s.workload.name']} ${p.start} ${p.end}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(tx.map((p) => p.value)).toEqual([1, 10, 2, 20, 3, 30]);
  });

  it('RESOURCE_EXHAUSTED: retried only with RetryInfo; a request over the server’s limit is dropped and counted, the next goes', async () => {
    const s = await sink();
    s.failNext(2, status.RESOURCE_EXHAUSTED, 'slow down', statusDetails({ retryDelayMs: 20 }));
    const { e } = exporter({ endpoint: s.endpoint });
    e.export(FlowBatch.from([flow(CART)]));
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    expect(s.refused).toBe(2);

    // Status details without a RetryInfo (a quota message, say) do not make it retryable.
    const q = await sink();
    q.failNext(1, status.RESOURCE_EXHAUSTED, 'quota', statusDetails({}));
    const y = exporter({ endpoint: q.endpoint });
    y.e.export(FlowBatch.from([flow(CART)]));
    y.e.flush();
    const rejected = () =>
      (y.e as unknown as { queue: { statistics(): { dropped: { rejected: number } } } }).queue.statistics()
        .dropped.rejected;
    await q.waitFor(() => rejected() > 0);
    expect(q.refused).toBe(1);
    expect(q.requests).toHaveLength(0);

    const small = await sink({ maxReceiveBytes: 1200 });
    const x = exporter({ endpoint: small.endpoint, compression: 'none', granularity: 'pod' });
    x.e.export(FlowBatch.from([flow({ ...CART, 'src.k8s.pod.name': 'p'.repeat(200) })]));
    x.e.flush();
    const queue = () =>
      (
        x.e as unknown as { queue: { statistics(): { dropped: { rejected: number }; queuedItems: number } } }
      ).queue.statistics();
    await s.waitFor(() => queue().dropped.rejected === 4);
    x.e.export(FlowBatch.from([flow({ 'traffic.class': 'same_node' })]));
    x.e.flush();
    await small.waitFor(() => small.requests.length === 1);
    expect(small.points()[0].attributes).toEqual({
      protocol: 6,
      'traffic.class': 'same_node',
      'network.io.direction': 'transmit',
    });
  });

  it('waits at least the RetryInfo delay before retrying, capped by retry_on_failure::max_interval', async () => {
    const s = await sink();
    s.failNext(1, status.RESOURCE_EXHAUSTED, 'slow down', statusDetails({ retryDelayMs: 600 }));
    // The queue's own backoff is 10 ms: only the server's delay can hold the retry back.
    const { e } = exporter({ endpoint: s.endpoint }, { backoff: { initialMs: 10, maxMs: 5000, jitter: 0 } });
    // Timed from before the export, not from when the test sees the refusal (its polling may see it late):
    // the refusal comes after this instant, and the retry at least 600 ms after the refusal.
    const sentAt = Date.now();
    e.export(FlowBatch.from([flow(CART)]));
    e.flush();
    await s.waitFor(() => s.refused === 1, 5000);
    await s.waitFor(() => s.requests.length === 1, 5000);
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(600);

    // A delay past the longest backoff waits only that long.
    const c = await sink();
    c.failNext(1, status.UNAVAILABLE, 'back off', statusDetails({ retryDelayMs: 3_600_000 }));
    const x = exporter({ endpoint: c.endpoint }, { backoff: { initialMs: 10, maxMs: 300, jitter: 0 } });
    const at = Date.now();
    x.e.export(FlowBatch.from([flow(CART)]));
    x.e.flush();
    await c.waitFor(() => c.refused === 1, 5000);
    await c.waitFor(() => c.requests.length === 1, 5000);
    // Capped: the hour the server asked for would outlast the wait's 5 s.
    expect(Date.now() - at).toBeGreaterThanOrEqual(300);
  });

  it('decodes RetryInfo from grpc-status-details-bin, and nothing from other bytes', () => {
    const bin = (m: Metadata) => m.get('grpc-status-details-bin')[0] as Buffer;
    expect(retryDelayMs(bin(statusDetails({ retryDelayMs: 1500 })))).toBe(1500);
    expect(retryDelayMs(bin(statusDetails({ retryDelayMs: 0 })))).toBe(0);
    expect(retryDelayMs(bin(statusDetails({})))).toBeUndefined();
    expect(retryDelayMs(Buffer.from([0x08, 0x08]))).toBeUndefined();
    expect(retryDelayMs(Buffer.from([0xff, 0xff, 0xff]))).toBeUndefined();
    expect(retryDelayMs(undefined)).toBeUndefined();
  });

  it('drops the oldest requests past sending_queue::queue_size while the backend is down, and counts them', async () => {
    const s = await sink();
    s.failFor(60_000);
    const { e, clock } = exporter({ endpoint: s.endpoint, max_series: 2, sending_queue: { queue_size: 10 } });
    for (let i = 1; i <= 4; i++) {
      e.export(FlowBatch.from([flow(CART, i)]));
      clock.t = T0 + i * 1000;
      e.flush();
      // Each flush on its own turn, as the interval timer runs them (one turn's requests are one group).
      await Promise.resolve();
    }
    const stats = (
      e as unknown as { queue: { statistics(): { dropped: { queue_full: number }; queuedItems: number } } }
    ).queue.statistics();
    // Four intervals of 4 points each, room for 10: the second and third went (the first is in flight).
    expect(stats.dropped.queue_full).toBe(8);
    expect(stats.queuedItems).toBe(8);
    s.recover();
    await s.waitFor(() => s.requests.length === 2);
    expect(
      s
        .points()
        .filter((p) => p.metric === 'netmon.flow.io' && p.attributes['network.io.direction'] === 'transmit')
        .map((p) => p.value),
    ).toEqual([1, 4]);
  });

  it('refuses cumulative flow counters with an error that names the fix', async () => {
    const { e } = exporter({ endpoint: 'http://127.0.0.1:1' });
    expect(() => e.export(FlowBatch.from([flow(CART)], 'cumulative'))).toThrow(/delta/);
  });

  it('shutdown sends the partial interval; the exporter is idle afterwards', async () => {
    const s = await sink();
    const { e, clock } = exporter({ endpoint: s.endpoint });
    e.export(FlowBatch.from([flow(CART, 42)]));
    clock.t = T0 + 3_000;
    await e.shutdown();
    expect(s.points().find((p) => p.metric === 'netmon.flow.io')).toMatchObject({
      value: 42,
      start: ns(T0),
      end: ns(T0 + 3_000),
    });
    expect(() => e.export(FlowBatch.from([flow(CART)]))).toThrow(/after shutdown/);
  });

  it('shutdown is bounded when the backend is blackholed: at most 3 s, the channel closed, the rest counted', async () => {
    // A backend that accepts connections and never says a word: the call neither fails nor ends.
    const sockets = new Set<Socket>();
    const hole = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    try {
      const port = (hole.address() as AddressInfo).port;
      const { e } = exporter({ endpoint: `http://127.0.0.1:${port}`, timeout: '60s' });
      e.export(FlowBatch.from([flow(CART, 42)]));
      e.flush();
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      await e.shutdown();
      const took = Date.now() - t0;
      expect(took).toBeGreaterThanOrEqual(2900);
      expect(took).toBeLessThan(4500);
      const facts = (e as unknown as { facts(): { queue: { dropped: { shutdown: number } } } }).facts();
      expect(facts.queue.dropped.shutdown).toBeGreaterThan(0);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => hole.close(r));
    }
  });

  it('past max_series, flows go to one overflow series marked otel.metric.overflow=true, totals intact', async () => {
    const s = await sink();
    const { e } = exporter({ endpoint: s.endpoint, max_series: 3 });
    e.export(
      FlowBatch.from(
        Array.from({ length: 6 }, (_, i) => flow({ ...WEB, 'src.k8s.workload.name': `w${i}` }, 1)),
      ),
    );
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    const tx = s
      .points()
      .filter((p) => p.metric === 'netmon.flow.io' && p.attributes['network.io.direction'] === 'transmit');
    expect(tx).toHaveLength(3);
    expect(tx.reduce((a, p) => a + p.value, 0)).toBe(6);
    expect(tx[2]).toMatchObject({
      value: 4,
      attributes: { 'otel.metric.overflow': true, 'network.io.direction': 'transmit' },
    });
  });

  it('forgets series idle for expiration; a cumulative one restarts from zero with a new start', async () => {
    const s = await sink();
    const { e, clock } = exporter({ endpoint: s.endpoint, temporality: 'cumulative', expiration: '1m' });
    e.export(FlowBatch.from([flow(CART, 5), flow(WEB, 1)]));
    clock.t = T0 + 30_000;
    e.flush();
    clock.t = T0 + 50_000;
    e.export(FlowBatch.from([flow(WEB, 1)]));
    clock.t = T0 + 90_000;
    e.flush(); // cart last seen at T0: expired after this export
    clock.t = T0 + 100_000;
    e.export(FlowBatch.from([flow(CART, 2)]));
    clock.t = T0 + 120_000;
    e.flush();
    await s.waitFor(() => s.requests.length === 3);
    const tx = find(s.points(), 'netmon.flow.io', {
      'src.k8s.workload.name': 'cart',
      'network.io.direction': 'transmit',
    });
    expect(tx.map((p) => [p.start, p.end, p.value])).toEqual([
      [ns(T0), ns(T0 + 30_000), 5],
      [ns(T0), ns(T0 + 90_000), 5],
      [ns(T0 + 100_000), ns(T0 + 120_000), 2],
    ]);
  });

  it('dns: lookups counted by question', async () => {
    const s = await sink();
    const { e } = exporter({ endpoint: s.endpoint }, { signals: ['dns'] });
    const lookup = (question: string) => ({ time: T0, clientIp: '10.0.0.9', question, answers: [] });
    e.export(DnsBatch.from([lookup('api.stripe.com'), lookup('db.shop.svc'), lookup('api.stripe.com')]));
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    expect(s.points().map((p) => [p.metric, p.unit, p.attributes, p.value])).toEqual([
      [
        'netmon.dns.lookup.count',
        '{lookup}',
        { 'dns.question.name': 'api.stripe.com', 'dns.response_code': 'NOERROR' },
        2,
      ],
      [
        'netmon.dns.lookup.count',
        '{lookup}',
        { 'dns.question.name': 'db.shop.svc', 'dns.response_code': 'NOERROR' },
        1,
      ],
    ]);
    // No lookup had a latency: no histogram.
    expect(metricsOf(s.requests[0]).map((m) => m.name)).toEqual(['netmon.dns.lookup.count']);
  });

  it('dns: lookups by question (top N, "other") and response code, latency as an explicit-bucket histogram, decoded from protobuf', async () => {
    const s = await sink();
    const { e, clock } = exporter(
      { endpoint: s.endpoint, labels: { dns_question: { top: 1 } } },
      { signals: ['dns'] },
    );
    const lookup = (question: string, rcode: number, latencyMs?: number) => ({
      time: T0,
      clientIp: '10.0.0.9',
      question,
      rcode,
      answers: [],
      ...(latencyMs === undefined ? {} : { latencyMs }),
    });
    e.export(
      DnsBatch.from([
        lookup('api.stripe.com', 0, 0.3),
        lookup('API.stripe.com.', 0, 40),
        lookup('api.stripe.com', 2),
        lookup('x1.t.example', 3, 3),
        lookup('x2.t.example', 3),
      ]),
    );
    clock.t = T0 + 30_000;
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    // The size computed before the request was built is the size the sink received.
    const last = () => (e as unknown as { last: { largest_request_bytes: number } }).last;
    expect(last().largest_request_bytes).toBe(s.requests[0].bytes);
    const API = { 'dns.question.name': 'api.stripe.com', 'dns.response_code': 'NOERROR' };
    const OTHER = { 'dns.question.name': 'other', 'dns.response_code': 'NXDOMAIN' };
    expect(byMetric(s.points(), 'netmon.dns.lookup.count').map((p) => [p.attributes, p.value])).toEqual([
      [API, 2],
      [{ 'dns.question.name': 'api.stripe.com', 'dns.response_code': 'SERVFAIL' }, 1],
      [OTHER, 2],
    ]);
    const bounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
    const histogram = (r: SinkRequest) => {
      const m = metricsOf(r).find((x) => x.name === 'netmon.dns.lookup.duration');
      return {
        unit: m?.unit,
        temporality: m?.histogram?.aggregationTemporality,
        points: (m?.histogram?.dataPoints ?? []).map((p) => ({
          attributes: attributes(p.attributes),
          start: BigInt(p.startTimeUnixNano ?? '0'),
          end: BigInt(p.timeUnixNano ?? '0'),
          count: Number(p.count),
          sum: p.sum,
          buckets: (p.bucketCounts ?? []).map(Number),
          bounds: p.explicitBounds,
        })),
      };
    };
    // SERVFAIL had no latency: no histogram point for it.
    expect(histogram(s.requests[0])).toEqual({
      unit: 's',
      temporality: 'AGGREGATION_TEMPORALITY_DELTA',
      points: [
        {
          attributes: API,
          start: ns(T0),
          end: ns(T0 + 30_000),
          count: 2,
          sum: 0.3 / 1000 + 40 / 1000,
          buckets: [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
          bounds,
        },
        {
          attributes: OTHER,
          start: ns(T0),
          end: ns(T0 + 30_000),
          count: 1,
          sum: 0.003,
          buckets: [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
          bounds,
        },
      ],
    });
    // Next interval: api.stripe.com without a latency sends an empty histogram point that continues its
    // stream where the last one ended; the request is still sized exactly.
    e.export(DnsBatch.from([lookup('api.stripe.com', 0)]));
    clock.t = T0 + 60_000;
    e.flush();
    await s.waitFor(() => s.requests.length === 2);
    expect(last().largest_request_bytes).toBe(s.requests[1].bytes);
    expect(histogram(s.requests[1]).points).toEqual([
      {
        attributes: API,
        start: ns(T0 + 30_000),
        end: ns(T0 + 60_000),
        count: 0,
        sum: 0,
        buckets: Array(14).fill(0),
        bounds,
      },
    ]);
    // A request whose series never measured a latency has no histogram metric, and is sized exactly too.
    e.export(DnsBatch.from([lookup('api.stripe.com', 2)]));
    clock.t = T0 + 90_000;
    e.flush();
    await s.waitFor(() => s.requests.length === 3);
    expect(metricsOf(s.requests[2]).map((m) => m.name)).toEqual(['netmon.dns.lookup.count']);
    expect(last().largest_request_bytes).toBe(s.requests[2].bytes);
  });

  it('exports on its interval timer', async () => {
    const s = await sink();
    const settings = testSettings('exporter', 'otlp');
    const e = new OtlpExporter(
      settings,
      otlpExporterConfig.parse({ endpoint: s.endpoint, tls: { insecure: true }, interval: '100ms' }),
    );
    live.exporters.push(e);
    e.start();
    e.export(FlowBatch.from([flow(CART, 1)]));
    await s.waitFor(() => s.requests.length === 1, 2000);
    e.export(FlowBatch.from([flow(CART, 2)]));
    await s.waitFor(() => s.requests.length === 2, 2000);
    const tx = s
      .points()
      .filter((p) => p.metric === 'netmon.flow.io' && p.attributes['network.io.direction'] === 'transmit');
    expect(tx.map((p) => p.value)).toEqual([1, 2]);
    expect(tx[1].start).toBe(tx[0].end);
  });
});

describe('otlp exporter over TLS', () => {
  const server = { cert: pem('server.pem'), key: pem('server-key.pem') };

  it('https with ca_file', async () => {
    const s = await sink({ tls: server });
    const { e } = exporter({ endpoint: s.endpoint, tls: { ca_file: path.join(TESTDATA, 'ca.pem') } });
    e.export(FlowBatch.from([flow(CART, 9)]));
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    expect(s.points()[0].value).toBe(9);
  });

  it('mutual TLS with cert_file and key_file', async () => {
    const s = await sink({ tls: { ...server, clientCa: pem('ca.pem') } });
    const { e } = exporter({
      endpoint: s.endpoint,
      tls: {
        ca_file: path.join(TESTDATA, 'ca.pem'),
        cert_file: path.join(TESTDATA, 'client.pem'),
        key_file: path.join(TESTDATA, 'client-key.pem'),
      },
    });
    e.export(FlowBatch.from([flow(CART, 9)]));
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    expect(s.points()[0].value).toBe(9);
    // The same sink refuses a client that shows no certificate: the one above got in by its certificate.
    const anonymous = exporter({ endpoint: s.endpoint, tls: { ca_file: path.join(TESTDATA, 'ca.pem') } });
    anonymous.e.export(FlowBatch.from([flow(CART, 5)]));
    anonymous.e.flush();
    await new Promise((r) => setTimeout(r, 500));
    expect(s.requests.length).toBe(1);
  });

  it('an unknown CA fails the handshake (retried as UNAVAILABLE) unless insecure_skip_verify', async () => {
    const s = await sink({ tls: server });
    const strict = exporter({ endpoint: s.endpoint });
    strict.e.export(FlowBatch.from([flow(CART)]));
    strict.e.flush();
    const stats = () =>
      (
        strict.e as unknown as { queue: { statistics(): { failedAttempts: number; lastError?: string } } }
      ).queue.statistics();
    await s.waitFor(() => stats().failedAttempts >= 2);
    expect(s.requests).toHaveLength(0);
    expect(strict.state.status).toBe('recoverable_error');

    const lax = exporter({ endpoint: s.endpoint, tls: { insecure_skip_verify: true } });
    lax.e.export(FlowBatch.from([flow(CART, 3)]));
    lax.e.flush();
    await s.waitFor(() => s.requests.length === 1);
  });

  it('a TLS file that cannot be read fails start naming the key', () => {
    const settings = testSettings('exporter', 'otlp');
    const e = new OtlpExporter(
      settings,
      otlpExporterConfig.parse({ endpoint: 'https://127.0.0.1:1', tls: { ca_file: '/nonexistent/ca.pem' } }),
    );
    live.exporters.push(e);
    expect(() => e.start()).toThrow('otlp exporter: cannot read tls::ca_file /nonexistent/ca.pem: ENOENT');
  });
});

describe('otlp exporter: one instance for flows and dns pipelines', () => {
  class TestReader extends MetricReader {
    protected async onShutdown(): Promise<void> {}
    protected async onForceFlush(): Promise<void> {}
  }

  it('is made, started and shut down once, and sends both signals through one queue and channel', async () => {
    const s = await sink();
    const lookup = (question: string) => ({ time: T0, clientIp: '10.0.0.9', question, answers: [] });
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const { service, life } = await runExporterInService(
      otlpExporterFactory,
      { endpoint: s.endpoint, tls: { insecure: true }, interval: '1h' },
      {
        flows: () => FlowBatch.from([flow(CART, 1234), flow(WEB, 10)]),
        dns: () =>
          DnsBatch.from([lookup('api.stripe.com'), lookup('db.shop.svc'), lookup('API.stripe.com.')]),
      },
      { meterProvider },
    );
    try {
      const entries = () => service.components().filter((c) => c.kind === 'exporter' && c.id === 'otlp');
      const facts = () => entries()[0].details?.() as Record<string, unknown>;
      await s.waitFor(() => facts().series === 4);
      expect(life.created).toEqual([['flows', 'dns']]);
      expect(life.starts).toBe(1);
      // One status entry per signal, both describing the one instance.
      expect(entries().map((c) => c.signal)).toEqual(['flows', 'dns']);
      expect(entries()[1].details?.()).toEqual(facts());
      expect(facts()).toMatchObject({
        series: 4,
        max_series: 20_000,
        signals: {
          flows: { series: 2, overflow_items: 0, expired_series: 0 },
          dns: { series: 2, overflow_items: 0, expired_series: 0 },
        },
      });

      const collected = await reader.collect();
      const points = (name: string) =>
        collected.resourceMetrics.scopeMetrics
          .flatMap((sm) => sm.metrics)
          .filter((m) => m.descriptor.name === name)
          .flatMap((m) => m.dataPoints.map((p) => [p.attributes, p.value]));
      expect(points('netmon_otlp_series')).toEqual([
        [{ component: 'otlp', signal: 'flows' }, 2],
        [{ component: 'otlp', signal: 'dns' }, 2],
      ]);
      expect(points('netmon_otlp_overflow_items')).toHaveLength(2);
      // One queue for the instance: no signal attribute on its metrics.
      expect(points('netmon_exporter_queue_items')).toEqual([[{ component: 'otlp' }, 0]]);
    } finally {
      await service.shutdown();
      await meterProvider.shutdown();
    }
    expect(life.shutdowns).toBe(1);

    // Shutdown sent the partial interval of both signals, through the one queue.
    await s.waitFor(() => s.points().some((p) => p.metric === 'netmon.dns.lookup.count'));
    const all = s.points();
    expect(
      find(all, 'netmon.flow.io', { 'src.k8s.workload.name': 'cart', 'network.io.direction': 'transmit' })[0]
        .value,
    ).toBe(1234);
    expect(byMetric(all, 'netmon.dns.lookup.count').map((p) => [p.attributes, p.value])).toEqual([
      [{ 'dns.question.name': 'api.stripe.com', 'dns.response_code': 'NOERROR' }, 2],
      [{ 'dns.question.name': 'db.shop.svc', 'dns.response_code': 'NOERROR' }, 1],
    ]);
    // Flows first, then dns, in the order of settings.signals.
    expect(s.requests.map((r) => r.decoded.resourceMetrics?.[0].scopeMetrics?.[0].metrics?.[0].name)).toEqual(
      ['netmon.flow.io', 'netmon.dns.lookup.count'],
    );
    const facts = service
      .components()
      .find((c) => c.id === 'otlp')
      ?.details?.() as {
      queue: { sentPayloads: number };
      last_export: { requests: number; series: number; points: number };
    };
    expect(facts.queue.sentPayloads).toBe(s.requests.length);
    expect(facts.last_export).toMatchObject({ requests: 2, series: 4, points: 8 + 2 });
  });

  it('refuses a batch of a signal the instance does not serve', () => {
    const e = new OtlpExporter(
      testSettings('exporter', 'otlp', { signals: ['dns'] }),
      otlpExporterConfig.parse({ endpoint: 'http://127.0.0.1:1', tls: { insecure: true } }),
    );
    live.exporters.push(e);
    expect(() => e.export(FlowBatch.from([flow(CART)]))).toThrow(
      'otlp exporter: a flows batch, but this instance serves dns',
    );
  });
});
