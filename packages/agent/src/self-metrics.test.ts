// The framework's self-metrics, read through a real OpenTelemetry MeterProvider and MetricReader.
import {
  type BatchSink,
  defineExporter,
  defineReceiver,
  FlowBatch,
  NETMON_VERSION,
  Registry,
  registerSelfMetrics,
  resolveConfig,
  Service,
  silentLogger,
} from '@netmon/core';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { expect, it } from 'vitest';
import { z } from 'zod';
import { SelfMetricsReader } from './run.js';

class TestReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

it('reports items per component edge, queue depth and drops, and status', async () => {
  let sink: BatchSink | undefined;
  let release: () => void = () => {};
  const blocked = new Promise<void>((r) => {
    release = r;
  });
  const registry = new Registry([
    defineReceiver({
      kind: 'receiver',
      type: 'gen',
      stability: 'development',
      description: 'test source of batches',
      signals: ['flows'],
      config: z.strictObject({}),
      create: (_s, _c, next) => {
        sink = next;
        return {};
      },
    }),
    defineExporter({
      kind: 'exporter',
      type: 'stuck',
      stability: 'development',
      description: 'test exporter that waits',
      signals: ['flows'],
      config: z.strictObject({}),
      create: () => ({ export: () => blocked }),
    }),
  ]);
  const config = resolveConfig(
    {
      tree: {
        receivers: { gen: {} },
        exporters: { stuck: {} },
        service: { pipelines: { flows: { receivers: ['gen'], exporters: ['stuck'], queue: { size: 2 } } } },
      },
      positions: new Map(),
      configDirs: new Map(),
    },
    registry,
    {},
  );
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  const service = await Service.build(config, { logger: silentLogger(), meterProvider: provider });
  registerSelfMetrics(provider.getMeter('netmon'), service);
  await service.start();
  const t = Date.parse('2026-01-01T00:00:00Z');
  const batch = () =>
    FlowBatch.from(
      [1, 2, 3].map((p) => ({
        timeStart: t,
        timeEnd: t,
        protocol: 6,
        srcIp: '10.0.0.1',
        dstIp: '10.0.0.2',
        dstPort: p,
      })),
    );
  for (let i = 0; i < 5; i++) sink?.consume(batch()); // 1 in flight, 2 queued, 2 dropped

  const { resourceMetrics } = await reader.collect();
  const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
  const points = (name: string) => metrics.find((m) => m.descriptor.name === name)?.dataPoints ?? [];
  const value = (name: string, attrs: Record<string, string>) =>
    points(name).find((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))?.value;

  expect(value('netmon_component_items', { component: 'gen', direction: 'out', outcome: 'success' })).toBe(
    15,
  );
  // Queue drops are the queue's (netmon_queue_dropped_items): with drop_oldest every batch was taken.
  expect(value('netmon_component_items', { component: 'gen', direction: 'out', outcome: 'refused' })).toBe(0);
  expect(value('netmon_component_items', { component: 'stuck', direction: 'in', outcome: 'success' })).toBe(
    3,
  );
  expect(value('netmon_queue_depth', { pipeline: 'flows', receiver: 'gen' })).toBe(2);
  expect(value('netmon_queue_capacity', { pipeline: 'flows', receiver: 'gen' })).toBe(2);
  expect(value('netmon_queue_dropped_items', { pipeline: 'flows', receiver: 'gen' })).toBe(6);
  expect(value('netmon_component_status', { component: 'stuck', status: 'ok' })).toBe(1);
  expect(value('netmon_component_status', { component: 'stuck', status: 'recoverable_error' })).toBe(0);
  expect(points('netmon_build_info').map((p) => [p.value, p.attributes])).toEqual([
    [1, { version: NETMON_VERSION, nodejs_version: process.versions.node, arch: process.arch }],
  ]);

  release();
  await service.shutdown();
  await provider.shutdown();
});

it('serves every component meter, the framework and the process through Host.selfMetrics', async () => {
  const registry = new Registry([
    defineReceiver({
      kind: 'receiver',
      type: 'gen',
      stability: 'development',
      description: 'test source that counts its reads on settings.meter',
      signals: ['flows'],
      config: z.strictObject({}),
      create: (settings) => {
        settings.meter
          .createObservableCounter('netmon_gen_reads', { unit: '{read}' })
          .addCallback((r) => r.observe(3));
        return {};
      },
    }),
    defineExporter({
      kind: 'exporter',
      type: 'sink',
      stability: 'development',
      description: 'test exporter with its own instrument',
      signals: ['flows'],
      config: z.strictObject({}),
      create: (settings) => {
        settings.meter.createCounter('netmon_sink_things', { unit: '{thing}' }).add(5);
        return { export: () => undefined };
      },
    }),
  ]);
  const config = resolveConfig(
    {
      tree: {
        receivers: { gen: {} },
        exporters: { sink: {} },
        service: { pipelines: { flows: { receivers: ['gen'], exporters: ['sink'] } } },
      },
      positions: new Map(),
      configDirs: new Map(),
    },
    registry,
    {},
  );
  // As run.ts wires it.
  const reader = new SelfMetricsReader();
  const provider = new MeterProvider({ readers: [reader] });
  const service = await Service.build(config, {
    logger: silentLogger(),
    meterProvider: provider,
    selfMetrics: async () => (await reader.collect()).resourceMetrics,
  });
  const stop = registerSelfMetrics(provider.getMeter('netmon'), service);
  await service.start();
  await new Promise((r) => setTimeout(r, 30));
  const collected = await service.selfMetrics();
  const byScope = new Map(
    collected?.scopeMetrics.map((s) => [s.scope.name, s.metrics.map((m) => m.descriptor.name)]) ?? [],
  );
  expect(byScope.get('netmon/receiver/gen')).toEqual(['netmon_gen_reads']);
  expect(byScope.get('netmon/exporter/sink')).toEqual(['netmon_sink_things']);
  expect(byScope.get('netmon')).toEqual(
    expect.arrayContaining([
      'netmon_component_items',
      'netmon_queue_depth',
      'netmon_process_event_loop_lag_p99_seconds',
      'netmon_process_resident_memory_bytes',
      'netmon_process_cpu_seconds',
    ]),
  );
  await service.shutdown();
  stop();
  await provider.shutdown();
  // After the reader shut down, collection fails quietly: nothing to serve.
  expect(await service.selfMetrics()).toBeUndefined();
});
