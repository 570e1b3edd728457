// The problems the real config loader reports for a `cost` block, as a user reads them: one pipeline
// gen → cost → sink, resolved by resolveConfig with the registry the agent would use for these three.
import { ConfigError, defineExporter, defineReceiver, Registry, resolveConfig } from '@netmon/core';
import { z } from 'zod';
import { costProcessorFactory } from '../factory.js';

const registry = new Registry([
  defineReceiver({
    kind: 'receiver',
    type: 'gen',
    stability: 'development',
    description: 'test generator',
    signals: ['flows'],
    config: z.strictObject({}),
    create: () => ({}),
  }),
  costProcessorFactory,
  defineExporter({
    kind: 'exporter',
    type: 'sink',
    stability: 'development',
    description: 'test sink',
    signals: ['flows'],
    config: z.strictObject({}),
    create: () => ({ export: () => {} }),
  }),
]);

/** The lines of the ConfigError for `processors: { cost }`; [] when it is valid. */
export function costConfigProblems(cost: unknown): string[] {
  const tree = {
    receivers: { gen: {} },
    processors: { cost },
    exporters: { sink: {} },
    service: { pipelines: { flows: { receivers: ['gen'], processors: ['cost'], exporters: ['sink'] } } },
  };
  try {
    resolveConfig({ tree, positions: new Map(), configDirs: new Map() }, registry, {});
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}
