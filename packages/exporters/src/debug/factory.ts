import { defineExporter } from '@netmon/core';
import { debugExporterConfig } from './config.js';

export const debugExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'debug',
  stability: 'development',
  description: 'Prints a readable summary of flows or DNS lookups to stdout every interval, for debugging.',
  signals: ['flows', 'dns'],
  config: debugExporterConfig,
  // The implementation loads only when a config uses this exporter.
  create: async (settings, config) => new (await import('./exporter.js')).DebugExporter(settings, config),
});
