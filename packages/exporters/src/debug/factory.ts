import { defineExporter } from '@netmon/core';
import { debugExporterConfig } from './config.js';
import { DebugExporter } from './exporter.js';

export const debugExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'debug',
  stability: 'development',
  description: 'Prints a readable summary of flows or DNS lookups to stdout every interval, for debugging.',
  signals: ['flows', 'dns'],
  config: debugExporterConfig,
  create: (settings, config) => new DebugExporter(settings, config),
});
