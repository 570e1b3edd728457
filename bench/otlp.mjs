// The otlp exporter's export path on the built packages: POINTS data points (SERIES = POINTS / 5 flow
// series at pod granularity, priced, so io ×2 + packet.count ×2 + cost) aggregated, cut into requests,
// built as ResourceMetrics, serialized by @opentelemetry/exporter-metrics-otlp-grpc and sent over real
// gRPC (loopback) to an in-process sink that only acknowledges, with and without gzip.
//   make build && .tools/bin/node --expose-gc bench/otlp.mjs
// POINTS=50000 ROUNDS=5 by default. Prints one line per measurement; docs/PERFORMANCE.md keeps the figures.
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { FlowBatch } from '@netmon/core';
import { otlpExporterFactory } from '@netmon/exporters';
import { OtlpExporter } from '../packages/exporters/dist/otlp/exporter.js';
import { gc, report, rng, settings } from './common.mjs';

const POINTS = Number(process.env.POINTS ?? 50_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const SERIES = Math.ceil(POINTS / 5);
const T0 = Date.parse('2026-01-01T00:00:00Z');

/** A sink that acknowledges every request and keeps its (decompressed) size. */
async function startSink() {
  const sizes = [];
  const server = new Server({ 'grpc.max_receive_message_length': 64 * 2 ** 20 });
  const raw = (b) => b;
  server.addService(
    {
      export: {
        path: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
        requestStream: false,
        responseStream: false,
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    },
    {
      export: (call, cb) => {
        sizes.push(call.request);
        cb(null, Buffer.alloc(0));
      },
    },
  );
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { endpoint: `http://127.0.0.1:${port}`, requests: sizes, close: () => server.forceShutdown() };
}

/** SERIES flows from pods of 200 workloads in 20 namespaces to a mix of pods, services and the internet. */
function makeBatch() {
  const next = rng(11);
  const classes = ['same_zone', 'cross_zone', 'internet_egress', 'same_node'];
  const flows = [];
  for (let i = 0; i < SERIES; i++) {
    const w = i % 200;
    const external = i % 4 === 2;
    const dw = next() % 200;
    flows.push({
      timeStart: T0,
      timeEnd: T0 + 30_000,
      protocol: 6,
      srcIp: '10.0.0.1',
      srcPort: 40000,
      dstIp: '10.0.0.2',
      dstPort: 443,
      txBytes: next() % 100000,
      rxBytes: next() % 1000000,
      txPackets: next() % 100,
      rxPackets: next() % 1000,
      attributes: {
        'src.k8s.namespace.name': `team-${w % 20}`,
        'src.k8s.workload.kind': 'Deployment',
        'src.k8s.workload.name': `service-${w}`,
        'src.k8s.pod.name': `service-${w}-6d4cf56db6-${i.toString(36).padStart(5, 'x')}`,
        'dst.kind': external ? 'external_public' : 'pod',
        ...(external
          ? { 'dst.domain': `api-${dw}.partner.example.com` }
          : {
              'dst.k8s.namespace.name': `team-${dw % 20}`,
              'dst.k8s.workload.kind': 'Deployment',
              'dst.k8s.workload.name': `service-${dw}`,
              'dst.k8s.service.name': `service-${dw}`,
            }),
        'traffic.class': classes[i % 4],
        'cost.usd': (next() % 1000) / 1e6,
      },
    });
  }
  return FlowBatch.from(flows);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const sink = await startSink();
const batch = makeBatch().seal();
for (const compression of ['none', 'gzip']) {
  const add = [];
  const total = [];
  const warm = [];
  let requests = [];
  for (let round = 0; round < ROUNDS + 1; round++) {
    const config = otlpExporterFactory.config.parse({
      endpoint: sink.endpoint,
      tls: { insecure: true },
      interval: '1h',
      granularity: 'pod',
      compression,
      max_series: SERIES + 1,
    });
    const clock = { t: T0 };
    const e = new OtlpExporter(settings('exporter', 'otlp'), config, { now: () => clock.t });
    e.start();
    sink.requests.length = 0;
    gc();
    let t = performance.now();
    e.export(batch);
    const tAdd = performance.now() - t;
    clock.t += 30_000;
    // From the interval's end to the last acknowledgement: snapshot, cut, build ResourceMetrics,
    // serialize (the library), compress, send, one request at a time.
    t = performance.now();
    e.flush();
    await e.queue.whenIdle();
    const tTotal = performance.now() - t;
    requests = [...sink.requests];
    // The next interval of the same series: their attributes are already built.
    e.export(batch);
    clock.t += 30_000;
    gc();
    t = performance.now();
    e.flush();
    await e.queue.whenIdle();
    const tWarm = performance.now() - t;
    await e.shutdown();
    if (round === 0) continue; // warm-up
    add.push(tAdd);
    total.push(tTotal);
    warm.push(tWarm);
  }
  const points = SERIES * 5;
  const bytes = requests.map((r) => r.length);
  const sum = bytes.reduce((a, b) => a + b, 0);
  report(
    `otlp export of ${points.toLocaleString('en-US')} points, compression ${compression}`,
    median(total),
    'ms',
    `new series; median of ${ROUNDS}, best ${Math.min(...total).toFixed(0)} ms; summing the flows in before: ${median(add).toFixed(0)} ms`,
    0,
  );
  report(
    `  next interval, same series`,
    median(warm),
    'ms',
    `median of ${ROUNDS}, best ${Math.min(...warm).toFixed(0)} ms`,
    0,
  );
  report(`  points per second (next interval)`, (points / median(warm)) * 1000, 'points/s', '', 0);
  report(
    `  requests`,
    requests.length,
    'requests',
    `largest ${Math.max(...bytes).toLocaleString('en-US')} B, ${(sum / points).toFixed(0)} B/point before compression`,
    0,
  );
  if (compression === 'gzip') {
    const wire = requests.reduce((a, r) => a + gzipSync(r).length, 0);
    report(
      `  gzip size (zlib default level, as grpc-js)`,
      wire / points,
      'B/point',
      `${(sum / wire).toFixed(1)}× smaller`,
      1,
    );
  }
}
sink.close();
