import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FlowBatch } from '../batch/flow-batch.js';
import {
  type BatchSink,
  defineExporter,
  defineExtension,
  defineProcessor,
  defineReceiver,
} from '../component.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { resolveConfig } from '../config/resolve.js';
import { Registry } from '../registry.js';
import { silentLogger } from '../telemetry/logger.js';
import { Service } from './service.js';

/** A small world of test components that record what happens to them. */
function world() {
  const events: string[] = [];
  const exported = new Map<string, FlowBatch[]>();
  const sinks: BatchSink[] = [];
  const t = Date.parse('2026-01-01T00:00:00Z');
  const batch = (n: number, tag: number) =>
    FlowBatch.from(
      Array.from({ length: n }, (_, i) => ({
        timeStart: t,
        timeEnd: t + 1000,
        protocol: 6,
        srcIp: '10.0.0.1',
        srcPort: tag,
        dstIp: '10.0.0.2',
        dstPort: i,
        txBytes: 100,
      })),
    );
  const life = (name: string) => ({
    start: () => {
      events.push(`start ${name}`);
    },
    shutdown: () => {
      events.push(`stop ${name}`);
    },
  });
  const registry = new Registry([
    defineReceiver({
      kind: 'receiver',
      type: 'gen',
      stability: 'development',
      description: 'emits `batches` batches of `size` flows on start',
      signals: ['flows'],
      config: z.strictObject({
        batches: z.number().default(0),
        size: z.number().default(10),
        fail_start: z.boolean().default(false),
      }),
      create: (s, c, _signal, next) => {
        sinks.push(next);
        return {
          start: () => {
            events.push(`start ${s.id}`);
            if (c.fail_start) throw new Error('no such device');
            for (let i = 0; i < c.batches; i++) next.consume(batch(c.size, i));
          },
          shutdown: () => {
            events.push(`stop ${s.id}`);
          },
        };
      },
    }),
    defineProcessor({
      kind: 'processor',
      type: 'tag',
      stability: 'development',
      description: 'sets attribute tag on every flow; throws on batch number `fail_on`',
      signals: ['flows'],
      config: z.strictObject({ fail_on: z.number().default(-1) }),
      create: (s, c) => ({
        mutates: true,
        ...life(s.id),
        process: (b) => {
          const fb = b as FlowBatch;
          if (fb.srcPort[0] === c.fail_on) throw new Error('bad batch');
          for (let i = 0; i < fb.length; i++) fb.setAttribute(i, 'tag', s.id);
          return fb;
        },
      }),
    }),
    defineExporter({
      kind: 'exporter',
      type: 'mem',
      stability: 'development',
      description:
        'collects batches; waits `delay_ms` per batch; with `backend_down`, reports its own outage',
      signals: ['flows'],
      config: z.strictObject({
        delay_ms: z.number().default(0),
        backend_down: z.boolean().default(false),
        fail_on: z.number().default(-1),
      }),
      create: (s, c) => {
        const list: FlowBatch[] = [];
        exported.set(s.id, list);
        return {
          ...life(s.id),
          start: () => {
            events.push(`start ${s.id}`);
            if (c.backend_down) s.status.recoverableError(new Error('backend unreachable'));
          },
          export: async (b) => {
            if (c.delay_ms) await sleep(c.delay_ms);
            if ((b as FlowBatch).srcPort[0] === c.fail_on) throw new Error('bad batch');
            list.push(b as FlowBatch);
          },
        };
      },
    }),
    defineExtension({
      kind: 'extension',
      type: 'ext',
      stability: 'development',
      description: 'does nothing, records its lifecycle',
      config: z.strictObject({}),
      create: (s) => life(s.id),
    }),
  ]);
  const configure = (tree: Record<string, unknown>): ResolvedConfig =>
    resolveConfig({ tree, positions: new Map(), configDirs: new Map() }, registry, {});
  return { events, exported, sinks, configure, batch };
}

const logger = silentLogger();

describe('Service', () => {
  it('fans a shared receiver out to every pipeline; mutating processors get their own copy', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: { batches: 3, size: 5 } },
      processors: { 'tag/a': {}, 'tag/b': {} },
      exporters: { 'mem/a': {}, 'mem/b': {} },
      extensions: { ext: {} },
      service: {
        extensions: ['ext'],
        pipelines: {
          'flows/a': { receivers: ['gen'], processors: ['tag/a'], exporters: ['mem/a'] },
          'flows/b': { receivers: ['gen'], processors: ['tag/b'], exporters: ['mem/b'] },
        },
      },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    const report = await service.shutdown();
    expect(report).toEqual({ drained: true, abandonedItems: 0, errors: [] });
    const a = w.exported.get('mem/a') ?? [];
    const b = w.exported.get('mem/b') ?? [];
    expect(a.map((x) => x.length)).toEqual([5, 5, 5]);
    expect(a.every((x) => x.getAttribute(0, 'tag') === 'tag/a')).toBe(true);
    expect(b.every((x) => x.getAttribute(0, 'tag') === 'tag/b')).toBe(true);
    expect(a[0]).not.toBe(b[0]);
    // Lifecycle: extensions, exporters, processors, receivers; the reverse on shutdown.
    expect(w.events).toEqual([
      'start ext',
      'start mem/a',
      'start mem/b',
      'start tag/a',
      'start tag/b',
      'start gen',
      'stop gen',
      'stop tag/b',
      'stop tag/a',
      'stop mem/b',
      'stop mem/a',
      'stop ext',
    ]);
    const gen = service.components().find((c) => c.id === 'gen');
    expect(gen?.items).toEqual({ in: 0, out: 15, dropped: 0, failed: 0 });
    expect(gen?.status).toBe('stopped');
  });

  it('a failing batch is dropped and counted; the pipeline keeps running and recovers', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: { batches: 4, size: 2 } },
      processors: { tag: { fail_on: 1 } },
      exporters: { mem: {} },
      service: { pipelines: { flows: { receivers: ['gen'], processors: ['tag'], exporters: ['mem'] } } },
    });
    const service = await Service.build(config, { logger });
    const statuses: string[] = [];
    service.status.onChange((s) => {
      if (s.id === 'tag') statuses.push(s.status);
    });
    await service.start();
    await service.shutdown();
    expect(w.exported.get('mem')?.map((b) => b.srcPort[0])).toEqual([0, 2, 3]);
    const tag = service.components().find((c) => c.id === 'tag');
    expect(tag?.items).toEqual({ in: 8, out: 6, dropped: 0, failed: 2 });
    expect(tag?.lastError).toBe('bad batch');
    expect(statuses).toEqual(['starting', 'ok', 'recoverable_error', 'ok', 'stopping', 'stopped']);
  });

  it('an error a component reports itself is not cleared by the batches that pass meanwhile', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: { batches: 3, size: 2 } },
      exporters: { mem: { backend_down: true } },
      service: { pipelines: { flows: { receivers: ['gen'], exporters: ['mem'] } } },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    await sleep(20);
    const mem = service.components().find((c) => c.id === 'mem');
    expect(w.exported.get('mem')).toHaveLength(3);
    expect(mem?.status).toBe('recoverable_error');
    expect(mem?.lastError).toBe('backend unreachable');
    await service.shutdown();
  });

  it('a failed batch during a component’s own error does not let the next good batch clear it', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: { batches: 3, size: 2 } },
      exporters: { mem: { backend_down: true, fail_on: 1 } },
      service: { pipelines: { flows: { receivers: ['gen'], exporters: ['mem'] } } },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    await sleep(20);
    const mem = service.components().find((c) => c.id === 'mem');
    expect(mem?.items.failed).toBe(2);
    expect(mem?.status).toBe('recoverable_error');
    await service.shutdown();
  });

  it('a slow exporter makes the receiver queue drop, counted, while the queue stays bounded', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: { batches: 0 } },
      exporters: { mem: { delay_ms: 20 } },
      service: { pipelines: { flows: { receivers: ['gen'], exporters: ['mem'], queue: { size: 4 } } } },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    for (let i = 0; i < 100; i++) w.sinks[0].consume(w.batch(10, i));
    const [q] = service.queues();
    expect(q.depth).toBe(4);
    expect(q.droppedBatches).toBe(95); // one in flight, four queued
    await service.shutdown();
    const exported = w.exported.get('mem') ?? [];
    // drop_oldest: the first batch (already in flight) and the newest four arrive.
    expect(exported.map((b) => b.srcPort[0])).toEqual([0, 96, 97, 98, 99]);
    const gen = service.components().find((c) => c.id === 'gen');
    expect(gen?.items).toEqual({ in: 0, out: 1000, dropped: 950, failed: 0 });
  });

  it('shutdown drains queued batches to the exporters before stopping them', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: { batches: 20, size: 3 } },
      exporters: { mem: { delay_ms: 5 } },
      service: { pipelines: { flows: { receivers: ['gen'], exporters: ['mem'] } } },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    const report = await service.shutdown(5000);
    expect(report.drained).toBe(true);
    expect(w.exported.get('mem')?.length).toBe(20);
    expect(w.events.at(-1)).toBe('stop mem');
  });

  it('abandons (and counts) what cannot drain before the deadline', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: { batches: 10, size: 3 } },
      exporters: { mem: { delay_ms: 100 } },
      service: { pipelines: { flows: { receivers: ['gen'], exporters: ['mem'] } } },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    const report = await service.shutdown(150);
    expect(report.drained).toBe(false);
    // Every flow is accounted for: exported, or abandoned (queued or still in flight) and counted.
    const exported = (w.exported.get('mem') ?? []).reduce((n, b) => n + b.length, 0);
    expect(report.abandonedItems).toBeGreaterThan(0);
    expect(exported + report.abandonedItems).toBe(30);
    expect(service.queues()[0].droppedItems).toBe(report.abandonedItems);
  });

  it('a zero shutdown deadline on an idle pipeline still stops cleanly', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: { batches: 2, size: 3 } },
      exporters: { mem: {} },
      service: { pipelines: { flows: { receivers: ['gen'], exporters: ['mem'] } } },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    await sleep(20);
    expect(await service.shutdown(0)).toEqual({ drained: true, abandonedItems: 0, errors: [] });
    expect(service.components().every((c) => c.status === 'stopped')).toBe(true);
  });

  it('a component that fails to start stops the ones already started and says which', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: { fail_start: true } },
      exporters: { mem: {} },
      service: { pipelines: { flows: { receivers: ['gen'], exporters: ['mem'] } } },
    });
    const service = await Service.build(config, { logger });
    await expect(service.start()).rejects.toThrow('receiver "gen" failed to start: no such device');
    expect(w.events).toEqual(['start mem', 'start gen', 'stop gen', 'stop mem']);
    const gen = service.components().find((c) => c.id === 'gen');
    expect([gen?.status, gen?.lastError]).toEqual(['stopped', 'no such device']);
  });
});
