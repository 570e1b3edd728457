import { resolve } from 'node:path';
import { defineProcessor } from '@netmon/core';
import { checkStatePath } from './checkpoint.js';
import { deltaProcessorConfig } from './config.js';
import { DELTA_METRICS } from './metrics.js';

export const deltaProcessorFactory = defineProcessor({
  kind: 'processor',
  type: 'delta',
  stability: 'alpha',
  description:
    'Turns cumulative counters (conntrack dumps and events) into exact per-interval deltas: every byte once.',
  signals: ['flows'],
  config: deltaProcessorConfig,
  metrics: DELTA_METRICS,
  async validate(config, { configDir }) {
    if (config.state_file === undefined) return [];
    const problem = await checkStatePath(resolve(configDir, config.state_file));
    return problem === null ? [] : [{ key: 'state_file', message: problem }];
  },
  claims: (config, { configDir }) =>
    config.state_file === undefined
      ? []
      : [{ kind: 'write', key: 'state_file', path: resolve(configDir, config.state_file) }],
  create: async (settings, config) => new (await import('./delta.js')).DeltaProcessor(settings, config),
});
