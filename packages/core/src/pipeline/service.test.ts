import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DnsBatch } from '../batch/dns-batch.js';
import { FlowBatch } from '../batch/flow-batch.js';
import {
  type Batch,
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
import { Service, StartAbortedError } from './service.js';

/** A small world of test components that record what happens to them. */
function world() {
  const events: string[] = [];
  /** Batches the `peek` processors were handed, in order. */
  const seen: Batch[] = [];
  let release: () => void = () => {};
  /** `stuck` processors hold every batch until `release()`, then let everything through. */
  const gate = new Promise<void>((r) => {
    release = r;
  });
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
        fail_create: z.boolean().default(false),
      }),
      create: (s, c, next) => {
        if (c.fail_create) throw new Error('no such device');
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
    defineProcessor({
      kind: 'processor',
      type: 'peek',
      stability: 'development',
      description: 'records the batches it sees without declaring `mutates`; with `write`, tries to write',
      signals: ['flows'],
      config: z.strictObject({ write: z.boolean().default(false) }),
      create: (s, c) => ({
        ...life(s.id),
        process: (b) => {
          seen.push(b);
          if (c.write) (b as FlowBatch).setAttribute(0, 'peeked', true);
          return b;
        },
      }),
    }),
    defineProcessor({
      kind: 'processor',
      type: 'odd',
      stability: 'development',
      description: 'returns what `returns` says instead of a flow batch',
      signals: ['flows'],
      config: z.strictObject({ returns: z.enum(['object', 'dns', 'number']).default('object') }),
      create: (s, c) => ({
        ...life(s.id),
        process: () =>
          (c.returns === 'object' ? {} : c.returns === 'dns' ? new DnsBatch() : 42) as unknown as FlowBatch,
      }),
    }),
    defineProcessor({
      kind: 'processor',
      type: 'drop',
      stability: 'development',
      description: 'drops batches as `returns` says: null, undefined, an empty batch, or the first half',
      signals: ['flows'],
      config: z.strictObject({ returns: z.enum(['null', 'undefined', 'empty', 'half']).default('null') }),
      create: (s, c) => ({
        ...life(s.id),
        process: (b) => {
          const fb = b as FlowBatch;
          if (c.returns === 'null') return null;
          if (c.returns === 'undefined') return undefined;
          const half = Math.floor(c.returns === 'empty' ? 0 : fb.length / 2);
          return fb.select(Array.from({ length: half }, (_, i) => i));
        },
      }),
    }),
    defineProcessor({
      kind: 'processor',
      type: 'stuck',
      stability: 'development',
      description:
        'holds each batch until the test releases it; with `hang_start`, never finishes starting; with `hang_create`, is never made',
      signals: ['flows'],
      config: z.strictObject({
        hang_start: z.boolean().default(false),
        hang_create: z.boolean().default(false),
      }),
      create: (s, c) =>
        c.hang_create
          ? new Promise<never>(() => {})
          : {
              start: () => {
                events.push(`start ${s.id}`);
                if (c.hang_start) return new Promise<void>(() => {});
              },
              shutdown: () => {
                events.push(`stop ${s.id}`);
              },
              process: async (b) => {
                await gate;
                return b;
              },
            },
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
  return { events, exported, sinks, configure, batch, seen, release };
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
    expect(gen?.items).toEqual({ in: 0, out: 15, dropped: 0, failed: 0, refused: 0 });
    expect(gen?.status).toBe('stopped');
  });

  it('a component that cannot be created: the error names it, and those created before it are shut down', async () => {
    const w = world();
    const config = w.configure({
      receivers: { 'gen/ok': {}, 'gen/bad': { fail_create: true } },
      exporters: { mem: {} },
      extensions: { ext: {} },
      service: {
        extensions: ['ext'],
        pipelines: {
          'flows/a': { receivers: ['gen/ok'], exporters: ['mem'] },
          'flows/b': { receivers: ['gen/bad'], exporters: ['mem'] },
        },
      },
    });
    await expect(Service.build(config, { logger })).rejects.toThrow(
      'receiver "gen/bad" could not be created: no such device',
    );
    // Never started; shut down in the reverse order of their creation.
    expect(w.events).toEqual(['stop gen/ok', 'stop mem', 'stop ext']);
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
    expect(tag?.items).toEqual({ in: 8, out: 6, dropped: 0, failed: 2, filtered: 0 });
    expect(tag?.lastError).toBe('bad batch');
    // Components are `starting` from creation: the board never shows a state outside the seven.
    expect(statuses).toEqual(['ok', 'recoverable_error', 'ok', 'stopping', 'stopped']);
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
    expect(gen?.items).toEqual({ in: 0, out: 1000, dropped: 950, failed: 0, refused: 0 });
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

describe('Service lifecycle deadlines', () => {
  it('a component not started yet is `starting`, never a state outside the seven', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: {} },
      exporters: { mem: {} },
      service: { pipelines: { flows: { receivers: ['gen'], exporters: ['mem'] } } },
    });
    const service = await Service.build(config, { logger });
    expect(service.components().map((c) => c.status)).toEqual(['starting', 'starting']);
  });

  it('a start that never finishes fails after service::start_timeout, naming the component', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: {} },
      processors: { stuck: { hang_start: true } },
      exporters: { mem: {} },
      service: {
        start_timeout: '100ms',
        pipelines: { flows: { receivers: ['gen'], processors: ['stuck'], exporters: ['mem'] } },
      },
    });
    const service = await Service.build(config, { logger });
    const began = Date.now();
    await expect(service.start()).rejects.toThrow(
      'processor "stuck" failed to start: did not finish starting within 100ms (service::start_timeout)',
    );
    expect(Date.now() - began).toBeLessThan(2000);
    // What started is stopped in reverse order; the receiver never started (and is stopped anyway).
    expect(w.events).toEqual(['start mem', 'start stuck', 'stop gen', 'stop stuck', 'stop mem']);
    const stuck = service.components().find((c) => c.id === 'stuck');
    expect([stuck?.status, stuck?.lastError]).toEqual([
      'stopped',
      'did not finish starting within 100ms (service::start_timeout)',
    ]);
    expect(service.phase()).toBe('stopped');
  });

  it('a create that never finishes fails after service::start_timeout, naming the component', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: {} },
      processors: { stuck: { hang_create: true } },
      exporters: { mem: {} },
      service: {
        start_timeout: '100ms',
        pipelines: { flows: { receivers: ['gen'], processors: ['stuck'], exporters: ['mem'] } },
      },
    });
    await expect(Service.build(config, { logger })).rejects.toThrow(
      'processor "stuck" could not be created: it did not finish within 100ms (service::start_timeout)',
    );
    // The exporter made before it is shut down; the receiver after it was never made.
    expect(w.events).toEqual(['stop mem']);
  });

  it('an abort while a start hangs interrupts it; shutdown then stops what started', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: {} },
      processors: { stuck: { hang_start: true } },
      exporters: { mem: {} },
      service: { pipelines: { flows: { receivers: ['gen'], processors: ['stuck'], exporters: ['mem'] } } },
    });
    const service = await Service.build(config, { logger });
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 30);
    const err = await service.start({ signal: stop.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartAbortedError);
    expect((err as StartAbortedError).pending).toBe('processor "stuck"');
    expect(service.phase()).toBe('starting');
    const report = await service.shutdown(1000);
    expect(report).toEqual({ drained: true, abandonedItems: 0, errors: [] });
    // A second caller gets the same outcome.
    expect(await service.shutdown()).toBe(report);
    expect(w.events).toEqual(['start mem', 'start stuck', 'stop gen', 'stop stuck', 'stop mem']);
    expect(service.components().every((c) => c.status === 'stopped')).toBe(true);
  });
});

describe('Service batch checks', () => {
  it.each([
    ['object', 'process returned an object {}; expected a FlowBatch, or null to pass nothing on'],
    ['dns', 'process returned a DnsBatch; expected a FlowBatch, or null to pass nothing on'],
    ['number', 'process returned number 42; expected a FlowBatch, or null to pass nothing on'],
  ])(
    'a processor returning %s fails that batch on the processor, not on the exporter',
    async (returns, message) => {
      const w = world();
      const config = w.configure({
        receivers: { gen: { batches: 3, size: 4 } },
        processors: { odd: { returns } },
        exporters: { mem: {} },
        service: { pipelines: { flows: { receivers: ['gen'], processors: ['odd'], exporters: ['mem'] } } },
      });
      const service = await Service.build(config, { logger });
      await service.start();
      await sleep(20);
      const odd = service.components().find((c) => c.id === 'odd');
      const mem = service.components().find((c) => c.id === 'mem');
      expect(odd?.items).toEqual({ in: 12, out: 0, dropped: 0, failed: 12, filtered: 0 });
      expect([odd?.status, odd?.lastError]).toEqual(['recoverable_error', message]);
      expect(mem?.items).toEqual({ in: 0, out: 0, dropped: 0, failed: 0 });
      expect(mem?.status).toBe('ok');
      expect(w.exported.get('mem')).toEqual([]);
      await service.shutdown();
    },
  );

  it('a processor without `mutates` gets a sealed batch even when no other pipeline shares it', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: { batches: 2, size: 3 } },
      processors: { peek: { write: true } },
      exporters: { mem: {} },
      service: { pipelines: { flows: { receivers: ['gen'], processors: ['peek'], exporters: ['mem'] } } },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    await service.shutdown();
    const peek = service.components().find((c) => c.id === 'peek');
    expect(peek?.items).toEqual({ in: 6, out: 0, dropped: 0, failed: 6, filtered: 0 });
    expect(peek?.lastError).toMatch(
      /read-only: a processor that changes batches must declare `mutates: true`/,
    );
    expect(w.exported.get('mem')).toEqual([]);
  });

  it('sealing for a read-only stage copies nothing: a later mutating processor works on the same batch', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: {} },
      processors: { peek: {}, tag: {} },
      exporters: { mem: {} },
      service: {
        pipelines: { flows: { receivers: ['gen'], processors: ['peek', 'tag'], exporters: ['mem'] } },
      },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    const input = w.batch(3, 0);
    w.sinks[0].consume(input);
    await service.shutdown();
    expect(w.seen).toEqual([input]);
    expect(input.readonly).toBe(true); // exporters always get it sealed
    const [out] = w.exported.get('mem') ?? [];
    expect(out).toBe(input); // the same object all the way: no copy
    expect(out.getAttribute(0, 'tag')).toBe('tag');
  });

  it('a batch shared by two pipelines is still copied for a mutating processor, once per pipeline', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: {} },
      processors: { peek: {}, 'tag/a': {} },
      exporters: { 'mem/a': {}, 'mem/b': {} },
      service: {
        pipelines: {
          'flows/a': { receivers: ['gen'], processors: ['peek', 'tag/a'], exporters: ['mem/a'] },
          'flows/b': { receivers: ['gen'], processors: [], exporters: ['mem/b'] },
        },
      },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    const input = w.batch(3, 0);
    w.sinks[0].consume(input);
    await service.shutdown();
    expect(w.seen).toEqual([input]);
    const [a] = w.exported.get('mem/a') ?? [];
    const [b] = w.exported.get('mem/b') ?? [];
    expect(b).toBe(input);
    expect(a).not.toBe(input);
    expect(a.getAttribute(0, 'tag')).toBe('tag/a');
    expect(input.getAttribute(0, 'tag')).toBeUndefined();
  });
});

describe('Service stall check', () => {
  it('a processor holding one batch past service::stall_timeout is recoverable_error until it completes', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: {} },
      processors: { stuck: {} },
      exporters: { mem: {} },
      service: {
        stall_timeout: '60ms',
        pipelines: {
          flows: { receivers: ['gen'], processors: ['stuck'], exporters: ['mem'], queue: { size: 2 } },
        },
      },
    });
    const service = await Service.build(config, { logger });
    const statuses: string[] = [];
    service.status.onChange((s) => {
      if (s.id === 'stuck') statuses.push(s.status);
    });
    await service.start();
    for (let i = 0; i < 5; i++) w.sinks[0].consume(w.batch(2, i));
    const stuck = () => service.components().find((c) => c.id === 'stuck');
    await sleep(30);
    expect(stuck()?.status).toBe('ok');
    await sleep(150);
    expect(stuck()?.status).toBe('recoverable_error');
    expect(stuck()?.lastError).toMatch(
      /^processing one batch of 2 items for \d+m?s? \(longer than service::stall_timeout, 60ms\); pipeline flows waits behind it$/,
    );
    expect(stuck()?.errorSince).toBeDefined();
    expect(service.queues()[0].depth).toBe(2);
    w.release();
    await sleep(30);
    expect(stuck()?.status).toBe('ok');
    expect(stuck()?.errorSince).toBeUndefined();
    await service.shutdown();
    expect(w.exported.get('mem')?.length).toBe(3);
    expect(statuses.slice(0, 3)).toEqual(['ok', 'recoverable_error', 'recoverable_error']);
    expect(statuses.slice(-3)).toEqual(['ok', 'stopping', 'stopped']);
  });

  it('a shared exporter stalled in one pipeline stays flagged while the other pipeline’s batches pass', async () => {
    let hold: () => void = () => {};
    const held = new Promise<void>((r) => {
      hold = r;
    });
    const w = world();
    const registry = new Registry([
      defineReceiver({
        kind: 'receiver',
        type: 'src',
        stability: 'development',
        description: 'test source',
        signals: ['flows'],
        config: z.strictObject({}),
        create: (_s, _c, next) => {
          w.sinks.push(next);
          return {};
        },
      }),
      defineExporter({
        kind: 'exporter',
        type: 'sticky',
        stability: 'development',
        description: 'holds batches whose first source port is 1',
        signals: ['flows'],
        config: z.strictObject({}),
        create: () => ({
          export: (b) => ((b as FlowBatch).srcPort[0] === 1 ? held : undefined),
        }),
      }),
    ]);
    const config = resolveConfig(
      {
        tree: {
          receivers: { 'src/a': {}, 'src/b': {} },
          exporters: { sticky: {} },
          service: {
            stall_timeout: '40ms',
            pipelines: {
              'flows/a': { receivers: ['src/a'], exporters: ['sticky'] },
              'flows/b': { receivers: ['src/b'], exporters: ['sticky'] },
            },
          },
        },
        positions: new Map(),
        configDirs: new Map(),
      },
      registry,
      {},
    );
    const service = await Service.build(config, { logger });
    await service.start();
    const sticky = () => service.components().find((c) => c.id === 'sticky');
    w.sinks[0].consume(w.batch(2, 1));
    await sleep(120);
    expect(sticky()?.status).toBe('recoverable_error');
    const since = sticky()?.errorSince;
    for (let i = 0; i < 3; i++) {
      w.sinks[1].consume(w.batch(2, 0));
      await sleep(20);
    }
    expect(sticky()?.status).toBe('recoverable_error');
    expect(sticky()?.errorSince).toBe(since);
    expect(sticky()?.lastError).toMatch(
      /^exporting one batch of 2 items .* pipeline flows\/a waits behind it$/,
    );
    hold();
    await sleep(10);
    expect(sticky()?.status).toBe('ok');
    await service.shutdown();
  });
});

describe('Service processor drops', () => {
  // Returning nothing (undefined) loses the batch (a plugin that forgot its return): dropped. Returning null,
  // or leaving rows out of the batch returned, is a processor's design (a filter, delta's baselines):
  // filtered. Neither is a failure.
  it.each([
    ['null', 0, 'filtered'],
    ['undefined', 0, 'dropped'],
    ['empty', 0, 'filtered'],
    ['half', 2, 'filtered'],
  ] as const)(
    'a processor returning %s passes on %d of 4 rows; the rest are counted as %s',
    async (returns, kept, outcome) => {
      const w = world();
      const config = w.configure({
        receivers: { gen: { batches: 3, size: 4 } },
        processors: { drop: { returns } },
        exporters: { mem: {} },
        service: { pipelines: { flows: { receivers: ['gen'], processors: ['drop'], exporters: ['mem'] } } },
      });
      const service = await Service.build(config, { logger });
      await service.start();
      await service.shutdown();
      const drop = service.components().find((c) => c.id === 'drop');
      const gone = 12 - 3 * kept;
      expect(drop?.items).toEqual({
        in: 12,
        out: 3 * kept,
        dropped: outcome === 'dropped' ? gone : 0,
        filtered: outcome === 'filtered' ? gone : 0,
        failed: 0,
      });
      expect(drop?.lastError).toBeUndefined();
      const mem = service.components().find((c) => c.id === 'mem');
      expect(mem?.items).toEqual({ in: 3 * kept, out: 3 * kept, dropped: 0, failed: 0 });
      expect(w.exported.get('mem')?.map((b) => b.length)).toEqual(kept ? [kept, kept, kept] : []);
    },
  );
});

describe('Service refusals', () => {
  it('a batch every full drop_newest queue turns away is refused, not out; after shutdown too', async () => {
    const w = world();
    const config = w.configure({
      receivers: { gen: {} },
      processors: { stuck: {} },
      exporters: { mem: {} },
      service: {
        pipelines: {
          flows: {
            receivers: ['gen'],
            processors: ['stuck'],
            exporters: ['mem'],
            queue: { size: 1, overflow: 'drop_newest' },
          },
        },
      },
    });
    const service = await Service.build(config, { logger });
    await service.start();
    for (let i = 0; i < 4; i++) w.sinks[0].consume(w.batch(5, i)); // 1 in flight, 1 queued, 2 refused
    const gen = () => service.components().find((c) => c.id === 'gen');
    expect(gen()?.items).toEqual({ in: 0, out: 10, dropped: 10, failed: 0, refused: 10 });
    expect(service.queues()[0].droppedItems).toBe(10);
    w.release();
    await service.shutdown();
    w.sinks[0].consume(w.batch(3, 9));
    expect(gen()?.items).toEqual({ in: 0, out: 10, dropped: 10, failed: 0, refused: 13 });
    expect(w.exported.get('mem')?.map((b) => b.srcPort[0])).toEqual([0, 1]);
  });
});
