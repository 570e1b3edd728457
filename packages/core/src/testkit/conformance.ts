// The conformance suite every component and plugin runs: defaults valid, shutdown without start,
// start → consume → shutdown, no handles or timers left behind. Imported from `@netmon/core/testkit`
// (it needs vitest), never from the main entry.
import { createHook } from 'node:async_hooks';
import { readdirSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { DnsBatch, DnsType } from '../batch/dns-batch.js';
import { FlowBatch } from '../batch/flow-batch.js';
import { encodeFlowRecords } from '../batch/flow-record.js';
import type { Batch, Extension, Factory, Lifecycle, Signal } from '../component.js';
import { type RecordingMeter, recordingMeter } from './meter.js';
import { testSettings } from './settings.js';
import { CollectingSink } from './sinks.js';

export interface ConformanceOptions {
  /** Config to use instead of `{}` when the component has required keys (e.g. a path). */
  config?: unknown;
  signal?: Signal;
  /** A batch to consume; default: a small flow batch with attributes. */
  sample?: () => Batch;
  configDir?: string;
  /** Give a receiver time to produce before shutdown (ms). */
  runMs?: number;
  /** A receiver must have produced at least this many items within `runMs`. */
  expectItems?: number;
  /** The extensions the component needs, made fresh for each case. */
  extensions?: () => Map<string, Extension>;
  /** Removes what the cases left on disk (a configDir of their own), after the last one. */
  cleanup?: () => void | Promise<void>;
}

export function sampleFlows(): FlowBatch {
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  return FlowBatch.from([
    {
      timeStart: t0,
      timeEnd: t0 + 10_000,
      protocol: 6,
      srcIp: '10.0.0.1',
      srcPort: 40000,
      dstIp: '10.0.0.2',
      dstPort: 443,
      txBytes: 1200,
      rxBytes: 64000,
      txPackets: 10,
      rxPackets: 50,
      attributes: { 'src.k8s.pod.name': 'web-1', 'flow.initiator_known': true },
    },
    {
      timeStart: t0,
      timeEnd: t0 + 10_000,
      protocol: 17,
      srcIp: 'fd00::1',
      srcPort: 5353,
      dstIp: 'fd00::53',
      dstPort: 53,
      txBytes: 80,
      rxBytes: 160,
      txPackets: 1,
      rxPackets: 1,
    },
  ]);
}

/** Open file descriptors (Linux): FileHandles are destroyed for async_hooks only when collected, not closed. */
function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

/**
 * Handles and timers a component creates and never closes. async_hooks sees every resource, including
 * unref'd timers and servers, which process.getActiveResourcesInfo() leaves out.
 */
const TRACKED = new Set([
  'Timeout',
  'TCPSERVERWRAP',
  'TCPWRAP',
  'UDPWRAP',
  'PIPESERVERWRAP',
  'PIPEWRAP',
  'FSEVENTWRAP',
  'STATWATCHER',
  'SIGNALWRAP',
  'PROCESSWRAP',
  'HTTPINCOMINGMESSAGE',
]);

function trackResources(): { freeze(): void; stop(): void; open(): string[] } {
  const live = new Map<number, string>();
  let frozen = false;
  const hook = createHook({
    init(asyncId, type) {
      if (!frozen && TRACKED.has(type)) live.set(asyncId, type);
    },
    destroy(asyncId) {
      live.delete(asyncId);
    },
  }).enable();
  return {
    // After the component's shutdown, only what it created matters (not the test's own timers).
    freeze: () => {
      frozen = true;
    },
    stop: () => hook.disable(),
    open: () => {
      const counts = new Map<string, number>();
      for (const type of live.values()) counts.set(type, (counts.get(type) ?? 0) + 1);
      return [...counts].map(([type, n]) => `${type} ×${n}`);
    },
  };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** Two lookups, one answered through a CNAME chain. */
export function sampleLookups(): DnsBatch {
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  return DnsBatch.from([
    {
      time: t0,
      clientIp: '10.0.0.1',
      question: 'api.example.com',
      answers: [
        { name: 'api.example.com', type: DnsType.CNAME, ttl: 60, target: 'edge.example.net' },
        { name: 'edge.example.net', type: DnsType.A, ttl: 60, ip: '192.0.2.10' },
      ],
    },
    { time: t0 + 5, clientIp: '10.0.0.2', question: 'db.shop.svc', answers: [] },
  ]);
}

export function describeConformance(factory: Factory, opts: ConformanceOptions = {}): void {
  const signal: Signal = opts.signal ?? ('signals' in factory ? factory.signals[0] : 'flows');
  const config = () => factory.config.parse(opts.config ?? {});
  const make = async (
    meter = recordingMeter(),
    signals: readonly Signal[] = factory.kind === 'extension' ? [] : [signal],
  ): Promise<{ component: Lifecycle; sink: CollectingSink; meter: RecordingMeter }> => {
    const settings = testSettings(factory.kind, factory.type, {
      configDir: opts.configDir,
      extensions: opts.extensions?.(),
      signals,
    });
    settings.meter = meter.meter;
    const sink = new CollectingSink();
    switch (factory.kind) {
      case 'receiver':
        return { component: await factory.create(settings, config(), sink), sink, meter };
      case 'exporter':
        return { component: await factory.create(settings, config()), sink, meter };
      case 'extension':
        return { component: await factory.create(settings, config()), sink, meter };
      case 'processor':
        return { component: await factory.create(settings, config(), signal), sink, meter };
    }
  };

  describe(`${factory.kind} ${factory.type}: conformance`, () => {
    afterAll(async () => {
      await opts.cleanup?.();
    });

    it('has a lower_snake_case type, a stability and a description', () => {
      expect(factory.type).toMatch(/^[a-z][a-z0-9_]*$/);
      expect(['development', 'alpha', 'beta', 'stable', 'deprecated']).toContain(factory.stability);
      expect(factory.description.length).toBeGreaterThan(10);
    });

    it('accepts its default config and rejects unknown keys', () => {
      expect(() => config()).not.toThrow();
      const withUnknown = { ...((opts.config as object) ?? {}), no_such_key_for_conformance: 1 };
      expect(factory.config.safeParse(withUnknown).success).toBe(false);
    });

    // The framework makes one exporter per id for every signal its pipelines carry.
    if (factory.kind === 'exporter' && factory.signals.length > 1) {
      it(`one instance takes the batches of every signal it serves (${factory.signals.join(', ')})`, async () => {
        const { component } = await make(recordingMeter(), factory.signals);
        const exporter = component as import('../component.js').Exporter;
        await exporter.start?.();
        try {
          const samples = { flows: sampleFlows, dns: sampleLookups };
          for (const s of factory.signals) await exporter.export(samples[s]().seal());
        } finally {
          await exporter.shutdown?.();
        }
      });
    }

    it('shuts down without being started, twice', async () => {
      const { component } = await make();
      await component.shutdown?.();
      await component.shutdown?.();
    });

    /** One start → consume → shutdown; throws when a check fails. */
    const lifecycle = async (check: boolean) => {
      const { component, sink, meter } = await make();
      await component.start?.();
      const batch = (opts.sample ?? sampleFlows)();
      if (factory.kind === 'processor') {
        const p = component as import('../component.js').Processor;
        const input = p.mutates ? batch : batch.seal();
        const snapshot = input instanceof FlowBatch ? encodeFlowRecords(input).join('') : '';
        await p.process(input);
        // A processor that does not declare `mutates` must leave its input exactly as it was.
        if (check && !p.mutates && input instanceof FlowBatch)
          expect(encodeFlowRecords(input).join('')).toBe(snapshot);
      } else if (factory.kind === 'exporter') {
        await (component as import('../component.js').Exporter).export(batch.seal());
      } else if (factory.kind === 'receiver' && opts.runMs) {
        await new Promise((r) => setTimeout(r, opts.runMs));
      }
      if (check) {
        // Every self-metric it made is declared in the factory's `metrics` (the generated README lists those).
        const declared = new Set(Object.values(factory.metrics ?? {}).map((m) => m.name));
        expect(
          meter.names().filter((n) => !declared.has(n)),
          'metrics made but not declared',
        ).toEqual([]);
      }
      await component.shutdown?.();
      if (check && opts.expectItems !== undefined)
        expect(sink.items).toBeGreaterThanOrEqual(opts.expectItems);
    };

    it('starts, consumes, shuts down and leaves no handles or timers', async () => {
      // A first instance, untracked: the first use of a library may start process-wide housekeeping that
      // outlives any one instance (gRPC's subchannel-pool sweep). What a second instance leaves is a leak.
      await lifecycle(false);
      await settle();
      const fdsBefore = openFds();
      const resources = trackResources();
      try {
        await lifecycle(true);
        resources.freeze();
        // async_hooks reports destroys asynchronously, in batches: give them up to half a second.
        for (let i = 0; i < 25 && resources.open().length > 0; i++) await settle();
        expect(resources.open()).toEqual([]);
        expect(openFds(), 'file descriptors left open').toBe(fdsBefore);
      } finally {
        resources.stop();
      }
    });
  });
}
