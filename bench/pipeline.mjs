// Pipeline framework overhead and flow-record codec throughput, on the built packages.
//   make build && .tools/bin/node --expose-gc bench/pipeline.mjs
// Prints one line per measurement; docs/PERFORMANCE.md keeps the figures.
import { performance } from 'node:perf_hooks';
import {
  decodeFlowRecord,
  defineExporter,
  defineProcessor,
  defineReceiver,
  encodeFlowRecords,
  FlowBatch,
  Registry,
  resolveConfig,
  Service,
  silentLogger,
} from '@netmon/core';
import { z } from 'zod';

const ROWS = 4096;
const BATCHES = Number(process.env.BATCHES ?? 500);
const t0 = Date.parse('2026-01-01T00:00:00Z');

function makeBatch(rows, seed) {
  const b = new FlowBatch(rows, 'delta');
  const pods = ['web-1', 'web-2', 'api-7f9c', 'db-0', 'cache-1'];
  const col = b.ensureColumn('src.k8s.pod.name', 'string');
  for (let i = 0; i < rows; i++) {
    b.family[i] = 4;
    b.protocol[i] = 6;
    const o = 16 * i;
    b.srcAddr[o + 10] = b.srcAddr[o + 11] = b.dstAddr[o + 10] = b.dstAddr[o + 11] = 0xff;
    b.srcAddr[o + 12] = 10;
    b.srcAddr[o + 14] = (i >> 8) & 255;
    b.srcAddr[o + 15] = i & 255;
    b.dstAddr[o + 12] = 10;
    b.dstAddr[o + 13] = 1;
    b.dstAddr[o + 15] = seed & 255;
    b.srcPort[i] = 30000 + (i % 30000);
    b.dstPort[i] = 443;
    b.txBytes[i] = 1000 + i;
    b.rxBytes[i] = 50_000 + i;
    b.txPackets[i] = 10;
    b.rxPackets[i] = 40;
    b.timeStart[i] = t0;
    b.timeEnd[i] = t0 + 10_000;
    col.set(i, pods[i % pods.length]);
  }
  b.length = rows;
  return b;
}

function report(name, value, unit, extra = '') {
  console.log(
    `${name.padEnd(52)} ${value.toLocaleString('en-US', { maximumFractionDigits: 1 }).padStart(14)} ${unit}${extra ? `  (${extra})` : ''}`,
  );
}

async function pipelineOverhead(processorCount) {
  let sink;
  let exported = 0;
  const registry = new Registry([
    defineReceiver({
      kind: 'receiver',
      type: 'gen',
      stability: 'development',
      description: 'bench source',
      signals: ['flows'],
      config: z.strictObject({}),
      create: (_s, _c, next) => {
        sink = next;
        return {};
      },
    }),
    defineProcessor({
      kind: 'processor',
      type: 'noop',
      stability: 'development',
      description: 'bench no-op',
      signals: ['flows'],
      config: z.strictObject({}),
      create: () => ({ process: (b) => b }),
    }),
    defineExporter({
      kind: 'exporter',
      type: 'count',
      stability: 'development',
      description: 'bench sink',
      signals: ['flows'],
      config: z.strictObject({}),
      create: () => ({
        export: (b) => {
          exported += b.length;
        },
      }),
    }),
  ]);
  const processors = Object.fromEntries(Array.from({ length: processorCount }, (_, i) => [`noop/${i}`, {}]));
  const config = resolveConfig(
    {
      tree: {
        receivers: { gen: {} },
        processors,
        exporters: { count: {} },
        service: {
          pipelines: {
            flows: {
              receivers: ['gen'],
              processors: Object.keys(processors),
              exporters: ['count'],
              queue: { size: BATCHES + 1 },
            },
          },
        },
      },
      positions: new Map(),
      configDirs: new Map(),
    },
    registry,
    {},
  );
  const batches = Array.from({ length: BATCHES }, (_, i) => makeBatch(ROWS, i));
  // Median of five runs; the first also warms the JIT.
  const runs = [];
  for (let r = 0; r < 5; r++) {
    exported = 0;
    const service = await Service.build(config, { logger: silentLogger() });
    await service.start();
    const start = performance.now();
    for (const b of batches) sink.consume(b);
    await service.shutdown(60_000);
    runs.push(performance.now() - start);
    if (exported !== BATCHES * ROWS) throw new Error(`exported ${exported}, expected ${BATCHES * ROWS}`);
  }
  const ms = runs.sort((a, b) => a - b)[2];
  report(
    `pipeline: receiver → ${processorCount} no-op processors → exporter`,
    (ms * 1000) / BATCHES,
    `µs per ${ROWS}-flow batch`,
    `framework overhead alone: ${((BATCHES * ROWS) / (ms / 1000) / 1e6).toFixed(0)} M flows/s`,
  );
}

function codec() {
  const batch = makeBatch(ROWS, 1);
  let lines = encodeFlowRecords(batch, []); // warm-up
  const n = 100;
  let start = performance.now();
  for (let i = 0; i < n; i++) lines = encodeFlowRecords(batch, []);
  let ms = performance.now() - start;
  report('flow records: encode (FlowBatch → JSON Lines)', (n * ROWS) / (ms / 1000), 'records/s');
  start = performance.now();
  for (let i = 0; i < n / 10; i++) {
    const b = new FlowBatch(ROWS);
    for (const line of lines) {
      const d = decodeFlowRecord(line);
      if (d.ok) b.push(d.flow);
    }
  }
  ms = performance.now() - start;
  report(
    'flow records: decode + push (JSON Lines → FlowBatch)',
    ((n / 10) * ROWS) / (ms / 1000),
    'records/s',
  );
}

function memory() {
  globalThis.gc?.();
  const before = process.memoryUsage();
  const keep = Array.from({ length: 50 }, (_, i) => makeBatch(ROWS, i));
  globalThis.gc?.();
  const after = process.memoryUsage();
  const bytes = after.arrayBuffers + after.heapUsed - before.arrayBuffers - before.heapUsed;
  report(
    'FlowBatch memory per flow (1 string attribute)',
    bytes / (keep.length * ROWS),
    'bytes',
    globalThis.gc ? '' : 'run with --expose-gc for a stable figure',
  );
}

console.log(`node ${process.version}, ${BATCHES} batches of ${ROWS} flows`);
memory(); // first, before other measurements leave garbage behind
for (const p of [0, 3]) await pipelineOverhead(p);
codec();
