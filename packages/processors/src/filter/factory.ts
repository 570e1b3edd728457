import { defineProcessor } from '@netmon/core';
import { filterConfig } from './config.js';

export const filterProcessorFactory = defineProcessor({
  kind: 'processor',
  type: 'filter',
  stability: 'alpha',
  description:
    'Keeps or drops flows by namespace, workload, class, CIDR and port, and coarsens attributes to pod, workload or namespace granularity.',
  signals: ['flows'],
  config: filterConfig,
  create: async (_settings, config) => new (await import('./filter.js')).FilterProcessor(config),
});
