import { defineProcessor } from '@netmon/core';
import { filterConfig } from './config.js';
import { FilterProcessor } from './filter.js';

export const filterProcessorFactory = defineProcessor({
  kind: 'processor',
  type: 'filter',
  stability: 'alpha',
  description:
    'Keeps or drops flows by namespace, workload, class, CIDR and port, and coarsens attributes to pod, workload or namespace granularity.',
  signals: ['flows'],
  config: filterConfig,
  create: (_settings, config) => new FilterProcessor(config),
});
