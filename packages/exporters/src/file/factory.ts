import path from 'node:path';
import { defineExporter } from '@netmon/core';
import { fileExporterConfig } from './config.js';
import { FILE_EXPORTER_METRICS } from './metrics.js';
import { checkWritable } from './validate.js';

export const fileExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'file',
  stability: 'alpha',
  description:
    'Appends flows to a file as JSON Lines flow records (the file receiver input), rotating by size.',
  signals: ['flows'],
  config: fileExporterConfig,
  metrics: FILE_EXPORTER_METRICS,
  validate: (config, { configDir }) => checkWritable(config, configDir),
  claims: (config, { configDir }) => [
    { kind: 'write', key: 'path', path: path.resolve(configDir, config.path) },
  ],
  // The implementation loads only when a config uses this exporter.
  create: async (settings, config) => new (await import('./exporter.js')).FileExporter(settings, config),
});
