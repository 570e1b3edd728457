// The framework's self-metrics, read through a real OpenTelemetry MeterProvider and MetricReader.
import {
  type BatchSink,
  defineExporter,
  defineReceiver,
  FlowBatch,
  Registry,
  registerSelfMetrics,
  resolveConfig,
  Service,
  silentLogger,
} from '@netmon/core';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { expect, it } from 'vitest';
import { z } from 'zod';

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
      create: (_s, _c, _sig, next) => {
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
  expect(
    value('netmon_component_items', { component: 'gen', direction: 'out', outcome: 'refused' }),
  ).toBeUndefined();
  expect(value('netmon_component_items', { component: 'stuck', direction: 'in', outcome: 'success' })).toBe(
    3,
  );
  expect(value('netmon_queue_depth', { pipeline: 'flows', receiver: 'gen' })).toBe(2);
  expect(value('netmon_queue_capacity', { pipeline: 'flows', receiver: 'gen' })).toBe(2);
  expect(value('netmon_queue_dropped_items', { pipeline: 'flows', receiver: 'gen' })).toBe(6);
  expect(value('netmon_component_status', { component: 'stuck', status: 'ok' })).toBe(1);
  expect(value('netmon_component_status', { component: 'stuck', status: 'recoverable_error' })).toBe(0);

  release();
  await service.shutdown();
  await provider.shutdown();
});
