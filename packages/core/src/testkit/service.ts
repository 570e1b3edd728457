// Runs one real component factory inside a real Service, fed by test receivers: how a component is
// tested as the framework runs it (one instance per id, shared by every pipeline that lists it).
import type { MeterProvider } from '@opentelemetry/api';
import { z } from 'zod';
import {
  type Batch,
  defineExporter,
  defineReceiver,
  type ExporterFactory,
  SIGNALS,
  type Signal,
} from '../component.js';
import { resolveConfig } from '../config/resolve.js';
import { Service } from '../pipeline/service.js';
import { Registry } from '../registry.js';
import { silentLogger } from '../telemetry/logger.js';

/** How often the framework made, started and stopped the instance, and for which signals. */
export interface Lifecycles {
  created: (readonly Signal[])[];
  starts: number;
  shutdowns: number;
}

/**
 * Builds and starts a Service in which `factory` (its config `config`, id = its type) is the exporter of
 * one pipeline per entry of `pipelines` (pipeline id → the batch, or batches, a test receiver hands it at
 * start).
 * The caller asserts and shuts the service down; `life` counts the exporter instance's lifecycle.
 */
export async function runExporterInService(
  factory: ExporterFactory,
  config: Record<string, unknown>,
  pipelines: Record<string, () => Batch | Batch[]>,
  opts: { meterProvider?: MeterProvider } = {},
): Promise<{ service: Service; life: Lifecycles }> {
  const life: Lifecycles = { created: [], starts: 0, shutdowns: 0 };
  const counted = defineExporter({
    ...factory,
    create: async (settings, cfg) => {
      life.created.push(settings.signals);
      const e = await factory.create(settings, cfg);
      return {
        start: () => {
          life.starts++;
          return e.start?.();
        },
        export: (b) => e.export(b),
        shutdown: () => {
          life.shutdowns++;
          return e.shutdown?.();
        },
      };
    },
  });
  const ids = Object.keys(pipelines);
  const signalOf = (id: string) => {
    const signal = id.split('/')[0] as Signal;
    if (!SIGNALS.includes(signal)) throw new Error(`pipeline id ${id} names no signal`);
    return signal;
  };
  const sources = ids.map((id, i) =>
    defineReceiver({
      kind: 'receiver',
      type: `source_${i}`,
      stability: 'development',
      description: `one batch for pipeline ${id} at start`,
      signals: [signalOf(id)],
      config: z.strictObject({}),
      create: (_s, _c, next) => ({
        start: () => {
          for (const b of [pipelines[id]()].flat()) next.consume(b);
        },
      }),
    }),
  );
  const registry = new Registry([...sources, counted]);
  const resolved = resolveConfig(
    {
      tree: {
        receivers: Object.fromEntries(sources.map((s) => [s.type, {}])),
        exporters: { [factory.type]: config },
        service: {
          pipelines: Object.fromEntries(
            ids.map((id, i) => [id, { receivers: [sources[i].type], exporters: [factory.type] }]),
          ),
        },
      },
      positions: new Map(),
      configDirs: new Map(),
    },
    registry,
    {},
  );
  const service = await Service.build(resolved, {
    logger: silentLogger(),
    meterProvider: opts.meterProvider,
  });
  await service.start();
  return { service, life };
}
