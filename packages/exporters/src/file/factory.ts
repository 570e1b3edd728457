import { defineExporter } from '@netmon/core';
import { fileExporterConfig } from './config.js';
import { FileExporter } from './exporter.js';
import { checkWritable } from './validate.js';

export const fileExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'file',
  stability: 'alpha',
  description:
    'Appends flows to a file as JSON Lines flow records (the file receiver input), rotating by size.',
  signals: ['flows'],
  config: fileExporterConfig,
  validate: (config, { configDir }) => checkWritable(config, configDir),
  create: (settings, config) => new FileExporter(settings, config),
});
